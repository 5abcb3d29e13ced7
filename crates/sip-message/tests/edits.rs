//! Edits are applied at print time; untouched bytes print exactly as received.

use bytes::{Bytes, BytesMut};
use sip_message::{HeaderName, Message, MessageBuilder, Method};

const INVITE: &[u8] = include_bytes!("data/invite.sip");

fn parse(bytes: &[u8]) -> Message {
    Message::parse(Bytes::copy_from_slice(bytes)).unwrap()
}

const SHARED_LINES: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKtop, SIP/2.0/UDP mid.example.com;x=\"odd,val\";branch=z9hG4bKmid\r\n\
v: SIP/2.0/TCP client.example.com;branch=z9hG4bKlast\r\n\
Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\r\n\
Route: <sip:p3.example.com;lr>\r\n\
From: \"A, B\" <sip:a@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: shared@example.com\r\n\
CSeq: 1 INVITE\r\n\
X-Extra: one\r\n\
Content-Length: 4\r\n\
\r\n\
abcd";

#[test]
fn unedited_message_prints_its_buffer() {
    let message = parse(INVITE);
    assert!(!message.is_edited());
    assert_eq!(&message.to_bytes()[..], INVITE);
    let mut out = BytesMut::new();
    message.write_to(&mut out);
    assert_eq!(&out[..], INVITE);
}

#[test]
fn push_then_pop_via_restores_the_original_bytes() {
    let mut message = parse(INVITE);
    message.push_via("SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKnew");
    let top = message.top_via().unwrap();
    assert_eq!(top.branch(), Some(&b"z9hG4bKnew"[..]));
    let printed = message.to_bytes();
    assert!(printed.starts_with(b"INVITE sip:+4315551234@voxide.example.net;user=phone SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKnew\r\nVia: SIP/2.0/UDP 203.0.113.5"));
    assert!(message.pop_via());
    assert_eq!(&message.to_bytes()[..], INVITE);
}

#[test]
fn pop_via_takes_one_value_of_a_shared_line() {
    let mut message = parse(SHARED_LINES);
    assert_eq!(message.vias().count(), 3);
    assert!(message.pop_via());
    let branches: Vec<_> = message
        .vias()
        .map(|v| v.unwrap().branch().unwrap().to_vec())
        .collect();
    assert_eq!(branches, [b"z9hG4bKmid".to_vec(), b"z9hG4bKlast".to_vec()]);
    let printed = message.to_bytes();
    let reparsed = Message::parse(printed.clone()).unwrap();
    reparsed.validate().unwrap();
    assert_eq!(
        reparsed.top_via().unwrap().branch(),
        Some(&b"z9hG4bKmid"[..])
    );
    // The remaining value keeps its original spelling; the rest of the message is untouched.
    assert!(printed.windows(11).any(|w| w == b"x=\"odd,val\""));
    assert!(printed.ends_with(b"X-Extra: one\r\nContent-Length: 4\r\n\r\nabcd"));
    assert!(message.pop_via());
    assert!(message.pop_via());
    assert!(!message.pop_via());
    assert!(message.top_via().is_err());
}

#[test]
fn remove_first_value_pops_the_top_route() {
    let mut message = parse(SHARED_LINES);
    assert!(message.remove_first_value(&HeaderName::Route));
    let routes: Vec<_> = message
        .routes()
        .map(|r| r.unwrap().uri.raw.to_vec())
        .collect();
    assert_eq!(
        routes,
        [
            b"sip:p2.example.com;lr".to_vec(),
            b"sip:p3.example.com;lr".to_vec()
        ]
    );
    assert!(message.remove_first_value(&HeaderName::Route));
    assert!(message.remove_first_value(&HeaderName::Route));
    assert!(!message.remove_first_value(&HeaderName::Route));
    let reparsed = Message::parse(message.to_bytes()).unwrap();
    assert_eq!(reparsed.routes().count(), 0);
    assert_eq!(reparsed.vias().count(), 3);
}

#[test]
fn added_headers_land_where_asked() {
    let mut message = parse(SHARED_LINES);
    message.add_header(HeaderName::from_static("X-Last"), "end");
    message.add_header_first(HeaderName::from_static("X-First"), "start");
    message.add_header_before(HeaderName::Route, "<sip:new.example.com;lr>");
    let reparsed = Message::parse(message.to_bytes()).unwrap();
    let names: Vec<_> = reparsed
        .headers()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("X-First"));
    assert_eq!(names.last().map(String::as_str), Some("X-Last"));
    assert_eq!(
        reparsed.routes().next().unwrap().unwrap().uri.raw,
        b"sip:new.example.com;lr"
    );
    assert_eq!(
        reparsed.header(&HeaderName::from_static("x-last")),
        Some(&b"end"[..])
    );
    assert_eq!(reparsed.body(), Bytes::from_static(b"abcd"));
    // Removing what was added gives the original bytes back.
    assert_eq!(message.remove_header(&HeaderName::from_static("X-LAST")), 1);
    assert_eq!(
        message.remove_header(&HeaderName::from_static("x-first")),
        1
    );
    assert!(message.remove_first_value(&HeaderName::Route));
    assert_eq!(&message.to_bytes()[..], SHARED_LINES);
}

#[test]
fn remove_and_replace_headers() {
    let mut message = parse(SHARED_LINES);
    assert_eq!(message.remove_header(&HeaderName::Via), 2);
    assert_eq!(message.vias().count(), 0);
    assert_eq!(message.remove_header(&HeaderName::Via), 0);
    message.replace_header(HeaderName::Route, "<sip:only.example.com;lr>");
    let routes: Vec<_> = message
        .routes()
        .map(|r| r.unwrap().uri.raw.to_vec())
        .collect();
    assert_eq!(routes, [b"sip:only.example.com;lr".to_vec()]);
    let reparsed = Message::parse(message.to_bytes()).unwrap();
    assert_eq!(reparsed.header_values(&HeaderName::Route).count(), 1);
}

