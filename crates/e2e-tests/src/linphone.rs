//! linphonec (Debian `linphone-cli`, liblinphone 5.1) as a stock phone. It reads its account
//! from a configuration file (`-c`), as the desktop linphone stores it after a user typed in
//! identity, proxy and password; commands (`status register`, `quit`) go to its stdin, which
//! it reads line by line when it is not a terminal. Its debug log (`-d 6 -l`) holds every SIP
//! message and each account state change
//! (`moving from state [LinphoneRegistrationProgress] to [LinphoneRegistrationOk]`).
//!
//! liblinphone watches the network: with no default route it declares the network down and
//! drops its registration after a few seconds, so run it where a default route exists (as in
//! [`crate::LanLab`]'s phone namespaces).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// One account as a user types it in.
#[derive(Debug, Clone)]
pub struct LinphoneAccount<'a> {
    /// SIP username (and digest username).
    pub username: &'a str,
    /// SIP password.
    pub password: &'a str,
    /// SIP domain (the identity's host part).
    pub domain: &'a str,
    /// The proxy/registrar every request goes to.
    pub proxy: SocketAddr,
    /// Local SIP port (UDP).
    pub local_port: u16,
}

/// A running linphonec; killed when dropped.
#[derive(Debug)]
pub struct Linphonec {
    directory: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

impl Linphonec {
    /// Write the configuration into `directory` (also linphone's HOME) and start linphonec,
    /// inside `netns` when given.
    pub fn start(
        directory: &Path,
        account: &LinphoneAccount<'_>,
        netns: Option<&str>,
    ) -> anyhow::Result<Self> {
        // liblinphone keeps its call history database here and complains when it is missing.
        std::fs::create_dir_all(directory.join(".local/share/linphone"))?;
        let config = format!(
            "[sip]\n\
             sip_port={port}\n\
             default_proxy=0\n\
             \n[proxy_0]\n\
             reg_proxy=<sip:{proxy};transport=udp>\n\
             reg_identity=sip:{user}@{domain}\n\
             reg_expires=3600\n\
             reg_sendregister=1\n\
             \n[auth_info_0]\n\
             username={user}\n\
             passwd={password}\n\
             domain={domain}\n",
            port = account.local_port,
            proxy = account.proxy,
            user = account.username,
            domain = account.domain,
            password = account.password,
        );
        let config_path = directory.join("linphonerc");
        std::fs::write(&config_path, config)?;
        let mut command = match netns {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace, "linphonec"]);
                command
            }
            None => Command::new("linphonec"),
        };
        let mut child = command
            .arg("-c")
            .arg(&config_path)
            .args(["-d", "6", "-l"])
            .arg(directory.join("linphone.log"))
            .current_dir(directory)
            .env("HOME", directory)
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(directory.join("linphonec.out"))?)
            .stderr(std::fs::File::create(directory.join("linphonec.err"))?)
            .spawn()
            .context("starting linphonec (Debian package linphone-cli)")?;
        let stdin = child.stdin.take();
        Ok(Self {
            directory: directory.to_owned(),
            child: Some(child),
            stdin,
        })
    }

    /// liblinphone's debug log so far (SIP messages, state changes).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory.join("linphone.log")).unwrap_or_default()
    }

    /// What linphonec printed on stdout so far (its answers to commands).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.directory.join("linphonec.out")).unwrap_or_default()
    }

    /// Send one command line (e.g. `status register`).
    pub fn command(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("linphonec's stdin is closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Wait until the account reached `LinphoneRegistrationOk`; fail at once when it reached
    /// `LinphoneRegistrationFailed` or linphonec exited.
    pub fn wait_registered(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log();
            if log.contains("to [LinphoneRegistrationOk]") {
                return Ok(());
            }
            if log.contains("to [LinphoneRegistrationFailed]") {
                bail!("linphone's registration failed:\n{}", self.report());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!("linphonec exited ({status}):\n{}", self.report());
            }
            if Instant::now() > deadline {
                bail!(
                    "linphone did not register within {limit:?}:\n{}",
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until stdout has a line containing `needle`.
    pub fn wait_for_output(&self, needle: &str, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while !self.output().lines().any(|line| line.contains(needle)) {
            if Instant::now() > deadline {
                bail!(
                    "linphonec did not print `{needle}` within {limit:?}:\n{}",
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// stdout, stderr and the debug log, for an assertion message.
    pub fn report(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}\n--- log\n{}",
            self.output(),
            std::fs::read_to_string(self.directory.join("linphonec.err")).unwrap_or_default(),
            self.log()
        )
    }
}

impl Drop for Linphonec {
    fn drop(&mut self) {
        // `ip netns exec` execs linphonec, so the child is linphonec itself.
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
