//! A real `voxide` process on free ports with its own data directory.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::ports::{free_tcp_and_udp_port, free_udp_port};

/// How long a node may take to print `ready`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The ports one node listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePorts {
    /// Address the LB's public listeners bind to (127.0.0.1 unless a test needs another).
    pub public_ip: IpAddr,
    /// Provisioning API (plain HTTP on 127.0.0.1).
    pub api: u16,
    /// Public SIP, UDP and TCP.
    pub sip: u16,
    /// Public SIP over TLS.
    pub sip_tls: u16,
    /// LB's internal UDP socket.
    pub lb_internal: u16,
    /// Proxy's UDP socket.
    pub proxy: u16,
    /// Digest algorithms the proxy offers (`proxy.digest_algorithms`); empty: the product's
    /// default (MD5 alone, the only one SIPp 3.6 and baresip 1.0 answer).
    pub digest_algorithms: &'static [&'static str],
    /// The media relay's ng control port (on 127.0.0.1).
    pub media_ng: u16,
    /// Address the relay's RTP sockets bind to and SDP names; `None`: `public_ip`.
    pub media_ip: Option<IpAddr>,
    /// `media.timeout_seconds`: a call without media for this long is ended.
    pub media_timeout_seconds: u64,
    /// `proxy.media_check_seconds`: how often the proxy asks the relay about its calls.
    pub media_check_seconds: u64,
    /// `proxy.media_relay`: another ng relay (e.g. rtpengine) instead of the node's own.
    pub media_relay: Option<SocketAddr>,
    /// `media.kernel_forwarding`.
    pub media_kernel_forwarding: bool,
}

impl NodePorts {
    /// Free ports on 127.0.0.1.
    pub fn free() -> anyhow::Result<Self> {
        Ok(Self {
            public_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            api: free_tcp_and_udp_port()?,
            sip: free_tcp_and_udp_port()?,
            sip_tls: free_tcp_and_udp_port()?,
            lb_internal: free_udp_port()?,
            proxy: free_udp_port()?,
            digest_algorithms: &[],
            media_ng: free_udp_port()?,
            media_ip: None,
            media_timeout_seconds: 60,
            media_check_seconds: 5,
            media_relay: None,
            media_kernel_forwarding: true,
        })
    }
}

/// A running (or stopped) `voxide up` with its temporary directory. Dropping it kills the
/// process and removes the directory.
#[derive(Debug)]
pub struct Node {
    binary: PathBuf,
    directory: tempfile::TempDir,
    /// The ports in the node's configuration.
    pub ports: NodePorts,
    /// The first administrator's password (passed as `VOXIDE_ADMIN_PASSWORD`).
    pub admin_password: String,
    child: Option<Child>,
    runs: u32,
}

impl Node {
    /// Write a configuration on free loopback ports and start `binary up`.
    pub fn start(binary: impl Into<PathBuf>) -> anyhow::Result<Self> {
        Self::start_with_ports(binary, NodePorts::free()?)
    }

    /// Start with the given ports.
    pub fn start_with_ports(binary: impl Into<PathBuf>, ports: NodePorts) -> anyhow::Result<Self> {
        // VOXIDE_E2E_KEEP=1 keeps config, logs and SIPp traces for a post-mortem.
        let keep = std::env::var("VOXIDE_E2E_KEEP").is_ok_and(|value| value == "1");
        let directory = tempfile::Builder::new()
            .prefix("voxide-e2e-")
            .disable_cleanup(keep)
            .tempdir()?;
        let mut node = Self {
            binary: binary.into(),
            directory,
            ports,
            admin_password: "e2e-admin-secret".to_owned(),
            child: None,
            runs: 0,
        };
        std::fs::write(node.config_path(), node.config_text())?;
        node.spawn()?;
        Ok(node)
    }

    /// The configuration file the node runs with.
    pub fn config_path(&self) -> PathBuf {
        self.directory.path().join("voxide.toml")
    }

    /// The temporary directory (config, data dir, logs).
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    fn config_text(&self) -> String {
        let ports = &self.ports;
        let ip = ports.public_ip;
        format!(
            "data_dir = \"{data}\"\n\
             \n[api]\nlisten = \"127.0.0.1:{api}\"\ntls = \"plain\"\n\
             \n[lb]\nudp_listen = \"{ip}:{sip}\"\ntcp_listen = \"{ip}:{sip}\"\n\
             tls_listen = \"{ip}:{tls}\"\ninternal_listen = \"127.0.0.1:{internal}\"\n\
             proxy = \"127.0.0.1:{proxy}\"\n\
             \n[media]\nng_listen = \"127.0.0.1:{media_ng}\"\naddress = \"{media_ip}\"\n\
             timeout_seconds = {media_timeout}\ndelete_delay_seconds = 30\n\
             kernel_forwarding = {kernel_forwarding}\n\
             \n[proxy]\nlisten = \"127.0.0.1:{proxy}\"\ntrusted_lb = [\"127.0.0.1\"]\n\
             {algorithms}media_check_seconds = {media_check}\n{media_relay}",
            data = self.directory.path().join("data").display(),
            api = ports.api,
            sip = ports.sip,
            tls = ports.sip_tls,
            internal = ports.lb_internal,
            proxy = ports.proxy,
            media_ng = ports.media_ng,
            media_ip = ports.media_ip.unwrap_or(ip),
            media_timeout = ports.media_timeout_seconds,
            kernel_forwarding = ports.media_kernel_forwarding,
            media_check = ports.media_check_seconds,
            media_relay = ports
                .media_relay
                .map(|relay| format!("media_relay = \"{relay}\"\n"))
                .unwrap_or_default(),
            algorithms = if ports.digest_algorithms.is_empty() {
                String::new()
            } else {
                let names: Vec<String> = ports
                    .digest_algorithms
                    .iter()
                    .map(|name| format!("\"{name}\""))
                    .collect();
                format!("digest_algorithms = [{}]\n", names.join(", "))
            },
        )
    }

