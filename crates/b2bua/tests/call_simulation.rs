//! A caller and a callee — each a sip-core `TransactionLayer` under a `DialogSet` — talking
//! through the call core in virtual time, over a seeded network (delay, jitter, duplication,
//! loss). Between them runs the smallest shell the core allows: one transaction layer, a
//! table of server transactions by top Via branch and CSeq method, client transactions by
//! leg and CSeq, the core's actions turned into sends. No machine clock, no thread RNG: the
//! simulator moves `now` from one pending event to the next.
//!
//! Scenarios: a call (INVITE, 180 with SDP, 200, ACK), a re-INVITE from the callee, BYE from
//! the caller; a CANCEL while ringing; a call-length limit that BYEs both sides at the same
//! instant; and the first scenario again over lossy, jittery networks.

mod support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use b2bua::{Action, Call, EndReason, Leg, LegConfig, Outbound};
use bytes::Bytes;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sip_core::dialog::{
    Body, Dialog, DialogEvent, DialogSet, DialogState, InDialog, ResponseOutcome, Routed,
    TerminationReason, is_in_dialog,
};
use sip_core::simulation::{LinkModel, Wire};
use sip_core::transaction::{
    Event, Incoming, LayerConfig, Reliability, TransactionId, TransactionLayer,
    make_timeout_response, new_branch, new_tag,
};
use sip_message::{HeaderName, Message, MessageBuilder, Method};

const CALLER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 25060);
const SBC: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 25080);
const CALLEE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 25062);
const CALLER_CALL_ID: &str = "caller-secret-call-id@127.0.0.1";
const CALLER_TAG: &str = "caller-secret-tag";
const ANSWER_AFTER: Duration = Duration::from_secs(1);
const REINVITE_AT: Duration = Duration::from_secs(5);
const BYE_AT: Duration = Duration::from_secs(10);
const CANCEL_AT: Duration = Duration::from_secs(2);
const MAX_DURATION: Duration = Duration::from_secs(30);

const CLEAN: LinkModel = LinkModel::CLEAN;

#[derive(Debug, Clone, Copy)]
struct Clock {
    base: Instant,
    now: Instant,
}

impl Clock {
    fn elapsed(self) -> Duration {
        self.now - self.base
    }
}

struct Network {
    wire: Wire<StdRng>,
    /// Everything sent: when (from the start), from, to, what.
    log: Vec<(Duration, SocketAddr, SocketAddr, Message)>,
}

impl Network {
    fn send(&mut self, clock: Clock, from: SocketAddr, to: SocketAddr, payload: Bytes) {
        let message = Message::parse(payload.clone()).expect("nodes send parseable messages");
        message.validate().expect("nodes send well-formed messages");
        self.log.push((clock.elapsed(), from, to, message));
        self.wire.carry(clock.now, from, to, payload);
    }

    fn pop_due(&mut self, now: Instant) -> Option<(SocketAddr, SocketAddr, Bytes)> {
        self.wire.pop_due(now)
    }

    fn sent(&self, from: SocketAddr, to: SocketAddr) -> Vec<(Duration, &Message)> {
        self.log
            .iter()
            .filter(|(_, sender, receiver, _)| *sender == from && *receiver == to)
            .map(|(at, _, _, message)| (*at, message))
            .collect()
    }
}

fn via(rng: &mut StdRng, address: SocketAddr) -> String {
    let branch = String::from_utf8(new_branch(rng).to_vec()).unwrap();
    format!("SIP/2.0/UDP {address};branch={branch}")
}

fn is_method(message: &Message, method: Method) -> bool {
    message.method() == Some(&method)
}

/// A phone: a transaction layer, its dialogs, a script, and what it saw.
struct Ua {
    address: SocketAddr,
    contact: &'static str,
    layer: TransactionLayer,
    dialogs: DialogSet,
    rng: StdRng,
    sent: HashMap<TransactionId, Message>,
    invite: Option<TransactionId>,
    server_invites: HashMap<u32, TransactionId>,
    /// Callee: answer the INVITE this long after it arrived (never when `None`).
    answer_after: Option<Duration>,
    answer_due: Option<(Instant, TransactionId, Message)>,
    final_status: Option<u16>,
    early_media: bool,
    acks_sent: usize,
    terminated: Vec<TerminationReason>,
    sdp_version: u32,
}

impl Ua {
    fn new(address: SocketAddr, contact: &'static str, seed: u64) -> Ua {
        Ua {
            address,
            contact,
            layer: TransactionLayer::new(LayerConfig::default()),
            dialogs: DialogSet::new(),
            rng: StdRng::seed_from_u64(seed),
            sent: HashMap::new(),
            invite: None,
            server_invites: HashMap::new(),
            answer_after: None,
            answer_due: None,
            final_status: None,
            early_media: false,
            acks_sent: 0,
            terminated: Vec::new(),
            sdp_version: 0,
        }
    }

