//! One call through the B2BUA: the A leg (the dialog where we are UAS, towards the caller)
//! and the B leg (where we are UAC, towards the callee or peer), driven like sip-core's
//! transactions: `handle_*(now, input)` in, [`Call::poll_action`] and [`Call::poll_timeout`]
//! out. Nothing here reads a clock, opens a socket or draws random numbers.
//!
//! # What the shell feeds and does
//!
//! The shell owns one `sip_core::transaction::TransactionLayer` and passes up only what the
//! layer passes up to its transaction user — new requests, CANCELs that matched an INVITE
//! transaction, ACKs for 2xx (unmatched or `Acknowledged`), every response the client
//! transactions deliver (2xx retransmissions included, RFC 6026) — so the core never matches
//! transactions itself. A client transaction timeout (Timer B/F) is fed as the 408 of
//! `make_timeout_response`, a transport error as a 503 (RFC 3261 §8.1.3.1).
//!
//! - [`Action::SendToA`]/[`Action::SendToB`]: a request without Via; the shell adds its own
//!   (`new_branch`) and starts a client transaction, or sends an ACK straight to the
//!   transport (§13.2.2.4).
//! - [`Action::RespondA`]/[`Action::RespondB`]: a response to a request that leg sent; it
//!   copies that request's Via and CSeq, so the shell sends it through the server transaction
//!   with that top Via branch and CSeq method (2xx retransmissions of an INVITE go through the
//!   same transaction, in its Accepted state).
//! - [`Action::CancelA`]/[`Action::CancelB`]: cancel our INVITE client transaction with that
//!   CSeq number on that leg (`TransactionLayer::send_cancel` builds the CANCEL from it,
//!   §9.1).
//! - [`Action::Ended`]: once, when the call ends, with the reason for the CDR. The call may
//!   still have work (a late 2xx to acknowledge, a BYE to answer): the shell drops it when
//!   [`Call::is_finished`].
//!
//! # Decisions
//!
//! - **ACK.** The B leg's 2xx is acknowledged when the caller's ACK arrives, carrying the
//!   ACK's body: a late offer (INVITE without SDP) gets its answer end to end, and the callee
//!   keeps retransmitting its 2xx until then (the core resends its ACK for each retransmission
//!   once sent). A 2xx nobody waits for (the call was cancelled, another fork already
//!   answered) is acknowledged at once and ended with a BYE (§13.2.2.4). Without an ACK from
//!   the caller within 64·T1 both legs get a BYE ([`EndReason::AckTimeout`]).
//! - **CANCEL.** The caller's CANCEL of the initial INVITE gets 200 and the INVITE 487 at once
//!   (the callee might never answer the CANCEL); the B leg is cancelled through
//!   [`Action::CancelB`]. A CANCEL of a re-INVITE is passed on and the other leg's final
//!   answer is relayed, so both sessions end in the same state.
//! - **Status mapping** ([`mapped_status`]): 503 and the 401/407 challenges become 500; every
//!   other status crosses unchanged with its reason phrase.
//! - **Reliable provisional responses** are hop by hop: the core PRACKs a B leg's reliable 1xx
//!   itself and relays it unreliably; `100rel` is not passed in Supported (see
//!   [`HeaderPolicy`]).
//! - **Topology hiding.** Each leg's messages are built from that leg's dialog (its Call-ID,
//!   tags, CSeq, route set, our Contact for that leg); only bodies, status codes, reason
//!   phrases and the allow-listed headers cross ([`HeaderPolicy::copies`]).

mod config;
mod filter;
mod initial;
mod relay;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use sip_core::dialog::{Body, Dialog, DialogEvent, DialogId, DialogSet};
use sip_core::transaction::make_response;
use sip_message::{HeaderName, Message, Method};

pub use config::{HeaderPolicy, IDENTITY_HEADERS, LegConfig, NEVER_COPIED};
pub use filter::{default_reason, mapped_status};

