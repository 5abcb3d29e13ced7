//! A deterministic virtual-time simulation: a client-side and a server-side
//! [`TransactionLayer`] joined by a seeded lossy network (loss, duplication, reordering through
//! random delay), each with a small transaction user (TU) that behaves as RFC 3261 asks of a
//! UA core. Time never comes from the machine clock: the simulator moves a virtual `now` from
//! one pending event to the next.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sip_core::simulation::{LinkModel, Wire};
use sip_core::transaction::{
    Event, Incoming, LayerConfig, Reliability, Timer, TimerConfig, TransactionId, TransactionLayer,
    make_response, make_timeout_response, new_branch, new_tag,
};
use sip_message::{HeaderName, Message, MessageBuilder, Method};

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const T4: Duration = Duration::from_secs(5);
const SIXTY_FOUR_T1: Duration = Duration::from_secs(32);
const TIMER_D: Duration = Duration::from_secs(32);

fn client_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 25060))
}

fn server_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 25062))
}

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

/// One datagram put on the wire, for the assertions.
#[derive(Debug, Clone)]
struct Sent {
    at: Duration,
    from: SocketAddr,
    message: Message,
}

type DropRule = Box<dyn FnMut(&Sent) -> bool>;

struct Network {
    wire: Wire<StdRng>,
    log: Vec<Sent>,
    drop_rule: DropRule,
}

impl Network {
    fn send(
        &mut self,
        base: Instant,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        payload: Bytes,
    ) {
        let message = Message::parse(payload.clone()).expect("layers send parseable messages");
        let sent = Sent {
            at: now - base,
            from,
            message,
        };
        let dropped_by_rule = (self.drop_rule)(&sent);
        self.log.push(sent);
        if !dropped_by_rule {
            self.wire.carry(now, from, to, payload);
        }
    }

    fn next_delivery(&self) -> Option<Instant> {
        self.wire.next_delivery()
    }

    fn pop_due(&mut self, now: Instant) -> Option<(SocketAddr, SocketAddr, Bytes)> {
        self.wire.pop_due(now)
    }
}

/// What the server TU does with a request, carried in the request itself (`X-Answer`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// Final response `code` after `delay`; INVITEs get 180 Ringing first.
    Final { code: u16, delay: Duration },
    /// 180 Ringing and never a final response (until cancelled).
    RingForever,
}

impl Answer {
    fn header_value(self) -> String {
        match self {
            Answer::Final { code, delay } => format!("{code} {}", delay.as_millis()),
            Answer::RingForever => "ring".to_owned(),
        }
    }

    fn of(request: &Message) -> Answer {
        let value = request
            .header(&HeaderName::from_bytes(b"X-Answer"))
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_else(|| "200 0".to_owned());
        if value == "ring" {
            return Answer::RingForever;
        }
        let mut parts = value.split(' ');
        let code = parts
            .next()
            .and_then(|code| code.parse().ok())
            .unwrap_or(200);
        let delay = parts.next().and_then(|ms| ms.parse().ok()).unwrap_or(0);
        Answer::Final {
            code,
            delay: Duration::from_millis(delay),
        }
    }
}

/// What the client TU learned about one client transaction.
#[derive(Debug, Default, Clone)]
struct ClientRecord {
    request: Option<Message>,
    method: Option<Method>,
    call_id: Bytes,
    created: Duration,
    provisional: Vec<u16>,
    finals: Vec<(Duration, u16)>,
    timeouts: Vec<(Duration, Timer)>,
    terminated: Option<Duration>,
    cancel: Option<TransactionId>,
}

/// What the server TU did for one server transaction.
#[derive(Debug, Default, Clone)]
struct ServerRecord {
    method: Option<Method>,
    call_id: Bytes,
    final_sent: Option<(Duration, u16)>,
    confirmed_at: Option<Duration>,
    timeouts: Vec<(Duration, Timer)>,
    terminated: Option<Duration>,
    responses_sent_by_tu: usize,
}

#[derive(Debug)]
enum ServerAction {
    Final {
        id: TransactionId,
        code: u16,
    },
    RetransmitSuccess {
        id: TransactionId,
        interval: Duration,
        response: Box<Message>,
    },
}

#[derive(Debug)]
enum ClientAction {
    Send(Box<Message>),
    /// The UA's own guard (RFC 3261 §16.6's Timer C idea): cancel an INVITE still
    /// unanswered after three minutes.
    CancelIfUnanswered(TransactionId),
}

struct Simulation {
    base: Instant,
    now: Instant,
    network: Network,
    client: TransactionLayer,
    server: TransactionLayer,
    rng: StdRng,
    cancel_on_ringing: bool,
    client_actions: Vec<(Instant, ClientAction)>,
    server_actions: Vec<(Instant, ServerAction)>,
    client_records: HashMap<TransactionId, ClientRecord>,
    server_records: HashMap<TransactionId, ServerRecord>,
    server_requests_seen: Vec<(Bytes, Method, u32)>,
    server_acks_for_success: HashMap<Bytes, usize>,
    server_acknowledged_events: usize,
    server_absorbed: usize,
    client_acks_for_success: usize,
    client_stray_responses: usize,
    timeout_responses: Vec<Message>,
    /// What both layers are told about the transport (the model still decides loss).
    reliability: Reliability,
}

