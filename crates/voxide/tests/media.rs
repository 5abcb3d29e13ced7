//! The media relay in the path of every call (`voxide up` runs `voxide media` and points the
//! proxy at it): each phone only ever sees the relay's address, audio flows both ways through
//! it, a phone behind NAT is reached by latching, and a call whose media stops is ended with a
//! BYE to both phones and accounted.
//!
//! In the capture test the relay has its own loopback address (127.0.0.6) and each phone its
//! own RTP port range, so the capture holds exactly the call's media: any packet that went
//! straight from one phone's RTP socket to the other's would show up in it. The relay-level
//! test of latching is `crates/media/tests/relay.rs`
//! (`latched_stream_drops_packets_from_other_sources`); here 1,000 foreign packets are sent
//! into a real call.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{
    Audio, Baresip, BaresipAccount, BaresipMedia, NatLab, NodePorts, Scene, TEST_DOMAIN, block_on,
    free_udp_port, wait_until_udp_bound,
};
use proxy::media::{MediaRelayClient, MediaRelayConfig, RelayTotals};
use store::{AccRepository as _, CdrRepository as _};

const VOXIDE: &str = env!("CARGO_BIN_EXE_voxide");
const ALICE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const BOB_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The relay's own loopback address in the capture test, so the capture holds only this
/// test's media even while other programs use the loopback interface.
const RELAY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
/// Seconds the caller stays in a baresip call.
const CALL_SECONDS: u32 = 6;

fn account<'a>(scene: &'a Scene, username: &'a str, local: SocketAddr) -> BaresipAccount<'a> {
    BaresipAccount {
        username,
        password: &scene.subscriber(username).password,
        domain: TEST_DOMAIN,
        outbound: scene.node.sip_address(),
        transport: "udp",
        local,
    }
}

/// A free UDP port on `ip`.
fn free_port_on(ip: IpAddr) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .and_then(|socket| socket.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Ten consecutive free UDP ports on 127.0.0.1 (a phone's RTP/RTCP range), away from the
/// relay's 30000–40000 and the ephemeral range.
fn free_port_pair_range() -> (u16, u16) {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    loop {
        let offset = NEXT.fetch_add(10, Ordering::Relaxed);
        let first =
            20_000 + (u16::try_from(std::process::id() % 500).unwrap_or(0) * 10 + offset) % 9_000;
        let free = (first..first + 10)
            .all(|port| std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok());
        if free {
            return (first, first + 9);
        }
    }
}

/// Asserts that `audio` carries the tone at `expected` Hz, far stronger than at `other` Hz.
fn assert_tone(who: &str, audio: &Audio, expected: f64, other: f64, log: &str) {
    audio.assert_tone(who, expected, other, 20.0, log);
}

/// One captured UDP packet.
#[derive(Debug, Clone, Copy)]
struct Packet {
    from: SocketAddr,
    to: SocketAddr,
    /// UDP header plus payload.
    udp_length: usize,
}

/// Payload size of the foreign packets; the phones' PCMU packets carry 172 bytes.
const FOREIGN_PAYLOAD: usize = 900;

/// tshark on the loopback interface writing a pcap, stopped (by its pid) when dropped.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(directory: &Path, interface: &str, filter: &str) -> Self {
        let file = directory.join("capture.pcap");
        let log = std::fs::File::create(directory.join("tshark.log")).unwrap();
        let child = Command::new("tshark")
            .args(["-i", interface, "-f", filter, "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tshark (Debian package tshark)");
        let capture = Self { child, file };
        let deadline = Instant::now() + Duration::from_secs(20);
        let log_path = directory.join("tshark.log");
        while !std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("Capturing on")
        {
            assert!(Instant::now() < deadline, "tshark did not start capturing");
            std::thread::sleep(Duration::from_millis(100));
        }
        capture
    }

    /// Stops the capture and returns every UDP packet.
    fn finish(mut self) -> Vec<Packet> {
        // SIGINT lets tshark flush the file.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let output = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args([
                "-T",
                "fields",
                "-e",
                "ip.src",
                "-e",
                "udp.srcport",
                "-e",
                "ip.dst",
                "-e",
                "udp.dstport",
                "-e",
                "udp.length",
            ])
            .output()
            .expect("tshark -r");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                let [source, source_port, destination, destination_port, length] = fields[..]
                else {
                    return None;
                };
                Some(Packet {
                    from: SocketAddr::new(source.parse().ok()?, source_port.parse().ok()?),
                    to: SocketAddr::new(destination.parse().ok()?, destination_port.parse().ok()?),
                    udp_length: length.parse().ok()?,
                })
            })
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The relay's counters for every call it still holds (the node keeps calls 30 s after
/// their delete).
fn relay_calls(ng: SocketAddr) -> Vec<(String, RelayTotals)> {
    block_on(async {
        let client = MediaRelayClient::connect(MediaRelayConfig::new(ng))
            .await
            .unwrap();
        let mut calls = Vec::new();
        for call_id in client.list(32).await.unwrap() {
            let totals = client.query(&call_id).await.unwrap();
            calls.push((call_id, totals));
        }
        calls
    })
}