/// One side of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// Towards the caller: the dialog where the B2BUA is UAS.
    A,
    /// Towards the callee or peer: the dialog where the B2BUA is UAC.
    B,
}

impl Leg {
    /// The other leg.
    pub fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }

    fn index(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }
}

/// What the shell must do; drained with [`Call::poll_action`].
#[derive(Debug, Clone)]
pub enum Action {
    /// Send this request to the A leg (add a Via; ACK goes straight to the transport, anything
    /// else through a new client transaction).
    SendToA(Message),
    /// Send this request to the B leg, likewise.
    SendToB(Message),
    /// Send this response through the server transaction of the A leg's request it answers.
    RespondA(Message),
    /// Send this response through the server transaction of the B leg's request it answers.
    RespondB(Message),
    /// Cancel our INVITE client transaction with this CSeq number on the A leg.
    CancelA {
        /// The INVITE's CSeq number.
        cseq: u32,
    },
    /// Cancel our INVITE client transaction with this CSeq number on the B leg.
    CancelB {
        /// The INVITE's CSeq number.
        cseq: u32,
    },
    /// The call has ended (reported once).
    Ended(EndReason),
}

impl Action {
    fn send(leg: Leg, request: Message) -> Action {
        match leg {
            Leg::A => Action::SendToA(request),
            Leg::B => Action::SendToB(request),
        }
    }

    fn respond(leg: Leg, response: Message) -> Action {
        match leg {
            Leg::A => Action::RespondA(response),
            Leg::B => Action::RespondB(response),
        }
    }

    fn cancel(leg: Leg, cseq: u32) -> Action {
        match leg {
            Leg::A => Action::CancelA { cseq },
            Leg::B => Action::CancelB { cseq },
        }
    }
}

/// Why a call ended, for the CDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The B leg's INVITE failed with `received`; the caller got `sent` ([`mapped_status`],
    /// or 502 for a 2xx that formed no dialog).
    Rejected {
        /// The B leg's final status.
        received: u16,
        /// What the caller got.
        sent: u16,
    },
    /// The caller cancelled before the answer.
    Cancelled,
    /// A BYE from that leg.
    Bye(Leg),
    /// The call-length limit ran out ([`LegConfig::max_duration`]).
    MaxDuration,
    /// That leg never acknowledged our 2xx (64·T1, RFC 3261 §13.3.1.4).
    AckTimeout(Leg),
    /// A request on that leg got a response that ends its dialog (RFC 5057: 481, 408 or a
    /// timeout, 404, 410, 416, 482–485, 502, 604).
    LegFailed {
        /// The leg whose dialog broke.
        leg: Leg,
        /// The status it answered (408 for a timeout).
        status: u16,
    },
}

/// Why [`Call::new`] refused an INVITE: the response to send to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: &'static str,
    /// For 420 Bad Extension: the option tags of Require that we do not support.
    pub unsupported: Vec<Bytes>,
}

impl Rejection {
    fn new(status: u16) -> Rejection {
        Rejection {
            status,
            reason: default_reason(status),
            unsupported: Vec::new(),
        }
    }

    /// The response to `invite`, with `to_tag` added to its To (RFC 3261 §8.2.6.2) and an
    /// Unsupported header for 420 (§8.2.2.3).
    pub fn response(&self, invite: &Message, to_tag: &[u8]) -> Message {
        let mut response = make_response(invite, self.status, self.reason, Some(to_tag));
        if !self.unsupported.is_empty() {
            response.add_header(
                HeaderName::Unsupported,
                Bytes::from(self.unsupported.join(&b", "[..])),
            );
        }
        response
    }
}

