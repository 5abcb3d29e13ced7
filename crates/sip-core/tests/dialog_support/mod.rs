//! Messages and a two-party call for the dialog tests: Alice (UAC of the INVITE) calls Bob
//! through proxies that record-route; every message crosses a "wire" (printed and parsed
//! again), so the tests see what a peer would.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::time::Instant;

use bytes::Bytes;
use sip_core::dialog::{Body, Dialog, DialogEvent, DialogState};
use sip_message::{HeaderName, Message};

pub const ALICE_CONTACT: &str = "<sip:alice@192.0.2.10:5060>";
pub const ALICE_URI: &str = "sip:alice@192.0.2.10:5060";
pub const BOB_CONTACT: &str = "<sip:bob@198.51.100.20:5060>";
pub const BOB_URI: &str = "sip:bob@198.51.100.20:5060";
pub const BOB_TAG: &str = "b0b";
pub const ALICE_TAG: &str = "a11ce";
pub const CALL_ID: &str = "f81d4fae-7dec@192.0.2.10";

pub fn parse(text: &str) -> Message {
    Message::parse(Bytes::from(text.replace('\n', "\r\n"))).expect("test message parses")
}

/// The message as the peer receives it: a request gets a Via (the dialog layer builds none),
/// then the bytes are printed and parsed again.
pub fn wire(message: &Message) -> Message {
    let mut message = message.clone();
    if message.is_request() && message.header(&HeaderName::Via).is_none() {
        message.push_via("SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKwire");
    }
    let parsed = Message::parse(message.to_bytes()).expect("what we built parses");
    parsed.validate().expect("what we built is well formed");
    parsed
}

/// Alice's INVITE as Bob receives it: `record_route` values (top first), CSeq `cseq`, an SDP
/// offer when `offer`.
pub fn invite_with(
    call_id: &str,
    from_tag: &str,
    cseq: u32,
    record_route: &[&str],
    offer: bool,
) -> Message {
    let mut text = format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinvite{cseq}
Max-Forwards: 68
To: Bob <sip:bob@biloxi.example.com>
From: \"Alice\" <sip:alice@atlanta.example.com>;tag={from_tag}
Call-ID: {call_id}
CSeq: {cseq} INVITE
Contact: {ALICE_CONTACT}
"
    );
    for route in record_route {
        text.push_str(&format!("Record-Route: {route}\n"));
    }
    let body = if offer {
        "v=0\no=alice 1 1 IN IP4 192.0.2.10\n"
    } else {
        ""
    };
    if offer {
        text.push_str("Content-Type: application/sdp\n");
    }
    text.push_str(&format!(
        "Content-Length: {}\n\n{body}",
        body.replace('\n', "\r\n").len()
    ));
    parse(&text)
}

pub fn invite(record_route: &[&str]) -> Message {
    invite_with(CALL_ID, ALICE_TAG, 1, record_route, true)
}

pub fn sdp(version: u32) -> Option<Body> {
    Some(Body::sdp(format!(
        "v=0\r\no=x {version} {version} IN IP4 192.0.2.1\r\n"
    )))
}

/// Bob's dialog for `invite` and Alice's, confirmed by a 200 (ACK not sent yet).
pub fn call_with(invite: &Message, now: Instant) -> (Dialog, Dialog, Message) {
    let mut bob = Dialog::from_uas_request(invite, BOB_TAG, BOB_CONTACT).expect("Bob's dialog");
    let ok = wire(&bob.respond(now, invite, 200, "OK", sdp(1)));
    let alice = Dialog::from_uac_response(invite, &ok).expect("Alice's dialog");
    assert_eq!(alice.state(), DialogState::Confirmed);
    assert_eq!(bob.state(), DialogState::Confirmed);
    (alice, bob, ok)
}

/// A confirmed and acknowledged call through `record_route`.
pub fn call(record_route: &[&str], now: Instant) -> (Dialog, Dialog) {
    let invite = invite(record_route);
    let (mut alice, mut bob, ok) = call_with(&invite, now);
    let ack = wire(&alice.ack_for_2xx(&ok, None).expect("ACK"));
    bob.receive_request(&ack).expect("Bob takes the ACK");
    assert!(!bob.invite_session().invite_in_progress());
    (alice, bob)
}

pub fn events(dialog: &mut Dialog) -> Vec<DialogEvent> {
    std::iter::from_fn(|| dialog.poll_event()).collect()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn routes(message: &Message) -> Vec<String> {
    message
        .header_values(&HeaderName::Route)
        .map(text)
        .collect()
}
