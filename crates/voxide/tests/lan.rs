//! Out of the box on a real LAN (issue 12): `voxide up` with no configuration file, as a new
//! user starts it, on a LAN built from network namespaces ([`LanLab`]), and stock phones —
//! SIPp, baresip, PJSUA2, linphonec — with their own defaults (no digest algorithm forced).
//! Subscribers are provisioned over the API right before the phones register, so the LB must
//! serve a new domain at once. The proxy challenges with MD5 unless the preference
//! `digest_algorithms` asks for SHA-256; the media relay advertises the address of the
//! default-route interface (the LAN), and a node with no route at all still starts on
//! 127.0.0.1 with one warning.
//!
//! Needs root (network namespaces); skipped with a message otherwise.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use e2e_tests::pjsua2::{self, Pjsua2Account, Pjsua2Registration};
use e2e_tests::sip_trace::digest_algorithms;
use e2e_tests::{
    Audio, Baresip, BaresipAccount, BaresipMedia, DefaultNode, LanHost, LanLab, LinphoneAccount,
    Linphonec, Namespace, Sipp, SippOutcome, Subscriber, TEST_DOMAIN, block_on,
};
use serde_json::json;

const VOXIDE: &str = env!("CARGO_BIN_EXE_voxide");
/// The SIP port each phone uses in its own namespace (the phones' default).
const PHONE_SIP_PORT: u16 = 5060;
/// Seconds the caller stays in a baresip call.
const CALL_SECONDS: u32 = 6;

/// Whether the test can run; says why not when it cannot.
fn runs_as_root() -> bool {
    let root = e2e_tests::is_root();
    if !root {
        eprintln!("skipped: needs root to create network namespaces (run the tests as root)");
    }
    root
}

/// A LAN with `voxide up` on its server and `phones` phone namespaces.
struct Office {
    // Stopped before the namespaces go.
    node: DefaultNode,
    lab: LanLab,
}

impl Office {
    fn open(phones: usize) -> Self {
        let lab = LanLab::create(phones).expect("creating the LAN namespaces (needs root, ip)");
        let node = DefaultNode::start(VOXIDE, lab.server.netns(), IpAddr::V4(lab.server.ip))
            .expect("voxide up without a configuration file");
        Self { node, lab }
    }

    fn phone(&self, index: usize) -> &LanHost {
        self.lab.phone(index)
    }

    /// The SIP address of phone `index`.
    fn phone_sip(&self, index: usize) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.phone(index).ip), PHONE_SIP_PORT)
    }
}

/// What [`provision`] created.
struct Provisioned {
    domain_id: i64,
    subscribers: Vec<Subscriber>,
}

impl Provisioned {
    fn subscriber(&self, username: &str) -> &Subscriber {
        self.subscribers
            .iter()
            .find(|subscriber| subscriber.username == username)
            .unwrap_or_else(|| panic!("no subscriber {username}"))
    }
}

/// [`TEST_DOMAIN`], a customer and `usernames` as subscribers, over the node's HTTPS API
/// from the root namespace — nothing waits for the LB afterwards.
fn provision(node: &DefaultNode, usernames: &[&str]) -> Provisioned {
    let api = node.provisioning().expect("a REST client");
    block_on(async {
        let domain_id = api.create_domain(TEST_DOMAIN).await?;
        let customer = api
            .create("/api/customers/", &json!({ "name": "the office" }))
            .await?;
        let mut subscribers = Vec::new();
        for (index, username) in usernames.iter().enumerate() {
            let password = format!("lan-secret-{username}-1");
            let sn = format!("{}", 200_000 + index);
            subscribers.push(
                api.create_subscriber(customer, TEST_DOMAIN, username, &password, &sn)
                    .await?,
            );
        }
        anyhow::Ok(Provisioned {
            domain_id,
            subscribers,
        })
    })
    .unwrap_or_else(|error| {
        panic!(
            "provisioning over {}: {error:#}\n--- voxide\n{}",
            node.api_url(),
            node.log()
        )
    })
}

/// Set the preference `digest_algorithms` (the only one set) on `path`, e.g.
/// `/api/domainpreferences/1`.
fn set_digest_algorithms(node: &DefaultNode, path: &str, value: &str) {
    let api = node.provisioning().expect("a REST client");
    block_on(api.put(path, &json!({ "digest_algorithms": value })))
        .unwrap_or_else(|error| panic!("PUT {path}: {error:#}"));
}

