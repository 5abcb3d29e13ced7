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