    fn sdp(&mut self) -> Body {
        self.sdp_version += 1;
        Body::sdp(format!(
            "v=0\r\no=- {1} {1} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {0} RTP/AVP 0\r\n",
            30000 + (self.address.port() % 100) * 2,
            self.sdp_version
        ))
    }

    fn dialog(&mut self) -> Option<&mut Dialog> {
        self.dialogs
            .iter_mut()
            .find(|dialog| dialog.state() != DialogState::Terminated)
    }

    fn send_request(&mut self, clock: Clock, mut request: Message) -> TransactionId {
        request.push_via(via(&mut self.rng, self.address));
        let request = Message::parse(request.to_bytes()).unwrap();
        let id = self
            .layer
            .send_request(clock.now, request.clone(), SBC, Reliability::Unreliable)
            .expect("the layer takes the request");
        self.sent.insert(id, request);
        id
    }

    /// The caller's INVITE, with headers that must stay on its leg.
    fn call(&mut self, clock: Clock) {
        let body = self.sdp();
        let invite = MessageBuilder::request(Method::Invite, "sip:bob@voxide.example")
            .header(HeaderName::MaxForwards, "70")
            .header(
                HeaderName::From,
                format!("\"Alice\" <sip:alice@voxide.example>;tag={CALLER_TAG}"),
            )
            .header(HeaderName::To, "<sip:bob@voxide.example>")
            .header(HeaderName::CallId, CALLER_CALL_ID)
            .header(HeaderName::CSeq, "1 INVITE")
            .header(HeaderName::Contact, self.contact)
            .header(HeaderName::UserAgent, "caller-secret-agent")
            .header(
                HeaderName::from_static("X-Voxide-Source"),
                "udp 127.0.0.1:25060",
            )
            .body(body.content_type, body.content)
            .build();
        self.invite = Some(self.send_request(clock, invite));
    }

    fn receive(&mut self, clock: Clock, from: SocketAddr, payload: Bytes) {
        let message = Message::parse(payload).expect("delivered bytes parse");
        let incoming = self
            .layer
            .handle_incoming(clock.now, message, from, Reliability::Unreliable)
            .expect("the layer takes what the B2BUA sent");
        match incoming {
            Incoming::NewRequest { id, request } => self.new_request(clock, id, request),
            Incoming::Cancel {
                id,
                request,
                invite,
            } => {
                let tag = self
                    .dialog()
                    .map(|dialog| dialog.id().local_tag.clone())
                    .unwrap_or_default();
                let ok = sip_core::transaction::make_response(&request, 200, "OK", Some(&tag));
                self.layer.send_response(clock.now, id, ok).unwrap();
                if let Some(invite) = invite
                    && let Some(request) = self.layer.request(invite).cloned()
                {
                    self.answer_due = None;
                    self.answer(clock, invite, &request, 487, None);
                }
            }
            Incoming::UnmatchedAck(ack) => self.ack(&ack),
            Incoming::Absorbed(_) | Incoming::Response(_) | Incoming::StrayResponse(_) => {}
        }
    }

    fn ack(&mut self, ack: &Message) {
        match self.dialogs.receive_request(ack) {
            Ok((_, InDialog::Ack { .. } | InDialog::StrayAck)) => {}
            // A retransmitted ACK after the dialog ended.
            Err(_) => {}
            other => panic!("an ACK that is no ACK: {other:?}"),
        }
    }

    fn new_request(&mut self, clock: Clock, id: TransactionId, request: Message) {
        let cseq = request.cseq().unwrap().number;
        if !is_in_dialog(&request) {
            assert!(is_method(&request, Method::Invite), "only the call is new");
            let tag = new_tag(&mut self.rng);
            let dialog = Dialog::from_uas_request(&request, tag, self.contact).unwrap();
            self.dialogs.insert(dialog);
            let early = self.sdp();
            self.answer(clock, id, &request, 180, Some(early));
            self.server_invites.insert(cseq, id);
            if let Some(after) = self.answer_after {
                self.answer_due = Some((clock.now + after, id, request));
            }
            return;
        }
        match self.dialogs.receive_request(&request) {
            Ok((_, InDialog::Request { method, .. })) => {
                let body = (method == Method::Invite).then(|| self.sdp());
                if method == Method::Invite {
                    self.server_invites.insert(cseq, id);
                }
                self.answer(clock, id, &request, 200, body);
            }
            Ok((_, InDialog::Bye { .. })) => self.answer(clock, id, &request, 200, None),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(rejection) => {
                let response = rejection.response(&request, self.rng.random());
                self.layer.send_response(clock.now, id, response).unwrap();
            }
        }
    }

