//! The load-balancer on real sockets: an in-test phone (UDP, TCP or TLS) and an in-test proxy
//! (UDP) on 127.0.0.1 free ports, the LB between them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lb::{LbConfig, LbHandle, TlsCertificate, TlsListen};
use sip_message::{HeaderName, Limits, Message, MessageBuilder, stream::Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(5);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Setup {
    lb: LbHandle,
    proxy: UdpSocket,
    phone: UdpSocket,
    _data_dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    setup_with(None).await
}

async fn setup_with(domain_lookup: Option<lb::DomainLookupFn>) -> Setup {
    let proxy = UdpSocket::bind(loopback()).await.unwrap();
    let phone = UdpSocket::bind(loopback()).await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let lb = lb::start(LbConfig {
        udp: Some(loopback()),
        tcp: Some(loopback()),
        tls: Some(TlsListen {
            address: loopback(),
            certificate: TlsCertificate::Generated {
                data_dir: data_dir.path().to_path_buf(),
            },
        }),
        advertised_address: None,
        internal: loopback(),
        proxy: proxy.local_addr().unwrap(),
        trusted_proxies: Vec::new(),
        domains: vec!["example.com".to_owned()],
        domain_lookup,
        flood: None,
        transport: Default::default(),
    })
    .await
    .unwrap();
    Setup {
        lb,
        proxy,
        phone,
        _data_dir: data_dir,
    }
}

async fn receive(socket: &UdpSocket) -> (Message, SocketAddr) {
    let mut buffer = vec![0u8; 65_535];
    let (length, source) = tokio::time::timeout(WAIT, socket.recv_from(&mut buffer))
        .await
        .expect("nothing received in time")
        .unwrap();
    let message = Message::parse(Bytes::copy_from_slice(&buffer[..length])).unwrap();
    (message, source)
}

async fn nothing_arrives(socket: &UdpSocket) -> bool {
    let mut buffer = vec![0u8; 65_535];
    tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buffer))
        .await
        .is_err()
}

