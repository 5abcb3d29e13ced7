//! Memory the transaction layer retains per transaction, and allocations per transaction, counted
//! by a global allocator (no timing; run with `cargo bench -p sip-core --bench
//! transaction_memory`).
//!
//! Each scenario opens `COUNT` transactions the way a proxy sees them (every datagram in its own
//! buffer, as the UDP transport copies it), drives them to the state they sit in while their
//! timers run, and reports the heap bytes still live per transaction and the allocations made per
//! transaction. It then fires every timer and checks the heap is back where it started.

// Counting heap bytes without a profiler dependency takes a global allocator, an `unsafe impl`;
// it forwards every call to `System` unchanged. Bench binary only.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_core::transaction::{
    ClientInviteTransaction, ClientNonInviteTransaction, Incoming, Reliability,
    ServerInviteTransaction, ServerNonInviteTransaction, TransactionLayer, make_response,
};
use sip_message::Message;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the counters
// only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const COUNT: u64 = 20_000;

/// A REGISTER as a proxy receives it from a load generator: with digest credentials, so about
/// the size of the second request of a registration.
fn register(n: u64) -> Bytes {
    let text = format!(
        "REGISTER sip:example.com SIP/2.0\r
Via: SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK{n:016x}\r
Max-Forwards: 70\r
From: <sip:user{n}@example.com>;tag={n:08x}\r
To: <sip:user{n}@example.com>\r
Call-ID: {n:016x}@192.0.2.1\r
CSeq: 2 REGISTER\r
Contact: <sip:user{n}@192.0.2.1:5060;transport=udp>;expires=3600\r
Authorization: Digest username=\"user{n}\", realm=\"example.com\", nonce=\"5f1c0a7e00000000a1b2c3d4e5f60718\", uri=\"sip:example.com\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{n:08x}\"\r
User-Agent: load-generator\r
Expires: 3600\r
Content-Length: 0\r
\r
"
    );
    Bytes::copy_from_slice(text.as_bytes())
}

fn invite(n: u64) -> Bytes {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let text = format!(
        "INVITE sip:callee{n}@example.com SIP/2.0\r
Via: SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK{n:016x}\r
Max-Forwards: 70\r
From: <sip:caller{n}@example.com>;tag={n:08x}\r
To: <sip:callee{n}@example.com>\r
Call-ID: {n:016x}@192.0.2.1\r
CSeq: 1 INVITE\r
Contact: <sip:caller{n}@192.0.2.1:5060>\r
Content-Type: application/sdp\r
Content-Length: {}\r
\r
{sdp}",
        sdp.len()
    );
    Bytes::copy_from_slice(text.as_bytes())
}

fn drain(layer: &mut TransactionLayer) {
    while layer.poll_transmit().is_some() {}
    while layer.poll_event().is_some() {}
}

/// Opens `COUNT` transactions with `open`, prints what they retain, then fires every timer and
/// checks that the memory came back (the layer itself stays alive: its shrunken tables remain).
fn measure(name: &str, mut open: impl FnMut(&mut TransactionLayer, Instant, u64)) {
    let start = Instant::now();
    let mut layer = TransactionLayer::default();
    let live_before = LIVE.load(Ordering::Relaxed);
    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    for n in 0..COUNT {
        open(&mut layer, start + Duration::from_micros(n), n);
        drain(&mut layer);
    }
    assert_eq!(
        layer.len(),
        COUNT as usize,
        "{name}: every transaction stays"
    );
    let retained = LIVE.load(Ordering::Relaxed) - live_before;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    layer.handle_timeout(start + Duration::from_secs(120));
    drain(&mut layer);
    assert!(layer.is_empty(), "{name}: every transaction ended");
    let left = LIVE.load(Ordering::Relaxed).saturating_sub(live_before);
    let _ = writeln!(
        std::io::stdout(),
        "{name:<58} retained {:>6.0} B/transaction, {:>4.1} allocations/transaction, \
         {left} B left after all timers",
        retained as f64 / COUNT as f64,
        allocations as f64 / COUNT as f64,
    );
    assert!(
        left < 512 * 1024,
        "{name}: {left} B still allocated after every transaction ended"
    );
}

