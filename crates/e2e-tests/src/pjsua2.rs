//! PJSUA2 (pjsip 2.15, Python package `pjsua2-python`) as a stock phone: the driver
//! `crates/e2e-tests/phones/pjsua2_register.py` registers one account with pjsip's defaults
//! and says how it went; pjsip's log holds every SIP message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The driver script.
pub fn register_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("phones/pjsua2_register.py")
}

/// One account as a user types it into a phone.
#[derive(Debug, Clone)]
pub struct Pjsua2Account<'a> {
    /// SIP username (and digest username).
    pub username: &'a str,
    /// SIP password.
    pub password: &'a str,
    /// SIP domain (the identity's host part).
    pub domain: &'a str,
    /// The registrar's address (`sip:<ip>:<port>` is what REGISTER is sent to).
    pub registrar: SocketAddr,
    /// Local SIP address (UDP).
    pub local: SocketAddr,
    /// Network namespace to run in (`ip netns exec`).
    pub netns: Option<&'a str>,
}

/// How one registration went.
#[derive(Debug)]
pub struct Pjsua2Registration {
    /// Exit code of the driver (0: registered).
    pub code: Option<i32>,
    /// What the driver printed (`registered: 200 OK`, `registration failed: …`).
    pub stdout: String,
    /// Its standard error (Python errors).
    pub stderr: String,
    /// pjsip's log at level 5, SIP messages included.
    pub log: String,
}

impl Pjsua2Registration {
    /// Whether the registrar accepted the registration.
    pub fn registered(&self) -> bool {
        self.code == Some(0)
            && self
                .stdout
                .lines()
                .any(|line| line.starts_with("registered: 2"))
    }

    /// A report for an assertion message.
    pub fn report(&self) -> String {
        format!(
            "pjsua2 exit {:?}\n--- stdout\n{}\n--- stderr\n{}\n--- pjsip log\n{}",
            self.code, self.stdout, self.stderr, self.log
        )
    }
}

/// Register `account` once (the driver gives up after 20 s), writing pjsip's log to
/// `log_directory/pjsua2-<tag>.log`.
pub fn register(
    account: &Pjsua2Account<'_>,
    log_directory: &Path,
    tag: &str,
) -> anyhow::Result<Pjsua2Registration> {
    let log = log_directory.join(format!("pjsua2-{tag}.log"));
    let stdout = log_directory.join(format!("pjsua2-{tag}.stdout"));
    let stderr = log_directory.join(format!("pjsua2-{tag}.stderr"));
    let mut command = match account.netns {
        Some(namespace) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", namespace, "python3"]);
            command
        }
        None => Command::new("python3"),
    };
    let registrar = format!("sip:{}", account.registrar);
    let mut child = command
        .arg(register_script())
        .args(["--local-ip", &account.local.ip().to_string()])
        .args(["--local-port", &account.local.port().to_string()])
        .args(["--registrar", &registrar])
        .args(["--domain", account.domain])
        .args(["--user", account.username])
        .args(["--password", account.password])
        .args(["--timeout", "20"])
        .arg("--log")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout)?)
        .stderr(std::fs::File::create(&stderr)?)
        .spawn()
        .context("starting python3 with pjsua2 (pip package pjsua2-python)")?;
    // The driver stops itself; this is the safety net.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            bail!(
                "the pjsua2 driver still ran after 60 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    Ok(Pjsua2Registration {
        code: status.code(),
        stdout: read(&stdout),
        stderr: read(&stderr),
        log: read(&log),
    })
}
