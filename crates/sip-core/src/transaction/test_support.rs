//! Messages for the unit tests, parsed from wire text so that tests see what a peer would send.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::Message;

use super::make_response;

pub(crate) fn parse(text: &str) -> Message {
    Message::parse(Bytes::from(text.replace('\n', "\r\n"))).expect("test message parses")
}

/// A request with `method`, top Via branch `branch` and CSeq `cseq_number method`.
pub(crate) fn request(method: &str, branch: &str) -> Message {
    parse(&format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch={branch}
Via: SIP/2.0/UDP proxy.atlanta.example.com;branch=z9hG4bKouter
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 {method}
Route: <sip:proxy.biloxi.example.com;lr>
Timestamp: 54
Content-Length: 0

"
    ))
}

pub(crate) fn invite() -> Message {
    request("INVITE", "z9hG4bK776asdhds")
}

pub(crate) fn response(request: &Message, code: u16) -> Message {
    let tag: &[u8] = b"a6c85cf";
    make_response(request, code, "Test", Some(tag))
}

pub(crate) fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5070))
}

pub(crate) fn ms(milliseconds: u64) -> Duration {
    Duration::from_millis(milliseconds)
}

/// A fixed base instant; tests only use offsets from it.
pub(crate) fn start() -> Instant {
    Instant::now()
}

/// The common driving surface of the four machines, so one helper runs the clock for all.
pub(crate) trait Driven {
    fn next_timeout(&self) -> Option<Instant>;
    fn fire(&mut self, now: Instant);
    fn next_transmit(&mut self) -> Option<super::Transmit>;
    fn next_event(&mut self) -> Option<super::Event>;
}

macro_rules! driven {
    ($($machine:ty),*) => {$(
        impl Driven for $machine {
            fn next_timeout(&self) -> Option<Instant> {
                self.poll_timeout()
            }
            fn fire(&mut self, now: Instant) {
                self.handle_timeout(now)
            }
            fn next_transmit(&mut self) -> Option<super::Transmit> {
                self.poll_transmit()
            }
            fn next_event(&mut self) -> Option<super::Event> {
                self.poll_event()
            }
        }
    )*};
}

driven!(
    super::ClientInviteTransaction,
    super::ClientNonInviteTransaction,
    super::ServerInviteTransaction,
    super::ServerNonInviteTransaction
);

/// Fires every timer up to `until`, at exactly its deadline; returns the offsets from `base`
/// at which something was transmitted.
pub(crate) fn run_until<M: Driven>(
    machine: &mut M,
    base: Instant,
    until: Instant,
) -> Vec<Duration> {
    let mut sent = Vec::new();
    while let Some(deadline) = machine.next_timeout() {
        if deadline > until {
            break;
        }
        machine.fire(deadline);
        while machine.next_transmit().is_some() {
            sent.push(deadline - base);
        }
    }
    sent
}

pub(crate) fn drain_transmits<M: Driven>(machine: &mut M) -> Vec<super::Transmit> {
    std::iter::from_fn(|| machine.next_transmit()).collect()
}

pub(crate) fn drain_events<M: Driven>(machine: &mut M) -> Vec<super::Event> {
    std::iter::from_fn(|| machine.next_event()).collect()
}

/// The offsets of a T1-doubling schedule capped at `cap` (None: uncapped), below `limit`.
pub(crate) fn doubling_schedule(
    t1: Duration,
    cap: Option<Duration>,
    limit: Duration,
) -> Vec<Duration> {
    let mut offsets = Vec::new();
    let mut interval = t1;
    let mut at = t1;
    while at < limit {
        offsets.push(at);
        interval = match cap {
            Some(cap) => (interval * 2).min(cap),
            None => interval * 2,
        };
        at += interval;
    }
    offsets
}
