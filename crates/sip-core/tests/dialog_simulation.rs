//! Two UAs in virtual time, each a [`TransactionLayer`] under a [`DialogSet`], joined by a
//! seeded network (delay, jitter, duplication, loss). Alice calls Bob (INVITE/180/200/ACK);
//! five seconds in, both re-INVITE at the same instant, each answers the other 491, and the
//! §14.1 back-off (drawn from each UA's seeded generator, counted on the injected clock) lets
//! Bob — who does not own the Call-ID — go first; then Alice hangs up. No machine clock, no
//! thread RNG: the simulator moves `now` from one pending event to the next.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sip_core::dialog::{
    Body, Dialog, DialogEvent, DialogSet, DialogState, InDialog, OfferState, ResponseOutcome,
    Routed, TerminationReason, glare_retry_delay, is_in_dialog,
};
use sip_core::simulation::{LinkModel, Wire};
use sip_core::transaction::{
    Event, Incoming, LayerConfig, Reliability, TransactionId, TransactionLayer,
    make_timeout_response, new_branch, new_tag,
};
use sip_message::{HeaderName, Message, Method};

const ALICE: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 25060);
const BOB: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 25062);
const BOB_MOVED: &str = "<sip:bob@127.0.0.1:25062;line=moved>";
const REINVITE_AT: Duration = Duration::from_secs(5);
const BYE_AT: Duration = Duration::from_secs(15);

struct Network {
    wire: Wire<StdRng>,
    /// Everything sent: when (from the start), by whom, what.
    log: Vec<(Duration, SocketAddr, Message)>,
}

impl Network {
    fn send(&mut self, clock: Clock, from: SocketAddr, to: SocketAddr, payload: Bytes) {
        let message = Message::parse(payload.clone()).expect("UAs send parseable messages");
        self.log.push((clock.elapsed(), from, message));
        self.wire.carry(clock.now, from, to, payload);
    }

    fn pop_due(&mut self, now: Instant) -> Option<(SocketAddr, SocketAddr, Bytes)> {
        self.wire.pop_due(now)
    }
}

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

/// One 491 and the back-off it started.
#[derive(Debug, Clone)]
struct Glare {
    got_491_at: Duration,
    random: u32,
    retry_at: Duration,
}

/// A UA core: a transaction layer, its dialogs, and what it did.
struct Ua {
    address: SocketAddr,
    peer: SocketAddr,
    contact: &'static str,
    layer: TransactionLayer,
    dialogs: DialogSet,
    rng: StdRng,
    /// Our requests by client transaction (the layer drops its copy at the final response).
    sent: HashMap<TransactionId, Message>,
    /// The server transactions of the peer's INVITEs, by CSeq, for 2xx retransmissions.
    invite_transactions: HashMap<u32, TransactionId>,
    wants_reinvite: bool,
    reinvite_pending: Option<TransactionId>,
    reinvite_done: bool,
    glare_waiting: bool,
    glares: Vec<Glare>,
    reinvites_sent: Vec<(Duration, u32)>,
    cseqs_sent: Vec<u32>,
    refused: Vec<(u16, Method, u32)>,
    terminated: Vec<TerminationReason>,
    acks_for_2xx: usize,
    offer_state_at_bye: Option<OfferState>,
    sdp_version: u32,
}

impl Ua {
    fn new(address: SocketAddr, peer: SocketAddr, contact: &'static str, seed: u64) -> Ua {
        Ua {
            address,
            peer,
            contact,
            layer: TransactionLayer::new(LayerConfig::default()),
            dialogs: DialogSet::new(),
            rng: StdRng::seed_from_u64(seed),
            sent: HashMap::new(),
            invite_transactions: HashMap::new(),
            wants_reinvite: false,
            reinvite_pending: None,
            reinvite_done: false,
            glare_waiting: false,
            glares: Vec::new(),
            reinvites_sent: Vec::new(),
            cseqs_sent: Vec::new(),
            refused: Vec::new(),
            terminated: Vec::new(),
            acks_for_2xx: 0,
            offer_state_at_bye: None,
            sdp_version: 1,
        }
    }

