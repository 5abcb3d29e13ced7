//! Golden SDP tests against Debian's rtpengine: the same offer and answer go through the
//! rtpengine daemon (userspace, `--table=-1`) and through voxide's relay; both rewritten SDPs,
//! with addresses, ports and o= versions masked, must equal `tests/golden/<case>.<offer|answer>
//! .masked`. Inputs are `tests/golden/<case>.<offer|answer>.sdp`. `GOLDEN_BLESS=1` rewrites the
//! expected files from rtpengine's output.
//!
//! One legitimate difference is normalised before comparing, on both outputs: the order of
//! attributes inside a media section. rtpengine (mr13 and later, Debian's 10.5 included) builds
//! the SDP from its call model and prints the other attributes first, then the codec block
//! (`a=rtpmap`/`a=fmtp`/`a=rtcp-fb`), then the direction, `a=rtcp`, `a=rtcp-mux` and `a=ptime`;
//! voxide edits the received text in place and keeps the sender's order (ng-protocol.md §4,
//! the mr12 behaviour). RFC 8866 gives attribute order within a section no meaning, so the
//! normalisation sorts each section's attributes into rtpengine's groups, keeping the order
//! inside each group. Everything else — which lines exist, their text, session-level lines,
//! CRLF line ends — must match exactly.
//!
//! Known differences the cases avoid (each case gives every payload type an `a=rtpmap` and
//! states directions at media level), because voxide keeps the sender's text where rtpengine
//! rebuilds it: rtpengine adds `a=rtpmap` for static payload types that had none, moves a
//! session-level direction attribute into each media section, and prints a rejected (port 0)
//! m= line with no attributes and no c=; voxide leaves those lines as they came (c= rewritten).
//!
//! Needs `/usr/bin/rtpengine` (Debian's `rtpengine-daemon`; scripts/test installs it).

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;

use media::{MediaConfig, MediaRelay};
use support::{NgClient, Rtpengine, dict, free_port_range, list, s, text};

