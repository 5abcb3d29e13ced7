//! The call router: a stateful forking proxy (RFC 3261 §16) on the `sip-core` transactions.
//!
//! Out-of-dialog requests from subscribers are authenticated (407, §22.3), the From identity
//! must be the authenticated subscriber's (no call hijacking), the callee is found by
//! username@domain or by E.164 number, and the request is forked in parallel to every
//! registered contact (§16.6), each branch a client transaction whose route set is the
//! binding's Path (RFC 3327), so it goes to the load balancer that holds the phone's NAT
//! binding or connection. Responses are relayed as §16.7 says: provisional ones at once, every
//! 2xx at once (cancelling the other branches), the best final response once all branches have
//! ended. In-dialog requests and the ACK of a 2xx are loose-routed (§16.4, §16.12).
//!
//! The decisions that need the database (authentication, callee lookup) run in spawned tasks
//! and come back as [`Work`] through a channel, so the task that owns the transactions never
//! waits on a query. What the router sends goes through the [`SipEndpoint`] it is handed.
//!
//! With a media relay configured (`crate::media`), every SDP passes through it, as Kamailio's
//! `rtpengine_manage()` does: `offer` for an INVITE (in the decision task, before forking; a
//! relay failure answers 503) and for a re-INVITE or UPDATE; `answer` for a 18x/2xx with SDP
//! (or `offer` when the request had none: late offer) and for an ACK with SDP; `delete` for
//! BYE and for an initial INVITE that ends without 2xx (failure, CANCEL). Answers are awaited
//! in the router task: the relay sits on the same site and answers in well under a
//! millisecond, and one that stops answering is skipped for a while (`media` marks it down),
//! so the stall is bounded. Media timeouts: the relay does not tell the proxy (rtpengine only
//! can over XML-RPC), so every `media_check_interval` the router asks the relay (`query`)
//! about each confirmed dialog (`crate::dialog`); a call the relay answers `Unknown call-id`
//! for has been ended by it, and the proxy sends BYE to both phones and accounts the stop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sip_core::transaction::{Event, TransactionId};
use sip_message::{HeaderName, Message, Method, NameAddr, Unescaped, Uri};
use sip_net::{Destination, Flow, SipEndpoint, TransportProtocol};
use store::{DomainRepository, NewAccRecord, Store, SubscriberStatus};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::accounting::{AccountingSender, unix_time_ms};
use crate::authentication::{AuthOutcome, Authenticator, consume_credentials, local_response};
use crate::dialog::{Dialog, Side};
use crate::location::{AddressOfRecord, Location, unix_now};
use crate::media::{MediaRelayClient, NgClientError, SdpExchange};

/// The header in which the load balancer names the real source of a request
/// (`<transport> <ip>:<port>`); trusted only from configured load balancers.
pub const SOURCE_HEADER: &str = "X-Voxide-Source";
/// Prefix of every internal header; such headers never leave the platform.
const INTERNAL_HEADER_PREFIX: &[u8] = b"x-voxide-";
/// Prefix of the branches this proxy creates; the loop-detection hash follows it (§16.6 step 8).
const BRANCH_PREFIX: &str = "z9hG4bK-vx";
/// Max-Forwards assumed when a request carries none (RFC 3261 §16.6 step 3).
const DEFAULT_MAX_FORWARDS: u32 = 70;
/// Most call parties remembered for BYE accounting; the oldest half goes when full.
const MAX_REMEMBERED_DIALOGS: usize = 200_000;

/// Settings of the router.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// The proxy's own internal UDP address, put in Via and Record-Route.
    pub local_addr: SocketAddr,
    /// Load balancers whose `X-Voxide-*` headers are believed.
    pub trusted_load_balancers: Vec<IpAddr>,
    /// Domains served; empty means every domain in the provisioning store.
    pub served_domains: Vec<String>,
    /// Timer C (RFC 3261 §16.6 step 11): how long an INVITE branch may stay without a final
    /// response after its last provisional one before it is cancelled (more than 3 minutes).
    pub timer_c: Duration,
    /// How often confirmed calls are checked with the media relay.
    pub media_check_interval: Duration,
}

/// What the router needs from the rest of the proxy.
#[derive(Debug)]
pub struct RouterServices {
    pub store: Store,
    pub authenticator: Arc<Authenticator>,
    pub location: Arc<Location>,
    pub accounting: AccountingSender,
    /// The media relay every SDP goes through; `None` leaves SDP alone.
    pub media: Option<MediaRelayClient>,
}

/// The subscribers on both ends of a call, for accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallParties {
    pub caller_uuid: Option<String>,
    pub callee_uuid: Option<String>,
}

/// One contact to fork to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkTarget {
    /// The registered contact: the new Request-URI.
    pub contact: String,
    /// The Path of the binding (RFC 3327): the route set towards the contact.
    pub path: Vec<String>,
    /// `sip:IP:PORT` the REGISTER came from when it differs from the contact (a NAT seen
    /// without a load balancer in front): where to send when there is no Path.
    pub received: Option<String>,
}

/// The outcome of work done outside the router task.
#[derive(Debug)]
pub enum Work {
    /// Answer server transaction `transaction` with `response`.
    Respond {
        transaction: TransactionId,
        /// Boxed: a message is large and the other variant is small.
        response: Box<Message>,
        /// Who is known by now (the caller once authenticated, the callee once found), so a
        /// call the proxy refuses itself is still accounted with the subscribers' ids.
        parties: CallParties,
    },
    /// Fork the request of `transaction` to `targets`.
    Fork {
        transaction: TransactionId,
        targets: Vec<ForkTarget>,
        parties: CallParties,
        /// The INVITE's SDP as the media relay rewrote it.
        offered_sdp: Option<Bytes>,
        /// The realm whose credentials the proxy checked: they are removed before forwarding
        /// (Kamailio's `consume_credentials()`), so no callee ever sees the caller's digest.
        consumed_realm: String,
    },
    /// A media check ended; the relay no longer knows these calls.
    MediaChecked { gone: Vec<String> },
}

/// One client transaction forked from a server transaction.
#[derive(Debug)]
struct Branch {
    client: TransactionId,
    /// A final response (or a local stand-in for a timeout) has been received.
    final_status: Option<u16>,
    /// Timer C deadline for INVITE branches.
    timer_c: Option<Instant>,
}

/// The state of one proxied request (RFC 3261 §16: the response context).
#[derive(Debug)]
struct ServerContext {
    /// The request as received.
    request: Message,
    method: Method,
    /// The real source of the request (behind the load balancer).
    source: SocketAddr,
    branches: Vec<Branch>,
    /// Best final non-2xx response so far (§16.7 step 6), Via already popped.
    best: Option<Message>,
    /// A final response went out; later non-2xx are dropped.
    final_sent: bool,
    /// The caller sent CANCEL.
    cancelled: bool,
    /// Forking has happened (or the request was answered locally).
    decided: bool,
    parties: CallParties,
    /// The media relay holds a call for this request (an offer or answer succeeded).
    media_engaged: bool,
}

/// The stateful forking proxy.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    services: Arc<RouterServices>,
    work: mpsc::UnboundedSender<Work>,
    servers: HashMap<TransactionId, ServerContext>,
    /// Client transaction → the server transaction it was forked from.
    clients: HashMap<TransactionId, TransactionId>,
    timer_c: BinaryHeap<Reverse<(Instant, TransactionId)>>,
    /// Call-ID → the parties of an answered call, so its BYE is accounted with both.
    dialogs: HashMap<Bytes, CallParties>,
    /// Confirmed calls whose media goes through the relay, by Call-ID.
    media_dialogs: HashMap<String, Dialog>,
    /// When the relay is next asked about `media_dialogs`.
    next_media_check: Option<Instant>,
    /// A media check task is running.
    media_check_running: bool,
}

