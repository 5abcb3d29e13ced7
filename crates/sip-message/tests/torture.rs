//! Data-driven run over every RFC 4475 / RFC 5118 torture message in `tests/torture/`.
//!
//! The verdict of this crate for a datagram is `Message::parse` followed by
//! `Message::validate`. Each file is listed below with its expected verdict (from
//! `tests/torture/INDEX.md`) and, for accepted messages, the values it must expose.

use bytes::Bytes;
use sip_message::{Contact, HeaderName, Host, Message, Method, ParseError, Scheme, Uri};
use std::collections::BTreeSet;
use std::path::PathBuf;

enum Verdict {
    /// Well-formed: the checks run on the parsed message.
    Accept(fn(&Message)),
    /// Rejected with this status code; the reason phrase contains the text.
    Reject(u16, &'static str),
    /// A response that must be discarded: any parse or validation error.
    Drop,
}

use Verdict::{Accept, Drop, Reject};

fn torture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/torture")
}

fn verdict(bytes: Bytes) -> Result<Message, ParseError> {
    let message = Message::parse(bytes)?;
    message.validate()?;
    Ok(message)
}

fn uri(text: &str) -> Uri<'_> {
    Uri::parse(text.as_bytes()).expect("reference URI parses")
}

fn top_branch(message: &Message) -> Vec<u8> {
    message.top_via().unwrap().branch().unwrap().to_vec()
}

