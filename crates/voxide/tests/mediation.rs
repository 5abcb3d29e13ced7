//! Mediation through the real binary: SIPp calls of each outcome become the right CDRs via
//! `voxide up`'s mediator and `/api/calls`; `voxide cdr export` writes files whose header count
//! and MD5 footer check out with the real `md5sum`; `kill -9` of `voxide mediator` in the middle
//! of its work loses and doubles nothing; a malformed acc row is trashed and the rest mediated.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{Scene, TEST_DOMAIN, block_on, wait_until_udp_bound};
use serde_json::Value;
use store::{AccRepository, CdrRepository, NewAccRecord, Store};

const VOXIDE: &str = env!("CARGO_BIN_EXE_voxide");

/// Bob registers once from `port`; each call then gets a fresh SIPp UAS on that port.
fn bob_runs(scene: &Scene, port: u16, scenario: &str, tag: &str) -> e2e_tests::SippProcess {
    let process = scene
        .sipp(scenario, port)
        .key("user", "bob")
        .spawn(&format!("bob-{tag}"))
        .unwrap();
    // The INVITE may come once SIPp's socket is bound.
    let local = SocketAddr::new(scene.node.ports.public_ip, port);
    wait_until_udp_bound(local, None, Duration::from_secs(10)).unwrap();
    process
}

fn alice_calls(scene: &Scene, scenario: &str, callee: &str) -> e2e_tests::SippOutcome {
    let alice = scene.subscriber("alice");
    scene
        .sipp(scenario, Scene::free_port())
        .key("user", "alice")
        .key("callee", callee)
        .credentials(
            "alice",
            &alice.password,
            &format!("sip:{callee}@{TEST_DOMAIN}"),
        )
        .run(&format!("alice-{scenario}"))
        .unwrap()
}

fn calls_of(scene: &Scene, query: &str) -> Value {
    let provisioning = scene.node.provisioning().unwrap();
    block_on(provisioning.get(&format!("/api/calls/{query}"))).unwrap()
}

