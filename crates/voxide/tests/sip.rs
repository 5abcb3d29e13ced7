//! Whole-system SIP behaviour through the real `voxide up`: SIPp peers talk to the LB's
//! public UDP listener; the LB forwards to the proxy/registrar, which authenticates against
//! subscribers provisioned over the REST API.

use std::net::SocketAddr;
use std::time::Duration;

use e2e_tests::{Scene, TEST_DOMAIN, wait_until_udp_bound};

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
    // The INVITE may come once SIPp's socket is bound.
    let local = SocketAddr::new(scene.node.ports.public_ip, port);
    wait_until_udp_bound(local, None, Duration::from_secs(10)).unwrap();
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
    // The proxy consumed alice's digest answer: bob never sees her credentials.
    assert!(
        caller.messages.contains("Proxy-Authorization:"),
        "alice answered a 407: {}",
        caller.report()
    );
    assert!(
        !callee
            .messages
            .to_ascii_lowercase()
            .contains("proxy-authorization"),
        "the callee received the caller's credentials: {}",
        callee.report()
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

/// Sends `request` from `socket` to the node's LB and returns the answer's text.
fn exchange(socket: &std::net::UdpSocket, scene: &Scene, request: &str) -> String {
    socket
        .send_to(request.as_bytes(), scene.node.sip_address())
        .unwrap();
    let mut buffer = [0u8; 8192];
    let length = socket.recv(&mut buffer).unwrap();
    String::from_utf8_lossy(&buffer[..length]).into_owned()
}

/// A REGISTER for `user@domain` from `socket`, optionally with an Authorization header.
fn register_request(
    socket: &std::net::UdpSocket,
    user: &str,
    domain: &str,
    cseq: u32,
    authorization: Option<&str>,
) -> String {
    let local = socket.local_addr().unwrap();
    let authorization = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{domain} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-raw-{cseq}-{user};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{domain}>;tag=1\r\n\
         To: <sip:{user}@{domain}>\r\n\
         Call-ID: raw-register-{user}@{domain}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{local}>\r\n\
         {authorization}Content-Length: 0\r\n\r\n"
    )
}

fn challenges(answer: &str) -> Vec<&str> {
    answer
        .lines()
        .filter(|line| line.to_ascii_lowercase().starts_with("www-authenticate:"))
        .collect()
}

fn loopback_socket() -> std::net::UdpSocket {
    let socket = std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

#[test]
fn the_default_challenge_offers_md5_alone_and_a_domain_preference_adds_sha_256() {
    let scene = Scene::start(VOXIDE, &["alice"]).unwrap();
    let socket = loopback_socket();
    let answer = exchange(
        &socket,
        &scene,
        &register_request(&socket, "alice", TEST_DOMAIN, 1, None),
    );
    assert!(answer.starts_with("SIP/2.0 401"), "{answer}");
    let offered = challenges(&answer);
    assert_eq!(offered.len(), 1, "{answer}");
    assert!(offered[0].contains("algorithm=MD5"), "{answer}");
    assert!(
        offered[0].contains(&format!("realm=\"{TEST_DOMAIN}\"")),
        "{answer}"
    );

    // The operator asks for SHA-256 on the domain: offered first, MD5 after it, at once.
    let provisioning = scene.node.provisioning().unwrap();
    e2e_tests::block_on(async {
        let domains = provisioning.get("/api/domains/").await?;
        let id = domains["_embedded"]["ngcp:domains"][0]["id"]
            .as_i64()
            .expect("the domain's id");
        provisioning
            .put(
                &format!("/api/domainpreferences/{id}"),
                &serde_json::json!({ "digest_algorithms": "SHA-256,MD5" }),
            )
            .await
    })
    .unwrap();
    // Honoured within a second (the proxy re-checks whether any such preference exists at
    // most once a second).
    let set_at = std::time::Instant::now();
    let mut cseq = 2;
    let answer = loop {
        let answer = exchange(
            &socket,
            &scene,
            &register_request(&socket, "alice", TEST_DOMAIN, cseq, None),
        );
        if challenges(&answer).len() == 2 || set_at.elapsed() > Duration::from_millis(1500) {
            break answer;
        }
        cseq += 1;
        std::thread::sleep(Duration::from_millis(50));
    };
    let offered = challenges(&answer);
    assert_eq!(offered.len(), 2, "not within a second: {answer}");
    assert!(offered[0].contains("algorithm=SHA-256"), "{answer}");
    assert!(offered[1].contains("algorithm=MD5"), "{answer}");
}

#[test]
fn a_phone_registers_the_moment_its_domain_and_subscriber_are_created() {
    use sip_core::auth::{ClientCredentials, DigestChallenge, RequestToSign};

    // A node that already serves one domain; the new one is created while it runs.
    let scene = Scene::start(VOXIDE, &[]).unwrap();
    let provisioning = scene.node.provisioning().unwrap();
    let domain = "fresh.voxide.test";
    let subscriber = e2e_tests::block_on(async {
        let customer = provisioning.create_domain_and_customer(domain).await?;
        provisioning
            .create_subscriber(customer, domain, "carol", "carol-secret-1", "200001")
            .await
    })
    .unwrap();
    // Right after the 201 (no wait for a refresh): the LB serves the domain, the proxy
    // challenges for it and accepts the password.
    let socket = loopback_socket();
    let first = exchange(
        &socket,
        &scene,
        &register_request(&socket, "carol", domain, 1, None),
    );
    assert!(first.starts_with("SIP/2.0 401"), "not challenged: {first}");
    let challenge = challenges(&first)[0]
        .split_once(':')
        .map(|(_, value)| value.trim())
        .unwrap();
    let challenge = DigestChallenge::parse(challenge).unwrap();
    let uri = format!("sip:{domain}");
    let answer = sip_core::auth::answer_challenge_with_cnonce(
        &challenge,
        &ClientCredentials {
            username: "carol",
            password: &subscriber.password,
            realm: Some(domain),
        },
        &RequestToSign {
            method: "REGISTER",
            uri: &uri,
            body: b"",
        },
        1,
        "0a4f113b",
    )
    .unwrap()
    .to_header_value()
    .unwrap();
    let second = exchange(
        &socket,
        &scene,
        &register_request(&socket, "carol", domain, 2, Some(&answer)),
    );
    assert!(second.starts_with("SIP/2.0 200"), "{second}");

    // A domain nobody created is refused as relaying, and stays refused.
    let stranger = exchange(
        &socket,
        &scene,
        &register_request(&socket, "carol", "nowhere.voxide.test", 3, None),
    );
    assert!(
        stranger.starts_with("SIP/2.0 403 Forbidden - relaying denied"),
        "{stranger}"
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
