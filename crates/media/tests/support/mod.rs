//! Shared by the rtpengine compatibility tests: a blocking ng client, Debian's rtpengine daemon
//! on free loopback ports, and free port ranges.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ng_protocol::bencode::{Value, decode};
use ng_protocol::{frame_request, split_message};

/// A blocking ng client on its own socket; cookies are unique per client.
pub struct NgClient {
    socket: UdpSocket,
    server: SocketAddr,
    prefix: String,
    next: u32,
}

impl NgClient {
    pub fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let prefix = format!(
            "t{}_{}",
            std::process::id(),
            socket.local_addr().unwrap().port()
        );
        NgClient {
            socket,
            server,
            prefix,
            next: 0,
        }
    }

    /// Sends `request` (retrying like Kamailio on silence) and returns the reply dictionary,
    /// or `None` when the server never answered.
    pub fn try_call(&mut self, request: &Value<'_>) -> Option<Value<'static>> {
        self.next += 1;
        let cookie = format!("{}_{}", self.prefix, self.next);
        let datagram = frame_request(cookie.as_bytes(), request);
        let mut buffer = vec![0_u8; 65_535];
        for _ in 0..3 {
            self.socket.send_to(&datagram, self.server).unwrap();
            while let Ok(len) = self.socket.recv(&mut buffer) {
                if let Ok(reply) = split_message(&buffer[..len])
                    && reply.cookie == cookie.as_bytes()
                {
                    return Some(decode(reply.payload).expect("bencoded reply").into_owned());
                }
            }
        }
        None
    }

    pub fn call(&mut self, request: &Value<'_>) -> Value<'static> {
        self.try_call(request)
            .unwrap_or_else(|| panic!("no ng reply from {}", self.server))
    }
}

pub fn dict(entries: Vec<(&'static str, Value<'static>)>) -> Value<'static> {
    Value::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().into(), v))
            .collect(),
    )
}

pub fn s(text: &str) -> Value<'static> {
    Value::string(text.to_owned())
}

pub fn list(items: &[&str]) -> Value<'static> {
    Value::List(items.iter().map(|item| s(item)).collect())
}

pub fn text(reply: &Value<'_>, key: &str) -> String {
    reply
        .get(key)
        .and_then(Value::as_bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// A run of `count` free UDP ports from `base` up (even start), below the kernel's ephemeral
/// range so other programs' port-0 binds do not land in it. Ranges of parallel tests must not
/// overlap: each test passes its own `base`.
pub fn free_port_range(mut base: u16, count: u16) -> u16 {
    base += base % 2;
    loop {
        let all_free =
            (base..base + count).all(|port| UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok());
        if all_free {
            return base;
        }
        base += count + count % 2;
        assert!(base < 32_000, "no free port range below 32000");
    }
}

/// Finds an installed program or fails with the Debian package to install.
pub fn require_program(path: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(path);
    assert!(
        path.exists(),
        "{} is not installed: `apt-get install {package}` (scripts/test installs it)",
        path.display()
    );
    path
}

/// Debian's rtpengine daemon in userspace mode on loopback, stopped (by its pid) on drop.
pub struct Rtpengine {
    child: Child,
    pub ng: SocketAddr,
    log: PathBuf,
}

impl Rtpengine {
    /// Starts it with `ports` media ports from `port_base` up.
    pub fn start(port_base: u16, ports: u16) -> Self {
        let binary = require_program("/usr/bin/rtpengine", "rtpengine-daemon");
        let ng_port = {
            let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let ng = SocketAddr::from((Ipv4Addr::LOCALHOST, ng_port));
        let log = std::env::temp_dir().join(format!(
            "voxide-rtpengine-{}-{ng_port}.log",
            std::process::id()
        ));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .args([
                "--config-file=none",
                "--table=-1",
                "--interface=127.0.0.1",
                &format!("--listen-ng={ng}"),
                &format!("--port-min={port_base}"),
                &format!("--port-max={}", port_base + ports - 1),
                "--foreground",
                "--log-stderr",
                "--log-level=6",
                "--delete-delay=0",
                "--num-threads=1",
            ])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start rtpengine");
        let mut daemon = Rtpengine { child, ng, log };
        let mut client = NgClient::new(ng);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(reply) = client.try_call(&dict(vec![("command", s("ping"))])) {
                assert_eq!(text(&reply, "result"), "pong");
                break;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("rtpengine exited ({status}):\n{}", daemon.log());
            }
            assert!(
                Instant::now() < deadline,
                "rtpengine does not answer ping:\n{}",
                daemon.log()
            );
        }
        daemon
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
