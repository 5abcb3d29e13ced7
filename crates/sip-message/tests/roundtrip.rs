//! Property tests: generated messages (random header order, spelling, compact forms,
//! folding, parameters) parse, expose the generated values, print byte for byte, and
//! survive edits.

use bytes::Bytes;
use proptest::prelude::*;
use sip_message::{HeaderName, Message};

#[derive(Debug, Clone)]
struct ViaSpec {
    transport: &'static str,
    host: String,
    port: Option<u16>,
    branch: String,
    rport: bool,
}

impl ViaSpec {
    fn render(&self) -> String {
        let mut out = format!("SIP/2.0/{} {}", self.transport, self.host);
        if let Some(port) = self.port {
            out.push_str(&format!(":{port}"));
        }
        out.push_str(&format!(";branch={}", self.branch));
        if self.rport {
            out.push_str(";rport");
        }
        out
    }
}

#[derive(Debug, Clone)]
struct Spec {
    method: &'static str,
    request_user: String,
    host: String,
    vias: Vec<ViaSpec>,
    vias_per_line: usize,
    from_display: Option<String>,
    from_tag: String,
    to_tag: Option<String>,
    to_bare: bool,
    call_id: String,
    cseq: u32,
    max_forwards: u8,
    max_forwards_zeros: usize,
    contacts: Vec<String>,
    extensions: Vec<(String, String)>,
    body: Vec<u8>,
    order_seed: Vec<usize>,
    spelling_seed: Vec<u8>,
    fold_seed: Vec<bool>,
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}\\.(example\\.com|example\\.net|test)",
        (1u8..=254, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        (1u16..0xffff, 1u16..0xffff).prop_map(|(a, b)| format!("[2001:db8::{a:x}:{b:x}]")),
    ]
}

fn via() -> impl Strategy<Value = ViaSpec> {
    (
        prop_oneof![
            Just("UDP"),
            Just("TCP"),
            Just("TLS"),
            Just("SCTP"),
            Just("WS")
        ],
        host(),
        proptest::option::of(1024u16..65535),
        "[a-zA-Z0-9.!%*_+`'~-]{1,16}",
        any::<bool>(),
    )
        .prop_map(|(transport, host, port, branch, rport)| ViaSpec {
            transport,
            host,
            port,
            branch: format!("z9hG4bK{branch}"),
            rport,
        })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            prop_oneof![Just("INVITE"), Just("OPTIONS"), Just("REGISTER"), Just("BYE"), Just("MESSAGE"), Just("X-ODD.method")],
            "[a-z0-9_.]{1,10}",
            host(),
            proptest::collection::vec(via(), 1..5),
            1usize..3,
            proptest::option::of("[A-Za-z][A-Za-z .,]{0,12}"),
            "[a-zA-Z0-9]{1,12}",
            proptest::option::of("[a-zA-Z0-9]{1,12}"),
            any::<bool>(),
        ),
        (
            "[a-zA-Z0-9.-]{1,24}@[a-z0-9.]{1,12}",
            any::<u32>(),
            any::<u8>(),
            0usize..3,
            proptest::collection::vec("<sip:[a-z]{1,6}@[a-z]{1,8}\\.example\\.com(;transport=tcp)?>(;expires=[0-9]{1,4})?", 0..3),
            proptest::collection::vec(("X-[A-Za-z]{1,10}", "[a-zA-Z0-9 ;=/,]{0,24}[a-zA-Z0-9]"), 0..4),
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(any::<usize>(), 16),
            proptest::collection::vec(any::<u8>(), 16),
            proptest::collection::vec(any::<bool>(), 16),
        ),
    )
        .prop_map(
            |(
                (method, request_user, host, vias, vias_per_line, from_display, from_tag, to_tag, to_bare),
                (call_id, cseq, max_forwards, max_forwards_zeros, contacts, extensions, body, order_seed, spelling_seed, fold_seed),
            )| Spec {
                method,
                request_user,
                host,
                vias,
                vias_per_line,
                from_display,
                from_tag,
                to_tag,
                to_bare,
                call_id,
                cseq,
                max_forwards,
                max_forwards_zeros,
                contacts,
                extensions,
                body,
                order_seed,
                spelling_seed,
                fold_seed,
            },
        )
}

/// Spells a header name the way some peer might: canonical, lower, upper, or compact.
fn spell(canonical: &str, compact: Option<&str>, seed: u8) -> String {
    match (seed % 4, compact) {
        (0, _) => canonical.to_owned(),
        (1, _) => canonical.to_ascii_lowercase(),
        (2, _) => canonical.to_ascii_uppercase(),
        (_, Some(compact)) => compact.to_owned(),
        (_, None) => canonical.to_owned(),
    }
}

fn colon(seed: u8) -> &'static str {
    [": ", ":", " : ", ":\t"][usize::from(seed / 4 % 4)]
}