impl Simulation {
    fn new(seed: u64, model: LinkModel) -> Self {
        let base = Instant::now();
        let config = LayerConfig {
            timers: TimerConfig {
                t1: T1,
                t2: T2,
                t4: T4,
            },
            send_trying: true,
            timer_j: None,
        };
        Self {
            base,
            now: base,
            network: Network {
                wire: Wire::new(model, StdRng::seed_from_u64(seed)),
                log: Vec::new(),
                drop_rule: Box::new(|_| false),
            },
            client: TransactionLayer::new(config),
            server: TransactionLayer::new(config),
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            cancel_on_ringing: false,
            client_actions: Vec::new(),
            server_actions: Vec::new(),
            client_records: HashMap::new(),
            server_records: HashMap::new(),
            server_requests_seen: Vec::new(),
            server_acks_for_success: HashMap::new(),
            server_acknowledged_events: 0,
            server_absorbed: 0,
            client_acks_for_success: 0,
            client_stray_responses: 0,
            timeout_responses: Vec::new(),
            reliability: Reliability::Unreliable,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// A request from the client UA with a fresh branch, Call-ID and From tag.
    fn request(&mut self, method: &str, answer: Answer) -> Message {
        let branch = String::from_utf8(new_branch(&mut self.rng).to_vec()).unwrap();
        let call_id = String::from_utf8(new_tag(&mut self.rng).to_vec()).unwrap();
        let tag = String::from_utf8(new_tag(&mut self.rng).to_vec()).unwrap();
        let text = format!(
            "{method} sip:bob@127.0.0.1:25062 SIP/2.0\r
Via: SIP/2.0/UDP 127.0.0.1:25060;branch={branch}\r
Max-Forwards: 70\r
To: <sip:bob@example.com>\r
From: <sip:alice@example.com>;tag={tag}\r
Call-ID: {call_id}\r
CSeq: 1 {method}\r
X-Answer: {}\r
Content-Length: 0\r
\r
",
            answer.header_value()
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    fn send_at(&mut self, at: Duration, request: Message) {
        self.client_actions
            .push((self.base + at, ClientAction::Send(Box::new(request))));
    }

    /// Runs until nothing is pending or `limit` of virtual time has passed.
    fn run(&mut self, limit: Duration) {
        let deadline = self.base + limit;
        loop {
            self.pump();
            let next = [
                self.network.next_delivery(),
                self.client.poll_timeout(),
                self.server.poll_timeout(),
                self.client_actions.iter().map(|(at, _)| *at).min(),
                self.server_actions.iter().map(|(at, _)| *at).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { break };
            if next > deadline {
                break;
            }
            self.now = self.now.max(next);
            let now = self.now;
            while let Some((from, to, payload)) = self.network.pop_due(now) {
                self.deliver(from, to, payload);
                self.pump();
            }
            self.client.handle_timeout(now);
            self.server.handle_timeout(now);
            self.pump();
            self.run_client_actions();
            self.run_server_actions();
        }
    }

    /// Moves everything the layers queued onto the network and to the TUs, until quiet.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(transmit) = self.client.poll_transmit() {
                progressed = true;
                let (base, now) = (self.base, self.now);
                self.network.send(
                    base,
                    now,
                    client_address(),
                    transmit.destination,
                    transmit.payload,
                );
            }
            while let Some(transmit) = self.server.poll_transmit() {
                progressed = true;
                let (base, now) = (self.base, self.now);
                self.network.send(
                    base,
                    now,
                    server_address(),
                    transmit.destination,
                    transmit.payload,
                );
            }
            while let Some((id, event)) = self.client.poll_event() {
                progressed = true;
                self.client_event(id, event);
            }
            while let Some((id, event)) = self.server.poll_event() {
                progressed = true;
                self.server_event(id, event);
            }
            if !progressed {
                break;
            }
        }
    }

    fn deliver(&mut self, from: SocketAddr, to: SocketAddr, payload: Bytes) {
        let message = Message::parse(payload).expect("delivered bytes parse");
        let now = self.now;
        if to == client_address() {
            match self
                .client
                .handle_incoming(now, message, from, self.reliability)
                .unwrap()
            {
                Incoming::Response(_) => {}
                Incoming::StrayResponse(_) => self.client_stray_responses += 1,
                other => panic!("the client UA got an unexpected request: {other:?}"),
            }
            return;
        }
        let is_ack = message.method() == Some(&Method::Ack);
        match self
            .server
            .handle_incoming(now, message, from, self.reliability)
            .unwrap()
        {
            Incoming::NewRequest { id, request } => self.server_new_request(id, request),
            Incoming::Cancel {
                id,
                request,
                invite,
            } => {
                self.server_new_record(id, &request);
                let ok = make_response(&request, 200, "OK", Some(b"srv"));
                self.server_send(id, ok);
                // RFC 3261 §9.2: the INVITE, still unanswered, gets 487.
                if let Some(invite) = invite
                    && self
                        .server_records
                        .get(&invite)
                        .is_some_and(|record| record.final_sent.is_none())
                {
                    self.server_final(invite, 487);
                }
            }
            Incoming::Absorbed(id) => {
                self.server_absorbed += 1;
                // The first ACK after a non-2xx final response confirms the transaction.
                let elapsed = self.elapsed();
                if let Some(record) = self.server_records.get_mut(&id)
                    && is_ack
                    && record.final_sent.is_some_and(|(_, code)| code >= 300)
                    && record.confirmed_at.is_none()
                {
                    record.confirmed_at = Some(elapsed);
                }
            }
            Incoming::UnmatchedAck(ack) => {
                let call_id = Bytes::copy_from_slice(ack.call_id().unwrap());
                *self.server_acks_for_success.entry(call_id).or_default() += 1;
            }
            other => panic!("the server UA got an unexpected message: {other:?}"),
        }
    }

    fn server_new_record(&mut self, id: TransactionId, request: &Message) {
        let record = ServerRecord {
            method: request.method().cloned(),
            call_id: Bytes::copy_from_slice(request.call_id().unwrap()),
            ..ServerRecord::default()
        };
        let cseq = request.cseq().unwrap();
        self.server_requests_seen
            .push((record.call_id.clone(), cseq.method.clone(), cseq.number));
        self.server_records.insert(id, record);
    }

    fn server_new_request(&mut self, id: TransactionId, request: Message) {
        self.server_new_record(id, &request);
        let is_invite = request.method() == Some(&Method::Invite);
        if is_invite {
            let ringing = make_response(&request, 180, "Ringing", Some(b"srv"));
            self.server_send(id, ringing);
        }
        match Answer::of(&request) {
            Answer::Final { code, delay } if delay.is_zero() => self.server_final(id, code),
            Answer::Final { code, delay } => self
                .server_actions
                .push((self.now + delay, ServerAction::Final { id, code })),
            Answer::RingForever => {}
        }
    }

    fn server_send(&mut self, id: TransactionId, response: Message) {
        let now = self.now;
        let elapsed = self.elapsed();
        let status = response.status().unwrap_or_default();
        if self.server.send_response(now, id, response).is_ok()
            && let Some(record) = self.server_records.get_mut(&id)
        {
            record.responses_sent_by_tu += 1;
            if status >= 200 && record.final_sent.is_none() {
                record.final_sent = Some((elapsed, status));
            }
        }
    }

    fn server_final(&mut self, id: TransactionId, code: u16) {
        let Some(request) = self.server.request(id).cloned() else {
            return;
        };
        if self
            .server_records
            .get(&id)
            .is_some_and(|record| record.final_sent.is_some())
        {
            return;
        }
        let response = make_response(&request, code, "Final", Some(b"srv"));
        self.server_send(id, response.clone());
        // RFC 3261 §13.3.1.4: the UAS core retransmits its 2xx, T1 doubling up to T2, until
        // the ACK arrives; the transaction never does (RFC 6026).
        if request.method() == Some(&Method::Invite) && (200..300).contains(&code) {
            self.server_actions.push((
                self.now + T1,
                ServerAction::RetransmitSuccess {
                    id,
                    interval: T1,
                    response: Box::new(response),
                },
            ));
        }
    }

    fn run_server_actions(&mut self) {
        let now = self.now;
        let due: Vec<_> = {
            let (due, later) = std::mem::take(&mut self.server_actions)
                .into_iter()
                .partition(|(at, _)| *at <= now);
            self.server_actions = later;
            due
        };
        for (_, action) in due {
            match action {
                ServerAction::Final { id, code } => self.server_final(id, code),
                ServerAction::RetransmitSuccess {
                    id,
                    interval,
                    response,
                } => {
                    let Some(record) = self.server_records.get(&id) else {
                        continue;
                    };
                    let acked = self.server_acks_for_success.contains_key(&record.call_id);
                    let sent_at = record.final_sent.map(|(at, _)| at).unwrap_or_default();
                    if acked || self.elapsed() - sent_at >= SIXTY_FOUR_T1 {
                        continue;
                    }
                    self.server_send(id, (*response).clone());
                    let interval = (interval * 2).min(T2);
                    self.server_actions.push((
                        now + interval,
                        ServerAction::RetransmitSuccess {
                            id,
                            interval,
                            response,
                        },
                    ));
                }
            }
        }
    }

    fn server_event(&mut self, id: TransactionId, event: Event) {
        let elapsed = self.elapsed();
        let record = self.server_records.entry(id).or_default();
        match event {
            Event::Acknowledged(ack) => {
                self.server_acknowledged_events += 1;
                let call_id = Bytes::copy_from_slice(ack.call_id().unwrap());
                *self.server_acks_for_success.entry(call_id).or_default() += 1;
            }
            Event::Timeout(timer) => record.timeouts.push((elapsed, timer)),
            Event::Terminated => record.terminated = Some(elapsed),
            other => panic!("unexpected server event {other:?}"),
        }
    }

    fn run_client_actions(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.client_actions)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.client_actions = later;
        for (_, action) in due {
            match action {
                ClientAction::Send(request) => {
                    let id = self
                        .client
                        .send_request(now, (*request).clone(), server_address(), self.reliability)
                        .unwrap();
                    self.client_records.insert(
                        id,
                        ClientRecord {
                            request: Some((*request).clone()),
                            method: request.method().cloned(),
                            call_id: Bytes::copy_from_slice(request.call_id().unwrap()),
                            created: self.elapsed(),
                            ..ClientRecord::default()
                        },
                    );
                    if request.method() == Some(&Method::Invite) {
                        self.client_actions.push((
                            now + Duration::from_secs(180),
                            ClientAction::CancelIfUnanswered(id),
                        ));
                    }
                }
                ClientAction::CancelIfUnanswered(id) => {
                    let unanswered = self.client_records.get(&id).is_some_and(|record| {
                        record.finals.is_empty() && record.timeouts.is_empty()
                    });
                    if unanswered {
                        self.cancel(id);
                    }
                }
            }
            self.pump();
        }
    }

    fn cancel(&mut self, invite: TransactionId) {
        let now = self.now;
        if let Ok(cancel) = self.client.send_cancel(now, invite) {
            let call_id = self.client_records[&invite].call_id.clone();
            self.client_records
                .entry(cancel)
                .or_insert_with(|| ClientRecord {
                    method: Some(Method::Cancel),
                    call_id,
                    created: now - self.base,
                    ..ClientRecord::default()
                });
            if let Some(record) = self.client_records.get_mut(&invite) {
                record.cancel = Some(cancel);
            }
        }
    }

    fn client_event(&mut self, id: TransactionId, event: Event) {
        let elapsed = self.elapsed();
        match event {
            Event::Response(response) => {
                let status = response.status().unwrap();
                let record = self.client_records.get_mut(&id).expect("known transaction");
                let is_invite = record.method == Some(Method::Invite);
                if status < 200 {
                    record.provisional.push(status);
                    if is_invite
                        && status == 180
                        && self.cancel_on_ringing
                        && record.cancel.is_none()
                    {
                        self.cancel(id);
                    }
                    return;
                }
                record.finals.push((elapsed, status));
                if is_invite && status < 300 {
                    self.send_ack_for_success(id, &response);
                }
            }
            Event::Timeout(timer) => {
                let record = self.client_records.get_mut(&id).expect("known transaction");
                record.timeouts.push((elapsed, timer));
                // RFC 3261 §8.1.3.1: the TU acts as if a 408 had arrived. The transaction is
                // already gone from the layer, so the TU uses its own copy of the request.
                if let Some(request) = &record.request {
                    self.timeout_responses.push(make_timeout_response(request));
                }
            }
            Event::Terminated => {
                let record = self.client_records.get_mut(&id).expect("known transaction");
                record.terminated = Some(elapsed);
            }
            other => panic!("unexpected client event {other:?}"),
        }
    }

    /// RFC 3261 §13.2.2.4: the UAC core acknowledges every 2xx itself, in a new transaction-less
    /// request with its own branch. It builds the ACK from its own copy of the INVITE: the
    /// transaction drops the request once a final response arrived.
    fn send_ack_for_success(&mut self, invite_id: TransactionId, response: &Message) {
        let Some(invite) = self
            .client_records
            .get(&invite_id)
            .and_then(|record| record.request.clone())
        else {
            return;
        };
        let branch = String::from_utf8(new_branch(&mut self.rng).to_vec()).unwrap();
        let cseq = invite.cseq().unwrap().number;
        let ack = MessageBuilder::request(
            Method::Ack,
            Bytes::copy_from_slice(invite.request_uri_bytes().unwrap()),
        )
        .header(
            HeaderName::Via,
            format!("SIP/2.0/UDP 127.0.0.1:25060;branch={branch}"),
        )
        .header(HeaderName::MaxForwards, "70")
        .header(
            HeaderName::From,
            Bytes::copy_from_slice(invite.header(&HeaderName::From).unwrap()),
        )
        .header(
            HeaderName::To,
            Bytes::copy_from_slice(response.header(&HeaderName::To).unwrap()),
        )
        .header(
            HeaderName::CallId,
            Bytes::copy_from_slice(invite.call_id().unwrap()),
        )
        .header(HeaderName::CSeq, format!("{cseq} ACK"))
        .build();
        self.client_acks_for_success += 1;
        let (base, now) = (self.base, self.now);
        self.network.send(
            base,
            now,
            client_address(),
            server_address(),
            ack.to_bytes(),
        );
    }

    /// Times (from the start) at which `from` sent a message satisfying `filter`.
    fn send_times(&self, from: SocketAddr, filter: impl Fn(&Message) -> bool) -> Vec<Duration> {
        self.network
            .log
            .iter()
            .filter(|sent| sent.from == from && filter(&sent.message))
            .map(|sent| sent.at)
            .collect()
    }
}

fn is_method(method: Method) -> impl Fn(&Message) -> bool {
    move |message| message.method() == Some(&method)
}

fn is_status(code: u16) -> impl Fn(&Message) -> bool {
    move |message| message.status() == Some(code)
}

/// Offsets of a retransmission schedule that starts at `first`, sends at `first + T1`, then
/// doubles the interval (capped at `cap` when given) while below `first + 64·T1`.
fn retransmission_schedule(first: Duration, cap: Option<Duration>) -> Vec<Duration> {
    let mut times = vec![first];
    let mut interval = T1;
    let mut at = first + T1;
    while at < first + SIXTY_FOUR_T1 {
        times.push(at);
        interval = match cap {
            Some(cap) => (interval * 2).min(cap),
            None => interval * 2,
        };
        at += interval;
    }
    times
}

fn finals(records: &HashMap<TransactionId, ClientRecord>, method: Method) -> Vec<Vec<u16>> {
    records
        .values()
        .filter(|record| record.method == Some(method.clone()))
        .map(|record| record.finals.iter().map(|(_, code)| *code).collect())
        .collect()
}

#[test]
fn invite_answered_with_200_over_a_clean_network() {
    let mut simulation = Simulation::new(1, LinkModel::CLEAN);
    let invite = simulation.request(
        "INVITE",
        Answer::Final {
            code: 200,
            delay: seconds(1.0),
        },
    );
    simulation.send_at(Duration::ZERO, invite);
    simulation.run(Duration::from_secs(120));
    let record = simulation.client_records.values().next().unwrap().clone();
    assert_eq!(record.provisional, [100, 180]);
    assert_eq!(record.finals, [(seconds(1.02), 200)]);
    assert!(record.timeouts.is_empty());
    assert_eq!(simulation.client_acks_for_success, 1);
    assert_eq!(
        simulation.server_acks_for_success.values().sum::<usize>(),
        1
    );
    // One INVITE, one 200: the ACK came back (20 ms) before the TU's first 2xx retransmission.
    assert_eq!(
        simulation.send_times(client_address(), is_method(Method::Invite)),
        [Duration::ZERO]
    );
    assert_eq!(
        simulation.send_times(server_address(), is_status(200)),
        [seconds(1.01)]
    );
    // Timer M ends the client transaction 64·T1 after the 2xx, Timer L the server's.
    assert_eq!(record.terminated, Some(seconds(1.02) + SIXTY_FOUR_T1));
    let server_record = simulation.server_records.values().next().unwrap();
    assert_eq!(
        server_record.terminated,
        Some(seconds(1.01) + SIXTY_FOUR_T1)
    );
    assert!(simulation.client.is_empty() && simulation.server.is_empty());
}

#[test]
fn invite_retransmissions_follow_timer_a_and_timer_b_times_out() {
    let mut simulation = Simulation::new(2, LinkModel::CLEAN);
    simulation.network.drop_rule = Box::new(|sent| sent.from == client_address());
    let invite = simulation.request(
        "INVITE",
        Answer::Final {
            code: 200,
            delay: Duration::ZERO,
        },
    );
    simulation.send_at(Duration::ZERO, invite);
    simulation.run(Duration::from_secs(120));
    // 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: T1 doubling, no cap for INVITE.
    let sent = simulation.send_times(client_address(), is_method(Method::Invite));
    assert_eq!(sent, retransmission_schedule(Duration::ZERO, None));
    assert_eq!(sent.len(), 7);
    let record = simulation.client_records.values().next().unwrap();
    assert_eq!(record.timeouts, [(SIXTY_FOUR_T1, Timer::B)]);
    assert!(record.finals.is_empty());
    assert_eq!(record.terminated, Some(SIXTY_FOUR_T1));
    assert_eq!(simulation.timeout_responses.len(), 1);
    assert_eq!(simulation.timeout_responses[0].status(), Some(408));
}

#[test]
fn non_invite_retransmissions_follow_timer_e_capped_at_t2_and_timer_f_times_out() {
    let mut simulation = Simulation::new(3, LinkModel::CLEAN);
    simulation.network.drop_rule = Box::new(|sent| sent.from == client_address());
    let options = simulation.request(
        "OPTIONS",
        Answer::Final {
            code: 200,
            delay: Duration::ZERO,
        },
    );
    simulation.send_at(seconds(2.0), options);
    simulation.run(Duration::from_secs(120));
    let sent = simulation.send_times(client_address(), is_method(Method::Options));
    let expected = retransmission_schedule(seconds(2.0), Some(T2));
    assert_eq!(sent, expected);
    // 0.5, 1, 2, 4, 4, 4 … : the interval stops doubling at T2.
    assert_eq!(sent[5] - sent[4], T2);
    assert_eq!(sent[6] - sent[5], T2);
    let record = simulation.client_records.values().next().unwrap();
    assert_eq!(record.timeouts, [(seconds(2.0) + SIXTY_FOUR_T1, Timer::F)]);
    assert_eq!(simulation.timeout_responses[0].status(), Some(408));
}

#[test]
fn server_retransmits_a_rejection_on_timer_g_until_timer_h_when_acks_are_lost() {
    let mut simulation = Simulation::new(4, LinkModel::CLEAN);
    simulation.network.drop_rule = Box::new(|sent| sent.message.method() == Some(&Method::Ack));
    let invite = simulation.request(
        "INVITE",
        Answer::Final {
            code: 486,
            delay: seconds(0.25),
        },
    );
    simulation.send_at(Duration::ZERO, invite);
    simulation.run(Duration::from_secs(120));
    // The 486 goes out when the TU answers (10 ms delivery + 250 ms) and on Timer G after.
    let answered = seconds(0.26);
    let sent = simulation.send_times(server_address(), is_status(486));
    assert_eq!(sent, retransmission_schedule(answered, Some(T2)));
    let server_record = simulation.server_records.values().next().unwrap();
    assert_eq!(
        server_record.timeouts,
        [(answered + SIXTY_FOUR_T1, Timer::H)]
    );
    // The client TU saw the 486 once; its transaction acknowledged every copy.
    let record = simulation.client_records.values().next().unwrap();
    assert_eq!(record.finals, [(answered + seconds(0.01), 486)]);
    let acks = simulation.send_times(client_address(), is_method(Method::Ack));
    assert_eq!(acks.len(), sent.len());
    assert!(simulation.client.is_empty() && simulation.server.is_empty());
}

#[test]
fn ack_for_a_rejection_is_absorbed_by_the_server_transaction() {
    let mut simulation = Simulation::new(5, LinkModel::CLEAN);
    let invite = simulation.request(
        "INVITE",
        Answer::Final {
            code: 603,
            delay: Duration::ZERO,
        },
    );
    simulation.send_at(Duration::ZERO, invite);
    simulation.run(Duration::from_secs(120));
    assert_eq!(
        simulation.send_times(server_address(), is_status(603)),
        [seconds(0.01)]
    );
    assert_eq!(
        simulation.send_times(client_address(), is_method(Method::Ack)),
        [seconds(0.02)]
    );
    assert!(
        simulation.server_acks_for_success.is_empty(),
        "the TU never saw that ACK"
    );
    let server_record = simulation.server_records.values().next().unwrap();
    assert_eq!(server_record.confirmed_at, Some(seconds(0.03)));
    // Timer I (T4) after the ACK; Timer D (32 s) at the client.
    assert_eq!(server_record.terminated, Some(seconds(0.03) + T4));
    let record = simulation.client_records.values().next().unwrap();
    assert_eq!(record.terminated, Some(seconds(0.02) + TIMER_D));
}

#[test]
fn cancel_of_a_pending_invite_yields_487_and_the_cancel_gets_200() {
    let mut simulation = Simulation::new(6, LinkModel::CLEAN);
    simulation.cancel_on_ringing = true;
    let invite = simulation.request("INVITE", Answer::RingForever);
    simulation.send_at(Duration::ZERO, invite);
    simulation.run(Duration::from_secs(120));
    assert_eq!(
        finals(&simulation.client_records, Method::Invite),
        [vec![487]]
    );
    assert_eq!(
        finals(&simulation.client_records, Method::Cancel),
        [vec![200]]
    );
    let cancels = simulation.send_times(client_address(), is_method(Method::Cancel));
    assert_eq!(cancels, [seconds(0.02)], "sent once the 180 arrived");
    // The CANCEL was matched to the INVITE on the server; the ACK for 487 was absorbed.
    let invite_record = simulation
        .server_records
        .values()
        .find(|record| record.method == Some(Method::Invite))
        .unwrap();
    assert_eq!(invite_record.final_sent, Some((seconds(0.03), 487)));
    assert!(invite_record.confirmed_at.is_some());
    assert!(simulation.server_acks_for_success.is_empty());
    assert!(simulation.client.is_empty() && simulation.server.is_empty());
}

#[test]
fn success_retransmissions_reach_the_client_tu_and_only_the_server_tu_retransmits_them() {
    let mut simulation = Simulation::new(7, LinkModel::CLEAN);
    let mut acks_dropped = 0;
    simulation.network.drop_rule = Box::new(move |sent| {
        let drop = sent.message.method() == Some(&Method::Ack) && acks_dropped < 3;
        acks_dropped += usize::from(drop);
        drop
    });
    let invite = simulation.request(
        "INVITE",
        Answer::Final {
            code: 200,
            delay: Duration::ZERO,
        },
    );
    simulation.send_at(Duration::ZERO, invite);
    simulation.run(Duration::from_secs(120));
    // The server TU's schedule: 0.01 s, then +0.5, +1, +2: the fourth ACK gets through.
    let sent = simulation.send_times(server_address(), is_status(200));
    assert_eq!(
        sent,
        [seconds(0.01), seconds(0.51), seconds(1.51), seconds(3.51)]
    );
    let server_record = simulation.server_records.values().next().unwrap();
    // Every 200 on the wire was a TU send (1 final + 3 retransmissions), none from a timer.
    assert_eq!(server_record.responses_sent_by_tu, 1 + sent.len());
    // Accepted passes each copy to the client TU (RFC 6026), which acknowledges each.
    let record = simulation.client_records.values().next().unwrap();
    assert_eq!(
        record
            .finals
            .iter()
            .map(|(_, code)| *code)
            .collect::<Vec<_>>(),
        [200; 4]
    );
    assert_eq!(simulation.client_acks_for_success, 4);
    assert_eq!(simulation.client_stray_responses, 0);
}

#[test]
fn duplicated_requests_are_absorbed_and_answered_with_the_last_response() {
    let model = LinkModel {
        duplication: 1.0,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(60),
        ..LinkModel::CLEAN
    };
    let mut simulation = Simulation::new(8, model);
    let register = simulation.request(
        "REGISTER",
        Answer::Final {
            code: 200,
            delay: Duration::ZERO,
        },
    );
    simulation.send_at(Duration::ZERO, register);
    let invite = simulation.request(
        "INVITE",
        Answer::Final {
            code: 486,
            delay: Duration::ZERO,
        },
    );
    simulation.send_at(seconds(1.0), invite);
    simulation.run(Duration::from_secs(120));
    // Each request reached the server TU once although every datagram arrived twice.
    let mut seen = simulation.server_requests_seen.clone();
    seen.sort_by_key(|(_, method, _)| method.to_string());
    assert_eq!(seen.len(), 2);
    assert!(simulation.server_absorbed >= 2);
    // The REGISTER's copy got the 200 again (a resend by the transaction, not the TU).
    let register_record = simulation
        .server_records
        .values()
        .find(|record| record.method == Some(Method::Register))
        .unwrap();
    assert_eq!(register_record.responses_sent_by_tu, 1);
    assert_eq!(
        simulation
            .send_times(server_address(), is_status(200))
            .len(),
        2
    );
    // The client TU saw one final response per request.
    assert_eq!(
        finals(&simulation.client_records, Method::Register),
        [vec![200]]
    );
    assert_eq!(
        finals(&simulation.client_records, Method::Invite),
        [vec![486]]
    );
    assert!(simulation.client.is_empty() && simulation.server.is_empty());
}

#[test]
fn reliable_transport_sends_once_and_ends_without_waiting() {
    let mut simulation = Simulation::new(9, LinkModel::CLEAN);
    simulation.reliability = Reliability::Reliable;
    let invite = simulation.request(
        "INVITE",
        Answer::Final {
            code: 486,
            delay: seconds(2.0),
        },
    );
    simulation.send_at(Duration::ZERO, invite);
    let message = simulation.request(
        "MESSAGE",
        Answer::Final {
            code: 200,
            delay: seconds(2.0),
        },
    );
    simulation.send_at(Duration::ZERO, message);
    simulation.run(Duration::from_secs(120));
    // No Timer A or E: each request went out once although the answers took 2 s.
    assert_eq!(
        simulation
            .send_times(client_address(), is_method(Method::Invite))
            .len(),
        1
    );
    assert_eq!(
        simulation
            .send_times(client_address(), is_method(Method::Message))
            .len(),
        1
    );
    assert_eq!(
        simulation
            .send_times(server_address(), is_status(486))
            .len(),
        1,
        "no Timer G"
    );
    // Timers D, K (client) and I, J (server) are zero: each transaction ends with its last
    // message.
    for record in simulation.client_records.values() {
        let (final_at, _) = record.finals[0];
        assert_eq!(record.terminated, Some(final_at));
    }
    for record in simulation.server_records.values() {
        let expected = record.confirmed_at.or(record.final_sent.map(|(at, _)| at));
        assert_eq!(record.terminated, expected, "{record:?}");
    }
    assert!(simulation.client.is_empty() && simulation.server.is_empty());
}

/// The termination times RFC 3261/6026 allow for a client transaction, given what it saw.
/// Over a reliable transport Timers D and K are zero.
fn client_terminal_deadlines(simulation: &Simulation, record: &ClientRecord) -> Vec<Duration> {
    let reliable = simulation.reliability == Reliability::Reliable;
    let (timer_d, timer_k) = if reliable {
        (Duration::ZERO, Duration::ZERO)
    } else {
        (TIMER_D, T4)
    };
    let mut deadlines = vec![record.created + SIXTY_FOUR_T1];
    match (&record.method, record.finals.first()) {
        (Some(Method::Invite), Some(&(at, code))) if code < 300 => {
            deadlines.push(at + SIXTY_FOUR_T1)
        }
        (Some(Method::Invite), Some(&(at, _))) => deadlines.push(at + timer_d),
        (Some(Method::Invite), None) => {
            // Timer B restarted when the CANCEL went out (RFC 3261 §9.1).
            let cancels = simulation.send_times(client_address(), |message| {
                message.method() == Some(&Method::Cancel)
                    && message.call_id().ok() == Some(&record.call_id[..])
            });
            if let Some(first) = cancels.first() {
                deadlines.push(*first + SIXTY_FOUR_T1);
            }
        }
        (_, Some(&(at, _))) => deadlines.push(at + timer_k),
        (_, None) => {}
    }
    deadlines
}

/// The termination times allowed for a server transaction: Timer H or L after the final
/// response of an INVITE, J after a non-INVITE's (zero when reliable), I after the ACK.
fn server_terminal_deadlines(record: &ServerRecord, reliability: Reliability) -> Vec<Duration> {
    let reliable = reliability == Reliability::Reliable;
    let mut deadlines = Vec::new();
    if let Some((at, _)) = record.final_sent {
        let is_invite = record.method == Some(Method::Invite);
        deadlines.push(if is_invite || !reliable {
            at + SIXTY_FOUR_T1
        } else {
            at
        });
    }
    if let Some(at) = record.confirmed_at {
        deadlines.push(if reliable { at } else { at + T4 });
    }
    deadlines
}

#[derive(Debug, Clone)]
struct Scenario {
    seed: u64,
    loss: f64,
    duplication: f64,
    max_delay_ms: u64,
    reliable: bool,
    requests: Vec<(bool, u16, u64, u64, bool)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        0.0..0.5f64,
        0.0..0.4f64,
        1u64..400,
        // One case in four runs over a reliable (stream) transport: no loss, no duplicates.
        prop::bool::weighted(0.25),
        prop::collection::vec(
            (
                any::<bool>(),
                prop::sample::select(vec![200u16, 202, 404, 486, 503, 603]),
                0u64..3000,
                0u64..5000,
                any::<bool>(),
            ),
            1..6,
        ),
    )
        .prop_map(
            |(seed, loss, duplication, max_delay_ms, reliable, requests)| Scenario {
                seed,
                loss: if reliable { 0.0 } else { loss },
                duplication: if reliable { 0.0 } else { duplication },
                max_delay_ms,
                reliable,
                requests,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Over any seeded network: every request ends with final responses of one kind or a
    /// timeout (never both, never two different non-2xx), the server TU sees each request
    /// once, and every transaction terminates exactly when one of its RFC timers allows.
    #[test]
    fn random_networks_keep_the_transaction_invariants(scenario in scenario()) {
        let model = LinkModel {
            loss: scenario.loss,
            duplication: scenario.duplication,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(scenario.max_delay_ms),
        };
        let mut simulation = Simulation::new(scenario.seed, model);
        if scenario.reliable {
            simulation.reliability = Reliability::Reliable;
        }
        simulation.cancel_on_ringing = scenario.requests.iter().any(|request| request.4);
        for (is_invite, code, answer_ms, start_ms, _) in &scenario.requests {
            let method = if *is_invite { "INVITE" } else { "MESSAGE" };
            let answer = Answer::Final { code: *code, delay: Duration::from_millis(*answer_ms) };
            let request = simulation.request(method, answer);
            simulation.send_at(Duration::from_millis(*start_ms), request);
        }
        simulation.run(Duration::from_secs(600));

        prop_assert!(simulation.client.is_empty(), "client transactions left: {}", simulation.client.len());
        prop_assert!(simulation.server.is_empty(), "server transactions left: {}", simulation.server.len());
        let sent_requests = scenario.requests.len();
        let originals = simulation
            .client_records
            .values()
            .filter(|record| record.method != Some(Method::Cancel))
            .count();
        prop_assert_eq!(originals, sent_requests);

        for record in simulation.client_records.values() {
            let codes: Vec<u16> = record.finals.iter().map(|(_, code)| *code).collect();
            let timed_out = !record.timeouts.is_empty();
            prop_assert!(timed_out == codes.is_empty(), "final responses {:?} with timeouts {:?}", codes, record.timeouts);
            prop_assert!(record.timeouts.len() <= 1);
            if record.method == Some(Method::Invite) {
                let successes = codes.iter().filter(|code| (200..300).contains(*code)).count();
                prop_assert!(successes == codes.len() || (successes == 0 && codes.len() <= 1), "{:?}", codes);
            } else {
                prop_assert!(codes.len() <= 1, "a non-INVITE passed up {:?}", codes);
            }
            let terminated = record.terminated.expect("every client transaction terminates");
            let deadlines = client_terminal_deadlines(&simulation, record);
            prop_assert!(deadlines.contains(&terminated), "terminated at {:?}, allowed {:?}", terminated, deadlines);
        }

        let mut seen = simulation.server_requests_seen.clone();
        let before = seen.len();
        seen.sort_by_key(|(call_id, method, number)| (call_id.clone(), method.to_string(), *number));
        seen.dedup();
        prop_assert_eq!(seen.len(), before, "a request reached the server TU twice");

        for record in simulation.server_records.values() {
            let terminated = record.terminated.expect("every server transaction terminates");
            let deadlines = server_terminal_deadlines(record, simulation.reliability);
            prop_assert!(deadlines.contains(&terminated), "server terminated at {:?}, allowed {:?} ({:?})", terminated, deadlines, record);
        }
    }
}