/// Waits until `/api/calls` holds `count` CDRs (the mediator polls every 5 s by default).
fn wait_for_calls(scene: &Scene, count: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let page = calls_of(scene, "?rows=100");
        if page["total_count"].as_u64() == Some(count) {
            return page["_embedded"]["ngcp:calls"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} calls, have {page}\n{}",
            scene.node.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn voxide(arguments: &[&str]) -> std::process::Output {
    Command::new(VOXIDE)
        .args(arguments)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Splits an export file into (header, body bytes, footer) and checks the header count and the
/// footer with the real `md5sum` over the body.
fn check_export_file(path: &Path, directory: &Path) -> (u64, String) {
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (header, rest) = text.split_once('\n').unwrap();
    let footer_start = rest
        .trim_end_matches('\n')
        .rfind('\n')
        .map_or(0, |at| at + 1);
    let (body, footer) = rest.split_at(footer_start);
    let count: u64 = header
        .strip_prefix("#voxide-cdr,1,")
        .unwrap_or_else(|| panic!("header {header:?}"))
        .parse()
        .unwrap();
    assert_eq!(body.lines().count() as u64, count, "{text}");
    let body_path = directory.join("body.csv");
    std::fs::write(&body_path, body).unwrap();
    let md5sum = Command::new("md5sum").arg(&body_path).output().unwrap();
    assert!(md5sum.status.success());
    let md5sum = String::from_utf8(md5sum.stdout).unwrap();
    let expected = md5sum.split_whitespace().next().unwrap();
    assert_eq!(footer.trim_end(), format!("#md5,{expected}"), "{text}");
    (count, body.to_owned())
}

#[test]
fn sipp_calls_of_each_outcome_become_cdrs_and_export_once() {
    let scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let bob_port = Scene::free_port();
    let registered = scene.register("bob", bob_port).unwrap();
    assert!(registered.succeeded(), "{}", registered.report());

    // answered
    let bob = bob_runs(&scene, bob_port, "uas_call.xml", "answer");
    let caller = alice_calls(&scene, "uac_call.xml", "bob");
    assert!(caller.succeeded(), "caller: {}", caller.report());
    let callee = bob.wait(Duration::from_secs(40)).unwrap();
    assert!(callee.succeeded(), "callee: {}", callee.report());
    // busy
    let bob = bob_runs(&scene, bob_port, "uas_busy.xml", "busy");
    let caller = alice_calls(&scene, "uac_busy.xml", "bob");
    assert!(caller.succeeded(), "caller: {}", caller.report());
    assert!(bob.wait(Duration::from_secs(40)).unwrap().succeeded());
    // cancelled
    let bob = bob_runs(&scene, bob_port, "uas_cancel.xml", "cancel");
    let caller = alice_calls(&scene, "uac_cancel.xml", "bob");
    assert!(caller.succeeded(), "caller: {}", caller.report());
    assert!(bob.wait(Duration::from_secs(40)).unwrap().succeeded());
    // no answer: the callee's phone gives up with 480
    let bob = bob_runs(&scene, bob_port, "uas_noanswer.xml", "noanswer");
    let caller = alice_calls(&scene, "uac_offline.xml", "bob");
    assert!(caller.succeeded(), "caller: {}", caller.report());
    assert!(bob.wait(Duration::from_secs(40)).unwrap().succeeded());
    // offline: nobody by that name
    let caller = alice_calls(&scene, "uac_unknown.xml", "nobody");
    assert!(caller.succeeded(), "caller: {}", caller.report());

    let calls = wait_for_calls(&scene, 5);
    let mut outcomes: Vec<(String, String)> = calls
        .iter()
        .map(|call| {
            (
                call["call_status"].as_str().unwrap().to_owned(),
                call["call_code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    outcomes.sort();
    let expected: Vec<(String, String)> = [
        ("busy", "486"),
        ("cancel", "487"),
        ("noanswer", "480"),
        ("offline", "404"),
        ("ok", "200"),
    ]
    .iter()
    .map(|(status, code)| ((*status).to_owned(), (*code).to_owned()))
    .collect();
    assert_eq!(outcomes, expected, "{calls:#?}");

    let alice = scene.subscriber("alice");
    let bob = scene.subscriber("bob");
    for call in &calls {
        let status = call["call_status"].as_str().unwrap();
        assert_eq!(call["call_type"], "call");
        assert_eq!(call["source_user"], "alice");
        assert_eq!(call["source_domain"], TEST_DOMAIN);
        assert_eq!(call["source_ip"], "127.0.0.1");
        let duration = call["duration"].as_f64().unwrap();
        // The proxy answers "offline" itself, after authenticating the caller: the caller's
        // ids are on that record too; the callee does not exist.
        assert_eq!(call["source_subscriber_id"], alice.id, "{call}");
        assert!(call["source_customer_id"].as_i64().is_some(), "{call}");
        assert_eq!(call["source_cli"], alice.number.as_str());
        if status == "offline" {
            assert_eq!(call["destination_user_dialed"], "nobody");
            assert!(call["destination_subscriber_id"].is_null(), "{call}");
        } else {
            assert_eq!(call["destination_subscriber_id"], bob.id, "{call}");
            assert_eq!(call["destination_user"], "bob");
            assert_eq!(call["destination_user_dialed"], "bob");
        }
        if status == "ok" {
            // The caller hangs up 300 ms after the ACK.
            assert!((0.25..10.0).contains(&duration), "{call}");
        } else {
            assert_eq!(duration, 0.0, "{call}");
        }
    }
    // Filters over the real API.
    assert_eq!(calls_of(&scene, "?call_status=busy")["total_count"], 1);
    assert_eq!(
        calls_of(&scene, &format!("?subscriber_id={}", bob.id))["total_count"],
        4
    );

    // Export: all five, header count and MD5 footer verified with md5sum; again: nothing.
    let out = scene.node.directory().join("export");
    let config = scene.node.config_path();
    let config = config.to_str().unwrap();
    let first = voxide(&[
        "cdr",
        "export",
        "--config",
        config,
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("exported 5 CDRs into 1 files"), "{stdout}");
    let files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let (count, body) = check_export_file(&files[0], scene.node.directory());
    assert_eq!(count, 5);
    assert!(body.contains(",busy,486,"), "{body}");
    assert_eq!(
        calls_of(&scene, "?rows=1")["_embedded"]["ngcp:calls"][0]["export_status"],
        "ok"
    );
    let second = voxide(&[
        "cdr",
        "export",
        "--config",
        config,
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success());
    assert!(stdout.contains("exported 0 CDRs into 0 files"), "{stdout}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    // A bad --since is refused naming the option.
    let bad = voxide(&[
        "cdr", "export", "--config", config, "--since", "soon", "--out", "x",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
}

/// A `voxide mediator` process with its log file.
struct Mediator {
    child: Child,
    log: PathBuf,
}

impl Mediator {
    fn start(config: &Path, directory: &Path, run: u32) -> Self {
        let log = directory.join(format!("mediator-{run}.log"));
        let child = Command::new(VOXIDE)
            .args(["mediator", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn kill_9_during_mediation_gives_exactly_one_cdr_per_call() {
    const CALLS: i64 = 3000;
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let config = directory.path().join("voxide.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[mediator]\npoll_interval_seconds = 1\nbatch_size = 25\n\
             max_call_age_seconds = 3600\n",
            data.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let url = format!("sqlite://{}?mode=rwc", data.join("voxide.db").display());
    let store = block_on(Store::connect(&url)).unwrap();

    // CALLS finished calls: even ones answered (INVITE 200 + BYE), odd ones busy (INVITE 486);
    // plus one malformed row, one answered call that lost its BYE 2 h ago and one still up.
    let now = unix_ms();
    let start = now - 60_000;
    let mut records = Vec::new();
    let row = |call_id: String, method: &str, code: u16, time_ms: i64| NewAccRecord {
        method: method.into(),
        call_id,
        sip_code: code,
        time_ms,
        source_user: "alice".into(),
        destination_user: "bob".into(),
        ..NewAccRecord::default()
    };
    for call in 0..CALLS {
        let call_id = format!("kill-{call}");
        if call % 2 == 0 {
            records.push(row(call_id.clone(), "INVITE", 200, start + call));
            records.push(row(call_id, "BYE", 200, start + call + 1_500));
        } else {
            records.push(row(call_id, "INVITE", 486, start + call));
        }
        if call == CALLS / 2 {
            records.push(row("malformed".into(), "INVITE", 999, start));
        }
    }
    records.push(row("lost-bye".into(), "INVITE", 200, now - 2 * 3_600_000));
    records.push(row("still-up".into(), "INVITE", 200, now));
    block_on(store.insert_acc_records(&records)).unwrap();
    let total_rows = records.len() as u64;

    // Kill the mediator as soon as it has written something, several times over.
    let mut killed_midway = 0;
    for run in 0..6 {
        if block_on(store.mediation_counts()).unwrap().pending <= 1 {
            break; // everything but the call still up is done
        }
        let mediator = Mediator::start(&config, directory.path(), run);
        let before = block_on(store.mediation_counts()).unwrap().cdrs;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = before;
        while seen == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            seen = block_on(store.mediation_counts()).unwrap().cdrs;
        }
        // A little more work before the kill, longer each run, so it lands mid-batch at times.
        std::thread::sleep(Duration::from_millis(20 * u64::from(run)));
        let log = mediator.log();
        mediator.kill_9();
        let after = block_on(store.mediation_counts()).unwrap();
        assert!(after.cdrs > before, "run {run} mediated nothing:\n{log}");
        if after.pending > 1 {
            killed_midway += 1;
        }
        // Invariant at every point: each mediated call has its rows archived or trashed,
        // never half of them.
        assert_eq!(after.pending + after.archived + after.trashed, total_rows);
    }
    assert!(
        killed_midway >= 2,
        "the mediator finished before most kills"
    );

    // Restart and let it finish.
    let mediator = Mediator::start(&config, directory.path(), 99);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counts = block_on(store.mediation_counts()).unwrap();
        if counts.pending == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{counts:?}\n{}", mediator.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    mediator.kill_9();

    let counts = block_on(store.mediation_counts()).unwrap();
    // One CDR per INVITE: CALLS finished calls + the one closed as failed; none doubled (acc_id
    // is unique and the count matches), none lost (nothing pending but the call still up).
    assert_eq!(counts.cdrs, CALLS as u64 + 1, "{counts:?}");
    assert_eq!(counts.pending, 1);
    assert_eq!(counts.trashed, 1);
    assert_eq!(counts.archived, total_rows - 2);
    let still_up = block_on(store.acc_group("still-up")).unwrap();
    assert_eq!(still_up.len(), 1, "the call still up waits for its BYE");
    let trash = block_on(store.list_acc_trash()).unwrap();
    assert_eq!(trash.len(), 1);
    assert_eq!(trash[0].call_id, "malformed");
    assert!(trash[0].reason.contains("999"), "{:?}", trash[0]);

    let filter = |status| store::CdrFilter {
        call_status: Some(status),
        ..store::CdrFilter::default()
    };
    let page = store::Page::new(1, 1);
    let count = |status| {
        block_on(store.list_cdrs(&filter(status), page))
            .unwrap()
            .total_count
    };
    assert_eq!(count(store::CallStatus::Ok), CALLS as u64 / 2);
    assert_eq!(count(store::CallStatus::Busy), CALLS as u64 / 2);
    let failed = block_on(store.list_cdrs(&filter(store::CallStatus::Failed), page)).unwrap();
    assert_eq!(failed.total_count, 1);
    assert_eq!(failed.items[0].call_id, "lost-bye");
    assert_eq!(failed.items[0].duration_ms, 0);
    let answered = block_on(store.list_cdrs(
        &store::CdrFilter {
            call_id: Some("kill-0".into()),
            ..store::CdrFilter::default()
        },
        page,
    ))
    .unwrap();
    assert_eq!(answered.items[0].duration_ms, 1_500);
}
