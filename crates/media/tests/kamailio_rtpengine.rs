//! Compatibility: Debian's Kamailio with its `rtpengine` module drives voxide's relay.
//!
//! A tiny record-routing stateful Kamailio proxy calls `rtpengine_offer` on the INVITE,
//! `rtpengine_answer` on the 200 and `rtpengine_delete` on the BYE, with its `rtpengine_sock`
//! pointing at voxide's ng port. A SIPp UAC calls a SIPp UAS through it; the SDPs carry the
//! ports of two UDP sockets of this test, which then send RTP through the relay both ways.
//!
//! Needs `/usr/sbin/kamailio` (Debian's `kamailio`) and `/usr/bin/sipp` (`sip-tester`);
//! scripts/test installs both.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use media::{MediaConfig, MediaRelay};
use ng_protocol::bencode::Value;
use support::{NgClient, dict, free_port_range, require_program, s, text};

/// The relay's media address: not the phones' 127.0.0.1, so an SDP naming it can only have
/// come from the relay.
const RELAY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const PACKETS: u16 = 20;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process stopped (by its pid) when dropped, with its output in a file.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(command: &mut Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Process { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the exit and returns whether it succeeded.
    fn wait(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    /// SIGTERM first: Kamailio's main process then stops the worker processes it forked
    /// (SIGKILL would leave them running); SIGKILL after 5 s.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kamailio_config(sip_port: u16, uas_port: u16, ng: SocketAddr) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{sip_port}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "rtpengine.so"
modparam("rtpengine", "rtpengine_sock", "udp:{ng}")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            if (is_method("BYE")) {{
                rtpengine_delete();
            }}
            t_relay();
            exit;
        }}
        if (is_method("ACK") && t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("INVITE")) {{
        record_route();
        if (has_body("application/sdp")) {{
            rtpengine_offer("replace-origin ICE=remove");
        }}
        t_on_reply("MEDIA_ANSWER");
    }}
    rewritehostport("127.0.0.1:{uas_port}");
    t_relay();
}}

onreply_route[MEDIA_ANSWER] {{
    if (has_body("application/sdp")) {{
        rtpengine_answer("replace-origin ICE=remove");
    }}
}}
"#
    )
}

const SDP: &str = "v=0\r\n\
o=user 1 1 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio [rtp_port] RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n";

fn uac_scenario() -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uac with media">
  <send retrans="500">
    <![CDATA[
INVITE sip:bob@127.0.0.1:[remote_port] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:alice@127.0.0.1>;tag=[call_number]a
To: <sip:bob@127.0.0.1>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:alice@127.0.0.1>;tag=[call_number]a
To: <sip:bob@127.0.0.1>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
[routes]
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="4000"/>
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:alice@127.0.0.1>;tag=[call_number]a
To: <sip:bob@127.0.0.1>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
[routes]
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#
    )
}

fn uas_scenario() -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uas with media">
  <recv request="INVITE" rrs="true"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[call_number]b
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:bob@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

{SDP}
    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
</scenario>
"#
    )
}

