//! The B2BUA call core fed arbitrary messages on both legs after a fixed INVITE.
//! Oracle: no panic, and topology hiding holds whatever arrives — no request the core builds
//! for the callee (B leg) carries the caller's Call-ID or tag, a Via, a Contact at the caller's
//! host or an internal `X-Voxide-*` header.
//!
//! Input: segments separated by `\0`; a segment's first byte picks the leg (even: A, odd: B)
//! and how far the clock moves (its value in 100 ms steps), the rest is parsed as a message.
#![no_main]

use std::time::{Duration, Instant};

use b2bua::{Action, Call, LegConfig, Outbound};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip_core::internal_headers::is_internal_header;
use sip_message::{HeaderName, Message};

const CALLER_CALL_ID: &str = "caller-call-id-7f3a";
const CALLER_TAG: &str = "caller-tag-91c2";
const CALLER_BRANCH: &str = "z9hG4bKcallerbranch55";
const CALLER_HOST: &str = "192.168.77.50";

fn invite() -> Message {
    let text = format!(
        "INVITE sip:+43123456@voxide.example SIP/2.0\r\n\
Via: SIP/2.0/UDP {CALLER_HOST}:5060;branch={CALLER_BRANCH}\r\n\
Max-Forwards: 68\r\n\
From: <sip:alice@voxide.example>;tag={CALLER_TAG}\r\n\
To: <sip:+43123456@voxide.example>\r\n\
Call-ID: {CALLER_CALL_ID}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@{CALLER_HOST}:5060>\r\n\
X-Voxide-Source: udp 203.0.113.5:40000\r\n\
Content-Length: 0\r\n\r\n"
    );
    Message::parse(Bytes::from(text)).expect("the seed INVITE parses")
}

/// Topology hiding, structurally: a request the core builds for the B leg never names the
/// caller's dialog (Call-ID, From/To tag), carries no Via (the transport adds its own), no
/// Contact at the caller's host and no internal header. (Text the fuzzer itself puts into an
/// allow-listed header of an A-leg request may cross, and responses to B echo B's own request:
/// neither is a leak, so neither is checked.)
fn check(action: &Action) {
    let Action::SendToB(request) = action else {
        return;
    };
    assert_ne!(request.call_id().ok(), Some(CALLER_CALL_ID.as_bytes()), "{request:?}");
    for tag in [
        request.from().ok().and_then(|from| from.tag().map(<[u8]>::to_vec)),
        request.to().ok().and_then(|to| to.tag().map(<[u8]>::to_vec)),
    ] {
        assert_ne!(tag.as_deref(), Some(CALLER_TAG.as_bytes()), "{request:?}");
    }
    assert_eq!(request.vias().count(), 0, "{request:?}");
    for contact in request.header_values(&HeaderName::Contact) {
        let text = String::from_utf8_lossy(contact);
        assert!(!text.contains(CALLER_HOST), "{request:?}");
    }
    assert!(
        !request.headers().any(|(name, _)| is_internal_header(&name)),
        "{request:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let config = LegConfig::new(
        Bytes::from_static(b"<sip:b2bua@10.0.0.3:5080>"),
        Bytes::from_static(b"<sip:b2bua@10.0.0.3:5080>"),
    );
    let outbound = Outbound::new(Bytes::from_static(b"sip:+43123456@198.51.100.20:5060"));
    let Ok((mut call, b_invite)) = Call::new(start, &invite(), &outbound, &config, 42) else {
        panic!("the seed INVITE is accepted");
    };
    check(&Action::SendToB(b_invite));
    let mut now = start;
    for segment in data.split(|&byte| byte == 0) {
        let Some((&control, rest)) = segment.split_first() else {
            continue;
        };
        now += Duration::from_millis(100 * u64::from(control >> 1));
        call.handle_timeout(now);
        if let Ok(message) = Message::parse(Bytes::copy_from_slice(rest)) {
            if control % 2 == 0 {
                call.handle_from_a(now, message);
            } else {
                call.handle_from_b(now, message);
            }
        }
        while let Some(action) = call.poll_action() {
            check(&action);
        }
        if call.is_finished() {
            break;
        }
    }
});