/// What one relay made of a case's offer and answer.
struct Rewritten {
    offer: String,
    answer: String,
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn read_case(case: &str, kind: &str) -> String {
    let path = golden_dir().join(format!("{case}.{kind}.sdp"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Offer from A (tag `from-a`), answer from B (tag `to-b`), then delete; `ice_remove` adds
/// `ICE: remove`. Every request has `replace: [origin]`, as Sipwise's proxy config sends.
fn run_case(ng: SocketAddr, case: &str, call_id: &str, ice_remove: bool) -> Rewritten {
    let mut client = NgClient::new(ng);
    let request = |command: &str, sdp: String, to_tag: bool| {
        let mut entries = vec![
            ("command", s(command)),
            ("call-id", s(call_id)),
            ("from-tag", s("from-a")),
            ("sdp", s(&sdp)),
            ("replace", list(&["origin"])),
        ];
        if to_tag {
            entries.push(("to-tag", s("to-b")));
        }
        if ice_remove {
            entries.push(("ICE", s("remove")));
        }
        dict(entries)
    };
    let offer = client.call(&request("offer", read_case(case, "offer"), false));
    assert_eq!(text(&offer, "result"), "ok", "offer of {case}: {offer:?}");
    let answer = client.call(&request("answer", read_case(case, "answer"), true));
    assert_eq!(
        text(&answer, "result"),
        "ok",
        "answer of {case}: {answer:?}"
    );
    let deleted = client.call(&dict(vec![
        ("command", s("delete")),
        ("call-id", s(call_id)),
        ("from-tag", s("from-a")),
    ]));
    assert_eq!(
        text(&deleted, "result"),
        "ok",
        "delete of {case}: {deleted:?}"
    );
    Rewritten {
        offer: text(&offer, "sdp"),
        answer: text(&answer, "sdp"),
    }
}

/// Where a media-level attribute goes in rtpengine's output order.
fn attribute_group(line: &str) -> u8 {
    let name = line
        .strip_prefix("a=")
        .map(|v| v.split(':').next().unwrap_or(v));
    match name {
        None => 0,
        Some("rtpmap" | "fmtp" | "rtcp-fb") => 1,
        Some("sendrecv" | "sendonly" | "recvonly" | "inactive") => 2,
        Some("rtcp") => 3,
        Some("rtcp-mux") => 4,
        Some("ptime") => 5,
        Some(_) => 0,
    }
}

/// Masks what differs between relays and runs (relay address, ports, o= numbers) and
/// normalises attribute order inside media sections (see the module comment).
fn mask(sdp: &str, relay_address: &str) -> String {
    assert!(sdp.ends_with("\r\n"), "SDP must end with CRLF: {sdp:?}");
    let lines: Vec<&str> = sdp.trim_end_matches("\r\n").split("\r\n").collect();
    assert!(
        lines.iter().all(|l| !l.contains('\n')),
        "every line ends with CRLF: {sdp:?}"
    );
    let masked: Vec<String> = lines
        .iter()
        .map(|line| {
            let line = line.replace(relay_address, "ADDR");
            if let Some(value) = line.strip_prefix("o=") {
                let fields: Vec<&str> = value.split(' ').collect();
                if fields.len() == 6 {
                    return format!(
                        "o={} ID VERSION {} {} {}",
                        fields[0], fields[3], fields[4], fields[5]
                    );
                }
            }
            if let Some(value) = line.strip_prefix("m=") {
                let mut fields: Vec<&str> = value.split(' ').collect();
                if fields.len() > 1 && fields[1] != "0" {
                    fields[1] = "PORT";
                }
                return format!("m={}", fields.join(" "));
            }
            if let Some(value) = line.strip_prefix("a=rtcp:") {
                let rest = value.split_once(' ').map(|(_, r)| format!(" {r}"));
                return format!("a=rtcp:PORT{}", rest.unwrap_or_default());
            }
            line
        })
        .collect();
    // Stable sort of each media section's attribute lines by group; c=/b= lines stay first.
    let mut out = Vec::new();
    let mut section: Vec<String> = Vec::new();
    let flush = |section: &mut Vec<String>, out: &mut Vec<String>| {
        let (head, mut attributes): (Vec<String>, Vec<String>) =
            section.drain(..).partition(|l| !l.starts_with("a="));
        attributes.sort_by_key(|l| attribute_group(l));
        out.extend(head);
        out.extend(attributes);
    };
    for line in masked {
        if line.starts_with("m=") {
            flush(&mut section, &mut out);
            out.push(line);
        } else if out.iter().any(|l| l.starts_with("m=")) {
            section.push(line);
        } else {
            out.push(line);
        }
    }
    flush(&mut section, &mut out);
    out.join("\n") + "\n"
}

fn check(case: &str, case_index: u16, ice_remove: bool) {
    // Ranges of 40 ports per case, apart from relay.rs's (20000+) and the other tests'.
    let rtpengine_ports = free_port_range(26_000 + case_index * 40, 40);
    let rtpengine = Rtpengine::start(rtpengine_ports, 40);
    let voxide_ports = free_port_range(27_000 + case_index * 40, 40);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let relay = runtime
        .block_on(MediaRelay::start(MediaConfig::loopback(
            voxide_ports,
            voxide_ports + 39,
        )))
        .unwrap();

    let call_id = format!("golden-{case}-{}", std::process::id());
    let theirs = run_case(rtpengine.ng, case, &call_id, ice_remove);
    let ours = run_case(relay.ng_addr(), case, &call_id, ice_remove);
    for (kind, theirs, ours) in [
        ("offer", &theirs.offer, &ours.offer),
        ("answer", &theirs.answer, &ours.answer),
    ] {
        let expected_path = golden_dir().join(format!("{case}.{kind}.masked"));
        let theirs = mask(theirs, "127.0.0.1");
        let ours = mask(ours, "127.0.0.1");
        if std::env::var_os("GOLDEN_BLESS").is_some() {
            std::fs::write(&expected_path, &theirs).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        assert_eq!(
            theirs,
            expected,
            "rtpengine's {kind} of {case} differs from {}",
            expected_path.display()
        );
        assert_eq!(
            ours, expected,
            "voxide's {kind} of {case} differs from rtpengine's"
        );
    }
    runtime.block_on(relay.shutdown());
}

/// PCMU, PCMA and telephone-event with rtpmap/fmtp, `a=ptime`, `a=rtcp` and `a=sendrecv`.
#[test]
fn plain_audio_dtmf_rtcp() {
    check("plain_audio_dtmf_rtcp", 0, false);
}

/// A hold offer (`a=sendonly`) answered with `a=recvonly`: both directions pass unchanged.
#[test]
fn sendonly_hold() {
    check("sendonly_hold", 1, false);
}

/// Audio and video m= lines, each with its own relay port pair and `a=rtcp`.
#[test]
fn audio_and_video() {
    check("audio_and_video", 2, false);
}

/// `ICE: remove` strips the session-level `a=ice-options` and the media-level ufrag, pwd and
/// candidates, in the offer and in the answer.
#[test]
fn ice_remove() {
    check("ice_remove", 3, true);
}

/// c= at session level and at media level (the offer overrides it for one stream, the answer
/// has none at session level): each c= is rewritten where it stands.
#[test]
fn session_and_media_connection() {
    check("session_and_media_connection", 4, false);
}
