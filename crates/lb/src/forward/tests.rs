//! Unit tests of the forwarding core, message in, action out.

use super::*;

const PROXY: &str = "127.0.0.1:5062";
const INTERNAL: &str = "127.0.0.1:5064";
const PUBLIC_IP: &str = "192.0.2.10";
const PHONE: &str = "203.0.113.5:40000";

fn forwarder() -> Forwarder {
    let public = |transport, port: u16| {
        let address = SocketAddr::new(PUBLIC_IP.parse().unwrap(), port);
        PublicInterface {
            transport,
            bound: address,
            advertised: address,
        }
    };
    Forwarder::new(ForwarderConfig {
        public: vec![
            public(TransportProtocol::Udp, 5060),
            public(TransportProtocol::Tcp, 5060),
            public(TransportProtocol::Tls, 5061),
        ],
        internal: INTERNAL.parse().unwrap(),
        proxy: PROXY.parse().unwrap(),
        trusted_proxies: Vec::new(),
        domains: ["Example.COM".to_owned()].into_iter().collect(),
        look_up_unknown_domains: false,
    })
}

fn from_phone(transport: TransportProtocol, connection: Option<u64>) -> Inbound {
    let port = if transport == TransportProtocol::Tls {
        5061
    } else {
        5060
    };
    Inbound {
        transport,
        local: SocketAddr::new(PUBLIC_IP.parse().unwrap(), port),
        remote: PHONE.parse().unwrap(),
        connection,
    }
}

fn from_proxy() -> Inbound {
    Inbound {
        transport: TransportProtocol::Udp,
        local: INTERNAL.parse().unwrap(),
        remote: PROXY.parse().unwrap(),
        connection: None,
    }
}

