//! Accounting survives `kill -9`: under a SIPp call load through `voxide up`, the node is
//! killed with SIGKILL and started again, and every call the caller saw answered has its
//! accounting — a CDR once its BYE was answered, its INVITE row at least when the BYE never
//! got through — and no call has two CDRs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_core::auth::{ClientCredentials, DigestChallenge, RequestToSign};
use sip_message::{Contact, HeaderName, Message};

use e2e_tests::{Scene, TEST_DOMAIN, block_on, wait_until_udp_bound};
use store::{CdrRepository, Store};

const VOXIDE: &str = env!("CARGO_BIN_EXE_voxide");
/// Calls started, at [`RATE`] per second: the kill lands in the middle of them.
const CALLS: u32 = 300;
const RATE: u32 = 50;
/// How often the node is killed during the load.
const KILLS: u32 = 3;

/// What the caller saw of one call: the final answers to its INVITE and to its BYE.
#[derive(Debug, Default)]
struct Seen {
    invite_answered: bool,
    bye_answered: bool,
}

/// Reads SIPp's message log: per Call-ID, whether a 2xx to INVITE and to BYE arrived.
fn answered_calls(messages: &str) -> BTreeMap<String, Seen> {
    let mut calls: BTreeMap<String, Seen> = BTreeMap::new();
    for block in messages.split("message received") {
        let mut lines = block
            .lines()
            .skip_while(|line| !line.starts_with("SIP/2.0 "));
        let Some(status_line) = lines.next() else {
            continue;
        };
        let ok = status_line
            .split_whitespace()
            .nth(1)
            .is_some_and(|code| code.starts_with('2'));
        let mut call_id = None;
        let mut method = None;
        for line in lines {
            if line.trim().is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or_default();
            match name.trim().to_ascii_lowercase().as_str() {
                "call-id" | "i" => call_id = Some(value.trim().to_owned()),
                "cseq" => method = value.split_whitespace().nth(1).map(str::to_owned),
                _ => {}
            }
        }
        let (Some(call_id), Some(method)) = (call_id, method) else {
            continue;
        };
        let seen = calls.entry(call_id).or_default();
        match method.as_str() {
            "INVITE" if ok => seen.invite_answered = true,
            "BYE" if ok => seen.bye_answered = true,
            _ => {}
        }
    }
    calls
}

#[test]
fn kill_9_under_call_load_loses_no_answered_calls_accounting() {
    let mut scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let bob_port = Scene::free_port();
    let registered = scene.register("bob", bob_port).unwrap();
    assert!(registered.succeeded(), "{}", registered.report());
    let total = CALLS.to_string();
    let rate = RATE.to_string();
    let bob = scene
        .sipp("uas_call.xml", bob_port)
        .key("user", "bob")
        .args(["-m", total.as_str()])
        .spawn("bob-load")
        .unwrap();
    let bob_local = SocketAddr::new(scene.node.ports.public_ip, bob_port);
    wait_until_udp_bound(bob_local, None, Duration::from_secs(10)).unwrap();
    let alice = scene.subscriber("alice").clone();
    let caller = scene
        .sipp("uac_call.xml", Scene::free_port())
        .key("user", "alice")
        .key("callee", "bob")
        .credentials("alice", &alice.password, &format!("sip:bob@{TEST_DOMAIN}"))
        .args(["-m", total.as_str(), "-r", rate.as_str(), "-l", "100"])
        .spawn("alice-load")
        .unwrap();

    // Three times: the moment the caller sees one more call answered, kill the node with
    // SIGKILL and start it again. Before the rows were made durable first, the killed node
    // took the rows of the calls it had just answered with it.
    let store = block_on(Store::connect(&scene.node.database_url())).unwrap();
    let mut answered_before = 0;
    for kill in 0..KILLS {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answered = answered_calls(&caller.messages_so_far())
                .values()
                .filter(|seen| seen.invite_answered)
                .count();
            if answered > answered_before + (CALLS / 10) as usize {
                answered_before = answered;
                break;
            }
            assert!(Instant::now() < deadline, "kill {kill}: no call answered");
            std::thread::sleep(Duration::from_millis(1));
        }
        scene.node.kill_hard().unwrap();
        scene.node.restart().unwrap();
    }

    let caller = caller.wait(Duration::from_secs(120)).unwrap();
    drop(bob);
    let calls = answered_calls(&caller.messages);
    let answered: BTreeSet<&String> = calls
        .iter()
        .filter(|(_, seen)| seen.invite_answered)
        .map(|(call_id, _)| call_id)
        .collect();
    let finished: BTreeSet<&String> = calls
        .iter()
        .filter(|(_, seen)| seen.invite_answered && seen.bye_answered)
        .map(|(call_id, _)| call_id)
        .collect();
    assert!(
        finished.len() >= (CALLS / 4) as usize,
        "too few calls went through ({} of {CALLS}): {}",
        finished.len(),
        caller.report()
    );
    // SIPp retransmits across the restart, so most calls in flight at the kill still finish:
    // exactly the ones whose rows were written by the node that died.

    // Wait until the mediator has turned every finished call it can into a CDR.
    let cdrs_of = |call_id: &str| {
        block_on(store.list_cdrs(
            &store::CdrFilter {
                call_id: Some(call_id.to_owned()),
                ..store::CdrFilter::default()
            },
            store::Page::new(1, 10),
        ))
        .unwrap()
        .items
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing = finished
            .iter()
            .filter(|call_id| cdrs_of(call_id).is_empty())
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} answered and hung-up calls have no CDR:\n{}",
            scene.node.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for call_id in &answered {
        let cdrs = cdrs_of(call_id);
        assert!(cdrs.len() <= 1, "{call_id} has {} CDRs", cdrs.len());
        if finished.contains(call_id) {
            assert_eq!(cdrs[0].call_status, store::CallStatus::Ok, "{call_id}");
        } else if cdrs.is_empty() {
            // Answered, but the BYE never got its answer: the INVITE row waits for it.
            let rows = block_on(store.acc_group(call_id)).unwrap();
            assert!(
                rows.iter()
                    .any(|row| row.method == "INVITE" && row.sip_code == 200),
                "{call_id} was answered but its INVITE row is lost: {rows:?}"
            );
        }
    }
}

