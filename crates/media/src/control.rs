//! The call model and the ng command handlers.
//!
//! A call (by Call-ID) has parties (rtpengine's monologues, by SIP tag); each party has one
//! media side per m= line, and each side owns a port pair facing that party. A packet from A
//! arrives on the side facing A and leaves through the partner side facing B, so the SDP sent
//! to B advertises B's side and the SDP sent back to A advertises A's side.
//!
//! A `delete` ends the call's media at once: its legs leave the data plane and its ports go
//! back to the pool, where the data plane keeps late packets of the call from the ports' next
//! owners for the delete delay. The call's record stays that long too, so `list` still names it
//! and `query` and a repeated `delete` answer with its final figures (rtpengine keeps the whole
//! call, ports included, which limits a port range to what it can hold for the delay).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ng_protocol::sdp::{self, MediaDescription, RewriteOptions};
use ng_protocol::{
    CallReport, Counters, Delete, IceMode, MediaReport, NgCommand, OfferAnswer, Query, Reply,
    ReplyBody, Statistics, StreamReport, TagReport,
};

use crate::config::MediaConfig;
use crate::dataplane::{DataCommand, DataPlane, LegRegistration, LegShared};
use crate::ports::{PortAllocator, PortsExhausted};

/// Something the proxy side must learn about (rtpengine sends these over XML-RPC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// No media (and no signalling) for the media timeout: the call was ended.
    Timeout { call_id: String, tags: Vec<String> },
}

const UNKNOWN_CALL: &str = "Unknown call-id";
const MAX_DELETE_DELAY: Duration = Duration::from_secs(86_400);
/// Most deleted calls remembered for queries; past it the one due to go first goes now, so a
/// flood of calls with long delete delays cannot grow memory without bound.
const MAX_DELETED_CALLS: usize = 100_000;
const DELETE_WARNING: &str = "Call-ID not found or tags didn't match";

#[derive(Debug)]
struct LegHandle {
    id: usize,
    port: u16,
    shared: Arc<LegShared>,
}

#[derive(Debug)]
struct MediaSide {
    media_type: String,
    protocol: String,
    rtp: LegHandle,
    rtcp: LegHandle,
    /// Endpoints from this party's SDP.
    advertised_rtp: Option<SocketAddr>,
    advertised_rtcp: Option<SocketAddr>,
}

#[derive(Debug)]
struct Party {
    tag: Option<String>,
    label: Option<String>,
    via_branch: Option<String>,
    created: SystemTime,
    peer: Option<usize>,
    medias: Vec<MediaSide>,
}

#[derive(Debug)]
struct Call {
    created: SystemTime,
    last_signal: Instant,
    last_signal_system: SystemTime,
    parties: Vec<Party>,
    /// The delete delay an offer or answer asked for.
    delete_delay: Option<Duration>,
}

/// A deleted call: its ports are back in the pool and its counters final; kept for `query`
/// until its delete delay runs out.
#[derive(Debug)]
struct DeletedCall {
    call: Call,
    /// Its key in [`Controller::expiries`].
    expiry: (Instant, u64),
}

impl Call {
    fn new(now: Instant) -> Self {
        Call {
            created: SystemTime::now(),
            last_signal: now,
            last_signal_system: SystemTime::now(),
            parties: Vec::new(),
            delete_delay: None,
        }
    }

    fn party_by_tag(&self, tag: &str) -> Option<usize> {
        self.parties
            .iter()
            .position(|p| p.tag.as_deref() == Some(tag))
    }

    fn add_party(&mut self, tag: Option<&str>) -> usize {
        self.parties.push(Party {
            tag: tag.map(str::to_owned),
            label: None,
            via_branch: None,
            created: SystemTime::now(),
            peer: None,
            medias: Vec::new(),
        });
        self.parties.len() - 1
    }

    fn legs(&self) -> impl Iterator<Item = &LegHandle> {
        self.parties
            .iter()
            .flat_map(|p| p.medias.iter())
            .flat_map(|m| [&m.rtp, &m.rtcp])
    }

    fn tags(&self) -> Vec<String> {
        self.parties.iter().filter_map(|p| p.tag.clone()).collect()
    }
}

/// Ports, the data plane and leg numbering: what media streams are built from.
#[derive(Debug)]
struct Resources {
    ports: PortAllocator,
    data: DataPlane,
    next_leg_id: usize,
}