impl Router {
    /// A router; spawned work reports through `work` (the receiving end belongs to the main
    /// loop, which hands each item to [`Router::handle_work`]).
    pub fn new(
        config: RouterConfig,
        services: Arc<RouterServices>,
        work: mpsc::UnboundedSender<Work>,
    ) -> Self {
        Router {
            config,
            services,
            work,
            servers: HashMap::new(),
            clients: HashMap::new(),
            timer_c: BinaryHeap::new(),
            dialogs: HashMap::new(),
            media_dialogs: HashMap::new(),
            next_media_check: None,
            media_check_running: false,
        }
    }

    /// Confirmed calls whose media the relay is asked about (for tests and metrics).
    pub fn media_dialogs(&self) -> usize {
        self.media_dialogs.len()
    }

    /// Requests being proxied right now (for tests and metrics).
    pub fn active_requests(&self) -> usize {
        self.servers.len()
    }

    /// The real source of `request`: the `X-Voxide-Source` header when a trusted load
    /// balancer sent it, else where it came from.
    pub fn real_source(&self, request: &Message, flow: &Flow) -> SocketAddr {
        real_source(request, flow, &self.config.trusted_load_balancers)
    }

    /// A new request (not REGISTER, not CANCEL) in server transaction `transaction`.
    pub async fn handle_request(
        &mut self,
        endpoint: &SipEndpoint,
        transaction: TransactionId,
        mut request: Message,
        flow: Flow,
    ) {
        let source = self.real_source(&request, &flow);
        let Some(method) = request.method().cloned() else {
            return;
        };
        // §16.3 step 3: Max-Forwards.
        let max_forwards = match request.max_forwards() {
            Ok(value) => value.unwrap_or(DEFAULT_MAX_FORWARDS),
            Err(_) => {
                let response = local_response(&request, 400, "Bad Max-Forwards").build();
                send_final(endpoint, transaction, response).await;
                return;
            }
        };
        if max_forwards == 0 {
            let response = local_response(&request, 483, "Too Many Hops").build();
            send_final(endpoint, transaction, response).await;
            return;
        }
        // §16.3 step 4: a request that comes back with our own branch for it is a loop.
        if self.is_loop(&request) {
            let response = local_response(&request, 482, "Loop Detected").build();
            send_final(endpoint, transaction, response).await;
            return;
        }
        // §16.4: our own Route entry has done its job.
        let top_route_is_ours = self.pop_own_routes(&mut request);
        let in_dialog = request.to().is_ok_and(|to| to.tag().is_some());
        self.servers.insert(
            transaction,
            ServerContext {
                request: request.clone(),
                method: method.clone(),
                source,
                branches: Vec::new(),
                best: None,
                final_sent: false,
                cancelled: false,
                decided: false,
                parties: CallParties::default(),
                media_engaged: false,
            },
        );
        if in_dialog {
            if !top_route_is_ours {
                // Not a request of a dialog we record-routed: no open relay (§16.4).
                let response = local_response(&request, 404, "Not Here").build();
                self.respond(endpoint, transaction, response).await;
                return;
            }
            let Some(next_hop) = next_hop(&request) else {
                let response = local_response(&request, 502, "Bad Next Hop").build();
                self.respond(endpoint, transaction, response).await;
                return;
            };
            if !self
                .in_dialog_media(endpoint, transaction, &request, source)
                .await
            {
                return;
            }
            let parties = request
                .call_id()
                .ok()
                .and_then(|call_id| self.dialogs.get(call_id).cloned())
                .unwrap_or_default();
            self.forward_in_dialog(endpoint, transaction, next_hop, max_forwards, parties)
                .await;
            return;
        }
        if method == Method::Options && request_uri_has_no_user(&request) {
            // A keep-alive ping for the proxy itself.
            let response = local_response(&request, 200, "OK").build();
            self.respond(endpoint, transaction, response).await;
            return;
        }
        let services = Arc::clone(&self.services);
        let served = self.config.served_domains.clone();
        let work = self.work.clone();
        tokio::spawn(async move {
            let outcome = decide(&services, &served, &request, source, transaction).await;
            let _ = work.send(outcome);
        });
    }

    /// A CANCEL for server INVITE transaction `invite` (RFC 3261 §16.10): 200 for the CANCEL,
    /// every branch cancelled, and 487 for the INVITE.
    pub async fn handle_cancel(
        &mut self,
        endpoint: &SipEndpoint,
        transaction: TransactionId,
        request: Message,
        invite: Option<TransactionId>,
    ) {
        let context = invite.and_then(|invite| self.servers.get_mut(&invite).map(|c| (invite, c)));
        let Some((invite, context)) = context else {
            let response = local_response(&request, 481, "Call/Transaction Does Not Exist").build();
            send_final(endpoint, transaction, response).await;
            return;
        };
        let response = local_response(&request, 200, "OK").build();
        send_final(endpoint, transaction, response).await;
        context.cancelled = true;
        let clients: Vec<TransactionId> = context
            .branches
            .iter()
            .filter(|branch| branch.final_status.is_none())
            .map(|branch| branch.client)
            .collect();
        for client in clients {
            let _ = endpoint.send_cancel(client).await;
        }
        if !context.final_sent {
            // Answered here rather than waiting for the branches' 487s: a branch that never
            // sent a provisional response cannot be cancelled (§9.1) and would hold the caller
            // until Timer B.
            let response = local_response(&context.request, 487, "Request Terminated").build();
            self.respond(endpoint, invite, response).await;
        }
    }

    /// An event of a transaction.
    pub async fn handle_transaction_event(
        &mut self,
        endpoint: &SipEndpoint,
        transaction: TransactionId,
        event: Event,
    ) {
        if let Some(&server) = self.clients.get(&transaction) {
            match event {
                Event::Response(response) => {
                    self.handle_branch_response(endpoint, server, transaction, response)
                        .await;
                }
                Event::Timeout(_) => {
                    self.handle_branch_failure(
                        endpoint,
                        server,
                        transaction,
                        408,
                        "Request Timeout",
                    )
                    .await;
                }
                Event::TransportError => {
                    self.handle_branch_failure(
                        endpoint,
                        server,
                        transaction,
                        503,
                        "Service Unavailable",
                    )
                    .await;
                }
                Event::Terminated => {
                    self.clients.remove(&transaction);
                    self.forget_if_done(server);
                }
                Event::Acknowledged(_) => {}
            }
            return;
        }
        match event {
            Event::Terminated => {
                if let Some(context) = self.servers.get_mut(&transaction) {
                    // The caller's side is gone; keep the context only while branches live.
                    context.final_sent = true;
                }
                self.forget_if_done(transaction);
            }
            Event::Acknowledged(ack) => {
                // An ACK for a 2xx that reused the INVITE's branch: it belongs to the dialog.
                self.forward_ack(endpoint, ack).await;
            }
            Event::Response(_) | Event::Timeout(_) | Event::TransportError => {}
        }
    }

    /// An ACK that matched no transaction: the ACK of a 2xx, loose-routed statelessly
    /// (RFC 3261 §16.11 allows it; the ACK has no transaction of its own).
    pub async fn handle_unmatched_ack(&mut self, endpoint: &SipEndpoint, ack: Message) {
        self.forward_ack(endpoint, ack).await;
    }

    /// A response that matched no client transaction, e.g. a 2xx retransmission after the
    /// branch ended: forwarded statelessly by its next Via (RFC 3261 §16.7 step 10, RFC 6026).
    pub async fn handle_stray_response(&mut self, endpoint: &SipEndpoint, response: Message) {
        let ours = response
            .top_via()
            .ok()
            .is_some_and(|via| self.is_own_via(&via));
        if ours && matches!(response.status(), Some(200..=299)) {
            let mut response = response;
            response.pop_via();
            self.media_for_response(&mut response, true).await;
            forward_response_statelessly(endpoint, response).await;
        }
    }