/// Where the B leg's INVITE goes and who it names: chosen by the caller of the core (the
/// routing decision, the peer, rewrite rules), never taken from the A leg's routing headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The Request-URI of the B leg's INVITE: the next hop or the peer's URI for the callee.
    pub request_uri: Bytes,
    /// The From of the B leg (a name-addr without tag), instead of the A leg's display name
    /// and URI.
    pub from: Option<Bytes>,
    /// The To of the B leg (a name-addr without tag), instead of the A leg's To URI.
    pub to: Option<Bytes>,
}

impl Outbound {
    /// To `request_uri`, with From and To taken from the A leg.
    pub fn new(request_uri: impl Into<Bytes>) -> Outbound {
        Outbound {
            request_uri: request_uri.into(),
            from: None,
            to: None,
        }
    }
}

/// A request relayed from its origin leg to the other one, waiting for the other leg's final
/// response.
#[derive(Debug, Clone)]
struct Relayed {
    origin: Leg,
    /// The request as the origin sent it: what our response answers.
    request: Message,
    /// CSeq number and method of the request we sent on the other leg.
    cseq: u32,
    method: Method,
}

/// A request the core sent on its own (BYE, PRACK), whose response only updates the dialog.
#[derive(Debug, Clone)]
struct Own {
    leg: Leg,
    cseq: u32,
    method: Method,
}

/// A 2xx to an INVITE of ours that waits for the ACK of the leg we relayed it to.
#[derive(Debug, Clone)]
struct AckRelay {
    /// CSeq number of the INVITE our relayed 2xx answers, on the acknowledging leg.
    ack_cseq: u32,
    /// The dialog the 2xx came in (B leg; `None` on the A leg, which has one).
    dialog: Option<DialogId>,
    /// The 2xx to acknowledge.
    response: Message,
    /// Our ACK, once sent: sent again for each retransmission of the 2xx.
    sent: Option<Message>,
}

/// What goes into a response the core sends on a leg.
struct Answer<'m> {
    status: u16,
    reason: String,
    body: Option<Body>,
    /// The other leg's response whose allow-listed headers cross.
    source: Option<&'m Message>,
    extra: Vec<(HeaderName, Bytes)>,
}

impl Answer<'_> {
    fn plain(status: u16) -> Answer<'static> {
        Answer {
            status,
            reason: default_reason(status).to_owned(),
            body: None,
            source: None,
            extra: Vec::new(),
        }
    }

    fn relayed(response: &Message, status: u16) -> Answer<'_> {
        Answer {
            status,
            reason: filter::relayed_reason(response, status),
            body: filter::body_of(response),
            source: Some(response),
            extra: Vec::new(),
        }
    }
}

/// A SplitMix64 generator seeded from the `random` value [`Call::new`] is given: tags,
/// Call-ID and Retry-After values of one call. Its quality is the seed's: the shell draws the
/// seed from a cryptographic generator.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }

    fn token(&mut self) -> Bytes {
        Bytes::from(format!("{:016x}", self.next()))
    }
}

/// One call: the A leg's dialog, the B leg's dialogs (forks of our INVITE), the requests
/// relayed between them, and the call-length timer.
#[derive(Debug)]
pub struct Call {
    config: LegConfig,
    random: SplitMix64,
    started_at: Instant,
    a: Dialog,
    /// The caller's INVITE as received: every response to it is built from it.
    a_invite: Message,
    a_invite_cseq: u32,
    /// Whether the caller's INVITE got its final response.
    a_invite_answered: bool,
    b: DialogSet,
    /// Our INVITE on the B leg, as built (no Via).
    b_invite: Message,
    b_call_id: Bytes,
    /// Whether our B leg INVITE got a final response.
    b_invite_answered: bool,
    b_cancelled: bool,
    /// The B leg's dialog the call uses: the fork that answered, or before that the last one
    /// that sent a provisional response.
    b_current: Option<DialogId>,
    answered_at: Option<Instant>,
    deadline: Option<Instant>,
    relayed: BTreeMap<u64, Relayed>,
    next_relay: u64,
    own: Vec<Own>,
    /// Indexed by the acknowledging leg.
    acks: [Option<AckRelay>; 2],
    /// The last 2xx to an INVITE we sent on each leg, as sent: the dialogs retransmit their
    /// own copy, which lacks the headers added after it was built.
    last_2xx: [Option<Message>; 2],
    /// A BYE for that leg waits for its ACK (RFC 3261 §15: the callee may not BYE before).
    bye_after_ack: [bool; 2],
    ended: Option<EndReason>,
    actions: VecDeque<Action>,
}

