//! The 61 torture messages of RFC 4475 and RFC 5118 (`crates/sip-message/tests/torture/`,
//! expectations in its `INDEX.md`), each sent as one UDP datagram to the LB of a running
//! `voxide up`: each is refused with the status its RFC names, forwarded and answered by the
//! proxy, or dropped without an answer, as the table below says; and the node still answers
//! after all of them. Where the platform does not yet do what INDEX.md asks, the table says
//! what it does instead and where that is to be fixed; the test holds the platform to exactly
//! that, so a fix shows up as a failure asking for the entry to go.
//!
//! An answer goes where the message's top Via points (RFC 3261 §18.2.2): to the `received`
//! address, which is the sender's, at the Via's sent-by port — 5060 for most of these
//! messages — over the Via's transport. So the sender must own 127.0.0.1:5060 for UDP and TCP,
//! which another program on the host may hold. The test therefore runs the node and the sender
//! in a network namespace of its own (it needs root and `ip`): the outer run creates the
//! namespace and runs this same test again inside it (`ip netns exec`), where all the work
//! happens on the namespace's loopback.
//!
//! Who answered is read from the LB's debug log (`lb=debug` is added to `RUST_LOG`): the LB
//! logs each answer it makes itself, the proxy's answers pass through it unlogged.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use e2e_tests::{Node, NodePorts, block_on, is_root};
use serde_json::json;
use sip_message::{Frame, Limits};

const VOXIDE: &str = env!("CARGO_BIN_EXE_voxide");
/// Set (to the namespace's name) for the run inside the namespace.
const INSIDE: &str = "VOXIDE_TORTURE_NAMESPACE";
/// This test's name, for re-running it inside the namespace.
const TEST_NAME: &str = "every_torture_message_is_refused_answered_or_dropped_as_its_rfc_says";
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sip-message/tests/torture");
/// How long an answer may take: the proxy reads the database for most of them.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The domains the torture Request-URIs name. Provisioned, so the LB forwards requests for them
/// to the proxy instead of refusing to relay.
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "registrar.example.com",
    "host.example.net",
    "chair-dnrc.example.com",
    "[2001:db8::10]",
    "[2001:db8::192.0.2.1]",
];

/// The transport a top Via names, which an answer from the proxy takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Udp,
    Tcp,
    Tls,
}

/// What the platform does with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The transport's parser refuses it (sip-net's stateless answer) with this status, back
    /// to where the datagram came from.
    Malformed(u16),
    /// The LB's own checks refuse it with this status, back to where it came from.
    Refused(u16),
    /// The LB forwards it and the proxy answers with a final response, sent where the Via
    /// points; with this status where the RFC names one for a proxy/registrar that
    /// authenticates (otherwise a challenge, a 404, … are all the proxy's business).
    Answered(Option<u16>),
    /// No answer at all.
    Dropped,
}

use Outcome::{Answered, Dropped, Malformed, Refused};

/// Any final answer from the proxy.
const FORWARDED: Outcome = Answered(None);
/// The registrar's challenge: it authenticates, so a REGISTER without credentials "succeeds"
/// as far as RFC 4475 can tell by getting a 401.
const CHALLENGED: Outcome = Answered(Some(401));