/// With kernel forwarding off, every relayed packet is sent by the relay's sockets, so the
/// loopback capture sees both halves of each hop.
#[test]
fn a_baresip_call_goes_through_the_relay_and_each_side_hears_the_others_tone() {
    baresip_call_through_the_relay(false);
}

/// The default: once latched, the kernel relays the streams. A packet it relays is rewritten
/// at loopback's tc ingress, after the capture tap, so the capture sees each phone's packets
/// reach the relay and never a packet between the phones; the tones, the relay's counters and
/// its `kernelized` flags show the rest.
#[test]
fn a_baresip_call_through_the_kernel_forwarding_relay_hears_both_tones() {
    baresip_call_through_the_relay(true);
}

fn baresip_call_through_the_relay(kernel_forwarding: bool) {
    let ports = NodePorts {
        media_ip: Some(RELAY_IP.into()),
        media_kernel_forwarding: kernel_forwarding,
        ..NodePorts::free().unwrap()
    };
    let scene = Scene::start_with_ports(VOXIDE, ports, &["alice", "bob"]).unwrap();
    let directory = scene.node.directory().to_owned();
    let relay_ip = scene.node.media_ip();
    let alice_rtp = free_port_pair_range();
    let bob_rtp = free_port_pair_range();
    let capture = Capture::start(
        &directory,
        "lo",
        &format!(
            "udp and (host {RELAY_IP} or portrange {}-{} or portrange {}-{})",
            alice_rtp.0, alice_rtp.1, bob_rtp.0, bob_rtp.1
        ),
    );

    let bob_local = SocketAddr::from((BOB_IP, free_port_on(BOB_IP.into())));
    let bob = Baresip::start_with(
        &directory.join("bob"),
        &account(&scene, "bob", bob_local),
        &[],
        Some(60),
        &BaresipMedia {
            tone_hz: 660,
            rtp_ports: Some(bob_rtp),
            ..BaresipMedia::default()
        },
    )
    .unwrap();
    bob.wait_for_log(
        &format!("bob@{TEST_DOMAIN}: {{0/UDP/v4}} 200 OK"),
        Duration::from_secs(15),
    )
    .unwrap();
    let alice_local = SocketAddr::from((ALICE_IP, free_port_on(ALICE_IP.into())));
    let mut alice = Baresip::start_with(
        &directory.join("alice"),
        &account(&scene, "alice", alice_local),
        &[&format!("/dial sip:bob@{TEST_DOMAIN}")],
        Some(CALL_SECONDS),
        &BaresipMedia {
            tone_hz: 440,
            rtp_ports: Some(alice_rtp),
            ..BaresipMedia::default()
        },
    )
    .unwrap();
    // Once the relay has latched onto Alice, 1,000 packets to her relay port from a foreign
    // port must not be forwarded to Bob.
    if let Err(error) = alice.wait_for_log("Call established", Duration::from_secs(15)) {
        panic!("{error:#}\nnode:\n{}", scene.node.log());
    }
    // Both streams latched (and, with kernel forwarding, moved into the kernel): polled, as
    // a loaded box may take longer than a fixed wait.
    let expect_kernel = kernel_forwarding && e2e_tests::is_root();
    let ready = |calls: &[(String, RelayTotals)]| {
        let parties: Vec<_> = calls.iter().flat_map(|(_, t)| t.parties.iter()).collect();
        parties.len() == 2
            && parties
                .iter()
                .all(|party| party.local_port.is_some() && (!expect_kernel || party.rtp_kernelized))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut during = relay_calls(scene.node.media_ng_address());
    while !ready(&during) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        during = relay_calls(scene.node.media_ng_address());
    }
    if expect_kernel {
        assert!(
            ready(&during),
            "both streams kernelized: {during:?}\nnode:\n{}",
            scene.node.log()
        );
    }
    let alice_port = during
        .iter()
        .flat_map(|(_, totals)| totals.parties.iter())
        .find(|party| party.label.as_deref() == Some("caller"))
        .and_then(|party| party.local_port)
        .unwrap_or_else(|| panic!("no caller stream: {during:?}"));
    let foreign = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let mut packet = vec![0_u8; FOREIGN_PAYLOAD];
    packet[..2].copy_from_slice(&[0x80, 0x00]);
    for sequence in 0..1000_u16 {
        packet[2..4].copy_from_slice(&sequence.to_be_bytes());
        foreign
            .send_to(&packet, SocketAddr::new(relay_ip, alice_port))
            .unwrap();
        // Paced, so none is lost to a full socket buffer and the relay counts each one.
        std::thread::sleep(Duration::from_micros(200));
    }

    alice
        .wait(Duration::from_secs(u64::from(CALL_SECONDS) + 20))
        .unwrap();
    if let Err(error) = bob.wait_for_log("terminated (duration", Duration::from_secs(15)) {
        panic!(
            "{error:#}\nalice:\n{}\nnode:\n{}",
            alice.log(),
            scene.node.log()
        );
    }
    let packets = capture.finish();

    // Each side hears the other's tone: Alice sends 440 Hz, Bob 660 Hz.
    let alice_heard = alice.received_audio_with_format().unwrap();
    let bob_heard = bob.received_audio_with_format().unwrap();
    assert_tone("alice", &alice_heard, 660.0, 440.0, &alice.log());
    assert_tone("bob", &bob_heard, 440.0, 660.0, &bob.log());

    // The relay's counters: one call, RTP received from both parties, each latched to where
    // its phone sends from (baresip binds its RTP socket to the wildcard address, so the
    // phones send from 127.0.0.1 and a port of their own).
    let calls = relay_calls(scene.node.media_ng_address());
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (_, totals) = &calls[0];
    assert_eq!(totals.parties.len(), 2, "{totals:?}");
    let mut phones = Vec::new();
    for party in &totals.parties {
        assert!(party.rtp_packets > 100, "{totals:?}");
        phones.push(party.endpoint.expect("a latched endpoint"));
    }
    assert_ne!(phones[0], phones[1]);

    // The capture: not one packet from one phone's RTP socket reached the other's; each
    // phone's media went to the relay's ports and came back from them; the foreign packets
    // reached the relay and went no further.
    let relay_ports = 30000..=40000;
    let direct: Vec<_> = packets
        .iter()
        .filter(|p| p.from != p.to && phones.contains(&p.from) && phones.contains(&p.to))
        .collect();
    assert!(direct.is_empty(), "packets between the phones: {direct:?}");
    for phone in &phones {
        let sent = packets
            .iter()
            .filter(|p| {
                p.from == *phone && p.to.ip() == relay_ip && relay_ports.contains(&p.to.port())
            })
            .count();
        let received = packets
            .iter()
            .filter(|p| {
                p.to == *phone && p.from.ip() == relay_ip && relay_ports.contains(&p.from.port())
            })
            .count();
        // 6 s of 20 ms packets is 300; allow for set-up and tear-down. Kernel-relayed packets
        // leave no trace on the tap; the user-space ones (before latching) must be there.
        let least_received = if kernel_forwarding { 1 } else { 100 };
        assert!(
            sent > 100 && received >= least_received,
            "{phone}: {sent} media packets to the relay, {received} from it"
        );
    }
    let foreign_size = FOREIGN_PAYLOAD + 8;
    let foreign_in = packets
        .iter()
        .filter(|p| p.udp_length == foreign_size && p.to == SocketAddr::new(relay_ip, alice_port))
        .count();
    let foreign_out = packets
        .iter()
        .filter(|p| p.udp_length == foreign_size && phones.contains(&p.to))
        .count();
    assert_eq!((foreign_in, foreign_out), (1000, 0));
    let caller = totals
        .parties
        .iter()
        .find(|party| party.label.as_deref() == Some("caller"))
        .unwrap();
    assert!(caller.rtp_errors >= 1000, "{totals:?}");
    let labels: Vec<_> = totals.parties.iter().map(|p| p.label.as_deref()).collect();
    assert!(
        labels.contains(&Some("caller")) && labels.contains(&Some("callee")),
        "{totals:?}"
    );
}