    fn answer(
        &mut self,
        clock: Clock,
        id: TransactionId,
        request: &Message,
        status: u16,
        body: Option<Body>,
    ) {
        let dialog = self
            .dialogs
            .dialog_of_request(request)
            .ok()
            .map(|dialog| dialog.id().clone())
            .or_else(|| self.dialogs.iter().next().map(|dialog| dialog.id().clone()))
            .expect("the request's dialog");
        let dialog = self.dialogs.get_mut(&dialog).unwrap();
        let response = dialog.respond(clock.now, request, status, "Answer", body);
        // The transaction may be gone (a CANCEL raced the answer).
        let _ = self.layer.send_response(clock.now, id, response);
    }

    fn transaction_event(
        &mut self,
        clock: Clock,
        network: &mut Network,
        id: TransactionId,
        event: Event,
    ) {
        // The CANCEL's own transaction is not in `sent`: its answer concerns no dialog.
        let Some(request) = self.sent.get(&id).cloned() else {
            return;
        };
        let response = match event {
            Event::Response(response) => response,
            Event::Timeout(_) => make_timeout_response(&request),
            Event::Acknowledged(ack) => return self.ack(&ack),
            Event::Terminated => {
                self.sent.remove(&id);
                return;
            }
            Event::TransportError => return,
        };
        let status = response.status().unwrap();
        if Some(id) == self.invite {
            if (180..190).contains(&status) && !response.body().is_empty() {
                self.early_media = true;
            }
            if status >= 200 && self.final_status.is_none() {
                self.final_status = Some(status);
            }
        }
        let Ok(Some(Routed {
            id: dialog,
            outcome,
            ..
        })) = self.dialogs.receive_response(&request, &response)
        else {
            return;
        };
        if matches!(
            outcome,
            ResponseOutcome::Success | ResponseOutcome::SuccessRetransmission
        ) && is_method(&request, Method::Invite)
        {
            let dialog = self.dialogs.get_mut(&dialog).unwrap();
            let mut ack = dialog.ack_for_2xx(&response, None).unwrap();
            ack.push_via(via(&mut self.rng, self.address));
            self.acks_sent += 1;
            network.send(clock, self.address, SBC, ack.to_bytes());
        }
    }

    fn dialog_event(&mut self, clock: Clock, event: DialogEvent) {
        match event {
            DialogEvent::Retransmit(response) => {
                let cseq = response.cseq().unwrap().number;
                if let Some(&id) = self.server_invites.get(&cseq) {
                    let _ = self.layer.send_response(clock.now, id, *response);
                }
            }
            DialogEvent::Terminated(reason) => self.terminated.push(reason),
            other => panic!("unexpected dialog event {other:?}"),
        }
    }

    fn pump(&mut self, clock: Clock, network: &mut Network) -> bool {
        let mut progressed = false;
        if let Some((at, id, request)) = self.answer_due.take() {
            if at <= clock.now {
                progressed = true;
                let body = self.sdp();
                self.answer(clock, id, &request, 200, Some(body));
            } else {
                self.answer_due = Some((at, id, request));
            }
        }
        while let Some(transmit) = self.layer.poll_transmit() {
            progressed = true;
            network.send(clock, self.address, transmit.destination, transmit.payload);
        }
        while let Some((id, event)) = self.layer.poll_event() {
            progressed = true;
            self.transaction_event(clock, network, id, event);
        }
        let events: Vec<DialogEvent> = self
            .dialogs
            .iter_mut()
            .flat_map(|dialog| std::iter::from_fn(|| dialog.poll_event()).collect::<Vec<_>>())
            .collect();
        for event in events {
            progressed = true;
            self.dialog_event(clock, event);
        }
        progressed
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let dialogs = self.dialogs.iter().filter_map(Dialog::poll_timeout).min();
        let answer = self.answer_due.as_ref().map(|(at, _, _)| *at);
        [self.layer.poll_timeout(), dialogs, answer]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        for dialog in self.dialogs.iter_mut() {
            if dialog.poll_timeout().is_some_and(|at| at <= now) {
                dialog.handle_timeout(now);
            }
        }
    }
}

/// The B2BUA: one transaction layer and the call core, joined the way the shell will.
struct Sbc {
    layer: TransactionLayer,
    config: LegConfig,
    call: Option<Call>,
    rng: StdRng,
    /// Server transactions by top Via branch and CSeq method.
    servers: HashMap<(Bytes, Method), TransactionId>,
    /// Client transactions: which leg, and the request (for a timeout's 408).
    clients: HashMap<TransactionId, (Leg, Message)>,
    /// Which leg each server transaction belongs to (for the ACKs it passes up).
    server_legs: HashMap<TransactionId, Leg>,
    invites: HashMap<(Leg, u32), TransactionId>,
    /// ACKs the core built, sent straight to the transport at the next pump.
    pending_acks: Vec<(Leg, Message)>,
    ended: Vec<(Duration, EndReason)>,
    /// Provisional responses with SDP that reached us from the callee before its answer.
    early_media_from_callee: usize,
}

