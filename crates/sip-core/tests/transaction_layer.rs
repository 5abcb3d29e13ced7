//! The transaction layer's matching rules (RFC 3261 §17.1.3, §17.2.3 with the RFC 2543
//! fallback, RFC 6026) and its timer heap, driven through the public API only.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_core::transaction::{
    ClientInviteState, Event, Incoming, Reliability, ServerInviteState, Timer, TransactionError,
    TransactionId, TransactionLayer, TransactionState, make_response,
};
use sip_message::{Message, Method};

const UDP: Reliability = Reliability::Unreliable;

fn client_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15060))
}

fn server_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15062))
}

fn request(method: &str, branch: &str, cseq: u32, to_tag: Option<&str>) -> Message {
    let to_tag = to_tag.map(|tag| format!(";tag={tag}")).unwrap_or_default();
    let text = format!(
        "{method} sip:bob@127.0.0.1:15062 SIP/2.0\r
Via: SIP/2.0/UDP 127.0.0.1:15060;branch={branch}\r
Max-Forwards: 70\r
To: <sip:bob@example.com>{to_tag}\r
From: <sip:alice@example.com>;tag=alice1\r
Call-ID: call-{branch}\r
CSeq: {cseq} {method}\r
Content-Length: 0\r
\r
"
    );
    Message::parse(Bytes::from(text)).expect("test request parses")
}

fn answer(request: &Message, code: u16) -> Message {
    make_response(request, code, "Test", Some(b"bobtag"))
}

fn events(layer: &mut TransactionLayer) -> Vec<(TransactionId, Event)> {
    std::iter::from_fn(|| layer.poll_event()).collect()
}

fn transmitted(layer: &mut TransactionLayer) -> Vec<Message> {
    std::iter::from_fn(|| layer.poll_transmit())
        .map(|transmit| Message::parse(transmit.payload).expect("we send parseable messages"))
        .collect()
}

fn statuses(messages: &[Message]) -> Vec<Option<u16>> {
    messages.iter().map(Message::status).collect()
}

fn new_request(incoming: Incoming) -> TransactionId {
    match incoming {
        Incoming::NewRequest { id, .. } => id,
        other => panic!("expected a new request, got {other:?}"),
    }
}

#[test]
fn retransmitted_request_is_absorbed_and_answered_with_the_last_response() {
    let now = Instant::now();
    let mut server = TransactionLayer::default();
    let register = request("REGISTER", "z9hG4bKreg1", 1, None);
    let id = new_request(
        server
            .handle_incoming(now, register.clone(), client_address(), UDP)
            .unwrap(),
    );
    assert!(
        transmitted(&mut server).is_empty(),
        "non-INVITE gets no automatic 100"
    );
    // Trying: silently absorbed.
    let again = server
        .handle_incoming(now, register.clone(), client_address(), UDP)
        .unwrap();
    assert!(matches!(again, Incoming::Absorbed(absorbed) if absorbed == id));
    assert!(transmitted(&mut server).is_empty());
    assert_eq!(
        server.request(id).and_then(|kept| kept.call_id().ok()),
        register.call_id().ok(),
        "until the final response the TU can still read the request"
    );
    server
        .send_response(now, id, answer(&register, 200))
        .unwrap();
    assert_eq!(statuses(&transmitted(&mut server)), [Some(200)]);
    assert!(
        server.request(id).is_none(),
        "Completed keeps only the key and the response bytes"
    );
    let again = server
        .handle_incoming(now, register, client_address(), UDP)
        .unwrap();
    assert!(matches!(again, Incoming::Absorbed(absorbed) if absorbed == id));
    assert_eq!(statuses(&transmitted(&mut server)), [Some(200)]);
    assert_eq!(server.len(), 1);
}