    fn log_path(&self) -> PathBuf {
        self.directory
            .path()
            .join(format!("voxide-{}.log", self.runs))
    }

    /// Start the process and wait until it prints `ready`.
    fn spawn(&mut self) -> anyhow::Result<()> {
        self.runs += 1;
        let log = File::create(self.log_path())?;
        let child = Command::new(&self.binary)
            .arg("up")
            .arg("--config")
            .arg(self.config_path())
            .env("VOXIDE_ADMIN_PASSWORD", &self.admin_password)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        let log_path = self.log_path();
        wait_until_ready(&mut self.child, &log_path, "voxide up")
    }

    /// What the current run wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Wait until the current run's log has a line containing every one of `parts`.
    pub fn wait_for_log(&self, parts: &[&str], limit: Duration) -> anyhow::Result<()> {
        wait_for_log_line(&self.log_path(), parts, limit)
    }

    /// Kill the process with SIGKILL (no chance to flush or say goodbye) and reap it.
    pub fn kill_hard(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("the node is not running");
        };
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", child.id());
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                bail!(
                    "voxide ignored SIGTERM for {STOP_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start the process again with the same configuration and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("the node is still running");
        }
        self.spawn()
    }

    /// The LB's public UDP/TCP address.
    pub fn sip_address(&self) -> SocketAddr {
        SocketAddr::new(self.ports.public_ip, self.ports.sip)
    }

    /// A REST client logged in as the first administrator.
    pub fn provisioning(&self) -> anyhow::Result<crate::Provisioning> {
        crate::Provisioning::new(&self.api_url(), store_admin_login(), &self.admin_password)
    }

    /// The media relay's ng control address.
    pub fn media_ng_address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.media_ng))
    }

    /// The address the media relay advertises in SDP.
    pub fn media_ip(&self) -> IpAddr {
        self.ports.media_ip.unwrap_or(self.ports.public_ip)
    }

    /// The node's SQLite database URL (for reading what it wrote, e.g. accounting).
    pub fn database_url(&self) -> String {
        format!(
            "sqlite://{}?mode=rw",
            self.directory
                .path()
                .join("data")
                .join("voxide.db")
                .display()
        )
    }

    /// Base URL of the provisioning API, e.g. `http://127.0.0.1:4711`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.api)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The login `voxide up` gives the first administrator.
fn store_admin_login() -> &'static str {
    "administrator"
}

/// One component run alone (`voxide lb`, `voxide proxy`, …) against a node's configuration,
/// as a split deployment runs them. Killed when dropped.
#[derive(Debug)]
pub struct Component {
    child: Option<Child>,
    log_path: PathBuf,
}

impl Component {
    /// Start `binary <subcommand> --config <node's config>` and wait for `ready`.
    pub fn start(binary: &Path, subcommand: &str, node: &Node) -> anyhow::Result<Self> {
        let log_path = node.directory().join(format!("voxide-{subcommand}.log"));
        let child = Command::new(binary)
            .arg(subcommand)
            .arg("--config")
            .arg(node.config_path())
            .env("VOXIDE_ADMIN_PASSWORD", &node.admin_password)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log_path)?)
            .spawn()
            .with_context(|| format!("starting {} {subcommand}", binary.display()))?;
        let mut component = Self {
            child: Some(child),
            log_path,
        };
        wait_until_ready(
            &mut component.child,
            &component.log_path,
            &format!("voxide {subcommand}"),
        )?;
        Ok(component)
    }

    /// What the component wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until the process in `child` writes a line `ready` to `log`; fails with the log when
/// it exits first (then `child` is `None`) or takes longer than the start-up limit.
pub(crate) fn wait_until_ready(
    child: &mut Option<Child>,
    log: &Path,
    what: &str,
) -> anyhow::Result<()> {
    let read = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if read().lines().any(|line| line == "ready") {
            return Ok(());
        }
        if let Some(status) = child
            .as_mut()
            .and_then(|process| process.try_wait().ok().flatten())
        {
            *child = None;
            bail!("{what} exited during start-up ({status}):\n{}", read());
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not print `ready` within {START_TIMEOUT:?}:\n{}",
                read()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the file at `log` has a line containing every one of `parts`.
pub(crate) fn wait_for_log_line(log: &Path, parts: &[&str], limit: Duration) -> anyhow::Result<()> {
    let read = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + limit;
    loop {
        if read()
            .lines()
            .any(|line| parts.iter().all(|part| line.contains(part)))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no log line with {parts:?} within {limit:?}:\n{}", read());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
