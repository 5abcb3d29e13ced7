//! baresip (Debian `baresip-core`) as a real phone without a sound card: a 440 Hz sine
//! (`ausine`) is what it says, the `aubridge` device is its loudspeaker, and the `sndfile`
//! filter writes what it sent and what it received (decoded) to WAV files, so a test can
//! tell that audio arrived.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// One baresip user agent with its own configuration directory.
#[derive(Debug)]
pub struct Baresip {
    directory: PathBuf,
    child: Option<Child>,
}

/// What one baresip instance is.
#[derive(Debug, Clone)]
pub struct BaresipAccount<'a> {
    /// SIP username (and digest username).
    pub username: &'a str,
    /// SIP password.
    pub password: &'a str,
    /// SIP domain.
    pub domain: &'a str,
    /// Where every request goes (the LB), written as the account's outbound proxy.
    pub outbound: SocketAddr,
    /// Transport towards the outbound proxy: `udp`, `tcp` or `tls`.
    pub transport: &'a str,
    /// Local SIP address.
    pub local: SocketAddr,
}

impl Baresip {
    /// Write the configuration into `directory` and start baresip there. `commands` run at
    /// start-up (`-e`); `quit_after` makes it hang up and exit after that many seconds.
    pub fn start(
        directory: &Path,
        account: &BaresipAccount<'_>,
        commands: &[&str],
        quit_after: Option<u32>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(directory.join("audio"))?;
        let local_ip = account.local.ip();
        // ausine only produces 48 kHz stereo; baresip resamples to the codec's 8 kHz mono.
        let config = format!(
            "poll_method epoll\n\
             net_interface {local_ip}\n\
             sip_listen {local}\n\
             audio_player aubridge,nil\n\
             audio_alert aubridge,nil\n\
             audio_source ausine,440\n\
             ausrc_srate 48000\nauplay_srate 48000\n\
             ausrc_channels 2\nauplay_channels 2\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule ausine.so\nmodule aubridge.so\nmodule sndfile.so\n\
             module_app account.so\nmodule_app menu.so\n\
             snd_path {audio}\n",
            local = account.local,
            audio = directory.join("audio").display(),
        );
        std::fs::write(directory.join("config"), config)?;
        let accounts = format!(
            "<sip:{user}@{domain}>;auth_pass={password};\
             outbound=\"sip:{outbound};transport={transport}\";\
             answermode=auto;regint=600;audio_codecs=PCMU\n",
            user = account.username,
            domain = account.domain,
            password = account.password,
            outbound = account.outbound,
            transport = account.transport,
        );
        std::fs::write(directory.join("accounts"), accounts)?;
        let mut command = Command::new("baresip");
        command.arg("-f").arg(directory);
        for line in commands {
            command.arg("-e").arg(line);
        }
        if let Some(seconds) = quit_after {
            command.arg("-t").arg(seconds.to_string());
        }
        let log = std::fs::File::create(directory.join("baresip.log"))?;
        let child = command
            .current_dir(directory)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting baresip (Debian package baresip-core)")?;
        Ok(Self {
            directory: directory.to_owned(),
            child: Some(child),
        })
    }

    /// What baresip printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory.join("baresip.log")).unwrap_or_default()
    }

    /// Wait until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            if Instant::now() > deadline {
                bail!(
                    "baresip did not log `{needle}` within {limit:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Wait until the process exits on its own (`quit_after`).
    pub fn wait(&mut self, limit: Duration) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let deadline = Instant::now() + limit;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("baresip still runs after {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = None;
        Ok(())
    }

    /// The decoded audio received in the call (16-bit samples of the `sndfile` dump).
    pub fn received_audio(&self) -> anyhow::Result<Vec<i16>> {
        let mut dumps = Vec::new();
        for entry in std::fs::read_dir(self.directory.join("audio"))? {
            let path = entry?.path();
            if path.to_string_lossy().ends_with("-dec.wav") {
                dumps.push(path);
            }
        }
        let [dump] = dumps.as_slice() else {
            bail!("expected one decoded-audio dump, found {dumps:?}");
        };
        wav_samples(&std::fs::read(dump)?).with_context(|| format!("reading {}", dump.display()))
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The 16-bit PCM samples of a RIFF/WAVE file (the `data` chunk).
pub fn wav_samples(bytes: &[u8]) -> anyhow::Result<Vec<i16>> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        bail!("not a RIFF/WAVE file");
    }
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        let body = at + 8;
        // A dump cut short by a kill declares more than is there: take what is.
        let end = body.saturating_add(size as usize).min(bytes.len());
        if id == b"data" {
            return Ok(bytes[body..end]
                .chunks_exact(2)
                .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
                .collect());
        }
        at = end + (size as usize & 1);
    }
    bail!("no data chunk")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(data: &[i16], declared: Option<u32>) -> Vec<u8> {
        let mut bytes = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        bytes.extend(16u32.to_le_bytes());
        bytes.extend([1, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 16, 0]);
        bytes.extend(b"data");
        let size = declared.unwrap_or(data.len() as u32 * 2);
        bytes.extend(size.to_le_bytes());
        for sample in data {
            bytes.extend(sample.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn samples_come_from_the_data_chunk() {
        assert_eq!(
            wav_samples(&wav(&[1, -2, 300], None)).unwrap(),
            vec![1, -2, 300]
        );
    }

    #[test]
    fn a_truncated_dump_gives_what_is_there() {
        assert_eq!(wav_samples(&wav(&[5, 6], Some(1000))).unwrap(), vec![5, 6]);
    }

    #[test]
    fn other_files_are_refused() {
        assert!(wav_samples(b"RIFX").is_err());
        assert!(wav_samples(b"RIFF\0\0\0\0WAVEjunk\x04\0\0\0abcd").is_err());
    }
}
