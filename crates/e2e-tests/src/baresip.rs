//! baresip (Debian `baresip-core`) as a real phone without a sound card: a 440 Hz sine
//! (`ausine`) is what it says, the `aubridge` device is its loudspeaker, and the `sndfile`
//! filter writes what it sent and what it received (decoded) to WAV files, so a test can
//! tell that audio arrived.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// What a baresip phone sends and where it runs.
#[derive(Debug, Clone, Copy)]
pub struct BaresipMedia<'a> {
    /// Frequency of the sine it sends.
    pub tone_hz: u32,
    /// Network namespace to run in (`ip netns exec`).
    pub netns: Option<&'a str>,
    /// Local RTP/RTCP port range (`rtp_ports`), so a capture can single the phone out.
    pub rtp_ports: Option<(u16, u16)>,
    /// Print every SIP message sent and received into the log (`-s`), for
    /// [`Baresip::received_sdp_lines`].
    pub sip_trace: bool,
}

impl Default for BaresipMedia<'_> {
    fn default() -> Self {
        Self {
            tone_hz: 440,
            netns: None,
            rtp_ports: None,
            sip_trace: false,
        }
    }
}

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
        Self::start_with(
            directory,
            account,
            commands,
            quit_after,
            &BaresipMedia::default(),
        )
    }

    /// [`Baresip::start`] with the tone, RTP ports and network namespace of `media`.
    pub fn start_with(
        directory: &Path,
        account: &BaresipAccount<'_>,
        commands: &[&str],
        quit_after: Option<u32>,
        media: &BaresipMedia<'_>,
    ) -> anyhow::Result<Self> {
        let BaresipMedia {
            tone_hz,
            netns,
            rtp_ports,
            sip_trace,
        } = *media;
        let rtp_ports = rtp_ports
            .map(|(first, last)| format!("rtp_ports {first}-{last}\n"))
            .unwrap_or_default();
        std::fs::create_dir_all(directory.join("audio"))?;
        let local_ip = account.local.ip();
        // ausine only produces 48 kHz stereo; baresip resamples to the codec's 8 kHz mono.
        let config = format!(
            "poll_method epoll\n\
             net_interface {local_ip}\n\
             sip_listen {local}\n\
             audio_player aubridge,nil\n\
             audio_alert aubridge,nil\n\
             audio_source ausine,{tone_hz}\n\
             ausrc_srate 48000\nauplay_srate 48000\n\
             ausrc_channels 2\nauplay_channels 2\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule ausine.so\nmodule aubridge.so\nmodule sndfile.so\n\
             module_app account.so\nmodule_app menu.so\n\
             snd_path {audio}\n\
             {rtp_ports}",
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
        let mut command = match netns {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace, "baresip"]);
                command
            }
            None => Command::new("baresip"),
        };
        command.arg("-f").arg(directory);
        if sip_trace {
            command.arg("-s");
        }
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

    /// The `o=` and `c=` lines of the SDP bodies the phone received at `local` (its SIP
    /// address), from the trace a phone started with [`BaresipMedia::sip_trace`] prints: each
    /// message follows a line `UDP <source> -> <destination>`.
    pub fn received_sdp_lines(&self, local: SocketAddr) -> Vec<String> {
        received_sdp_lines(&self.log(), local)
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
        Ok(self.received_audio_with_format()?.samples)
    }

    /// The decoded audio received in the call with its sample rate and channel count.
    pub fn received_audio_with_format(&self) -> anyhow::Result<Audio> {
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
        let bytes = std::fs::read(dump)?;
        let (sample_rate, channels) =
            wav_format(&bytes).with_context(|| format!("reading {}", dump.display()))?;
        let samples = wav_samples(&bytes).with_context(|| format!("reading {}", dump.display()))?;
        Ok(Audio {
            sample_rate,
            channels,
            samples,
        })
    }
}

fn received_sdp_lines(trace: &str, local: SocketAddr) -> Vec<String> {
    let local = local.to_string();
    let mut incoming = false;
    let mut found = Vec::new();
    for line in trace.lines().map(|line| line.trim_end_matches('\r')) {
        let words: Vec<&str> = line.split(' ').collect();
        if let [transport, _source, "->", destination] = words.as_slice()
            && ["UDP", "TCP", "TLS", "WS", "WSS"].contains(transport)
        {
            incoming = *destination == local;
        } else if incoming && (line.starts_with("o=") || line.starts_with("c=")) {
            found.push(line.to_owned());
        }
    }
    found
}

/// Decoded PCM audio: interleaved 16-bit samples.
#[derive(Debug, Clone)]
pub struct Audio {
    pub sample_rate: u32,
    pub channels: u16,
    pub samples: Vec<i16>,
}