impl Call {
    /// Feeds a message from the A leg (the caller's side): a request in the dialog, a CANCEL,
    /// an ACK, or a response to a request we sent there.
    pub fn handle_from_a(&mut self, now: Instant, message: Message) {
        self.handle(now, Leg::A, message);
    }

    /// Feeds a message from the B leg (the callee's side).
    pub fn handle_from_b(&mut self, now: Instant, message: Message) {
        self.handle(now, Leg::B, message);
    }

    /// Fires what is due at `now`: the dialogs' 2xx retransmissions and their ACK timeouts,
    /// and the call-length limit (BYE to both legs).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.a.poll_timeout().is_some_and(|at| at <= now) {
            self.a.handle_timeout(now);
        }
        for dialog in self.b.iter_mut() {
            if dialog.poll_timeout().is_some_and(|at| at <= now) {
                dialog.handle_timeout(now);
            }
        }
        self.drain_dialog_events(now);
        if self.deadline.is_some_and(|at| at <= now) {
            self.deadline = None;
            self.teardown(now, EndReason::MaxDuration, None);
        }
    }

    /// The next thing the shell must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Call::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let b = self.b.iter().filter_map(Dialog::poll_timeout).min();
        [self.deadline, self.a.poll_timeout(), b]
            .into_iter()
            .flatten()
            .min()
    }

    /// Why the call ended, once it has.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.ended
    }

    /// Whether the call has ended and nothing is left to do: no action queued, no timer, no
    /// request relayed without answer, our B leg INVITE answered. Responses to our own BYEs
    /// are not waited for.
    pub fn is_finished(&self) -> bool {
        self.ended.is_some()
            && self.b_invite_answered
            && self.relayed.is_empty()
            && self.actions.is_empty()
            && !self.bye_after_ack.contains(&true)
            && self.poll_timeout().is_none()
    }

    /// When [`Call::new`] was called.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// When the B leg answered (the call-length limit counts from here).
    pub fn answered_at(&self) -> Option<Instant> {
        self.answered_at
    }

    /// The A leg's dialog.
    pub fn a_dialog(&self) -> &Dialog {
        &self.a
    }

    /// The B leg's dialog the call uses, once the callee answered with a tag.
    pub fn b_dialog(&self) -> Option<&Dialog> {
        self.b_current.as_ref().and_then(|id| self.b.get(id))
    }

    /// The Call-ID of the A leg (the caller's).
    pub fn a_call_id(&self) -> &Bytes {
        &self.a.id().call_id
    }

    /// The Call-ID of the B leg (ours).
    pub fn b_call_id(&self) -> &Bytes {
        &self.b_call_id
    }

    fn handle(&mut self, now: Instant, leg: Leg, message: Message) {
        if message.is_request() {
            self.request_from(now, leg, message);
        } else {
            self.response_from(now, leg, message);
        }
        self.drain_dialog_events(now);
    }

    /// Acts on what the dialogs reported: 2xx retransmissions and ACK timeouts.
    fn drain_dialog_events(&mut self, now: Instant) {
        loop {
            let mut events = Vec::new();
            while let Some(event) = self.a.poll_event() {
                events.push((Leg::A, event));
            }
            for dialog in self.b.iter_mut() {
                while let Some(event) = dialog.poll_event() {
                    events.push((Leg::B, event));
                }
            }
            if events.is_empty() {
                return;
            }
            for (leg, event) in events {
                match event {
                    DialogEvent::Retransmit(response) => {
                        let cseq = response.cseq().ok().map(|cseq| cseq.number);
                        let full = self.last_2xx[leg.index()]
                            .as_ref()
                            .filter(|sent| sent.cseq().ok().map(|cseq| cseq.number) == cseq)
                            .cloned();
                        self.actions
                            .push_back(Action::respond(leg, full.unwrap_or(*response)));
                    }
                    DialogEvent::AckTimeout { .. } => {
                        self.teardown(now, EndReason::AckTimeout(leg), None);
                    }
                    // We send no reliable provisional responses and retry no 491 ourselves
                    // (the originator of a relayed re-INVITE backs off); terminations are
                    // tracked by the call.
                    DialogEvent::PrackTimeout { .. }
                    | DialogEvent::RetryDue(_)
                    | DialogEvent::Terminated(_) => {}
                }
            }
        }
    }

    fn end(&mut self, reason: EndReason) {
        if self.ended.is_none() {
            tracing::debug!(?reason, "call ended");
            self.ended = Some(reason);
            self.deadline = None;
            self.actions.push_back(Action::Ended(reason));
        }
    }

    /// The dialog of `leg` that the call uses.
    fn dialog_mut(&mut self, leg: Leg) -> Option<&mut Dialog> {
        match leg {
            Leg::A => Some(&mut self.a),
            Leg::B => self.b_current.as_ref().and_then(|id| self.b.get_mut(id)),
        }
    }

    /// The dialog of `leg` that `message` names (a B leg fork may not be the current one).
    fn dialog_of(&mut self, leg: Leg, id: Option<DialogId>) -> Option<&mut Dialog> {
        match leg {
            Leg::A => Some(&mut self.a),
            Leg::B => id.and_then(|id| self.b.get_mut(&id)),
        }
    }

    /// Adds User-Agent to a request the core built and queues it for `leg`.
    fn send(&mut self, leg: Leg, mut request: Message) {
        if let Some(agent) = &self.config.user_agent {
            request.add_header(HeaderName::UserAgent, agent.clone());
        }
        self.actions.push_back(Action::send(leg, request));
    }

    /// Sends a request the core originates (BYE, PRACK) and remembers it for its response.
    fn send_own(&mut self, leg: Leg, request: Message) {
        if let Ok(cseq) = request.cseq() {
            self.own.push(Own {
                leg,
                cseq: cseq.number,
                method: cseq.method,
            });
        }
        self.send(leg, request);
    }

    /// Adds Server to a response the core built and queues it for `leg`.
    fn respond_raw(&mut self, leg: Leg, mut response: Message) {
        if let Some(agent) = &self.config.user_agent {
            response.add_header(HeaderName::Server, agent.clone());
        }
        self.actions.push_back(Action::respond(leg, response));
    }

    /// Answers `request`, which `leg` sent, through that leg's dialog (so the dialog records
    /// what the answer does), with the crossing headers of `answer.source`.
    fn respond(&mut self, now: Instant, leg: Leg, request: &Message, answer: Answer<'_>) {
        let id = DialogId::of_received_request(request);
        let mut response = match self.dialog_of(leg, id) {
            Some(dialog) => {
                dialog.respond(now, request, answer.status, &answer.reason, answer.body)
            }
            None => make_response(request, answer.status, &answer.reason, None),
        };
        if let Some(source) = answer.source {
            filter::copy_headers(source, &mut response, &self.config.headers);
        }
        for (name, value) in answer.extra {
            response.add_header(name, value);
        }
        if let Some(agent) = &self.config.user_agent {
            response.add_header(HeaderName::Server, agent.clone());
        }
        if (200..300).contains(&answer.status) && request.method() == Some(&Method::Invite) {
            self.last_2xx[leg.index()] = Some(response.clone());
        }
        self.actions.push_back(Action::respond(leg, response));
    }
}
