//! Whole-system SIP behaviour through the real `voxide up`: SIPp peers talk to the LB's
//! public UDP listener; the LB forwards to the proxy/registrar, which authenticates against
//! subscribers provisioned over the REST API.

use std::time::Duration;

use e2e_tests::{Scene, TEST_DOMAIN};

const VOXIDE: &str = env!("CARGO_BIN_EXE_voxide");

#[test]
fn register_with_digest_authentication() {
    let scene = Scene::start(VOXIDE, &["alice"]).unwrap();
    let outcome = scene.register("alice", Scene::free_port()).unwrap();
    assert!(outcome.succeeded(), "{}", outcome.report());
    // The challenge names the subscriber's domain as realm and the 200 lists the binding.
    assert!(
        outcome
            .messages
            .contains(&format!("realm=\"{TEST_DOMAIN}\"")),
        "{}",
        outcome.report()
    );
    let ok = outcome
        .messages
        .split("SIP/2.0 200")
        .nth(1)
        .unwrap_or_else(|| panic!("no 200: {}", outcome.report()));
    assert!(ok.to_ascii_lowercase().contains("expires="), "{ok}");
}

#[test]
fn a_wrong_password_is_challenged_again() {
    let scene = Scene::start(VOXIDE, &["alice"]).unwrap();
    let outcome = scene
        .sipp("register_wrong_password.xml", Scene::free_port())
        .key("user", "alice")
        .key("expires", "3600")
        .credentials("alice", "not-the-password", &format!("sip:{TEST_DOMAIN}"))
        .run("wrong-password")
        .unwrap();
    assert!(outcome.succeeded(), "{}", outcome.report());
}

#[test]
fn registering_another_subscribers_address_of_record_is_forbidden() {
    let scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let alice = scene.subscriber("alice");
    // Alice authenticates correctly but asks to bind Bob's AoR.
    let outcome = scene
        .sipp("register_foreign_aor.xml", Scene::free_port())
        .key("user", "bob")
        .key("expires", "3600")
        .credentials("alice", &alice.password, &format!("sip:{TEST_DOMAIN}"))
        .run("foreign-aor")
        .unwrap();
    assert!(outcome.succeeded(), "{}", outcome.report());
}

#[test]
fn malformed_requests_get_400() {
    let scene = Scene::start(VOXIDE, &["alice"]).unwrap();
    let outcome = scene
        .sipp("malformed.xml", Scene::free_port())
        .key("user", "alice")
        .run("malformed")
        .unwrap();
    assert!(outcome.succeeded(), "{}", outcome.report());
}

/// Bob registers from `port` and then answers there with `scenario`.
fn bob_answers(scene: &Scene, scenario: &str, port: u16) -> e2e_tests::SippProcess {
    let registered = scene.register("bob", port).unwrap();
    assert!(registered.succeeded(), "{}", registered.report());
    let process = scene
        .sipp(scenario, port)
        .key("user", "bob")
        .spawn(&format!("bob-{scenario}"))
        .unwrap();
    // SIPp binds its socket right away; give it a moment before the INVITE arrives.
    std::thread::sleep(Duration::from_millis(300));
    process
}

fn alice_calls_bob(scene: &Scene, scenario: &str) -> e2e_tests::SippOutcome {
    let alice = scene.subscriber("alice");
    scene
        .sipp(scenario, Scene::free_port())
        .key("user", "alice")
        .key("callee", "bob")
        .credentials("alice", &alice.password, &format!("sip:bob@{TEST_DOMAIN}"))
        .run(&format!("alice-{scenario}"))
        .unwrap()
}

#[test]
fn a_call_rings_is_answered_and_hung_up() {
    let scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let bob = bob_answers(&scene, "uas_call.xml", Scene::free_port());
    let caller = alice_calls_bob(&scene, "uac_call.xml");
    let callee = bob.wait(Duration::from_secs(40)).unwrap();
    assert!(caller.succeeded(), "caller: {}", caller.report());
    assert!(callee.succeeded(), "callee: {}", callee.report());
    // The LB record-routed the dialog, so the ACK and BYE came back through it.
    assert!(
        caller.messages.contains("Record-Route:"),
        "{}",
        caller.report()
    );
}