fn leg_of(address: SocketAddr) -> Leg {
    if address == CALLER { Leg::A } else { Leg::B }
}

fn address_of(leg: Leg) -> SocketAddr {
    match leg {
        Leg::A => CALLER,
        Leg::B => CALLEE,
    }
}

fn server_key(message: &Message) -> (Bytes, Method) {
    let via = message.top_via().expect("a Via");
    let branch = Bytes::copy_from_slice(via.branch().expect("a branch"));
    (branch, message.cseq().expect("a CSeq").method)
}

impl Sbc {
    fn new(config: LegConfig, seed: u64) -> Sbc {
        Sbc {
            layer: TransactionLayer::new(LayerConfig::default()),
            config,
            call: None,
            rng: StdRng::seed_from_u64(seed),
            servers: HashMap::new(),
            clients: HashMap::new(),
            server_legs: HashMap::new(),
            invites: HashMap::new(),
            pending_acks: Vec::new(),
            ended: Vec::new(),
            early_media_from_callee: 0,
        }
    }

    fn feed(&mut self, clock: Clock, leg: Leg, message: Message) {
        let call = self.call.as_mut().expect("a call");
        match leg {
            Leg::A => call.handle_from_a(clock.now, message),
            Leg::B => call.handle_from_b(clock.now, message),
        }
    }

    fn receive(&mut self, clock: Clock, from: SocketAddr, payload: Bytes) {
        let message = Message::parse(payload).expect("delivered bytes parse");
        message
            .validate()
            .expect("the phones send well-formed messages");
        let leg = leg_of(from);
        let unanswered = self
            .call
            .as_ref()
            .is_some_and(|call| call.answered_at().is_none() && call.end_reason().is_none());
        if leg == Leg::B
            && unanswered
            && message
                .status()
                .is_some_and(|status| (180..190).contains(&status))
            && !message.body().is_empty()
        {
            self.early_media_from_callee += 1;
        }
        let incoming = self
            .layer
            .handle_incoming(clock.now, message, from, Reliability::Unreliable)
            .expect("the layer takes what the phones send");
        match incoming {
            Incoming::NewRequest { id, request } => {
                self.servers.insert(server_key(&request), id);
                self.server_legs.insert(id, leg);
                if self.call.is_none() {
                    let seed = self.rng.random();
                    let (call, invite) = Call::new(
                        clock.now,
                        &request,
                        &Outbound::new("sip:bob@127.0.0.1:25062"),
                        &self.config,
                        seed,
                    )
                    .expect("the core takes the caller's INVITE");
                    self.call = Some(call);
                    self.act(clock, Action::SendToB(invite));
                } else {
                    self.feed(clock, leg, request);
                }
            }
            Incoming::Cancel {
                id,
                request,
                invite,
            } => {
                self.servers.insert(server_key(&request), id);
                assert!(invite.is_some(), "the CANCEL matches the INVITE");
                self.feed(clock, leg, request);
            }
            Incoming::UnmatchedAck(ack) => self.feed(clock, leg, ack),
            Incoming::Absorbed(_) | Incoming::Response(_) | Incoming::StrayResponse(_) => {}
        }
    }

    fn act(&mut self, clock: Clock, action: Action) {
        match action {
            Action::SendToA(request) => self.send(clock, Leg::A, request),
            Action::SendToB(request) => self.send(clock, Leg::B, request),
            Action::RespondA(response) | Action::RespondB(response) => {
                let id = self.servers[&server_key(&response)];
                // A 2xx retransmission may find its transaction gone (Timer L).
                let _ = self.layer.send_response(clock.now, id, response);
            }
            Action::CancelA { cseq } => self.cancel(clock, Leg::A, cseq),
            Action::CancelB { cseq } => self.cancel(clock, Leg::B, cseq),
            Action::Ended(reason) => self.ended.push((clock.elapsed(), reason)),
        }
    }

    fn cancel(&mut self, clock: Clock, leg: Leg, cseq: u32) {
        let id = self.invites[&(leg, cseq)];
        // Too late when the INVITE got its final response already.
        let _ = self.layer.send_cancel(clock.now, id);
    }

    fn send(&mut self, clock: Clock, leg: Leg, mut request: Message) {
        assert!(
            request.header(&HeaderName::Via).is_none(),
            "the core adds no Via"
        );
        request.push_via(via(&mut self.rng, SBC));
        let request = Message::parse(request.to_bytes()).unwrap();
        if is_method(&request, Method::Ack) {
            self.pending_acks.push((leg, request));
            return;
        }
        let cseq = request.cseq().unwrap().number;
        let invite = is_method(&request, Method::Invite);
        let id = self
            .layer
            .send_request(
                clock.now,
                request.clone(),
                address_of(leg),
                Reliability::Unreliable,
            )
            .expect("the layer takes the core's request");
        if invite {
            self.invites.insert((leg, cseq), id);
        }
        self.clients.insert(id, (leg, request));
    }