/// A caller written for this test, so the node can be killed the very moment the 200 of
/// an INVITE arrives (microseconds after the node sent it).
struct Caller {
    socket: UdpSocket,
    lb: SocketAddr,
    username: String,
    password: String,
    branch: std::cell::Cell<u32>,
}

/// An answered call: what the caller needs to acknowledge and end it.
struct Answered {
    call_id: String,
    from_tag: String,
    /// The 200's To (with the callee's tag).
    to: String,
    /// The callee's Contact: the Request-URI of ACK and BYE.
    target: String,
    /// The Record-Route in reverse: the Route of ACK and BYE.
    routes: Vec<String>,
}

impl Caller {
    fn new(lb: SocketAddr, username: &str, password: &str) -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Self {
            socket,
            lb,
            username: username.to_owned(),
            password: password.to_owned(),
            branch: std::cell::Cell::new(0),
        }
    }

    fn next_branch(&self) -> String {
        self.branch.set(self.branch.get() + 1);
        format!(
            "z9hG4bK-durable-{}-{}",
            std::process::id(),
            self.branch.get()
        )
    }

    /// Sends `request` until a response for `cseq_method` with a status in `wanted` arrives
    /// (retransmitting every 500 ms, as a phone does, across a node restart).
    fn exchange(&self, request: &str, method: &str, wanted: fn(u16) -> bool) -> Message {
        let deadline = Instant::now() + Duration::from_secs(20);
        self.socket.send_to(request.as_bytes(), self.lb).unwrap();
        let mut buffer = [0u8; 65_535];
        loop {
            assert!(Instant::now() < deadline, "no answer to:\n{request}");
            let Ok(length) = self.socket.recv(&mut buffer) else {
                self.socket.send_to(request.as_bytes(), self.lb).unwrap();
                continue;
            };
            let Ok(response) = Message::parse(Bytes::copy_from_slice(&buffer[..length])) else {
                continue;
            };
            let matches = response
                .cseq()
                .is_ok_and(|cseq| cseq.method.to_string() == method);
            if matches && response.status().is_some_and(wanted) {
                return response;
            }
        }
    }

    /// Calls `callee` and returns as soon as its 200 arrives (not acknowledged yet).
    fn call(&self, callee: &str, number: u32) -> Answered {
        let local = self.socket.local_addr().unwrap();
        let call_id = format!("durable-{number}-{}@127.0.0.1", std::process::id());
        let from_tag = format!("caller{number}");
        let uri = format!("sip:{callee}@{TEST_DOMAIN}");
        let invite = |branch: &str, cseq: u32, authorization: &str| {
            format!(
                "INVITE {uri} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:{user}@{TEST_DOMAIN}>;tag={from_tag}\r\n\
                 To: <{uri}>\r\n\
                 Call-ID: {call_id}\r\n\
                 CSeq: {cseq} INVITE\r\n\
                 Contact: <sip:{user}@{local}>\r\n\
                 {authorization}Content-Length: 0\r\n\r\n",
                user = self.username
            )
        };
        let first_branch = self.next_branch();
        let challenge = self.exchange(&invite(&first_branch, 1, ""), "INVITE", |s| s == 407);
        let to = String::from_utf8_lossy(challenge.header(&HeaderName::To).unwrap()).into_owned();
        let ack = format!(
            "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={first_branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@{TEST_DOMAIN}>;tag={from_tag}\r\n\
             To: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            user = self.username
        );
        self.socket.send_to(ack.as_bytes(), self.lb).unwrap();
        let offered = challenge
            .header_values(&HeaderName::ProxyAuthenticate)
            .next()
            .unwrap();
        let offered = DigestChallenge::parse(std::str::from_utf8(offered).unwrap()).unwrap();
        let answer = sip_core::auth::answer_challenge_with_cnonce(
            &offered,
            &ClientCredentials {
                username: &self.username,
                password: &self.password,
                realm: Some(TEST_DOMAIN),
            },
            &RequestToSign {
                method: "INVITE",
                uri: &uri,
                body: b"",
            },
            1,
            &format!("c{number}"),
        )
        .unwrap()
        .to_header_value()
        .unwrap();
        let branch = self.next_branch();
        let ok = self.exchange(
            &invite(&branch, 2, &format!("Proxy-Authorization: {answer}\r\n")),
            "INVITE",
            |status| (200..300).contains(&status),
        );
        let target = ok
            .contacts()
            .find_map(|contact| match contact {
                Ok(Contact::Address(address)) => {
                    Some(String::from_utf8_lossy(address.uri.raw).into_owned())
                }
                _ => None,
            })
            .expect("the 200 names the callee's Contact");
        let mut routes: Vec<String> = ok
            .record_routes()
            .map(|route| String::from_utf8_lossy(route.unwrap().raw).into_owned())
            .collect();
        routes.reverse();
        Answered {
            call_id,
            from_tag,
            to: String::from_utf8_lossy(ok.header(&HeaderName::To).unwrap()).into_owned(),
            target,
            routes,
        }
    }

    /// Acknowledges the 200 and hangs up; returns once the BYE is answered.
    fn hang_up(&self, call: &Answered) {
        let local = self.socket.local_addr().unwrap();
        let in_dialog = |method: &str, cseq: u32, branch: &str| {
            let routes: String = call
                .routes
                .iter()
                .map(|route| format!("Route: {route}\r\n"))
                .collect();
            format!(
                "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
                 {routes}Max-Forwards: 70\r\n\
                 From: <sip:{user}@{TEST_DOMAIN}>;tag={from_tag}\r\nTo: {to}\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
                target = call.target,
                user = self.username,
                from_tag = call.from_tag,
                to = call.to,
                call_id = call.call_id,
            )
        };
        let ack_branch = self.next_branch();
        self.socket
            .send_to(in_dialog("ACK", 2, &ack_branch).as_bytes(), self.lb)
            .unwrap();
        let bye_branch = self.next_branch();
        let answer = self.exchange(&in_dialog("BYE", 3, &bye_branch), "BYE", |status| {
            status >= 200
        });
        assert_eq!(answer.status(), Some(200), "BYE of {}", call.call_id);
    }
}