/// Folds a value where LWS is allowed (RFC 3261 §7.3.1: LWS may contain CRLF): before the
/// header parameters, or at the first space; never inside a URI.
fn fold(value: &str, enabled: bool) -> String {
    if !enabled {
        value.to_owned()
    } else if value.contains(">;") {
        value.replacen(">;", ">\r\n  ;", 1)
    } else if !value.contains('<') && value.contains(';') {
        value.replacen(';', "\r\n  ;", 1)
    } else {
        value.replacen(' ', "\r\n ", 1)
    }
}

impl Spec {
    fn render(&self) -> Vec<u8> {
        let mut lines: Vec<(String, Option<&str>, String)> = Vec::new();
        for group in self.vias.chunks(self.vias_per_line) {
            let value = group
                .iter()
                .map(ViaSpec::render)
                .collect::<Vec<_>>()
                .join(" , ");
            lines.push(("Via".into(), Some("v"), value));
        }
        let from = match &self.from_display {
            Some(name) => format!(
                "\"{name}\" <sip:caller@{}>;tag={}",
                self.host, self.from_tag
            ),
            None => format!("<sip:caller@{}>;tag={}", self.host, self.from_tag),
        };
        lines.push(("From".into(), Some("f"), from));
        let mut to = if self.to_bare {
            format!("sip:{}@{}", self.request_user, self.host)
        } else {
            format!("<sip:{}@{}>", self.request_user, self.host)
        };
        if let Some(tag) = &self.to_tag {
            to.push_str(&format!(";tag={tag}"));
        }
        lines.push(("To".into(), Some("t"), to));
        lines.push(("Call-ID".into(), Some("i"), self.call_id.clone()));
        lines.push((
            "CSeq".into(),
            None,
            format!("{} {}", self.cseq, self.method),
        ));
        lines.push((
            "Max-Forwards".into(),
            None,
            format!(
                "{}{}",
                "0".repeat(self.max_forwards_zeros),
                self.max_forwards
            ),
        ));
        for contact in &self.contacts {
            lines.push(("Contact".into(), Some("m"), contact.clone()));
        }
        for (name, value) in &self.extensions {
            lines.push((name.clone(), None, value.clone()));
        }
        // Shuffle deterministically from the seed, keeping Via lines in their order.
        let mut keyed: Vec<(usize, usize)> = lines
            .iter()
            .enumerate()
            .map(|(index, (name, ..))| {
                let key = if name == "Via" {
                    index
                } else {
                    self.order_seed[index % 16] % 64
                };
                (key, index)
            })
            .collect();
        keyed.sort();
        let vias_first: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].0 == "Via").collect();
        let mut via_slots = vias_first.iter();
        let mut order: Vec<usize> = Vec::new();
        for (_, index) in keyed {
            if lines[index].0 == "Via" {
                order.push(*via_slots.next().unwrap());
            } else {
                order.push(index);
            }
        }
        let mut out = format!(
            "{} sip:{}@{} SIP/2.0\r\n",
            self.method, self.request_user, self.host
        )
        .into_bytes();
        for (position, index) in order.into_iter().enumerate() {
            let (name, compact, value) = &lines[index];
            let seed = self.spelling_seed[position % 16];
            let name = if name.starts_with("X-") {
                name.clone()
            } else {
                spell(name, *compact, seed)
            };
            let value = fold(
                value,
                self.fold_seed[position % 16] && !name.starts_with("X-"),
            );
            out.extend_from_slice(format!("{name}{}{value}\r\n", colon(seed)).as_bytes());
        }
        let length_name = spell("Content-Length", Some("l"), self.spelling_seed[15]);
        out.extend_from_slice(format!("{length_name}: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

fn branches(message: &Message) -> Vec<Vec<u8>> {
    message
        .vias()
        .map(|via| via.unwrap().branch().unwrap().to_vec())
        .collect()
}

fn check_values(message: &Message, spec: &Spec) {
    message.validate().unwrap();
    assert_eq!(message.method().unwrap().as_bytes(), spec.method.as_bytes());
    assert_eq!(message.call_id().unwrap(), spec.call_id.as_bytes());
    let cseq = message.cseq().unwrap();
    assert_eq!(cseq.number, spec.cseq);
    assert_eq!(cseq.method_raw, spec.method.as_bytes());
    assert_eq!(
        message.from().unwrap().tag(),
        Some(spec.from_tag.as_bytes())
    );
    assert_eq!(
        message.to().unwrap().tag(),
        spec.to_tag.as_ref().map(|t| t.as_bytes())
    );
    assert_eq!(
        message.max_forwards().unwrap(),
        Some(u32::from(spec.max_forwards))
    );
    let expected: Vec<Vec<u8>> = spec
        .vias
        .iter()
        .map(|v| v.branch.clone().into_bytes())
        .collect();
    assert_eq!(branches(message), expected);
    for (via, expected) in message.vias().zip(&spec.vias) {
        let via = via.unwrap();
        assert_eq!(via.transport, expected.transport.as_bytes());
        assert_eq!(via.port, expected.port);
        assert_eq!(via.rport(), expected.rport.then_some(None));
        let host = expected.host.trim_start_matches('[').trim_end_matches(']');
        assert_eq!(via.host.as_bytes(), host.as_bytes());
    }
    assert_eq!(message.contacts().count(), spec.contacts.len());
    for (name, value) in &spec.extensions {
        let found = message.header_values(&HeaderName::from_bytes(name.as_bytes()));
        assert!(
            found.into_iter().any(|v| v == value.trim().as_bytes()),
            "{name}: {value}"
        );
    }
    assert_eq!(&message.body()[..], &spec.body[..]);
    if let Some(display) = &spec.from_display {
        assert_eq!(
            message.from().unwrap().display_name_unquoted().as_deref(),
            Some(display.as_bytes())
        );
    }
}

proptest! {
    // No failure persistence: the shrunk input is printed, and tests must not write into the repository.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_messages_parse_print_and_reparse(spec in spec()) {
        let bytes = Bytes::from(spec.render());
        let message = Message::parse(bytes.clone()).unwrap();
        check_values(&message, &spec);
        let printed = message.to_bytes();
        prop_assert_eq!(&printed, &bytes);
        let again = Message::parse(printed).unwrap();
        check_values(&again, &spec);
    }

    #[test]
    fn push_then_pop_via_is_the_identity(spec in spec(), branch in "[a-zA-Z0-9]{1,12}") {
        let bytes = Bytes::from(spec.render());
        let mut message = Message::parse(bytes.clone()).unwrap();
        message.push_via(format!("SIP/2.0/UDP 192.0.2.200:5060;branch=z9hG4bK{branch}"));
        let pushed = Message::parse(message.to_bytes()).unwrap();
        let mut expected = vec![format!("z9hG4bK{branch}").into_bytes()];
        expected.extend(spec.vias.iter().map(|v| v.branch.clone().into_bytes()));
        prop_assert_eq!(branches(&pushed), expected);
        prop_assert!(message.pop_via());
        prop_assert_eq!(message.to_bytes(), bytes);
    }

    #[test]
    fn pop_via_removes_exactly_the_top_value(spec in spec()) {
        let mut message = Message::parse(Bytes::from(spec.render())).unwrap();
        prop_assert!(message.pop_via());
        let popped = Message::parse(message.to_bytes()).unwrap();
        let expected: Vec<Vec<u8>> = spec.vias[1..].iter().map(|v| v.branch.clone().into_bytes()).collect();
        prop_assert_eq!(branches(&popped), expected);
        prop_assert_eq!(popped.call_id().unwrap(), spec.call_id.as_bytes());
        prop_assert_eq!(&popped.body()[..], &spec.body[..]);
    }

    #[test]
    fn added_then_removed_header_is_the_identity(spec in spec(), value in "[a-zA-Z0-9]{1,20}") {
        let bytes = Bytes::from(spec.render());
        let mut message = Message::parse(bytes.clone()).unwrap();
        let name = HeaderName::from_static("X-Voxide-Added");
        message.add_header(name.clone(), value.clone());
        let added = Message::parse(message.to_bytes()).unwrap();
        check_values(&added, &spec);
        prop_assert_eq!(added.header(&name), Some(value.as_bytes()));
        prop_assert_eq!(message.remove_header(&name), 1);
        prop_assert_eq!(message.to_bytes(), bytes);
    }

    #[test]
    fn new_body_round_trips_with_its_length(spec in spec(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut message = Message::parse(Bytes::from(spec.render())).unwrap();
        message.set_body(Bytes::from(body.clone()));
        let reparsed = Message::parse(message.to_bytes()).unwrap();
        let mut expected = spec.clone();
        expected.body = body;
        check_values(&reparsed, &expected);
        prop_assert_eq!(reparsed.content_length().unwrap(), Some(expected.body.len() as u32));
    }

    /// Arbitrary bytes: parsing ends in a value or a typed error, and whatever parses
    /// prints to a fixed point.
    #[test]
    fn arbitrary_bytes_never_break_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(Bytes::from(bytes));
    }

    /// Corrupted real messages: same property, with far more inputs that get deep.
    #[test]
    fn corrupted_invites_never_break_the_parser(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut bytes = include_bytes!("data/invite.sip").to_vec();
        for (index, byte) in edits {
            let at = index.index(bytes.len());
            bytes[at] = byte;
        }
        exercise(Bytes::from(bytes));
    }
}

fn exercise(bytes: Bytes) {
    let Ok(message) = Message::parse(bytes) else {
        return;
    };
    let _ = message.validate();
    let _ = message.request_uri();
    let _ = (
        message.call_id(),
        message.cseq(),
        message.from(),
        message.to(),
        message.max_forwards(),
    );
    let _ = message.vias().count() + message.contacts().count() + message.routes().count();
    let _ = message.authorizations().count() + message.record_routes().count();
    let _ = (
        message.content_type(),
        message.session_expires(),
        message.expires(),
    );
    let printed = message.to_bytes();
    let again = Message::parse(printed.clone()).expect("printed message parses");
    assert_eq!(again.to_bytes(), printed);
    assert_eq!(again.validate().is_ok(), message.validate().is_ok());
}
