//! The call model and the ng command handlers.
//!
//! A call (by Call-ID) has parties (rtpengine's monologues, by SIP tag); each party has one
//! media side per m= line, and each side owns a port pair facing that party. A packet from A
//! arrives on the side facing A and leaves through the partner side facing B, so the SDP sent
//! to B advertises B's side and the SDP sent back to A advertises A's side.

use std::collections::HashMap;
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
    delete_at: Option<Instant>,
    delete_delay: Option<Duration>,
}

impl Call {
    fn new(now: Instant) -> Self {
        Call {
            created: SystemTime::now(),
            last_signal: now,
            last_signal_system: SystemTime::now(),
            parties: Vec::new(),
            delete_at: None,
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

    fn release_call(&mut self, call: &Call) {
        self.data
            .send(DataCommand::Remove(call.legs().map(|l| l.id).collect()));
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
    calls: HashMap<String, Call>,
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
        match command {
            NgCommand::Ping => Reply::Pong,
            NgCommand::Offer(request) => self.offer_answer(&request, false),
            NgCommand::Answer(request) => self.offer_answer(&request, true),
            NgCommand::Delete(request) => self.delete(&request),
            NgCommand::Query(request) => self.query(&request),
            NgCommand::List { limit } => Reply::ok(ReplyBody::Calls(
                self.calls.keys().take(limit).cloned().collect(),
            )),
            NgCommand::Statistics => Reply::ok(ReplyBody::Statistics(self.statistics())),
        }
    }

    fn offer_answer(&mut self, request: &OfferAnswer<'_>, is_answer: bool) -> Reply {
        let session = match sdp::parse(&request.sdp) {
            Ok(session) => session,
            Err(error) => return Reply::error(error),
        };
        let call_id = request.call_id.as_ref();
        if is_answer && !self.calls.contains_key(call_id) {
            return Reply::error(UNKNOWN_CALL);
        }
        let now = Instant::now();
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
                resources.release_call(&call);
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
        call.delete_at = None;
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

    fn delete(&mut self, request: &Delete<'_>) -> Reply {
        let call_id = request.call_id.as_ref();
        let Some(call) = self.calls.get_mut(call_id) else {
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
        call.delete_at = Some(Instant::now() + delay);
        let body = if request.fast {
            ReplyBody::Empty
        } else {
            ReplyBody::Call(Box::new(self.report(call_id, None)))
        };
        if delay.is_zero() {
            self.remove_call(call_id);
            self.deleted_sessions += 1;
        }
        Reply::ok(body)
    }

    fn query(&self, request: &Query<'_>) -> Reply {
        if !self.calls.contains_key(request.call_id.as_ref()) {
            return Reply::error(UNKNOWN_CALL);
        }
        let narrow = request.from_tag.as_deref().or(request.to_tag.as_deref());
        Reply::ok(ReplyBody::Call(Box::new(
            self.report(&request.call_id, narrow),
        )))
    }

    fn unix_of(&self, epoch_ms: u64) -> u64 {
        unix_seconds(self.epoch_system + Duration::from_millis(epoch_ms))
    }

    fn report(&self, call_id: &str, narrow_to_tag: Option<&str>) -> CallReport {
        let Some(call) = self.calls.get(call_id) else {
            return CallReport::default();
        };
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

    fn remove_call(&mut self, call_id: &str) -> Option<Call> {
        let call = self.calls.remove(call_id)?;
        for leg in call.parties.iter().flat_map(|p| p.medias.iter()) {
            self.finished_rtp.add(leg.rtp.shared.counters());
            self.finished_rtcp.add(leg.rtcp.shared.counters());
        }
        self.resources.release_call(&call);
        Some(call)
    }

    /// Ends calls whose delete delay ran out or whose media timed out; returns the timeout
    /// notifications.
    pub fn sweep(&mut self, now: Instant) -> Vec<MediaEvent> {
        let timeout = self.config.media_timeout;
        let now_ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        let mut deleted = Vec::new();
        let mut timed_out = Vec::new();
        for (call_id, call) in &self.calls {
            if call.delete_at.is_some_and(|at| at <= now) {
                deleted.push(call_id.clone());
                continue;
            }
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
            if call.delete_at.is_none() && idle >= timeout {
                timed_out.push(call_id.clone());
            }
        }
        for call_id in deleted {
            self.remove_call(&call_id);
            self.deleted_sessions += 1;
        }
        let mut events = Vec::new();
        for call_id in timed_out {
            if let Some(call) = self.remove_call(&call_id) {
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