#[test]
fn set_body_rewrites_content_length() {
    let mut message = parse(SHARED_LINES);
    message.set_body(Bytes::from_static(b"v=0\r\nlonger body\r\n"));
    assert_eq!(message.content_length().unwrap(), Some(18));
    let reparsed = Message::parse(message.to_bytes()).unwrap();
    reparsed.validate().unwrap();
    assert_eq!(
        reparsed.body(),
        Bytes::from_static(b"v=0\r\nlonger body\r\n")
    );
    assert_eq!(
        reparsed.header_values(&HeaderName::ContentLength).count(),
        1
    );
    message.set_body(Bytes::new());
    let reparsed = Message::parse(message.to_bytes()).unwrap();
    assert!(reparsed.body().is_empty());
    assert_eq!(reparsed.content_length().unwrap(), Some(0));
}

#[test]
fn set_request_uri_rewrites_only_the_start_line() {
    let mut message = parse(SHARED_LINES);
    message.set_request_uri("sip:bob@192.0.2.7:5070;transport=udp");
    let uri = message.request_uri().unwrap().unwrap();
    assert_eq!(uri.port, Some(5070));
    let printed = message.to_bytes();
    assert!(printed.starts_with(b"INVITE sip:bob@192.0.2.7:5070;transport=udp SIP/2.0\r\nVia: "));
    assert_eq!(
        &printed[printed.len() - (SHARED_LINES.len() - 36)..],
        &SHARED_LINES[36..]
    );
}

#[test]
fn edits_keep_the_dropped_trailing_bytes_out() {
    let bytes = std::fs::read(format!(
        "{}/tests/torture/dblreq.sip",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut message = Message::parse(Bytes::from(bytes)).unwrap();
    message.push_via("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx");
    let printed = message.to_bytes();
    assert!(printed.ends_with(b"Content-Length: 0\r\n\r\n"));
}

#[test]
fn builder_makes_requests_that_validate() {
    let request = MessageBuilder::request(Method::Invite, "sip:bob@example.com")
        .header(
            HeaderName::Via,
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKb1;rport",
        )
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, "<sip:alice@example.com>;tag=f1")
        .header(HeaderName::To, "<sip:bob@example.com>")
        .header(HeaderName::CallId, "built@192.0.2.1")
        .header(HeaderName::CSeq, "1 INVITE")
        .body("application/sdp", Bytes::from_static(b"v=0\r\n"))
        .build();
    request.validate().unwrap();
    assert_eq!(request.content_length().unwrap(), Some(5));
    assert!(
        request
            .content_type()
            .unwrap()
            .unwrap()
            .is(b"application", b"sdp")
    );
    let reparsed = Message::parse(request.to_bytes()).unwrap();
    reparsed.validate().unwrap();
    assert_eq!(reparsed.body(), Bytes::from_static(b"v=0\r\n"));
    assert_eq!(reparsed.to_bytes(), request.to_bytes());
}

#[test]
fn response_to_copies_the_transaction_headers() {
    let request = parse(SHARED_LINES);
    let response = MessageBuilder::response_to(&request, 180, "Ringing")
        .to_tag("t-42")
        .build();
    response.validate().unwrap();
    assert_eq!(response.status(), Some(180));
    assert_eq!(response.reason(), Some(&b"Ringing"[..]));
    assert_eq!(response.vias().count(), 3);
    assert_eq!(response.call_id().unwrap(), b"shared@example.com");
    assert_eq!(response.from().unwrap().tag(), Some(&b"1"[..]));
    assert_eq!(response.to().unwrap().tag(), Some(&b"t-42"[..]));
    assert_eq!(response.cseq().unwrap().method, Method::Invite);
    assert!(!response.has_header(&HeaderName::Route));
    assert_eq!(response.content_length().unwrap(), Some(0));
    let reparsed = Message::parse(response.to_bytes()).unwrap();
    assert_eq!(reparsed.to().unwrap().tag(), Some(&b"t-42"[..]));
}

#[test]
fn remove_header_where_takes_only_the_picked_lines_and_keeps_the_rest_byte_for_byte() {
    let text = "INVITE sip:bob@b.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n\
        Proxy-Authorization: Digest username=\"alice\", realm=\"a.example\", nonce=\"n1\"\r\n\
        Max-Forwards: 70\r\n\
        Proxy-Authorization: Digest username=\"alice\", realm=\"other.example\", nonce=\"n2\"\r\n\
        Call-ID: c\r\nCSeq: 1 INVITE\r\nFrom: <sip:alice@a.example>;tag=1\r\n\
        To: <sip:bob@b.example>\r\nContent-Length: 0\r\n\r\n";
    let mut message = parse(text.as_bytes());
    let removed = message.remove_header_where(&HeaderName::ProxyAuthorization, |value| {
        std::str::from_utf8(value).is_ok_and(|value| value.contains("realm=\"a.example\""))
    });
    assert_eq!(removed, 1);
    let expected = text.replace(
        "Proxy-Authorization: Digest username=\"alice\", realm=\"a.example\", nonce=\"n1\"\r\n",
        "",
    );
    assert_eq!(&message.to_bytes()[..], expected.as_bytes());
    assert_eq!(
        message.remove_header_where(&HeaderName::ProxyAuthorization, |_| false),
        0
    );
}
