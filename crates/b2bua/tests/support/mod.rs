//! Messages and helpers for the call core's tests: the caller's INVITE as the proxy hands it
//! to the B2BUA (three Vias, two Record-Routes, internal headers), a callee built on sip-core's
//! dialog layer, and a "wire" that prints and parses every message as a peer would see it.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::time::Instant;

use b2bua::{Action, Call, LegConfig, Outbound};
use bytes::Bytes;
use sip_core::dialog::{Body, Dialog};
use sip_message::{HeaderName, Message};

pub const A_CONTACT: &str = "<sip:b2bua-a@10.0.0.7:5080>";
pub const B_CONTACT: &str = "<sip:b2bua-b@10.0.0.8:5080>";
pub const TARGET: &str = "sip:+43123456@carrier.example.net";
pub const CALLEE_CONTACT: &str = "<sip:bob@198.51.100.9:5060;ob>";
pub const CALLEE_TAG: &str = "callee-tag-1";
pub const CALLER_CALL_ID: &str = "caller-call-id-1@192.168.1.50";
pub const CALLER_TAG: &str = "alice-tag-1";

/// What must never leave the A leg towards B.
pub const CALLER_SECRETS: &[&str] = &[
    CALLER_CALL_ID,
    CALLER_TAG,
    "z9hG4bKproxy1",
    "z9hG4bKlb1",
    "z9hG4bKphone1",
    "192.168.1.50",
    "203.0.113.5",
    "10.0.0.1",
    "10.0.0.2",
    "AlicePhone",
];

pub fn parse(text: &str) -> Message {
    Message::parse(Bytes::from(text.replace('\n', "\r\n"))).expect("test message parses")
}

pub fn text(message: &Message) -> String {
    String::from_utf8_lossy(&message.to_bytes()).into_owned()
}

/// The message as the peer receives it: a request without Via gets one (the core builds
/// none; the shell adds it), then the bytes are printed, parsed and validated.
pub fn wire(message: &Message, branch: &str) -> Message {
    let mut message = message.clone();
    if message.is_request() && message.header(&HeaderName::Via).is_none() {
        message.push_via(format!("SIP/2.0/UDP 10.0.0.7:5080;branch=z9hG4bK{branch}"));
    }
    let parsed = Message::parse(message.to_bytes()).expect("what the core built parses");
    parsed
        .validate()
        .expect("what the core built is well formed");
    parsed
}

pub fn sdp(owner: &str) -> Body {
    Body::sdp(format!(
        "v=0\r\no={owner} 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    ))
}

/// The caller's INVITE as the proxy relays it: `extra` header lines, an SDP offer when
/// `offer`.
pub fn caller_invite(extra: &str, offer: bool) -> Message {
    let body = if offer {
        String::from_utf8(sdp("alice").content.to_vec()).unwrap()
    } else {
        String::new()
    };
    let content_type = if offer {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    let text = format!(
        "INVITE sip:+43123456@voxide.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKproxy1\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKlb1\r\n\
Via: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bKphone1;received=203.0.113.5;rport=40000\r\n\
Record-Route: <sip:10.0.0.2:5062;lr>\r\n\
Record-Route: <sip:10.0.0.1;lr;r2=on>\r\n\
Max-Forwards: 68\r\n\
From: \"Alice\" <sip:alice@voxide.example>;tag={CALLER_TAG}\r\n\
To: <sip:+43123456@voxide.example>\r\n\
Call-ID: {CALLER_CALL_ID}\r\n\
CSeq: 314 INVITE\r\n\
Contact: <sip:alice@192.168.1.50:5060;alias=203.0.113.5~40000~1>\r\n\
X-Voxide-Source: udp 203.0.113.5:40000\r\n\
User-Agent: AlicePhone/1.0\r\n\
Supported: replaces, timer, 100rel\r\n\
Allow: INVITE, ACK, CANCEL, BYE, REFER, UPDATE, NOTIFY\r\n\
Subject: hello\r\n\
P-Asserted-Identity: <sip:+4311111@voxide.example>\r\n\
X-Secret: internal\r\n\
{extra}{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let message = Message::parse(Bytes::from(text)).expect("caller INVITE parses");
    message.validate().expect("caller INVITE is well formed");
    message
}

pub fn config() -> LegConfig {
    LegConfig::new(A_CONTACT, B_CONTACT)
}

/// Every action queued now.
pub fn drain(call: &mut Call) -> Vec<Action> {
    std::iter::from_fn(|| call.poll_action()).collect()
}

/// A call set up from `invite`, the B leg INVITE as the callee receives it, and the callee's
/// dialog (early, nothing sent yet).
pub struct Setup {
    pub now: Instant,
    pub call: Call,
    pub a_invite: Message,
    pub b_invite: Message,
    pub callee: Dialog,
}

pub fn setup_with(invite: Message, config: &LegConfig) -> Setup {
    let now = Instant::now();
    let (call, b_invite) = Call::new(now, &invite, &Outbound::new(TARGET), config, 0x5eed)
        .expect("the core takes the INVITE");
    let b_invite = wire(&b_invite, "binvite");
    let callee =
        Dialog::from_uas_request(&b_invite, CALLEE_TAG, CALLEE_CONTACT).expect("callee dialog");
    Setup {
        now,
        call,
        a_invite: invite,
        b_invite,
        callee,
    }
}

pub fn setup() -> Setup {
    setup_with(caller_invite("", true), &config())
}

impl Setup {
    /// The callee answers our INVITE with `status` (and `body`); the core takes it.
    pub fn callee_answers(&mut self, status: u16, body: Option<Body>) -> Message {
        let response = self.callee.respond(
            self.now,
            &self.b_invite,
            status,
            b2bua::call::default_reason(status),
            body,
        );
        let response = wire(&response, "");
        self.call.handle_from_b(self.now, response.clone());
        response
    }

    /// The answered call: 180, 200 with SDP, the caller's ACK relayed. Returns the caller's
    /// dialog and the callee's (both confirmed, ACK exchanged).
    pub fn answered(&mut self) -> Dialog {
        self.callee_answers(180, None);
        self.callee_answers(200, Some(sdp("bob")));
        let ok = responses_to_a(&drain(&mut self.call))
            .into_iter()
            .find(|response| response.status() == Some(200))
            .expect("200 relayed to the caller");
        let mut caller = Dialog::from_uac_response(&self.a_invite, &ok).expect("caller dialog");
        let ack = wire(&caller.ack_for_2xx(&ok, None).unwrap(), "callerack");
        self.call.handle_from_a(self.now, ack);
        let actions = drain(&mut self.call);
        let ack = requests_to_b(&actions)
            .pop()
            .expect("ACK relayed to the callee");
        self.callee
            .receive_request(&wire(&ack, "ack"))
            .expect("the callee takes the ACK");
        caller
    }
}

pub fn responses_to_a(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::RespondA(response) => Some(wire(response, "")),
            _ => None,
        })
        .collect()
}

pub fn responses_to_b(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::RespondB(response) => Some(wire(response, "")),
            _ => None,
        })
        .collect()
}

pub fn requests_to_a(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::SendToA(request) => Some(request.clone()),
            _ => None,
        })
        .collect()
}

pub fn requests_to_b(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::SendToB(request) => Some(request.clone()),
            _ => None,
        })
        .collect()
}

pub fn ended(actions: &[Action]) -> Vec<b2bua::EndReason> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Ended(reason) => Some(*reason),
            _ => None,
        })
        .collect()
}

pub fn header(message: &Message, name: &str) -> Option<String> {
    message
        .header(&HeaderName::from_bytes(name.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned())
}