    fn pump(&mut self, clock: Clock, network: &mut Network) -> bool {
        let mut progressed = false;
        for (leg, ack) in std::mem::take(&mut self.pending_acks) {
            progressed = true;
            network.send(clock, SBC, address_of(leg), ack.to_bytes());
        }
        while let Some(transmit) = self.layer.poll_transmit() {
            progressed = true;
            network.send(clock, SBC, transmit.destination, transmit.payload);
        }
        while let Some((id, event)) = self.layer.poll_event() {
            progressed = true;
            match event {
                Event::Acknowledged(ack) => {
                    let leg = self.server_legs[&id];
                    self.feed(clock, leg, ack);
                }
                // The answer to a CANCEL (its transaction is the layer's own) concerns no one.
                Event::Response(response) => {
                    if let Some((leg, _)) = self.clients.get(&id) {
                        let leg = *leg;
                        self.feed(clock, leg, response);
                    }
                }
                // A server transaction's Timer H: the core's own ACK timeout acts on it.
                Event::Timeout(_) => {
                    if let Some((leg, request)) = self.clients.get(&id).cloned() {
                        self.feed(clock, leg, make_timeout_response(&request));
                    }
                }
                Event::Terminated => {
                    self.clients.remove(&id);
                    self.server_legs.remove(&id);
                }
                Event::TransportError => {}
            }
        }
        while let Some(action) = self.call.as_mut().and_then(Call::poll_action) {
            progressed = true;
            self.act(clock, action);
        }
        progressed
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let call = self.call.as_ref().and_then(Call::poll_timeout);
        [self.layer.poll_timeout(), call]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        if let Some(call) = &mut self.call
            && call.poll_timeout().is_some_and(|at| at <= now)
        {
            call.handle_timeout(now);
        }
    }
}

/// What the caller and the callee do, and when.
#[derive(Debug, Clone, Copy)]
struct Script {
    /// The callee answers this long after the INVITE arrives; never when `None`.
    answer_after: Option<Duration>,
    reinvite_at: Option<Duration>,
    bye_at: Option<Duration>,
    cancel_at: Option<Duration>,
    max_duration: Option<Duration>,
}

const CALL: Script = Script {
    answer_after: Some(ANSWER_AFTER),
    reinvite_at: Some(REINVITE_AT),
    bye_at: Some(BYE_AT),
    cancel_at: None,
    max_duration: None,
};

struct World {
    clock: Clock,
    network: Network,
    caller: Ua,
    sbc: Sbc,
    callee: Ua,
    reinvite_at: Option<Instant>,
    bye_at: Option<Instant>,
    cancel_at: Option<Instant>,
    reinvite_sent: bool,
}

impl World {
    fn new(seed: u64, model: LinkModel, script: Script) -> World {
        let base = Instant::now();
        let mut config = support::config();
        config.a_contact = Bytes::from_static(b"<sip:sbc@127.0.0.1:25080;leg=a>");
        config.b_contact = Bytes::from_static(b"<sip:sbc@127.0.0.1:25080;leg=b>");
        config.max_duration = script.max_duration;
        let mut callee = Ua::new(CALLEE, "<sip:bob@127.0.0.1:25062>", seed ^ 0xb0b);
        callee.answer_after = script.answer_after;
        let mut world = World {
            clock: Clock { base, now: base },
            network: Network {
                wire: Wire::new(model, StdRng::seed_from_u64(seed)),
                log: Vec::new(),
            },
            caller: Ua::new(CALLER, "<sip:alice@127.0.0.1:25060>", seed ^ 0xa11ce),
            sbc: Sbc::new(config, seed ^ 0x5bc),
            callee,
            reinvite_at: script.reinvite_at.map(|at| base + at),
            bye_at: script.bye_at.map(|at| base + at),
            cancel_at: script.cancel_at.map(|at| base + at),
            reinvite_sent: false,
        };
        world.caller.call(world.clock);
        world
    }

    fn pump(&mut self) {
        while self.caller.pump(self.clock, &mut self.network)
            | self.sbc.pump(self.clock, &mut self.network)
            | self.callee.pump(self.clock, &mut self.network)
        {}
    }

    fn run(&mut self, limit: Duration) {
        let deadline = self.clock.base + limit;
        loop {
            self.pump();
            let next = [
                self.network.wire.next_delivery(),
                self.caller.poll_timeout(),
                self.sbc.poll_timeout(),
                self.callee.poll_timeout(),
                self.reinvite_at,
                self.bye_at,
                self.cancel_at,
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|next| *next <= deadline) else {
                break;
            };
            self.clock.now = self.clock.now.max(next);
            let now = self.clock.now;
            while let Some((from, to, payload)) = self.network.pop_due(now) {
                match to {
                    CALLER => self.caller.receive(self.clock, from, payload),
                    CALLEE => self.callee.receive(self.clock, from, payload),
                    _ => self.sbc.receive(self.clock, from, payload),
                }
                self.pump();
            }
            self.caller.handle_timeout(now);
            self.sbc.handle_timeout(now);
            self.callee.handle_timeout(now);
            self.scripted(now);
        }
    }