fn table() -> Vec<(&'static str, Verdict)> {
    vec![
        // ---- RFC 4475 §3.1.1 valid ----
        (
            "wsinv.sip",
            Accept(|m| {
                assert_eq!(m.method(), Some(&Method::Invite));
                let cseq = m.cseq().unwrap();
                assert_eq!((cseq.number, cseq.method), (9, Method::Invite));
                assert_eq!(m.call_id().unwrap(), b"wsinv.ndaksdj@192.0.2.1");
                assert_eq!(m.from().unwrap().tag(), Some(&b"98asjd8"[..]));
                assert_eq!(m.to().unwrap().tag(), Some(&b"1918181833n"[..]));
                assert_eq!(
                    m.from().unwrap().display_name_unquoted().as_deref(),
                    Some(&b"J Rosenberg \\\""[..])
                );
                assert_eq!(m.max_forwards().unwrap(), Some(68));
                assert_eq!(top_branch(m), b"390skdjuw");
                let vias: Vec<_> = m.vias().map(|v| v.unwrap()).collect();
                assert_eq!(vias.len(), 3);
                assert_eq!(vias[1].transport, b"TCP");
                assert_eq!(vias[1].branch(), Some(&b"z9hG4bK9ikj8"[..]));
                assert_eq!(vias[2].host, Host::Ipv4(b"192.168.255.111"));
                assert_eq!(vias[2].branch(), Some(&b"z9hG4bK30239"[..]));
                let contact = m.contacts().next().unwrap().unwrap();
                let contact = contact.address().unwrap();
                assert_eq!(contact.param(b"q"), Some(Some(&b"0.33"[..])));
                assert_eq!(contact.param(b"newparam"), Some(Some(&b"newvalue"[..])));
                assert!(m.routes().next().unwrap().unwrap().uri.is_loose_route());
                assert_eq!(
                    m.header(&HeaderName::from_static("NewFangledHeader")),
                    Some(&b"newfangled value\r\n continued newfangled value"[..])
                );
                assert_eq!(
                    m.header(&HeaderName::from_static("UnknownHeaderWithUnusualValue")),
                    Some(&b";;,,;;,;"[..])
                );
                assert_eq!(m.header(&HeaderName::Subject), Some(&b""[..]));
                assert_eq!(m.body().len(), 150);
            }),
        ),
        (
            "intmeth.sip",
            Accept(|m| {
                let method = m.method().unwrap();
                assert_eq!(
                    method.as_bytes(),
                    b"!interesting-Method0123456789_*+`.%indeed'~"
                );
                assert!(matches!(method, Method::Extension(_)));
                let ruri = m.request_uri().unwrap().unwrap();
                assert_eq!(
                    ruri.user,
                    Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
                );
                assert_eq!(
                    ruri.password,
                    Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
                );
                assert_eq!(ruri.host, Host::Domain(b"example.com"));
                assert_eq!(
                    m.to().unwrap().display_name,
                    Some(&b"\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\""[..])
                );
                let from = m.from().unwrap();
                assert_eq!(
                    from.display_name,
                    Some(&b"token1~` token2'+_ token3*%!.-"[..])
                );
                assert_eq!(from.tag(), Some(&b"_token~1'+`*%!-."[..]));
                assert_eq!(
                    from.param(b"fromParam''~+*_!.-%"),
                    Some(Some("\"работающий\"".as_bytes()))
                );
                assert_eq!(
                    m.call_id().unwrap(),
                    b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
                );
                assert_eq!(
                    m.top_via().unwrap().branch(),
                    Some(&b"z9hG4bK-.!%66*_+`'~"[..])
                );
                assert_eq!(m.max_forwards().unwrap(), Some(255));
                assert_eq!(
                    m.header(&HeaderName::from_static("extensionHeader-!.%*+_`'~")),
                    Some("\u{feff}大停電".as_bytes())
                );
            }),
        ),
        (
            "esc01.sip",
            Accept(|m| {
                let ruri = m.request_uri().unwrap().unwrap();
                assert_eq!(ruri.user, Some(&b"sips%3Auser%40example.com"[..]));
                assert!(ruri.equivalent(&uri("sip:sips%3auser%40example.com@example.net")));
                assert!(m.to().unwrap().uri.equivalent(&uri("sip:user@example.com")));
                assert!(
                    m.from()
                        .unwrap()
                        .uri
                        .equivalent(&uri("sip:I%20have%20spaces@example.net"))
                );
                let contact = m.contacts().next().unwrap().unwrap();
                let contact = contact.address().unwrap().uri;
                assert!(
                    contact.equivalent(&uri("sip:caller@host5.example.net;lr;name=value%2541"))
                );
                assert!(!contact.equivalent(&uri("sip:caller@host5.example.net;lr;name=valueA")));
                assert_eq!(m.call_id().unwrap(), b"esc01.239409asdfakjkn23onasd0-3234");
                assert!(
                    m.content_type()
                        .unwrap()
                        .unwrap()
                        .is(b"application", b"sdp")
                );
            }),
        ),
        (
            "escnull.sip",
            Accept(|m| {
                let contacts: Vec<_> = m.contacts().map(|c| c.unwrap()).collect();
                assert_eq!(contacts.len(), 2);
                let first = contacts[0].address().unwrap().uri;
                let second = contacts[1].address().unwrap().uri;
                assert_eq!(first.user, Some(&b"%00"[..]));
                assert!(!first.equivalent(&second));
                assert_eq!(m.to().unwrap().uri.user, Some(&b"null-%00-null"[..]));
                assert!(
                    !m.to()
                        .unwrap()
                        .uri
                        .equivalent(&uri("sip:null-@example.com"))
                );
            }),
        ),
        (
            "esc02.sip",
            Accept(|m| {
                assert_eq!(m.method().unwrap().as_bytes(), b"RE%47IST%45R");
                assert_ne!(m.method(), Some(&Method::Register));
                assert_eq!(m.contacts().count(), 2);
                assert_eq!(
                    m.header(&HeaderName::from_static("C%6Fntact")),
                    Some(&b"<sip:alias2@host2.example.com>"[..])
                );
                assert_eq!(m.from().unwrap().display_name, Some(&b"\"%Z%45\""[..]));
            }),
        ),
        (
            "lwsdisp.sip",
            Accept(|m| {
                let from = m.from().unwrap();
                assert_eq!(from.display_name, Some(&b"caller"[..]));
                assert_eq!(from.uri.raw, b"sip:caller@example.com");
                assert_eq!(from.tag(), Some(&b"323"[..]));
            }),
        ),
        (
            "longreq.sip",
            Accept(|m| {
                assert_eq!(m.as_bytes().len(), 3515);
                let vias: Vec<_> = m.vias().map(|v| v.unwrap()).collect();
                assert_eq!(vias.len(), 34);
                assert_eq!(vias[0].host, Host::Domain(b"sip33.example.com"));
                assert_eq!(vias[33].received(), Some(&b"192.0.2.5"[..]));
                assert!(vias[33].branch().unwrap().len() > 200);
                assert!(m.call_id().unwrap().starts_with(b"longreq.onereally"));
                assert!(m.call_id().unwrap().ends_with(b"longcallid"));
                assert_eq!(m.to().unwrap().uri.port, Some(6000));
                assert_eq!(m.body().len(), 150);
            }),
        ),
        (
            "dblreq.sip",
            Accept(|m| {
                assert_eq!(m.method(), Some(&Method::Register));
                assert_eq!(m.content_length().unwrap(), Some(0));
                assert!(m.body().is_empty());
                let printed = m.to_bytes();
                assert!(printed.ends_with(b"Content-Length: 0\r\n\r\n"));
                assert!(!printed.windows(6).skip(10).any(|w| w == b"INVITE"));
            }),
        ),
        (
            "semiuri.sip",
            Accept(|m| {
                let ruri = m.request_uri().unwrap().unwrap();
                assert_eq!(ruri.user, Some(&b"user;par=u%40example.net"[..]));
                assert_eq!(ruri.host, Host::Domain(b"example.com"));
                assert!(ruri.params.is_empty());
                assert_eq!(m.header_values(&HeaderName::Accept).count(), 6);
            }),
        ),
        (
            "transports.sip",
            Accept(|m| {
                let transports: Vec<_> = m.vias().map(|v| v.unwrap().transport.to_vec()).collect();
                assert_eq!(
                    transports,
                    [&b"UDP"[..], b"SCTP", b"TLS", b"UNKNOWN", b"TCP"]
                );
                assert_eq!(m.call_id().unwrap(), b"transports.kijh4akdnaqjkwendsasfdj");
            }),
        ),
        (
            "mpart01.sip",
            Accept(|m| {
                assert_eq!(m.method(), Some(&Method::Message));
                let body = m.body();
                assert_eq!(body.len(), 553);
                assert!(body.contains(&0));
                let media = m.content_type().unwrap().unwrap();
                assert!(media.is(b"multipart", b"mixed"));
                assert_eq!(
                    media.params.get(b"boundary"),
                    Some(Some(&b"7a9cbec02ceef655"[..]))
                );
                assert_eq!(m.top_via().unwrap().rport(), Some(None));
                assert_eq!(m.top_via().unwrap().port, Some(5070));
            }),
        ),
        (
            "unreason.sip",
            Accept(|m| {
                assert_eq!(m.status(), Some(200));
                assert_eq!(
                    m.reason(),
                    Some("= 2**3 * 5**2 но сто девяносто девять - простое".as_bytes())
                );
                assert_eq!(m.cseq().unwrap().method, Method::Invite);
            }),
        ),
        (
            "noreason.sip",
            Accept(|m| {
                assert_eq!(m.status(), Some(100));
                assert_eq!(m.reason(), Some(&b""[..]));
                assert_eq!(m.to().unwrap().tag(), Some(&b"902jndnke3"[..]));
            }),
        ),
        // ---- RFC 4475 §3.1.2 invalid ----
        ("badinv01.sip", Reject(400, "Via")),
        ("clerr.sip", Reject(400, "Content-Length")),
        ("ncl.sip", Reject(400, "Content-Length")),
        ("scalar02.sip", Reject(400, "CSeq")),
        ("scalarlg.sip", Drop),
        ("quotbal.sip", Reject(400, "To")),
        ("ltgtruri.sip", Reject(400, "Request-URI")),
        ("lwsruri.sip", Reject(400, "start line")),
        ("lwsstart.sip", Reject(400, "start line")),
        ("trws.sip", Reject(400, "start line")),
        ("escruri.sip", Reject(400, "Request-URI")),
        (
            "baddate.sip",
            Accept(|m| {
                assert_eq!(
                    m.header(&HeaderName::Date),
                    Some(&b"Fri, 01 Jan 2010 16:00:00 EST"[..])
                );
            }),
        ),
        ("regbadct.sip", Reject(400, "Contact")),
        ("badaspec.sip", Reject(400, "To")),
        ("baddn.sip", Reject(400, "From")),
        ("badvers.sip", Reject(505, "Version Not Supported")),
        ("mismatch01.sip", Reject(400, "CSeq method")),
        ("mismatch02.sip", Reject(400, "CSeq method")),
        ("bigcode.sip", Drop),
        // ---- RFC 4475 §3.2, §3.3, §3.4 ----
        (
            "badbranch.sip",
            Accept(|m| {
                let via = m.top_via().unwrap();
                assert_eq!(via.branch(), Some(&b"z9hG4bK"[..]));
                assert!(via.has_rfc3261_branch());
            }),
        ),
        ("insuf.sip", Reject(400, "missing")),
        (
            "unkscm.sip",
            Accept(|m| {
                let ruri = m.request_uri().unwrap().unwrap();
                assert_eq!(ruri.scheme, Scheme::Other(b"nobodyKnowsThisScheme"));
                assert!(!ruri.is_sip());
                let error = m.check_request_uri_scheme().unwrap_err();
                assert_eq!(
                    (error.status_code(), error.reason_phrase().as_str()),
                    (416, "Unsupported URI Scheme")
                );
            }),
        ),
        (
            "novelsc.sip",
            Accept(|m| {
                let ruri = m.request_uri().unwrap().unwrap();
                assert_eq!(ruri.scheme, Scheme::Other(b"soap.beep"));
                assert_eq!(ruri.opaque, b"//192.0.2.103:3002");
                assert_eq!(m.check_request_uri_scheme().unwrap_err().status_code(), 416);
            }),
        ),
        (
            "unksm2.sip",
            Accept(|m| {
                assert_eq!(m.to().unwrap().uri.scheme, Scheme::Other(b"isbn"));
                m.check_request_uri_scheme().unwrap();
                assert_eq!(m.from().unwrap().uri.scheme, Scheme::Other(b"http"));
                let contact = m.contacts().next().unwrap().unwrap();
                assert_eq!(
                    contact.address().unwrap().uri.scheme,
                    Scheme::Other(b"name")
                );
            }),
        ),
        (
            "bext01.sip",
            Accept(|m| {
                assert_eq!(
                    m.require().collect::<Vec<_>>(),
                    [&b"nothingSupportsThis"[..], b"nothingSupportsThisEither"]
                );
                assert_eq!(m.proxy_require().count(), 2);
            }),
        ),
        (
            "invut.sip",
            Accept(|m| {
                assert!(
                    m.content_type()
                        .unwrap()
                        .unwrap()
                        .is(b"application", b"unknownformat")
                );
                assert_eq!(m.body().len(), 40);
            }),
        ),
        (
            "regaut01.sip",
            Accept(|m| {
                let credentials = m.authorizations().next().unwrap().unwrap();
                assert_eq!(credentials.scheme, b"NoOneKnowsThisScheme");
                assert!(!credentials.is_digest());
                assert_eq!(
                    credentials.param(b"opaque-data").as_deref(),
                    Some(&b"here"[..])
                );
            }),
        ),
        ("multi01.sip", Reject(400, "more than one")),
        ("mcl01.sip", Reject(400, "conflicting Content-Length")),
        (
            "bcast.sip",
            Accept(|m| {
                let second = m.vias().nth(1).unwrap().unwrap();
                assert_eq!(second.host, Host::Ipv4(b"255.255.255.255"));
                assert_eq!(m.status(), Some(200));
            }),
        ),
        (
            "zeromf.sip",
            Accept(|m| assert_eq!(m.max_forwards().unwrap(), Some(0))),
        ),
        (
            "cparam01.sip",
            Accept(|m| {
                let contact = m.contacts().next().unwrap().unwrap();
                let contact = contact.address().unwrap();
                assert!(!contact.angle_brackets);
                assert_eq!(contact.param(b"unknownparam"), Some(None));
                assert!(contact.uri.params.is_empty());
            }),
        ),
        (
            "cparam02.sip",
            Accept(|m| {
                let contact = m.contacts().next().unwrap().unwrap();
                let contact = contact.address().unwrap();
                assert_eq!(contact.uri.param(b"unknownparam"), Some(None));
                assert!(contact.params.is_empty());
            }),
        ),
        (
            "regescrt.sip",
            Accept(|m| {
                let contact = m.contacts().next().unwrap().unwrap();
                assert_eq!(
                    contact.address().unwrap().uri.headers,
                    Some(&b"Route=%3Csip:sip.example.com%3E"[..])
                );
            }),
        ),
        (
            "sdp01.sip",
            Accept(|m| {
                assert_eq!(
                    m.header(&HeaderName::Accept),
                    Some(&b"text/nobodyKnowsThis"[..])
                );
            }),
        ),
        (
            "inv2543.sip",
            Accept(|m| {
                assert_eq!(m.top_via().unwrap().branch(), None);
                assert_eq!(m.from().unwrap().tag(), None);
                assert_eq!(m.content_length().unwrap(), None);
                assert_eq!(m.max_forwards().unwrap(), None);
                assert!(!m.body().is_empty());
                let rr = m.record_routes().next().unwrap().unwrap();
                assert_eq!(rr.uri.param(b"maddr"), Some(Some(&b"ss1.example.com"[..])));
                assert_eq!(m.to().unwrap().param(b"user"), Some(Some(&b"phone"[..])));
            }),
        ),
        // ---- RFC 5118 ----
        (
            "ipv6-good.sip",
            Accept(|m| {
                let ruri = m.request_uri().unwrap().unwrap();
                assert_eq!(ruri.host, Host::Ipv6(b"2001:db8::10"));
                assert_eq!(ruri.port, None);
                assert_eq!(m.top_via().unwrap().host, Host::Ipv6(b"2001:db8::9:1"));
                let contact = m.contacts().next().unwrap().unwrap();
                assert_eq!(
                    contact.address().unwrap().uri.host.ip(),
                    "2001:db8::1".parse().ok()
                );
            }),
        ),
        ("ipv6-bad.sip", Reject(400, "Request-URI")),
        (
            "port-ambiguous.sip",
            Accept(|m| {
                let ruri = m.request_uri().unwrap().unwrap();
                assert_eq!(ruri.host, Host::Ipv6(b"2001:db8::10:5070"));
                assert_eq!(ruri.port, None);
            }),
        ),
        (
            "port-unambiguous.sip",
            Accept(|m| {
                let ruri = m.request_uri().unwrap().unwrap();
                assert_eq!(ruri.host, Host::Ipv6(b"2001:db8::10"));
                assert_eq!(ruri.port, Some(5070));
            }),
        ),
        (
            "via-received-param-with-delim.sip",
            Accept(|m| {
                let via = m.top_via().unwrap();
                assert_eq!(via.received(), Some(&b"[2001:db8::9:255]"[..]));
                assert_eq!(via.branch(), Some(&b"z9hG4bKas3-111"[..]));
            }),
        ),
        (
            "via-received-param-no-delim.sip",
            Accept(|m| {
                let via = m.top_via().unwrap();
                assert_eq!(via.received(), Some(&b"2001:db8::9:255"[..]));
                assert_eq!(via.branch(), Some(&b"z9hG4bKas3"[..]));
            }),
        ),
        (
            "ipv6-in-sdp.sip",
            Accept(|m| {
                assert_eq!(m.to().unwrap().uri.host, Host::Ipv6(b"2001:db8::10"));
                assert!(m.body().windows(7).any(|w| w == b"IN IP6 "));
                assert_eq!(m.body().len(), 251);
            }),
        ),
        (
            "mult-ip-in-header.sip",
            Accept(|m| {
                let vias: Vec<_> = m.vias().map(|v| v.unwrap()).collect();
                assert_eq!(vias[0].host, Host::Ipv6(b"2001:db8::9:1"));
                assert_eq!(vias[0].port, Some(6050));
                assert_eq!(vias[1].host, Host::Ipv4(b"192.0.2.1"));
                assert_eq!(vias[2].host, Host::Ipv6(b"2001:db8::9:255"));
                assert_eq!(vias[2].received(), Some(&b"192.0.2.200"[..]));
                assert_eq!(vias[2].branch(), Some(&b"z9hG4bK451jj"[..]));
            }),
        ),
        (
            "mult-ip-in-sdp.sip",
            Accept(|m| assert_eq!(m.body().len(), 189)),
        ),
        (
            "ipv4-mapped-ipv6.sip",
            Accept(|m| {
                let via = m.top_via().unwrap();
                assert_eq!(via.host, Host::Ipv6(b"::ffff:192.0.2.10"));
                assert_eq!(via.port, Some(19823));
                assert_eq!(via.host.ip(), "::ffff:192.0.2.10".parse().ok());
            }),
        ),
        (
            "ipv6-bug-abnf-3-colons.sip",
            Accept(|m| {
                let ruri = m.request_uri().unwrap().unwrap();
                assert_eq!(ruri.host, Host::Ipv6(b"2001:db8:::192.0.2.1"));
            }),
        ),
        (
            "ipv6-correct-abnf-2-colons.sip",
            Accept(|m| {
                let ruri = m.request_uri().unwrap().unwrap();
                assert_eq!(ruri.host, Host::Ipv6(b"2001:db8::192.0.2.1"));
                assert!(ruri.host.ip().is_some());
            }),
        ),
    ]
}

