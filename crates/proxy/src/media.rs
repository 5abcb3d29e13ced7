//! The proxy's client of the rtpengine "ng" control protocol: how the router puts a media relay
//! (voxide's own `voxide media`, or Debian's rtpengine-daemon) into every call.
//!
//! One UDP socket per proxy; every request carries a cookie made of a per-start random prefix
//! and a counter (two proxies never share cookies, ng-protocol.md §6), and a reply is matched to
//! its request by that cookie alone. A request without a reply is resent byte for byte after
//! `timeout` up to `retries` times, as Kamailio's module does; once a relay has not answered at
//! all it is treated as down for `disable_for`, so the router does not wait on it call after
//! call (Kamailio's `rtpengine_disable_tout`).
//!
//! The flags follow Kamailio's `rtpengine_manage("replace-origin replace-session-connection
//! ICE=remove trust-address")` for plain RTP/AVP, plus `received-from` (the phone's real
//! source) and `via-branch` (the caller's Via branch, the same for every fork of one INVITE,
//! so all branches and their replies name one far-side party; an answer with a new To tag
//! re-tags it, ng-protocol.md §6).
//!
//! This module is the mechanism only (socket, cookies, resends, down-marking); what goes into
//! a request and what a reply means is `ng-protocol`'s client side ([`NgCommand::to_value`],
//! [`Reply::decode`]), next to the relay's own parser and encoder.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ng_protocol::{
    AddressFamily, CallReport, Delete, IceMode, NgCommand, OfferAnswer, Query, Replace, Reply,
    ReplyBody, ReplyError, TagReport, Value, bencode,
};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Largest ng reply read (one UDP datagram).
const MAX_DATAGRAM: usize = 65_535;
/// The error text rtpengine (and voxide's relay) answers for a call it does not know.
pub const UNKNOWN_CALL: &str = "Unknown call-id";

/// How the client talks to its relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaRelayConfig {
    /// The relay's ng address (C5: 127.0.0.1:12222).
    pub address: SocketAddr,
    /// Wait for a reply before resending.
    pub timeout: Duration,
    /// Resends after the first attempt.
    pub retries: u32,
    /// How long a relay that did not answer is treated as down.
    pub disable_for: Duration,
}

impl MediaRelayConfig {
    /// Kamailio-like timing towards `address`, shortened for a relay on the same site:
    /// 500 ms per attempt, 2 resends, 10 s marked down.
    #[must_use]
    pub fn new(address: SocketAddr) -> Self {
        MediaRelayConfig {
            address,
            timeout: Duration::from_millis(500),
            retries: 2,
            disable_for: Duration::from_secs(10),
        }
    }
}

/// Why an ng request failed.
#[derive(Debug, thiserror::Error)]
pub enum NgClientError {
    #[error("media relay {relay} did not answer {attempts} attempts")]
    Timeout { relay: SocketAddr, attempts: u32 },
    #[error("media relay {relay} is treated as down after an unanswered request")]
    Down { relay: SocketAddr },
    #[error("media relay refused the request: {0}")]
    Refused(String),
    #[error("media relay sent an unusable reply: {0}")]
    BadReply(String),
    #[error("cannot talk to the media relay: {0}")]
    Io(#[from] io::Error),
}

impl NgClientError {
    /// Whether the relay said it does not know the call (it ended it, e.g. for lack of media).
    #[must_use]
    pub fn is_unknown_call(&self) -> bool {
        matches!(self, NgClientError::Refused(reason) if reason.eq_ignore_ascii_case(UNKNOWN_CALL))
    }
}

/// One side's SDP for `offer` or `answer`, with the SIP facts the relay needs.
#[derive(Debug, Clone, Copy)]
pub struct SdpExchange<'a> {
    pub call_id: &'a str,
    /// The offerer's tag (in an `answer` too: tags keep the offer's orientation).
    pub from_tag: &'a str,
    pub to_tag: Option<&'a str>,
    pub via_branch: Option<&'a str>,
    /// Source address of the SIP message carrying the SDP.
    pub received_from: Option<IpAddr>,
    /// `caller` or `callee`: which party sends this SDP.
    pub label: Option<&'a str>,
    pub sdp: &'a [u8],
}

/// Counters of one call from `query`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayTotals {
    /// RTP packets the relay received for the call (all parties).
    pub rtp_packets: u64,
    pub rtcp_packets: u64,
    /// Per party (SIP tag): RTP packets received from it, and the address it was latched to
    /// (or its SDP endpoint before any packet).
    pub parties: Vec<PartyCounters>,
}

