//! The relay end to end on 127.0.0.1: real ng datagrams, real RTP/RTCP sockets.
//!
//! Every test gets its own relay port range below the kernel's ephemeral range (32768+), so
//! tests running in parallel (and other programs' port-0 binds) never collide.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use media::{IoMode, MediaConfig, MediaEvent, MediaRelay, receive_with_tos};
use ng_protocol::bencode::{Value, decode};
use ng_protocol::sdp;

const SHORT: Duration = Duration::from_millis(300);

/// A blocking ng client on its own socket.
struct NgClient {
    socket: UdpSocket,
    relay: SocketAddr,
    next: u32,
}

impl NgClient {
    fn new(relay: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        NgClient {
            socket,
            relay,
            next: 0,
        }
    }

    fn raw(&self, datagram: &[u8]) -> Option<Vec<u8>> {
        self.socket.send_to(datagram, self.relay).unwrap();
        let mut buffer = vec![0_u8; 65_535];
        match self.socket.recv(&mut buffer) {
            Ok(len) => Some(buffer[..len].to_vec()),
            Err(_) => None,
        }
    }

    fn send_with_cookie(&self, cookie: &str, request: &Value<'_>) -> Vec<u8> {
        let mut datagram = format!("{cookie} ").into_bytes();
        datagram.extend(request.encode());
        self.raw(&datagram).expect("relay answered")
    }

    /// Sends `request` with a fresh cookie and returns the reply dictionary.
    fn call(&mut self, request: &Value<'_>) -> Value<'static> {
        self.next += 1;
        // The relay caches replies by cookie alone: clients of one relay must not share any.
        let port = self.socket.local_addr().unwrap().port();
        let cookie = format!("test_{port}_{}", self.next);
        let reply = self.send_with_cookie(&cookie, request);
        let payload = reply
            .strip_prefix(format!("{cookie} ").as_bytes())
            .expect("reply starts with the cookie");
        decode(payload).unwrap().into_owned()
    }
}

fn dict(entries: &[(&'static str, Value<'static>)]) -> Value<'static> {
    Value::Dict(
        entries
            .iter()
            .map(|(k, v)| (k.as_bytes().into(), v.clone()))
            .collect(),
    )
}

fn s(text: &str) -> Value<'static> {
    Value::string(text)
}

fn result(reply: &Value<'_>) -> String {
    reply
        .get("result")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn reason(reply: &Value<'_>) -> String {
    reply
        .get("error-reason")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn sdp_for(rtp: &UdpSocket, rtcp: &UdpSocket) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtcp:{}\r\n",
        rtp.local_addr().unwrap().port(),
        rtcp.local_addr().unwrap().port()
    )
}

fn offer(call_id: &str, sdp: &str) -> Value<'static> {
    dict(&[
        ("command", s("offer")),
        ("call-id", s(call_id)),
        ("from-tag", s("caller")),
        ("sdp", s(sdp)),
        (
            "replace",
            Value::List(vec![s("origin"), s("session-connection")]),
        ),
        ("ICE", s("remove")),
        ("flags", Value::List(vec![s("trust-address")])),
        ("label", s("caller")),
    ])
}

fn answer(call_id: &str, sdp: &str) -> Value<'static> {
    dict(&[
        ("command", s("answer")),
        ("call-id", s(call_id)),
        ("from-tag", s("caller")),
        ("to-tag", s("callee")),
        ("sdp", s(sdp)),
        ("replace", Value::List(vec![s("origin")])),
        ("label", s("callee")),
    ])
}