/// One torture message: its file, where its answer goes, what must happen.
struct Case {
    file: &'static str,
    /// The top Via's transport.
    via: Via,
    /// The top Via's sent-by port (its default when absent). The message is sent from this
    /// port, so `rport` (mpart01) changes nothing.
    port: u16,
    /// What INDEX.md asks of the platform.
    expected: Outcome,
    /// What the platform does instead, and why, until that is fixed.
    deviation: Option<(Outcome, &'static str)>,
}

const fn case(file: &'static str, via: Via, port: u16, expected: Outcome) -> Case {
    Case {
        file,
        via,
        port,
        expected,
        deviation: None,
    }
}

/// Every message of the corpus with what INDEX.md asks of this platform: an LB (a stateless
/// proxy) in front of a proxy and registrar that authenticate. Where INDEX.md allows two
/// answers, the one the platform gives.
const CASES: &[Case] = &[
    // RFC 4475 §3.1.1: valid messages. Requests reach the proxy; responses to nothing are
    // dropped.
    case("wsinv", Via::Udp, 5060, FORWARDED),
    case("intmeth", Via::Tcp, 5060, FORWARDED),
    case("esc01", Via::Udp, 5060, FORWARDED),
    case("escnull", Via::Udp, 5060, CHALLENGED),
    case("esc02", Via::Tcp, 5060, FORWARDED),
    case("lwsdisp", Via::Udp, 5060, FORWARDED),
    case("longreq", Via::Tcp, 5060, FORWARDED),
    // The REGISTER is answered; the trailing INVITE octets are not (an answer to its Call-ID
    // would be one to nothing sent).
    case("dblreq", Via::Udp, 5060, CHALLENGED),
    case("semiuri", Via::Udp, 5060, FORWARDED),
    case("transports", Via::Udp, 5060, FORWARDED),
    case("mpart01", Via::Udp, 5070, FORWARDED),
    case("unreason", Via::Udp, 5060, Dropped),
    case("noreason", Via::Udp, 5060, Dropped),
    // RFC 4475 §3.1.2: invalid messages.
    case("badinv01", Via::Udp, 5060, Malformed(400)),
    case("clerr", Via::Udp, 5060, Malformed(400)),
    case("ncl", Via::Udp, 5060, Malformed(400)),
    case("scalar02", Via::Tcp, 5060, Malformed(400)),
    case("scalarlg", Via::Tcp, 5060, Dropped),
    case("quotbal", Via::Udp, 5050, Malformed(400)),
    case("ltgtruri", Via::Udp, 5060, Malformed(400)),
    case("lwsruri", Via::Udp, 5060, Malformed(400)),
    case("lwsstart", Via::Udp, 5060, Malformed(400)),
    case("trws", Via::Tcp, 5060, Malformed(400)),
    case("escruri", Via::Udp, 5060, Malformed(400)),
    case("baddate", Via::Udp, 5060, FORWARDED),
    case("regbadct", Via::Udp, 5060, Malformed(400)),
    case("badaspec", Via::Udp, 5060, Malformed(400)),
    case("baddn", Via::Udp, 5060, Malformed(400)),
    case("badvers", Via::Udp, 5060, Malformed(505)),
    case("mismatch01", Via::Udp, 5060, Malformed(400)),
    // 501 or 400: the CSeq mismatch is found first.
    case("mismatch02", Via::Udp, 5060, Malformed(400)),
    case("bigcode", Via::Udp, 5060, Dropped),
    // RFC 4475 §3.2: a stateless LB forwards it; the proxy falls back to RFC 2543 matching.
    case("badbranch", Via::Udp, 5060, FORWARDED),
    // RFC 4475 §3.3: application layer.
    case("insuf", Via::Udp, 5060, Malformed(400)),
    case("unkscm", Via::Tcp, 5060, Refused(416)),
    case("novelsc", Via::Tcp, 5060, Refused(416)),
    case("unksm2", Via::Udp, 5060, Answered(Some(400))),
    // The LB is the first proxy: Proxy-Require is its to refuse.
    case("bext01", Via::Tls, 5061, Refused(420)),
    case("invut", Via::Udp, 5060, FORWARDED),
    case("regaut01", Via::Tcp, 5060, CHALLENGED),
    case("multi01", Via::Udp, 5060, Malformed(400)),
    case("mcl01", Via::Udp, 5060, Malformed(400)),
    case("bcast", Via::Udp, 5060, Dropped),
    case("zeromf", Via::Udp, 5060, Refused(483)),
    case("cparam01", Via::Udp, 5060, CHALLENGED),
    case("cparam02", Via::Udp, 5060, CHALLENGED),
    case("regescrt", Via::Udp, 5060, CHALLENGED),
    // 406 or 400 is a UA's answer; a proxy forwards.
    case("sdp01", Via::Udp, 5060, FORWARDED),
    // RFC 4475 §3.4: backward compatibility.
    case("inv2543", Via::Udp, 5060, FORWARDED),
    // RFC 5118 (IPv6). `[2001:db8::10]` and `[2001:db8::192.0.2.1]` are provisioned domains.
    case("ipv6-good", Via::Udp, 5060, FORWARDED),
    case("ipv6-bad", Via::Udp, 5060, Malformed(400)),
    // The host is `[2001:db8::10:5070]`, which nobody serves: no port may be inferred.
    case("port-ambiguous", Via::Udp, 5060, Refused(403)),
    case("port-unambiguous", Via::Udp, 5060, FORWARDED),
    // In a dialog (To tag): forwarded whatever the Request-URI.
    case("via-received-param-with-delim", Via::Udp, 5060, FORWARDED),
    case("via-received-param-no-delim", Via::Udp, 5060, FORWARDED),
    case("ipv6-in-sdp", Via::Udp, 5060, FORWARDED),
    case("mult-ip-in-header", Via::Udp, 6050, FORWARDED),
    case("mult-ip-in-sdp", Via::Udp, 5060, FORWARDED),
    case("ipv4-mapped-ipv6", Via::Udp, 19823, FORWARDED),
    // Tolerated (parsed, not a 400), but `[2001:db8:::192.0.2.1]` is no address one can
    // provision, so relaying is refused.
    case("ipv6-bug-abnf-3-colons", Via::Udp, 5060, Refused(403)),
    case("ipv6-correct-abnf-2-colons", Via::Udp, 5060, FORWARDED),
];

#[test]
fn every_torture_message_is_refused_answered_or_dropped_as_its_rfc_says() {
    if let Ok(namespace) = std::env::var(INSIDE) {
        run_inside(&namespace);
        return;
    }
    assert!(
        is_root(),
        "this test creates a network namespace and needs root (CAP_NET_ADMIN)"
    );
    let namespace = Namespace::create().expect("creating a network namespace (needs `ip`)");
    let test_binary = std::env::current_exe().expect("the test binary's path");
    // The LB's debug lines tell its own answers from the proxy's (see `LbLog`).
    let log_filter = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.is_empty() => format!("{filter},lb=debug"),
        _ => "info,lb=debug".to_owned(),
    };
    let output = Command::new("ip")
        .args(["netns", "exec", &namespace.name])
        .arg(&test_binary)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads", "1"])
        .env(INSIDE, &namespace.name)
        .env("RUST_LOG", log_filter)
        .output()
        .expect("running the test inside the namespace");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = format!(
        "--- the run inside {} ({}):\n{stdout}\n{}",
        namespace.name,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{report}");
    assert!(output.status.success(), "{report}");
    // The inner run must have run the test, not filtered it away.
    assert!(stdout.contains("test result: ok. 1 passed"), "{report}");
}

/// A network namespace with only its loopback up, deleted on drop.
struct Namespace {
    name: String,
}

impl Namespace {
    fn create() -> anyhow::Result<Self> {
        let namespace = Self {
            name: format!("vxtorture{:x}", std::process::id()),
        };
        run(&["ip", "netns", "add", &namespace.name])?;
        run(&[
            "ip",
            "netns",
            "exec",
            &namespace.name,
            "ip",
            "link",
            "set",
            "lo",
            "up",
        ])?;
        Ok(namespace)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

fn run(arguments: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(arguments[0]).args(&arguments[1..]).output()?;
    anyhow::ensure!(
        output.status.success(),
        "{arguments:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The test proper, inside the namespace: a node on its loopback and a sender owning the ports
/// the Vias name.
fn run_inside(namespace: &str) {
    let ports = NodePorts {
        media_kernel_forwarding: false,
        ..NodePorts::free().unwrap()
    };
    let node = Node::start_with_ports(VOXIDE, ports).unwrap();
    let provisioning = node.provisioning().unwrap();
    block_on(async {
        for domain in DOMAINS {
            provisioning
                .create("/api/domains/", &json!({ "domain": domain }))
                .await?;
        }
        anyhow::Ok(())
    })
    .unwrap();
    node.wait_for_log(
        &[
            "served domains updated",
            &format!("count={}", DOMAINS.len()),
        ],
        Duration::from_secs(10),
    )
    .unwrap();

    let peer = Peer::bind(CASES.iter().map(|case| case.port)).unwrap();
    let lb = node.sip_address();
    eprintln!("namespace {namespace}, LB at {lb}");
    let mut exchange = Exchange {
        peer,
        lb,
        sent: Vec::new(),
        finals: Vec::new(),
        failures: Vec::new(),
    };
    let mut deviations = Vec::new();
    for (index, case) in CASES.iter().enumerate() {
        let message = std::fs::read(format!("{CORPUS}/{}.sip", case.file)).unwrap();
        let before = LbLog::read(&node);
        let anticipated = case.deviation.map_or(case.expected, |(actual, _)| actual);
        let answers = exchange.exchange(case, index, &message, anticipated != Dropped);
        let lb_log = LbLog::read(&node).since(&before);
        let observed = observe(&answers, lb_log);
        let summary: Vec<String> = answers.iter().map(Answer::summary).collect();
        eprintln!("{:<30} {observed:<20} {summary:?}", case.file);
        exchange.check(case, observed, &answers);
        if let Some((_, why)) = case.deviation {
            deviations.push(format!(
                "{}: INDEX.md asks for {}, the platform gives {observed}: {why}",
                case.file, case.expected
            ));
        }
    }
    eprintln!(
        "\nknown deviations from INDEX.md:\n{}",
        deviations.join("\n")
    );

    // Still alive: the LB and the proxy answer a plain request, the API a plain query, and
    // nothing panicked on the way.
    let alive = "OPTIONS sip:alive@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKalive\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alive@example.com>;tag=alive\r\n\
         To: <sip:alive@example.com>\r\n\
         Call-ID: torture-alive\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n";
    let after_all = case("(a plain OPTIONS after all 61)", Via::Udp, 5060, FORWARDED);
    let before = LbLog::read(&node);
    let answers = exchange.exchange(&after_all, CASES.len(), alive.as_bytes(), true);
    let observed = observe(&answers, LbLog::read(&node).since(&before));
    exchange.check(&after_all, observed, &answers);
    let domains = block_on(provisioning.get("/api/domains/")).unwrap();
    assert!(
        domains.to_string().contains("example.com"),
        "the API answers after the torture: {domains}"
    );
    let log = node.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        exchange.failures.is_empty(),
        "{:#?}\n--- node log\n{log}",
        exchange.failures
    );
}

/// The sender's side of the exchanges, and what went wrong so far.
struct Exchange {
    peer: Peer,
    lb: SocketAddr,
    /// Every message sent so far, by its key.
    sent: Vec<(Key, &'static str)>,
    /// Final answers so far, by key and status line: an INVITE's final answer comes again
    /// until it is acknowledged, and this sender sends no ACK.
    finals: Vec<(Key, String)>,
    failures: Vec<String>,
}

impl Exchange {
    /// Sends `message` from the case's port and returns what answers it: if `await_final`,
    /// whatever arrives until a final answer, and in any case whatever arrives before the
    /// answer to a probe sent after it from the same socket. The LB answers the probe itself,
    /// so once that answer is back the LB has dealt with the message, and anything it sent at
    /// once (an answer of its own, or none) has arrived.
    fn exchange(
        &mut self,
        case: &Case,
        index: usize,
        message: &[u8],
        await_final: bool,
    ) -> Vec<Answer> {
        let key = Key::of(message);
        self.sent.push((key.clone(), case.file));
        self.peer.send(case.port, message, self.lb);
        let mut answers = Vec::new();
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        while await_final && !answers.iter().any(Answer::is_final) {
            let Some(arrival) = self.peer.next(deadline) else {
                break;
            };
            if arrival.key() == key {
                answers.push(arrival);
            } else {
                self.stray(case, &arrival);
            }
        }
        let probe = probe(index, case.port);
        let probe_key = Key::of(probe.as_bytes());
        self.peer.send(case.port, probe.as_bytes(), self.lb);
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let Some(arrival) = self.peer.next(deadline) else {
                self.failures
                    .push(format!("{}: the probe after it got no answer", case.file));
                break;
            };
            if arrival.key() == key {
                answers.push(arrival);
            } else if arrival.key() != probe_key {
                self.stray(case, &arrival);
            } else {
                if arrival.status() != Some(483) {
                    self.failures.push(format!(
                        "{}: the probe after it got {}",
                        case.file,
                        arrival.summary()
                    ));
                }
                break;
            }
        }
        for answer in answers.iter().filter(|answer| answer.is_final()) {
            self.finals.push((key.clone(), answer.status_line()));
        }
        answers
    }

    /// Something that answers an earlier message: fine if it repeats a final answer already
    /// seen (an INVITE's answer retransmitted), a failure otherwise.
    fn stray(&mut self, case: &Case, arrival: &Answer) {
        let key = arrival.key();
        let line = arrival.status_line();
        if arrival.transport != Via::Tls
            && self
                .finals
                .iter()
                .any(|(seen, status_line)| *seen == key && *status_line == line)
        {
            return;
        }
        let answered = self
            .sent
            .iter()
            .rev()
            .find(|(sent, _)| *sent == key)
            .map_or("nothing sent", |(_, file)| file);
        self.failures.push(format!(
            "while sending {}: {} arrived, an answer to {answered}",
            case.file,
            arrival.summary()
        ));
    }

    /// Compares what happened with the table.
    fn check(&mut self, case: &Case, observed: Outcome, answers: &[Answer]) {
        let wanted = case.deviation.map_or(case.expected, |(actual, _)| actual);
        let matches = match (wanted, observed) {
            (Answered(None), Answered(Some(_))) => true,
            (wanted, observed) => wanted == observed,
        };
        if !matches {
            let hint = match case.deviation {
                Some(_)
                    if observed == case.expected
                        || matches!((case.expected, observed), (Answered(None), Answered(_))) =>
                {
                    " (now as INDEX.md asks: remove the deviation from the table)"
                }
                Some(_) => " (a deviation from INDEX.md, now a different one)",
                None => "",
            };
            self.failures.push(format!(
                "{}: expected {wanted}, got {observed}{hint}: {:?}",
                case.file,
                answers.iter().map(Answer::summary).collect::<Vec<_>>()
            ));
            return;
        }
        let finals: Vec<&Answer> = answers.iter().filter(|answer| answer.is_final()).collect();
        if finals.len() > 1 {
            self.failures
                .push(format!("{}: more than one final answer", case.file));
        }
        // The LB answers on the flow the datagram came on; the proxy's answers follow the Via.
        let transport = match observed {
            Answered(_) => case.via,
            _ => Via::Udp,
        };
        for answer in answers {
            if answer.transport != transport || answer.port != case.port {
                self.failures.push(format!(
                    "{}: {} arrived, expected over {transport:?} at port {}",
                    case.file,
                    answer.summary(),
                    case.port
                ));
            }
        }
    }
}

/// What happened to a message, from its answers and the LB's log lines since it was sent.
fn observe(answers: &[Answer], lb_log: LbLog) -> Outcome {
    let Some(status) = answers
        .iter()
        .find(|answer| answer.is_final())
        .and_then(Answer::status)
    else {
        return Dropped;
    };
    // One LB answer is the probe's.
    if lb_log.malformed > 0 {
        Malformed(status)
    } else if lb_log.answered > 1 {
        Refused(status)
    } else {
        Answered(Some(status))
    }
}

/// Counts of the LB's debug lines (`RUST_LOG=lb=debug`) for the answers it makes itself: its
/// forwarding loop logs `answered` for each of its own refusals and `malformed message` for
/// each datagram the transport refused, and nothing for what the proxy answers.
#[derive(Debug, Clone, Copy)]
struct LbLog {
    answered: usize,
    malformed: usize,
}

impl LbLog {
    fn read(node: &Node) -> LbLog {
        let log = node.log();
        let count = |message: &str| {
            log.lines()
                .filter(|line| {
                    line.split_once(": ").is_some_and(|(prefix, rest)| {
                        (prefix.ends_with(" lb") || prefix.contains(" lb::"))
                            && rest.starts_with(message)
                    })
                })
                .count()
        };
        LbLog {
            answered: count("answered "),
            malformed: count("malformed message "),
        }
    }

    fn since(self, before: &LbLog) -> LbLog {
        LbLog {
            answered: self.answered - before.answered,
            malformed: self.malformed - before.malformed,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed(status) => write!(formatter, "malformed: {status}"),
            Refused(status) => write!(formatter, "LB refuses: {status}"),
            Answered(Some(status)) => write!(formatter, "proxy answers: {status}"),
            Answered(None) => write!(formatter, "proxy answers"),
            Dropped => write!(formatter, "dropped"),
        }
    }
}

/// The probe: Max-Forwards 0, which the LB answers 483 at once (RFC 3261 §16.3 step 3).
fn probe(index: usize, port: u16) -> String {
    format!(
        "OPTIONS sip:probe@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bKprobe{index}\r\n\
         Max-Forwards: 0\r\n\
         From: <sip:probe@example.com>;tag=probe{index}\r\n\
         To: <sip:probe@example.com>\r\n\
         Call-ID: torture-probe-{index}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// What ties an answer to the message it answers: Call-ID and CSeq (either may be absent, as
/// in `insuf`), white space normalised and leading zeros of the number dropped (`wsinv`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    call_id: Option<String>,
    cseq: Option<String>,
}

impl Key {
    fn of(message: &[u8]) -> Key {
        let cseq = header(message, &["cseq"]).map(|cseq| {
            let number = cseq.split(' ').next().unwrap_or_default();
            let trimmed = number.trim_start_matches('0');
            let number = if trimmed.is_empty() { "0" } else { trimmed };
            let method = cseq.split(' ').nth(1).unwrap_or_default();
            format!("{number} {method}")
        });
        Key {
            call_id: header(message, &["call-id", "i"]),
            cseq,
        }
    }
}

/// The first value of a header (by its long or compact name), unfolded, runs of white space
/// made single spaces. Lenient on purpose: it reads the broken messages too.
fn header(message: &[u8], names: &[&str]) -> Option<String> {
    let end = message
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or(message.len());
    let text = String::from_utf8_lossy(&message[..end]);
    let mut lines: Vec<String> = Vec::new();
    for line in text.split("\r\n").skip(1) {
        match lines.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line);
            }
            _ => lines.push(line.to_owned()),
        }
    }
    lines.iter().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        names
            .iter()
            .any(|wanted| name.trim().eq_ignore_ascii_case(wanted))
            .then(|| value.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

/// Something that came back to the sender.
#[derive(Debug)]
struct Answer {
    /// The local port it arrived on.
    port: u16,
    transport: Via,
    bytes: Vec<u8>,
}

impl Answer {
    fn key(&self) -> Key {
        Key::of(&self.bytes)
    }

    fn status_line(&self) -> String {
        let end = self
            .bytes
            .windows(2)
            .position(|window| window == b"\r\n")
            .unwrap_or(self.bytes.len());
        String::from_utf8_lossy(&self.bytes[..end]).into_owned()
    }

    fn status(&self) -> Option<u16> {
        let line = self.status_line();
        line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }

    fn is_final(&self) -> bool {
        self.status().is_some_and(|status| status >= 200)
    }

    fn summary(&self) -> String {
        if self.transport == Via::Tls {
            return format!(
                "a TLS connection to port {} (an answer this sender cannot read)",
                self.port
            );
        }
        format!(
            "{:?}:{} `{}`",
            self.transport,
            self.port,
            self.status_line()
        )
    }
}

/// The sending side: a UDP socket on each port the Vias name and TCP listeners on the ports of
/// the stream Vias (5060 for TCP, 5061 for TLS), all on 127.0.0.1. Everything that arrives goes
/// into one queue.
struct Peer {
    sockets: Vec<(u16, UdpSocket)>,
    arrivals: Receiver<Answer>,
}

impl Peer {
    fn bind(ports: impl Iterator<Item = u16>) -> anyhow::Result<Peer> {
        let (sender, arrivals) = channel();
        let mut sockets: Vec<(u16, UdpSocket)> = Vec::new();
        for port in ports {
            if sockets.iter().any(|(bound, _)| *bound == port) {
                continue;
            }
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, port))?;
            let reader = socket.try_clone()?;
            let sender = sender.clone();
            std::thread::spawn(move || read_datagrams(reader, port, sender));
            sockets.push((port, socket));
        }
        for (port, transport) in [(5060, Via::Tcp), (5061, Via::Tls)] {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
            let sender = sender.clone();
            std::thread::spawn(move || accept_connections(listener, port, transport, sender));
        }
        Ok(Peer { sockets, arrivals })
    }

    fn send(&self, port: u16, message: &[u8], to: SocketAddr) {
        let (_, socket) = self
            .sockets
            .iter()
            .find(|(bound, _)| *bound == port)
            .expect("a socket on every port of the table");
        socket.send_to(message, to).expect("sending to the LB");
    }

    /// The next arrival, or `None` once `deadline` has passed.
    fn next(&self, deadline: Instant) -> Option<Answer> {
        let left = deadline.checked_duration_since(Instant::now())?;
        self.arrivals.recv_timeout(left).ok()
    }
}

fn read_datagrams(socket: UdpSocket, port: u16, arrivals: Sender<Answer>) {
    let mut buffer = vec![0u8; 65_535];
    while let Ok(length) = socket.recv(&mut buffer) {
        let answer = Answer {
            port,
            transport: Via::Udp,
            bytes: buffer[..length].to_vec(),
        };
        if arrivals.send(answer).is_err() {
            return;
        }
    }
}

fn accept_connections(listener: TcpListener, port: u16, transport: Via, arrivals: Sender<Answer>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let arrivals = arrivals.clone();
        std::thread::spawn(move || read_stream(stream, port, transport, arrivals));
    }
}

/// Frames SIP messages off a connection the LB opened to deliver answers. A TLS connection is
/// reported by its first bytes (a ClientHello): this sender speaks no TLS.
fn read_stream(mut stream: TcpStream, port: u16, transport: Via, arrivals: Sender<Answer>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16_384];
    loop {
        let Ok(count) = stream.read(&mut chunk) else {
            return;
        };
        if count == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..count]);
        if transport == Via::Tls {
            let _ = arrivals.send(Answer {
                port,
                transport,
                bytes: buffer,
            });
            return;
        }
        loop {
            match sip_message::stream::frame(&buffer, &Limits::default()) {
                Ok(Frame::Complete(length)) => {
                    let bytes = buffer.drain(..length).collect();
                    if arrivals
                        .send(Answer {
                            port,
                            transport,
                            bytes,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Frame::KeepAlive(length)) => {
                    buffer.drain(..length);
                }
                Ok(Frame::Incomplete) => break,
                Err(_) => return,
            }
        }
    }
}
