//! Response routing through the public API: Via stamping on receipt (RFC 3261 §18.2.1,
//! RFC 3581 §4), response targets (RFC 3261 §18.2.2) and the client-side sent-by check
//! (RFC 3261 §18.1.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use proptest::prelude::*;
use sip_core::response_routing::{
    Host, LocalSentBy, ResponseDisposition, ResponseTarget, TopVia, Transport, ViaError,
    check_response_via, request_source, response_target, sent_by_port, stamp_received,
    stamp_received as stamp, stamp_received_text,
};
use sip_core::transport::TransportProtocol;

fn via(text: &str) -> TopVia {
    TopVia::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn source(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

fn address(host: Host, port: u16, transport: Transport) -> ResponseTarget {
    ResponseTarget::Address {
        host,
        port,
        transport,
    }
}

fn ip(text: &str) -> Host {
    Host::Ip(text.parse().expect("IP address"))
}

#[test]
fn rfc_3581_example_fills_received_and_rport() {
    // RFC 3581 §4: request from 192.0.2.1:9988 with an empty rport.
    let request_via = via("SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bKkjshdyff");
    let stamped = stamp(&request_via, source("192.0.2.1:9988")).expect("needs a stamp");
    assert_eq!(stamped.received, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(stamped.rport, Some(9988));
    assert_eq!(
        stamped.via.to_header_value(),
        "SIP/2.0/UDP 10.1.1.1:4540;rport=9988;branch=z9hG4bKkjshdyff;received=192.0.2.1"
    );
    // The rewritten text is a valid Via again, and the response goes back to the NAT.
    let reparsed = via(&stamped.via.to_header_value());
    assert_eq!(reparsed, stamped.via);
    assert_eq!(
        response_target(&reparsed, false),
        address(ip("192.0.2.1"), 9988, Transport::Udp)
    );
}

#[test]
fn matching_sent_by_without_rport_is_left_alone() {
    let request_via = via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1");
    assert_eq!(stamp(&request_via, source("192.0.2.1:5060")), None);
    // Source port differences do not matter without rport (RFC 3261 §18.2.1).
    assert_eq!(stamp(&request_via, source("192.0.2.1:40000")), None);
}

#[test]
fn differing_address_or_domain_gets_received_only() {
    let stamped = stamp(
        &via("SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK2"),
        source("198.51.100.4:5070"),
    )
    .unwrap();
    assert_eq!(stamped.rport, None);
    assert_eq!(
        stamped.via.to_header_value(),
        "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK2;received=198.51.100.4"
    );
    assert_eq!(
        response_target(&stamped.via, false),
        address(ip("198.51.100.4"), 5070, Transport::Udp)
    );

    // A domain name in sent-by always gets received (RFC 3261 §18.2.1).
    let stamped = stamp(
        &via("SIP/2.0/UDP pc33.atlanta.example;branch=z9hG4bK3"),
        source("192.0.2.7:5060"),
    )
    .unwrap();
    assert_eq!(stamped.received.to_string(), "192.0.2.7");
    assert_eq!(
        response_target(&stamped.via, false),
        address(ip("192.0.2.7"), 5060, Transport::Udp)
    );
}

#[test]
fn a_client_supplied_received_is_replaced_not_duplicated() {
    let stamped = stamp(
        &via("SIP/2.0/UDP 10.0.0.5;received=203.0.113.9;branch=z9hG4bK4;rport=1"),
        source("192.0.2.1:6000"),
    )
    .unwrap();
    assert_eq!(
        stamped.via.to_header_value(),
        "SIP/2.0/UDP 10.0.0.5;received=192.0.2.1;branch=z9hG4bK4;rport=6000"
    );
}

#[test]
fn ipv6_sent_by_and_received() {
    let request_via = via("SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bK5;rport");
    let stamped = stamp(&request_via, source("[2001:db8::20]:40000")).unwrap();
    assert_eq!(
        stamped.received,
        IpAddr::V6("2001:db8::20".parse::<Ipv6Addr>().unwrap())
    );
    // Brackets stay on sent-by; received holds the bare address (RFC 3261 §25.1).
    assert_eq!(
        stamped.via.to_header_value(),
        "SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bK5;rport=40000;received=2001:db8::20"
    );
    assert_eq!(
        response_target(&via(&stamped.via.to_header_value()), false),
        address(ip("2001:db8::20"), 40000, Transport::Udp)
    );

    // Same address written differently, and no rport: nothing to add.
    let spelled_out = via("SIP/2.0/UDP [2001:DB8:0:0::10];branch=z9hG4bK6");
    assert_eq!(stamp(&spelled_out, source("[2001:db8::10]:5060")), None);
    // A bracketed received from another implementation is read too (RFC 5118 §4.5).
    let bracketed = via("SIP/2.0/UDP [2001:db8::10];received=[2001:db8::99];branch=z9hG4bK7");
    assert_eq!(
        response_target(&bracketed, false),
        address(ip("2001:db8::99"), 5060, Transport::Udp)
    );
}

#[test]
fn ipv4_mapped_source_compares_as_ipv4() {
    let request_via = via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK8");
    assert_eq!(stamp(&request_via, source("[::ffff:192.0.2.1]:5060")), None);
    let stamped = stamp(
        &via("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK9;rport"),
        source("[::ffff:192.0.2.1]:7000"),
    )
    .unwrap();
    assert_eq!(stamped.received.to_string(), "192.0.2.1");
}

#[test]
fn default_ports_per_transport() {
    for (transport, port) in [
        ("UDP", 5060),
        ("TCP", 5060),
        ("SCTP", 5060),
        ("TLS", 5061),
        ("WS", 80),
        ("WSS", 443),
    ] {
        let top = via(&format!("SIP/2.0/{transport} 192.0.2.1;branch=z9hG4bKa"));
        assert_eq!(top.effective_port(), port, "{transport}");
        assert_eq!(
            response_target(&top, false),
            address(ip("192.0.2.1"), port, Transport::from_token(transport)),
            "{transport}"
        );
    }
}

#[test]
fn reliable_transports_use_the_connection_while_it_is_open() {
    let tls = via("SIP/2.0/TLS client.example;branch=z9hG4bKb;received=192.0.2.50;rport=49152");
    assert_eq!(response_target(&tls, true), ResponseTarget::SameConnection);
    // Closed: connect to received at the sent-by (default) port, not rport
    // (RFC 3261 §18.2.2; RFC 3581 §4 covers unreliable transports only).
    assert_eq!(
        response_target(&tls, false),
        address(ip("192.0.2.50"), 5061, Transport::Tls)
    );
    let tcp = via("SIP/2.0/TCP client.example:5090;branch=z9hG4bKc");
    assert_eq!(
        response_target(&tcp, false),
        address(Host::Domain("client.example".into()), 5090, Transport::Tcp)
    );
    // An open connection does not matter for UDP.
    let udp = via("SIP/2.0/UDP 192.0.2.1:5080;branch=z9hG4bKd");
    assert_eq!(
        response_target(&udp, true),
        address(ip("192.0.2.1"), 5080, Transport::Udp)
    );
}

#[test]
fn maddr_wins_over_received_and_rport_on_unreliable_transports() {
    let top = via(
        "SIP/2.0/UDP 192.0.2.1:5070;maddr=239.255.255.1;ttl=1;received=198.51.100.1;rport=4000;branch=z9hG4bKe",
    );
    assert_eq!(
        response_target(&top, false),
        address(ip("239.255.255.1"), 5070, Transport::Udp)
    );
    let named = via("SIP/2.0/UDP 192.0.2.1;maddr=relay.example;branch=z9hG4bKf");
    assert_eq!(
        response_target(&named, false),
        address(Host::Domain("relay.example".into()), 5060, Transport::Udp)
    );
}

#[test]
fn received_without_rport_uses_the_sent_by_port() {
    let top = via("SIP/2.0/UDP 10.0.0.1:5099;received=192.0.2.200;branch=z9hG4bKg");
    assert_eq!(
        response_target(&top, false),
        address(ip("192.0.2.200"), 5099, Transport::Udp)
    );
    let default_port = via("SIP/2.0/UDP 10.0.0.1;received=192.0.2.200;branch=z9hG4bKh");
    assert_eq!(
        response_target(&default_port, false),
        address(ip("192.0.2.200"), 5060, Transport::Udp)
    );
}

/// The borrowed view of a Via value, as a stateless element reads it.
fn view(text: &str) -> sip_message::Via<'_> {
    sip_message::Via::parse(text.as_bytes()).unwrap_or_else(|error| panic!("{text}: {error}"))
}

#[test]
fn request_source_is_received_and_rport_whatever_the_transport() {
    let tcp = "SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bKs;rport=40000;received=203.0.113.5";
    assert_eq!(
        request_source(&view(tcp)),
        Some((TransportProtocol::Tcp, source("203.0.113.5:40000")))
    );
    // Unlike the response target once the connection is gone, which uses the sent-by port.
    assert_eq!(
        response_target(&via(tcp), false),
        address(ip("203.0.113.5"), 5060, Transport::Tcp)
    );
    let tls_default = "SIP/2.0/TLS 10.0.0.5;branch=z9hG4bKs;received=203.0.113.5";
    assert_eq!(
        request_source(&view(tls_default)),
        Some((TransportProtocol::Tls, source("203.0.113.5:5061")))
    );
    let unstamped = "SIP/2.0/udp [2001:db8::7];branch=z9hG4bKs";
    assert_eq!(
        request_source(&view(unstamped)),
        Some((TransportProtocol::Udp, source("[2001:db8::7]:5060")))
    );
    let bracketed = "SIP/2.0/UDP 10.0.0.5;received=[2001:db8::9];rport=7;branch=z9hG4bKs";
    assert_eq!(
        request_source(&view(bracketed)),
        Some((TransportProtocol::Udp, source("[2001:db8::9]:7")))
    );
    for unusable in [
        "SIP/2.0/UDP phone.example;branch=z9hG4bKs",
        "SIP/2.0/WS 192.0.2.1;branch=z9hG4bKs;received=192.0.2.2",
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs;received=nowhere.example",
    ] {
        assert_eq!(request_source(&view(unusable)), None, "{unusable}");
    }
    // A host name is fine once `received` names the address.
    assert_eq!(
        request_source(&view(
            "SIP/2.0/UDP phone.example;branch=z9hG4bKs;received=192.0.2.3"
        )),
        Some((TransportProtocol::Udp, source("192.0.2.3:5060")))
    );
}

#[test]
fn text_stamping_edits_the_parameters_as_the_top_via_does() {
    let source = source("192.0.2.1:9988");
    for written in [
        "SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bKkjshdyff",
        "SIP/2.0/UDP 10.0.0.5;received=203.0.113.9;branch=z9hG4bK4;rport=1",
        "SIP/2.0/TCP client.example;branch=z9hG4bKc;x=\"q;v\";received",
        "SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bK5",
    ] {
        let expected = stamp(&via(written), source).unwrap().via.to_header_value();
        assert_eq!(
            stamp_received_text(&view(written), source),
            Some(expected),
            "{written}"
        );
    }
    // As written, not normalised: the transport's case and the sent-by spelling stay.
    assert_eq!(
        stamp_received_text(&view("SIP/2.0/udp  10.1.1.1 ;branch=z9hG4bKa"), source).as_deref(),
        Some("SIP/2.0/udp  10.1.1.1;branch=z9hG4bKa;received=192.0.2.1")
    );
    // Nothing to add: the sent-by is the source and no rport was asked for.
    assert_eq!(
        stamp_received_text(&view("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKb"), source),
        None
    );
}

#[test]
fn a_received_the_sender_wrote_itself_is_replaced_by_its_real_source() {
    let source = source("192.0.2.1:5070");
    // Sent-by is the real source and no rport: only the forged `received` needs fixing,
    // else every response would be reflected to the victim it names.
    let forged = "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKf;received=198.51.100.66";
    let expected = "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKf;received=192.0.2.1";
    assert_eq!(
        stamp_received_text(&view(forged), source).as_deref(),
        Some(expected)
    );
    assert_eq!(
        stamp(&via(forged), source).unwrap().via.to_header_value(),
        expected
    );
    assert_eq!(
        request_source(&view(expected)),
        Some((TransportProtocol::Udp, source))
    );
    // A `received` that already names the source stays as it is.
    let honest = "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKh;received=192.0.2.1";
    assert_eq!(stamp_received_text(&view(honest), source), None);
    assert!(stamp(&via(honest), source).is_none());
}

#[test]
fn sent_by_port_of_a_view_follows_the_transport_default() {
    for (transport, port) in [
        ("UDP", 5060),
        ("tcp", 5060),
        ("TLS", 5061),
        ("TLS-SCTP", 5061),
        ("WS", 80),
        ("WSS", 443),
        ("XYZ", 5060),
    ] {
        let text = format!("SIP/2.0/{transport} 192.0.2.1;branch=z9hG4bKa");
        assert_eq!(sent_by_port(&view(&text)), port, "{transport}");
        assert_eq!(via(&text).effective_port(), port, "{transport}");
    }
    assert_eq!(
        sent_by_port(&view("SIP/2.0/TLS 192.0.2.1:5999;branch=z9hG4bKa")),
        5999
    );
}

#[test]
fn client_discards_responses_whose_top_via_is_not_ours() {
    let ours = [
        LocalSentBy {
            host: ip("192.0.2.10"),
            port: 5060,
        },
        LocalSentBy {
            host: Host::Domain("proxy.voxide.example".into()),
            port: 5061,
        },
        LocalSentBy {
            host: ip("2001:db8::1"),
            port: 5062,
        },
    ];
    for (text, expected) in [
        (
            "SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1;received=1.2.3.4",
            ResponseDisposition::Accept,
        ),
        (
            "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1",
            ResponseDisposition::Accept,
        ),
        (
            "SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK1",
            ResponseDisposition::Discard,
        ),
        (
            "SIP/2.0/UDP 192.0.2.11;branch=z9hG4bK1",
            ResponseDisposition::Discard,
        ),
        (
            "SIP/2.0/TLS Proxy.VOXIDE.example;branch=z9hG4bK1",
            ResponseDisposition::Accept,
        ),
        (
            "SIP/2.0/TCP proxy.voxide.example;branch=z9hG4bK1",
            ResponseDisposition::Discard,
        ),
        (
            "SIP/2.0/UDP [2001:db8:0::1]:5062;branch=z9hG4bK1",
            ResponseDisposition::Accept,
        ),
        (
            "SIP/2.0/UDP [2001:db8::2]:5062;branch=z9hG4bK1",
            ResponseDisposition::Discard,
        ),
    ] {
        assert_eq!(check_response_via(&via(text), &ours), expected, "{text}");
    }
}

#[test]
fn top_via_comes_from_a_parsed_message_and_goes_back_with_the_edit_api() {
    let datagram = Bytes::from_static(
        b"REGISTER sip:voxide.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.7:5060;rport;branch=z9hG4bKnashds7, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKold\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@voxide.example>;tag=456248\r\n\
To: <sip:alice@voxide.example>\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:alice@10.0.0.7>\r\n\
Content-Length: 0\r\n\r\n",
    );
    let mut message = sip_message::Message::parse(datagram).expect("valid REGISTER");
    let top = TopVia::from_message(&message).unwrap();
    assert_eq!(top.host, ip("10.0.0.7"));
    assert_eq!(top.rport(), Some(None));
    let stamped = stamp_received(&top, source("203.0.113.5:61000")).unwrap();
    assert!(message.pop_via());
    message.push_via(stamped.via.to_header_value());
    let reparsed = sip_message::Message::parse(message.to_bytes()).expect("still valid");
    let new_top = TopVia::from_message(&reparsed).unwrap();
    assert_eq!(new_top.rport(), Some(Some(61000)));
    assert_eq!(new_top.received(), Some("203.0.113.5".parse().unwrap()));
    assert_eq!(new_top.parameter("branch"), Some(Some("z9hG4bKnashds7")));
    let vias: Vec<_> = reparsed.vias().collect();
    assert_eq!(vias.len(), 2, "the second Via is untouched");
}

#[test]
fn unusable_vias_are_typed_errors() {
    assert!(matches!(
        TopVia::parse("SIP/2.0 192.0.2.1"),
        Err(ViaError::Malformed(_))
    ));
    assert!(matches!(TopVia::parse(""), Err(ViaError::Malformed(_))));
    assert_eq!(
        TopVia::parse("SIP/2.0/UDP [2001:db8:::192.0.2.1];branch=z9hG4bK1"),
        Err(ViaError::UnusableHost {
            host: "2001:db8:::192.0.2.1".into()
        })
    );
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

proptest! {
    /// Whatever the client wrote, once stamped, a UDP response with rport reaches the
    /// packet's source, and the stamped Via parses again.
    #[test]
    fn rport_responses_reach_the_source(
        sent_by in any_ip(),
        sent_by_port in proptest::option::of(1u16..),
        from in any_ip(),
        from_port in 1u16..,
    ) {
        let port = sent_by_port.map(|port| format!(":{port}")).unwrap_or_default();
        let text = format!("SIP/2.0/UDP {}{port};branch=z9hG4bKprop;rport", Host::Ip(sent_by));
        let top = via(&text);
        let from = SocketAddr::new(from, from_port);
        let stamped = stamp(&top, from).expect("rport always stamps");
        let reparsed = via(&stamped.via.to_header_value());
        prop_assert_eq!(
            response_target(&reparsed, false),
            address(Host::Ip(from.ip().to_canonical()), from_port, Transport::Udp)
        );
    }

    /// Once stamped with rport, the request source is the packet's source over every
    /// transport; over UDP it is also the response target.
    #[test]
    fn stamped_request_source_is_the_packet_source(
        sent_by in any_ip(),
        sent_by_port in proptest::option::of(1u16..),
        from in any_ip(),
        from_port in 1u16..,
        transport in proptest::sample::select(TransportProtocol::ALL.to_vec()),
    ) {
        let port = sent_by_port.map(|port| format!(":{port}")).unwrap_or_default();
        let text = format!(
            "SIP/2.0/{transport} {}{port};branch=z9hG4bKprop;rport",
            Host::Ip(sent_by)
        );
        let from = SocketAddr::new(from, from_port);
        let stamped = stamp(&via(&text), from).expect("rport always stamps");
        let printed = stamped.via.to_header_value();
        let expected = SocketAddr::new(from.ip().to_canonical(), from_port);
        prop_assert_eq!(request_source(&view(&printed)), Some((transport, expected)));
        if transport == TransportProtocol::Udp {
            prop_assert_eq!(
                response_target(&via(&printed), false),
                address(Host::Ip(expected.ip()), from_port, Transport::Udp)
            );
        }
    }

    /// Over UDP without maddr, stamped or not, the request source and the §18.2.2 response
    /// target name the same address: one rule, two readings.
    #[test]
    fn udp_request_source_agrees_with_the_response_target(
        sent_by in any_ip(),
        sent_by_port in proptest::option::of(1u16..),
        from in any_ip(),
        from_port in 1u16..,
        rport in any::<bool>(),
    ) {
        let port = sent_by_port.map(|port| format!(":{port}")).unwrap_or_default();
        let rport = if rport { ";rport" } else { "" };
        let text = format!("SIP/2.0/UDP {}{port};branch=z9hG4bKprop{rport}", Host::Ip(sent_by));
        let top = via(&text);
        let printed = match stamp(&top, SocketAddr::new(from, from_port)) {
            Some(stamped) => stamped.via.to_header_value(),
            None => text.clone(),
        };
        let target = match response_target(&via(&printed), false) {
            ResponseTarget::Address { host: Host::Ip(ip), port, .. } => Some(SocketAddr::new(ip, port)),
            _ => None,
        };
        let source = request_source(&view(&printed)).map(|(_, address)| {
            SocketAddr::new(address.ip().to_canonical(), address.port())
        });
        prop_assert_eq!(source, target);
    }

    /// The text stamp and the TopVia stamp are one rule: the same requests get stamped, and
    /// what they print reads back to the same Via.
    #[test]
    fn text_and_top_via_stamps_agree(
        text in "SIP/2\\.0/(UDP|tcp|TLS|WS|XYZ) ([0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|\\[[0-9a-f:.]{2,30}\\]|[a-z][a-z0-9.-]{0,20})(:[0-9]{1,5})?;branch=z9hG4bK[a-z0-9]{1,8}(;(rport|received|maddr|x)(=[a-zA-Z0-9.:\\[\\]-]{0,12})?){0,4}",
        from in any_ip(),
        from_port in 1u16..,
    ) {
        let source = SocketAddr::new(from, from_port);
        if let Ok(top) = TopVia::parse(&text) {
            let by_top_via = stamp(&top, source).map(|stamped| stamped.via);
            let by_text = stamp_received_text(&view(&text), source)
                .map(|printed| via(&printed));
            prop_assert_eq!(by_text, by_top_via, "{}", text);
        }
    }

    /// Without rport, a received parameter appears exactly when the addresses differ.
    #[test]
    fn received_appears_only_when_addresses_differ(
        sent_by in any_ip(),
        from in any_ip(),
        from_port in 1u16..,
    ) {
        let top = via(&format!("SIP/2.0/UDP {};branch=z9hG4bKprop", Host::Ip(sent_by)));
        let stamped = stamp(&top, SocketAddr::new(from, from_port));
        prop_assert_eq!(stamped.is_some(), sent_by.to_canonical() != from.to_canonical());
    }
}

proptest! {
    /// Arbitrary Via text: a typed error or a Via whose stamped form parses again; never
    /// a panic.
    #[test]
    fn arbitrary_via_text_never_panics(
        text in "SIP/2\\.0/(UDP|TCP|TLS|WS|XYZ) [a-z0-9.:\\[\\]-]{0,30}(;[a-z]{1,6}(=[a-zA-Z0-9.:\\[\\]-]{0,12})?){0,5}",
        from in any_ip(),
        from_port in 1u16..,
        connection_open in any::<bool>(),
    ) {
        if let Ok(top) = TopVia::parse(&text) {
            let _ = response_target(&top, connection_open);
            if let Some(stamped) = stamp(&top, SocketAddr::new(from, from_port)) {
                let reparsed = TopVia::parse(&stamped.via.to_header_value());
                prop_assert!(reparsed.is_ok(), "{} -> {}", text, stamped.via);
                prop_assert_eq!(reparsed.unwrap().received(), Some(from.to_canonical()));
            }
        }
    }
}