    /// Outcome of spawned work.
    pub async fn handle_work(&mut self, endpoint: &SipEndpoint, work: Work) {
        match work {
            Work::Respond {
                transaction,
                response,
                parties,
            } => {
                match self.servers.get_mut(&transaction) {
                    Some(context) if context.final_sent => return,
                    Some(context) if parties != CallParties::default() => {
                        context.parties = parties;
                    }
                    _ => {}
                }
                self.respond(endpoint, transaction, *response).await;
            }
            Work::Fork {
                transaction,
                targets,
                parties,
                offered_sdp,
                consumed_realm,
            } => {
                self.fork(
                    endpoint,
                    transaction,
                    targets,
                    parties,
                    offered_sdp,
                    &consumed_realm,
                )
                .await;
            }
            Work::MediaChecked { gone } => {
                self.media_check_running = false;
                for call_id in gone {
                    if let Some(dialog) = self.media_dialogs.remove(&call_id) {
                        self.end_call(endpoint, dialog).await;
                    }
                }
            }
        }
    }

    /// When [`Router::handle_timers`] must run next.
    pub fn next_timer(&self) -> Option<Instant> {
        let timer_c = self.timer_c.peek().map(|Reverse((at, _))| *at);
        let media = self
            .next_media_check
            .filter(|_| !self.media_dialogs.is_empty());
        match (timer_c, media) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires due Timer C entries (the branch is cancelled, RFC 3261 §16.8) and the media
    /// check.
    pub async fn handle_timers(&mut self, endpoint: &SipEndpoint) {
        let now = Instant::now();
        if self.next_media_check.is_some_and(|at| at <= now) {
            self.next_media_check = Some(now + self.config.media_check_interval);
            self.start_media_check();
        }
        while let Some(Reverse((at, client))) = self.timer_c.peek().copied() {
            if at > now {
                break;
            }
            self.timer_c.pop();
            let Some(&server) = self.clients.get(&client) else {
                continue;
            };
            let due = self.servers.get(&server).and_then(|context| {
                context
                    .branches
                    .iter()
                    .find(|branch| branch.client == client)
                    .filter(|branch| branch.final_status.is_none() && branch.timer_c == Some(at))
            });
            if due.is_none() {
                continue;
            }
            tracing::debug!(?client, "Timer C fired: cancelling the branch");
            if endpoint.send_cancel(client).await.is_err() {
                self.handle_branch_failure(endpoint, server, client, 408, "Request Timeout")
                    .await;
            }
        }
    }

    // ----- forwarding -----

    async fn fork(
        &mut self,
        endpoint: &SipEndpoint,
        transaction: TransactionId,
        targets: Vec<ForkTarget>,
        parties: CallParties,
        offered_sdp: Option<Bytes>,
        consumed_realm: &str,
    ) {
        let Some(context) = self.servers.get_mut(&transaction) else {
            return;
        };
        context.decided = true;
        context.parties = parties;
        context.media_engaged = offered_sdp.is_some();
        if context.cancelled || context.final_sent {
            // Answered meanwhile (CANCEL): the relay's call for it has no use.
            if context.media_engaged {
                let call_id = call_id_text(&context.request);
                self.spawn_media_delete(&call_id);
            }
            return;
        }
        let max_forwards = context
            .request
            .max_forwards()
            .ok()
            .flatten()
            .unwrap_or(DEFAULT_MAX_FORWARDS);
        let mut request = context.request.clone();
        consume_credentials(&mut request, consumed_realm);
        let is_invite = context.method == Method::Invite;
        let loop_hash = loop_hash(&request);
        if let Some(sdp) = offered_sdp {
            request.set_body(sdp);
        }
        let mut branches = Vec::new();
        for target in &targets {
            let Some((outgoing, destination)) =
                self.branch_request(&request, target, max_forwards, loop_hash)
            else {
                tracing::warn!(contact = %target.contact, "contact not reachable by IP: skipped");
                continue;
            };
            match endpoint
                .send_request(
                    outgoing,
                    Destination::address(TransportProtocol::Udp, destination),
                )
                .await
            {
                Ok(client) => branches.push(client),
                Err(error) => tracing::warn!(%error, "branch could not be started"),
            }
        }
        if branches.is_empty() {
            let response = local_response(&request, 480, "Temporarily Unavailable").build();
            self.respond(endpoint, transaction, response).await;
            return;
        }
        let timer_c = is_invite.then(|| Instant::now() + self.config.timer_c);
        let Some(context) = self.servers.get_mut(&transaction) else {
            return;
        };
        for client in branches {
            self.clients.insert(client, transaction);
            if let Some(at) = timer_c {
                self.timer_c.push(Reverse((at, client)));
            }
            context.branches.push(Branch {
                client,
                final_status: None,
                timer_c,
            });
        }
    }

    /// Builds the request for one branch (RFC 3261 §16.6) and where it goes.
    fn branch_request(
        &self,
        request: &Message,
        target: &ForkTarget,
        max_forwards: u32,
        loop_hash: u64,
    ) -> Option<(Message, SocketAddr)> {
        let destination = match (target.path.first(), &target.received) {
            (Some(first), _) => uri_address(strip_angle_brackets(first))?,
            (None, Some(received)) => uri_address(received)?,
            (None, None) => uri_address(&target.contact)?,
        };
        let mut outgoing = request.clone();
        remove_internal_headers(&mut outgoing);
        outgoing.set_request_uri(Bytes::from(target.contact.clone()));
        outgoing.replace_header(
            HeaderName::MaxForwards,
            Bytes::from((max_forwards - 1).to_string()),
        );
        if is_dialog_forming(outgoing.method()) {
            outgoing.add_header_before(HeaderName::RecordRoute, self.own_record_route());
        }
        // §16.6 step 7 with RFC 3327 §5: the Path is the route set to the contact.
        outgoing.remove_header(&HeaderName::Route);
        for path in target.path.iter().rev() {
            outgoing.add_header_before(HeaderName::Route, Bytes::from(path.clone()));
        }
        outgoing.push_via(self.own_via(loop_hash));
        Some((outgoing, destination))
    }

    /// Forwards an in-dialog request statefully to its next hop (§16.12).
    async fn forward_in_dialog(
        &mut self,
        endpoint: &SipEndpoint,
        transaction: TransactionId,
        next_hop: SocketAddr,
        max_forwards: u32,
        parties: CallParties,
    ) {
        let Some(context) = self.servers.get_mut(&transaction) else {
            return;
        };
        context.decided = true;
        context.parties = parties;
        let request = context.request.clone();
        let mut outgoing = request.clone();
        remove_internal_headers(&mut outgoing);
        outgoing.replace_header(
            HeaderName::MaxForwards,
            Bytes::from((max_forwards - 1).to_string()),
        );
        outgoing.push_via(self.own_via(loop_hash(&request)));
        match endpoint
            .send_request(
                outgoing,
                Destination::address(TransportProtocol::Udp, next_hop),
            )
            .await
        {
            Ok(client) => {
                self.clients.insert(client, transaction);
                if let Some(context) = self.servers.get_mut(&transaction) {
                    context.branches.push(Branch {
                        client,
                        final_status: None,
                        timer_c: None,
                    });
                }
            }
            Err(error) => {
                tracing::warn!(%error, "in-dialog request could not be forwarded");
                let response = local_response(&request, 503, "Service Unavailable").build();
                self.respond(endpoint, transaction, response).await;
            }
        }
    }

    /// Loose-routes an ACK statelessly: pop our Route, new Via with a branch derived from the
    /// incoming one (so a retransmitted ACK gets the same branch, §16.11), send to the next hop.
    async fn forward_ack(&mut self, endpoint: &SipEndpoint, mut ack: Message) {
        let max_forwards = ack
            .max_forwards()
            .ok()
            .flatten()
            .unwrap_or(DEFAULT_MAX_FORWARDS);
        if max_forwards == 0 || self.is_loop(&ack) {
            return;
        }
        // Only ACKs of dialogs we record-routed: no open relay.
        if !self.pop_own_routes(&mut ack) {
            return;
        }
        let Some(next_hop) = next_hop(&ack) else {
            return;
        };
        if let Some(media) = self.services.media.clone()
            && has_sdp(&ack)
        {
            // The answer to a late offer (the 2xx carried the offer): the callee offered.
            let roles = Roles {
                is_answer: true,
                offerer_is_to: true,
            };
            match exchange_sdp(&media, &ack, roles, None, None, None).await {
                Ok(sdp) => ack.set_body(sdp),
                Err(error) => tracing::warn!(%error, "media relay answer for an ACK failed"),
            }
        }
        remove_internal_headers(&mut ack);
        ack.replace_header(
            HeaderName::MaxForwards,
            Bytes::from((max_forwards - 1).to_string()),
        );
        let incoming_branch = ack
            .top_via()
            .ok()
            .and_then(|via| via.branch().map(<[u8]>::to_vec))
            .unwrap_or_default();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        incoming_branch.hash(&mut hasher);
        let via = format!(
            "SIP/2.0/UDP {};branch={BRANCH_PREFIX}a{:016x}",
            self.config.local_addr,
            hasher.finish()
        );
        ack.push_via(Bytes::from(via));
        let destination = Destination::address(TransportProtocol::Udp, next_hop);
        if let Err(error) = endpoint.send_stateless(&ack, &destination).await {
            tracing::debug!(%error, "ACK could not be forwarded");
        }
    }

    // ----- responses -----

    async fn handle_branch_response(
        &mut self,
        endpoint: &SipEndpoint,
        server: TransactionId,
        client: TransactionId,
        mut response: Message,
    ) {
        let Some(status) = response.status() else {
            return;
        };
        // §16.7 step 3: our Via goes.
        response.pop_via();
        if status == 100 {
            return;
        }
        let request_had_sdp = self
            .servers
            .get(&server)
            .is_none_or(|context| has_sdp(&context.request));
        if self
            .media_for_response(&mut response, request_had_sdp)
            .await
            && let Some(context) = self.servers.get_mut(&server)
        {
            context.media_engaged = true;
        }
        let timer_c = self.config.timer_c;
        let Some(context) = self.servers.get_mut(&server) else {
            if (200..300).contains(&status) {
                forward_response_statelessly(endpoint, response).await;
            }
            return;
        };
        let Some(branch) = context.branches.iter_mut().find(|b| b.client == client) else {
            return;
        };
        if status < 200 {
            if let Some(deadline) = branch.timer_c.as_mut() {
                // A provisional response restarts Timer C (§16.7 step 2).
                *deadline = Instant::now() + timer_c;
                self.timer_c.push(Reverse((*deadline, client)));
            }
            if !context.final_sent {
                let _ = endpoint.send_response(server, response).await;
            }
            return;
        }
        let first_final = branch.final_status.is_none();
        branch.final_status = Some(status);
        branch.timer_c = None;
        if (200..300).contains(&status) {
            // §16.7 step 5: every 2xx goes upstream at once; the others are cancelled (§16.7
            // step 10).
            let first_2xx = !context.final_sent;
            if first_2xx {
                context.final_sent = true;
                let others: Vec<TransactionId> = context
                    .branches
                    .iter()
                    .filter(|b| b.client != client && b.final_status.is_none())
                    .map(|b| b.client)
                    .collect();
                for other in others {
                    let _ = endpoint.send_cancel(other).await;
                }
                self.account_final(server, &response);
                self.remember_media_dialog(server, &response);
            }
            if endpoint
                .send_response(server, response.clone())
                .await
                .is_err()
            {
                forward_response_statelessly(endpoint, response).await;
            }
            return;
        }
        if !first_final || context.final_sent {
            return;
        }
        if status >= 600 {
            // §16.7 step 5 lets a 6xx end the search: cancel the rest.
            let others: Vec<TransactionId> = context
                .branches
                .iter()
                .filter(|b| b.client != client && b.final_status.is_none())
                .map(|b| b.client)
                .collect();
            for other in others {
                let _ = endpoint.send_cancel(other).await;
            }
        }
        let current = context
            .best
            .as_ref()
            .map(|best| best.status().unwrap_or(500));
        if replaces_best(status, current) {
            context.best = Some(response);
        }
        self.finish_if_all_answered(endpoint, server).await;
    }

    /// A branch that ended without a response: it counts as if `status` had arrived
    /// (RFC 3261 §16.7 step 6: 408 for a timeout, 503 for a transport error).
    async fn handle_branch_failure(
        &mut self,
        endpoint: &SipEndpoint,
        server: TransactionId,
        client: TransactionId,
        status: u16,
        reason: &str,
    ) {
        let Some(context) = self.servers.get_mut(&server) else {
            return;
        };
        let Some(branch) = context.branches.iter_mut().find(|b| b.client == client) else {
            return;
        };
        if branch.final_status.is_some() {
            return;
        }
        branch.final_status = Some(status);
        branch.timer_c = None;
        if context.best.is_none() {
            context.best = Some(local_response(&context.request, status, reason).build());
        }
        self.finish_if_all_answered(endpoint, server).await;
    }

    /// Sends the best response once every branch has a final one (§16.7 step 6).
    async fn finish_if_all_answered(&mut self, endpoint: &SipEndpoint, server: TransactionId) {
        let Some(context) = self.servers.get_mut(&server) else {
            return;
        };
        if context.final_sent || context.branches.iter().any(|b| b.final_status.is_none()) {
            return;
        }
        let mut best = context
            .best
            .take()
            .unwrap_or_else(|| local_response(&context.request, 408, "Request Timeout").build());
        if best.status() == Some(503) {
            // §16.7 step 6: a 503 from downstream must not make the caller stop using us.
            best = local_response(&context.request, 500, "Server Internal Error").build();
        }
        self.respond(endpoint, server, best).await;
    }

    /// Sends a final response in server transaction `transaction` and accounts for it.
    async fn respond(
        &mut self,
        endpoint: &SipEndpoint,
        transaction: TransactionId,
        response: Message,
    ) {
        if let Some(context) = self.servers.get_mut(&transaction) {
            if context.final_sent {
                return;
            }
            context.final_sent = true;
            context.decided = true;
            let failed_call = context.method == Method::Invite
                && request_is_out_of_dialog(&context.request)
                && response.status().is_some_and(|status| status >= 300);
            if failed_call && context.media_engaged {
                let call_id = call_id_text(&context.request);
                self.spawn_media_delete(&call_id);
            }
        }
        self.account_final(transaction, &response);
        send_final(endpoint, transaction, response).await;
        self.forget_if_done(transaction);
    }

    /// Writes the `acc` record for a final response: every INVITE, and BYE with a 2xx.
    fn account_final(&mut self, server: TransactionId, response: &Message) {
        let Some(context) = self.servers.get(&server) else {
            return;
        };
        let status = response.status().unwrap_or(500);
        // A challenge is not a call attempt yet: the authenticated retry is accounted.
        if matches!(status, 401 | 407) {
            return;
        }
        let initial = request_is_out_of_dialog(&context.request);
        let accounted = match context.method {
            // Re-INVITEs change a call, they do not start one.
            Method::Invite => initial,
            Method::Bye => (200..300).contains(&status),
            _ => false,
        };
        if !accounted {
            return;
        }
        let request = &context.request;
        let call_id = request
            .call_id()
            .map(Bytes::copy_from_slice)
            .unwrap_or_default();
        if context.method == Method::Invite && (200..300).contains(&status) {
            if self.dialogs.len() >= MAX_REMEMBERED_DIALOGS {
                // Calls whose BYE went elsewhere would pile up: drop half (in no particular
                // order; their BYE is then accounted without the parties' ids).
                let mut kept = 0;
                self.dialogs.retain(|_, _| {
                    kept += 1;
                    kept <= MAX_REMEMBERED_DIALOGS / 2
                });
            }
            self.dialogs
                .insert(call_id.clone(), context.parties.clone());
        } else if context.method == Method::Bye {
            self.dialogs.remove(&call_id);
        }
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let (destination_user, destination_domain) = request
            .request_uri()
            .and_then(Result::ok)
            .map(|uri| {
                (
                    uri.user.map(text).unwrap_or_default(),
                    text(uri.host.as_bytes()),
                )
            })
            .unwrap_or_default();
        let (source_user, source_domain) = request
            .from()
            .map(|from| {
                let user = from.uri.user.map(text).unwrap_or_default();
                (user, text(from.uri.host.as_bytes()))
            })
            .unwrap_or_default();
        let record = NewAccRecord {
            method: context.method.to_string(),
            from_tag: request
                .from()
                .ok()
                .and_then(|from| from.tag().map(text))
                .unwrap_or_default(),
            to_tag: response
                .to()
                .ok()
                .and_then(|to| to.tag().map(text))
                .unwrap_or_default(),
            call_id: text(&call_id),
            sip_code: status,
            sip_reason: response.reason().map(text).unwrap_or_default(),
            source_user_id: context.parties.caller_uuid.clone(),
            destination_user_id: context.parties.callee_uuid.clone(),
            source_ip: context.source.ip().to_string(),
            destination_user,
            destination_domain,
            time_ms: unix_time_ms(),
            source_cli: source_user.clone(),
            source_user,
            source_domain,
            call_type: "call".to_owned(),
        };
        self.services.accounting.record(record);
    }

    /// Drops a context once its final response is out and no branch lives any more.
    fn forget_if_done(&mut self, server: TransactionId) {
        let done = self.servers.get(&server).is_some_and(|context| {
            context.final_sent
                && context.decided
                && context
                    .branches
                    .iter()
                    .all(|branch| !self.clients.contains_key(&branch.client))
        });
        if done {
            self.servers.remove(&server);
        }
    }

    // ----- media relay -----

    /// Offer for a re-INVITE or UPDATE with SDP, delete for BYE, and dialog bookkeeping.
    /// `false` when the request has been answered here (the relay refused the offer).
    async fn in_dialog_media(
        &mut self,
        endpoint: &SipEndpoint,
        transaction: TransactionId,
        request: &Message,
        source: SocketAddr,
    ) -> bool {
        let Some(media) = self.services.media.clone() else {
            return true;
        };
        let call_id = call_id_text(request);
        if let Some(dialog) = self.media_dialogs.get_mut(&call_id) {
            dialog.observe_request(request);
        }
        match request.method() {
            Some(Method::Bye) => {
                self.media_dialogs.remove(&call_id);
                self.spawn_media_delete(&call_id);
            }
            Some(Method::Invite | Method::Update) if has_sdp(request) => {
                let roles = Roles {
                    is_answer: false,
                    offerer_is_to: false,
                };
                match exchange_sdp(&media, request, roles, None, Some(source.ip()), None).await {
                    Ok(sdp) => {
                        if let Some(context) = self.servers.get_mut(&transaction) {
                            context.request.set_body(sdp);
                            context.media_engaged = true;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, call_id, "media relay refused a re-offer");
                        let response = media_failure_response(request, &error);
                        self.respond(endpoint, transaction, response).await;
                        return false;
                    }
                }
            }
            _ => {}
        }
        true
    }

    /// Puts a 18x/2xx's SDP through the relay: `answer`, or `offer` when the request had no
    /// SDP (late offer). `true` when the relay took it. A relay failure leaves the SDP as it is
    /// (the call goes on without the relay) and is logged.
    async fn media_for_response(&mut self, response: &mut Message, request_had_sdp: bool) -> bool {
        let Some(media) = self.services.media.clone() else {
            return false;
        };
        let relevant = matches!(response.status(), Some(101..=299))
            && response
                .cseq()
                .is_ok_and(|cseq| matches!(cseq.method, Method::Invite | Method::Update))
            && has_sdp(response);
        if !relevant {
            return false;
        }
        let roles = Roles {
            is_answer: request_had_sdp,
            offerer_is_to: !request_had_sdp,
        };
        let branch = response
            .top_via()
            .ok()
            .and_then(|via| via.branch().map(<[u8]>::to_vec));
        match exchange_sdp(
            &media,
            response,
            roles,
            branch.as_deref(),
            None,
            Some("callee"),
        )
        .await
        {
            Ok(sdp) => {
                response.set_body(sdp);
                true
            }
            Err(error) => {
                tracing::error!(%error, "media relay refused the SDP of a response: passed on as it is");
                false
            }
        }
    }

    /// Records the dialog an initial INVITE's first 2xx confirmed, when its media goes
    /// through the relay.
    fn remember_media_dialog(&mut self, server: TransactionId, response: &Message) {
        let Some(context) = self.servers.get(&server) else {
            return;
        };
        if !context.media_engaged
            || context.method != Method::Invite
            || !request_is_out_of_dialog(&context.request)
        {
            return;
        }
        let local = self.config.local_addr;
        let is_own = |uri: &Uri<'_>| {
            uri.host.ip() == Some(local.ip()) && uri.port.unwrap_or(5060) == local.port()
        };
        match Dialog::confirmed(&context.request, response, is_own) {
            Ok(dialog) => {
                if self.media_dialogs.len() >= MAX_REMEMBERED_DIALOGS {
                    tracing::warn!("too many confirmed calls: media check skips a new one");
                    return;
                }
                if self.next_media_check.is_none() {
                    self.next_media_check = Some(Instant::now() + self.config.media_check_interval);
                }
                self.media_dialogs.insert(dialog.call_id.clone(), dialog);
            }
            Err(error) => tracing::debug!(%error, "no dialog state for the media check"),
        }
    }