/// The media endpoint (c= address, first m= port) of the last SDP in a SIPp message log whose
/// message starts with `start`, once it is there.
fn sdp_endpoint_in_log(log: &Path, start: &str, limit: Duration) -> Option<SocketAddr> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let messages = std::fs::read_to_string(log).unwrap_or_default();
        for block in messages.split("message received").skip(1) {
            let body: Vec<&str> = block
                .lines()
                .skip_while(|l| !l.starts_with(start))
                .collect();
            let address = body
                .iter()
                .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))
                .and_then(|a| a.trim().parse::<IpAddr>().ok());
            let port = body
                .iter()
                .find_map(|l| l.trim().strip_prefix("m=audio "))
                .and_then(|m| m.split(' ').next())
                .and_then(|p| p.parse::<u16>().ok());
            if let (Some(address), Some(port)) = (address, port) {
                return Some(SocketAddr::new(address, port));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn rtp_packet(sequence: u16, ssrc: u32) -> Vec<u8> {
    let mut packet = vec![0_u8; 172];
    packet[0] = 0x80;
    packet[2..4].copy_from_slice(&sequence.to_be_bytes());
    packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
    packet
}

/// Sends `PACKETS` RTP packets from `from` to `relay` and returns how many `to` received
/// intact, and from where.
fn relay_packets(
    from: &UdpSocket,
    relay: SocketAddr,
    to: &UdpSocket,
    ssrc: u32,
) -> (u16, Vec<SocketAddr>) {
    for sequence in 0..PACKETS {
        from.send_to(&rtp_packet(sequence, ssrc), relay).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut received = 0;
    let mut sources = Vec::new();
    let mut buffer = [0_u8; 2048];
    while let Ok((len, source)) = to.recv_from(&mut buffer) {
        let sequence = u16::from_be_bytes([buffer[2], buffer[3]]);
        if buffer[..len] == rtp_packet(sequence, ssrc)[..] {
            received += 1;
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
        if received == PACKETS {
            break;
        }
    }
    (received, sources)
}

fn totals(reply: &Value<'_>, kind: &str, counter: &str) -> i64 {
    reply
        .get("totals")
        .and_then(|t| t.get(kind))
        .and_then(|t| t.get(counter))
        .and_then(Value::as_int)
        .unwrap_or(-1)
}

#[test]
fn kamailio_rtpengine_module_drives_the_relay_through_a_sipp_call() {
    let kamailio = require_program("/usr/sbin/kamailio", "kamailio");
    let sipp = require_program("/usr/bin/sipp", "sip-tester");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let relay_ports = free_port_range(28_000, 20);
    let relay = runtime
        .block_on(MediaRelay::start(MediaConfig {
            media_bind_address: IpAddr::V4(RELAY_IP),
            advertised_address: IpAddr::V4(RELAY_IP),
            // as rtpengine --delete-delay=0: the BYE's delete frees the call at once
            delete_delay: Duration::ZERO,
            ..MediaConfig::loopback(relay_ports, relay_ports + 19)
        }))
        .unwrap();
    let relay_range = relay_ports..relay_ports + 20;

    let dir =
        std::env::temp_dir().join(format!("voxide-kamailio-rtpengine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sip_port = free_udp_port();
    let uas_port = free_udp_port();
    let uac_port = free_udp_port();
    let config = dir.join("kamailio.cfg");
    std::fs::write(
        &config,
        kamailio_config(sip_port, uas_port, relay.ng_addr()),
    )
    .unwrap();
    std::fs::write(dir.join("uac.xml"), uac_scenario()).unwrap();
    std::fs::write(dir.join("uas.xml"), uas_scenario()).unwrap();

    let mut proxy = Process::spawn(
        Command::new(&kamailio)
            .arg("-DD")
            .arg("-E")
            .args(["-m", "32", "-M", "8", "-n", "1"])
            .arg("-f")
            .arg(&config)
            .arg("-Y")
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .arg("-w")
            .arg(&dir),
        dir.join("kamailio.log"),
    );
    // Ready once its SIP socket is bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    while UdpSocket::bind(("127.0.0.1", sip_port)).is_ok() {
        assert!(
            proxy.child.try_wait().unwrap().is_none(),
            "kamailio exited:\n{}",
            proxy.log()
        );
        assert!(
            Instant::now() < deadline,
            "kamailio did not start:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The phones' media sockets.
    let a_media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b_media = UdpSocket::bind("127.0.0.1:0").unwrap();
    for socket in [&a_media, &b_media] {
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
    }
    let sipp_command = |scenario: &str, port: u16, media: &UdpSocket, messages: &Path| {
        let mut command = Command::new(&sipp);
        command
            .arg("-sf")
            .arg(dir.join(scenario))
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
            .args(["-timeout", "20", "-timeout_error", "-nostdin", "-trace_msg"])
            .arg("-message_file")
            .arg(messages)
            .args([
                "-key",
                "rtp_port",
                &media.local_addr().unwrap().port().to_string(),
            ]);
        command
    };
    let uas_messages = dir.join("uas_messages.log");
    let uac_messages = dir.join("uac_messages.log");
    let mut uas = Process::spawn(
        &mut sipp_command("uas.xml", uas_port, &b_media, &uas_messages),
        dir.join("uas.log"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut uac = Process::spawn(
        sipp_command("uac.xml", uac_port, &a_media, &uac_messages)
            .arg(format!("127.0.0.1:{sip_port}")),
        dir.join("uac.log"),
    );

    // What each phone was told: the relay's address and a port of its range.
    let limit = Duration::from_secs(5);
    let relay_for_b = sdp_endpoint_in_log(&uas_messages, "INVITE ", limit).unwrap_or_else(|| {
        panic!(
            "the UAS got no INVITE with SDP\nkamailio:\n{}\nuac:\n{}",
            proxy.log(),
            uac.log()
        )
    });
    let relay_for_a = sdp_endpoint_in_log(&uac_messages, "SIP/2.0 200", limit)
        .unwrap_or_else(|| panic!("the UAC got no 200 with SDP\nkamailio:\n{}", proxy.log()));
    for endpoint in [relay_for_a, relay_for_b] {
        assert_eq!(endpoint.ip(), IpAddr::V4(RELAY_IP), "SDP names the relay");
        assert!(
            relay_range.contains(&endpoint.port()),
            "{endpoint} is a relay port ({relay_range:?})"
        );
    }
    assert_ne!(relay_for_a, relay_for_b);

    // RTP both ways through the relay, from the ports the SDPs named.
    let (a_to_b, sources_at_b) = relay_packets(&a_media, relay_for_a, &b_media, 0xa);
    let (b_to_a, sources_at_a) = relay_packets(&b_media, relay_for_b, &a_media, 0xb);
    assert_eq!(a_to_b, PACKETS, "A's RTP reached B through the relay");
    assert_eq!(b_to_a, PACKETS, "B's RTP reached A through the relay");
    assert_eq!(
        sources_at_b,
        vec![relay_for_b],
        "B hears the port it sends to"
    );
    assert_eq!(
        sources_at_a,
        vec![relay_for_a],
        "A hears the port it sends to"
    );

    // The relay counted them, under the Call-ID Kamailio used.
    let mut client = NgClient::new(relay.ng_addr());
    let calls = client.call(&dict(vec![("command", s("list"))]));
    let call_ids: Vec<String> = calls
        .get("calls")
        .and_then(Value::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    assert_eq!(call_ids.len(), 1, "one call: {calls:?}");
    let call_id = call_ids[0].clone();
    let query = client.call(&dict(vec![
        ("command", s("query")),
        ("call-id", s(&call_id)),
    ]));
    assert_eq!(text(&query, "result"), "ok", "{query:?}");
    assert_eq!(
        totals(&query, "RTP", "packets"),
        i64::from(2 * PACKETS),
        "relay counters: {query:?}"
    );

    // BYE: the UAC finishes, and Kamailio's rtpengine_delete removed the call.
    assert!(
        uac.wait(Duration::from_secs(15)),
        "UAC failed:\n{}\nkamailio:\n{}",
        uac.log(),
        proxy.log()
    );
    assert!(
        uas.wait(Duration::from_secs(5)),
        "UAS failed:\n{}",
        uas.log()
    );
    let calls = client.call(&dict(vec![("command", s("list"))]));
    assert_eq!(
        calls.get("calls").and_then(Value::as_list).map(<[_]>::len),
        Some(0),
        "the BYE deleted the call: {calls:?}"
    );
    let query = client.call(&dict(vec![
        ("command", s("query")),
        ("call-id", s(&call_id)),
    ]));
    assert_eq!(text(&query, "result"), "error");
    assert_eq!(text(&query, "error-reason"), "Unknown call-id");

    drop(proxy);
    runtime.block_on(relay.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}