    /// The scripted actions due at `now`; each waits (a second at a time) for its moment to be
    /// possible: the call confirmed and no INVITE in progress.
    fn scripted(&mut self, now: Instant) {
        let retry = now + Duration::from_secs(1);
        if self.cancel_at.is_some_and(|at| at <= now) {
            self.cancel_at = None;
            let invite = self.caller.invite.expect("the caller's INVITE");
            self.caller
                .layer
                .send_cancel(now, invite)
                .expect("the INVITE is still cancellable");
        }
        if self.reinvite_at.is_some_and(|at| at <= now) {
            let offer = self.callee.sdp();
            let ready = self.callee.dialog().is_some_and(|dialog| {
                dialog.state() == DialogState::Confirmed
                    && !dialog.invite_session().invite_in_progress()
            });
            if ready {
                self.reinvite_at = None;
                let dialog = self.callee.dialog().unwrap();
                let reinvite = dialog.request(Method::Invite, Some(offer)).unwrap();
                self.callee.send_request(self.clock, reinvite);
                self.reinvite_sent = true;
            } else {
                self.reinvite_at = Some(retry);
            }
        }
        if self.bye_at.is_some_and(|at| at <= now) {
            // After the callee's re-INVITE (when it has one) has completed.
            let reinvite_done = self.reinvite_at.is_none()
                && self
                    .callee
                    .dialog()
                    .is_none_or(|dialog| dialog.invite_session().client_invite().is_none());
            let ready = reinvite_done
                && self.caller.dialog().is_some_and(|dialog| {
                    dialog.state() == DialogState::Confirmed
                        && !dialog.invite_session().invite_in_progress()
                });
            if ready {
                self.bye_at = None;
                let bye = self
                    .caller
                    .dialog()
                    .unwrap()
                    .request(Method::Bye, None)
                    .unwrap();
                self.caller.send_request(self.clock, bye);
            } else {
                self.bye_at = Some(retry);
            }
        }
    }

    /// Every message the phone at `to` received from the B2BUA.
    fn received_by(&self, to: SocketAddr) -> Vec<(Duration, &Message)> {
        self.network.sent(SBC, to)
    }
}

/// Nothing of one leg in any message the other phone received.
fn check_topology_hiding(world: &World) -> Result<(), TestCaseError> {
    let caller_invite = &world.network.sent(CALLER, SBC)[0].1;
    let caller_branch =
        String::from_utf8_lossy(caller_invite.top_via().unwrap().branch().unwrap()).into_owned();
    let caller_secrets = [
        CALLER_CALL_ID.to_owned(),
        CALLER_TAG.to_owned(),
        caller_branch,
        "25060".to_owned(),
        "caller-secret-agent".to_owned(),
    ];
    for (_, message) in world.received_by(CALLEE) {
        let printed = text(message);
        for secret in &caller_secrets {
            prop_assert!(
                !printed.contains(secret.as_str()),
                "{} reached the callee:\n{}",
                secret,
                printed
            );
        }
        prop_assert!(
            !printed.to_ascii_lowercase().contains("x-voxide"),
            "{}",
            printed
        );
    }
    let callee_messages = world.network.sent(CALLEE, SBC);
    let mut callee_secrets = vec!["25062".to_owned()];
    if let Some(call) = &world.sbc.call {
        callee_secrets.push(String::from_utf8_lossy(call.b_call_id()).into_owned());
    }
    for (_, message) in &callee_messages {
        if let Ok(to) = message.to()
            && let Some(tag) = to.tag()
            && message.is_response()
        {
            callee_secrets.push(String::from_utf8_lossy(tag).into_owned());
        }
    }
    for (_, message) in world.received_by(CALLER) {
        let printed = text(message);
        for secret in &callee_secrets {
            prop_assert!(
                !printed.contains(secret.as_str()),
                "{} reached the caller:\n{}",
                secret,
                printed
            );
        }
    }
    Ok(())
}

fn text(message: &Message) -> String {
    String::from_utf8_lossy(&message.to_bytes()).into_owned()
}

