//! NAT traversal: a phone in its own network namespace behind a masquerading router
//! registers with its private Contact and still receives a call, because the LB recorded the
//! address the REGISTER really came from (Path with `received`, RFC 3327 / RFC 3581).
//! Needs root (it creates network namespaces and an iptables rule inside them).

use std::net::SocketAddr;
use std::time::Duration;

use e2e_tests::{NatLab, NodePorts, Scene, TEST_DOMAIN, wait_until_udp_bound};

const VOXIDE: &str = env!("CARGO_BIN_EXE_voxide");

#[test]
fn a_phone_behind_nat_registers_and_receives_a_call() {
    let lab = NatLab::create().expect("creating the NAT namespaces (needs root, ip, iptables)");
    let ports = NodePorts {
        public_ip: lab.public_ip,
        ..NodePorts::free().unwrap()
    };
    let scene = Scene::start_with_ports(VOXIDE, ports, &["alice", "bob"]).unwrap();

    // Bob behind the NAT: his Contact names 10.x.2.2, which nothing outside can route to.
    let bob_local = SocketAddr::new(lab.phone_ip, 5070);
    let registered = scene
        .register_from(
            "bob",
            scene
                .sipp_from("register.xml", bob_local)
                .in_netns(&lab.phone_namespace),
            "register-bob-behind-nat",
        )
        .unwrap();
    assert!(registered.succeeded(), "{}", registered.report());
    assert!(
        registered
            .messages
            .contains(&format!("received={}", lab.router_public_ip)),
        "the LB did not see the router's address: {}",
        registered.report()
    );

    let bob = scene
        .sipp_from("uas_call.xml", bob_local)
        .in_netns(&lab.phone_namespace)
        .key("user", "bob")
        .spawn("bob-behind-nat")
        .unwrap();
    wait_until_udp_bound(
        bob_local,
        Some(&lab.phone_namespace),
        Duration::from_secs(10),
    )
    .unwrap();

    let alice = scene.subscriber("alice");
    let caller = scene
        .sipp("uac_call.xml", Scene::free_port())
        .key("user", "alice")
        .key("callee", "bob")
        .credentials("alice", &alice.password, &format!("sip:bob@{TEST_DOMAIN}"))
        .run("alice-calls-behind-nat")
        .unwrap();
    let callee = bob.wait(Duration::from_secs(40)).unwrap();
    assert!(
        caller.succeeded(),
        "caller: {}\n--- node\n{}",
        caller.report(),
        scene.node.log()
    );
    assert!(callee.succeeded(), "callee: {}", callee.report());
    // The INVITE reached Bob at his private address, through the NAT binding.
    assert!(
        callee.messages.contains("INVITE sip:bob@"),
        "{}",
        callee.report()
    );
    drop(scene);
    drop(lab);
}