#[test]
fn a_call_answered_the_moment_before_a_kill_9_still_gets_its_cdr() {
    const ROUNDS: u32 = 5;
    let mut scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let bob_port = Scene::free_port();
    let registered = scene.register("bob", bob_port).unwrap();
    assert!(registered.succeeded(), "{}", registered.report());
    let rounds = ROUNDS.to_string();
    let _bob = scene
        .sipp("uas_call.xml", bob_port)
        .key("user", "bob")
        .args(["-m", rounds.as_str()])
        .spawn("bob-durable")
        .unwrap();
    let bob_local = SocketAddr::new(scene.node.ports.public_ip, bob_port);
    wait_until_udp_bound(bob_local, None, Duration::from_secs(10)).unwrap();
    let alice = scene.subscriber("alice").clone();
    let caller = Caller::new(scene.node.sip_address(), "alice", &alice.password);
    let mut call_ids = Vec::new();
    for round in 0..ROUNDS {
        let call = caller.call("bob", round);
        // The 200 is here: the node dies now, before it could write anything it had queued.
        scene.node.kill_hard().unwrap();
        scene.node.restart().unwrap();
        caller.hang_up(&call);
        call_ids.push(call.call_id);
    }
    let store = block_on(Store::connect(&scene.node.database_url())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for call_id in &call_ids {
        loop {
            let cdrs = block_on(store.list_cdrs(
                &store::CdrFilter {
                    call_id: Some(call_id.clone()),
                    ..store::CdrFilter::default()
                },
                store::Page::new(1, 10),
            ))
            .unwrap()
            .items;
            if let [cdr] = cdrs.as_slice() {
                assert_eq!(cdr.call_status, store::CallStatus::Ok, "{call_id}");
                break;
            }
            assert!(cdrs.len() < 2, "{call_id} has {} CDRs", cdrs.len());
            let trash = block_on(store.list_acc_trash()).unwrap();
            assert!(
                Instant::now() < deadline,
                "{call_id}: answered, hung up, but no CDR; trash: {trash:?}\n{}",
                scene.node.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