impl Resources {
    /// Allocates the two port pairs of one media stream and hands the four legs to the data
    /// plane, each partnered with the leg of the same kind facing the other party.
    fn new_stream(&mut self) -> Result<(MediaSide, MediaSide), PortsExhausted> {
        let first = self.ports.allocate()?;
        let second = match self.ports.allocate() {
            Ok(pair) => pair,
            Err(error) => {
                self.ports.release(first.rtp_port);
                return Err(error);
            }
        };
        let base = self.next_leg_id;
        self.next_leg_id += 4;
        // ids: base = first RTP, +1 first RTCP, +2 second RTP, +3 second RTCP
        let make = |id: usize, port: u16| LegHandle {
            id,
            port,
            shared: Arc::default(),
        };
        let side = |rtp: LegHandle, rtcp: LegHandle| MediaSide {
            media_type: String::new(),
            protocol: String::new(),
            rtp,
            rtcp,
            advertised_rtp: None,
            advertised_rtcp: None,
        };
        let first_side = side(
            make(base, first.rtp_port),
            make(base + 1, first.rtp_port + 1),
        );
        let second_side = side(
            make(base + 2, second.rtp_port),
            make(base + 3, second.rtp_port + 1),
        );
        let registration = |leg: &LegHandle, socket, partner, release_port| LegRegistration {
            id: leg.id,
            socket,
            partner,
            destination: None,
            shared: leg.shared.clone(),
            release_port,
        };
        self.data.send(DataCommand::Add(vec![
            registration(&first_side.rtp, first.rtp, base + 2, Some(first.rtp_port)),
            registration(&first_side.rtcp, first.rtcp, base + 3, None),
            registration(&second_side.rtp, second.rtp, base, Some(second.rtp_port)),
            registration(&second_side.rtcp, second.rtcp, base + 1, None),
        ]));
        Ok((first_side, second_side))
    }

    /// Takes the call's legs out of the data plane, which closes their sockets and reports the
    /// ports free; for `quarantine` the ports' next owners do not latch onto this call's peers.
    fn release_call(&mut self, call: &Call, quarantine: Duration) {
        for leg in call.legs() {
            leg.shared.stop_kernel();
        }
        self.data.send(DataCommand::Remove {
            ids: call.legs().map(|l| l.id).collect(),
            quarantine,
        });
        // The data plane reports each pair back once its sockets are closed.
        self.ports
            .closing(call.parties.iter().map(|p| p.medias.len()).sum());
    }
}

/// Owns every call and answers ng commands; driven by the server task.
#[derive(Debug)]
pub struct Controller {
    config: MediaConfig,
    resources: Resources,
    /// Calls with media: their ports are in use.
    calls: HashMap<String, Call>,
    /// Deleted calls within their delete delay.
    deleted: HashMap<String, DeletedCall>,
    /// Deleted calls by (expiry, deletion number): the sweep takes the due ones from the front.
    expiries: BTreeMap<(Instant, u64), String>,
    deletions: u64,
    epoch: Instant,
    epoch_system: SystemTime,
    managed_sessions: u64,
    timeout_sessions: u64,
    deleted_sessions: u64,
    finished_rtp: Counters,
    finished_rtcp: Counters,
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unix_micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The party's endpoint for one m= line: the SDP address, or with `SIP-source-address` the
/// SIP message's source address with the SDP port (ng-protocol.md §3).
fn endpoints(
    media: &MediaDescription,
    request: &OfferAnswer<'_>,
) -> (Option<SocketAddr>, Option<SocketAddr>) {
    if media.port == 0 {
        return (None, None);
    }
    let address = match (request.sip_source_address, request.received_from) {
        (true, Some((_, source))) => Some(source),
        _ => media.connection,
    }
    .filter(|a| !a.is_unspecified());
    let Some(address) = address else {
        return (None, None);
    };
    let rtcp_port = media.rtcp_port.unwrap_or(media.port.saturating_add(1));
    (
        Some(SocketAddr::new(address, media.port)),
        Some(SocketAddr::new(address, rtcp_port)),
    )
}

impl Controller {
    /// A controller with its port allocator and data-plane thread.
    ///
    /// # Errors
    /// When the data-plane thread cannot be started.
    pub fn new(config: MediaConfig, epoch: Instant) -> std::io::Result<Self> {
        let ports = PortAllocator::new(
            config.media_bind_address,
            config.port_min,
            config.port_max,
            config.tos,
        );
        let data = DataPlane::spawn(
            config.io_mode,
            config.poll_coalesce,
            epoch,
            ports.released_ports(),
            crate::dataplane::SteeredRange {
                address: config.media_bind_address,
                port_min: config.port_min,
                port_max: config.port_max,
                tos: config.tos,
                kernel_forwarding: config.kernel_forwarding,
            },
        )?;
        Ok(Controller {
            config,
            resources: Resources {
                ports,
                data,
                next_leg_id: 0,
            },
            calls: HashMap::new(),
            deleted: HashMap::new(),
            expiries: BTreeMap::new(),
            deletions: 0,
            epoch,
            epoch_system: SystemTime::now(),
            managed_sessions: 0,
            timeout_sessions: 0,
            deleted_sessions: 0,
            finished_rtp: Counters::default(),
            finished_rtcp: Counters::default(),
        })
    }

