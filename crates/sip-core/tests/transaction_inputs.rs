//! Any sequence of inputs — well-formed, odd or hostile, in any order — leaves the
//! transaction layer consistent: no panic, no overdue timer, every transaction accounted for.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use sip_core::transaction::{
    ClientInviteState, Event, Incoming, Reliability, ServerInviteState, ServerNonInviteState,
    TransactionId, TransactionLayer, TransactionState, make_response,
};
use sip_message::Message;

#[derive(Debug, Clone)]
enum Operation {
    /// A message from the network built from the pools below.
    Incoming {
        is_request: bool,
        method: usize,
        branch: usize,
        status: u16,
        to_tag: bool,
        reliable: bool,
    },
    /// Raw bytes from the network.
    Garbage(Vec<u8>),
    SendRequest {
        method: usize,
        branch: usize,
    },
    SendResponse {
        pick: usize,
        status: u16,
    },
    SendCancel {
        pick: usize,
    },
    TransportError {
        pick: usize,
    },
    Advance {
        milliseconds: u64,
    },
}

const METHODS: [&str; 6] = ["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE", "invite"];
const BRANCHES: [&str; 4] = ["z9hG4bKa", "z9hG4bKb", "rfc2543", "z9hG4bKc"];

fn message_text(
    is_request: bool,
    method: usize,
    branch: usize,
    status: u16,
    to_tag: bool,
) -> String {
    let method = METHODS[method % METHODS.len()];
    let branch = BRANCHES[branch % BRANCHES.len()];
    let start = if is_request {
        format!("{method} sip:bob@127.0.0.1 SIP/2.0")
    } else {
        format!("SIP/2.0 {status} Whatever")
    };
    let tag = if to_tag { ";tag=t1" } else { "" };
    format!(
        "{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:7000;branch={branch}\r\nTo: <sip:bob@example.com>{tag}\r\n\
From: <sip:alice@example.com>;tag=f1\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => (
            any::<bool>(),
            0..6usize,
            0..4usize,
            prop::sample::select(vec![100u16, 180, 200, 202, 300, 404, 487, 500, 699]),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(is_request, method, branch, status, to_tag, reliable)| Operation::Incoming {
                is_request,
                method,
                branch,
                status,
                to_tag,
                reliable,
            }),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Operation::Garbage),
        2 => (0..6usize, 0..4usize).prop_map(|(method, branch)| Operation::SendRequest { method, branch }),
        2 => (any::<usize>(), prop::sample::select(vec![100u16, 180, 200, 486, 603]))
            .prop_map(|(pick, status)| Operation::SendResponse { pick, status }),
        1 => any::<usize>().prop_map(|pick| Operation::SendCancel { pick }),
        1 => any::<usize>().prop_map(|pick| Operation::TransportError { pick }),
        2 => (0u64..40_000).prop_map(|milliseconds| Operation::Advance { milliseconds }),
    ]
}

struct Bookkeeping {
    created: Vec<TransactionId>,
    live: HashSet<TransactionId>,
    terminated: HashSet<TransactionId>,
}

impl Bookkeeping {
    fn created(&mut self, id: TransactionId) {
        if !self.live.contains(&id) && !self.terminated.contains(&id) {
            self.created.push(id);
            self.live.insert(id);
        }
    }

    fn pick(&self, pick: usize) -> Option<TransactionId> {
        (!self.created.is_empty()).then(|| self.created[pick % self.created.len()])
    }
}