#[test]
fn timer_j_follows_the_rfc_unless_configured_shorter() {
    use sip_core::transaction::LayerConfig;
    let now = Instant::now();
    for (config, wait) in [
        (LayerConfig::default(), Duration::from_secs(32)),
        (
            LayerConfig {
                timer_j: Some(Duration::from_secs(5)),
                ..LayerConfig::default()
            },
            Duration::from_secs(5),
        ),
    ] {
        let mut server = TransactionLayer::new(config);
        let register = request("REGISTER", "z9hG4bKregj", 1, None);
        let id = new_request(
            server
                .handle_incoming(now, register.clone(), client_address(), UDP)
                .unwrap(),
        );
        server
            .send_response(now, id, answer(&register, 200))
            .unwrap();
        transmitted(&mut server);
        assert_eq!(server.poll_timeout(), Some(now + wait));
        // Just before Timer J a retransmission still gets the 200 again.
        let before = now + wait - Duration::from_millis(1);
        server.handle_timeout(before);
        let again = server
            .handle_incoming(before, register.clone(), client_address(), UDP)
            .unwrap();
        assert!(matches!(again, Incoming::Absorbed(absorbed) if absorbed == id));
        assert_eq!(statuses(&transmitted(&mut server)), [Some(200)]);
        server.handle_timeout(now + wait);
        assert!(server.is_empty(), "Timer J ended the transaction");
        // Afterwards the same request is new to the layer.
        let late = server
            .handle_incoming(now + wait, register, client_address(), UDP)
            .unwrap();
        assert!(matches!(late, Incoming::NewRequest { .. }));
    }
}

#[test]
fn ack_for_a_non_2xx_response_is_absorbed_by_the_invite_transaction() {
    let now = Instant::now();
    let mut server = TransactionLayer::default();
    let invite = request("INVITE", "z9hG4bKinv1", 1, None);
    let id = new_request(
        server
            .handle_incoming(now, invite.clone(), client_address(), UDP)
            .unwrap(),
    );
    assert_eq!(statuses(&transmitted(&mut server)), [Some(100)]);
    server.send_response(now, id, answer(&invite, 486)).unwrap();
    transmitted(&mut server);
    let ack = request("ACK", "z9hG4bKinv1", 1, Some("bobtag"));
    let incoming = server
        .handle_incoming(now, ack, client_address(), UDP)
        .unwrap();
    assert!(matches!(incoming, Incoming::Absorbed(absorbed) if absorbed == id));
    assert_eq!(
        server.state(id),
        Some(TransactionState::ServerInvite(ServerInviteState::Confirmed))
    );
    assert!(events(&mut server).is_empty(), "the TU never sees this ACK");
}

#[test]
fn ack_for_2xx_reaches_the_tu_while_accepted_and_is_unmatched_afterwards() {
    let now = Instant::now();
    let mut server = TransactionLayer::default();
    let invite = request("INVITE", "z9hG4bKinv2", 1, None);
    let id = new_request(
        server
            .handle_incoming(now, invite.clone(), client_address(), UDP)
            .unwrap(),
    );
    server.send_response(now, id, answer(&invite, 200)).unwrap();
    let ack = request("ACK", "z9hG4bKack2", 1, Some("bobtag"));
    // The ACK for a 2xx has its own branch (RFC 3261 §13.2.2.4), so it matches no transaction.
    let incoming = server
        .handle_incoming(now, ack, client_address(), UDP)
        .unwrap();
    assert!(matches!(incoming, Incoming::UnmatchedAck(_)));
    // An ACK that does carry the INVITE's branch (RFC 2543-style UAs) goes to the TU as an event.
    let same_branch_ack = request("ACK", "z9hG4bKinv2", 1, Some("bobtag"));
    let incoming = server
        .handle_incoming(now, same_branch_ack, client_address(), UDP)
        .unwrap();
    assert!(matches!(incoming, Incoming::Absorbed(absorbed) if absorbed == id));
    assert!(
        events(&mut server)
            .iter()
            .any(|(event_id, event)| *event_id == id && matches!(event, Event::Acknowledged(_)))
    );
    // INVITE retransmissions in Accepted are absorbed without a response (RFC 6026 §8.7).
    transmitted(&mut server);
    server
        .handle_incoming(now, invite.clone(), client_address(), UDP)
        .unwrap();
    assert!(transmitted(&mut server).is_empty());
    // Timer L ends it.
    server.handle_timeout(now + Duration::from_secs(32));
    assert!(server.is_empty());
    let late = server
        .handle_incoming(
            now,
            request("ACK", "z9hG4bKinv2", 1, Some("bobtag")),
            client_address(),
            UDP,
        )
        .unwrap();
    assert!(matches!(late, Incoming::UnmatchedAck(_)));
}

