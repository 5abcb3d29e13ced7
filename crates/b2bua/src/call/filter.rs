//! The rules for what crosses between the legs: header copying through the allow-list,
//! option tags and methods, the status a response from one leg becomes on the other, and
//! the message body.

use bytes::Bytes;
use sip_core::dialog::Body;
use sip_message::{HeaderName, Message, Method};

use super::config::HeaderPolicy;

/// The status a final response from the other leg becomes on this one.
///
/// - 503 → 500: a 503 tells its receiver that the element sending it is unavailable
///   (RFC 3261 §21.5.4), and a caller would steer away from the platform; a proxy must not
///   pass a downstream 503 on for the same reason (§16.7 step 6 asks it to answer 500).
/// - 401 and 407 → 500: the challenge is for the B2BUA, the UAC of the other leg; passed on,
///   it would ask the caller for credentials of a realm that is not its own (outbound
///   authentication answers it in the B2BUA itself, later).
/// - everything else keeps its status, 3xx included (without their Contact, which never
///   crosses: redirect targets stay on their leg).
pub fn mapped_status(status: u16) -> u16 {
    match status {
        401 | 407 | 503 => 500,
        other => other,
    }
}

/// The standard reason phrase of a status the core writes itself.
pub fn default_reason(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => match status / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// The reason phrase to write for `status` relayed from `response`: the other leg's phrase
/// when the status is unchanged and the phrase is UTF-8, else the standard one.
pub fn relayed_reason(response: &Message, status: u16) -> String {
    if response.status() == Some(status)
        && let Some(reason) = response.reason()
        && let Ok(reason) = std::str::from_utf8(reason)
        && !reason.is_empty()
    {
        return reason.to_owned();
    }
    default_reason(status).to_owned()
}

/// The body of `message` with its Content-Type, if it has a non-empty one. A body without
/// Content-Type (RFC 3261 §20.15 requires one) is not relayed.
pub fn body_of(message: &Message) -> Option<Body> {
    let content = message.body();
    if content.is_empty() {
        return None;
    }
    let content_type = message.header(&HeaderName::ContentType)?;
    Some(Body::new(Bytes::copy_from_slice(content_type), content))
}

/// The option tags of `request`'s Require that the policy does not pass; empty when every
/// one is known.
pub fn unsupported_requirements(request: &Message, policy: &HeaderPolicy) -> Vec<Bytes> {
    request
        .require()
        .filter(|tag| !policy.knows_option_tag(tag))
        .map(Bytes::copy_from_slice)
        .collect()
}

/// Copies the headers of `source` that the policy lets cross into `target`
/// (see [`crossing_headers`]).
pub fn copy_headers(source: &Message, target: &mut Message, policy: &HeaderPolicy) {
    for (name, value) in crossing_headers(source, policy) {
        target.add_header(name, value);
    }
}

/// The headers of `source` that the policy lets cross, in order: line by line as received,
/// then Supported and Require (only the known option tags) and Allow (only the methods the
/// core relays), rewritten and left out when nothing is left.
pub fn crossing_headers(source: &Message, policy: &HeaderPolicy) -> Vec<(HeaderName, Bytes)> {
    let mut crossing = Vec::new();
    let mut supported = Vec::new();
    let mut require = Vec::new();
    let mut allow = Vec::new();
    for (name, value) in source.headers() {
        if !policy.copies(&name) {
            continue;
        }
        match name {
            HeaderName::Supported | HeaderName::Require | HeaderName::Allow => {}
            _ => crossing.push((name, Bytes::copy_from_slice(value))),
        }
    }
    for tag in source.supported() {
        if policy.knows_option_tag(tag) {
            supported.push(tag);
        }
    }
    for tag in source.require() {
        if policy.knows_option_tag(tag) {
            require.push(tag);
        }
    }
    for method in source.header_values(&HeaderName::Allow) {
        if policy.allows_method(&Method::from_bytes(method.trim_ascii())) {
            allow.push(method.trim_ascii());
        }
    }
    for (name, values) in [
        (HeaderName::Supported, supported),
        (HeaderName::Require, require),
        (HeaderName::Allow, allow),
    ] {
        if !values.is_empty() && policy.copies(&name) {
            crossing.push((name, Bytes::from(values.join(&b", "[..]))));
        }
    }
    crossing
}

/// The value of an Allow header naming what the core accepts inside a dialog.
pub fn allow_value(policy: &HeaderPolicy) -> Bytes {
    let mut methods: Vec<&[u8]> = vec![b"INVITE", b"ACK", b"CANCEL", b"BYE"];
    for method in &policy.methods {
        if !matches!(
            method,
            Method::Invite | Method::Ack | Method::Cancel | Method::Bye
        ) {
            methods.push(method.as_bytes());
        }
    }
    Bytes::from(methods.join(&b", "[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Message {
        Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap()
    }

    fn request(extra: &str) -> Message {
        parse(&format!(
            "INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKf1
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>
Call-ID: filter-1
CSeq: 1 INVITE
{extra}Content-Length: 0

"
        ))
    }

    fn printed(message: &Message) -> String {
        String::from_utf8(message.to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn status_mapping() {
        assert_eq!(mapped_status(503), 500);
        assert_eq!(mapped_status(401), 500);
        assert_eq!(mapped_status(407), 500);
        for status in [
            180, 183, 200, 302, 404, 408, 480, 486, 487, 488, 500, 502, 600, 603,
        ] {
            assert_eq!(mapped_status(status), status);
        }
    }

    #[test]
    fn the_reason_phrase_is_kept_only_for_an_unchanged_status() {
        let busy = parse(
            "SIP/2.0 486 Ocupado
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKf1
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>;tag=b
Call-ID: filter-1
CSeq: 1 INVITE
Content-Length: 0

",
        );
        assert_eq!(relayed_reason(&busy, 486), "Ocupado");
        assert_eq!(relayed_reason(&busy, 500), "Server Internal Error");
    }

    #[test]
    fn supported_require_and_allow_are_filtered() {
        let source = request(
            "Supported: 100rel, timer, replaces
Require: Timer
Allow: INVITE, ACK, CANCEL, BYE, REFER, NOTIFY, UPDATE, PRACK, MESSAGE
Subject: lunch
Warning: 399 10.0.0.1 \"internal\"
X-Voxide-Source: udp 10.0.0.1:5060
User-Agent: Phone 1.0
",
        );
        let mut target = request("");
        copy_headers(&source, &mut target, &HeaderPolicy::default());
        let text = printed(&target);
        assert!(text.contains("Supported: timer\r\n"), "{text}");
        assert!(text.contains("Require: Timer\r\n"), "{text}");
        assert!(
            text.contains("Allow: INVITE, ACK, CANCEL, BYE, UPDATE\r\n"),
            "{text}"
        );
        assert!(text.contains("Subject: lunch\r\n"), "{text}");
        assert!(!text.contains("Warning"), "{text}");
        assert!(!text.to_ascii_lowercase().contains("x-voxide"), "{text}");
        assert!(!text.contains("Phone 1.0"), "{text}");
    }

    #[test]
    fn nothing_left_means_no_header() {
        let source = request("Supported: 100rel\nAllow: REFER\n");
        let mut target = request("");
        copy_headers(&source, &mut target, &HeaderPolicy::default());
        let text = printed(&target);
        assert!(!text.contains("Supported"), "{text}");
        assert!(!text.contains("Allow"), "{text}");
    }

    #[test]
    fn unknown_requirements_are_named() {
        let policy = HeaderPolicy::default();
        assert!(unsupported_requirements(&request("Require: timer\n"), &policy).is_empty());
        assert_eq!(
            unsupported_requirements(&request("Require: 100rel, timer, foo\n"), &policy),
            [Bytes::from_static(b"100rel"), Bytes::from_static(b"foo")]
        );
    }

    #[test]
    fn the_allow_value_lists_the_relayed_methods() {
        assert_eq!(
            allow_value(&HeaderPolicy::default()),
            Bytes::from_static(b"INVITE, ACK, CANCEL, BYE, UPDATE, INFO, OPTIONS")
        );
    }

    #[test]
    fn a_body_needs_a_content_type() {
        let with = parse(
            "MESSAGE sip:bob@example.com SIP/2.0
Content-Type: text/plain
Content-Length: 2

hi",
        );
        let body = body_of(&with).unwrap();
        assert_eq!(body.content_type, Bytes::from_static(b"text/plain"));
        assert_eq!(body.content, Bytes::from_static(b"hi"));
        let without = parse(
            "MESSAGE sip:bob@example.com SIP/2.0
Content-Length: 2

hi",
        );
        assert_eq!(body_of(&without), None);
        assert_eq!(body_of(&request("")), None);
    }
}