fn drain(layer: &mut TransactionLayer, books: &mut Bookkeeping) -> Result<(), TestCaseError> {
    while let Some(transmit) = layer.poll_transmit() {
        prop_assert!(
            Message::parse(transmit.payload).is_ok(),
            "the layer sent bytes that do not parse"
        );
    }
    while let Some((id, event)) = layer.poll_event() {
        prop_assert!(
            !books.terminated.contains(&id),
            "event {:?} after Terminated",
            event
        );
        prop_assert!(books.live.contains(&id), "event for an unknown transaction");
        if matches!(event, Event::Terminated) {
            books.live.remove(&id);
            books.terminated.insert(id);
        }
    }
    prop_assert_eq!(layer.len(), books.live.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_input_sequence_keeps_the_layer_consistent(operations in prop::collection::vec(operation(), 1..60)) {
        let base = Instant::now();
        let mut now = base;
        let peer = SocketAddr::from(([127, 0, 0, 1], 7000));
        let mut layer = TransactionLayer::default();
        let mut books = Bookkeeping { created: Vec::new(), live: HashSet::new(), terminated: HashSet::new() };
        let mut requests: HashMap<TransactionId, Message> = HashMap::new();
        for operation in operations {
            match operation {
                Operation::Incoming { is_request, method, branch, status, to_tag, reliable } => {
                    let text = message_text(is_request, method, branch, status, to_tag);
                    let message = Message::parse(Bytes::from(text)).expect("pool messages parse");
                    let reliability = if reliable { Reliability::Reliable } else { Reliability::Unreliable };
                    match layer.handle_incoming(now, message, peer, reliability) {
                        Ok(Incoming::NewRequest { id, request }) => {
                            books.created(id);
                            requests.insert(id, request);
                        }
                        Ok(Incoming::Cancel { id, request, invite }) => {
                            books.created(id);
                            requests.insert(id, request);
                            if let Some(invite) = invite {
                                prop_assert!(books.live.contains(&invite), "CANCEL matched a dead INVITE");
                            }
                        }
                        Ok(Incoming::Absorbed(id) | Incoming::Response(id)) => {
                            prop_assert!(books.live.contains(&id), "matched a dead transaction");
                        }
                        Ok(_) | Err(_) => {}
                    }
                }
                Operation::Garbage(bytes) => {
                    if let Ok(message) = Message::parse(Bytes::from(bytes)) {
                        // Parsed garbage may be refused with an error; it must not panic.
                        let _ = layer.handle_incoming(now, message, peer, Reliability::Unreliable);
                    }
                }
                Operation::SendRequest { method, branch } => {
                    let text = message_text(true, method, branch, 0, false);
                    let request = Message::parse(Bytes::from(text)).expect("pool messages parse");
                    if let Ok(id) = layer.send_request(now, request.clone(), peer, Reliability::Unreliable) {
                        books.created(id);
                        requests.insert(id, request);
                    }
                }
                Operation::SendResponse { pick, status } => {
                    if let Some(id) = books.pick(pick)
                        && let Some(request) = requests.get(&id)
                    {
                        let response = make_response(request, status, "Any", Some(b"x"));
                        let result = layer.send_response(now, id, response);
                        if books.terminated.contains(&id) {
                            prop_assert!(result.is_err(), "a terminated transaction accepted a response");
                        }
                    }
                }
                Operation::SendCancel { pick } => {
                    if let Some(id) = books.pick(pick)
                        && let Ok(cancel) = layer.send_cancel(now, id)
                    {
                        books.created(cancel);
                    }
                }
                Operation::TransportError { pick } => {
                    if let Some(id) = books.pick(pick) {
                        let result = layer.handle_transport_error(now, id);
                        prop_assert_eq!(result.is_ok(), !books.terminated.contains(&id));
                    }
                }
                Operation::Advance { milliseconds } => {
                    now += Duration::from_millis(milliseconds);
                    layer.handle_timeout(now);
                    let next = layer.poll_timeout();
                    prop_assert!(next.is_none_or(|next| next > now), "a timer is overdue after handle_timeout");
                }
            }
            drain(&mut layer, &mut books)?;
        }
        // Let every timer run out.
        for _ in 0..8 {
            now += Duration::from_secs(40);
            layer.handle_timeout(now);
            drain(&mut layer, &mut books)?;
        }
        // What may outlive every timer: transactions waiting for an answer RFC 3261 gives no
        // timer to — a server transaction its TU never answered, a client INVITE after its
        // provisional response.
        for id in &books.live {
            let state = layer.state(*id);
            prop_assert!(
                matches!(
                    state,
                    Some(TransactionState::ServerInvite(ServerInviteState::Proceeding))
                        | Some(TransactionState::ServerNonInvite(
                            ServerNonInviteState::Trying | ServerNonInviteState::Proceeding
                        ))
                        | Some(TransactionState::ClientInvite(ClientInviteState::Proceeding))
                ),
                "{:?} outlived its timers",
                state
            );
        }
        prop_assert_eq!(layer.poll_timeout(), None);
    }
}