#[test]
fn rfc_2543_requests_match_without_a_magic_cookie() {
    let now = Instant::now();
    let mut server = TransactionLayer::default();
    let invite = request("INVITE", "oldstyle1", 7, None);
    let id = new_request(
        server
            .handle_incoming(now, invite.clone(), client_address(), UDP)
            .unwrap(),
    );
    transmitted(&mut server);
    server.send_response(now, id, answer(&invite, 603)).unwrap();
    transmitted(&mut server);
    let retransmission = server
        .handle_incoming(now, invite, client_address(), UDP)
        .unwrap();
    assert!(matches!(retransmission, Incoming::Absorbed(absorbed) if absorbed == id));
    assert_eq!(statuses(&transmitted(&mut server)), [Some(603)]);
    // ACK with a To tag other than our response's: not this transaction.
    let wrong = request("ACK", "oldstyle1", 7, Some("sometag"));
    assert!(matches!(
        server
            .handle_incoming(now, wrong, client_address(), UDP)
            .unwrap(),
        Incoming::UnmatchedAck(_)
    ));
    // The ACK carrying our tag matches although the INVITE had none.
    let ack = request("ACK", "oldstyle1", 7, Some("bobtag"));
    let incoming = server
        .handle_incoming(now, ack, client_address(), UDP)
        .unwrap();
    assert!(matches!(incoming, Incoming::Absorbed(absorbed) if absorbed == id));
    assert_eq!(
        server.state(id),
        Some(TransactionState::ServerInvite(ServerInviteState::Confirmed))
    );
    // Another CSeq is another transaction.
    let next = request("INVITE", "oldstyle1", 8, None);
    let other = new_request(
        server
            .handle_incoming(now, next, client_address(), UDP)
            .unwrap(),
    );
    assert_ne!(other, id);
}

#[test]
fn cancel_matches_its_invite_but_is_a_transaction_of_its_own() {
    let now = Instant::now();
    let mut server = TransactionLayer::default();
    let invite = request("INVITE", "z9hG4bKinv3", 1, None);
    let invite_id = new_request(
        server
            .handle_incoming(now, invite, client_address(), UDP)
            .unwrap(),
    );
    let cancel = request("CANCEL", "z9hG4bKinv3", 1, None);
    let Incoming::Cancel { id, invite, .. } = server
        .handle_incoming(now, cancel, client_address(), UDP)
        .unwrap()
    else {
        panic!("expected a CANCEL");
    };
    assert_ne!(id, invite_id);
    assert_eq!(invite, Some(invite_id));
    assert_eq!(server.len(), 2);
    let orphan = request("CANCEL", "z9hG4bKnothing", 1, None);
    let Incoming::Cancel { invite, .. } = server
        .handle_incoming(now, orphan, client_address(), UDP)
        .unwrap()
    else {
        panic!("expected a CANCEL");
    };
    assert_eq!(invite, None, "the TU answers 481");
}