    fn dialog(&mut self) -> Option<&mut Dialog> {
        self.dialogs
            .iter_mut()
            .find(|dialog| dialog.state() != DialogState::Terminated)
    }

    fn via(&mut self) -> String {
        let branch = String::from_utf8(new_branch(&mut self.rng).to_vec()).unwrap();
        format!("SIP/2.0/UDP {};branch={branch}", self.address)
    }

    fn offer(&mut self) -> Option<Body> {
        self.sdp_version += 1;
        Some(Body::sdp(format!(
            "v=0\r\no=ua {0} {0} IN IP4 127.0.0.1\r\n",
            self.sdp_version
        )))
    }

    fn send_request(&mut self, clock: Clock, mut request: Message) -> TransactionId {
        let via = self.via();
        request.push_via(via);
        let request = Message::parse(request.to_bytes()).unwrap();
        self.cseqs_sent.push(request.cseq().unwrap().number);
        let id = self
            .layer
            .send_request(
                clock.now,
                request.clone(),
                self.peer,
                Reliability::Unreliable,
            )
            .expect("the layer takes the request");
        self.sent.insert(id, request);
        id
    }

    fn invite(&mut self, clock: Clock) {
        let tag = String::from_utf8(new_tag(&mut self.rng).to_vec()).unwrap();
        let call_id = String::from_utf8(new_tag(&mut self.rng).to_vec()).unwrap();
        let body = self.offer().unwrap();
        let invite =
            sip_message::MessageBuilder::request(Method::Invite, "sip:bob@127.0.0.1:25062")
                .header(HeaderName::MaxForwards, "70")
                .header(
                    HeaderName::From,
                    format!("<sip:alice@example.com>;tag={tag}"),
                )
                .header(HeaderName::To, "<sip:bob@example.com>")
                .header(HeaderName::CallId, format!("{call_id}@127.0.0.1"))
                .header(HeaderName::CSeq, "1 INVITE")
                .header(HeaderName::Contact, self.contact)
                .body(body.content_type, body.content)
                .build();
        self.send_request(clock, invite);
    }

    /// Sends the wanted re-INVITE once nothing stands in the way: no INVITE in progress either
    /// way, no glare back-off running.
    fn try_reinvite(&mut self, clock: Clock) {
        if !self.wants_reinvite
            || self.reinvite_done
            || self.glare_waiting
            || self.reinvite_pending.is_some()
        {
            return;
        }
        let offer = self.offer();
        let Some(dialog) = self.dialog() else { return };
        if dialog.state() != DialogState::Confirmed || dialog.invite_session().invite_in_progress()
        {
            return;
        }
        if dialog.role() == sip_core::dialog::Role::Uas {
            // Bob moves: Alice's dialog must follow once his re-INVITE succeeds.
            dialog.set_local_contact(BOB_MOVED);
        }
        let reinvite = dialog
            .request(Method::Invite, offer)
            .expect("re-INVITE allowed");
        let cseq = reinvite.cseq().unwrap().number;
        let id = self.send_request(clock, reinvite);
        self.reinvite_pending = Some(id);
        self.reinvites_sent.push((clock.elapsed(), cseq));
    }

    fn bye(&mut self, clock: Clock) {
        let dialog = self.dialog().expect("a call to end");
        let state = dialog.invite_session().offer_state();
        let bye = dialog.request(Method::Bye, None).expect("BYE allowed");
        self.offer_state_at_bye = Some(state);
        self.send_request(clock, bye);
    }

    fn receive(&mut self, clock: Clock, from: SocketAddr, payload: Bytes) {
        let message = Message::parse(payload).expect("delivered bytes parse");
        let incoming = self
            .layer
            .handle_incoming(clock.now, message, from, Reliability::Unreliable)
            .expect("the layer takes what the peer sent");
        match incoming {
            Incoming::NewRequest { id, request } => self.new_request(clock, id, request),
            Incoming::UnmatchedAck(ack) => self.ack(&ack),
            Incoming::Absorbed(_) | Incoming::Response(_) | Incoming::StrayResponse(_) => {}
            Incoming::Cancel { .. } => panic!("nobody cancels here"),
        }
    }

