//! `voxide up` as a new user runs it: no configuration file, every default, inside a network
//! namespace the test owns (so the default ports 5060, 5061, 1443 … are free, and the
//! default-route interface is the one the test built). The working directory is a temporary
//! directory, where the default data directory `./voxide-data` lands.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// The SIP port `voxide up` listens on by default.
pub const DEFAULT_SIP_PORT: u16 = 5060;
/// The provisioning API's default port (HTTPS with a self-signed certificate).
pub const DEFAULT_API_PORT: u16 = 1443;

/// A running `voxide up` without a configuration file; killed when dropped.
#[derive(Debug)]
pub struct DefaultNode {
    binary: PathBuf,
    netns: String,
    directory: tempfile::TempDir,
    child: Option<Child>,
    /// The address phones and the test reach the node at (its LAN address, or 127.0.0.1).
    pub address: IpAddr,
    /// The first administrator's password (passed as `VOXIDE_ADMIN_PASSWORD`).
    pub admin_password: String,
}

impl DefaultNode {
    /// Start `binary up` inside `netns` and wait for `ready`. `address` is where the node is
    /// reached (it is not configured anywhere: the node picks its own addresses).
    pub fn start(binary: impl Into<PathBuf>, netns: &str, address: IpAddr) -> anyhow::Result<Self> {
        let keep = std::env::var("VOXIDE_E2E_KEEP").is_ok_and(|value| value == "1");
        let directory = tempfile::Builder::new()
            .prefix("voxide-default-")
            .disable_cleanup(keep)
            .tempdir()?;
        let binary = binary.into();
        let admin_password = "e2e-default-admin-secret".to_owned();
        let log = File::create(directory.path().join("voxide.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(&binary)
            .arg("up")
            .current_dir(directory.path())
            .env("VOXIDE_ADMIN_PASSWORD", &admin_password)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} up in {netns}", binary.display()))?;
        let mut node = Self {
            binary,
            netns: netns.to_owned(),
            directory,
            child: Some(child),
            address,
            admin_password,
        };
        let log_path = node.directory.path().join("voxide.log");
        crate::node::wait_until_ready(&mut node.child, &log_path, "voxide up")?;
        Ok(node)
    }

    /// The working directory (holds `voxide-data/` and `voxide.log`).
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// The namespace the node runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// What the node wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory.path().join("voxide.log")).unwrap_or_default()
    }

    /// Wait until the log has a line containing every one of `parts`.
    pub fn wait_for_log(&self, parts: &[&str], limit: Duration) -> anyhow::Result<()> {
        crate::node::wait_for_log_line(&self.directory.path().join("voxide.log"), parts, limit)
    }

    /// The public SIP address (UDP and TCP).
    pub fn sip_address(&self) -> SocketAddr {
        SocketAddr::new(self.address, DEFAULT_SIP_PORT)
    }

    /// The provisioning API's base URL, `https://<address>:1443`.
    pub fn api_url(&self) -> String {
        format!(
            "https://{}",
            SocketAddr::new(self.address, DEFAULT_API_PORT)
        )
    }

    /// A REST client logged in as the first administrator (accepting the self-signed
    /// certificate, which names `localhost` only).
    pub fn provisioning(&self) -> anyhow::Result<crate::Provisioning> {
        crate::Provisioning::new(&self.api_url(), "administrator", &self.admin_password)
    }

    /// Run `voxide admin --insecure <arguments>` inside the node's namespace with the
    /// administrator's password in `VOXIDE_API_PASSWORD` and every other setting at its
    /// default (URL `https://127.0.0.1:1443`, user `administrator`); its stdout.
    pub fn admin(&self, arguments: &[&str]) -> anyhow::Result<String> {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .arg(&self.binary)
            .args(["admin", "--insecure"])
            .args(arguments)
            .env("VOXIDE_API_PASSWORD", &self.admin_password)
            .env_remove("VOXIDE_API_URL")
            .env_remove("VOXIDE_API_USER")
            .stdin(Stdio::null())
            .output()
            .context("running voxide admin")?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "voxide admin {arguments:?} failed ({}): {stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(stdout)
    }
}

impl Drop for DefaultNode {
    fn drop(&mut self) {
        // `ip netns exec` execs the program, so the child is voxide itself.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