/// Reads one framed message from a stream.
async fn read_message<S: AsyncRead + Unpin>(stream: &mut S, buffer: &mut Vec<u8>) -> Message {
    loop {
        if let Frame::Complete(length) =
            sip_message::stream::frame(buffer, &Limits::default()).unwrap()
        {
            let bytes = Bytes::copy_from_slice(&buffer[..length]);
            buffer.drain(..length);
            return Message::parse(bytes).unwrap();
        }
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("nothing read in time")
            .unwrap();
        assert!(read > 0, "stream closed");
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn request(start: &str, headers: &[String]) -> Vec<u8> {
    let mut text = format!("{start} SIP/2.0\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text.into_bytes()
}

fn register(phone: SocketAddr, transport: &str, extra: &[&str]) -> Vec<u8> {
    let mut headers = vec![
        format!("Via: SIP/2.0/{transport} {phone};branch=z9hG4bKreg-{transport};rport"),
        "From: <sip:alice@example.com>;tag=r1".to_owned(),
        "To: <sip:alice@example.com>".to_owned(),
        format!("Call-ID: reg-{transport}"),
        "CSeq: 1 REGISTER".to_owned(),
        "Max-Forwards: 70".to_owned(),
        "Contact: <sip:alice@10.0.0.5:5060>".to_owned(),
    ];
    headers.extend(extra.iter().map(|header| (*header).to_owned()));
    request("REGISTER sip:example.com", &headers)
}

fn invite(phone: SocketAddr, transport: &str, branch: &str) -> Vec<u8> {
    request(
        "INVITE sip:bob@example.com",
        &[
            format!("Via: SIP/2.0/{transport} {phone};branch={branch};rport"),
            "From: <sip:alice@example.com>;tag=a1".to_owned(),
            "To: <sip:bob@example.com>".to_owned(),
            format!("Call-ID: {branch}"),
            "CSeq: 1 INVITE".to_owned(),
            "Max-Forwards: 70".to_owned(),
            "Contact: <sip:alice@10.0.0.5:5060>".to_owned(),
        ],
    )
}

fn record_routes(message: &Message) -> Vec<String> {
    message
        .record_routes()
        .map(|route| String::from_utf8(route.unwrap().raw.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn register_is_forwarded_with_path_and_source_and_the_200_comes_back() {
    let setup = setup().await;
    let phone_address = setup.phone.local_addr().unwrap();
    let lb_udp = setup.lb.udp.unwrap();
    let spoofed = register(
        phone_address,
        "UDP",
        &["X-Voxide-Source: udp 198.51.100.7:5060"],
    );
    setup.phone.send_to(&spoofed, lb_udp).await.unwrap();
    let (forwarded, source) = receive(&setup.proxy).await;
    assert_eq!(source, setup.lb.internal);
    let path = forwarded.paths().next().unwrap().unwrap();
    assert_eq!(
        String::from_utf8(path.raw.to_vec()).unwrap(),
        format!(
            "<sip:{};lr;received=sip:{phone_address}%3Btransport%3Dudp>",
            setup.lb.internal
        )
    );
    let sources: Vec<&[u8]> = forwarded
        .headers()
        .filter(|(name, _)| name.as_bytes().eq_ignore_ascii_case(b"X-Voxide-Source"))
        .map(|(_, value)| value)
        .collect();
    assert_eq!(sources, vec![format!("udp {phone_address}").as_bytes()]);
    assert_eq!(forwarded.max_forwards().unwrap(), Some(69));
    assert_eq!(forwarded.vias().count(), 2);

    let ok = MessageBuilder::response_to(&forwarded, 200, "OK")
        .to_tag("reg-ok")
        .build();
    setup
        .proxy
        .send_to(&ok.to_bytes(), setup.lb.internal)
        .await
        .unwrap();
    let (answer, source) = receive(&setup.phone).await;
    assert_eq!(source, lb_udp);
    assert_eq!(answer.status(), Some(200));
    assert_eq!(answer.vias().count(), 1);
    assert_eq!(
        answer.top_via().unwrap().branch(),
        Some(&b"z9hG4bKreg-UDP"[..])
    );
    setup.lb.shutdown().await;
}

#[tokio::test]
async fn invite_over_tcp_goes_to_the_proxy_over_udp_and_answers_return_on_the_connection() {
    let setup = setup().await;
    let lb_tcp = setup.lb.tcp.unwrap();
    let mut phone = TcpStream::connect(lb_tcp).await.unwrap();
    let phone_address = phone.local_addr().unwrap();
    phone
        .write_all(&invite(phone_address, "TCP", "z9hG4bKtcp1"))
        .await
        .unwrap();
    let (forwarded, _) = receive(&setup.proxy).await;
    assert_eq!(
        record_routes(&forwarded),
        vec![
            format!("<sip:{};lr;r2=on>", setup.lb.internal),
            format!("<sip:{lb_tcp};transport=tcp;lr;r2=on>"),
        ]
    );
    let contact = forwarded.header(&HeaderName::Contact).unwrap();
    assert_eq!(
        contact,
        format!(
            "<sip:alice@10.0.0.5:5060;alias={}~{}~2>",
            phone_address.ip(),
            phone_address.port()
        )
        .as_bytes()
    );
    for (status, reason) in [(180, "Ringing"), (200, "OK")] {
        let response = MessageBuilder::response_to(&forwarded, status, reason)
            .to_tag("b1")
            .build();
        setup
            .proxy
            .send_to(&response.to_bytes(), setup.lb.internal)
            .await
            .unwrap();
    }
    let mut buffer = Vec::new();
    let ringing = read_message(&mut phone, &mut buffer).await;
    let ok = read_message(&mut phone, &mut buffer).await;
    assert_eq!(ringing.status(), Some(180));
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.vias().count(), 1);
    setup.lb.shutdown().await;
}

#[tokio::test]
async fn register_over_tls_is_forwarded_with_the_tls_flow() {
    let setup = setup().await;
    let certificate = rustls::pki_types::CertificateDer::from(
        setup.lb.tls_certificate.clone().expect("TLS certificate"),
    );
    let client = sip_net::tls::client_config([certificate]).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&client));
    let tcp = TcpStream::connect(setup.lb.tls.unwrap()).await.unwrap();
    let phone_address = tcp.local_addr().unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut phone = connector.connect(name, tcp).await.unwrap();
    phone
        .write_all(&register(phone_address, "TLS", &[]))
        .await
        .unwrap();
    let (forwarded, _) = receive(&setup.proxy).await;
    let path = forwarded.paths().next().unwrap().unwrap();
    assert_eq!(
        path.uri.param(b"received"),
        Some(Some(
            format!("sip:{phone_address}%3Btransport%3Dtls").as_bytes()
        ))
    );
    assert!(path.uri.param(b"vxf").is_some());
    let ok = MessageBuilder::response_to(&forwarded, 200, "OK")
        .to_tag("t1")
        .build();
    setup
        .proxy
        .send_to(&ok.to_bytes(), setup.lb.internal)
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let answer = read_message(&mut phone, &mut buffer).await;
    assert_eq!(answer.status(), Some(200));
    setup.lb.shutdown().await;
}

#[tokio::test]
async fn request_from_the_proxy_follows_path_and_in_dialog_bye_follows_the_alias() {
    let setup = setup().await;
    let phone_address = setup.phone.local_addr().unwrap();
    setup
        .phone
        .send_to(&register(phone_address, "UDP", &[]), setup.lb.udp.unwrap())
        .await
        .unwrap();
    let (registered, _) = receive(&setup.proxy).await;
    let path = String::from_utf8(registered.header(&HeaderName::Path).unwrap().to_vec()).unwrap();
    let proxy_address = setup.proxy.local_addr().unwrap();

    // The proxy calls the binding: Request-URI is the (private) contact, route set the Path.
    let invite = request(
        "INVITE sip:alice@10.0.0.5:5060",
        &[
            format!("Via: SIP/2.0/UDP {proxy_address};branch=z9hG4bKproxy1"),
            format!("Route: {path}"),
            "From: <sip:bob@example.com>;tag=b1".to_owned(),
            "To: <sip:alice@example.com>".to_owned(),
            "Call-ID: from-proxy".to_owned(),
            "CSeq: 1 INVITE".to_owned(),
            "Max-Forwards: 69".to_owned(),
        ],
    );
    setup
        .proxy
        .send_to(&invite, setup.lb.internal)
        .await
        .unwrap();
    let (arrived, source) = receive(&setup.phone).await;
    assert_eq!(source, setup.lb.udp.unwrap());
    assert_eq!(arrived.method(), Some(&sip_message::Method::Invite));
    assert!(arrived.routes().next().is_none());
    assert_eq!(arrived.vias().count(), 2);

    // The phone answers; the 200 goes back to the proxy by the Vias.
    let ok = MessageBuilder::response_to(&arrived, 200, "OK")
        .to_tag("a1")
        .header(HeaderName::Contact, "<sip:alice@10.0.0.5:5060>")
        .build();
    setup
        .phone
        .send_to(&ok.to_bytes(), setup.lb.udp.unwrap())
        .await
        .unwrap();
    let (ok_at_proxy, _) = receive(&setup.proxy).await;
    assert_eq!(ok_at_proxy.status(), Some(200));
    let aliased =
        String::from_utf8(ok_at_proxy.header(&HeaderName::Contact).unwrap().to_vec()).unwrap();
    assert_eq!(
        aliased,
        format!(
            "<sip:alice@10.0.0.5:5060;alias=127.0.0.1~{}~1>",
            phone_address.port()
        )
    );

    // In-dialog BYE from the proxy: remote target with the alias, route set our two entries.
    let record_route = record_routes(&arrived).join(", ");
    let target = aliased.trim_start_matches('<').trim_end_matches('>');
    let bye = request(
        &format!("BYE {target}"),
        &[
            format!("Via: SIP/2.0/UDP {proxy_address};branch=z9hG4bKproxy2"),
            format!("Route: {record_route}"),
            "From: <sip:bob@example.com>;tag=b1".to_owned(),
            "To: <sip:alice@example.com>;tag=a1".to_owned(),
            "Call-ID: from-proxy".to_owned(),
            "CSeq: 2 BYE".to_owned(),
            "Max-Forwards: 69".to_owned(),
        ],
    );
    setup.proxy.send_to(&bye, setup.lb.internal).await.unwrap();
    let (bye_at_phone, _) = receive(&setup.phone).await;
    assert_eq!(bye_at_phone.method(), Some(&sip_message::Method::Bye));
    assert_eq!(
        bye_at_phone.request_uri_bytes(),
        Some(&b"sip:alice@10.0.0.5:5060"[..])
    );
    assert!(bye_at_phone.routes().next().is_none());
    setup.lb.shutdown().await;
}

#[tokio::test]
async fn bad_requests_are_answered_and_never_forwarded() {
    let setup = setup().await;
    let phone_address = setup.phone.local_addr().unwrap();
    let lb_udp = setup.lb.udp.unwrap();

    let malformed = String::from_utf8(invite(phone_address, "UDP", "z9hG4bKbad"))
        .unwrap()
        .replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    setup
        .phone
        .send_to(malformed.as_bytes(), lb_udp)
        .await
        .unwrap();
    let (answer, _) = receive(&setup.phone).await;
    assert_eq!(answer.status(), Some(400));
    assert_eq!(
        answer.reason(),
        Some(&b"Bad Request - CSeq method mismatch"[..])
    );

    let exhausted = String::from_utf8(invite(phone_address, "UDP", "z9hG4bKmf0"))
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    setup
        .phone
        .send_to(exhausted.as_bytes(), lb_udp)
        .await
        .unwrap();
    assert_eq!(receive(&setup.phone).await.0.status(), Some(483));

    let foreign = String::from_utf8(invite(phone_address, "UDP", "z9hG4bKrelay"))
        .unwrap()
        .replace("INVITE sip:bob@example.com", "INVITE sip:bob@elsewhere.net");
    setup
        .phone
        .send_to(foreign.as_bytes(), lb_udp)
        .await
        .unwrap();
    assert_eq!(receive(&setup.phone).await.0.status(), Some(403));

    assert!(nothing_arrives(&setup.proxy).await);
    setup.lb.shutdown().await;
}

#[tokio::test]
async fn retransmissions_keep_their_branch_and_a_loop_is_refused() {
    let setup = setup().await;
    let phone_address = setup.phone.local_addr().unwrap();
    let lb_udp = setup.lb.udp.unwrap();
    let original = invite(phone_address, "UDP", "z9hG4bKretx");
    setup.phone.send_to(&original, lb_udp).await.unwrap();
    setup.phone.send_to(&original, lb_udp).await.unwrap();
    let (first, _) = receive(&setup.proxy).await;
    let (second, _) = receive(&setup.proxy).await;
    let branch = |message: &Message| message.top_via().unwrap().branch().unwrap().to_vec();
    assert_eq!(branch(&first), branch(&second));

    // The forwarded request comes back to the public side unchanged: a loop.
    let mut looped = first;
    looped.push_via(format!(
        "SIP/2.0/UDP {};branch=z9hG4bKback;rport",
        setup.proxy.local_addr().unwrap()
    ));
    setup
        .proxy
        .send_to(&looped.to_bytes(), lb_udp)
        .await
        .unwrap();
    let (answer, _) = receive(&setup.proxy).await;
    assert_eq!(answer.status(), Some(482));
    setup.lb.shutdown().await;
}

#[tokio::test]
async fn request_from_the_proxy_reuses_the_phone_tcp_connection_named_in_path() {
    let setup = setup().await;
    let mut phone = TcpStream::connect(setup.lb.tcp.unwrap()).await.unwrap();
    let phone_address = phone.local_addr().unwrap();
    phone
        .write_all(&register(phone_address, "TCP", &[]))
        .await
        .unwrap();
    let (registered, _) = receive(&setup.proxy).await;
    let path = String::from_utf8(registered.header(&HeaderName::Path).unwrap().to_vec()).unwrap();
    assert!(path.contains(";vxf="), "{path}");
    let proxy_address = setup.proxy.local_addr().unwrap();
    let options = request(
        "OPTIONS sip:alice@10.0.0.5:5060;transport=tcp",
        &[
            format!("Via: SIP/2.0/UDP {proxy_address};branch=z9hG4bKping"),
            format!("Route: {path}"),
            "From: <sip:keepalive@example.com>;tag=k1".to_owned(),
            "To: <sip:alice@example.com>".to_owned(),
            "Call-ID: ping-1".to_owned(),
            "CSeq: 1 OPTIONS".to_owned(),
            "Max-Forwards: 69".to_owned(),
        ],
    );
    setup
        .proxy
        .send_to(&options, setup.lb.internal)
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let arrived = read_message(&mut phone, &mut buffer).await;
    assert_eq!(arrived.method(), Some(&sip_message::Method::Options));
    let top = arrived.top_via().unwrap();
    assert_eq!(top.transport, b"TCP");
    assert_eq!(top.port, Some(setup.lb.tcp.unwrap().port()));

    // The phone's answer on the same connection reaches the proxy.
    let ok = MessageBuilder::response_to(&arrived, 200, "OK")
        .to_tag("p1")
        .build();
    phone.write_all(&ok.to_bytes()).await.unwrap();
    let (ok_at_proxy, _) = receive(&setup.proxy).await;
    assert_eq!(ok_at_proxy.status(), Some(200));
    assert_eq!(
        ok_at_proxy.top_via().unwrap().branch(),
        Some(&b"z9hG4bKping"[..])
    );
    setup.lb.shutdown().await;
}

#[tokio::test]
async fn configuration_mistakes_are_refused_at_start() {
    let wildcard_internal = lb::start(LbConfig {
        udp: Some(loopback()),
        tcp: None,
        internal: "0.0.0.0:0".parse().unwrap(),
        ..LbConfig::default()
    })
    .await;
    assert!(matches!(
        wildcard_internal,
        Err(lb::LbError::WildcardInternalAddress(_))
    ));
    let unadvertised = lb::start(LbConfig {
        udp: Some("0.0.0.0:0".parse().unwrap()),
        tcp: None,
        internal: loopback(),
        ..LbConfig::default()
    })
    .await;
    assert!(matches!(
        unadvertised,
        Err(lb::LbError::AdvertisedAddressRequired { .. })
    ));
    let advertised = lb::start(LbConfig {
        udp: Some("0.0.0.0:0".parse().unwrap()),
        tcp: None,
        advertised_address: Some("127.0.0.1".parse().unwrap()),
        internal: loopback(),
        ..LbConfig::default()
    })
    .await
    .unwrap();
    assert!(advertised.udp.unwrap().ip().is_unspecified());
    advertised.shutdown().await;
}

#[tokio::test]
async fn a_domain_unknown_to_the_list_is_looked_up_before_a_refusal() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // What the provisioning database holds, and how often the LB asked it.
    let database = Arc::new(Mutex::new(HashSet::from(
        ["created.example.org".to_owned()],
    )));
    let asked = Arc::new(AtomicUsize::new(0));
    let lookup = {
        let (database, asked) = (database.clone(), asked.clone());
        lb::DomainLookupFn::new(move |domain| {
            asked.fetch_add(1, Ordering::SeqCst);
            let served = database.lock().unwrap().contains(&domain);
            Box::pin(async move { Ok(served) })
        })
    };
    let setup = setup_with(Some(lookup)).await;
    let phone_address = setup.phone.local_addr().unwrap();
    let lb_udp = setup.lb.udp.unwrap();
    let invite_to = |domain: &str, branch: &str| {
        String::from_utf8(invite(phone_address, "UDP", branch))
            .unwrap()
            .replace(
                "INVITE sip:bob@example.com",
                &format!("INVITE sip:bob@{domain}"),
            )
    };

    // Created a moment ago, not yet in the list the LB read: forwarded on the first request.
    let first = invite_to("Created.Example.org", "z9hG4bKcreated1");
    setup.phone.send_to(first.as_bytes(), lb_udp).await.unwrap();
    let (forwarded, _) = receive(&setup.proxy).await;
    assert_eq!(
        forwarded.request_uri_bytes(),
        Some(&b"sip:bob@Created.Example.org"[..])
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // Now in the list: no second lookup.
    let second = invite_to("created.example.org", "z9hG4bKcreated2");
    setup
        .phone
        .send_to(second.as_bytes(), lb_udp)
        .await
        .unwrap();
    receive(&setup.proxy).await;
    assert_eq!(asked.load(Ordering::SeqCst), 1);

    // Unknown: refused after one lookup, and refused again within the second without asking.
    for attempt in 0..3 {
        let unknown = invite_to("unknown.example.org", &format!("z9hG4bKunknown{attempt}"));
        setup
            .phone
            .send_to(unknown.as_bytes(), lb_udp)
            .await
            .unwrap();
        let (refusal, _) = receive(&setup.phone).await;
        assert_eq!(refusal.status(), Some(403));
        assert_eq!(refusal.reason(), Some(&b"Forbidden - relaying denied"[..]));
    }
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    assert!(nothing_arrives(&setup.proxy).await);
    setup.lb.shutdown().await;
}

#[tokio::test]
async fn served_domains_are_updated_through_the_handle() {
    let setup = setup().await;
    let phone_address = setup.phone.local_addr().unwrap();
    let lb_udp = setup.lb.udp.unwrap();
    let to_new_domain = String::from_utf8(invite(phone_address, "UDP", "z9hG4bKnewdom"))
        .unwrap()
        .replace(
            "INVITE sip:bob@example.com",
            "INVITE sip:bob@new.example.org",
        );
    setup
        .phone
        .send_to(to_new_domain.as_bytes(), lb_udp)
        .await
        .unwrap();
    assert_eq!(receive(&setup.phone).await.0.status(), Some(403));
    setup.lb.set_domains(vec!["new.example.org".to_owned()]);
    // The update is applied by the forwarding task; retry until it has been seen.
    let mut forwarded = None;
    for attempt in 0..20 {
        let retry = to_new_domain.replace("z9hG4bKnewdom", &format!("z9hG4bKnewdom{attempt}"));
        setup.phone.send_to(retry.as_bytes(), lb_udp).await.unwrap();
        let mut buffer = vec![0u8; 65_535];
        let mut refusal = vec![0u8; 65_535];
        tokio::select! {
            Ok((length, _)) = setup.proxy.recv_from(&mut buffer) => {
                forwarded = Some(Message::parse(Bytes::copy_from_slice(&buffer[..length])).unwrap());
                break;
            }
            Ok(_) = setup.phone.recv_from(&mut refusal) => {}
            _ = tokio::time::sleep(WAIT) => break,
        }
    }
    let forwarded = forwarded.expect("request for the new domain not forwarded");
    assert_eq!(
        forwarded.request_uri_bytes(),
        Some(&b"sip:bob@new.example.org"[..])
    );
    setup.lb.shutdown().await;
}

#[tokio::test]
async fn a_flooding_source_is_banned_and_dropped_silently() {
    let proxy = UdpSocket::bind(loopback()).await.unwrap();
    let phone = UdpSocket::bind(loopback()).await.unwrap();
    let lb = lb::start(LbConfig {
        udp: Some(loopback()),
        tcp: None,
        internal: loopback(),
        proxy: proxy.local_addr().unwrap(),
        domains: vec!["example.com".to_owned()],
        flood: Some(lb::FloodLimit {
            requests_per_window: 5,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
            exempt_loopback: false,
            max_sources: 1000,
        }),
        ..LbConfig::default()
    })
    .await
    .unwrap();
    let phone_address = phone.local_addr().unwrap();
    for attempt in 0..8 {
        let invite = invite(phone_address, "UDP", &format!("z9hG4bKflood{attempt}"));
        phone.send_to(&invite, lb.udp.unwrap()).await.unwrap();
    }
    let mut forwarded = 0;
    while !nothing_arrives(&proxy).await {
        forwarded += 1;
    }
    assert_eq!(forwarded, 5);
    assert!(
        nothing_arrives(&phone).await,
        "a banned source gets no answer"
    );
    lb.shutdown().await;
}