    /// Answers one command.
    pub fn handle(&mut self, command: NgCommand<'_>) -> Reply {
        self.handle_at(command, Instant::now())
    }

    /// Answers one command arriving at `now`.
    pub fn handle_at(&mut self, command: NgCommand<'_>, now: Instant) -> Reply {
        match command {
            NgCommand::Ping => Reply::Pong,
            NgCommand::Offer(request) => self.offer_answer(&request, false, now),
            NgCommand::Answer(request) => self.offer_answer(&request, true, now),
            NgCommand::Delete(request) => self.delete(&request, now),
            NgCommand::Query(request) => self.query(&request),
            // Deleted calls within their delay too, as rtpengine lists them.
            NgCommand::List { limit } => Reply::ok(ReplyBody::Calls(
                self.calls
                    .keys()
                    .chain(self.deleted.keys())
                    .take(limit)
                    .cloned()
                    .collect(),
            )),
            NgCommand::Statistics => Reply::ok(ReplyBody::Statistics(self.statistics())),
        }
    }

    fn offer_answer(&mut self, request: &OfferAnswer<'_>, is_answer: bool, now: Instant) -> Reply {
        let session = match sdp::parse(&request.sdp) {
            Ok(session) => session,
            Err(error) => return Reply::error(error),
        };
        let call_id = request.call_id.as_ref();
        // A deleted call's ports are gone, so an answer cannot complete it (the offerer was
        // told those ports); an offer starts the call afresh.
        if is_answer && !self.calls.contains_key(call_id) {
            return Reply::error(UNKNOWN_CALL);
        }
        if !is_answer {
            self.take_deleted(call_id);
        }
        let is_new = !self.calls.contains_key(call_id);
        let Controller {
            calls, resources, ..
        } = self;
        let call = calls
            .entry(call_id.to_owned())
            .or_insert_with(|| Call::new(now));
        let Some((sender, recipient)) = resolve_parties(call, request, is_answer) else {
            if is_new {
                calls.remove(call_id);
            }
            return Reply::error("Invalid dialogue association");
        };
        // Every m= line needs a stream: one port pair facing each party.
        let mut failure = None;
        while call.parties[sender].medias.len() < session.media.len() {
            match resources.new_stream() {
                Ok((sender_side, recipient_side)) => {
                    call.parties[sender].medias.push(sender_side);
                    call.parties[recipient].medias.push(recipient_side);
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        if let Some(error) = failure {
            if is_new && let Some(call) = calls.remove(call_id) {
                // Never advertised: no late packets to keep out.
                resources.release_call(&call, Duration::ZERO);
            }
            return Reply::error(error);
        }
        for (index, media) in session.media.iter().enumerate() {
            let (rtp, rtcp) = endpoints(media, request);
            let side = &mut call.parties[sender].medias[index];
            side.media_type.clone_from(&media.media_type);
            side.protocol.clone_from(&media.protocol);
            side.advertised_rtp = rtp;
            side.advertised_rtcp = rtcp;
            resources.data.send(DataCommand::SetDestination {
                id: side.rtp.id,
                destination: rtp,
            });
            resources.data.send(DataCommand::SetDestination {
                id: side.rtcp.id,
                destination: rtcp,
            });
            let peer_side = &mut call.parties[recipient].medias[index];
            if peer_side.media_type.is_empty() {
                peer_side.media_type.clone_from(&media.media_type);
                peer_side.protocol.clone_from(&media.protocol);
            }
        }
        let party = &mut call.parties[sender];
        if let Some(label) = &request.label {
            party.label = Some(label.to_string());
        }
        if let Some(branch) = &request.via_branch {
            party.via_branch = Some(branch.to_string());
        }
        call.last_signal = now;
        call.last_signal_system = SystemTime::now();
        if let Some(delay) = request.delete_delay {
            call.delete_delay = Some(Duration::from_secs(u64::from(delay)));
        }
        let options = RewriteOptions {
            relay_address: self.config.advertised_address,
            media_ports: call.parties[recipient]
                .medias
                .iter()
                .map(|m| m.rtp.port)
                .collect(),
            replace_origin: request.replace.origin,
            remove_ice: request.ice == IceMode::Remove,
        };
        if is_new {
            self.managed_sessions += 1;
        }
        match sdp::rewrite(&request.sdp, &options) {
            Ok(sdp) => Reply::ok(ReplyBody::Sdp(sdp)),
            Err(error) => Reply::error(error),
        }
    }

    fn delete(&mut self, request: &Delete<'_>, now: Instant) -> Reply {
        let call_id = request.call_id.as_ref();
        let Some(call) = self.find(call_id) else {
            return if request.fatal {
                Reply::error(UNKNOWN_CALL)
            } else {
                Reply::Ok {
                    warning: Some(DELETE_WARNING.into()),
                    body: ReplyBody::Empty,
                }
            };
        };
        // In a two-party call, removing either party ends the call (ng-protocol.md §5); an
        // unknown tag deletes nothing.
        let tag = match (&request.to_tag, request.honour_to_tag) {
            (Some(to_tag), true) => Some(to_tag),
            _ => request.from_tag.as_ref(),
        };
        if let Some(tag) = tag
            && call.party_by_tag(tag).is_none()
        {
            return if request.fatal {
                Reply::error(DELETE_WARNING)
            } else {
                Reply::Ok {
                    warning: Some(DELETE_WARNING.into()),
                    body: ReplyBody::Empty,
                }
            };
        }
        let delay = request
            .delete_delay
            .map(|s| Duration::from_secs(u64::from(s)))
            .or(call.delete_delay)
            .unwrap_or(self.config.delete_delay);
        // A day is the most a delete waits, so no request can overflow the clock.
        let delay = delay.min(MAX_DELETE_DELAY);
        let body = if request.fast {
            ReplyBody::Empty
        } else {
            ReplyBody::Call(Box::new(self.report(call, None)))
        };
        let call = match self.calls.remove(call_id) {
            Some(call) => {
                self.end_media(&call, delay);
                self.deleted_sessions += 1;
                call
            }
            // Deleted before: its delay starts again (or ends, for zero).
            None => match self.take_deleted(call_id) {
                Some(call) => call,
                None => return Reply::ok(body),
            },
        };
        if !delay.is_zero() {
            self.remember_deleted(call_id, call, now + delay);
        }
        Reply::ok(body)
    }

    /// A call with media or one deleted within its delay.
    fn find(&self, call_id: &str) -> Option<&Call> {
        self.calls
            .get(call_id)
            .or_else(|| self.deleted.get(call_id).map(|deleted| &deleted.call))
    }

    /// Ends a call's media: its ports go back to the pool (late packets of its peers kept from
    /// the ports' next owners for `quarantine`) and its counters into the finished totals.
    fn end_media(&mut self, call: &Call, quarantine: Duration) {
        for media in call.parties.iter().flat_map(|p| p.medias.iter()) {
            self.finished_rtp.add(media.rtp.shared.counters());
            self.finished_rtcp.add(media.rtcp.shared.counters());
        }
        self.resources.release_call(call, quarantine);
    }

    /// Keeps a deleted call for queries until `expires`.
    fn remember_deleted(&mut self, call_id: &str, call: Call, expires: Instant) {
        self.deletions += 1;
        let expiry = (expires, self.deletions);
        self.expiries.insert(expiry, call_id.to_owned());
        self.deleted
            .insert(call_id.to_owned(), DeletedCall { call, expiry });
        while self.deleted.len() > MAX_DELETED_CALLS
            && let Some((_, oldest)) = self.expiries.pop_first()
        {
            self.deleted.remove(&oldest);
        }
    }

    fn take_deleted(&mut self, call_id: &str) -> Option<Call> {
        let deleted = self.deleted.remove(call_id)?;
        self.expiries.remove(&deleted.expiry);
        Some(deleted.call)
    }

    fn query(&self, request: &Query<'_>) -> Reply {
        let Some(call) = self.find(request.call_id.as_ref()) else {
            return Reply::error(UNKNOWN_CALL);
        };
        let narrow = request.from_tag.as_deref().or(request.to_tag.as_deref());
        Reply::ok(ReplyBody::Call(Box::new(self.report(call, narrow))))
    }

    fn unix_of(&self, epoch_ms: u64) -> u64 {
        unix_seconds(self.epoch_system + Duration::from_millis(epoch_ms))
    }

    fn report(&self, call: &Call, narrow_to_tag: Option<&str>) -> CallReport {
        let selected: Vec<usize> = match narrow_to_tag.and_then(|t| call.party_by_tag(t)) {
            Some(index) => std::iter::once(index)
                .chain(call.parties[index].peer)
                .collect(),
            None => (0..call.parties.len()).collect(),
        };
        let mut report = CallReport {
            created_us: unix_micros(call.created),
            last_signal: unix_seconds(call.last_signal_system),
            ..CallReport::default()
        };
        let address = self.config.advertised_address;
        for (position, &index) in selected.iter().enumerate() {
            let party = &call.parties[index];
            let stream =
                |leg: &LegHandle, advertised: Option<SocketAddr>, is_rtcp: bool| StreamReport {
                    local_address: address,
                    local_port: leg.port,
                    endpoint: leg.shared.latched().or(advertised),
                    advertised_endpoint: advertised,
                    last_packet: leg.shared.last_packet_ms().map_or(0, |ms| self.unix_of(ms)),
                    is_rtcp,
                    kernelized: leg.shared.kernelized(),
                    stats: leg.shared.counters(),
                };
            let medias = party
                .medias
                .iter()
                .enumerate()
                .map(|(i, media)| {
                    report.totals_rtp.add(media.rtp.shared.counters());
                    report.totals_rtcp.add(media.rtcp.shared.counters());
                    MediaReport {
                        index: u32::try_from(i + 1).unwrap_or(u32::MAX),
                        media_type: media.media_type.clone(),
                        protocol: media.protocol.clone(),
                        streams: vec![
                            stream(&media.rtp, media.advertised_rtp, false),
                            stream(&media.rtcp, media.advertised_rtcp, true),
                        ],
                    }
                })
                .collect();
            report.tags.push(TagReport {
                tag: party
                    .tag
                    .clone()
                    .unwrap_or_else(|| format!("<untagged {position}>")),
                label: party.label.clone(),
                via_branch: party.via_branch.clone(),
                created: unix_seconds(party.created),
                medias,
            });
        }
        report
    }

    fn statistics(&self) -> Statistics {
        let mut rtp = self.finished_rtp;
        let mut rtcp = self.finished_rtcp;
        for call in self.calls.values() {
            for party in &call.parties {
                for media in &party.medias {
                    rtp.add(media.rtp.shared.counters());
                    rtcp.add(media.rtcp.shared.counters());
                }
            }
        }
        let sessions = self.calls.len() as u64;
        Statistics {
            sessions_own: sessions,
            sessions_total: sessions,
            uptime_seconds: self.epoch.elapsed().as_secs(),
            managed_sessions: self.managed_sessions,
            timeout_sessions: self.timeout_sessions,
            deleted_sessions: self.deleted_sessions,
            rtp,
            rtcp,
        }
    }

    /// Ends calls whose media timed out and forgets deleted calls whose delay ran out; returns
    /// the timeout notifications.
    pub fn sweep(&mut self, now: Instant) -> Vec<MediaEvent> {
        while let Some(entry) = self.expiries.first_entry()
            && entry.key().0 <= now
        {
            let call_id = entry.remove();
            self.deleted.remove(&call_id);
        }
        let timeout = self.config.media_timeout;
        let now_ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        let mut timed_out = Vec::new();
        for (call_id, call) in &self.calls {
            let signal_ms = u64::try_from(
                call.last_signal
                    .saturating_duration_since(self.epoch)
                    .as_millis(),
            )
            .unwrap_or(0);
            let last_activity = call
                .legs()
                .filter_map(|leg| leg.shared.last_packet_ms())
                .fold(signal_ms, u64::max);
            let idle = Duration::from_millis(now_ms.saturating_sub(last_activity));
            if idle >= timeout {
                timed_out.push(call_id.clone());
            }
        }
        let mut events = Vec::new();
        for call_id in timed_out {
            // Gone at once, so the proxy's `query` learns the call ended ("Unknown call-id");
            // its phones may come back, so their packets are kept from the ports' next owners.
            if let Some(call) = self.calls.remove(&call_id) {
                self.end_media(&call, self.config.delete_delay);
                self.timeout_sessions += 1;
                tracing::info!(call_id, "media timeout, call ended");
                events.push(MediaEvent::Timeout {
                    tags: call.tags(),
                    call_id,
                });
            }
        }
        events
    }

    /// Port pairs in use (two per media stream).
    #[must_use]
    pub fn port_pairs_in_use(&self) -> usize {
        self.resources.ports.in_use()
    }
}

/// Which party sent this SDP and which receives it. The offerer is always `from-tag`; in an
/// answer the sender is the `to-tag` party (ng-protocol.md §2). Parties are created as needed:
/// the far side of an initial offer has no tag until the answer names it.
fn resolve_parties(
    call: &mut Call,
    request: &OfferAnswer<'_>,
    is_answer: bool,
) -> Option<(usize, usize)> {
    let offerer = match call.party_by_tag(&request.from_tag) {
        Some(index) => index,
        None if is_answer => return None,
        None => call.add_party(Some(&request.from_tag)),
    };
    let other = match request.to_tag.as_deref() {
        Some(to_tag) => match call.party_by_tag(to_tag) {
            Some(index) => index,
            None => match call.parties[offerer].peer {
                // The answer names the far side: tag it (or re-tag it, as a forked 18x does).
                Some(peer) => {
                    call.parties[peer].tag = Some(to_tag.to_owned());
                    peer
                }
                None => call.add_party(Some(to_tag)),
            },
        },
        None => match call.parties[offerer].peer {
            Some(peer) => peer,
            None => call.add_party(None),
        },
    };
    if other == offerer {
        return None;
    }
    call.parties[offerer].peer = Some(other);
    call.parties[other].peer = Some(offerer);
    Some(if is_answer {
        (other, offerer)
    } else {
        (offerer, other)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ng_protocol::{Value, parse_command};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, UdpSocket};

    /// A run of `pairs` free port pairs from `base` up, below the ephemeral range.
    fn free_even_range(mut base: u16, pairs: u16) -> u16 {
        loop {
            if (base..base + pairs * 2)
                .all(|port| UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok())
            {
                return base;
            }
            base += pairs * 2 + 2;
        }
    }

    /// A controller over `pairs` loopback pairs; time is whatever the tests pass in.
    fn controller(base: u16, pairs: u16) -> (Controller, Instant) {
        let base = free_even_range(base, pairs);
        let config = MediaConfig {
            io_mode: crate::IoMode::Batched,
            kernel_forwarding: false,
            ..MediaConfig::loopback(base, base + pairs * 2 - 1)
        };
        let epoch = Instant::now();
        (Controller::new(config, epoch).unwrap(), epoch)
    }

    fn run(controller: &mut Controller, now: Instant, entries: &[(&str, &str)]) -> Reply {
        let request = Value::Dict(
            entries
                .iter()
                .map(|(key, value)| (key.as_bytes().to_vec().into(), Value::string(*value)))
                .collect(),
        );
        controller.handle_at(parse_command(request).unwrap(), now)
    }

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9000 RTP/AVP 0\r\n";

    fn set_up(controller: &mut Controller, now: Instant, call_id: &str) -> Reply {
        let offer = run(
            controller,
            now,
            &[
                ("command", "offer"),
                ("call-id", call_id),
                ("from-tag", "a"),
                ("sdp", SDP),
            ],
        );
        if !matches!(offer, Reply::Ok { .. }) {
            return offer;
        }
        run(
            controller,
            now,
            &[
                ("command", "answer"),
                ("call-id", call_id),
                ("from-tag", "a"),
                ("to-tag", "b"),
                ("sdp", SDP),
            ],
        )
    }

    fn is_ok(reply: &Reply) -> bool {
        matches!(reply, Reply::Ok { warning: None, .. })
    }

    fn query(controller: &mut Controller, now: Instant, call_id: &str) -> Reply {
        run(
            controller,
            now,
            &[("command", "query"), ("call-id", call_id)],
        )
    }

    fn listed(controller: &mut Controller, now: Instant) -> Vec<String> {
        match run(controller, now, &[("command", "list")]) {
            Reply::Ok {
                body: ReplyBody::Calls(calls),
                ..
            } => calls,
            other => panic!("list: {other:?}"),
        }
    }

    #[test]
    fn delete_frees_the_ports_at_once_and_keeps_the_call_for_queries_until_the_delay_ends() {
        // Two streams' worth of pairs: one call at a time.
        let (mut controller, t0) = controller(24_000, 2);
        assert!(is_ok(&set_up(&mut controller, t0, "first")));
        assert_eq!(
            set_up(&mut controller, t0, "second"),
            Reply::error(PortsExhausted)
        );
        let deleted = run(
            &mut controller,
            t0,
            &[("command", "delete"), ("call-id", "first")],
        );
        assert!(
            matches!(&deleted, Reply::Ok { body: ReplyBody::Call(report), .. } if report.tags.len() == 2),
            "{deleted:?}"
        );
        // The default delete delay is 30 s, yet the ports are free now.
        assert!(is_ok(&set_up(&mut controller, t0, "second")));
        assert_eq!(controller.port_pairs_in_use(), 2);
        // The deleted call is still listed and answers queries (and a repeated delete), but
        // is no session.
        let later = t0 + Duration::from_secs(29);
        controller.sweep(later);
        assert!(is_ok(&query(&mut controller, later, "first")));
        assert_eq!(listed(&mut controller, later), ["second", "first"]);
        let statistics = controller.statistics();
        assert_eq!(
            (
                statistics.sessions_own,
                statistics.managed_sessions,
                statistics.deleted_sessions
            ),
            (1, 2, 1)
        );
        // Its ports went to "second": an answer cannot bring it back.
        let answer = run(
            &mut controller,
            later,
            &[
                ("command", "answer"),
                ("call-id", "first"),
                ("from-tag", "a"),
                ("to-tag", "b"),
                ("sdp", SDP),
            ],
        );
        assert_eq!(answer, Reply::error(UNKNOWN_CALL));
        controller.sweep(t0 + Duration::from_secs(30));
        assert_eq!(
            query(&mut controller, later, "first"),
            Reply::error(UNKNOWN_CALL)
        );
        assert_eq!(listed(&mut controller, later), ["second"]);
        let repeated = run(
            &mut controller,
            later,
            &[("command", "delete"), ("call-id", "first")],
        );
        assert!(
            matches!(
                &repeated,
                Reply::Ok {
                    warning: Some(_),
                    ..
                }
            ),
            "{repeated:?}"
        );
    }

    #[test]
    fn a_repeated_delete_restarts_the_delay_and_an_offer_starts_the_call_afresh() {
        let (mut controller, t0) = controller(24_100, 4);
        assert!(is_ok(&set_up(&mut controller, t0, "call")));
        let delete = |controller: &mut Controller, now, delay: &str| {
            run(
                controller,
                now,
                &[
                    ("command", "delete"),
                    ("call-id", "call"),
                    ("delete-delay", delay),
                ],
            )
        };
        assert!(is_ok(&delete(&mut controller, t0, "10")));
        let t5 = t0 + Duration::from_secs(5);
        assert!(is_ok(&delete(&mut controller, t5, "10")));
        controller.sweep(t0 + Duration::from_secs(12));
        assert!(
            is_ok(&query(&mut controller, t5, "call")),
            "kept till t5 + 10 s"
        );
        controller.sweep(t5 + Duration::from_secs(10));
        assert_eq!(
            query(&mut controller, t5, "call"),
            Reply::error(UNKNOWN_CALL)
        );

        // Deleted again, then offered again (a new INVITE with the same Call-ID): a live call
        // with new ports, not the deleted record.
        assert!(is_ok(&set_up(&mut controller, t5, "call")));
        assert!(is_ok(&delete(&mut controller, t5, "10")));
        assert!(is_ok(&set_up(&mut controller, t5, "call")));
        assert_eq!(listed(&mut controller, t5), ["call"]);
        // Past the deleted record's delay, within the media timeout.
        assert_eq!(controller.sweep(t5 + Duration::from_secs(20)), []);
        assert!(
            is_ok(&query(&mut controller, t5, "call")),
            "live, not expired"
        );
        // A zero delay forgets the call at once.
        assert!(is_ok(&delete(&mut controller, t5, "0")));
        assert_eq!(
            query(&mut controller, t5, "call"),
            Reply::error(UNKNOWN_CALL)
        );
        assert_eq!(controller.statistics().deleted_sessions, 3);
    }

    #[test]
    fn a_timed_out_call_is_gone_at_once_so_the_proxy_learns_of_it() {
        let (mut controller, t0) = controller(24_200, 2);
        assert!(is_ok(&set_up(&mut controller, t0, "silent")));
        let timeout = controller.config.media_timeout;
        assert_eq!(
            controller.sweep(t0 + timeout - Duration::from_millis(1)),
            []
        );
        assert_eq!(
            controller.sweep(t0 + timeout),
            [MediaEvent::Timeout {
                call_id: "silent".into(),
                tags: vec!["a".into(), "b".into()],
            }]
        );
        assert_eq!(
            query(&mut controller, t0, "silent"),
            Reply::error(UNKNOWN_CALL)
        );
        // Its ports are free for the next call.
        assert!(is_ok(&set_up(&mut controller, t0 + timeout, "next")));
    }

    #[test]
    fn deleted_calls_kept_for_queries_are_bounded_the_soonest_due_going_first() {
        let (mut controller, t0) = controller(24_300, 1);
        // Expiries out of order: call i expires at t0 + (i * 7 mod 1000) s.
        for i in 0..=MAX_DELETED_CALLS {
            let expires = t0 + Duration::from_secs((i as u64 * 7) % 1000 + 1);
            controller.remember_deleted(&format!("call-{i}"), Call::new(t0), expires);
        }
        assert_eq!(controller.deleted.len(), MAX_DELETED_CALLS);
        assert_eq!(controller.expiries.len(), MAX_DELETED_CALLS);
        // The one evicted expired soonest (t0 + 1 s: i = 0), the newest is kept.
        assert!(controller.find("call-0").is_none());
        assert!(
            controller
                .find(&format!("call-{MAX_DELETED_CALLS}"))
                .is_some()
        );
        controller.sweep(t0 + Duration::from_secs(1000));
        assert!(controller.deleted.is_empty() && controller.expiries.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Step {
        Offer(usize),
        Answer(usize),
        /// Delete with the default delay (30 s) or none.
        Delete(usize, bool),
        /// Let time pass: past every delete delay.
        Sweep,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        let call = 0_usize..3;
        proptest::collection::vec(
            prop_oneof![
                call.clone().prop_map(Step::Offer),
                call.clone().prop_map(Step::Answer),
                (call, any::<bool>()).prop_map(|(call, delay)| Step::Delete(call, delay)),
                Just(Step::Sweep),
            ],
            1..30,
        )
    }

    /// The relay port an offer or answer reply's SDP names.
    fn sdp_port(reply: &Reply) -> Option<u16> {
        match reply {
            Reply::Ok {
                body: ReplyBody::Sdp(body),
                ..
            } => Some(sdp::parse(body).ok()?.media.first()?.port),
            _ => None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the order of offers, answers, deletes (with or without delay) and the
        /// passing of time, no relay port is handed to two calls with media, and an offer is
        /// refused for lack of ports only when calls with media hold them all.
        #[test]
        fn no_port_serves_two_live_calls(steps in steps()) {
            // Two calls' worth of pairs for three Call-IDs.
            let (mut controller, mut now) = controller(24_400, 4);
            let mut live: HashMap<usize, Vec<u16>> = HashMap::new();
            for step in steps {
                match step {
                    Step::Offer(call) => {
                        let reply = run(&mut controller, now, &[
                            ("command", "offer"),
                            ("call-id", &format!("call-{call}")),
                            ("from-tag", "a"),
                            ("sdp", SDP),
                        ]);
                        match sdp_port(&reply) {
                            Some(port) => {
                                let ports = live.entry(call).or_default();
                                if ports.is_empty() {
                                    ports.push(port);
                                } else {
                                    prop_assert_eq!(ports[0], port, "a re-offer keeps its port");
                                }
                            }
                            None => {
                                prop_assert_eq!(&reply, &Reply::error(PortsExhausted));
                                prop_assert!(!live.contains_key(&call));
                                prop_assert_eq!(live.len(), 2, "refused with a free pair");
                            }
                        }
                    }
                    Step::Answer(call) => {
                        let reply = run(&mut controller, now, &[
                            ("command", "answer"),
                            ("call-id", &format!("call-{call}")),
                            ("from-tag", "a"),
                            ("to-tag", "b"),
                            ("sdp", SDP),
                        ]);
                        match (sdp_port(&reply), live.get_mut(&call)) {
                            (Some(port), Some(ports)) => {
                                if ports.len() == 1 {
                                    ports.push(port);
                                } else {
                                    prop_assert_eq!(ports[1], port, "a re-answer keeps its port");
                                }
                            }
                            (None, None) => prop_assert_eq!(&reply, &Reply::error(UNKNOWN_CALL)),
                            (port, ports) => prop_assert!(false, "answer {:?} for {:?}", port, ports),
                        }
                    }
                    Step::Delete(call, delay) => {
                        let call_id = format!("call-{call}");
                        let mut request = vec![("command", "delete"), ("call-id", call_id.as_str())];
                        if !delay {
                            request.push(("delete-delay", "0"));
                        }
                        run(&mut controller, now, &request);
                        live.remove(&call);
                    }
                    Step::Sweep => {
                        now += Duration::from_secs(31);
                        // Calls with media for longer than the media timeout end: signal them.
                        for call in live.keys() {
                            controller.calls.get_mut(&format!("call-{call}")).unwrap().last_signal = now;
                        }
                        prop_assert_eq!(controller.sweep(now), []);
                    }
                }
                let mut ports: Vec<u16> = live.values().flatten().copied().collect();
                let count = ports.len();
                ports.sort_unstable();
                ports.dedup();
                prop_assert_eq!(ports.len(), count, "a port serves two calls: {:?}", live);
                let listed_live = controller.calls.len();
                prop_assert_eq!(listed_live, live.len());
            }
        }
    }
}
