//! The `voxide` binary as an operator starts it: configuration errors stop start-up naming
//! the key, `voxide up` prints what listens where, answers on those addresses and stops
//! cleanly on SIGTERM.

use std::process::Command;

use e2e_tests::{Node, block_on};

const VOXIDE: &str = env!("CARGO_BIN_EXE_voxide");

fn start_with_config(text: &str) -> std::process::Output {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("voxide.toml");
    std::fs::write(&path, text).unwrap();
    Command::new(VOXIDE)
        .arg("up")
        .arg("--config")
        .arg(&path)
        .current_dir(directory.path())
        .output()
        .unwrap()
}

#[test]
fn a_bad_configuration_stops_start_up_naming_the_key() {
    for (text, named) in [
        ("[lb]\nudp_lisen = \"127.0.0.1:0\"\n", "udp_lisen"),
        ("[proxy]\nlisten = \"nowhere\"\n", "listen"),
        (
            "[proxy]\nmin_expires = 600\nmax_expires = 60\n",
            "proxy.max_expires",
        ),
        ("[lb]\ntls_listen = \"on\"\n", "tls_listen"),
        ("colour = \"blue\"\n", "colour"),
    ] {
        let output = start_with_config(text);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text:?} started: {stderr}");
        assert!(
            stderr.contains(named),
            "{text:?}: stderr does not name `{named}`: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn up_prints_its_listeners_serves_the_api_and_stops_on_sigterm() {
    let mut node = Node::start(VOXIDE).unwrap();
    let log = node.log();
    let api_line = format!("provisioning: http://127.0.0.1:{}/api/", node.ports.api);
    assert!(log.contains(&api_line), "no `{api_line}` in:\n{log}");
    assert!(log.contains("database:"), "{log}");
    let ports = node.ports;
    for line in [
        format!("proxy:        udp 127.0.0.1:{} (internal)", ports.proxy),
        format!("lb:           udp 127.0.0.1:{} (public)", ports.sip),
        format!("lb:           tcp 127.0.0.1:{} (public)", ports.sip),
        format!("lb:           tls 127.0.0.1:{} (public)", ports.sip_tls),
        format!(
            "lb:           udp 127.0.0.1:{} (internal, towards 127.0.0.1:{})",
            ports.lb_internal, ports.proxy
        ),
    ] {
        assert!(
            log.lines().any(|printed| printed == line),
            "no `{line}` in:\n{log}"
        );
    }

    // The API answers with the administrator the node created from VOXIDE_ADMIN_PASSWORD.
    let provisioning = node.provisioning().unwrap();
    let domains = block_on(provisioning.get("/api/domains/")).unwrap();
    assert_eq!(domains["total_count"], 0, "{domains}");

    let status = node.terminate().unwrap();
    assert!(status.success(), "exit {status}:\n{}", node.log());
    assert!(node.log().contains("shutting down"), "{}", node.log());
}

#[test]
fn data_survive_a_restart() {
    let mut node = Node::start(VOXIDE).unwrap();
    let provisioning = node.provisioning().unwrap();
    block_on(provisioning.create_domain_and_customer("restart.test")).unwrap();
    node.kill_hard().unwrap();
    node.restart().unwrap();
    let domains = block_on(provisioning.get("/api/domains/?domain=restart.test")).unwrap();
    assert_eq!(domains["total_count"], 1, "{domains}");
}

/// `voxide proxy` and `voxide lb` run as separate processes against the same file, as on
/// split hosts: each prints only its own listeners, and a subscriber registers through them.
#[test]
fn lb_and_proxy_run_alone_against_the_same_configuration() {
    use e2e_tests::{Component, Scene};

    let mut scene = Scene::start(VOXIDE, &["alice"]).unwrap();
    // Provisioned over the API of `voxide up`; now the node stops and the parts run alone.
    scene.node.terminate().unwrap();

    let proxy = Component::start(VOXIDE.as_ref(), "proxy", &scene.node).unwrap();
    let lb = Component::start(VOXIDE.as_ref(), "lb", &scene.node).unwrap();
    let (proxy_log, lb_log) = (proxy.log(), lb.log());
    assert!(proxy_log.contains("proxy:        udp"), "{proxy_log}");
    assert!(!proxy_log.contains("lb:"), "{proxy_log}");
    assert!(!proxy_log.contains("provisioning:"), "{proxy_log}");
    assert!(lb_log.contains("lb:           udp"), "{lb_log}");
    assert!(!lb_log.contains("proxy:"), "{lb_log}");

    // The LB alone reads the served domains from the shared database.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !lb.log().contains("served domains updated count=1") {
        assert!(std::time::Instant::now() < deadline, "{}", lb.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let registered = scene.register("alice", Scene::free_port()).unwrap();
    assert!(
        registered.succeeded(),
        "{}\n--- proxy\n{}\n--- lb\n{}",
        registered.report(),
        proxy.log(),
        lb.log()
    );
}