fn request(start: &str, headers: &[&str]) -> String {
    let mut text = format!("{start} SIP/2.0\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text
}

fn invite(via_branch: &str, transport: &str) -> String {
    request(
        "INVITE sip:bob@example.com",
        &[
            &format!("Via: SIP/2.0/{transport} 10.0.0.5:5060;branch={via_branch};rport"),
            "From: <sip:alice@example.com>;tag=a1",
            "To: <sip:bob@example.com>",
            "Call-ID: call-1",
            "CSeq: 1 INVITE",
            "Max-Forwards: 70",
            "Contact: <sip:alice@10.0.0.5:5060>",
        ],
    )
}

fn handle(text: &str, inbound: &Inbound) -> Action {
    let message = receive(Bytes::from(text.to_owned()), inbound.remote).unwrap();
    forwarder().handle(message, inbound)
}

fn forwarded(action: Action) -> (Message, Target) {
    match action {
        Action::Forward { message, target } => (Message::parse(message).unwrap(), target),
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn replied(action: Action) -> (u16, Message) {
    match action {
        Action::Reply { response, status } => (status, Message::parse(response).unwrap()),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn register_gets_path_with_received_and_source_header() {
    let register = request(
        "REGISTER sip:example.com",
        &[
            "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKreg1;rport",
            "From: <sip:alice@example.com>;tag=r1",
            "To: <sip:alice@example.com>",
            "Call-ID: reg-1",
            "CSeq: 1 REGISTER",
            "Contact: <sip:alice@10.0.0.5:5060>",
        ],
    );
    let (message, target) = forwarded(handle(&register, &from_phone(TransportProtocol::Udp, None)));
    assert_eq!(target, Target::Internal(PROXY.parse().unwrap()));
    let path = message.paths().next().unwrap().unwrap();
    assert_eq!(
        text(path.raw),
        "<sip:127.0.0.1:5064;lr;received=sip:203.0.113.5:40000%3Btransport%3Dudp>"
    );
    assert_eq!(
        message.header(&internal_headers::source_header_name()),
        Some(&b"udp 203.0.113.5:40000"[..])
    );
    let top = message.top_via().unwrap();
    assert_eq!(text(top.host.as_bytes()), "127.0.0.1");
    assert_eq!(top.port, Some(5064));
    assert!(top.branch().unwrap().starts_with(BRANCH_PREFIX.as_bytes()));
    let phone_via = message.vias().nth(1).unwrap().unwrap();
    assert_eq!(phone_via.received(), Some(&b"203.0.113.5"[..]));
    assert_eq!(phone_via.rport(), Some(Some(40000)));
    // Max-Forwards absent → set to 70 (RFC 3261 §8.1.1.6); REGISTER is not record-routed.
    assert_eq!(message.max_forwards().unwrap(), Some(70));
    assert!(message.record_routes().next().is_none());
    assert_eq!(
        message.header(&HeaderName::Contact),
        Some(&b"<sip:alice@10.0.0.5:5060>"[..])
    );
}

#[test]
fn register_over_tcp_carries_the_flow_token_in_path_and_via() {
    let register = request(
        "REGISTER sip:example.com",
        &[
            "Via: SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bKreg2",
            "From: <sip:alice@example.com>;tag=r1",
            "To: <sip:alice@example.com>",
            "Call-ID: reg-2",
            "CSeq: 1 REGISTER",
            "Contact: <sip:alice@10.0.0.5:5060;transport=tcp>",
        ],
    );
    let (message, _) = forwarded(handle(
        &register,
        &from_phone(TransportProtocol::Tcp, Some(42)),
    ));
    let path = message.paths().next().unwrap().unwrap();
    assert_eq!(path.uri.param(b"vxf"), Some(Some(&b"42"[..])));
    assert_eq!(
        path.uri.param(b"received"),
        Some(Some(&b"sip:203.0.113.5:40000%3Btransport%3Dtcp"[..]))
    );
    assert_eq!(
        message.top_via().unwrap().param(b"vxf"),
        Some(Some(&b"42"[..]))
    );
    // What the proxy reads back with sip-core's parser: the phone's transport and address.
    assert_eq!(
        Source::from_message(&message),
        Some(Source {
            transport: TransportProtocol::Tcp,
            address: PHONE.parse().unwrap(),
        })
    );
}

#[test]
fn client_internal_headers_are_stripped() {
    let register = request(
        "REGISTER sip:example.com",
        &[
            "Via: SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bKreg3",
            "From: <sip:alice@example.com>;tag=r1",
            "To: <sip:alice@example.com>",
            "Call-ID: reg-3",
            "CSeq: 1 REGISTER",
            "X-Voxide-Source: udp 198.51.100.1:5060",
            "x-voxide-trusted: yes",
        ],
    );
    let (message, _) = forwarded(handle(&register, &from_phone(TransportProtocol::Udp, None)));
    let internal: Vec<_> = message
        .headers()
        .filter(|(name, _)| {
            name.as_bytes()
                .to_ascii_lowercase()
                .starts_with(b"x-voxide-")
        })
        .map(|(name, value)| (name.as_bytes().to_vec(), value.to_vec()))
        .collect();
    assert_eq!(
        internal,
        vec![(
            b"X-Voxide-Source".to_vec(),
            b"udp 203.0.113.5:40000".to_vec()
        )]
    );
}

#[test]
fn retransmission_gets_the_same_branch_and_a_new_transaction_another() {
    let branch_of = |text: &str| {
        let (message, _) = forwarded(handle(text, &from_phone(TransportProtocol::Udp, None)));
        message.top_via().unwrap().branch().unwrap().to_vec()
    };
    let first = branch_of(&invite("z9hG4bKinv1", "UDP"));
    assert_eq!(first, branch_of(&invite("z9hG4bKinv1", "UDP")));
    assert_ne!(first, branch_of(&invite("z9hG4bKinv2", "UDP")));
}

#[test]
fn ack_of_a_rejection_and_cancel_get_the_invite_branch() {
    let inbound = from_phone(TransportProtocol::Udp, None);
    let branch_of = |text: &str| {
        let (message, _) = forwarded(handle(text, &inbound));
        message.top_via().unwrap().branch().unwrap().to_vec()
    };
    let invite = invite("z9hG4bKtx407", "UDP");
    let ack = invite
        .replace(
            "INVITE sip:bob@example.com SIP",
            "ACK sip:bob@example.com SIP",
        )
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace(
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com>;tag=rejected",
        );
    let cancel = invite
        .replace(
            "INVITE sip:bob@example.com SIP",
            "CANCEL sip:bob@example.com SIP",
        )
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    assert_eq!(branch_of(&invite), branch_of(&ack));
    assert_eq!(branch_of(&invite), branch_of(&cancel));
}

#[test]
fn max_forwards_zero_is_answered_483_and_otherwise_decremented() {
    let exhausted = invite("z9hG4bKmf", "UDP").replace("Max-Forwards: 70", "Max-Forwards: 0");
    let (status, response) = replied(handle(
        &exhausted,
        &from_phone(TransportProtocol::Udp, None),
    ));
    assert_eq!(status, 483);
    assert_eq!(response.status(), Some(483));
    assert!(response.to().unwrap().tag().is_some());
    let (message, _) = forwarded(handle(
        &invite("z9hG4bKmf", "UDP"),
        &from_phone(TransportProtocol::Udp, None),
    ));
    assert_eq!(message.max_forwards().unwrap(), Some(69));
}

#[test]
fn ack_is_never_answered() {
    let ack = request(
        "ACK sip:bob@example.com",
        &[
            "Via: SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bKack",
            "From: <sip:alice@example.com>;tag=a1",
            "To: <sip:bob@example.com>;tag=b1",
            "Call-ID: call-1",
            "CSeq: 1 ACK",
            "Max-Forwards: 0",
        ],
    );
    assert_eq!(
        handle(&ack, &from_phone(TransportProtocol::Udp, None)),
        Action::Drop(DropReason::AckRefused(483))
    );
}

#[test]
fn request_coming_back_unchanged_is_a_loop() {
    let inbound = from_phone(TransportProtocol::Udp, None);
    let (message, _) = forwarded(handle(&invite("z9hG4bKloop", "UDP"), &inbound));
    // The proxy sends it back to our public side unchanged, with its own Via on top.
    let mut looped = message;
    looped.push_via("SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKproxy");
    let looped = String::from_utf8(looped.to_bytes().to_vec()).unwrap();
    let (status, _) = replied(handle(&looped, &inbound));
    assert_eq!(status, 482);
}

#[test]
fn foreign_domain_is_refused_unless_in_dialog_or_from_the_proxy() {
    let foreign = invite("z9hG4bKrelay", "UDP")
        .replace("sip:bob@example.com SIP", "sip:bob@elsewhere.net SIP");
    let (status, response) = replied(handle(&foreign, &from_phone(TransportProtocol::Udp, None)));
    assert_eq!(status, 403);
    assert_eq!(response.reason(), Some(&b"Forbidden - relaying denied"[..]));
    let in_dialog = foreign.replace(
        "To: <sip:bob@example.com>",
        "To: <sip:bob@example.com>;tag=b1",
    );
    forwarded(handle(
        &in_dialog,
        &from_phone(TransportProtocol::Udp, None),
    ));
    // Our own address as domain is served too.
    let to_ip =
        invite("z9hG4bKip", "UDP").replace("sip:bob@example.com SIP", "sip:bob@192.0.2.10 SIP");
    forwarded(handle(&to_ip, &from_phone(TransportProtocol::Udp, None)));
}

#[test]
fn served_domains_can_change_at_run_time() {
    let foreign = invite("z9hG4bKdom", "UDP").replace(
        "sip:bob@example.com SIP",
        "sip:bob@Customer.example.net SIP",
    );
    let inbound = from_phone(TransportProtocol::Udp, None);
    let mut forwarder = forwarder();
    let message = receive(Bytes::from(foreign.clone()), inbound.remote).unwrap();
    assert_eq!(replied(forwarder.handle(message, &inbound)).0, 403);
    forwarder.set_domains(["customer.EXAMPLE.net".to_owned()]);
    let message = receive(Bytes::from(foreign), inbound.remote).unwrap();
    forwarded(forwarder.handle(message, &inbound));
}

#[test]
fn unsupported_scheme_is_answered_416() {
    let im = invite("z9hG4bKim", "UDP")
        .replace("INVITE sip:bob@example.com", "INVITE im:bob@example.com");
    let (status, _) = replied(handle(&im, &from_phone(TransportProtocol::Udp, None)));
    assert_eq!(status, 416);
}

#[test]
fn invite_over_tcp_is_double_record_routed_and_aliased() {
    let (message, target) = forwarded(handle(
        &invite("z9hG4bKtcp", "TCP"),
        &from_phone(TransportProtocol::Tcp, Some(7)),
    ));
    assert_eq!(target, Target::Internal(PROXY.parse().unwrap()));
    let record_routes: Vec<String> = message
        .record_routes()
        .map(|route| text(route.unwrap().raw).to_owned())
        .collect();
    assert_eq!(
        record_routes,
        vec![
            "<sip:127.0.0.1:5064;lr;r2=on>".to_owned(),
            "<sip:192.0.2.10:5060;transport=tcp;lr;r2=on>".to_owned(),
        ]
    );
    assert_eq!(
        message.header(&HeaderName::Contact),
        Some(&b"<sip:alice@10.0.0.5:5060;alias=203.0.113.5~40000~2>"[..])
    );
    assert_eq!(
        message.top_via().unwrap().param(b"vxf"),
        Some(Some(&b"7"[..]))
    );
}

#[test]
fn response_from_proxy_goes_back_on_the_phone_connection() {
    let (request, _) = forwarded(handle(
        &invite("z9hG4bKresp", "TCP"),
        &from_phone(TransportProtocol::Tcp, Some(7)),
    ));
    let ringing = MessageBuilder::response_to(&request, 180, "Ringing")
        .to_tag("b1")
        .build();
    let (response, target) = forwarded(forwarder().handle(ringing, &from_proxy()));
    assert_eq!(
        target,
        Target::Public {
            transport: TransportProtocol::Tcp,
            remote: PHONE.parse().unwrap(),
            connection: Some(7),
        }
    );
    assert_eq!(response.vias().count(), 1);
    assert_eq!(
        response.top_via().unwrap().branch(),
        Some(&b"z9hG4bKresp"[..])
    );
}

#[test]
fn responses_not_through_us_are_dropped() {
    let request = Message::parse(Bytes::from(invite("z9hG4bKx", "UDP"))).unwrap();
    let response = MessageBuilder::response_to(&request, 200, "OK").build();
    assert_eq!(
        forwarder().handle(response.clone(), &from_proxy()),
        Action::Drop(DropReason::ResponseNotForUs)
    );
    assert_eq!(
        forwarder().handle(response, &from_phone(TransportProtocol::Udp, None)),
        Action::Drop(DropReason::ResponseNotForUs)
    );
}

#[test]
fn phone_response_must_lead_back_to_a_trusted_proxy() {
    // A phone forges a response carrying our Via and, below it, a victim's address: the
    // LB must not reflect it to the victim over the internal side.
    let forged = "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKvx0123456789abcdef.0123456789abcdef\r\n\
        Via: SIP/2.0/UDP 198.51.100.66:5060;branch=z9hG4bKvictim\r\n\
        From: <sip:x@example.com>;tag=x1\r\n\
        To: <sip:bob@example.com>;tag=b1\r\n\
        Call-ID: reflect-1\r\n\
        CSeq: 1 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";
    let message = Message::parse(Bytes::from_static(forged.as_bytes())).unwrap();
    assert_eq!(
        forwarder().handle(message, &from_phone(TransportProtocol::Udp, None)),
        Action::Drop(DropReason::ResponseWithoutNextHop)
    );
    // The same response with the proxy below our Via goes to the proxy.
    let genuine = forged.replace("198.51.100.66:5060", PROXY);
    let message = Message::parse(Bytes::from(genuine)).unwrap();
    let (_, target) =
        forwarded(forwarder().handle(message, &from_phone(TransportProtocol::Udp, None)));
    assert_eq!(target, Target::Internal(PROXY.parse().unwrap()));
}

#[test]
fn request_from_proxy_with_path_reaches_the_received_address() {
    let invite = request(
        "INVITE sip:alice@10.0.0.5:5060",
        &[
            "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKp1",
            "Route: <sip:127.0.0.1:5064;lr;received=sip:203.0.113.5:40000%3Btransport%3Dudp>",
            "From: <sip:bob@example.com>;tag=b1",
            "To: <sip:alice@example.com>",
            "Call-ID: call-2",
            "CSeq: 1 INVITE",
            "Max-Forwards: 69",
            "Contact: <sip:bob@203.0.113.9:5060>",
        ],
    );
    let (message, target) = forwarded(handle(&invite, &from_proxy()));
    assert_eq!(
        target,
        Target::Public {
            transport: TransportProtocol::Udp,
            remote: PHONE.parse().unwrap(),
            connection: None,
        }
    );
    assert!(message.routes().next().is_none());
    let top = message.top_via().unwrap();
    assert_eq!(text(top.host.as_bytes()), PUBLIC_IP);
    assert_eq!(top.rport(), Some(None));
    let record_routes: Vec<String> = message
        .record_routes()
        .map(|route| text(route.unwrap().raw).to_owned())
        .collect();
    assert_eq!(
        record_routes,
        vec![
            "<sip:192.0.2.10:5060;transport=udp;lr;r2=on>".to_owned(),
            "<sip:127.0.0.1:5064;lr;r2=on>".to_owned(),
        ]
    );
}

#[test]
fn in_dialog_request_from_proxy_follows_the_alias() {
    let bye = request(
        "BYE sip:bob@10.0.0.6:5060;alias=203.0.113.6~5070~1",
        &[
            "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKbye",
            "Route: <sip:127.0.0.1:5064;lr;r2=on>, <sip:192.0.2.10:5060;transport=udp;lr;r2=on>",
            "From: <sip:alice@example.com>;tag=a1",
            "To: <sip:bob@example.com>;tag=b1",
            "Call-ID: call-3",
            "CSeq: 2 BYE",
            "Max-Forwards: 69",
        ],
    );
    let (message, target) = forwarded(handle(&bye, &from_proxy()));
    assert_eq!(
        target,
        Target::Public {
            transport: TransportProtocol::Udp,
            remote: "203.0.113.6:5070".parse().unwrap(),
            connection: None,
        }
    );
    assert_eq!(
        message.request_uri_bytes(),
        Some(&b"sip:bob@10.0.0.6:5060"[..])
    );
    assert!(message.routes().next().is_none());
    assert!(message.record_routes().next().is_none());
}

#[test]
fn internal_side_trusts_only_the_proxy() {
    let mut stranger = from_proxy();
    stranger.remote = "127.0.0.9:5062".parse().unwrap();
    let (status, _) = replied(handle(&invite("z9hG4bKs", "UDP"), &stranger));
    assert_eq!(status, 403);
}

#[test]
fn client_alias_is_removed_and_nat_response_contact_aliased() {
    // Not behind NAT (Contact = source), but a forged alias: removed.
    let forged = invite("z9hG4bKal", "UDP")
        .replace(
            "Via: SIP/2.0/UDP 10.0.0.5:5060",
            "Via: SIP/2.0/UDP 203.0.113.5:40000",
        )
        .replace(
            "Contact: <sip:alice@10.0.0.5:5060>",
            "Contact: <sip:alice@203.0.113.5:40000;alias=198.51.100.1~5060~1>;expires=60",
        );
    let (message, _) = forwarded(handle(&forged, &from_phone(TransportProtocol::Udp, None)));
    assert_eq!(
        message.header(&HeaderName::Contact),
        Some(&b"<sip:alice@203.0.113.5:40000>;expires=60"[..])
    );
    // A callee behind NAT answers 200: its Contact gets the alias on the way to the proxy.
    let from_proxy_invite = request(
        "INVITE sip:bob@10.0.0.6:5060",
        &[
            "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKp2",
            "From: <sip:alice@example.com>;tag=a1",
            "To: <sip:bob@example.com>",
            "Call-ID: call-4",
            "CSeq: 1 INVITE",
        ],
    );
    let (to_phone, _) = forwarded(handle(&from_proxy_invite, &from_proxy()));
    let message = MessageBuilder::response_to(&to_phone, 200, "OK")
        .to_tag("b2")
        .header(HeaderName::Contact, "sip:bob@10.0.0.6:5060;expires=60")
        .build();
    let (response, target) =
        forwarded(forwarder().handle(message, &from_phone(TransportProtocol::Udp, None)));
    assert_eq!(target, Target::Internal(PROXY.parse().unwrap()));
    assert_eq!(
        response.header(&HeaderName::Contact),
        Some(&b"<sip:bob@10.0.0.6:5060;alias=203.0.113.5~40000~1>;expires=60"[..])
    );
    assert_eq!(response.vias().count(), 1);
}

#[test]
fn nat_request_without_contact_gets_no_empty_contact() {
    let no_contact =
        invite("z9hG4bKnc", "UDP").replace("Contact: <sip:alice@10.0.0.5:5060>\r\n", "");
    let (message, _) = forwarded(handle(
        &no_contact,
        &from_phone(TransportProtocol::Udp, None),
    ));
    assert!(!message.has_header(&HeaderName::Contact));
    message.validate().unwrap();
}

#[test]
fn forged_path_and_record_route_from_a_phone_are_removed() {
    let forged = "<sip:127.0.0.1:5064;lr;received=sip:198.51.100.1:5060%3Btransport%3Dudp;vxf=3>";
    let register = request(
        "REGISTER sip:example.com",
        &[
            "Via: SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bKforge",
            "From: <sip:alice@example.com>;tag=r1",
            "To: <sip:alice@example.com>",
            "Call-ID: forge-1",
            "CSeq: 1 REGISTER",
            &format!("Path: {forged}"),
        ],
    );
    let (message, _) = forwarded(handle(&register, &from_phone(TransportProtocol::Udp, None)));
    let paths: Vec<String> = message
        .paths()
        .map(|path| text(path.unwrap().raw).to_owned())
        .collect();
    assert_eq!(
        paths,
        vec!["<sip:127.0.0.1:5064;lr;received=sip:203.0.113.5:40000%3Btransport%3Dudp>".to_owned()]
    );
    // A callee's 200 keeps our plain Record-Route entries but loses a forged one.
    let (to_phone, _) = forwarded(handle(
        &request(
            "INVITE sip:bob@203.0.113.5:40000",
            &[
                "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKp3",
                "From: <sip:alice@example.com>;tag=a1",
                "To: <sip:bob@example.com>",
                "Call-ID: forge-2",
                "CSeq: 1 INVITE",
            ],
        ),
        &from_proxy(),
    ));
    let mut ok = MessageBuilder::response_to(&to_phone, 200, "OK").to_tag("b3");
    for record_route in to_phone.header_values(&HeaderName::RecordRoute) {
        ok = ok.header(HeaderName::RecordRoute, record_route.to_vec());
    }
    let ok = ok.header(HeaderName::RecordRoute, forged).build();
    let (response, _) =
        forwarded(forwarder().handle(ok, &from_phone(TransportProtocol::Udp, None)));
    assert_eq!(
        response
            .record_routes()
            .map(|route| text(route.unwrap().raw).to_owned())
            .collect::<Vec<_>>(),
        vec![
            "<sip:192.0.2.10:5060;transport=udp;lr;r2=on>".to_owned(),
            "<sip:127.0.0.1:5064;lr;r2=on>".to_owned(),
        ]
    );
}

#[test]
fn ipv6_phone_path_round_trip() {
    let mut inbound = from_phone(TransportProtocol::Udp, None);
    inbound.remote = "[2001:db8::5]:40000".parse().unwrap();
    let register = request(
        "REGISTER sip:example.com",
        &[
            "Via: SIP/2.0/UDP [fd00::5]:5060;branch=z9hG4bKv6;rport",
            "From: <sip:alice@example.com>;tag=r6",
            "To: <sip:alice@example.com>",
            "Call-ID: reg-v6",
            "CSeq: 1 REGISTER",
            "Contact: <sip:alice@[fd00::5]:5060>",
        ],
    );
    let (message, _) = forwarded(handle(&register, &inbound));
    let path = text(message.header(&HeaderName::Path).unwrap()).to_owned();
    assert_eq!(
        path,
        "<sip:127.0.0.1:5064;lr;received=sip:[2001:db8::5]:40000%3Btransport%3Dudp>"
    );
    assert_eq!(
        message.header(&internal_headers::source_header_name()),
        Some(&b"udp [2001:db8::5]:40000"[..])
    );
    let invite = request(
        "INVITE sip:alice@[fd00::5]:5060",
        &[
            "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKp6",
            &format!("Route: {path}"),
            "From: <sip:bob@example.com>;tag=b6",
            "To: <sip:alice@example.com>",
            "Call-ID: call-v6",
            "CSeq: 1 INVITE",
        ],
    );
    let (_, target) = forwarded(handle(&invite, &from_proxy()));
    assert_eq!(
        target,
        Target::Public {
            transport: TransportProtocol::Udp,
            remote: "[2001:db8::5]:40000".parse().unwrap(),
            connection: None,
        }
    );
}

#[test]
fn alias_and_parameter_helpers() {
    assert_eq!(
        parse_alias(b"[2001:db8::1]~5070~3"),
        Some((
            TransportProtocol::Tls,
            "[2001:db8::1]:5070".parse().unwrap()
        ))
    );
    assert_eq!(parse_alias(b"203.0.113.6~5070~9"), None);
    assert_eq!(parse_alias(b"host~x~1"), None);
    assert_eq!(
        remove_uri_parameter(b"sip:a@b;lr;alias=1~2~1;x=y?h=v", b"alias"),
        b"sip:a@b;lr;x=y?h=v".to_vec()
    );
    assert!(is_private("10.1.2.3".parse().unwrap()));
    assert!(is_private("100.64.0.1".parse().unwrap()));
    assert!(!is_private("203.0.113.5".parse().unwrap()));
}

#[test]
fn proxy_require_is_answered_420_naming_the_extensions() {
    let inbound = from_phone(TransportProtocol::Udp, None);
    let required = invite("z9hG4bKreq", "UDP").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nProxy-Require: sec-agree, foo\r\n",
    );
    let (status, response) = replied(handle(&required, &inbound));
    assert_eq!(status, 420);
    assert_eq!(response.reason(), Some(&b"Bad Extension"[..]));
    assert_eq!(
        response.header(&HeaderName::Unsupported),
        Some(&b"sec-agree, foo"[..])
    );
    // Require alone is for the UAS: forwarded.
    let for_the_callee = invite("z9hG4bKreq2", "UDP").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nRequire: 100rel\r\n",
    );
    forwarded(handle(&for_the_callee, &inbound));
}

#[test]
fn an_ipv6_domain_is_served_in_any_spelling() {
    let mut forwarder = forwarder();
    forwarder.set_domains(["[2001:db8::10]".to_owned()]);
    let inbound = from_phone(TransportProtocol::Udp, None);
    for uri in ["sip:bob@[2001:db8::10]", "sip:bob@[2001:DB8:0:0::10]:5060"] {
        let text =
            invite("z9hG4bKv6", "UDP").replace("sip:bob@example.com SIP", &format!("{uri} SIP"));
        let message = receive(Bytes::from(text), inbound.remote).unwrap();
        forwarded(forwarder.handle(message, &inbound));
    }
    let other = invite("z9hG4bKv6b", "UDP")
        .replace("sip:bob@example.com SIP", "sip:bob@[2001:db8::11] SIP");
    let message = receive(Bytes::from(other), inbound.remote).unwrap();
    assert_eq!(replied(forwarder.handle(message, &inbound)).0, 403);
}
