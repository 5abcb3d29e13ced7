//! Cost of the transaction layer per message, with a realistic table size: virtual time moves
//! 1 ms per iteration, so about 32 000 transactions stay live while their timers run.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use sip_core::transaction::{Incoming, Reliability, TransactionLayer, make_response};
use sip_message::Message;

fn request(method: &str, branch: u64) -> Message {
    let text = format!(
        "{method} sip:bob@192.0.2.2 SIP/2.0\r
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{branch:016x}\r
Max-Forwards: 70\r
To: <sip:bob@example.com>\r
From: <sip:alice@example.com>;tag=a{branch}\r
Call-ID: {branch}@192.0.2.1\r
CSeq: 1 {method}\r
Content-Length: 0\r
\r
"
    );
    Message::parse(Bytes::from(text)).expect("bench request parses")
}

fn drain(layer: &mut TransactionLayer) {
    while let Some(transmit) = layer.poll_transmit() {
        black_box(transmit);
    }
    while let Some(event) = layer.poll_event() {
        black_box(event);
    }
}

fn server_transactions(criterion: &mut Criterion) {
    let source = SocketAddr::from(([192, 0, 2, 1], 5060));
    let mut group = criterion.benchmark_group("server transaction");

    let mut layer = TransactionLayer::default();
    let mut now = Instant::now();
    let mut counter = 0u64;
    group.bench_function("REGISTER in, 200 out, Timer J", |bencher| {
        bencher.iter_batched(
            || {
                counter += 1;
                request("REGISTER", counter)
            },
            |register| {
                now += Duration::from_millis(1);
                let Ok(Incoming::NewRequest { id, request }) =
                    layer.handle_incoming(now, register, source, Reliability::Unreliable)
                else {
                    panic!("a new request");
                };
                let ok = make_response(&request, 200, "OK", Some(b"t"));
                layer.send_response(now, id, ok).expect("answer");
                layer.handle_timeout(now);
                drain(&mut layer);
            },
            BatchSize::SmallInput,
        );
    });

    let mut layer = TransactionLayer::default();
    let now = Instant::now();
    let invite = request("INVITE", 1);
    let Ok(Incoming::NewRequest { id, request }) =
        layer.handle_incoming(now, invite.clone(), source, Reliability::Unreliable)
    else {
        panic!("a new request");
    };
    layer
        .send_response(now, id, make_response(&request, 180, "Ringing", Some(b"t")))
        .expect("answer");
    drain(&mut layer);
    group.bench_function("INVITE retransmission absorbed, 180 re-sent", |bencher| {
        bencher.iter_batched(
            || invite.clone(),
            |retransmission| {
                let incoming = layer
                    .handle_incoming(now, retransmission, source, Reliability::Unreliable)
                    .expect("absorbed");
                black_box(incoming);
                drain(&mut layer);
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn client_transactions(criterion: &mut Criterion) {
    let destination = SocketAddr::from(([192, 0, 2, 2], 5060));
    let mut layer = TransactionLayer::default();
    let mut now = Instant::now();
    let mut counter = 0u64;
    criterion.bench_function("client INVITE: send, 180, 200, Timer M", |bencher| {
        bencher.iter_batched(
            || {
                counter += 1;
                let invite = request("INVITE", counter);
                let ringing = make_response(&invite, 180, "Ringing", Some(b"t"));
                let ok = make_response(&invite, 200, "OK", Some(b"t"));
                (invite, ringing, ok)
            },
            |(invite, ringing, ok)| {
                now += Duration::from_millis(1);
                layer
                    .send_request(now, invite, destination, Reliability::Unreliable)
                    .expect("sent");
                layer
                    .handle_incoming(now, ringing, destination, Reliability::Unreliable)
                    .expect("matched");
                layer
                    .handle_incoming(now, ok, destination, Reliability::Unreliable)
                    .expect("matched");
                layer.handle_timeout(now);
                drain(&mut layer);
            },
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, server_transactions, client_transactions);
criterion_main!(benches);