/// After a whole call: both phones ended their dialogs by BYE, the B2BUA's call is finished,
/// every transaction layer is drained, nothing leaked across.
fn check_call(world: &World) -> Result<(), TestCaseError> {
    check_topology_hiding(world)?;
    let call = world.sbc.call.as_ref().expect("a call");
    prop_assert!(call.is_finished(), "the call core still has work");
    prop_assert_eq!(
        world
            .sbc
            .ended
            .iter()
            .map(|(_, reason)| *reason)
            .collect::<Vec<_>>(),
        vec![EndReason::Bye(Leg::A)]
    );
    prop_assert_eq!(world.caller.final_status, Some(200));
    // Provisional responses are not retransmitted: over a lossy network the callee's 180
    // may never reach the B2BUA; when it does, it goes on to the caller.
    prop_assert!(
        world.sbc.early_media_from_callee == 0
            || world
                .received_by(CALLER)
                .iter()
                .any(|(_, m)| m.status() == Some(180) && !m.body().is_empty()),
        "the 180 with SDP went to the caller"
    );
    if world.network.wire.model().loss == 0.0 {
        prop_assert!(world.caller.early_media);
    }
    prop_assert!(world.reinvite_sent);
    prop_assert_eq!(&world.caller.terminated, &[TerminationReason::ByeSent]);
    prop_assert_eq!(&world.callee.terminated, &[TerminationReason::ByeReceived]);
    for layer in [&world.caller.layer, &world.sbc.layer, &world.callee.layer] {
        prop_assert!(layer.is_empty(), "transactions left");
    }
    // The callee's re-INVITE reached the caller with the caller's own dialog identifiers,
    // and was answered and acknowledged end to end.
    let reinvites: Vec<&Message> = world
        .received_by(CALLER)
        .into_iter()
        .map(|(_, message)| message)
        .filter(|message| is_method(message, Method::Invite))
        .collect();
    prop_assert!(!reinvites.is_empty());
    for reinvite in &reinvites {
        prop_assert_eq!(reinvite.call_id().unwrap(), CALLER_CALL_ID.as_bytes());
        prop_assert_eq!(reinvite.to().unwrap().tag(), Some(CALLER_TAG.as_bytes()));
    }
    let callee_dialog = world.callee.dialogs.iter().next().unwrap();
    let caller_dialog = world.caller.dialogs.iter().next().unwrap();
    prop_assert_ne!(&callee_dialog.id().call_id, &caller_dialog.id().call_id);
    prop_assert_eq!(
        callee_dialog.remote_target(),
        "sip:sbc@127.0.0.1:25080;leg=b"
    );
    prop_assert_eq!(
        caller_dialog.remote_target(),
        "sip:sbc@127.0.0.1:25080;leg=a"
    );
    Ok(())
}

fn times(messages: &[(Duration, &Message)]) -> Vec<Duration> {
    messages.iter().map(|(at, _)| *at).collect()
}

#[test]
fn a_call_with_early_media_a_reinvite_and_a_bye() {
    let mut world = World::new(3, CLEAN, CALL);
    world.run(Duration::from_secs(120));
    check_call(&world).unwrap();
    let ms = Duration::from_millis;
    // The B2BUA sent the callee its INVITE 10 ms in, the caller the 180 at 30 ms.
    let to_callee = world.received_by(CALLEE);
    let invites: Vec<_> = to_callee
        .iter()
        .filter(|(_, m)| is_method(m, Method::Invite))
        .cloned()
        .collect();
    assert_eq!(times(&invites), [ms(10)]);
    let to_caller = world.received_by(CALLER);
    let ringing: Vec<_> = to_caller
        .iter()
        .filter(|(_, m)| m.status() == Some(180))
        .cloned()
        .collect();
    assert_eq!(times(&ringing), [ms(30)]);
    // The callee answered at 1.02 s; the caller got the 200 at 1.04 s; the callee's ACK
    // left the B2BUA when the caller's arrived, at 1.05 s.
    let oks: Vec<_> = to_caller
        .iter()
        .filter(|(_, m)| m.status() == Some(200) && m.cseq().unwrap().method == Method::Invite)
        .cloned()
        .collect();
    assert_eq!(oks[0].0, ANSWER_AFTER + ms(30));
    let acks: Vec<_> = to_callee
        .iter()
        .filter(|(_, m)| is_method(m, Method::Ack))
        .cloned()
        .collect();
    assert_eq!(times(&acks), [ANSWER_AFTER + ms(50)]);
    assert_eq!(world.caller.acks_sent, 1);
    // The re-INVITE crossed at 5.01 s; the ACK for the caller's 2xx left the B2BUA when the
    // callee's ACK arrived, at 5.05 s.
    let reinvites: Vec<_> = to_caller
        .iter()
        .filter(|(_, m)| is_method(m, Method::Invite))
        .cloned()
        .collect();
    assert_eq!(times(&reinvites), [REINVITE_AT + ms(10)]);
    let caller_acks: Vec<_> = to_caller
        .iter()
        .filter(|(_, m)| is_method(m, Method::Ack))
        .cloned()
        .collect();
    assert_eq!(times(&caller_acks), [REINVITE_AT + ms(50)]);
    // The caller's BYE at 10 s: its 200 and the callee's BYE left the B2BUA at 10.01 s.
    let byes: Vec<_> = to_callee
        .iter()
        .filter(|(_, m)| is_method(m, Method::Bye))
        .cloned()
        .collect();
    assert_eq!(times(&byes), [BYE_AT + ms(10)]);
    assert_eq!(world.sbc.ended, [(BYE_AT + ms(10), EndReason::Bye(Leg::A))]);
    let call = world.sbc.call.as_ref().unwrap();
    assert_eq!(
        call.answered_at(),
        Some(world.clock.base + ANSWER_AFTER + ms(30))
    );
}