#[test]
fn table_lists_exactly_the_files_present() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(torture_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".sip"))
        .collect();
    let listed: BTreeSet<String> = table().iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(table().len(), listed.len(), "a file is listed twice");
    let unlisted: Vec<_> = on_disk.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&on_disk).collect();
    assert!(unlisted.is_empty(), "files without a verdict: {unlisted:?}");
    assert!(missing.is_empty(), "verdicts without a file: {missing:?}");
    assert_eq!(on_disk.len(), 61);
}

#[test]
fn every_torture_message_gets_its_verdict() {
    let mut failures = Vec::new();
    for (name, expected) in table() {
        let bytes = Bytes::from(std::fs::read(torture_dir().join(name)).unwrap());
        let outcome = verdict(bytes.clone());
        let result = std::panic::catch_unwind(|| match (&expected, &outcome) {
            (Accept(check), Ok(message)) => {
                check(message);
                // Untouched messages print byte for byte, and reparse to the same values.
                let printed = message.to_bytes();
                assert!(
                    bytes.starts_with(&printed),
                    "{name}: printed bytes differ from the input"
                );
                let again = verdict(printed).expect("reprinted message parses");
                check(&again);
            }
            (Accept(_), Err(error)) => panic!("{name}: rejected with {error:?}"),
            (Reject(code, text), Err(error)) => {
                assert_eq!(error.status_code(), *code, "{name}: {error:?}");
                assert!(
                    error.reason_phrase().contains(text),
                    "{name}: {:?} lacks {text:?}",
                    error.reason_phrase()
                );
            }
            (Drop, Err(_)) => {}
            (Reject(..) | Drop, Ok(_)) => panic!("{name}: accepted but must be rejected"),
        });
        if result.is_err() {
            failures.push(name);
        }
    }
    assert!(failures.is_empty(), "failed: {failures:?}");
}

