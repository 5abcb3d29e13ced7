//! Bounded memory, no panic and no hang on hostile input: each limit is hit on purpose and
//! must end in its typed error.

use bytes::Bytes;
use sip_message::stream::{Frame, frame};
use sip_message::{HeaderName, Limits, Message, ParseError};

const INVITE: &[u8] = include_bytes!("data/invite.sip");

fn request_with_headers(extra: &[u8], body: &[u8]) -> Vec<u8> {
    let mut message = b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: hostile@192.0.2.1\r\n\
CSeq: 1 OPTIONS\r\n"
        .to_vec();
    message.extend_from_slice(extra);
    message.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    message.extend_from_slice(body);
    message
}

#[test]
fn datagram_over_64_kib_is_513() {
    let body = vec![b'x'; 65536];
    let error = Message::parse(Bytes::from(request_with_headers(b"", &body))).unwrap_err();
    assert!(matches!(
        error,
        ParseError::MessageTooLarge { limit: 65535, .. }
    ));
    assert_eq!(error.status_code(), 513);
    assert_eq!(error.reason_phrase(), "Message Too Large");
}

#[test]
fn datagram_at_the_limit_parses() {
    let overhead = request_with_headers(b"", b"").len() + 4; // "0" grows to five digits
    let body = vec![b'x'; 65535 - overhead];
    let bytes = request_with_headers(b"", &body);
    assert_eq!(bytes.len(), 65535);
    let message = Message::parse(Bytes::from(bytes)).unwrap();
    assert_eq!(message.body().len(), body.len());
    message.validate().unwrap();
}

#[test]
fn ten_thousand_headers_are_rejected_without_indexing_them_all() {
    let extra: Vec<u8> = (0..10_000)
        .flat_map(|i| format!("X-H{i}: v\r\n").into_bytes())
        .collect();
    let bytes = request_with_headers(&extra, b"");
    let limits = Limits {
        max_message_size: bytes.len(),
        ..Limits::default()
    };
    let error = Message::parse_with_limits(Bytes::from(bytes), &limits).unwrap_err();
    assert_eq!(error, ParseError::TooManyHeaders { limit: 256 });
    assert_eq!(error.status_code(), 400);
}

#[test]
fn header_count_limit_is_configurable() {
    let extra: Vec<u8> = (0..40)
        .flat_map(|i| format!("X-H{i}: v\r\n").into_bytes())
        .collect();
    let bytes = Bytes::from(request_with_headers(&extra, b""));
    let tight = Limits {
        max_headers: 20,
        ..Limits::default()
    };
    assert_eq!(
        Message::parse_with_limits(bytes.clone(), &tight).unwrap_err(),
        ParseError::TooManyHeaders { limit: 20 }
    );
    let message = Message::parse(bytes).unwrap();
    assert_eq!(message.header_count(), 46);
}

#[test]
fn ten_kilobyte_header_name_is_rejected() {
    let mut extra = vec![b'X'; 10_000];
    extra.extend_from_slice(b": value\r\n");
    let error = Message::parse(Bytes::from(request_with_headers(&extra, b""))).unwrap_err();
    assert_eq!(
        error,
        ParseError::HeaderNameTooLong {
            length: 10_000,
            limit: 128
        }
    );
    // Without a colon the long name is still caught by the same bound.
    let mut no_colon = vec![b'X'; 10_000];
    no_colon.extend_from_slice(b"\r\n");
    let error = Message::parse(Bytes::from(request_with_headers(&no_colon, b""))).unwrap_err();
    assert!(matches!(error, ParseError::HeaderNameTooLong { .. }));
}

#[test]
fn content_length_beyond_the_data_is_400() {
    let mut bytes = request_with_headers(b"", b"");
    let at = bytes
        .windows(17)
        .position(|w| w == b"Content-Length: 0")
        .unwrap();
    bytes.splice(at..at + 17, b"Content-Length: 4000000000".iter().copied());
    let error = Message::parse(Bytes::from(bytes)).unwrap_err();
    assert_eq!(
        error,
        ParseError::BodyTruncated {
            declared: 4_000_000_000,
            available: 0
        }
    );
    assert_eq!(error.status_code(), 400);
}

#[test]
fn content_length_overflowing_32_bits_is_400() {
    let bytes =
        b"OPTIONS sip:b@example.com SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n";
    let error = Message::parse(Bytes::from_static(bytes)).unwrap_err();
    assert!(matches!(
        error,
        ParseError::InvalidHeader {
            header: HeaderName::ContentLength,
            ..
        }
    ));
    assert_eq!(
        error.reason_phrase(),
        "Bad Request - malformed Content-Length header"
    );
}

#[test]
fn every_truncation_of_an_invite_is_a_value_or_an_error() {
    for cut in 0..INVITE.len() {
        let prefix = Bytes::copy_from_slice(&INVITE[..cut]);
        match Message::parse(prefix.clone()) {
            Ok(message) => {
                // A cut right after a header line is a complete datagram without a body;
                // Content-Length then still guards against a short body.
                assert!(prefix.ends_with(b"\n"), "cut at {cut}");
                assert!(
                    !message.has_header(&HeaderName::ContentLength)
                        || message.body().is_empty() && cut < INVITE.len()
                );
                assert_eq!(&message.to_bytes()[..], &prefix[..]);
            }
            Err(error) => assert!(
                error.status_code() == 400 || error.status_code() == 505,
                "cut at {cut}: {error:?}"
            ),
        }
    }
}