#[test]
fn cancel_while_ringing() {
    let script = Script {
        answer_after: None,
        reinvite_at: None,
        bye_at: None,
        cancel_at: Some(CANCEL_AT),
        max_duration: None,
    };
    let mut world = World::new(5, CLEAN, script);
    world.run(Duration::from_secs(120));
    check_topology_hiding(&world).unwrap();
    let ms = Duration::from_millis;
    assert_eq!(world.caller.final_status, Some(487));
    assert!(world.caller.early_media);
    assert_eq!(
        world.sbc.ended,
        [(CANCEL_AT + ms(10), EndReason::Cancelled)]
    );
    // The B2BUA sent the callee a CANCEL when the caller's arrived, and it answered 487.
    let cancels: Vec<_> = world
        .received_by(CALLEE)
        .into_iter()
        .filter(|(_, m)| is_method(m, Method::Cancel))
        .collect();
    assert_eq!(times(&cancels), [CANCEL_AT + ms(10)]);
    let callee_487 = world
        .network
        .sent(CALLEE, SBC)
        .into_iter()
        .filter(|(_, m)| m.status() == Some(487))
        .count();
    assert_eq!(callee_487, 1);
    // Every 487 was acknowledged by the transaction layers; nothing is left.
    assert_eq!(
        world
            .network
            .sent(CALLER, SBC)
            .iter()
            .filter(|(_, m)| is_method(m, Method::Ack))
            .count(),
        1
    );
    assert_eq!(
        world
            .received_by(CALLEE)
            .iter()
            .filter(|(_, m)| is_method(m, Method::Ack))
            .count(),
        1
    );
    assert_eq!(world.caller.terminated, [TerminationReason::Rejected(487)]);
    assert_eq!(world.callee.terminated, [TerminationReason::Rejected(487)]);
    assert!(world.sbc.call.as_ref().unwrap().is_finished());
    for layer in [&world.caller.layer, &world.sbc.layer, &world.callee.layer] {
        assert!(layer.is_empty(), "transactions left");
    }
}

#[test]
fn the_call_length_limit_byes_both_sides_in_the_same_instant() {
    let script = Script {
        answer_after: Some(ANSWER_AFTER),
        reinvite_at: None,
        bye_at: None,
        cancel_at: None,
        max_duration: Some(MAX_DURATION),
    };
    let mut world = World::new(9, CLEAN, script);
    world.run(Duration::from_secs(300));
    check_topology_hiding(&world).unwrap();
    let ms = Duration::from_millis;
    let answered = ANSWER_AFTER + ms(30);
    let limit = answered + MAX_DURATION;
    let bye_to_caller: Vec<_> = world
        .received_by(CALLER)
        .into_iter()
        .filter(|(_, m)| is_method(m, Method::Bye))
        .collect();
    let bye_to_callee: Vec<_> = world
        .received_by(CALLEE)
        .into_iter()
        .filter(|(_, m)| is_method(m, Method::Bye))
        .collect();
    assert_eq!(times(&bye_to_caller), [limit]);
    assert_eq!(times(&bye_to_callee), [limit]);
    assert_eq!(world.sbc.ended, [(limit, EndReason::MaxDuration)]);
    assert_eq!(world.caller.terminated, [TerminationReason::ByeReceived]);
    assert_eq!(world.callee.terminated, [TerminationReason::ByeReceived]);
    let call = world.sbc.call.as_ref().unwrap();
    assert!(call.is_finished());
    assert_eq!(call.answered_at(), Some(world.clock.base + answered));
    for layer in [&world.caller.layer, &world.sbc.layer, &world.callee.layer] {
        assert!(layer.is_empty(), "transactions left");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Over any seeded network with jitter, duplicates and loss the call still goes through:
    /// early media, answer, re-INVITE, BYE, both sides ended, nothing leaked, nothing left.
    #[test]
    fn a_call_survives_any_network(
        seed in any::<u64>(),
        loss in 0.0..0.12f64,
        duplication in 0.0..0.3f64,
        max_delay_ms in 1u64..150,
    ) {
        let model = LinkModel {
            loss,
            duplication,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(max_delay_ms),
        };
        let mut world = World::new(seed, model, CALL);
        world.run(Duration::from_secs(300));
        check_call(&world)?;
    }
}