/// Register `subscriber` with PJSUA2 from phone `index`.
fn pjsua2_register(office: &Office, index: usize, subscriber: &Subscriber) -> Pjsua2Registration {
    pjsua2::register(
        &Pjsua2Account {
            username: &subscriber.username,
            password: &subscriber.password,
            domain: TEST_DOMAIN,
            registrar: office.node.sip_address(),
            local: office.phone_sip(index),
            netns: Some(office.phone(index).netns()),
        },
        office.node.directory(),
        &subscriber.username,
    )
    .expect("running the PJSUA2 driver (pip package pjsua2-python)")
}

/// Asserts that every digest challenge in `trace` offered `expected` and nothing else, and
/// that every answer used it.
fn assert_digest_algorithm(trace: &str, expected: &str, report: &str) {
    let offered = digest_algorithms(trace, "WWW-Authenticate");
    assert!(
        !offered.is_empty(),
        "no 401 challenge in the trace:\n{report}"
    );
    assert!(
        offered.iter().all(|algorithm| algorithm == expected),
        "the challenges offered {offered:?}, not {expected} alone:\n{report}"
    );
    let answered = digest_algorithms(trace, "Authorization");
    assert!(
        !answered.is_empty(),
        "no Authorization in the trace:\n{report}"
    );
    assert!(
        answered.iter().all(|algorithm| algorithm == expected),
        "the phone answered with {answered:?}:\n{report}"
    );
}

/// How many times SIPp sent the first REGISTER (CSeq 1): more than once means the LB let
/// the first one go unanswered.
fn first_register_sends(outcome: &SippOutcome) -> usize {
    outcome
        .messages
        .split("\n----------")
        .filter(|block| block.contains("message sent") && block.contains("CSeq: 1 REGISTER"))
        .count()
}

#[test]
fn sipp_registers_with_a_default_node_on_the_lan() {
    if !runs_as_root() {
        return;
    }
    let office = Office::open(1);
    let provisioned = provision(&office.node, &["alice"]);
    let alice = provisioned.subscriber("alice");
    let outcome = Sipp::new(
        "register.xml",
        office.node.sip_address(),
        office.phone_sip(0),
        office.node.directory(),
    )
    .in_netns(office.phone(0).netns())
    .key("domain", TEST_DOMAIN)
    .key("user", "alice")
    .key("expires", "3600")
    .credentials("alice", &alice.password, &format!("sip:{TEST_DOMAIN}"))
    .run("alice-lan")
    .unwrap();
    let report = format!("{}\n--- voxide\n{}", outcome.report(), office.node.log());
    assert!(outcome.succeeded(), "{report}");
    // SIPp 3.6 knows MD5 only and reads only the first challenge.
    assert_digest_algorithm(&outcome.messages, "MD5", &report);
    // The domain created a moment ago was served from the first REGISTER on: SIPp did not
    // have to retransmit it (its timer is 500 ms).
    assert_eq!(first_register_sends(&outcome), 1, "{report}");
}

#[test]
fn baresip_registers_with_a_default_node_on_the_lan() {
    if !runs_as_root() {
        return;
    }
    let office = Office::open(1);
    let provisioned = provision(&office.node, &["alice"]);
    let alice = provisioned.subscriber("alice");
    let phone = Baresip::start_with(
        &office.node.directory().join("baresip-alice"),
        &BaresipAccount {
            username: "alice",
            password: &alice.password,
            domain: TEST_DOMAIN,
            outbound: office.node.sip_address(),
            transport: "udp",
            local: office.phone_sip(0),
        },
        &[],
        Some(60),
        &BaresipMedia {
            netns: Some(office.phone(0).netns()),
            sip_trace: true,
            ..BaresipMedia::default()
        },
    )
    .unwrap();
    if let Err(error) = phone.wait_for_log(
        &format!("alice@{TEST_DOMAIN}: {{0/UDP/v4}} 200 OK"),
        Duration::from_secs(15),
    ) {
        panic!("{error:#}\n--- voxide\n{}", office.node.log());
    }
    // baresip 1.0 (libre) answers MD5 only and gives up on anything else.
    assert_digest_algorithm(&phone.log(), "MD5", &phone.log());
}

#[test]
fn pjsua2_registers_with_a_default_node_on_the_lan() {
    if !runs_as_root() {
        return;
    }
    let office = Office::open(1);
    let provisioned = provision(&office.node, &["alice"]);
    let registration = pjsua2_register(&office, 0, provisioned.subscriber("alice"));
    let report = format!(
        "{}\n--- voxide\n{}",
        registration.report(),
        office.node.log()
    );
    assert!(registration.registered(), "{report}");
    // No preference set: the proxy challenges with MD5 alone.
    assert_digest_algorithm(&registration.log, "MD5", &report);
}