/// The relay's RTP port in a rewritten SDP, after checking it points at the relay.
fn relay_port(reply: &Value<'_>) -> u16 {
    assert_eq!(result(reply), "ok", "reply: {reply:?}");
    let body = reply.get("sdp").and_then(Value::as_bytes).unwrap();
    let session = sdp::parse(body).unwrap();
    assert_eq!(session.origin_address, Some("127.0.0.1".parse().unwrap()));
    let media = &session.media[0];
    assert_eq!(media.connection, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(media.rtcp_port, Some(media.port + 1));
    media.port
}

fn endpoint() -> (UdpSocket, UdpSocket) {
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for socket in [&rtp, &rtcp] {
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
    }
    (rtp, rtcp)
}

fn relay_address(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn receive(socket: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buffer = [0_u8; 2048];
    socket
        .recv_from(&mut buffer)
        .ok()
        .map(|(len, from)| (buffer[..len].to_vec(), from))
}

fn config(base: u16, pairs: u16) -> MediaConfig {
    MediaConfig::loopback(base, base + pairs * 2 - 1)
}

/// A started relay with a call set up between two endpoints.
struct CallSetup {
    client: NgClient,
    a: (UdpSocket, UdpSocket),
    b: (UdpSocket, UdpSocket),
    /// Relay port A sends to (advertised in the answer).
    relay_for_a: u16,
    /// Relay port B sends to (advertised in the offer).
    relay_for_b: u16,
}

fn set_up_call(relay: &MediaRelay, call_id: &str) -> CallSetup {
    let mut client = NgClient::new(relay.ng_addr());
    let a = endpoint();
    let b = endpoint();
    let relay_for_b = relay_port(&client.call(&offer(call_id, &sdp_for(&a.0, &a.1))));
    let relay_for_a = relay_port(&client.call(&answer(call_id, &sdp_for(&b.0, &b.1))));
    CallSetup {
        client,
        a,
        b,
        relay_for_a,
        relay_for_b,
    }
}

fn rtp_packet(sequence: u16) -> Vec<u8> {
    let mut packet = vec![0_u8; 172];
    packet[0] = 0x80;
    packet[2..4].copy_from_slice(&sequence.to_be_bytes());
    packet
}

fn query(client: &mut NgClient, call_id: &str) -> Value<'static> {
    client.call(&dict(&[("command", s("query")), ("call-id", s(call_id))]))
}

fn totals(reply: &Value<'_>, kind: &str, counter: &str) -> i64 {
    reply
        .get("totals")
        .and_then(|t| t.get(kind))
        .and_then(|t| t.get(counter))
        .and_then(Value::as_int)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_gets_pong() {
    let relay = MediaRelay::start(config(20_000, 2)).await.unwrap();
    let client = NgClient::new(relay.ng_addr());
    let reply = client.raw(b"5323_1 d7:command4:pinge").unwrap();
    assert_eq!(reply, b"5323_1 d6:result4:ponge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_and_answer_point_each_side_at_the_relay() {
    let relay = MediaRelay::start(config(20_100, 8)).await.unwrap();
    let setup = set_up_call(&relay, "call-1");
    for port in [setup.relay_for_a, setup.relay_for_b] {
        assert_eq!(port % 2, 0);
        assert!((20_100..20_116).contains(&port));
    }
    assert_ne!(setup.relay_for_a, setup.relay_for_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_and_rtcp_are_relayed_both_ways_and_counted() {
    let relay = MediaRelay::start(config(20_200, 4)).await.unwrap();
    let mut setup = set_up_call(&relay, "call-2");
    let (a_rtp, a_rtcp) = &setup.a;
    let (b_rtp, b_rtcp) = &setup.b;
    for sequence in 0..10 {
        a_rtp
            .send_to(&rtp_packet(sequence), relay_address(setup.relay_for_a))
            .unwrap();
        let (packet, from) = receive(b_rtp).expect("A's RTP reaches B");
        assert_eq!(packet, rtp_packet(sequence));
        // B sees the relay port it sends to itself (symmetric RTP).
        assert_eq!(from, relay_address(setup.relay_for_b));
    }
    b_rtp
        .send_to(&rtp_packet(99), relay_address(setup.relay_for_b))
        .unwrap();
    let (packet, from) = receive(a_rtp).expect("B's RTP reaches A");
    assert_eq!(packet, rtp_packet(99));
    assert_eq!(from, relay_address(setup.relay_for_a));

    a_rtcp
        .send_to(b"rtcp from a", relay_address(setup.relay_for_a + 1))
        .unwrap();
    assert_eq!(receive(b_rtcp).unwrap().0, b"rtcp from a");
    b_rtcp
        .send_to(b"rtcp from b", relay_address(setup.relay_for_b + 1))
        .unwrap();
    let (packet, from) = receive(a_rtcp).unwrap();
    assert_eq!(packet, b"rtcp from b");
    assert_eq!(from, relay_address(setup.relay_for_a + 1));

    let reply = query(&mut setup.client, "call-2");
    assert_eq!(totals(&reply, "RTP", "packets"), 11);
    assert_eq!(totals(&reply, "RTP", "bytes"), 11 * 172);
    assert_eq!(totals(&reply, "RTP", "errors"), 0);
    assert_eq!(totals(&reply, "RTCP", "packets"), 2);
    let caller = reply.get("tags").and_then(|t| t.get("caller")).unwrap();
    assert_eq!(caller.get("label").and_then(Value::as_str), Some("caller"));
    let stream = &caller.get("medias").and_then(Value::as_list).unwrap()[0]
        .get("streams")
        .and_then(Value::as_list)
        .unwrap()[0];
    assert_eq!(
        stream.get("local port").and_then(Value::as_int),
        Some(i64::from(setup.relay_for_a))
    );
    assert_eq!(
        stream
            .get("stats")
            .and_then(|s| s.get("packets"))
            .and_then(Value::as_int),
        Some(10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_io_mode_relays_too() {
    let mut config = config(20_300, 4);
    config.io_mode = IoMode::Simple;
    let relay = MediaRelay::start(config).await.unwrap();
    let setup = set_up_call(&relay, "call-simple");
    setup
        .a
        .0
        .send_to(&rtp_packet(1), relay_address(setup.relay_for_a))
        .unwrap();
    assert_eq!(receive(&setup.b.0).unwrap().0, rtp_packet(1));
    setup
        .b
        .0
        .send_to(&rtp_packet(2), relay_address(setup.relay_for_b))
        .unwrap();
    assert_eq!(receive(&setup.a.0).unwrap().0, rtp_packet(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latched_stream_drops_packets_from_other_sources() {
    let relay = MediaRelay::start(config(20_400, 4)).await.unwrap();
    let mut setup = set_up_call(&relay, "call-3");
    let (a_rtp, _) = &setup.a;
    let (b_rtp, _) = &setup.b;
    let to_relay = relay_address(setup.relay_for_a);
    a_rtp.send_to(&rtp_packet(1), to_relay).unwrap();
    assert_eq!(receive(b_rtp).unwrap().0, rtp_packet(1), "A latched");

    let intruder = UdpSocket::bind("127.0.0.1:0").unwrap();
    for sequence in 0..1000 {
        intruder.send_to(&rtp_packet(sequence), to_relay).unwrap();
        // Paced so the relay socket's receive buffer never overflows in the kernel.
        if sequence % 50 == 49 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Wait until the relay has counted all 1000 as errors.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut errors = 0;
    while Instant::now() < deadline {
        errors = totals(&query(&mut setup.client, "call-3"), "RTP", "errors");
        if errors >= 1000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(errors, 1000);
    b_rtp.set_read_timeout(Some(SHORT)).unwrap();
    assert!(receive(b_rtp).is_none(), "no injected packet reached B");
    // The latched source still gets through.
    a_rtp.send_to(&rtp_packet(2), to_relay).unwrap();
    b_rtp
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(receive(b_rtp).unwrap().0, rtp_packet(2));
    assert_eq!(
        totals(&query(&mut setup.client, "call-3"), "RTP", "packets"),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_cookie_gets_the_cached_reply_without_reprocessing() {
    let relay = MediaRelay::start(config(20_500, 4)).await.unwrap();
    let mut client = NgClient::new(relay.ng_addr());
    let (rtp, rtcp) = endpoint();
    let first = client.send_with_cookie("dup_1", &offer("call-4", &sdp_for(&rtp, &rtcp)));
    // Same cookie, different request: the relay must answer from the cache.
    let second = client.send_with_cookie("dup_1", &offer("call-5", &sdp_for(&rtp, &rtcp)));
    assert_eq!(first, second);
    assert_eq!(reason(&query(&mut client, "call-5")), "Unknown call-id");
    let list = client.call(&dict(&[("command", s("list"))]));
    let calls = list.get("calls").and_then(Value::as_list).unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].as_str(), Some("call-4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_ports_give_an_error_and_delete_frees_them() {
    // Two pairs: exactly one stream (one pair per side).
    let relay = MediaRelay::start(config(20_600, 2)).await.unwrap();
    let mut client = NgClient::new(relay.ng_addr());
    let (rtp, rtcp) = endpoint();
    let sdp = sdp_for(&rtp, &rtcp);
    assert_eq!(result(&client.call(&offer("first", &sdp))), "ok");
    let refused = client.call(&offer("second", &sdp));
    assert_eq!(result(&refused), "error");
    assert_eq!(reason(&refused), "Ran out of ports");
    assert_eq!(reason(&query(&mut client, "second")), "Unknown call-id");

    let deleted = client.call(&dict(&[
        ("command", s("delete")),
        ("call-id", s("first")),
        ("from-tag", s("caller")),
        ("delete-delay", Value::Int(0)),
    ]));
    assert_eq!(result(&deleted), "ok");
    assert!(
        deleted.get("totals").is_some(),
        "delete reports final stats"
    );
    assert_eq!(reason(&query(&mut client, "first")), "Unknown call-id");
    assert_eq!(result(&client.call(&offer("second", &sdp))), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_call_answers_queries_during_its_delay_but_its_media_stops_at_once() {
    let relay = MediaRelay::start(config(20_700, 4)).await.unwrap();
    let mut setup = set_up_call(&relay, "call-6");
    let to_relay = relay_address(setup.relay_for_a);
    setup.a.0.send_to(&rtp_packet(1), to_relay).unwrap();
    assert_eq!(receive(&setup.b.0).unwrap().0, rtp_packet(1));
    let deleted = setup.client.call(&dict(&[
        ("command", s("delete")),
        ("call-id", s("call-6")),
        ("delete delay", s("30")),
    ]));
    assert_eq!(result(&deleted), "ok");
    assert_eq!(totals(&deleted, "RTP", "packets"), 1);
    // A late packet is not relayed (the port is closed).
    setup.a.0.send_to(&rtp_packet(2), to_relay).unwrap();
    setup.b.0.set_read_timeout(Some(SHORT)).unwrap();
    assert!(receive(&setup.b.0).is_none(), "media after the delete");
    // The call's final figures stay listed and queryable for the delay; it is no session any
    // more.
    let reply = query(&mut setup.client, "call-6");
    assert_eq!(result(&reply), "ok");
    assert_eq!(totals(&reply, "RTP", "packets"), 1);
    let list = setup.client.call(&dict(&[("command", s("list"))]));
    assert_eq!(
        list.get("calls").and_then(Value::as_list),
        Some(&[s("call-6")][..])
    );
    let stats = setup.client.call(&dict(&[("command", s("statistics"))]));
    let total = stats
        .get("statistics")
        .and_then(|s| s.get("totalstatistics"))
        .unwrap();
    assert_eq!(
        total.get("deletedsessions").and_then(Value::as_int),
        Some(1)
    );
    assert_eq!(
        total.get("managedsessions").and_then(Value::as_int),
        Some(1)
    );
    let current = stats
        .get("statistics")
        .and_then(|s| s.get("currentstatistics"))
        .unwrap();
    assert_eq!(current.get("sessionsown").and_then(Value::as_int), Some(0));
}

/// The ports of a deleted call go to the next call at once, although the delete delay runs;
/// late packets of the deleted call reach no one: not the old peer through a kernel route left
/// behind, and not the new call's peer by the new leg latching onto the old phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_calls_ports_go_to_the_next_call_at_once_and_its_late_packets_are_dropped() {
    // Two pairs: the range holds one call.
    let relay = MediaRelay::start(config(21_500, 2)).await.unwrap();
    let mut old = set_up_call(&relay, "old");
    let (old_to_a, old_to_b) = (
        relay_address(old.relay_for_a),
        relay_address(old.relay_for_b),
    );
    old.a.0.send_to(&rtp_packet(0), old_to_a).unwrap();
    assert_eq!(receive(&old.b.0).unwrap().0, rtp_packet(0));
    old.b.0.send_to(&rtp_packet(0), old_to_b).unwrap();
    assert_eq!(receive(&old.a.0).unwrap().0, rtp_packet(0));
    let both = [old.relay_for_a, old.relay_for_b];
    let kernel = both
        .iter()
        .all(|&port| kernelized(&wait_kernelized(&mut old.client, "old", &both), port));
    assert!(
        kernel || !e2e_tests::is_root(),
        "root, yet the old call was not kernelized"
    );
    // Deleted with the default delete delay (30 s).
    let deleted = old.client.call(&dict(&[
        ("command", s("delete")),
        ("call-id", s("old")),
        ("from-tag", s("caller")),
    ]));
    assert_eq!(result(&deleted), "ok");
    // Late packets to the free ports: the kernel routes are gone, the sockets closed.
    old.a.0.send_to(&rtp_packet(1), old_to_a).unwrap();
    old.b.0.send_to(&rtp_packet(1), old_to_b).unwrap();
    for phone in [&old.a.0, &old.b.0] {
        phone.set_read_timeout(Some(SHORT)).unwrap();
        assert!(receive(phone).is_none(), "relayed after the delete");
    }

    // The next call gets the same ports right away, least recently freed first.
    let mut new = set_up_call(&relay, "new");
    assert_eq!(
        (new.relay_for_a, new.relay_for_b),
        (old.relay_for_a, old.relay_for_b)
    );
    // The old phones keep sending, RTP and RTCP, before the new phones' first packets.
    for sequence in 2..5 {
        old.a.0.send_to(&rtp_packet(sequence), old_to_a).unwrap();
        old.b.0.send_to(&rtp_packet(sequence), old_to_b).unwrap();
    }
    old.a
        .1
        .send_to(b"late rtcp", relay_address(old.relay_for_a + 1))
        .unwrap();
    let errors_seen = |client: &mut NgClient| {
        let reply = query(client, "new");
        (
            totals(&reply, "RTP", "errors"),
            totals(&reply, "RTCP", "errors"),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while errors_seen(&mut new.client) != (6, 1) {
        assert!(
            Instant::now() < deadline,
            "late packets not dropped: {:?}",
            errors_seen(&mut new.client)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for phone in [&new.a.0, &new.a.1, &new.b.0, &new.b.1, &old.a.0, &old.b.0] {
        phone.set_read_timeout(Some(SHORT)).unwrap();
        assert!(receive(phone).is_none(), "a late packet was relayed");
    }
    // The new phones were not displaced: their own packets latch and flow both ways.
    for phone in [&new.a.0, &new.b.0] {
        phone
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
    }
    new.a
        .0
        .send_to(&rtp_packet(10), relay_address(new.relay_for_a))
        .unwrap();
    assert_eq!(
        receive(&new.b.0).unwrap(),
        (rtp_packet(10), relay_address(new.relay_for_b))
    );
    new.b
        .0
        .send_to(&rtp_packet(11), relay_address(new.relay_for_b))
        .unwrap();
    assert_eq!(
        receive(&new.a.0).unwrap(),
        (rtp_packet(11), relay_address(new.relay_for_a))
    );
    // The deleted call's record still answers, with its own figures.
    let reply = query(&mut old.client, "old");
    assert_eq!(result(&reply), "ok");
    assert_eq!(totals(&reply, "RTP", "packets"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_timeout_ends_the_call_and_notifies() {
    let mut config = config(20_800, 4);
    config.media_timeout = Duration::from_secs(1);
    let mut relay = MediaRelay::start(config).await.unwrap();
    let mut events = relay.take_events().unwrap();
    let mut setup = set_up_call(&relay, "call-7");
    let started = Instant::now();
    // Media for a while keeps the call up past the timeout.
    while started.elapsed() < Duration::from_millis(1500) {
        setup
            .a
            .0
            .send_to(&rtp_packet(1), relay_address(setup.relay_for_a))
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(result(&query(&mut setup.client, "call-7")), "ok");
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("timeout notification")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(2400));
    assert_eq!(
        event,
        MediaEvent::Timeout {
            call_id: "call-7".into(),
            tags: vec!["caller".into(), "callee".into()],
        }
    );
    assert_eq!(
        reason(&query(&mut setup.client, "call-7")),
        "Unknown call-id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_packets_carry_tos_184_on_the_wire() {
    let relay = MediaRelay::start(config(20_900, 4)).await.unwrap();
    let setup = set_up_call(&relay, "call-8");
    socket2::SockRef::from(&setup.b.0)
        .set_recv_tos_v4(true)
        .unwrap();
    // The sender's own packets carry TOS 0, so 184 can only come from the relay.
    assert_eq!(socket2::SockRef::from(&setup.a.0).tos_v4().unwrap(), 0);
    setup
        .a
        .0
        .send_to(&rtp_packet(1), relay_address(setup.relay_for_a))
        .unwrap();
    let mut buffer = [0_u8; 2048];
    let (len, from, tos) = receive_with_tos(setup.b.0.as_raw_fd(), &mut buffer).unwrap();
    assert_eq!(&buffer[..len], rtp_packet(1).as_slice());
    assert_eq!(from, Some(relay_address(setup.relay_for_b)));
    assert_eq!(tos, Some(184));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let relay = MediaRelay::start(config(21_000, 2)).await.unwrap();
    let mut client = NgClient::new(relay.ng_addr());
    let garbage = client.raw(b"c1 d7:command").unwrap();
    assert_eq!(
        garbage,
        b"c1 d12:error-reason35:Could not decode bencode dictionary6:result5:errore"
    );
    let answer_unknown = client.call(&answer("nope", "v=0\r\n"));
    assert_eq!(reason(&answer_unknown), "Unknown call-id");
    let not_sdp = client.call(&offer("x", "hello"));
    assert_eq!(reason(&not_sdp), "Failed to parse SDP");
    assert_eq!(reason(&query(&mut client, "x")), "Unknown call-id");
    let delete_unknown = client.call(&dict(&[("command", s("delete")), ("call-id", s("nope"))]));
    assert_eq!(result(&delete_unknown), "ok");
    assert_eq!(
        delete_unknown.get("warning").and_then(Value::as_str),
        Some("Call-ID not found or tags didn't match")
    );
    let unknown_command = client.call(&dict(&[("command", s("dance"))]));
    assert_eq!(reason(&unknown_command), "Unrecognized command");
    // No space: not an ng message, no reply; the relay keeps serving.
    client.socket.set_read_timeout(Some(SHORT)).unwrap();
    assert_eq!(client.raw(b"nospace"), None);
    client
        .socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        result(&client.call(&dict(&[("command", s("ping"))]))),
        "pong"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_offer_from_the_callee_keeps_the_ports() {
    let relay = MediaRelay::start(config(21_100, 4)).await.unwrap();
    let mut setup = set_up_call(&relay, "call-9");
    // re-INVITE from the callee: from-tag = callee, to-tag = caller (ng-protocol.md §6).
    let re_offer = setup.client.call(&dict(&[
        ("command", s("offer")),
        ("call-id", s("call-9")),
        ("from-tag", s("callee")),
        ("to-tag", s("caller")),
        ("sdp", s(&sdp_for(&setup.b.0, &setup.b.1))),
        ("replace", Value::List(vec![s("origin")])),
    ]));
    // The caller receives this offer, so it names the port facing the caller.
    assert_eq!(relay_port(&re_offer), setup.relay_for_a);
    let re_answer = setup.client.call(&dict(&[
        ("command", s("answer")),
        ("call-id", s("call-9")),
        ("from-tag", s("callee")),
        ("to-tag", s("caller")),
        ("sdp", s(&sdp_for(&setup.a.0, &setup.a.1))),
        ("replace", Value::List(vec![s("origin")])),
    ]));
    assert_eq!(relay_port(&re_answer), setup.relay_for_b);
    let list = setup.client.call(&dict(&[("command", s("list"))]));
    assert_eq!(
        list.get("calls").and_then(Value::as_list).map(<[_]>::len),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_source_address_overrides_the_sdp_address() {
    let relay = MediaRelay::start(config(21_200, 4)).await.unwrap();
    let mut client = NgClient::new(relay.ng_addr());
    let a = endpoint();
    let b = endpoint();
    // A is behind NAT: its SDP names a private address the relay cannot reach.
    let private_sdp = sdp_for(&a.0, &a.1).replace("c=IN IP4 127.0.0.1", "c=IN IP4 10.99.0.1");
    let offered = client.call(&dict(&[
        ("command", s("offer")),
        ("call-id", s("nat")),
        ("from-tag", s("caller")),
        ("sdp", s(&private_sdp)),
        ("flags", Value::List(vec![s("SIP-source-address")])),
        ("received-from", Value::List(vec![s("IP4"), s("127.0.0.1")])),
    ]));
    let relay_for_b = relay_port(&offered);
    assert_eq!(
        result(&client.call(&answer("nat", &sdp_for(&b.0, &b.1)))),
        "ok"
    );
    // B speaks first; A has sent nothing, so the relay uses the SIP source address.
    b.0.send_to(&rtp_packet(7), relay_address(relay_for_b))
        .unwrap();
    assert_eq!(receive(&a.0).unwrap().0, rtp_packet(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_offer_with_a_new_endpoint_learns_the_new_source() {
    let relay = MediaRelay::start(config(21_300, 4)).await.unwrap();
    let setup = set_up_call(&relay, "call-10");
    let mut client = setup.client;
    let to_relay = relay_address(setup.relay_for_a);
    setup.a.0.send_to(&rtp_packet(1), to_relay).unwrap();
    assert_eq!(receive(&setup.b.0).unwrap().0, rtp_packet(1), "A latched");
    // The caller moves to new ports and says so in a re-INVITE.
    let moved = endpoint();
    let re_offer = client.call(&offer("call-10", &sdp_for(&moved.0, &moved.1)));
    assert_eq!(relay_port(&re_offer), setup.relay_for_b, "same relay ports");
    moved.0.send_to(&rtp_packet(2), to_relay).unwrap();
    assert_eq!(
        receive(&setup.b.0).unwrap().0,
        rtp_packet(2),
        "new source learned"
    );
    // ... and the old source is now the foreign one.
    setup.a.0.send_to(&rtp_packet(3), to_relay).unwrap();
    setup.b.0.set_read_timeout(Some(SHORT)).unwrap();
    assert!(receive(&setup.b.0).is_none());
    // B's packets go to the caller's new endpoint.
    setup
        .b
        .0
        .send_to(&rtp_packet(4), relay_address(setup.relay_for_b))
        .unwrap();
    assert_eq!(receive(&moved.0).unwrap().0, rtp_packet(4));
}

/// Whether the stream at `port` reports rtpengine's `kernelized` flag in a query.
fn kernelized(reply: &Value<'_>, port: u16) -> bool {
    let Some(Value::Dict(tags)) = reply.get("tags") else {
        panic!("no tags in {reply:?}");
    };
    tags.iter()
        .map(|(_, tag)| tag)
        .flat_map(|tag| tag.get("medias").and_then(Value::as_list).unwrap_or(&[]))
        .flat_map(|media| media.get("streams").and_then(Value::as_list).unwrap_or(&[]))
        .filter(|stream| stream.get("local port").and_then(Value::as_int) == Some(i64::from(port)))
        .any(|stream| {
            stream
                .get("flags")
                .and_then(Value::as_list)
                .is_some_and(|flags| flags.iter().any(|f| f.as_str() == Some("kernelized")))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latched_streams_move_to_the_kernel_and_keep_strict_source_and_counters() {
    let relay = MediaRelay::start(config(21_400, 4)).await.unwrap();
    let mut setup = set_up_call(&relay, "call-kernel");
    let (a, b) = (&setup.a.0, &setup.b.0);
    let to_relay_a = relay_address(setup.relay_for_a);
    let to_relay_b = relay_address(setup.relay_for_b);
    // One packet each way latches both legs in user space.
    a.send_to(&rtp_packet(0), to_relay_a).unwrap();
    assert_eq!(receive(b).unwrap().0, rtp_packet(0));
    b.send_to(&rtp_packet(0), to_relay_b).unwrap();
    assert_eq!(receive(a).unwrap().0, rtp_packet(0));
    // The route goes in right after the relayed packet left: give the data plane a moment.
    let both = [setup.relay_for_a, setup.relay_for_b];
    let reply = wait_kernelized(&mut setup.client, "call-kernel", &both);
    if !both.iter().all(|&port| kernelized(&reply, port)) {
        assert!(!e2e_tests::is_root(), "root, yet not kernelized: {reply:?}");
        eprintln!("skipped: kernel forwarding needs CAP_BPF + CAP_NET_ADMIN");
        return;
    }
    for sequence in 1..=100 {
        a.send_to(&rtp_packet(sequence), to_relay_a).unwrap();
        let (packet, from) = receive(b).unwrap();
        assert_eq!((packet, from), (rtp_packet(sequence), to_relay_b));
        b.send_to(&rtp_packet(sequence), to_relay_b).unwrap();
        let (packet, from) = receive(a).unwrap();
        assert_eq!((packet, from), (rtp_packet(sequence), to_relay_a));
    }
    let reply = query(&mut setup.client, "call-kernel");
    assert_eq!(totals(&reply, "RTP", "packets"), 202);
    assert_eq!(totals(&reply, "RTP", "bytes"), 202 * 172);
    // Another source is left to user space, which drops and counts it.
    let intruder = UdpSocket::bind("127.0.0.1:0").unwrap();
    for sequence in 0..10 {
        intruder.send_to(&rtp_packet(sequence), to_relay_a).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while totals(&query(&mut setup.client, "call-kernel"), "RTP", "errors") < 10 {
        assert!(Instant::now() < deadline, "intruder packets not counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.set_read_timeout(Some(SHORT)).unwrap();
    assert!(receive(b).is_none(), "an injected packet reached B");
    // The caller moves (re-INVITE): both directions are learnt again in user space, then
    // handed back to the kernel, and the counts carry on.
    let moved = endpoint();
    client_reoffer(&mut setup.client, "call-kernel", &moved);
    let reply = wait_for(&mut setup.client, "call-kernel", |reply| {
        both.iter().all(|&port| !kernelized(reply, port))
    });
    assert!(
        both.iter().all(|&port| !kernelized(&reply, port)),
        "{reply:?}"
    );
    moved.0.send_to(&rtp_packet(200), to_relay_a).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(receive(b).unwrap().0, rtp_packet(200));
    b.send_to(&rtp_packet(201), to_relay_b).unwrap();
    assert_eq!(receive(&moved.0).unwrap().0, rtp_packet(201));
    a.send_to(&rtp_packet(202), to_relay_a).unwrap();
    b.set_read_timeout(Some(SHORT)).unwrap();
    assert!(receive(b).is_none(), "the old source is foreign now");
    let reply = wait_kernelized(&mut setup.client, "call-kernel", &both);
    assert!(
        both.iter().all(|&port| kernelized(&reply, port)),
        "{reply:?}"
    );
    assert_eq!(totals(&reply, "RTP", "packets"), 204);
}

/// Queries until every stream at `ports` is kernelized, for at most a second; the last reply.
fn wait_kernelized(client: &mut NgClient, call_id: &str, ports: &[u16]) -> Value<'static> {
    wait_for(client, call_id, |reply| {
        ports.iter().all(|&port| kernelized(reply, port))
    })
}

/// Queries until `done` holds (the data plane applies commands a moment after the ng reply),
/// for at most a second; the last reply.
fn wait_for(
    client: &mut NgClient,
    call_id: &str,
    done: impl Fn(&Value<'_>) -> bool,
) -> Value<'static> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let reply = query(client, call_id);
        if Instant::now() > deadline || done(&reply) {
            return reply;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn client_reoffer(client: &mut NgClient, call_id: &str, moved: &(UdpSocket, UdpSocket)) {
    let reply = client.call(&offer(call_id, &sdp_for(&moved.0, &moved.1)));
    assert_eq!(result(&reply), "ok");
}
