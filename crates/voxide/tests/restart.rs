//! Registrations live in the database: after `kill -9` and a new start, a subscriber who
//! registered before is still reachable.

use std::net::SocketAddr;
use std::time::Duration;

use e2e_tests::{Scene, TEST_DOMAIN, wait_until_udp_bound};

const VOXIDE: &str = env!("CARGO_BIN_EXE_voxide");

#[test]
fn the_callee_is_reachable_after_kill_9_and_a_restart() {
    let mut scene = Scene::start(VOXIDE, &["alice", "bob"]).unwrap();
    let bob_port = Scene::free_port();
    let registered = scene.register("bob", bob_port).unwrap();
    assert!(registered.succeeded(), "{}", registered.report());

    scene.node.kill_hard().unwrap();
    scene.node.restart().unwrap();
    scene
        .node
        .wait_for_log(
            &["served domains updated", "count=1"],
            Duration::from_secs(10),
        )
        .unwrap();

    // Bob does not register again: the binding from before the crash must be used.
    let bob = scene
        .sipp("uas_call.xml", bob_port)
        .key("user", "bob")
        .spawn("bob-after-restart")
        .unwrap();
    let bob_local = SocketAddr::new(scene.node.ports.public_ip, bob_port);
    wait_until_udp_bound(bob_local, None, Duration::from_secs(10)).unwrap();
    let alice = scene.subscriber("alice");
    let caller = scene
        .sipp("uac_call.xml", Scene::free_port())
        .key("user", "alice")
        .key("callee", "bob")
        .credentials("alice", &alice.password, &format!("sip:bob@{TEST_DOMAIN}"))
        .run("alice-after-restart")
        .unwrap();
    let callee = bob.wait(Duration::from_secs(40)).unwrap();
    assert!(
        caller.succeeded(),
        "caller: {}\n--- node\n{}",
        caller.report(),
        scene.node.log()
    );
    assert!(callee.succeeded(), "callee: {}", callee.report());
}
