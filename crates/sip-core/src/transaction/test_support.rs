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
