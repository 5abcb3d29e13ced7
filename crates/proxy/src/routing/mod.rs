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
//! Map — policy apart from mechanism:
//! - [`plan`]: the pure call plan (refusals, targets grouped by q-value), property-tested;
//! - `decide`: the async shell that gathers the plan's inputs (served domains, digest, callee,
//!   bindings) and runs the media offer;
//! - this module: dispatch of requests, CANCEL, transaction events and timers;
//! - `fork`: branches, the plan's steps one after another, Timer C, the §16.7 response context;
//! - `response`: the choice among final responses (pure);
//! - `loose`: loose routing of in-dialog requests and ACKs, our Via/Record-Route, loops;
//! - `media_session`: offer/answer/delete with the relay, the media check, ending a call;
//! - `acc`: the accounting rows (pure builders) and the answered calls' parties.
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
use std::collections::{BinaryHeap, HashMap, VecDeque};
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
use crate::authentication::{AuthOutcome, Authenticator, consume_credentials};
use crate::dialog::{Dialog, Side};
use crate::location::{AddressOfRecord, Location, unix_now};
use crate::media::{MediaRelayClient, NgClientError, SdpExchange};
pub use crate::preference_gate::PreferenceGate;
use crate::reply::{forward_response_statelessly, local_response, send_final};

mod acc;
mod decide;
mod fork;
mod loose;
mod media_session;
pub mod peering;
pub mod plan;
mod response;
#[cfg(test)]
mod tests;

use decide::decide;
pub use loose::real_source;
use loose::{
    loop_hash, next_hop, request_is_out_of_dialog, request_uri_has_no_user, strip_angle_brackets,
    uri_address,
};
use media_session::{Roles, call_id_text, exchange_sdp, has_sdp, media_failure_response};
use response::replaces_best;
pub use sip_core::internal_headers::SOURCE_HEADER;
use sip_core::internal_headers::remove_internal_headers;
use sip_core::proxy_rules::is_dialog_forming;

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
    /// Whether any level sets `rewrite_rule_set` (the callee_in rewrite is skipped while none
    /// does).
    pub rewrite_sets: PreferenceGate,
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
    /// Execute `plan` for the request of `transaction`.
    Fork {
        transaction: TransactionId,
        plan: plan::CallPlan,
        parties: CallParties,
        /// The INVITE's SDP as the media relay rewrote it.
        offered_sdp: Option<Bytes>,
        /// The realm whose credentials the proxy checked: they are removed before forwarding
        /// (Kamailio's `consume_credentials()`), so no callee ever sees the caller's digest.
        consumed_realm: String,
    },
    /// A media check ended; the relay no longer knows these calls.
    MediaChecked { gone: Vec<String> },
    /// The accounting row of this held 2xx is committed: send it upstream.
    Committed {
        transaction: TransactionId,
        response: Box<Message>,
    },
}

/// One client transaction forked from a server transaction.
#[derive(Debug)]
struct Branch {
    client: TransactionId,
    /// A final response (or a local stand-in for a timeout) has been received.
    final_status: Option<u16>,
    /// Timer C deadline for INVITE branches.
    timer_c: Option<Instant>,
    /// Timer C cancelled this branch: its 487 counts as a 408 (RFC 3261 §16.8).
    rang_out: bool,
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
    /// The request as every branch starts from it (credentials consumed, SDP through the
    /// relay), once the plan is known.
    outgoing: Option<Message>,
    /// The plan's steps still to ring.
    next_steps: VecDeque<plan::PlanStep>,
    /// What the plan says each way of failing leads to.
    fallbacks: plan::Fallbacks,
    /// Timer C gave up on some branch of this request.
    rang_out: bool,
    /// A 2xx waits for its accounting row to be committed (retransmissions are dropped).
    held_2xx: bool,
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
    /// Call-IDs of answers that matched no transaction and were looked up for their INVITE
    /// row ([`Router::account_stray_answer`]); cleared when it grows past a bound.
    stray_answers: std::collections::HashSet<String>,
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
            stray_answers: std::collections::HashSet::new(),
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
                outgoing: None,
                next_steps: VecDeque::new(),
                fallbacks: plan::Fallbacks::default(),
                rang_out: false,
                held_2xx: false,
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
            if let Some(committed) = self.account_stray_answer(&response).await {
                // Rare (a restart while the 2xx was held for its row): waiting here for the
                // group commit keeps "no answer before its row" without a transaction to hold.
                if !committed.await.unwrap_or(false) {
                    tracing::error!("accounting row of a stray answer not on disk");
                }
            }
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
                plan,
                parties,
                offered_sdp,
                consumed_realm,
            } => {
                self.fork(
                    endpoint,
                    transaction,
                    plan,
                    parties,
                    offered_sdp,
                    &consumed_realm,
                )
                .await;
            }
            Work::Committed {
                transaction,
                response,
            } => {
                self.release_committed(endpoint, transaction, *response)
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
            if let Some(context) = self.servers.get_mut(&server) {
                context.rang_out = true;
                if let Some(branch) = context.branches.iter_mut().find(|b| b.client == client) {
                    branch.rang_out = true;
                }
            }
            if endpoint.send_cancel(client).await.is_err() {
                self.handle_branch_failure(endpoint, server, client, 408, "Request Timeout")
                    .await;
            }
        }
    }
}