#[test]
fn responses_find_their_client_transaction_and_strays_are_reported() {
    let now = Instant::now();
    let mut client = TransactionLayer::default();
    let invite = request("INVITE", "z9hG4bKc1", 1, None);
    let id = client
        .send_request(now, invite.clone(), server_address(), UDP)
        .unwrap();
    assert_eq!(transmitted(&mut client).len(), 1);
    let incoming = client
        .handle_incoming(now, answer(&invite, 180), server_address(), UDP)
        .unwrap();
    assert!(matches!(incoming, Incoming::Response(matched) if matched == id));
    client
        .handle_incoming(now, answer(&invite, 200), server_address(), UDP)
        .unwrap();
    client
        .handle_incoming(now, answer(&invite, 200), server_address(), UDP)
        .unwrap();
    let codes: Vec<_> = events(&mut client)
        .into_iter()
        .filter_map(|(_, event)| match event {
            Event::Response(response) => response.status(),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        [180, 200, 200],
        "the 2xx retransmission reaches the TU (RFC 6026)"
    );
    assert_eq!(
        client.state(id),
        Some(TransactionState::ClientInvite(ClientInviteState::Accepted))
    );
    let other = request("INVITE", "z9hG4bKunknown", 1, None);
    let stray = client
        .handle_incoming(now, answer(&other, 200), server_address(), UDP)
        .unwrap();
    assert!(matches!(stray, Incoming::StrayResponse(_)));
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let now = Instant::now();
    let mut client = TransactionLayer::default();
    let invite = request("INVITE", "z9hG4bKc2", 1, None);
    let invite_id = client
        .send_request(now, invite.clone(), server_address(), UDP)
        .unwrap();
    transmitted(&mut client);
    let cancel_id = client.send_cancel(now, invite_id).unwrap();
    assert_eq!(
        client.send_cancel(now, invite_id).unwrap(),
        cancel_id,
        "idempotent"
    );
    assert!(
        transmitted(&mut client).is_empty(),
        "RFC 3261 §9.1: not before a 1xx"
    );
    client
        .handle_incoming(now, answer(&invite, 180), server_address(), UDP)
        .unwrap();
    let sent = transmitted(&mut client);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method(), Some(&Method::Cancel));
    assert_eq!(sent[0].top_via().unwrap().branch(), Some(&b"z9hG4bKc2"[..]));
}

#[test]
fn an_unsent_cancel_is_dropped_when_the_final_response_comes_first() {
    let now = Instant::now();
    let mut client = TransactionLayer::default();
    let invite = request("INVITE", "z9hG4bKc3", 1, None);
    let invite_id = client
        .send_request(now, invite.clone(), server_address(), UDP)
        .unwrap();
    let cancel_id = client.send_cancel(now, invite_id).unwrap();
    transmitted(&mut client);
    client
        .handle_incoming(now, answer(&invite, 486), server_address(), UDP)
        .unwrap();
    let sent = transmitted(&mut client);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method(), Some(&Method::Ack));
    assert!(client.state(cancel_id).is_none());
    assert!(
        events(&mut client)
            .iter()
            .any(|(id, event)| *id == cancel_id && matches!(event, Event::Terminated))
    );
    assert_eq!(
        client.send_cancel(now, invite_id),
        Err(TransactionError::NotCancellable)
    );
}