#[test]
fn linphonec_registers_with_a_default_node_on_the_lan() {
    if !runs_as_root() {
        return;
    }
    let office = Office::open(1);
    let provisioned = provision(&office.node, &["alice"]);
    let alice = provisioned.subscriber("alice");
    let mut phone = Linphonec::start(
        &office.node.directory().join("linphone-alice"),
        &LinphoneAccount {
            username: "alice",
            password: &alice.password,
            domain: TEST_DOMAIN,
            proxy: office.node.sip_address(),
            local_port: PHONE_SIP_PORT,
        },
        Some(office.phone(0).netns()),
    )
    .unwrap();
    if let Err(error) = phone.wait_registered(Duration::from_secs(20)) {
        panic!("{error:#}\n--- voxide\n{}", office.node.log());
    }
    // What a user of linphonec sees.
    phone.command("status register").unwrap();
    phone
        .wait_for_output(
            &format!("registered, identity=sip:alice@{TEST_DOMAIN}"),
            Duration::from_secs(10),
        )
        .unwrap();
    assert_digest_algorithm(&phone.log(), "MD5", &phone.report());
}

#[test]
fn pjsua2_registers_with_sha256_when_the_domain_asks_for_it() {
    if !runs_as_root() {
        return;
    }
    let office = Office::open(1);
    let provisioned = provision(&office.node, &["alice"]);
    set_digest_algorithms(
        &office.node,
        &format!("/api/domainpreferences/{}", provisioned.domain_id),
        "SHA-256",
    );
    let registration = pjsua2_register(&office, 0, provisioned.subscriber("alice"));
    let report = format!(
        "{}\n--- voxide\n{}",
        registration.report(),
        office.node.log()
    );
    assert!(registration.registered(), "{report}");
    assert_digest_algorithm(&registration.log, "SHA-256", &report);
}

#[test]
fn a_subscriber_preference_asks_for_sha256_for_that_subscriber_only() {
    if !runs_as_root() {
        return;
    }
    let office = Office::open(2);
    let provisioned = provision(&office.node, &["alice", "bob"]);
    let alice = provisioned.subscriber("alice");
    set_digest_algorithms(
        &office.node,
        &format!("/api/subscriberpreferences/{}", alice.id),
        "SHA-256",
    );
    let registration = pjsua2_register(&office, 0, alice);
    let report = format!(
        "{}\n--- voxide\n{}",
        registration.report(),
        office.node.log()
    );
    assert!(registration.registered(), "{report}");
    assert_digest_algorithm(&registration.log, "SHA-256", &report);

    let registration = pjsua2_register(&office, 1, provisioned.subscriber("bob"));
    let report = format!(
        "{}\n--- voxide\n{}",
        registration.report(),
        office.node.log()
    );
    assert!(registration.registered(), "{report}");
    assert_digest_algorithm(&registration.log, "MD5", &report);
}

/// Asserts that `audio` carries the tone at `expected` Hz, far stronger than at `other` Hz.
fn assert_tone(who: &str, audio: &Audio, expected: f64, other: f64, log: &str) {
    audio.assert_tone(who, expected, other, 10.0, log);
}

/// Asserts that every SDP `who` received names the server's LAN address: the relay's
/// default address is the default-route interface's, not 127.0.0.1.
fn assert_sdp_names(who: &str, lines: &[String], server: Ipv4Addr, log: &str) {
    let connections: Vec<&String> = lines.iter().filter(|line| line.starts_with("c=")).collect();
    assert!(!connections.is_empty(), "{who} received no SDP:\n{log}");
    let expected = format!("c=IN IP4 {server}");
    assert!(
        connections.iter().all(|line| **line == expected),
        "{who} received {connections:?}, not {expected}:\n{log}"
    );
    assert!(
        !lines.iter().any(|line| line.contains("127.0.0.1")),
        "{who} received SDP naming 127.0.0.1: {lines:?}"
    );
}

