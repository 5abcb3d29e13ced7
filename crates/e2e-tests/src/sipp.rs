//! SIPp (Debian `sip-tester`) as a real SIP peer, one process per scenario run.
//!
//! SIPp's exit status says whether every call of the scenario succeeded (0), some failed (1)
//! or it could not even start (negative / 99); its error log names the unexpected message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The directory holding the scenario files.
pub fn scenario_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp")
}

/// The result of one SIPp run.
#[derive(Debug)]
pub struct SippOutcome {
    /// Exit code (0: every call succeeded).
    pub code: Option<i32>,
    /// Unexpected messages and failures (`-trace_err`).
    pub errors: String,
    /// Every message sent and received (`-trace_msg`).
    pub messages: String,
    /// Standard error of the process.
    pub stderr: String,
}

impl SippOutcome {
    /// Whether every call of the scenario ran to its end.
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    /// A report for an assertion message.
    pub fn report(&self) -> String {
        format!(
            "sipp exit {:?}\n--- errors\n{}\n--- stderr\n{}\n--- messages\n{}",
            self.code, self.errors, self.stderr, self.messages
        )
    }
}

/// One SIPp invocation being set up.
#[derive(Debug)]
pub struct Sipp {
    name: String,
    arguments: Vec<String>,
    log_directory: PathBuf,
    netns: Option<String>,
}

impl Sipp {
    /// Run `scenario` (a file in `crates/e2e-tests/sipp/`) once against `remote`, from
    /// `local_ip:local_port`, writing its logs into `log_directory`.
    pub fn new(
        scenario: &str,
        remote: SocketAddr,
        local: SocketAddr,
        log_directory: &Path,
    ) -> Self {
        let name = scenario.trim_end_matches(".xml").to_owned();
        let arguments = vec![
            remote.to_string(),
            "-sf".into(),
            scenario_directory().join(scenario).display().to_string(),
            "-i".into(),
            local.ip().to_string(),
            "-p".into(),
            local.port().to_string(),
            "-m".into(),
            "1".into(),
            "-nostdin".into(),
            // No BYE or CANCEL of SIPp's own when a call fails: the log shows what went wrong.
            "-nd".into(),
            "-timeout".into(),
            "30s".into(),
            "-timeout_error".into(),
            "-max_recv_loops".into(),
            "100".into(),
        ];
        Self {
            name,
            arguments,
            log_directory: log_directory.to_owned(),
            netns: None,
        }
    }

    /// Add arguments (e.g. `["-au", "alice"]`).
    pub fn args<I, S>(mut self, arguments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.arguments.extend(arguments.into_iter().map(Into::into));
        self
    }

    /// Set a scenario keyword (`[name]` in the XML).
    pub fn key(self, name: &str, value: &str) -> Self {
        self.args(["-key", name, value])
    }

    /// Digest credentials; `-auth_uri` is the Request-URI the scenario uses, because SIPp
    /// otherwise digests `sip:remote_ip:remote_port` (RFC 3261 §22.4 wants the Request-URI).
    pub fn credentials(self, username: &str, password: &str, auth_uri: &str) -> Self {
        // SIPp writes `sip:` in front of the value itself.
        let auth_uri = auth_uri.strip_prefix("sip:").unwrap_or(auth_uri);
        self.args(["-au", username, "-ap", password, "-auth_uri", auth_uri])
    }

    /// Run inside the network namespace `name` (`ip netns exec`).
    pub fn in_netns(mut self, name: &str) -> Self {
        self.netns = Some(name.to_owned());
        self
    }

    fn file(&self, kind: &str, tag: &str) -> PathBuf {
        self.log_directory
            .join(format!("{}-{tag}-{kind}.log", self.name))
    }

    /// Start the process; `tag` distinguishes the log files of several runs.
    pub fn spawn(self, tag: &str) -> anyhow::Result<SippProcess> {
        let errors = self.file("errors", tag);
        let messages = self.file("messages", tag);
        let stderr = self.file("stderr", tag);
        let mut command = match &self.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, "sipp"]);
                command
            }
            None => Command::new("sipp"),
        };
        command
            .args(&self.arguments)
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&errors)
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&messages)
            .current_dir(&self.log_directory)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr)?);
        let child = command
            .spawn()
            .context("starting sipp (Debian package sip-tester)")?;
        Ok(SippProcess {
            child: Some(child),
            errors,
            messages,
            stderr,
        })
    }

    /// Run to the end.
    pub fn run(self, tag: &str) -> anyhow::Result<SippOutcome> {
        self.spawn(tag)?.wait(Duration::from_secs(45))
    }
}

/// A SIPp process started with [`Sipp::spawn`]; killed when dropped.
#[derive(Debug)]
pub struct SippProcess {
    child: Option<Child>,
    errors: PathBuf,
    messages: PathBuf,
    stderr: PathBuf,
}

impl SippProcess {
    /// What SIPp's message trace holds so far (`-trace_msg`), while it runs.
    pub fn messages_so_far(&self) -> String {
        std::fs::read_to_string(&self.messages).unwrap_or_default()
    }

    /// Wait until SIPp exits (it stops itself on its `-timeout`; `limit` is the safety net).
    pub fn wait(mut self, limit: Duration) -> anyhow::Result<SippOutcome> {
        let Some(mut child) = self.child.take() else {
            bail!("sipp already reaped");
        };
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                child.kill()?;
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        Ok(SippOutcome {
            code: status.code(),
            errors: read(&self.errors),
            messages: read(&self.messages),
            stderr: read(&self.stderr),
        })
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