    fn ack(&mut self, ack: &Message) {
        match self.dialogs.receive_request(ack) {
            Ok((_, InDialog::Ack { .. } | InDialog::StrayAck)) => {}
            other => panic!("an ACK of ours that is no ACK: {other:?}"),
        }
    }

    fn new_request(&mut self, clock: Clock, id: TransactionId, request: Message) {
        let (cseq, method) = {
            let cseq = request.cseq().unwrap();
            (cseq.number, cseq.method)
        };
        if !is_in_dialog(&request) {
            assert_eq!(method, Method::Invite, "only the call is out of dialog");
            let tag = new_tag(&mut self.rng);
            let dialog = Dialog::from_uas_request(&request, tag, self.contact).unwrap();
            self.dialogs.insert(dialog);
            self.answer(clock, id, &request, 180, None);
            let answer = self.offer();
            self.answer(clock, id, &request, 200, answer);
            self.invite_transactions.insert(cseq, id);
            return;
        }
        match self.dialogs.receive_request(&request) {
            Ok((_, InDialog::Request { method, .. })) => {
                let answer = if method == Method::Invite {
                    self.offer()
                } else {
                    None
                };
                self.answer(clock, id, &request, 200, answer);
                if method == Method::Invite {
                    self.invite_transactions.insert(cseq, id);
                }
            }
            Ok((_, InDialog::Bye { .. })) => self.answer(clock, id, &request, 200, None),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(rejection) => {
                self.refused.push((rejection.status, method, cseq));
                let random = self.rng.random();
                let response = rejection.response(&request, random);
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
            .or_else(|| {
                self.dialogs
                    .iter()
                    .find(|dialog| dialog.state() != DialogState::Terminated)
                    .map(|dialog| dialog.id().clone())
            })
            .expect("the dialog of the request");
        let dialog = self.dialogs.get_mut(&dialog).unwrap();
        let response = dialog.respond(clock.now, request, status, "Answer", body);
        self.layer.send_response(clock.now, id, response).unwrap();
    }

    fn transaction_event(
        &mut self,
        clock: Clock,
        network: &mut Network,
        id: TransactionId,
        event: Event,
    ) {
        let response = match event {
            Event::Response(response) => response,
            Event::Timeout(_) => make_timeout_response(&self.sent[&id]),
            Event::Terminated => {
                self.sent.remove(&id);
                return;
            }
            Event::Acknowledged(ack) => return self.ack(&ack),
            Event::TransportError => return,
        };
        let request = self.sent[&id].clone();
        let Some(Routed {
            id: dialog_id,
            outcome,
            ..
        }) = self
            .dialogs
            .receive_response(&request, &response)
            .expect("a response of our dialog")
        else {
            return;
        };
        let is_reinvite = self.reinvite_pending == Some(id);
        match outcome {
            ResponseOutcome::Success | ResponseOutcome::SuccessRetransmission
                if request.method() == Some(&Method::Invite) =>
            {
                let dialog = self.dialogs.get_mut(&dialog_id).unwrap();
                let mut ack = dialog.ack_for_2xx(&response, None).unwrap();
                let via = self.via();
                ack.push_via(via);
                self.acks_for_2xx += 1;
                network.send(clock, self.address, self.peer, ack.to_bytes());
                if is_reinvite {
                    self.reinvite_pending = None;
                    self.reinvite_done = true;
                }
            }
            ResponseOutcome::RequestPending => {
                assert!(is_reinvite);
                self.reinvite_pending = None;
                self.glare_waiting = true;
                let random = self.rng.random();
                let dialog = self.dialogs.get_mut(&dialog_id).unwrap();
                let at = dialog.schedule_glare_retry(clock.now, random).unwrap();
                self.glares.push(Glare {
                    got_491_at: clock.elapsed(),
                    random,
                    retry_at: at - clock.base,
                });
            }
            ResponseOutcome::Failure { status, .. } => panic!("unexpected failure {status}"),
            _ => {}
        }
    }

    fn dialog_event(&mut self, clock: Clock, event: DialogEvent) {
        match event {
            DialogEvent::Retransmit(response) => {
                let cseq = response.cseq().unwrap().number;
                if let Some(&id) = self.invite_transactions.get(&cseq) {
                    // The transaction may have ended (Timer L); the 2xx then goes no more.
                    let _ = self.layer.send_response(clock.now, id, *response);
                }
            }
            DialogEvent::RetryDue(method) => {
                assert_eq!(method, Method::Invite);
                self.glare_waiting = false;
            }
            DialogEvent::Terminated(reason) => self.terminated.push(reason),
            DialogEvent::AckTimeout { .. } | DialogEvent::PrackTimeout { .. } => {
                panic!("the peer always acknowledges")
            }
        }
    }

    /// Moves what the layer and the dialogs queued onward; `true` when anything moved.
    fn pump(&mut self, clock: Clock, network: &mut Network) -> bool {
        let mut progressed = false;
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
        self.try_reinvite(clock);
        progressed
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let dialogs = self.dialogs.iter().filter_map(Dialog::poll_timeout).min();
        [self.layer.poll_timeout(), dialogs]
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

struct World {
    clock: Clock,
    network: Network,
    alice: Ua,
    bob: Ua,
    reinvite_at: Option<Instant>,
    bye_at: Option<Instant>,
}

impl World {
    fn new(seed: u64, model: LinkModel) -> World {
        let base = Instant::now();
        let mut world = World {
            clock: Clock { base, now: base },
            network: Network {
                wire: Wire::new(model, StdRng::seed_from_u64(seed)),
                log: Vec::new(),
            },
            alice: Ua::new(ALICE, BOB, "<sip:alice@127.0.0.1:25060>", seed ^ 0xa11ce),
            bob: Ua::new(BOB, ALICE, "<sip:bob@127.0.0.1:25062>", seed ^ 0xb0b),
            reinvite_at: Some(base + REINVITE_AT),
            bye_at: Some(base + BYE_AT),
        };
        world.alice.invite(world.clock);
        world
    }

    fn pump(&mut self) {
        while self.alice.pump(self.clock, &mut self.network)
            | self.bob.pump(self.clock, &mut self.network)
        {}
    }

    fn run(&mut self, limit: Duration) {
        let deadline = self.clock.base + limit;
        loop {
            self.pump();
            let next = [
                self.network.wire.next_delivery(),
                self.alice.poll_timeout(),
                self.bob.poll_timeout(),
                self.reinvite_at,
                self.bye_at,
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
                let ua = if to == ALICE {
                    &mut self.alice
                } else {
                    &mut self.bob
                };
                ua.receive(self.clock, from, payload);
                self.pump();
            }
            self.alice.handle_timeout(now);
            self.bob.handle_timeout(now);
            if self.reinvite_at.is_some_and(|at| at <= now) {
                // Both at the same instant: neither has the other's yet.
                self.reinvite_at = None;
                self.alice.wants_reinvite = true;
                self.bob.wants_reinvite = true;
                self.alice.try_reinvite(self.clock);
                self.bob.try_reinvite(self.clock);
            }
            if self.bye_at.is_some_and(|at| at <= now) {
                if self.alice.reinvite_done && self.bob.reinvite_done {
                    self.bye_at = None;
                    self.alice.bye(self.clock);
                } else {
                    self.bye_at = Some(now + Duration::from_secs(1));
                }
            }
        }
    }

    fn sent(
        &self,
        from: SocketAddr,
        filter: impl Fn(&Message) -> bool,
    ) -> Vec<(Duration, &Message)> {
        self.network
            .log
            .iter()
            .filter(|(_, sender, message)| *sender == from && filter(message))
            .map(|(at, _, message)| (*at, message))
            .collect()
    }
}

fn is_status(code: u16) -> impl Fn(&Message) -> bool {
    move |message| message.status() == Some(code)
}

/// What must hold after any run: the glare resolved by the §14.1 timers, the call ended by
/// BYE on both sides, every layer drained.
fn check_invariants(world: &World) -> Result<(), TestCaseError> {
    // Without loss the first re-INVITE to arrive meets the other still pending: 491.
    if world.network.wire.model().loss == 0.0 {
        prop_assert!(!world.alice.glares.is_empty() || !world.bob.glares.is_empty());
    }
    for (ua, owner) in [(&world.alice, true), (&world.bob, false)] {
        prop_assert!(ua.reinvite_done, "a re-INVITE never got through");
        // Each back-off was the §14.1 delay for the drawn value, and the retry waited for it.
        let retries: Vec<Duration> = ua
            .reinvites_sent
            .iter()
            .skip(1)
            .map(|(at, _)| *at)
            .collect();
        prop_assert_eq!(retries.len(), ua.glares.len());
        for (glare, retry) in ua.glares.iter().zip(&retries) {
            prop_assert_eq!(
                glare.retry_at - glare.got_491_at,
                glare_retry_delay(owner, glare.random)
            );
            prop_assert!(
                *retry >= glare.retry_at,
                "retried at {:?} before {:?}",
                retry,
                glare.retry_at
            );
        }
        // Every request number above the last, and only glare refused anything.
        prop_assert!(
            ua.cseqs_sent.windows(2).all(|pair| pair[0] < pair[1]),
            "{:?}",
            ua.cseqs_sent
        );
        prop_assert!(
            ua.refused
                .iter()
                .all(|(status, method, _)| *status == 491 && *method == Method::Invite),
            "{:?}",
            ua.refused
        );
        prop_assert!(ua.layer.is_empty(), "transactions left");
        prop_assert!(
            ua.dialogs
                .iter()
                .all(|dialog| dialog.state() == DialogState::Terminated)
        );
        prop_assert!(
            ua.dialogs
                .iter()
                .all(|dialog| dialog.poll_timeout().is_none())
        );
    }
    prop_assert_eq!(world.alice.offer_state_at_bye, Some(OfferState::Idle));
    prop_assert_eq!(&world.alice.terminated, &[TerminationReason::ByeSent]);
    prop_assert_eq!(&world.bob.terminated, &[TerminationReason::ByeReceived]);
    let alice = world.alice.dialogs.iter().next().unwrap();
    let bob = world.bob.dialogs.iter().next().unwrap();
    prop_assert_eq!(alice.id(), &bob.id().reversed());
    // Bob's retry moved him; Alice's dialog followed the target refresh.
    prop_assert_eq!(alice.remote_target(), "sip:bob@127.0.0.1:25062;line=moved");
    Ok(())
}

#[test]
fn glare_resolves_by_the_section_14_1_timers_over_a_clean_network() {
    let model = LinkModel {
        loss: 0.0,
        duplication: 0.0,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
    };
    let mut world = World::new(7, model);
    world.run(Duration::from_secs(120));
    check_invariants(&world).unwrap();
    let (alice, bob) = (&world.alice, &world.bob);

    // One glare each: both re-INVITEs left at 5 s and met 491 at 5.02 s.
    assert_eq!(alice.glares.len(), 1);
    assert_eq!(bob.glares.len(), 1);
    let ms = Duration::from_millis;
    assert_eq!(alice.glares[0].got_491_at, REINVITE_AT + ms(20));
    assert_eq!(bob.glares[0].got_491_at, REINVITE_AT + ms(20));
    // Each retried the moment its timer ran out; Bob (0–2 s) before Alice (2.1–4 s).
    assert_eq!(alice.reinvites_sent[1].0, alice.glares[0].retry_at);
    assert_eq!(bob.reinvites_sent[1].0, bob.glares[0].retry_at);
    assert!(bob.glares[0].retry_at < alice.glares[0].retry_at);
    let alice_delay = alice.glares[0].retry_at - alice.glares[0].got_491_at;
    let bob_delay = bob.glares[0].retry_at - bob.glares[0].got_491_at;
    assert!(
        alice_delay >= ms(2100) && alice_delay <= ms(4000),
        "{alice_delay:?}"
    );
    assert!(bob_delay <= ms(2000), "{bob_delay:?}");

    // CSeq: Alice INVITE 1, re-INVITE 2 (491), 3 (200), BYE 4; Bob re-INVITE 1 (491), 2 (200).
    assert_eq!(alice.cseqs_sent, [1, 2, 3, 4]);
    assert_eq!(bob.cseqs_sent, [1, 2]);
    assert_eq!(alice.refused, [(491, Method::Invite, 1)]);
    assert_eq!(bob.refused, [(491, Method::Invite, 2)]);
    assert_eq!(
        world.sent(ALICE, is_status(491)).len() + world.sent(BOB, is_status(491)).len(),
        2
    );
    // One ACK per 2xx: the call's, Alice's re-INVITE's, and Bob's (sent by Bob).
    assert_eq!(alice.acks_for_2xx, 2);
    assert_eq!(bob.acks_for_2xx, 1);
    // The BYE went out at 15 s and got its 200 20 ms later.
    let byes = world.sent(ALICE, |message| message.method() == Some(&Method::Bye));
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].0, BYE_AT);
    let bye_ok = world.sent(BOB, |message| {
        message.status() == Some(200) && message.cseq().is_ok_and(|cseq| cseq.method == Method::Bye)
    });
    assert_eq!(
        bye_ok.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        [BYE_AT + ms(10)]
    );
    // Bob's 2xx to the call went out once: the ACK came before its retransmission timer.
    let invite_oks = world.sent(BOB, |message| {
        message.status() == Some(200)
            && message
                .cseq()
                .is_ok_and(|cseq| cseq.number == 1 && cseq.method == Method::Invite)
    });
    assert_eq!(invite_oks.len(), 1);
}

#[test]
fn unacknowledged_2xx_is_retransmitted_until_the_ack_gets_through() {
    // A slow path: the ACK needs 600 ms back, so Bob's first 2xx retransmission (T1) goes out
    // and Alice acknowledges it again.
    let model = LinkModel {
        loss: 0.0,
        duplication: 0.0,
        min_delay: Duration::from_millis(300),
        max_delay: Duration::from_millis(300),
    };
    let mut world = World::new(11, model);
    world.run(Duration::from_secs(120));
    check_invariants(&world).unwrap();
    let invite_oks = world.sent(BOB, |message| {
        message.status() == Some(200)
            && message
                .cseq()
                .is_ok_and(|cseq| cseq.number == 1 && cseq.method == Method::Invite)
    });
    assert_eq!(
        invite_oks.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        [Duration::from_millis(300), Duration::from_millis(800)]
    );
    // Alice acknowledged both copies; Bob's dialog took the first ACK and dropped the second.
    let call_acks = world.sent(ALICE, |message| {
        message.method() == Some(&Method::Ack) && message.cseq().is_ok_and(|cseq| cseq.number == 1)
    });
    assert_eq!(
        call_acks.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        [Duration::from_millis(600), Duration::from_millis(1100)]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Over any seeded network with jitter, duplicates and loss, the glare still resolves by
    /// the §14.1 back-off, every request is accepted in order, and the call ends cleanly.
    #[test]
    fn glare_resolves_over_any_network(
        seed in any::<u64>(),
        loss in 0.0..0.15f64,
        duplication in 0.0..0.3f64,
        max_delay_ms in 1u64..150,
    ) {
        let model = LinkModel {
            loss,
            duplication,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(max_delay_ms),
        };
        let mut world = World::new(seed, model);
        world.run(Duration::from_secs(300));
        check_invariants(&world)?;
    }
}