/// The SDP lines (`c=`, `o=`, `m=`) of the message starting at `start_line` in a SIPp trace.
fn sdp_of(trace: &str, start_line: &str) -> Vec<String> {
    let Some(at) = trace.find(start_line) else {
        return Vec::new();
    };
    trace[at..]
        .lines()
        .skip(1)
        .take_while(|line| !line.starts_with("-----"))
        .filter(|line| {
            ["c=", "o=", "m="]
                .iter()
                .any(|p| line.trim_start().starts_with(p))
        })
        .map(|line| line.trim().to_owned())
        .collect()
}

#[test]
fn a_call_whose_media_stops_gets_bye_on_both_sides_and_a_stop_record() {
    let ports = NodePorts {
        media_timeout_seconds: 3,
        media_check_seconds: 1,
        ..NodePorts::free().unwrap()
    };
    let scene = Scene::start_with_ports(VOXIDE, ports, &["alice", "bob"]).unwrap();
    let relay_ip = scene.node.media_ip();
    a_silent_call_is_ended_by_the_platform(&scene, relay_ip);
}

/// With Debian's rtpengine as the relay (`[proxy] media_relay`, rtpengine `--timeout=3`):
/// the proxy learns of the timeout the same way, from `query` answering `Unknown call-id`.
#[test]
fn a_silent_call_through_rtpengine_is_ended_too() {
    let directory = tempfile::tempdir().unwrap();
    let rtpengine = Rtpengine::start(directory.path());
    let ports = NodePorts {
        media_check_seconds: 1,
        media_relay: Some(rtpengine.ng),
        ..NodePorts::free().unwrap()
    };
    let scene = Scene::start_with_ports(VOXIDE, ports, &["alice", "bob"]).unwrap();
    a_silent_call_is_ended_by_the_platform(&scene, RTPENGINE_IP.into());
    assert!(
        rtpengine.log().contains("Closing call due to timeout"),
        "rtpengine did not time the call out:\n{}",
        rtpengine.log()
    );
}

