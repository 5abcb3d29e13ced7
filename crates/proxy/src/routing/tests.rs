//! Unit tests of the router's helpers and loop check.

use super::*;

#[test]
fn path_values_lose_their_brackets_and_parameters() {
    assert_eq!(
        strip_angle_brackets("<sip:10.0.0.1:5060;lr;received=sip:1.2.3.4:5;vxf=ab>"),
        "sip:10.0.0.1:5060;lr;received=sip:1.2.3.4:5;vxf=ab"
    );
    assert_eq!(
        uri_address("sip:10.0.0.1:5070;lr"),
        Some("10.0.0.1:5070".parse().unwrap())
    );
    assert_eq!(uri_address("sip:bob@example.org"), None);
    assert_eq!(
        uri_address("sip:bob@192.0.2.1"),
        Some("192.0.2.1:5060".parse().unwrap())
    );
}

#[test]
fn the_source_header_counts_only_from_trusted_load_balancers() {
    let request = Message::parse(Bytes::from_static(
        b"INVITE sip:bob@example.org SIP/2.0\r\n\
          Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
          From: <sip:alice@example.org>;tag=1\r\nTo: <sip:bob@example.org>\r\n\
          Call-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
          X-Voxide-Source: UDP 203.0.113.9:40000\r\nContent-Length: 0\r\n\r\n",
    ))
    .unwrap();
    let flow = Flow {
        transport: TransportProtocol::Udp,
        local: "127.0.0.1:5062".parse().unwrap(),
        remote: "127.0.0.1:5060".parse().unwrap(),
        connection: None,
    };
    let lb: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(
        real_source(&request, &flow, &[lb]),
        "203.0.113.9:40000".parse().unwrap()
    );
    assert_eq!(real_source(&request, &flow, &[]), flow.remote);
    let mut forwarded = request.clone();
    remove_internal_headers(&mut forwarded);
    let forwarded = Message::parse(forwarded.to_bytes()).unwrap();
    assert!(!forwarded.has_header(&HeaderName::from_static(SOURCE_HEADER)));
}

#[tokio::test]
async fn a_request_carrying_our_branch_for_itself_is_a_loop() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let location = Arc::new(Location::load(store.clone(), unix_now()).await.unwrap());
    let authenticator = Arc::new(Authenticator::new(
        store.clone(),
        [7; 32],
        crate::authentication::AuthenticationPolicy::default(),
    ));
    let (accounting, _writer) = crate::accounting::spawn_writer(store.clone(), 4);
    let (work, _work_receiver) = mpsc::unbounded_channel();
    let router = Router::new(
        RouterConfig {
            local_addr: "127.0.0.1:5062".parse().unwrap(),
            trusted_load_balancers: Vec::new(),
            served_domains: Vec::new(),
            timer_c: Duration::from_secs(181),
            media_check_interval: Duration::from_secs(5),
        },
        Arc::new(RouterServices {
            store,
            authenticator,
            location,
            accounting,
            media: None,
            rewrite_sets: PreferenceGate::new("rewrite_rule_set", Duration::from_secs(1)),
        }),
        work,
    );
    let request = Message::parse(Bytes::from_static(
        b"MESSAGE sip:bob@example.org SIP/2.0\r\n\
          Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
          From: <sip:alice@example.org>;tag=1\r\nTo: <sip:bob@example.org>\r\n\
          Call-ID: loop\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\
          Content-Length: 0\r\n\r\n",
    ))
    .unwrap();
    assert!(!router.is_loop(&request));
    let mut looped = request.clone();
    looped.push_via(router.own_via(loop_hash(&request)));
    let looped = Message::parse(looped.to_bytes()).unwrap();
    assert!(router.is_loop(&looped), "same request back with our branch");
    // A spiral: the same request to a new Request-URI is no loop (§16.3 step 4).
    let mut spiral = looped.clone();
    spiral.set_request_uri(Bytes::from_static(b"sip:bob@192.0.2.9"));
    let spiral = Message::parse(spiral.to_bytes()).unwrap();
    assert!(!router.is_loop(&spiral));
}

#[test]
fn the_loop_hash_changes_with_the_request_uri() {
    let make = |uri: &str| {
        Message::parse(Bytes::from(format!(
            "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        )))
        .unwrap()
    };
    assert_eq!(loop_hash(&make("sip:b@x")), loop_hash(&make("sip:b@x")));
    assert_ne!(loop_hash(&make("sip:b@x")), loop_hash(&make("sip:c@x")));
}