    fn spawn_media_delete(&self, call_id: &str) {
        let Some(media) = self.services.media.clone() else {
            return;
        };
        let call_id = call_id.to_owned();
        tokio::spawn(async move {
            if let Err(error) = media.delete(&call_id).await {
                tracing::warn!(%error, call_id, "media relay delete failed");
            }
        });
    }

    /// Asks the relay about every confirmed call in a task of its own; the calls it no
    /// longer knows come back as [`Work::MediaChecked`].
    fn start_media_check(&mut self) {
        let Some(media) = self.services.media.clone() else {
            return;
        };
        if self.media_check_running || self.media_dialogs.is_empty() {
            return;
        }
        self.media_check_running = true;
        let call_ids: Vec<String> = self.media_dialogs.keys().cloned().collect();
        let work = self.work.clone();
        tokio::spawn(async move {
            let mut gone = Vec::new();
            for call_id in call_ids {
                match media.query(&call_id).await {
                    Ok(_) => {}
                    Err(error) if error.is_unknown_call() => gone.push(call_id),
                    Err(NgClientError::Refused(reason)) => {
                        tracing::debug!(reason, call_id, "media query refused");
                    }
                    Err(error) => {
                        // The relay is unreachable: that says nothing about the calls.
                        tracing::warn!(%error, "media check stopped");
                        break;
                    }
                }
            }
            let _ = work.send(Work::MediaChecked { gone });
        });
    }

