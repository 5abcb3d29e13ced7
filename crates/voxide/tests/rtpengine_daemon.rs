//! Compatibility: voxide's proxy drives Debian's rtpengine daemon (userspace, `--table=-1`).
//!
//! `voxide up` runs with `[proxy] media_relay` pointing at rtpengine's ng port; two baresip
//! phones register and call each other. rtpengine listens on its own loopback address
//! (127.0.0.12), which the phones can only learn from SDP it rewrote: rtpengine's own session
//! list and packet counters (read with Debian's `rtpengine-ctl`) show the call and its media,
//! both phones hear the other's tone, and the BYE's delete ends the session.
//!
//! Needs `/usr/bin/rtpengine` and `/usr/bin/rtpengine-ctl` (`rtpengine-daemon`) and baresip;
//! scripts/test installs them.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{
    Baresip, BaresipAccount, Scene, TEST_DOMAIN, free_tcp_and_udp_port, free_udp_port,
};

const VOXIDE: &str = env!("CARGO_BIN_EXE_voxide");
const RTPENGINE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);
const CALL_SECONDS: u32 = 6;

fn require(path: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(path);
    assert!(
        path.exists(),
        "{} is not installed: `apt-get install {package}` (scripts/test installs it)",
        path.display()
    );
    path
}

/// A run of free UDP ports on `ip` below the ephemeral range.
fn free_port_range(ip: Ipv4Addr, mut base: u16, count: u16) -> u16 {
    loop {
        if (base..base + count).all(|port| UdpSocket::bind((ip, port)).is_ok()) {
            return base;
        }
        base += count;
        assert!(base < 32_000, "no free port range below 32000");
    }
}

/// Debian's rtpengine, stopped by its pid when dropped.
struct Rtpengine {
    child: Child,
    ng: SocketAddr,
    cli: SocketAddr,
    /// Media ports rtpengine hands out.
    ports: std::ops::Range<u16>,
    log: PathBuf,
}