#[test]
fn responses_to_drop_are_typed_errors() {
    let read = |name: &str| Bytes::from(std::fs::read(torture_dir().join(name)).unwrap());
    assert_eq!(
        Message::parse(read("bigcode.sip")).unwrap_err(),
        ParseError::InvalidStatusCode
    );
    let scalarlg = Message::parse(read("scalarlg.sip")).unwrap();
    assert!(matches!(
        scalarlg.cseq(),
        Err(ParseError::InvalidHeader {
            header: HeaderName::CSeq,
            ..
        })
    ));
    assert!(scalarlg.validate().is_err());
}

#[test]
fn archive_test_message_is_rejected() {
    let bytes = std::fs::read(torture_dir().join("extra/rfc4475-archive-test.sip")).unwrap();
    let error = verdict(Bytes::from(bytes)).unwrap_err();
    assert_eq!(error.status_code(), 400);
}

/// The RFC 5118 archive bytes use bare LF and, in places, a wrong Content-Length; parsing
/// them must end in a value or a typed error, and where they parse the hosts are right.
#[test]
fn rfc5118_archive_bytes_never_break_the_parser() {
    let dir = torture_dir().join("rfc5118-archive");
    let mut parsed = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = Bytes::from(std::fs::read(&path).unwrap());
        if let Ok(message) = Message::parse(bytes)
            && message.validate().is_ok()
        {
            parsed += 1;
            assert!(message.top_via().is_ok(), "{path:?}");
        }
    }
    assert!(parsed >= 5, "only {parsed} archive messages parsed");
}

#[test]
fn contacts_in_wsinv_unfold() {
    let bytes = std::fs::read(torture_dir().join("wsinv.sip")).unwrap();
    let message = Message::parse(Bytes::from(bytes)).unwrap();
    let contact = message.contacts().next().unwrap().unwrap();
    let Contact::Address(address) = contact else {
        panic!("wildcard")
    };
    assert_eq!(
        address.display_name_unquoted().as_deref(),
        Some(&b"Quoted string \"\""[..])
    );
    assert_eq!(address.param(b"secondparam"), Some(None));
}