#[test]
fn a_ringing_call_can_be_cancelled() {
    let scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let bob = bob_answers(&scene, "uas_cancel.xml", Scene::free_port());
    let caller = alice_calls_bob(&scene, "uac_cancel.xml");
    let callee = bob.wait(Duration::from_secs(40)).unwrap();
    assert!(caller.succeeded(), "caller: {}", caller.report());
    assert!(callee.succeeded(), "callee: {}", callee.report());
}

#[test]
fn calling_an_unregistered_subscriber_gets_480() {
    let scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let caller = alice_calls_bob(&scene, "uac_offline.xml");
    assert!(caller.succeeded(), "{}", caller.report());
}

#[test]
fn the_default_challenge_offers_sha_256_first_then_md5() {
    use std::net::{Ipv4Addr, UdpSocket};

    use e2e_tests::NodePorts;

    let scene = Scene::start_with_ports(VOXIDE, NodePorts::free().unwrap(), &["alice"]).unwrap();
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let register = format!(
        "REGISTER sip:{TEST_DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-default-challenge;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{TEST_DOMAIN}>;tag=1\r\n\
         To: <sip:alice@{TEST_DOMAIN}>\r\n\
         Call-ID: default-challenge@127.0.0.1\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:alice@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    socket
        .send_to(register.as_bytes(), scene.node.sip_address())
        .unwrap();
    let mut buffer = [0u8; 4096];
    let length = socket.recv(&mut buffer).unwrap();
    let answer = String::from_utf8_lossy(&buffer[..length]).into_owned();
    assert!(answer.starts_with("SIP/2.0 401"), "{answer}");
    let challenges: Vec<&str> = answer
        .lines()
        .filter(|line| line.to_ascii_lowercase().starts_with("www-authenticate:"))
        .collect();
    assert_eq!(challenges.len(), 2, "{answer}");
    assert!(challenges[0].contains("algorithm=SHA-256"), "{answer}");
    assert!(challenges[1].contains("algorithm=MD5"), "{answer}");
    assert!(
        challenges
            .iter()
            .all(|challenge| challenge.contains(&format!("realm=\"{TEST_DOMAIN}\""))),
        "{answer}"
    );
}

#[test]
fn register_over_tcp() {
    let scene = Scene::start(VOXIDE, &["alice"]).unwrap();
    let alice = scene.subscriber("alice");
    let outcome = scene
        .sipp("register.xml", Scene::free_port())
        .args(["-t", "t1"])
        .key("user", "alice")
        .key("expires", "3600")
        .credentials("alice", &alice.password, &format!("sip:{TEST_DOMAIN}"))
        .run("register-tcp")
        .unwrap();
    assert!(outcome.succeeded(), "{}", outcome.report());
    assert!(
        outcome.messages.contains("TCP message"),
        "{}",
        outcome.report()
    );
}

#[test]
fn calling_an_unknown_user_gets_404() {
    let scene = Scene::start(VOXIDE, &["alice"]).unwrap();
    let alice = scene.subscriber("alice");
    let caller = scene
        .sipp("uac_unknown.xml", Scene::free_port())
        .key("user", "alice")
        .key("callee", "nobody")
        .credentials(
            "alice",
            &alice.password,
            &format!("sip:nobody@{TEST_DOMAIN}"),
        )
        .run("alice-calls-nobody")
        .unwrap();
    assert!(caller.succeeded(), "{}", caller.report());
}

#[test]
fn a_subscriber_is_reachable_by_its_e164_number() {
    let scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let bob = bob_answers(&scene, "uas_call.xml", Scene::free_port());
    let number = scene.subscriber("bob").number.clone();
    let alice = scene.subscriber("alice");
    let caller = scene
        .sipp("uac_call.xml", Scene::free_port())
        .key("user", "alice")
        .key("callee", &number)
        .credentials(
            "alice",
            &alice.password,
            &format!("sip:{number}@{TEST_DOMAIN}"),
        )
        .run("alice-calls-number")
        .unwrap();
    let callee = bob.wait(Duration::from_secs(40)).unwrap();
    assert!(caller.succeeded(), "caller: {}", caller.report());
    assert!(callee.succeeded(), "callee: {}", callee.report());
}