impl Audio {
    /// The first channel's samples.
    pub fn first_channel(&self) -> Vec<i16> {
        self.samples
            .iter()
            .step_by(usize::from(self.channels.max(1)))
            .copied()
            .collect()
    }

    /// Relative power at `frequency` over the first channel (the Goertzel algorithm), so a
    /// test can tell a 440 Hz tone from a 660 Hz one.
    pub fn power_at(&self, frequency: f64) -> f64 {
        let samples = self.first_channel();
        if samples.is_empty() || self.sample_rate == 0 {
            return 0.0;
        }
        let coefficient =
            2.0 * (2.0 * std::f64::consts::PI * frequency / f64::from(self.sample_rate)).cos();
        let (mut previous, mut before) = (0.0_f64, 0.0_f64);
        for sample in &samples {
            let current = f64::from(*sample) + coefficient * previous - before;
            before = previous;
            previous = current;
        }
        let power = previous * previous + before * before - coefficient * previous * before;
        power / samples.len() as f64
    }

    /// Panics unless the audio carries a tone at `expected` Hz — at least a quarter of a
    /// second of loud samples, and more than `margin` times the power at `other` Hz. `who` and
    /// `log` go into the message.
    pub fn assert_tone(&self, who: &str, expected: f64, other: f64, margin: f64, log: &str) {
        let (wanted, unwanted) = (self.power_at(expected), self.power_at(other));
        let loud = self
            .first_channel()
            .iter()
            .filter(|sample| sample.unsigned_abs() > 1000)
            .count();
        assert!(
            loud > usize::try_from(self.sample_rate / 4).unwrap_or(2000),
            "{who} received {} samples without a tone\n{log}",
            self.samples.len()
        );
        assert!(
            wanted > margin * unwanted,
            "{who} heard {expected} Hz at power {wanted:.0} but {other} Hz at {unwanted:.0}\n{log}"
        );
    }
}

/// Sample rate and channel count of a RIFF/WAVE file (the `fmt ` chunk).
pub fn wav_format(bytes: &[u8]) -> anyhow::Result<(u32, u16)> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        bail!("not a RIFF/WAVE file");
    }
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        let body = at + 8;
        if id == b"fmt " && body + 8 <= bytes.len() {
            let channels = u16::from_le_bytes([bytes[body + 2], bytes[body + 3]]);
            let rate = u32::from_le_bytes([
                bytes[body + 4],
                bytes[body + 5],
                bytes[body + 6],
                bytes[body + 7],
            ]);
            return Ok((rate, channels));
        }
        let end = body.saturating_add(size as usize).min(bytes.len());
        at = end + (size as usize & 1);
    }
    bail!("no fmt chunk")
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
    fn the_format_and_the_strongest_tone_are_read() {
        // 0.25 s of a 440 Hz sine at 8 kHz, mono.
        let sine: Vec<i16> = (0..2000)
            .map(|n| {
                let t = f64::from(n) / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
            })
            .collect();
        let bytes = wav(&sine, None);
        assert_eq!(wav_format(&bytes).unwrap(), (8000, 1));
        let audio = Audio {
            sample_rate: 8000,
            channels: 1,
            samples: wav_samples(&bytes).unwrap(),
        };
        assert!(audio.power_at(440.0) > 100.0 * audio.power_at(660.0));
    }

    #[test]
    fn sdp_lines_are_taken_from_received_messages_only() {
        let trace = "\x1b[36;1m#\n\
                     UDP 10.1.0.11:5060 -> 10.1.0.2:5060\n\
                     INVITE sip:bob@x SIP/2.0\r\n\
                     \r\n\
                     o=- 1 1 IN IP4 10.1.0.11\r\n\
                     c=IN IP4 10.1.0.11\r\n\
                     \x1b[;m\n\
                     \x1b[36;1m#\n\
                     UDP 10.1.0.2:5060 -> 10.1.0.11:5060\n\
                     SIP/2.0 200 OK\r\n\
                     \r\n\
                     o=- 2 2 IN IP4 10.1.0.2\r\n\
                     c=IN IP4 10.1.0.2\r\n\
                     audio: Set audio decoder: PCMU 8000Hz 1ch\n";
        let local: SocketAddr = "10.1.0.11:5060".parse().unwrap();
        assert_eq!(
            received_sdp_lines(trace, local),
            vec!["o=- 2 2 IN IP4 10.1.0.2", "c=IN IP4 10.1.0.2"]
        );
    }

    #[test]
    fn other_files_are_refused() {
        assert!(wav_samples(b"RIFX").is_err());
        assert!(wav_samples(b"RIFF\0\0\0\0WAVEjunk\x04\0\0\0abcd").is_err());
    }
}
