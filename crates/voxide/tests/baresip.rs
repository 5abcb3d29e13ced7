//! Two real phones: baresip instances register through the LB, one calls the other, the
//! callee answers automatically, and each one receives the other's 440 Hz tone.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use e2e_tests::{Baresip, BaresipAccount, Scene, TEST_DOMAIN, free_udp_port};

const VOXIDE: &str = env!("CARGO_BIN_EXE_voxide");

/// Seconds the caller stays in the call before it hangs up and exits.
const CALL_SECONDS: u32 = 6;

fn account<'a>(scene: &'a Scene, username: &'a str) -> BaresipAccount<'a> {
    BaresipAccount {
        username,
        password: &scene.subscriber(username).password,
        domain: TEST_DOMAIN,
        outbound: scene.node.sip_address(),
        transport: "udp",
        local: SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port().unwrap())),
    }
}

/// Wait until `callee` has ended the call, so its audio dump is complete and closed; on
/// failure show the caller's log too, which says why the call never came.
fn call_ended(callee: &Baresip, caller: &Baresip) {
    if let Err(error) = callee.wait_for_log("terminated (duration", Duration::from_secs(15)) {
        panic!("{error:#}\ncaller log:\n{}", caller.log());
    }
}

/// Whether `samples` carry a tone rather than silence or comfort noise: a sine at the
/// source's level swings far beyond a few quantisation steps.
fn carries_a_tone(samples: &[i16]) -> bool {
    let loud = samples
        .iter()
        .filter(|sample| sample.unsigned_abs() > 1000)
        .count();
    // At least a quarter of a second (8 kHz) of loud samples.
    loud > 2000
}

#[test]
fn two_baresip_phones_call_each_other_and_hear_each_other() {
    // The default challenge (MD5 alone) is what baresip 1.0 answers.
    let scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let directory = scene.node.directory().to_owned();

    let bob = Baresip::start(
        &directory.join("bob"),
        &account(&scene, "bob"),
        &[],
        Some(60),
    )
    .unwrap();
    bob.wait_for_log(
        &format!("bob@{TEST_DOMAIN}: {{0/UDP/v4}} 200 OK"),
        Duration::from_secs(15),
    )
    .unwrap();

    let mut alice = Baresip::start(
        &directory.join("alice"),
        &account(&scene, "alice"),
        &[&format!("/dial sip:bob@{TEST_DOMAIN}")],
        Some(CALL_SECONDS),
    )
    .unwrap();
    alice
        .wait(Duration::from_secs(u64::from(CALL_SECONDS) + 20))
        .unwrap();
    call_ended(&bob, &alice);

    let alice_log = alice.log();
    assert!(
        alice_log.contains("Call established"),
        "alice:\n{alice_log}"
    );
    assert!(
        bob.log().contains("Call established"),
        "bob:\n{}",
        bob.log()
    );

    let heard_by_alice = alice.received_audio().unwrap();
    let heard_by_bob = bob.received_audio().unwrap();
    assert!(
        carries_a_tone(&heard_by_alice),
        "alice received {} samples without a tone\n{alice_log}",
        heard_by_alice.len()
    );
    assert!(
        carries_a_tone(&heard_by_bob),
        "bob received {} samples without a tone\n{}",
        heard_by_bob.len(),
        bob.log()
    );
}

/// TLS ↔ UDP: Bob registers over TLS; Alice's call over UDP reaches him on his TLS
/// connection (the LB keeps it and the flow token in Path names it), and audio flows.
#[test]
fn a_phone_registered_over_tls_receives_a_call_from_udp() {
    let scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let directory = scene.node.directory().to_owned();
    let bob_account = BaresipAccount {
        outbound: SocketAddr::new(scene.node.ports.public_ip, scene.node.ports.sip_tls),
        transport: "tls",
        ..account(&scene, "bob")
    };
    let bob = Baresip::start(&directory.join("bob"), &bob_account, &[], Some(60)).unwrap();
    bob.wait_for_log(
        &format!("bob@{TEST_DOMAIN}: {{0/TLS/v4}} 200 OK"),
        Duration::from_secs(15),
    )
    .unwrap();

    let mut alice = Baresip::start(
        &directory.join("alice"),
        &account(&scene, "alice"),
        &[&format!("/dial sip:bob@{TEST_DOMAIN}")],
        Some(CALL_SECONDS),
    )
    .unwrap();
    alice
        .wait(Duration::from_secs(u64::from(CALL_SECONDS) + 20))
        .unwrap();
    call_ended(&bob, &alice);
    assert!(
        alice.log().contains("Call established"),
        "alice:\n{}",
        alice.log()
    );
    assert!(
        bob.log().contains("Call established"),
        "bob:\n{}",
        bob.log()
    );
    assert!(
        carries_a_tone(&bob.received_audio().unwrap()),
        "bob:\n{}",
        bob.log()
    );
    assert!(
        carries_a_tone(&alice.received_audio().unwrap()),
        "alice:\n{}",
        alice.log()
    );
}