    /// Ends a call the relay dropped for lack of media: BYE to the callee and to the caller,
    /// each on behalf of the other, and the stop record.
    async fn end_call(&mut self, endpoint: &SipEndpoint, mut dialog: Dialog) {
        tracing::info!(
            call_id = dialog.call_id,
            "media timeout: ending the call with BYE"
        );
        for side in [Side::Callee, Side::Caller] {
            let (mut bye, next_hop) = dialog.bye(side, "Media Timeout");
            let Some(destination) = uri_address(&next_hop) else {
                tracing::warn!(next_hop, "BYE target not reachable by IP");
                continue;
            };
            bye.push_via(self.own_via(rand::random()));
            if let Err(error) = endpoint
                .send_request(
                    bye,
                    Destination::address(TransportProtocol::Udp, destination),
                )
                .await
            {
                tracing::warn!(%error, "BYE could not be sent");
            }
        }
        let parties = self
            .dialogs
            .remove(dialog.call_id.as_bytes())
            .unwrap_or_default();
        let user_and_domain = |address: &str, header: &HeaderName| {
            NameAddr::parse(address.as_bytes(), header)
                .map(|name_addr| {
                    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
                    (
                        name_addr.uri.user.map(text).unwrap_or_default(),
                        text(name_addr.uri.host.as_bytes()),
                    )
                })
                .unwrap_or_default()
        };
        let (source_user, source_domain) =
            user_and_domain(&dialog.caller.address, &HeaderName::From);
        let (destination_user, destination_domain) =
            user_and_domain(&dialog.callee.address, &HeaderName::To);
        // Fields the record gains later keep their defaults here.
        #[allow(clippy::needless_update)]
        let record = NewAccRecord {
            source_cli: source_user.clone(),
            source_user,
            source_domain,
            destination_user,
            destination_domain,
            call_type: "call".to_owned(),
            method: Method::Bye.to_string(),
            from_tag: dialog.caller.tag.clone(),
            to_tag: dialog.callee.tag.clone(),
            call_id: dialog.call_id.clone(),
            sip_code: 200,
            sip_reason: "Media Timeout".to_owned(),
            source_user_id: parties.caller_uuid,
            destination_user_id: parties.callee_uuid,
            source_ip: self.config.local_addr.ip().to_string(),
            time_ms: unix_time_ms(),
            ..NewAccRecord::default()
        };
        self.services.accounting.record(record);
    }