impl Rtpengine {
    fn start(directory: &std::path::Path) -> Self {
        let binary = require("/usr/bin/rtpengine", "rtpengine-daemon");
        require("/usr/bin/rtpengine-ctl", "rtpengine-daemon");
        let ng = SocketAddr::from((RTPENGINE_IP, free_udp_port().unwrap()));
        let cli = SocketAddr::from((RTPENGINE_IP, free_tcp_and_udp_port().unwrap()));
        let ports = free_port_range(RTPENGINE_IP, 29_000, 100);
        let log = directory.join("rtpengine.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .args([
                "--config-file=none",
                "--table=-1",
                &format!("--interface={RTPENGINE_IP}"),
                &format!("--listen-ng={ng}"),
                &format!("--listen-cli={cli}"),
                &format!("--port-min={ports}"),
                &format!("--port-max={}", ports + 99),
                "--foreground",
                "--log-stderr",
                "--log-level=6",
                "--delete-delay=0",
            ])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start rtpengine");
        let daemon = Rtpengine {
            child,
            ng,
            cli,
            ports: ports..ports + 100,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !daemon
            .ctl(&["list", "numsessions"])
            .contains("Current sessions own")
        {
            assert!(
                Instant::now() < deadline,
                "rtpengine did not start:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Output of `rtpengine-ctl <args>` against this daemon.
    fn ctl(&self, args: &[&str]) -> String {
        let output = Command::new("/usr/bin/rtpengine-ctl")
            .args([
                "-ip",
                &self.cli.ip().to_string(),
                "-port",
                &self.cli.port().to_string(),
            ])
            .args(args)
            .output()
            .expect("run rtpengine-ctl");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A number from `rtpengine-ctl list …` output: the value after `label`.
    fn figure(&self, args: &[&str], label: &str) -> Option<u64> {
        self.ctl(args).lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == label).then(|| value.trim().parse().ok())?
        })
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn account<'a>(scene: &'a Scene, username: &'a str) -> BaresipAccount<'a> {
    BaresipAccount {
        username,
        password: &scene.subscriber(username).password,
        domain: TEST_DOMAIN,
        outbound: scene.node.sip_address(),
        transport: "udp",
        local: SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port().unwrap())),
    }
}

fn carries_a_tone(samples: &[i16]) -> bool {
    samples.iter().filter(|s| s.unsigned_abs() > 1000).count() > 2000
}

#[test]
fn voxide_proxy_drives_rtpengine_daemon_and_the_call_has_audio() {
    let mut scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let directory = scene.node.directory().to_owned();
    let rtpengine = Rtpengine::start(&directory);

    // Point the proxy at rtpengine instead of the node's own relay.
    scene.node.terminate().unwrap();
    let config = std::fs::read_to_string(scene.node.config_path()).unwrap();
    assert!(config.contains("\n[proxy]\n"), "{config}");
    let config = config.replace(
        "\n[proxy]\n",
        &format!("\n[proxy]\nmedia_relay = \"{}\"\n", rtpengine.ng),
    );
    std::fs::write(scene.node.config_path(), config).unwrap();
    scene.node.restart().unwrap();
    scene
        .node
        .wait_for_log(
            &["served domains updated", "count=1"],
            Duration::from_secs(10),
        )
        .unwrap();

    let bob = Baresip::start(
        &directory.join("bob"),
        &account(&scene, "bob"),
        &[],
        Some(60),
    )
    .unwrap();
    bob.wait_for_log(
        &format!("bob@{TEST_DOMAIN}: {{0/UDP/v4}} 200 OK"),
        Duration::from_secs(15),
    )
    .unwrap();
    let mut alice = Baresip::start(
        &directory.join("alice"),
        &account(&scene, "alice"),
        &[&format!("/dial sip:bob@{TEST_DOMAIN}")],
        Some(CALL_SECONDS),
    )
    .unwrap();

    // During the call: rtpengine owns one session and relays its media.
    if let Err(error) = alice.wait_for_log("Call established", Duration::from_secs(15)) {
        panic!(
            "{error:#}\nvoxide:\n{}\nrtpengine:\n{}",
            scene.node.log(),
            rtpengine.log()
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        rtpengine.figure(&["list", "numsessions"], "Current sessions own"),
        Some(1),
        "rtpengine holds the call:\n{}",
        rtpengine.ctl(&["list", "sessions", "all"])
    );
    let rate = rtpengine
        .figure(&["list", "totals"], "Packets per second (userspace)")
        .unwrap_or(0);
    assert!(
        rate > 0,
        "rtpengine relays the call's RTP:\n{}",
        rtpengine.ctl(&["list", "totals"])
    );

    alice
        .wait(Duration::from_secs(u64::from(CALL_SECONDS) + 20))
        .unwrap();
    if let Err(error) = bob.wait_for_log("terminated (duration", Duration::from_secs(15)) {
        panic!("{error:#}\nalice:\n{}", alice.log());
    }
    // Both phones were sent to rtpengine by the SDP they got: their RTP comes from its
    // address and ports, never from the other phone.
    for (name, phone) in [("alice", &alice), ("bob", &bob)] {
        let log = phone.log();
        let source = log
            .lines()
            .find_map(|line| line.split("established, receiving from ").nth(1))
            .and_then(|address| address.trim().parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("{name} received no RTP:\n{log}"));
        assert_eq!(source.ip(), RTPENGINE_IP, "{name} hears rtpengine:\n{log}");
        assert!(
            rtpengine.ports.contains(&source.port()),
            "{name} hears a port of rtpengine's range {:?}: {source}",
            rtpengine.ports
        );

        let heard = phone.received_audio().unwrap();
        assert!(
            carries_a_tone(&heard),
            "{name} received {} samples without a tone\n{}",
            heard.len(),
            log
        );
    }

    // The BYE made the proxy delete the session (rtpengine runs with --delete-delay=0).
    let deadline = Instant::now() + Duration::from_secs(5);
    while rtpengine.figure(&["list", "numsessions"], "Current sessions own") != Some(0) {
        assert!(
            Instant::now() < deadline,
            "rtpengine still holds the call after the BYE:\n{}\nvoxide:\n{}",
            rtpengine.ctl(&["list", "sessions", "all"]),
            scene.node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        rtpengine.figure(&["list", "totals"], "Total managed sessions"),
        Some(1)
    );
    assert_eq!(
        rtpengine.figure(&["list", "totals"], "Total regular terminated sessions"),
        Some(1)
    );
}