#[test]
fn poll_timeout_is_the_earliest_timer_of_all_transactions() {
    let base = Instant::now();
    let mut client = TransactionLayer::default();
    let mut ids = Vec::new();
    // Start 50 OPTIONS transactions 10 ms apart, in reverse so the heap order matters.
    for index in (0..50u32).rev() {
        let started = base + Duration::from_millis(u64::from(index) * 10);
        let options = request("OPTIONS", &format!("z9hG4bKopt{index}"), 1, None);
        ids.push(
            client
                .send_request(started, options, server_address(), UDP)
                .unwrap(),
        );
    }
    assert_eq!(
        client.poll_timeout(),
        Some(base + Duration::from_millis(500))
    );
    // Every transaction ends with Timer F at start + 32 s; nothing lives past it.
    let mut timeouts = Vec::new();
    while let Some(deadline) = client.poll_timeout() {
        client.handle_timeout(deadline);
        for (id, event) in events(&mut client) {
            if matches!(event, Event::Timeout(Timer::F)) {
                timeouts.push((deadline, id));
            }
        }
    }
    assert!(client.is_empty());
    assert_eq!(timeouts.len(), 50);
    for (deadline, id) in timeouts {
        let index = 49 - ids.iter().position(|candidate| *candidate == id).unwrap() as u64;
        assert_eq!(
            deadline,
            base + Duration::from_millis(index * 10) + Duration::from_secs(32)
        );
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let now = Instant::now();
    let mut layer = TransactionLayer::default();
    let ack = request("ACK", "z9hG4bKx", 1, None);
    assert_eq!(
        layer.send_request(now, ack, server_address(), UDP),
        Err(TransactionError::AckCreatesNoTransaction)
    );
    let options = request("OPTIONS", "z9hG4bKdup", 1, None);
    let id = layer
        .send_request(now, options.clone(), server_address(), UDP)
        .unwrap();
    assert_eq!(
        layer.send_request(now, options.clone(), server_address(), UDP),
        Err(TransactionError::DuplicateTransaction)
    );
    assert!(matches!(
        layer.send_response(now, id, answer(&options, 200)),
        Err(TransactionError::WrongTransactionKind { .. })
    ));
    assert!(matches!(
        layer.send_cancel(now, id),
        Err(TransactionError::WrongTransactionKind { .. })
    ));
    let no_cseq = Message::parse(Bytes::from_static(
        b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKq\r\nContent-Length: 0\r\n\r\n",
    ))
    .unwrap();
    assert!(matches!(
        layer.handle_incoming(now, no_cseq.clone(), client_address(), UDP),
        Err(TransactionError::Key(_))
    ));
    assert!(matches!(
        layer.send_request(now, no_cseq, server_address(), UDP),
        Err(TransactionError::Key(_))
    ));
    layer.handle_transport_error(now, id).unwrap();
    assert!(layer.is_empty());
    assert_eq!(
        layer.handle_transport_error(now, id),
        Err(TransactionError::UnknownTransaction)
    );
    let lost = answer(&options, 200);
    assert_eq!(
        layer.send_response(now, id, lost),
        Err(TransactionError::UnknownTransaction)
    );
}

#[test]
fn extreme_timer_settings_neither_panic_nor_spin() {
    use sip_core::transaction::{LayerConfig, TimerConfig};
    let now = Instant::now();
    let huge = LayerConfig {
        timers: TimerConfig {
            t1: Duration::MAX,
            t2: Duration::MAX,
            t4: Duration::MAX,
        },
        send_trying: true,
        timer_j: None,
    };
    let mut layer = TransactionLayer::new(huge);
    let invite = request("INVITE", "z9hG4bKhuge", 1, None);
    layer
        .send_request(now, invite, server_address(), UDP)
        .unwrap();
    assert_eq!(transmitted(&mut layer).len(), 1);
    assert_eq!(
        layer.poll_timeout(),
        None,
        "no representable deadline, no timer"
    );

    let zero = LayerConfig {
        timers: TimerConfig {
            t1: Duration::ZERO,
            t2: Duration::ZERO,
            t4: Duration::ZERO,
        },
        send_trying: true,
        timer_j: None,
    };
    let mut layer = TransactionLayer::new(zero);
    let options = request("OPTIONS", "z9hG4bKzero", 1, None);
    layer
        .send_request(now, options, server_address(), UDP)
        .unwrap();
    // Retransmissions fall back to a 1 ms floor; Timer F (64·0) fires at once.
    assert_eq!(layer.poll_timeout(), Some(now));
    layer.handle_timeout(now);
    assert!(layer.is_empty());
    let timed_out = events(&mut layer)
        .into_iter()
        .any(|(_, event)| matches!(event, Event::Timeout(Timer::F)));
    assert!(timed_out);
}