#[test]
fn empty_and_keep_alive_only_datagrams_are_errors() {
    assert_eq!(Message::parse(Bytes::new()).unwrap_err(), ParseError::Empty);
    assert_eq!(
        Message::parse(Bytes::from_static(b"\r\n\r\n")).unwrap_err(),
        ParseError::Empty
    );
}

#[test]
fn control_bytes_in_the_start_line_are_rejected() {
    for start in [
        &b"INVITE\x00sip:a@b SIP/2.0\r\n\r\n"[..],
        b"SIP/2.0 20x OK\r\n\r\n",
        b"SIP/2.0 099 Low\r\n\r\n",
        b"SIP/2.0 700 High\r\n\r\n",
        b"SIP/2.0 2000 OK\r\n\r\n",
    ] {
        assert!(
            Message::parse(Bytes::copy_from_slice(start)).is_err(),
            "{}",
            String::from_utf8_lossy(start)
        );
    }
}

#[test]
fn stream_framing_bounds_an_endless_header_section() {
    let limits = Limits::default();
    let mut endless = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
    while endless.len() <= 70_000 {
        endless.extend_from_slice(b"X-Filler: yes\r\n");
    }
    assert_eq!(
        frame(&endless, &limits),
        Err(ParseError::HeaderSectionTooLarge { limit: 65535 })
    );
    let ten_thousand: Vec<u8> = (0..10_000)
        .flat_map(|i| format!("X-H{i}: v\r\n").into_bytes())
        .collect();
    let mut stream = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
    stream.extend_from_slice(&ten_thousand);
    assert!(matches!(
        frame(&stream, &limits),
        Err(ParseError::HeaderSectionTooLarge { .. }) | Ok(Frame::Incomplete)
    ));
}

#[test]
fn stream_frames_torture_messages_back_to_back() {
    let limits = Limits::default();
    let names = ["wsinv.sip", "mpart01.sip", "longreq.sip", "unreason.sip"];
    let mut stream = Vec::new();
    let mut lengths = Vec::new();
    for name in names {
        let bytes = std::fs::read(format!(
            "{}/tests/torture/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(&bytes);
        lengths.push(bytes.len());
    }
    let mut offset = 0;
    let mut framed = Vec::new();
    while offset < stream.len() {
        match frame(&stream[offset..], &limits).unwrap() {
            Frame::KeepAlive(skip) => offset += skip,
            Frame::Complete(length) => {
                let message =
                    Message::parse(Bytes::copy_from_slice(&stream[offset..offset + length]))
                        .unwrap();
                message.validate().unwrap();
                framed.push(length);
                offset += length;
            }
            Frame::Incomplete => panic!("stream holds whole messages"),
        }
    }
    assert_eq!(framed, lengths);
}

fn torture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/torture/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// RFC 4475 over a stream: the framing verdicts its §3.1.2 asks of TCP.
#[test]
fn torture_messages_over_a_stream() {
    let limits = Limits::default();
    // §3.1.2.2: Content-Length larger than the data: wait for more.
    assert_eq!(frame(&torture("clerr.sip"), &limits), Ok(Frame::Incomplete));
    // §3.1.2.3 and §3.3.9: negative or conflicting Content-Length: close.
    assert!(matches!(
        frame(&torture("ncl.sip"), &limits),
        Err(ParseError::InvalidHeader { .. })
    ));
    assert_eq!(
        frame(&torture("mcl01.sip"), &limits),
        Err(ParseError::ConflictingContentLength)
    );
    // §3.4.1: no Content-Length at all is fatal on a stream (RFC 3261 §18.3).
    assert_eq!(
        frame(&torture("inv2543.sip"), &limits),
        Err(ParseError::MissingContentLength)
    );
    // §3.1.1.8: Content-Length 0 governs; the trailing bytes start the next message.
    let dblreq = torture("dblreq.sip");
    let Ok(Frame::Complete(length)) = frame(&dblreq, &limits) else {
        panic!("dblreq frames")
    };
    let message = Message::parse(Bytes::copy_from_slice(&dblreq[..length])).unwrap();
    assert_eq!(message.to_bytes().len(), length);
    // The archive puts a CRLF before the stray octets: a keep-alive, then "INVITE".
    assert_eq!(frame(&dblreq[length..], &limits), Ok(Frame::KeepAlive(2)));
    assert!(dblreq[length + 2..].starts_with(b"INVITE"));
    // Every valid CRLF message frames to exactly its own length.
    for name in [
        "wsinv.sip",
        "esc01.sip",
        "mpart01.sip",
        "unreason.sip",
        "noreason.sip",
        "ipv6-in-sdp.sip",
        "longreq.sip",
    ] {
        let bytes = torture(name);
        assert_eq!(
            frame(&bytes, &limits),
            Ok(Frame::Complete(bytes.len())),
            "{name}"
        );
    }
}