const RTPENGINE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 7);

/// Debian's rtpengine (userspace only) on 127.0.0.7, killed by its pid when dropped.
struct Rtpengine {
    child: Child,
    ng: SocketAddr,
    log: PathBuf,
}

impl Rtpengine {
    fn start(directory: &Path) -> Self {
        let ng = SocketAddr::from((RTPENGINE_IP, free_port_on(RTPENGINE_IP.into())));
        // A run of free ports below the node relay's range.
        let mut first = 29_600;
        while !(first..first + 40)
            .all(|port| std::net::UdpSocket::bind((RTPENGINE_IP, port)).is_ok())
        {
            first += 40;
            assert!(first < 30_000, "no free port range for rtpengine");
        }
        let log = directory.join("rtpengine.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new("rtpengine")
            .args([
                "--config-file=none",
                "--table=-1",
                &format!("--interface={RTPENGINE_IP}"),
                &format!("--listen-ng={ng}"),
                &format!("--port-min={first}"),
                &format!("--port-max={}", first + 39),
                "--timeout=3",
                "--delete-delay=0",
                "--foreground",
                "--log-stderr",
            ])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("rtpengine (Debian package rtpengine-daemon)");
        let daemon = Self { child, ng, log };
        // Up once it answers a ping.
        let deadline = Instant::now() + Duration::from_secs(10);
        let pong = || {
            block_on(async {
                let client = MediaRelayClient::connect(MediaRelayConfig::new(ng)).await?;
                anyhow::Ok(client.ping().await?)
            })
        };
        while pong().is_err() {
            assert!(
                Instant::now() < deadline,
                "rtpengine did not start:\n{}",
                daemon.log()
            );
        }
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bob (SIPp) answers Alice's (SIPp) call; neither sends media. Both must get the
/// platform's BYE once the relay timed the call out, each SDP they received must name only
/// the relay (`relay_ip`), and the stop (BYE) record must exist.
fn a_silent_call_is_ended_by_the_platform(scene: &Scene, relay_ip: IpAddr) {
    let bob_local = SocketAddr::from((BOB_IP, free_port_on(BOB_IP.into())));
    let registered = scene
        .register_from(
            "bob",
            scene.sipp_from("register.xml", bob_local),
            "register-bob",
        )
        .unwrap();
    assert!(registered.succeeded(), "{}", registered.report());
    let bob = scene
        .sipp_from("uas_media_timeout.xml", bob_local)
        .key("user", "bob")
        .spawn("bob-media-timeout")
        .unwrap();
    wait_until_udp_bound(bob_local, None, Duration::from_secs(10)).unwrap();
    let alice = scene.subscriber("alice");
    let started = Instant::now();
    let caller = scene
        .sipp_from(
            "uac_media_timeout.xml",
            SocketAddr::from((ALICE_IP, free_port_on(ALICE_IP.into()))),
        )
        .key("user", "alice")
        .key("callee", "bob")
        .credentials("alice", &alice.password, &format!("sip:bob@{TEST_DOMAIN}"))
        .run("alice-media-timeout")
        .unwrap();
    let elapsed = started.elapsed();
    let callee = bob.wait(Duration::from_secs(40)).unwrap();
    assert!(
        caller.succeeded(),
        "caller: {}\n--- node\n{}",
        caller.report(),
        scene.node.log()
    );
    assert!(callee.succeeded(), "callee: {}", callee.report());
    // The BYE came from the platform after the relay's 3 s timeout, not at once.
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
    assert!(
        caller.messages.contains("Media Timeout") && callee.messages.contains("Media Timeout"),
        "BYEs without the Reason:\n{}\n{}",
        caller.report(),
        callee.report()
    );

    // Each phone saw only the relay's address and a relay port in the SDP it received.
    let relay_ip = relay_ip.to_string();
    for (who, trace, start) in [
        ("bob", &callee.messages, "INVITE sip:bob@"),
        ("alice", &caller.messages, "SIP/2.0 200 OK"),
    ] {
        let sdp = sdp_of(trace, start);
        assert!(
            sdp.iter().any(|line| line.starts_with("m=audio")),
            "{who}: no SDP\n{trace}"
        );
        for line in &sdp {
            assert!(
                !line.contains(&ALICE_IP.to_string()) && !line.contains(&BOB_IP.to_string()),
                "{who} received a phone's address: {line}\n{trace}"
            );
            if line.starts_with("c=") || line.starts_with("o=") {
                assert!(line.ends_with(&relay_ip), "{who}: {line}");
            }
            if let Some(rest) = line.strip_prefix("m=audio ") {
                let port: u16 = rest.split(' ').next().unwrap().parse().unwrap();
                // Not the phones' own (SIPp's default media port is 6000).
                assert!(port >= 29_000, "{who}: {line}");
            }
        }
    }

    // The stop record exists, with the dialog's tags.
    let call_id = caller
        .messages
        .lines()
        .find_map(|line| line.trim().strip_prefix("Call-ID:"))
        .map(|value| value.trim().to_owned())
        .expect("a Call-ID in the caller's trace");
    // The stop (BYE) record exists, with the dialog's tags. The node's mediator may already
    // have turned the INVITE and BYE records into a CDR, which needs both: then the CDR is
    // the proof, an answered call of about the relay's timeout.
    let url = scene.node.database_url();
    let (records, cdrs) = block_on(async {
        let store = store::Store::connect(&url).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let filter = store::CdrFilter {
            call_id: Some(call_id.clone()),
            ..store::CdrFilter::default()
        };
        loop {
            let records = store.list_acc_records_by_call_id(&call_id).await.unwrap();
            let cdrs = store
                .list_cdrs(&filter, store::Page::new(1, 10))
                .await
                .unwrap()
                .items;
            let has_bye = records.iter().any(|record| record.method == "BYE");
            if has_bye || !cdrs.is_empty() || Instant::now() > deadline {
                return (records, cdrs);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    if let Some(cdr) = cdrs.first() {
        assert_eq!(cdr.call_status, store::CallStatus::Ok, "{cdr:?}");
        assert!(
            (2_000..20_000).contains(&cdr.duration_ms),
            "the call lasted until the media timeout: {cdr:?}"
        );
        return;
    }
    let invite = records
        .iter()
        .find(|record| record.method == "INVITE" && record.sip_code == 200)
        .unwrap_or_else(|| panic!("no INVITE 200 record: {records:?}"));
    let bye = records
        .iter()
        .find(|record| record.method == "BYE")
        .unwrap_or_else(|| panic!("no BYE record: {records:?}"));
    assert_eq!(bye.from_tag, invite.from_tag);
    assert_eq!(bye.to_tag, invite.to_tag);
    assert_eq!(bye.sip_reason, "Media Timeout");
    assert_eq!(bye.source_user_id, invite.source_user_id);
}

#[test]
fn a_phone_behind_masquerade_gets_two_way_audio_through_the_relay() {
    let lab = NatLab::create().expect("creating the NAT namespaces (needs root, ip, iptables)");
    let ports = NodePorts {
        public_ip: lab.public_ip,
        ..NodePorts::free().unwrap()
    };
    let scene = Scene::start_with_ports(VOXIDE, ports, &["alice", "bob"]).unwrap();
    let directory = scene.node.directory().to_owned();

    // Bob behind the NAT: his SDP names his private address, which nothing outside reaches.
    let bob_local = SocketAddr::new(lab.phone_ip, free_udp_port().unwrap());
    let bob = Baresip::start_with(
        &directory.join("bob"),
        &account(&scene, "bob", bob_local),
        &[],
        Some(60),
        &BaresipMedia {
            tone_hz: 660,
            netns: Some(&lab.phone_namespace),
            ..BaresipMedia::default()
        },
    )
    .unwrap();
    bob.wait_for_log(
        &format!("bob@{TEST_DOMAIN}: {{0/UDP/v4}} 200 OK"),
        Duration::from_secs(15),
    )
    .unwrap();
    let alice_local = SocketAddr::new(lab.public_ip, free_port_on(lab.public_ip));
    let mut alice = Baresip::start_with(
        &directory.join("alice"),
        &account(&scene, "alice", alice_local),
        &[&format!("/dial sip:bob@{TEST_DOMAIN}")],
        Some(CALL_SECONDS),
        &BaresipMedia::default(),
    )
    .unwrap();
    alice
        .wait(Duration::from_secs(u64::from(CALL_SECONDS) + 20))
        .unwrap();
    if let Err(error) = bob.wait_for_log("terminated (duration", Duration::from_secs(15)) {
        panic!(
            "{error:#}\nalice:\n{}\nnode:\n{}",
            alice.log(),
            scene.node.log()
        );
    }
    assert_tone(
        "alice",
        &alice.received_audio_with_format().unwrap(),
        660.0,
        440.0,
        &alice.log(),
    );
    assert_tone(
        "bob",
        &bob.received_audio_with_format().unwrap(),
        440.0,
        660.0,
        &bob.log(),
    );
    // The relay latched Bob's stream to the router's public address, not his SDP address.
    let calls = relay_calls(scene.node.media_ng_address());
    let endpoints: Vec<IpAddr> = calls
        .iter()
        .flat_map(|(_, totals)| totals.parties.iter())
        .filter_map(|party| party.endpoint.map(|endpoint| endpoint.ip()))
        .collect();
    assert!(endpoints.contains(&lab.router_public_ip), "{calls:?}");
    assert!(!endpoints.contains(&lab.phone_ip), "{calls:?}");
    drop(scene);
    drop(lab);
}

/// The `c=` lines of the SDP bodies a SIPp trace shows as received, with the first line of
/// the message each came in.
fn received_connection_lines(trace: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for block in trace.split("\n----------") {
        let mut lines = block.lines().skip(1);
        let Some(header) = lines.next() else {
            continue;
        };
        if !header.contains("message received") {
            continue;
        }
        let mut start_line = None;
        for line in lines {
            let line = line.trim();
            if start_line.is_none() && !line.is_empty() {
                start_line = Some(line.to_owned());
            }
            if line.starts_with("c=") {
                found.push((start_line.clone().unwrap_or_default(), line.to_owned()));
            }
        }
    }
    found
}

/// A late offer (SDP first in the callee's 200, the answer in the ACK) and a re-INVITE with a
/// new offer both go through the relay: every SDP each phone receives names the relay.
#[test]
fn a_late_offer_and_a_re_invite_go_through_the_relay() {
    let scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let relay_ip = scene.node.media_ip().to_string();
    let bob_local = SocketAddr::from((BOB_IP, free_port_on(BOB_IP.into())));
    let registered = scene
        .register_from(
            "bob",
            scene.sipp_from("register.xml", bob_local),
            "register-bob",
        )
        .unwrap();
    assert!(registered.succeeded(), "{}", registered.report());
    let bob = scene
        .sipp_from("uas_late_offer_reinvite.xml", bob_local)
        .key("user", "bob")
        .spawn("bob-late-offer")
        .unwrap();
    wait_until_udp_bound(bob_local, None, Duration::from_secs(10)).unwrap();
    let alice = scene.subscriber("alice");
    let caller = scene
        .sipp_from(
            "uac_late_offer_reinvite.xml",
            SocketAddr::from((ALICE_IP, free_port_on(ALICE_IP.into()))),
        )
        .key("user", "alice")
        .key("callee", "bob")
        .credentials("alice", &alice.password, &format!("sip:bob@{TEST_DOMAIN}"))
        .run("alice-late-offer")
        .unwrap();
    let callee = bob.wait(Duration::from_secs(40)).unwrap();
    assert!(
        caller.succeeded(),
        "caller: {}\n--- node\n{}",
        caller.report(),
        scene.node.log()
    );
    assert!(callee.succeeded(), "callee: {}", callee.report());

    // Alice received two SDPs (the late offer in the 200, the answer to her re-INVITE), Bob
    // two (the answer in the ACK, the re-INVITE's offer): all name the relay.
    let expected = format!("c=IN IP4 {relay_ip}");
    for (who, trace, kinds) in [
        ("alice", &caller.messages, ["SIP/2.0 200", "SIP/2.0 200"]),
        ("bob", &callee.messages, ["ACK ", "INVITE "]),
    ] {
        let lines = received_connection_lines(trace);
        assert_eq!(lines.len(), 2, "{who}: {lines:?}\n{trace}");
        for ((start, connection), kind) in lines.iter().zip(kinds) {
            assert!(start.starts_with(kind), "{who}: {start}");
            assert_eq!(connection, &expected, "{who} in {start}");
        }
    }
}

/// A relay that does not answer: the proxy resends each request (same cookie), then answers
/// the INVITE `503 Media Relay Unavailable` and accounts it; the callee never rings.
#[test]
fn a_silent_relay_gets_the_caller_a_503() {
    let silent = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let ports = NodePorts {
        media_relay: Some(silent.local_addr().unwrap()),
        ..NodePorts::free().unwrap()
    };
    let scene = Scene::start_with_ports(VOXIDE, ports, &["alice", "bob"]).unwrap();
    let registered = scene.register("bob", Scene::free_port()).unwrap();
    assert!(registered.succeeded(), "{}", registered.report());
    // The relay also gets the proxy's start-up ping and its resends (never answered); only
    // offers are counted below.
    let mut buffer = vec![0_u8; 65_535];

    let alice = scene.subscriber("alice");
    let caller = scene
        .sipp("uac_media_unavailable.xml", Scene::free_port())
        .key("user", "alice")
        .key("callee", "bob")
        .credentials("alice", &alice.password, &format!("sip:bob@{TEST_DOMAIN}"))
        .run("alice-relay-down")
        .unwrap();
    assert!(
        caller.succeeded(),
        "{}\n--- node\n{}",
        caller.report(),
        scene.node.log()
    );
    assert!(
        caller.messages.contains("503 Media Relay Unavailable"),
        "{}",
        caller.report()
    );
    // The offer went out three times with one cookie.
    let mut offers = Vec::new();
    while let Ok((len, _)) = silent.recv_from(&mut buffer) {
        let datagram = buffer[..len].to_vec();
        if datagram.windows(5).any(|window| window == b"offer") {
            offers.push(datagram);
        }
        if offers.len() == 3 {
            break;
        }
    }
    assert_eq!(offers.len(), 3, "offers seen: {}", offers.len());
    assert!(offers.windows(2).all(|pair| pair[0] == pair[1]));
}

/// `voxide media` runs the relay alone from the `[media]` section and answers ng; an unknown
/// key in `[media]` stops start-up naming it.
#[test]
fn voxide_media_runs_the_relay_alone() {
    let directory = tempfile::tempdir().unwrap();
    let ng = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port().unwrap()));
    let config = directory.path().join("voxide.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[media]\nng_listen = \"{ng}\"\naddress = \"127.0.0.1\"\n\
             port_min = 31000\nport_max = 31999\ntimeout_seconds = 5\n",
            directory.path().join("data").display()
        ),
    )
    .unwrap();
    let log = directory.path().join("media.log");
    let mut child = Command::new(VOXIDE)
        .args(["media", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .any(|line| line == "ready")
    {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "voxide media did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = std::fs::read_to_string(&log).unwrap();
    assert!(
        started.contains(&format!("media:        ng udp {ng}")),
        "{started}"
    );
    let pong = block_on(async {
        MediaRelayClient::connect(MediaRelayConfig::new(ng))
            .await
            .unwrap()
            .ping()
            .await
    });
    let _ = child.kill();
    let _ = child.wait();
    pong.unwrap();

    std::fs::write(&config, "[media]\nport_mn = 1\n").unwrap();
    let output = Command::new(VOXIDE)
        .args(["media", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("port_mn"), "{stderr}");
}

/// The value of `header` in the first received message of a SIPp trace whose start line
/// begins with `start`.
fn received_header(trace: &str, start: &str, header: &str) -> Option<String> {
    for block in trace.split("\n----------") {
        let mut lines = block.lines().skip(1);
        if !lines.next()?.contains("message received") {
            continue;
        }
        let mut lines = lines.map(str::trim).skip_while(|line| line.is_empty());
        if !lines.next().is_some_and(|line| line.starts_with(start)) {
            continue;
        }
        return lines
            .take_while(|line| !line.is_empty())
            .find_map(|line| line.strip_prefix(header))
            .map(|value| value.trim().to_owned());
    }
    None
}

/// Bob has two phones: one sends early media (183 with SDP) and loses, the other answers a
/// second later. Both SDPs reach Alice rewritten to the same relay port (one far-side party,
/// the fork's via-branch is shared), the losing fork is cancelled without tearing the call
/// down, and the relay's far side carries the winner's tag.
#[test]
fn a_forked_call_with_early_media_keeps_the_winning_branch_on_the_relay() {
    let scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let relay_ip = scene.node.media_ip().to_string();
    let mut phones = Vec::new();
    for (scenario, tag) in [
        ("uas_early_media_cancelled.xml", "bob-loses"),
        ("uas_call_late_answer.xml", "bob-wins"),
    ] {
        let local = SocketAddr::from((BOB_IP, free_port_on(BOB_IP.into())));
        let registered = scene
            .register_from(
                "bob",
                scene.sipp_from("register.xml", local),
                &format!("register-{tag}"),
            )
            .unwrap();
        assert!(registered.succeeded(), "{}", registered.report());
        phones.push(
            scene
                .sipp_from(scenario, local)
                .key("user", "bob")
                .spawn(tag)
                .unwrap(),
        );
        wait_until_udp_bound(local, None, Duration::from_secs(10)).unwrap();
    }
    let alice = scene.subscriber("alice");
    let caller = scene
        .sipp_from(
            "uac_fork_call.xml",
            SocketAddr::from((ALICE_IP, free_port_on(ALICE_IP.into()))),
        )
        .key("user", "alice")
        .key("callee", "bob")
        .credentials("alice", &alice.password, &format!("sip:bob@{TEST_DOMAIN}"))
        .run("alice-forked")
        .unwrap();
    let winner = phones.pop().unwrap().wait(Duration::from_secs(40)).unwrap();
    let loser = phones.pop().unwrap().wait(Duration::from_secs(40)).unwrap();
    assert!(
        caller.succeeded(),
        "caller: {}\n--- node\n{}",
        caller.report(),
        scene.node.log()
    );
    assert!(winner.succeeded(), "winner: {}", winner.report());
    assert!(loser.succeeded(), "loser: {}", loser.report());

    let media_line = |start: &str| {
        let lines = received_connection_lines(&caller.messages);
        let connection = lines
            .iter()
            .find(|(line, _)| line.starts_with(start))
            .map(|(_, connection)| connection.clone());
        let at = caller.messages.find(start).expect("the response");
        let port = caller.messages[at..]
            .lines()
            .find_map(|line| line.trim().strip_prefix("m=audio "))
            .and_then(|rest| rest.split(' ').next())
            .map(str::to_owned);
        (connection, port)
    };
    let early = media_line("SIP/2.0 183");
    let answer = media_line("SIP/2.0 200");
    let expected = Some(format!("c=IN IP4 {relay_ip}"));
    assert_eq!(early.0, expected, "{}", caller.messages);
    assert_eq!(answer.0, expected, "{}", caller.messages);
    assert_eq!(early.1, answer.1, "one relay port towards Alice");

    let tag_of = |response: &str| {
        received_header(&caller.messages, response, "To:")
            .and_then(|to| to.split(";tag=").nth(1).map(str::to_owned))
            .unwrap_or_else(|| panic!("no To tag in {response}:\n{}", caller.messages))
    };
    let (losing_tag, winning_tag) = (tag_of("SIP/2.0 183"), tag_of("SIP/2.0 200"));
    assert_ne!(losing_tag, winning_tag);
    let calls = relay_calls(scene.node.media_ng_address());
    assert_eq!(calls.len(), 1, "{calls:?}");
    let tags: Vec<&str> = calls[0].1.parties.iter().map(|p| p.tag.as_str()).collect();
    assert!(tags.contains(&winning_tag.as_str()), "{tags:?}");
    assert!(!tags.contains(&losing_tag.as_str()), "{tags:?}");
}