/// One party of a `query` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartyCounters {
    pub tag: String,
    pub label: Option<String>,
    pub rtp_packets: u64,
    /// RTP packets from it that the relay refused (e.g. from a foreign source once latched).
    pub rtp_errors: u64,
    pub endpoint: Option<SocketAddr>,
    /// The relay's RTP port facing the party (where it sends its media).
    pub local_port: Option<u16>,
    /// The relay forwards the party's RTP in the kernel (rtpengine's `kernelized` flag).
    pub rtp_kernelized: bool,
}

struct Shared {
    socket: UdpSocket,
    pending: Mutex<HashMap<Vec<u8>, oneshot::Sender<Vec<u8>>>>,
}

struct Inner {
    config: MediaRelayConfig,
    shared: Arc<Shared>,
    cookie_prefix: String,
    next_cookie: AtomicU64,
    down_until: Mutex<Option<Instant>>,
    receiver: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// A cheap-to-clone handle on the ng socket.
#[derive(Clone)]
pub struct MediaRelayClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MediaRelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaRelayClient")
            .field("relay", &self.inner.config.address)
            .finish_non_exhaustive()
    }
}

impl From<&CallReport> for RelayTotals {
    /// Per party, the first stream of each medium (the relay lists RTP before RTCP).
    fn from(report: &CallReport) -> Self {
        RelayTotals {
            rtp_packets: report.totals_rtp.packets,
            rtcp_packets: report.totals_rtcp.packets,
            parties: report.tags.iter().map(PartyCounters::from).collect(),
        }
    }
}

impl From<&TagReport> for PartyCounters {
    fn from(tag: &TagReport) -> Self {
        let mut party = PartyCounters {
            tag: tag.tag.clone(),
            label: tag.label.clone(),
            ..PartyCounters::default()
        };
        for rtp in tag.medias.iter().filter_map(|media| media.streams.first()) {
            party.rtp_packets += rtp.stats.packets;
            party.rtp_errors += rtp.stats.errors;
            party.rtp_kernelized |= rtp.kernelized;
            // Port 0 is how a reply without `local port` reads.
            if party.local_port.is_none() && rtp.local_port != 0 {
                party.local_port = Some(rtp.local_port);
            }
            if party.endpoint.is_none() {
                party.endpoint = rtp.endpoint;
            }
        }
        party
    }
}

/// What a decoded reply means to the router: a `result: error` is a refusal, as is a result
/// the client does not know; anything else unusable is a bad reply.
fn accepted(reply: Result<Reply, ReplyError>) -> Result<Reply, NgClientError> {
    match reply {
        Ok(Reply::Error(reason)) => Err(NgClientError::Refused(reason)),
        Ok(reply) => Ok(reply),
        Err(error @ ReplyError::UnexpectedResult(_)) => {
            Err(NgClientError::Refused(error.to_string()))
        }
        Err(error) => Err(NgClientError::BadReply(error.to_string())),
    }
}

impl MediaRelayClient {
    /// Binds an ephemeral UDP socket of the relay's address family and starts the task that
    /// hands replies to their requests.
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn connect(config: MediaRelayConfig) -> io::Result<Self> {
        let local: SocketAddr = if config.address.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        let shared = Arc::new(Shared {
            socket,
            pending: Mutex::new(HashMap::new()),
        });
        let receiver = tokio::spawn(receive_replies(Arc::clone(&shared), config.address));
        Ok(MediaRelayClient {
            inner: Arc::new(Inner {
                config,
                shared,
                cookie_prefix: hex::encode(rand::random::<[u8; 6]>()),
                next_cookie: AtomicU64::new(1),
                down_until: Mutex::new(None),
                receiver,
            }),
        })
    }

    /// The relay's ng address.
    #[must_use]
    pub fn relay(&self) -> SocketAddr {
        self.inner.config.address
    }

