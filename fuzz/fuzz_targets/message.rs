//! Oracle: whatever parses prints to bytes that parse again to the same message (print is a
//! fixed point after one round), and the typed views read the same values from both.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip_message::{HeaderName, Message};

/// The values an element acts on, read through the typed views.
fn observed(message: &Message) -> Vec<String> {
    let mut seen = vec![
        format!("request={}", message.is_request()),
        format!("method={:?}", message.method()),
        format!("status={:?}", message.status()),
        format!("uri={:?}", message.request_uri_bytes()),
        format!("call-id={:?}", message.call_id().ok()),
        format!("cseq={:?}", message.cseq().ok().map(|c| (c.number, c.method.clone()))),
        format!("branch={:?}", message.top_via().ok().and_then(|v| v.branch().map(<[u8]>::to_vec))),
        format!("from-tag={:?}", message.from().ok().and_then(|f| f.tag().map(<[u8]>::to_vec))),
        format!("to-tag={:?}", message.to().ok().and_then(|t| t.tag().map(<[u8]>::to_vec))),
        format!("max-forwards={:?}", message.max_forwards().ok()),
        format!("vias={}", message.vias().count()),
        format!("contacts={}", message.contacts().count()),
        format!("valid={}", message.validate().is_ok()),
        format!("body={:?}", message.body()),
    ];
    seen.extend(
        message
            .headers()
            .filter(|(name, _)| !matches!(name, HeaderName::ContentLength))
            .map(|(name, value)| format!("{name:?}={value:?}")),
    );
    seen
}

fuzz_target!(|data: &[u8]| {
    let Ok(first) = Message::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let printed = first.to_bytes();
    let second = Message::parse(printed.clone())
        .unwrap_or_else(|error| panic!("printed message no longer parses: {error}\n{printed:?}"));
    assert_eq!(observed(&first), observed(&second), "typed views differ after a round trip");
    let reprinted = second.to_bytes();
    assert_eq!(printed, reprinted, "printing is not a fixed point");
});