fn main() {
    let _ = writeln!(
        std::io::stdout(),
        "sizes in bytes: Message {}, ServerNonInviteTransaction {}, ServerInviteTransaction {}, \
         ClientNonInviteTransaction {}, ClientInviteTransaction {}",
        size_of::<Message>(),
        size_of::<ServerNonInviteTransaction>(),
        size_of::<ServerInviteTransaction>(),
        size_of::<ClientNonInviteTransaction>(),
        size_of::<ClientInviteTransaction>(),
    );
    let source = SocketAddr::from(([192, 0, 2, 1], 5060));
    measure(
        "server non-INVITE: REGISTER, 200, Completed (Timer J)",
        |layer, now, n| {
            let message = Message::parse(register(n)).expect("REGISTER parses");
            let Ok(Incoming::NewRequest { id, request }) =
                layer.handle_incoming(now, message, source, Reliability::Unreliable)
            else {
                panic!("a new request");
            };
            let ok = make_response(&request, 200, "OK", Some(b"a6c85cf"));
            drop(request);
            layer.send_response(now, id, ok).expect("answer");
        },
    );
    measure(
        "server non-INVITE: REGISTER, retransmission, 401",
        |layer, now, n| {
            let message = Message::parse(register(n)).expect("REGISTER parses");
            let Ok(Incoming::NewRequest { id, request }) =
                layer.handle_incoming(now, message, source, Reliability::Unreliable)
            else {
                panic!("a new request");
            };
            let again = Message::parse(register(n)).expect("REGISTER parses");
            layer
                .handle_incoming(now, again, source, Reliability::Unreliable)
                .expect("absorbed");
            let challenge = make_response(&request, 401, "Unauthorized", Some(b"a6c85cf"));
            drop(request);
            layer.send_response(now, id, challenge).expect("answer");
        },
    );
    measure(
        "server INVITE: INVITE, 100, 180, 200, Accepted (Timer L)",
        |layer, now, n| {
            let message = Message::parse(invite(n)).expect("INVITE parses");
            let Ok(Incoming::NewRequest { id, request }) =
                layer.handle_incoming(now, message, source, Reliability::Unreliable)
            else {
                panic!("a new request");
            };
            let ringing = make_response(&request, 180, "Ringing", Some(b"a6c85cf"));
            let ok = make_response(&request, 200, "OK", Some(b"a6c85cf"));
            drop(request);
            layer.send_response(now, id, ringing).expect("180");
            layer.send_response(now, id, ok).expect("200");
        },
    );
    measure(
        "server INVITE: INVITE, 486, ACK, Confirmed (Timer I)",
        |layer, now, n| {
            let message = Message::parse(invite(n)).expect("INVITE parses");
            let Ok(Incoming::NewRequest { id, request }) =
                layer.handle_incoming(now, message, source, Reliability::Unreliable)
            else {
                panic!("a new request");
            };
            let busy = make_response(&request, 486, "Busy Here", Some(b"a6c85cf"));
            drop(request);
            layer.send_response(now, id, busy).expect("486");
            let ack = invite(n);
            let ack = String::from_utf8_lossy(&ack)
                .replacen("INVITE sip:", "ACK sip:", 1)
                .replacen("CSeq: 1 INVITE", "CSeq: 1 ACK", 1);
            let ack = Message::parse(Bytes::copy_from_slice(ack.as_bytes())).expect("ACK parses");
            assert!(matches!(
                layer.handle_incoming(now, ack, source, Reliability::Unreliable),
                Ok(Incoming::Absorbed(_))
            ));
        },
    );
    let destination = SocketAddr::from(([192, 0, 2, 2], 5060));
    measure(
        "client non-INVITE: REGISTER sent, 200, Completed (Timer K)",
        |layer, now, n| {
            let request = Message::parse(register(n)).expect("REGISTER parses");
            let ok = make_response(&request, 200, "OK", Some(b"a6c85cf"));
            let ok = Message::parse(ok.to_bytes()).expect("200 parses");
            layer
                .send_request(now, request, destination, Reliability::Unreliable)
                .expect("sent");
            layer
                .handle_incoming(now, ok, destination, Reliability::Unreliable)
                .expect("matched");
        },
    );
    measure(
        "client INVITE: INVITE sent, 180, 200, Accepted (Timer M)",
        |layer, now, n| {
            let request = Message::parse(invite(n)).expect("INVITE parses");
            let ringing = make_response(&request, 180, "Ringing", Some(b"a6c85cf"));
            let ringing = Message::parse(ringing.to_bytes()).expect("180 parses");
            let ok = make_response(&request, 200, "OK", Some(b"a6c85cf"));
            let ok = Message::parse(ok.to_bytes()).expect("200 parses");
            layer
                .send_request(now, request, destination, Reliability::Unreliable)
                .expect("sent");
            layer
                .handle_incoming(now, ringing, destination, Reliability::Unreliable)
                .expect("matched");
            layer
                .handle_incoming(now, ok, destination, Reliability::Unreliable)
                .expect("matched");
        },
    );
}