    // ----- helpers -----

    fn own_via(&self, loop_hash: u64) -> Bytes {
        let random = hex::encode(rand::random::<[u8; 8]>());
        Bytes::from(format!(
            "SIP/2.0/UDP {};branch={BRANCH_PREFIX}{loop_hash:016x}.{random}",
            self.config.local_addr
        ))
    }

    fn own_record_route(&self) -> Bytes {
        Bytes::from(format!("<sip:{};lr>", self.config.local_addr))
    }

    fn is_own_via(&self, via: &sip_message::Via<'_>) -> bool {
        via.host.ip() == Some(self.config.local_addr.ip())
            && via.port.unwrap_or(5060) == self.config.local_addr.port()
    }

    fn is_own_uri(&self, uri: &Uri<'_>) -> bool {
        uri.host.ip() == Some(self.config.local_addr.ip())
            && uri.port.unwrap_or(5060) == self.config.local_addr.port()
    }

    /// §16.3 step 4: one of the Vias is ours with the hash of this very request.
    fn is_loop(&self, request: &Message) -> bool {
        let expected = format!("{BRANCH_PREFIX}{:016x}.", loop_hash(request));
        request.vias().filter_map(Result::ok).any(|via| {
            self.is_own_via(&via)
                && via
                    .branch()
                    .is_some_and(|branch| branch.starts_with(expected.as_bytes()))
        })
    }

    /// Removes the top Route entries that name this proxy (§16.4); `true` when one did.
    fn pop_own_routes(&self, request: &mut Message) -> bool {
        let mut popped = false;
        loop {
            let ours = request
                .routes()
                .next()
                .and_then(Result::ok)
                .is_some_and(|route| self.is_own_uri(&route.uri));
            if !ours {
                return popped;
            }
            request.remove_first_value(&HeaderName::Route);
            popped = true;
        }
    }
}

/// The decision for an out-of-dialog request: authenticate the caller, check the From
/// identity, find the callee and its contacts.
async fn decide(
    services: &RouterServices,
    served_domains: &[String],
    request: &Message,
    source: SocketAddr,
    transaction: TransactionId,
) -> Work {
    let refuse = |status: u16, reason: &str, parties: CallParties| Work::Respond {
        transaction,
        response: Box::new(local_response(request, status, reason).build()),
        parties,
    };
    let respond = |status: u16, reason: &str| refuse(status, reason, CallParties::default());
    let Ok(from) = request.from() else {
        return respond(400, "Bad From");
    };
    let Ok(from_aor) = AddressOfRecord::from_uri(&from.uri) else {
        return respond(403, "Forbidden - Bad From URI");
    };
    match is_served(services, served_domains, &from_aor.domain).await {
        Ok(true) => {}
        Ok(false) => return respond(403, "Relaying Denied"),
        Err(()) => return respond(500, "Server Internal Error"),
    }
    let caller = match services
        .authenticator
        .authenticate(request, source, unix_now())
        .await
    {
        AuthOutcome::Authenticated(subscriber) => subscriber,
        AuthOutcome::Challenge(response) | AuthOutcome::Rejected(response) => {
            return Work::Respond {
                transaction,
                response: Box::new(response),
                parties: CallParties::default(),
            };
        }
    };
    let caller_known = CallParties {
        caller_uuid: Some(caller.uuid.clone()),
        callee_uuid: None,
    };
    // From here on a refusal is accounted with the caller's id (and the callee's once known).
    let respond = |status: u16, reason: &str| refuse(status, reason, caller_known.clone());
    // No call hijacking: the From identity must be the subscriber who proved it.
    if caller.username != from_aor.user || caller.domain != from_aor.domain {
        return respond(403, "Forbidden - From Identity Mismatch");
    }
    let Some(Ok(request_uri)) = request.request_uri() else {
        return respond(416, "Unsupported URI Scheme");
    };
    let Ok(callee_aor) = AddressOfRecord::from_uri(&request_uri) else {
        return respond(404, "Not Found");
    };
    match is_served(services, served_domains, &callee_aor.domain).await {
        Ok(true) => {}
        // No peerings yet: a foreign domain has no route.
        Ok(false) => return respond(404, "Not Found - No Route"),
        Err(()) => return respond(500, "Server Internal Error"),
    }
    let callee = match find_callee(&services.store, &callee_aor).await {
        Ok(Some(callee)) => callee,
        Ok(None) => return respond(404, "Not Found"),
        Err(()) => return respond(500, "Server Internal Error"),
    };
    let both_known = CallParties {
        caller_uuid: Some(caller.uuid.clone()),
        callee_uuid: Some(callee.uuid.clone()),
    };
    let respond = |status: u16, reason: &str| refuse(status, reason, both_known.clone());
    if callee.status != SubscriberStatus::Active.as_str() {
        return respond(480, "Temporarily Unavailable");
    }
    let aor = AddressOfRecord::new(callee.username.clone(), &callee.domain);
    let bindings = match services.location.lookup(&aor).await {
        Ok(bindings) => bindings,
        Err(error) => {
            tracing::error!(%error, "location lookup failed");
            return respond(500, "Server Internal Error");
        }
    };
    if bindings.is_empty() {
        return respond(480, "Temporarily Unavailable");
    }
    let mut offered_sdp = None;
    if let Some(media) = &services.media
        && request.method() == Some(&Method::Invite)
        && has_sdp(request)
    {
        let roles = Roles {
            is_answer: false,
            offerer_is_to: false,
        };
        let branch = request
            .top_via()
            .ok()
            .and_then(|via| via.branch().map(<[u8]>::to_vec));
        match exchange_sdp(
            media,
            request,
            roles,
            branch.as_deref(),
            Some(source.ip()),
            Some("caller"),
        )
        .await
        {
            Ok(sdp) => offered_sdp = Some(sdp),
            Err(error) => {
                tracing::warn!(%error, call_id = call_id_text(request), "media relay offer failed");
                return Work::Respond {
                    transaction,
                    response: Box::new(media_failure_response(request, &error)),
                    parties: both_known,
                };
            }
        }
    }
    Work::Fork {
        offered_sdp,
        consumed_realm: caller.domain.clone(),
        transaction,
        targets: bindings
            .into_iter()
            .map(|binding| ForkTarget {
                contact: binding.contact,
                path: binding.path,
                received: binding.received,
            })
            .collect(),
        parties: CallParties {
            caller_uuid: Some(caller.uuid),
            callee_uuid: Some(callee.uuid),
        },
    }
}