    /// Sends one request dictionary and waits for its reply; `result: error` becomes
    /// [`NgClientError::Refused`] with the relay's `error-reason`.
    ///
    /// # Errors
    /// [`NgClientError`].
    pub async fn request(&self, message: &Value<'_>) -> Result<Value<'static>, NgClientError> {
        let payload = self.exchange(message, true).await?;
        let reply = bencode::decode(&payload)
            .map_err(|error| NgClientError::BadReply(error.to_string()))?
            .into_owned();
        accepted(Reply::envelope(&reply))?;
        Ok(reply)
    }

    /// Sends `command` and decodes its reply.
    async fn command(
        &self,
        command: &NgCommand<'_>,
        mark_down: bool,
    ) -> Result<Reply, NgClientError> {
        let payload = self.exchange(&command.to_value(), mark_down).await?;
        accepted(Reply::decode(&payload, command))
    }

    /// Sends `message` under a fresh cookie, resending it until its reply's payload comes;
    /// `mark_down` says whether silence marks the relay down.
    async fn exchange(
        &self,
        message: &Value<'_>,
        mark_down: bool,
    ) -> Result<Vec<u8>, NgClientError> {
        let inner = &self.inner;
        let relay = inner.config.address;
        if let Ok(down) = inner.down_until.lock()
            && down.is_some_and(|until| Instant::now() < until)
        {
            return Err(NgClientError::Down { relay });
        }
        let cookie = format!(
            "{}_{}",
            inner.cookie_prefix,
            inner.next_cookie.fetch_add(1, Ordering::Relaxed)
        );
        let datagram = ng_protocol::frame_request(cookie.as_bytes(), message);
        let (sender, mut reply) = oneshot::channel();
        lock(&inner.shared.pending).insert(cookie.clone().into_bytes(), sender);
        let _forget = Forget {
            shared: &inner.shared,
            cookie: cookie.as_bytes(),
        };
        let attempts = inner.config.retries + 1;
        for _ in 0..attempts {
            inner.shared.socket.send_to(&datagram, relay).await?;
            match tokio::time::timeout(inner.config.timeout, &mut reply).await {
                Ok(Ok(payload)) => {
                    if let Ok(mut down) = inner.down_until.lock() {
                        *down = None;
                    }
                    return Ok(payload);
                }
                Ok(Err(_)) => return Err(NgClientError::BadReply("receiver stopped".into())),
                Err(_) => {}
            }
        }
        if mark_down && let Ok(mut down) = inner.down_until.lock() {
            *down = Some(Instant::now() + inner.config.disable_for);
        }
        tracing::warn!(%relay, attempts, "media relay does not answer");
        Err(NgClientError::Timeout { relay, attempts })
    }

    /// `ping` → `pong`. A relay that does not answer a ping is not marked down (a proxy
    /// pings at start-up, maybe before its relay runs).
    ///
    /// # Errors
    /// [`NgClientError`], also when the answer is not `pong`.
    pub async fn ping(&self) -> Result<(), NgClientError> {
        match self.command(&NgCommand::Ping, false).await? {
            Reply::Pong => Ok(()),
            other => Err(NgClientError::BadReply(format!(
                "ping answered with {other:?}"
            ))),
        }
    }

    /// `offer` (`answer` when `is_answer`): returns the SDP to pass on.
    ///
    /// # Errors
    /// [`NgClientError`]; a reply without `sdp` is [`NgClientError::BadReply`].
    pub async fn offer_answer(
        &self,
        exchange: &SdpExchange<'_>,
        is_answer: bool,
    ) -> Result<Vec<u8>, NgClientError> {
        let exchange = OfferAnswer {
            call_id: Cow::Borrowed(exchange.call_id),
            from_tag: Cow::Borrowed(exchange.from_tag),
            to_tag: exchange.to_tag.map(Cow::Borrowed),
            via_branch: exchange.via_branch.map(Cow::Borrowed),
            label: exchange.label.map(Cow::Borrowed),
            sdp: Cow::Borrowed(exchange.sdp),
            replace: Replace {
                origin: true,
                session_connection: true,
            },
            ice: IceMode::Remove,
            direction: Vec::new(),
            received_from: exchange
                .received_from
                .map(|source| (AddressFamily::of(source), source)),
            trust_address: true,
            sip_source_address: false,
            transport_protocol: None,
            delete_delay: None,
            flags: Vec::new(),
        };
        let command = if is_answer {
            NgCommand::Answer(exchange)
        } else {
            NgCommand::Offer(exchange)
        };
        match self.command(&command, true).await? {
            Reply::Ok {
                body: ReplyBody::Sdp(sdp),
                ..
            } => Ok(sdp),
            _ => Err(NgClientError::BadReply(format!(
                "{} reply has no sdp",
                command.name()
            ))),
        }
    }

    /// `delete` of the whole call (no tags: every party goes).
    ///
    /// # Errors
    /// [`NgClientError`]. An unknown call is no error (rtpengine answers `ok` with a warning).
    pub async fn delete(&self, call_id: &str) -> Result<(), NgClientError> {
        let command = NgCommand::Delete(Delete::call(call_id));
        self.command(&command, true).await.map(drop)
    }

    /// `query`: the call's packet totals. A call the relay has ended is
    /// [`NgClientError::Refused`] with [`UNKNOWN_CALL`] (see [`NgClientError::is_unknown_call`]).
    ///
    /// # Errors
    /// [`NgClientError`].
    pub async fn query(&self, call_id: &str) -> Result<RelayTotals, NgClientError> {
        let command = NgCommand::Query(Query {
            call_id: Cow::Borrowed(call_id),
            from_tag: None,
            to_tag: None,
        });
        match self.command(&command, true).await? {
            Reply::Ok {
                body: ReplyBody::Call(report),
                ..
            } => Ok(RelayTotals::from(&*report)),
            _ => Ok(RelayTotals::default()),
        }
    }

    /// `list`: the Call-IDs the relay holds (at most `limit`).
    ///
    /// # Errors
    /// [`NgClientError`].
    pub async fn list(&self, limit: u32) -> Result<Vec<String>, NgClientError> {
        let command = NgCommand::List {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        };
        match self.command(&command, true).await? {
            Reply::Ok {
                body: ReplyBody::Calls(calls),
                ..
            } => Ok(calls),
            _ => Ok(Vec::new()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes a request's entry however the request ends (reply, timeout, cancelled future).
struct Forget<'a> {
    shared: &'a Shared,
    cookie: &'a [u8],
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(self.cookie);
    }
}

/// Reads replies and hands each to the request with its cookie; anything else (a stale reply
/// to a request that gave up, a datagram from another address) is dropped.
async fn receive_replies(shared: Arc<Shared>, relay: SocketAddr) {
    let mut buffer = vec![0_u8; MAX_DATAGRAM];
    loop {
        let (len, from) = match shared.socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                // ICMP port unreachable from a relay that is down surfaces here: keep reading.
                tracing::debug!(%error, "ng client receive error");
                continue;
            }
        };
        if from != relay {
            tracing::debug!(%from, "ng reply from an unexpected address dropped");
            continue;
        }
        let Ok(message) = ng_protocol::split_message(&buffer[..len]) else {
            continue;
        };
        let waiter = lock(&shared.pending).remove(message.cookie);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(message.payload.to_vec());
            }
            None => tracing::debug!("ng reply with an unknown cookie dropped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fake_relay() -> (UdpSocket, MediaRelayClient) {
        let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let config = MediaRelayConfig {
            timeout: Duration::from_millis(100),
            retries: 2,
            disable_for: Duration::from_millis(300),
            ..MediaRelayConfig::new(relay.local_addr().unwrap())
        };
        let client = MediaRelayClient::connect(config).await.unwrap();
        (relay, client)
    }

    async fn receive(relay: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buffer = vec![0; 65_535];
        let (len, from) =
            tokio::time::timeout(Duration::from_secs(2), relay.recv_from(&mut buffer))
                .await
                .expect("a request")
                .unwrap();
        buffer.truncate(len);
        (buffer, from)
    }

    fn cookie_of(datagram: &[u8]) -> Vec<u8> {
        ng_protocol::split_message(datagram)
            .unwrap()
            .cookie
            .to_vec()
    }

    fn framed(cookie: &[u8], payload: &[u8]) -> Vec<u8> {
        [cookie, b" ", payload].concat()
    }

    #[tokio::test]
    async fn a_lost_request_is_resent_with_the_same_bytes() {
        let (relay, client) = fake_relay().await;
        let ping = tokio::spawn({
            let client = client.clone();
            async move { client.ping().await }
        });
        let (first, _) = receive(&relay).await;
        // Not answered: the client must resend the very same datagram.
        let (second, from) = receive(&relay).await;
        assert_eq!(first, second);
        assert!(first.ends_with(b" d7:command4:pinge"), "{first:?}");
        relay
            .send_to(&framed(&cookie_of(&second), b"d6:result4:ponge"), from)
            .await
            .unwrap();
        ping.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn replies_are_matched_by_cookie_not_by_order() {
        let (relay, client) = fake_relay().await;
        let first = tokio::spawn({
            let client = client.clone();
            async move { client.query("call-one").await }
        });
        let (one, from) = receive(&relay).await;
        let second = tokio::spawn({
            let client = client.clone();
            async move { client.query("call-two").await }
        });
        let (two, _) = receive(&relay).await;
        assert_ne!(cookie_of(&one), cookie_of(&two));
        let totals = |packets: u32| {
            format!("d6:result2:ok6:totalsd3:RTPd7:packetsi{packets}eeee").into_bytes()
        };
        // A reply with a cookie nobody asked for is dropped, then answers in reverse order.
        relay
            .send_to(&framed(b"stranger_1", &totals(1)), from)
            .await
            .unwrap();
        relay
            .send_to(&framed(&cookie_of(&two), &totals(22)), from)
            .await
            .unwrap();
        relay
            .send_to(&framed(&cookie_of(&one), &totals(11)), from)
            .await
            .unwrap();
        assert_eq!(first.await.unwrap().unwrap().rtp_packets, 11);
        assert_eq!(second.await.unwrap().unwrap().rtp_packets, 22);
    }

    #[tokio::test]
    async fn an_error_reply_carries_the_reason() {
        let (relay, client) = fake_relay().await;
        let query = tokio::spawn({
            let client = client.clone();
            async move { client.query("gone").await }
        });
        let (request, from) = receive(&relay).await;
        let payload = ng_protocol::split_message(&request).unwrap().payload;
        let value = bencode::decode(payload).unwrap();
        assert_eq!(value.get("command").and_then(Value::as_str), Some("query"));
        assert_eq!(value.get("call-id").and_then(Value::as_str), Some("gone"));
        relay
            .send_to(
                &framed(
                    &cookie_of(&request),
                    b"d6:result5:error12:error-reason15:Unknown call-ide",
                ),
                from,
            )
            .await
            .unwrap();
        let error = query.await.unwrap().unwrap_err();
        assert!(error.is_unknown_call(), "{error}");
        assert!(error.to_string().contains("Unknown call-id"));
    }

    #[tokio::test]
    async fn a_silent_relay_times_out_and_is_then_skipped_until_the_pause_ends() {
        let (relay, client) = fake_relay().await;
        let started = Instant::now();
        let error = client.delete("silent").await.unwrap_err();
        assert!(
            matches!(error, NgClientError::Timeout { attempts: 3, .. }),
            "{error}"
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        // Three datagrams reached the relay, all with one cookie.
        let cookies: Vec<Vec<u8>> = [
            receive(&relay).await.0,
            receive(&relay).await.0,
            receive(&relay).await.0,
        ]
        .iter()
        .map(|d| cookie_of(d))
        .collect();
        assert!(cookies.windows(2).all(|pair| pair[0] == pair[1]));
        // Marked down: the next request fails at once without touching the network.
        let error = client.query("silent").await.unwrap_err();
        assert!(matches!(error, NgClientError::Down { .. }), "{error}");
        tokio::time::sleep(Duration::from_millis(350)).await;
        let delete = tokio::spawn({
            let client = client.clone();
            async move { client.delete("silent").await }
        });
        let (request, from) = receive(&relay).await;
        relay
            .send_to(&framed(&cookie_of(&request), b"d6:result2:oke"), from)
            .await
            .unwrap();
        delete.await.unwrap().unwrap();
        // A ping that goes unanswered does not mark the relay down.
        let error = client.ping().await.unwrap_err();
        assert!(matches!(error, NgClientError::Timeout { .. }), "{error}");
        for _ in 0..3 {
            receive(&relay).await;
        }
        let query = tokio::spawn({
            let client = client.clone();
            async move { client.query("after-ping").await }
        });
        let (request, from) = receive(&relay).await;
        relay
            .send_to(&framed(&cookie_of(&request), b"d6:result2:oke"), from)
            .await
            .unwrap();
        assert_eq!(query.await.unwrap().unwrap(), RelayTotals::default());
    }

    #[test]
    fn totals_count_the_first_stream_of_each_medium_per_party() {
        use ng_protocol::{Counters, MediaReport, StreamReport};
        let stream =
            |port: u16, packets: u64, kernelized: bool, endpoint: Option<&str>| StreamReport {
                local_address: "127.0.0.1".parse().unwrap(),
                local_port: port,
                endpoint: endpoint.map(|e| e.parse().unwrap()),
                advertised_endpoint: None,
                last_packet: 0,
                is_rtcp: false,
                kernelized,
                stats: Counters {
                    packets,
                    bytes: 0,
                    errors: 1,
                },
            };
        let media = |streams| MediaReport {
            index: 1,
            media_type: "audio".into(),
            protocol: "RTP/AVP".into(),
            streams,
        };
        let report = CallReport {
            tags: vec![TagReport {
                tag: "ft".into(),
                label: Some("caller".into()),
                via_branch: None,
                created: 0,
                medias: vec![
                    // No local port yet: the next medium's counts.
                    media(vec![
                        stream(0, 5, false, None),
                        stream(30001, 100, true, Some("192.0.2.9:9")),
                    ]),
                    media(vec![stream(30002, 7, true, Some("192.0.2.5:4000"))]),
                    media(Vec::new()),
                ],
            }],
            totals_rtp: Counters {
                packets: 12,
                bytes: 0,
                errors: 0,
            },
            totals_rtcp: Counters {
                packets: 3,
                bytes: 0,
                errors: 0,
            },
            ..CallReport::default()
        };
        let totals = RelayTotals::from(&report);
        assert_eq!(totals.rtp_packets, 12);
        assert_eq!(totals.rtcp_packets, 3);
        assert_eq!(
            totals.parties,
            vec![PartyCounters {
                tag: "ft".into(),
                label: Some("caller".into()),
                rtp_packets: 12,
                rtp_errors: 2,
                endpoint: Some("192.0.2.5:4000".parse().unwrap()),
                local_port: Some(30002),
                rtp_kernelized: true,
            }]
        );
    }

    #[tokio::test]
    async fn a_result_the_client_does_not_know_is_a_refusal_and_garbage_a_bad_reply() {
        let (relay, client) = fake_relay().await;
        for (payload, refused) in [
            (&b"d6:result10:load limite"[..], true),
            (b"not bencode", false),
            (b"d3:sdp3:v=0e", false),
        ] {
            let offer = tokio::spawn({
                let client = client.clone();
                async move {
                    let exchange = SdpExchange {
                        call_id: "c2",
                        from_tag: "ft",
                        to_tag: None,
                        via_branch: None,
                        received_from: None,
                        label: None,
                        sdp: b"v=0\r\n",
                    };
                    client.offer_answer(&exchange, false).await
                }
            });
            let (request, from) = receive(&relay).await;
            relay
                .send_to(&framed(&cookie_of(&request), payload), from)
                .await
                .unwrap();
            let error = offer.await.unwrap().unwrap_err();
            if refused {
                assert!(
                    matches!(&error, NgClientError::Refused(reason) if reason == "result `load limit`"),
                    "{error}"
                );
            } else {
                assert!(matches!(error, NgClientError::BadReply(_)), "{error}");
            }
        }
    }

    #[tokio::test]
    async fn an_offer_carries_the_kamailio_flags_and_returns_the_new_sdp() {
        let (relay, client) = fake_relay().await;
        let offer = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .offer_answer(
                        &SdpExchange {
                            call_id: "c1",
                            from_tag: "ft",
                            to_tag: None,
                            via_branch: Some("z9hG4bK1"),
                            received_from: Some("192.0.2.7".parse().unwrap()),
                            label: Some("caller"),
                            sdp: b"v=0\r\n",
                        },
                        false,
                    )
                    .await
            }
        });
        let (request, from) = receive(&relay).await;
        let value = bencode::decode(ng_protocol::split_message(&request).unwrap().payload)
            .unwrap()
            .into_owned();
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        assert_eq!(text("command").as_deref(), Some("offer"));
        assert_eq!(text("from-tag").as_deref(), Some("ft"));
        assert_eq!(text("via-branch").as_deref(), Some("z9hG4bK1"));
        assert_eq!(text("ICE").as_deref(), Some("remove"));
        assert_eq!(text("to-tag"), None);
        let list = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_list)
                .unwrap()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        };
        assert_eq!(list("replace"), ["origin", "session-connection"]);
        assert_eq!(list("flags"), ["trust-address"]);
        assert_eq!(list("received-from"), ["IP4", "192.0.2.7"]);
        // The parsed form is what a relay sees.
        assert!(matches!(
            ng_protocol::parse_command(value.clone()).unwrap(),
            ng_protocol::NgCommand::Offer(_)
        ));
        relay
            .send_to(
                &framed(&cookie_of(&request), b"d6:result2:ok3:sdp6:v=1\r\n\ne"),
                from,
            )
            .await
            .unwrap();
        assert_eq!(offer.await.unwrap().unwrap(), b"v=1\r\n\n");
    }
}