#[test]
fn two_baresip_phones_on_the_lan_call_each_other_through_a_default_node() {
    if !runs_as_root() {
        return;
    }
    let office = Office::open(2);
    let provisioned = provision(&office.node, &["alice", "bob"]);
    let directory = office.node.directory().to_owned();
    let account = |username: &'static str, index: usize| BaresipAccount {
        username,
        password: &provisioned.subscriber(username).password,
        domain: TEST_DOMAIN,
        outbound: office.node.sip_address(),
        transport: "udp",
        local: office.phone_sip(index),
    };

    let bob = Baresip::start_with(
        &directory.join("bob"),
        &account("bob", 1),
        &[],
        Some(60),
        &BaresipMedia {
            tone_hz: 660,
            netns: Some(office.phone(1).netns()),
            sip_trace: true,
            ..BaresipMedia::default()
        },
    )
    .unwrap();
    if let Err(error) = bob.wait_for_log(
        &format!("bob@{TEST_DOMAIN}: {{0/UDP/v4}} 200 OK"),
        Duration::from_secs(15),
    ) {
        panic!("{error:#}\n--- voxide\n{}", office.node.log());
    }
    let mut alice = Baresip::start_with(
        &directory.join("alice"),
        &account("alice", 0),
        &[&format!("/dial sip:bob@{TEST_DOMAIN}")],
        Some(CALL_SECONDS),
        &BaresipMedia {
            tone_hz: 440,
            netns: Some(office.phone(0).netns()),
            sip_trace: true,
            ..BaresipMedia::default()
        },
    )
    .unwrap();
    alice
        .wait(Duration::from_secs(u64::from(CALL_SECONDS) + 20))
        .unwrap();
    if let Err(error) = bob.wait_for_log("terminated (duration", Duration::from_secs(15)) {
        panic!(
            "{error:#}\n--- alice\n{}\n--- voxide\n{}",
            alice.log(),
            office.node.log()
        );
    }

    let server = office.lab.server.ip;
    assert_sdp_names(
        "alice",
        &alice.received_sdp_lines(office.phone_sip(0)),
        server,
        &alice.log(),
    );
    assert_sdp_names(
        "bob",
        &bob.received_sdp_lines(office.phone_sip(1)),
        server,
        &bob.log(),
    );
    assert_tone(
        "alice",
        &alice.received_audio_with_format().unwrap(),
        660.0,
        440.0,
        &alice.log(),
    );
    assert_tone(
        "bob",
        &bob.received_audio_with_format().unwrap(),
        440.0,
        660.0,
        &bob.log(),
    );
}

#[test]
fn voxide_up_without_a_default_route_serves_loopback_after_one_warning() {
    if !runs_as_root() {
        return;
    }
    // Only `lo`: no interface, no route, as on a machine before its network is up.
    let namespace = Namespace::create("vxlo").expect("a namespace (needs root, ip)");
    let node = DefaultNode::start(VOXIDE, namespace.name(), IpAddr::V4(Ipv4Addr::LOCALHOST))
        .expect("voxide up starts without a default route");
    let log = node.log();
    assert!(
        !log.contains("Network is unreachable"),
        "voxide up tripped over the missing route:\n{log}"
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.to_ascii_lowercase().contains("warn"))
        .filter(|line| line.contains("lb.public_address") || line.contains("media.address"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "expected one warning naming lb.public_address and media.address:\n{log}"
    );
    assert!(
        warnings[0].contains("lb.public_address") && warnings[0].contains("media.address"),
        "{}",
        warnings[0]
    );

    // Provisioned with the CLI inside the namespace, with its defaults (the API at
    // https://127.0.0.1:1443, the user `administrator`).
    node.admin(&["domain", "add", TEST_DOMAIN]).unwrap();
    let created = node.admin(&["customer", "add", "the lone box"]).unwrap();
    let customer = created
        .split_whitespace()
        .skip_while(|word| *word != "customer")
        .nth(1)
        .unwrap_or_else(|| panic!("no customer id in `{created}`"))
        .to_owned();
    let password = "lone-secret-alice-1";
    node.admin(&[
        "subscriber",
        "add",
        TEST_DOMAIN,
        "alice",
        password,
        "--customer",
        &customer,
        "--cc",
        "43",
        "--ac",
        "1",
        "--sn",
        "300000",
    ])
    .unwrap();

    let outcome = Sipp::new(
        "register.xml",
        node.sip_address(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 5090)),
        node.directory(),
    )
    .in_netns(namespace.name())
    .key("domain", TEST_DOMAIN)
    .key("user", "alice")
    .key("expires", "3600")
    .credentials("alice", password, &format!("sip:{TEST_DOMAIN}"))
    .run("alice-loopback")
    .unwrap();
    assert!(
        outcome.succeeded(),
        "{}\n--- voxide\n{}",
        outcome.report(),
        node.log()
    );
    drop(node);
    drop(namespace);
}