/// Which party offers: `offer`/`answer`, and whether the offerer is the To party (a late
/// offer in a reply and its answer in the ACK) so the tags are swapped (ng-protocol.md §3).
#[derive(Debug, Clone, Copy)]
struct Roles {
    is_answer: bool,
    offerer_is_to: bool,
}

/// Puts `message`'s SDP through the relay and returns the SDP to pass on.
async fn exchange_sdp(
    media: &MediaRelayClient,
    message: &Message,
    roles: Roles,
    via_branch: Option<&[u8]>,
    received_from: Option<IpAddr>,
    label: Option<&str>,
) -> Result<Bytes, NgClientError> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let call_id = call_id_text(message);
    let from_tag = message.from().ok().and_then(|from| from.tag().map(text));
    let to_tag = message.to().ok().and_then(|to| to.tag().map(text));
    let (offerer, other) = if roles.offerer_is_to {
        (to_tag, from_tag)
    } else {
        (from_tag, to_tag)
    };
    let Some(offerer) = offerer else {
        return Err(NgClientError::Refused("the SDP sender has no tag".into()));
    };
    let via_branch = via_branch.map(text);
    let body = message.body();
    let sdp = media
        .offer_answer(
            &SdpExchange {
                call_id: &call_id,
                from_tag: &offerer,
                to_tag: other.as_deref(),
                via_branch: via_branch.as_deref(),
                received_from,
                label,
                sdp: &body,
            },
            roles.is_answer,
        )
        .await?;
    Ok(Bytes::from(sdp))
}

/// The answer to a request whose SDP the relay did not take: 488 when it refused the SDP
/// (RFC 3261 §21.4.26), else 503.
fn media_failure_response(request: &Message, error: &NgClientError) -> Message {
    match error {
        NgClientError::Refused(reason) if reason.contains("SDP") => local_response(
            request,
            488,
            "Not Acceptable Here - Media Relay Refused SDP",
        )
        .build(),
        NgClientError::Refused(_) | NgClientError::BadReply(_) => {
            local_response(request, 503, "Media Relay Refused Call").build()
        }
        NgClientError::Timeout { .. } | NgClientError::Down { .. } | NgClientError::Io(_) => {
            local_response(request, 503, "Media Relay Unavailable").build()
        }
    }
}

/// Whether a message carries an SDP body (a body with `application/sdp` or no Content-Type).
fn has_sdp(message: &Message) -> bool {
    if message.body().is_empty() {
        return false;
    }
    match message.content_type() {
        Ok(Some(media_type)) => media_type.is(b"application", b"sdp"),
        Ok(None) => true,
        Err(_) => false,
    }
}

fn call_id_text(message: &Message) -> String {
    message
        .call_id()
        .map(|call_id| String::from_utf8_lossy(call_id).into_owned())
        .unwrap_or_default()
}

/// Whether the platform serves `domain`.
async fn is_served(
    services: &RouterServices,
    served_domains: &[String],
    domain: &str,
) -> Result<bool, ()> {
    if !served_domains.is_empty() {
        return Ok(served_domains
            .iter()
            .any(|served| served.eq_ignore_ascii_case(domain)));
    }
    match services.store.find_domain_by_name(domain).await {
        Ok(found) => Ok(found.is_some()),
        Err(error) => {
            tracing::error!(%error, "domain lookup failed");
            Err(())
        }
    }
}

/// The callee by username@domain, else by E.164 number (a leading `+` dropped).
async fn find_callee(store: &Store, aor: &AddressOfRecord) -> Result<Option<store::SipCallee>, ()> {
    let log = |error: store::StoreError| tracing::error!(%error, "callee lookup failed");
    if let Some(callee) = store
        .find_sip_callee(&aor.user, &aor.domain)
        .await
        .map_err(log)?
    {
        return Ok(Some(callee));
    }
    let digits = aor.user.strip_prefix('+').unwrap_or(&aor.user);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Ok(None);
    }
    store.find_sip_callee_by_number(digits).await.map_err(log)
}

/// Sends a final response; a transaction that has ended meanwhile is only logged.
async fn send_final(endpoint: &SipEndpoint, transaction: TransactionId, response: Message) {
    if let Err(error) = endpoint.send_response(transaction, response).await {
        tracing::debug!(%error, "response could not be sent");
    }
}

/// Sends a response (our Via already popped) to the address its top Via names
/// (RFC 3261 §18.2.2 with RFC 3581 `received`/`rport`).
async fn forward_response_statelessly(endpoint: &SipEndpoint, response: Message) {
    let Some(address) = response.top_via().ok().and_then(|via| {
        let ip = via
            .received()
            .and_then(|received| std::str::from_utf8(received).ok()?.parse().ok())
            .or_else(|| via.host.ip())?;
        let port = match via.rport() {
            Some(Some(port)) => port,
            _ => via.port.unwrap_or(5060),
        };
        Some(SocketAddr::new(ip, port))
    }) else {
        return;
    };
    let destination = Destination::address(TransportProtocol::Udp, address);
    if let Err(error) = endpoint.send_stateless(&response, &destination).await {
        tracing::debug!(%error, "response could not be forwarded");
    }
}

/// The real source of a request: the trusted load balancer's `X-Voxide-Source`, else the flow.
pub fn real_source(request: &Message, flow: &Flow, trusted: &[IpAddr]) -> SocketAddr {
    if !trusted.contains(&flow.remote.ip()) {
        return flow.remote;
    }
    request
        .header(&HeaderName::from_static(SOURCE_HEADER))
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(|value| value.split_whitespace().nth(1))
        .and_then(|address| address.parse().ok())
        .unwrap_or(flow.remote)
}

/// Removes every `X-Voxide-*` header: internal headers never leave the platform.
fn remove_internal_headers(message: &mut Message) {
    let names: Vec<HeaderName> = message
        .headers()
        .map(|(name, _)| name)
        .filter(|name| {
            name.as_bytes()
                .get(..INTERNAL_HEADER_PREFIX.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(INTERNAL_HEADER_PREFIX))
        })
        .collect();
    for name in names {
        message.remove_header(&name);
    }
}

/// The loop-detection hash of §16.6 step 8 over what identifies the request as received:
/// Request-URI, From tag, To tag, Call-ID, CSeq number and the Route headers.
fn loop_hash(request: &Message) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    request.request_uri_bytes().hash(&mut hasher);
    request
        .from()
        .ok()
        .and_then(|from| from.tag())
        .hash(&mut hasher);
    request.to().ok().and_then(|to| to.tag()).hash(&mut hasher);
    request.call_id().ok().hash(&mut hasher);
    request
        .cseq()
        .ok()
        .map(|cseq| cseq.number)
        .hash(&mut hasher);
    for route in request.header_values(&HeaderName::Route) {
        route.hash(&mut hasher);
    }
    hasher.finish()
}

/// Where a loose-routed request goes: its top Route, else its Request-URI (§16.12).
fn next_hop(request: &Message) -> Option<SocketAddr> {
    match request.routes().next() {
        Some(route) => {
            let route: NameAddr<'_> = route.ok()?;
            uri_socket_address(&route.uri)
        }
        None => uri_socket_address(&request.request_uri()?.ok()?),
    }
}

/// The address of a URI naming an IP host (this proxy does no DNS, RFC 3263).
fn uri_socket_address(uri: &Uri<'_>) -> Option<SocketAddr> {
    let ip = match uri.param(b"maddr") {
        Some(Some(maddr)) => std::str::from_utf8(maddr).ok()?.parse().ok()?,
        _ => uri.host.ip()?,
    };
    Some(SocketAddr::new(ip, uri.port.unwrap_or(5060)))
}

fn uri_address(uri: &str) -> Option<SocketAddr> {
    uri_socket_address(&Uri::parse(uri.as_bytes()).ok()?)
}

/// `<sip:…>;params` → `sip:…` (a Path value as stored).
fn strip_angle_brackets(value: &str) -> &str {
    let value = value.trim();
    match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value,
    }
}

fn request_is_out_of_dialog(request: &Message) -> bool {
    request.to().is_ok_and(|to| to.tag().is_none())
}

fn request_uri_has_no_user(request: &Message) -> bool {
    request
        .request_uri()
        .and_then(Result::ok)
        .is_some_and(|uri| {
            uri.user
                .is_none_or(|user| Unescaped::new(user).next().is_none())
        })
}

/// Requests that may create a dialog, which the proxy must stay in (RFC 3261 §16.6 step 4).
fn is_dialog_forming(method: Option<&Method>) -> bool {
    matches!(
        method,
        Some(Method::Invite | Method::Subscribe | Method::Refer | Method::Notify)
    )
}

/// Whether a new final non-2xx `status` replaces the best one so far (§16.7 step 6); among
/// equals the first received stays.
fn replaces_best(status: u16, current: Option<u16>) -> bool {
    current.is_none_or(|current| response_rank(status) < response_rank(current))
}

/// Order of preference among final non-2xx responses (§16.7 step 6): 6xx first, then the
/// lowest class.
fn response_rank(status: u16) -> u16 {
    if status >= 600 { 0 } else { status / 100 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_6xx_beats_everything_and_lower_classes_beat_higher() {
        assert!(response_rank(603) < response_rank(302));
        assert!(response_rank(302) < response_rank(486));
        assert!(response_rank(486) < response_rank(503));
        assert_eq!(response_rank(404), response_rank(486));
    }

    proptest::proptest! {
        /// Whatever order the branches answer in, a 6xx wins if there is one, else a response
        /// of the lowest class, and among equals the first that arrived.
        #[test]
        fn the_chosen_response_follows_section_16_7(
            statuses in proptest::collection::vec(300u16..700, 1..8)
        ) {
            let mut best: Option<u16> = None;
            for &status in &statuses {
                if replaces_best(status, best) {
                    best = Some(status);
                }
            }
            let expected = statuses
                .iter()
                .copied()
                .find(|status| *status >= 600)
                .or_else(|| {
                    let lowest = statuses.iter().map(|status| status / 100).min()?;
                    statuses.iter().copied().find(|status| status / 100 == lowest)
                });
            proptest::prop_assert_eq!(best, expected);
        }
    }

    #[test]
    fn path_values_lose_their_brackets_and_parameters() {
        assert_eq!(
            strip_angle_brackets("<sip:10.0.0.1:5060;lr;received=sip:1.2.3.4:5;vxf=ab>"),
            "sip:10.0.0.1:5060;lr;received=sip:1.2.3.4:5;vxf=ab"
        );
        assert_eq!(
            uri_address("sip:10.0.0.1:5070;lr"),
            Some("10.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(uri_address("sip:bob@example.org"), None);
        assert_eq!(
            uri_address("sip:bob@192.0.2.1"),
            Some("192.0.2.1:5060".parse().unwrap())
        );
    }

    #[test]
    fn the_source_header_counts_only_from_trusted_load_balancers() {
        let request = Message::parse(Bytes::from_static(
            b"INVITE sip:bob@example.org SIP/2.0\r\n\
              Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
              From: <sip:alice@example.org>;tag=1\r\nTo: <sip:bob@example.org>\r\n\
              Call-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
              X-Voxide-Source: UDP 203.0.113.9:40000\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let flow = Flow {
            transport: TransportProtocol::Udp,
            local: "127.0.0.1:5062".parse().unwrap(),
            remote: "127.0.0.1:5060".parse().unwrap(),
            connection: None,
        };
        let lb: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            real_source(&request, &flow, &[lb]),
            "203.0.113.9:40000".parse().unwrap()
        );
        assert_eq!(real_source(&request, &flow, &[]), flow.remote);
        let mut forwarded = request.clone();
        remove_internal_headers(&mut forwarded);
        let forwarded = Message::parse(forwarded.to_bytes()).unwrap();
        assert!(!forwarded.has_header(&HeaderName::from_static(SOURCE_HEADER)));
    }

    #[tokio::test]
    async fn a_request_carrying_our_branch_for_itself_is_a_loop() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let location = Arc::new(Location::load(store.clone(), unix_now()).await.unwrap());
        let authenticator = Arc::new(Authenticator::new(
            store.clone(),
            [7; 32],
            crate::authentication::AuthenticationPolicy::default(),
        ));
        let (accounting, _writer) = crate::accounting::spawn_writer(store.clone(), 4);
        let (work, _work_receiver) = mpsc::unbounded_channel();
        let router = Router::new(
            RouterConfig {
                local_addr: "127.0.0.1:5062".parse().unwrap(),
                trusted_load_balancers: Vec::new(),
                served_domains: Vec::new(),
                timer_c: Duration::from_secs(181),
                media_check_interval: Duration::from_secs(5),
            },
            Arc::new(RouterServices {
                store,
                authenticator,
                location,
                accounting,
                media: None,
            }),
            work,
        );
        let request = Message::parse(Bytes::from_static(
            b"MESSAGE sip:bob@example.org SIP/2.0\r\n\
              Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
              From: <sip:alice@example.org>;tag=1\r\nTo: <sip:bob@example.org>\r\n\
              Call-ID: loop\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\
              Content-Length: 0\r\n\r\n",
        ))
        .unwrap();
        assert!(!router.is_loop(&request));
        let mut looped = request.clone();
        looped.push_via(router.own_via(loop_hash(&request)));
        let looped = Message::parse(looped.to_bytes()).unwrap();
        assert!(router.is_loop(&looped), "same request back with our branch");
        // A spiral: the same request to a new Request-URI is no loop (§16.3 step 4).
        let mut spiral = looped.clone();
        spiral.set_request_uri(Bytes::from_static(b"sip:bob@192.0.2.9"));
        let spiral = Message::parse(spiral.to_bytes()).unwrap();
        assert!(!router.is_loop(&spiral));
    }

    #[test]
    fn the_loop_hash_changes_with_the_request_uri() {
        let make = |uri: &str| {
            Message::parse(Bytes::from(format!(
                "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
                 From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n"
            )))
            .unwrap()
        };
        assert_eq!(loop_hash(&make("sip:b@x")), loop_hash(&make("sip:b@x")));
        assert_ne!(loop_hash(&make("sip:b@x")), loop_hash(&make("sip:c@x")));
    }
}
