//! e2e-tests: helpers for whole-system tests with real SIP peers. A test starts the real
//! `voxide` binary on free loopback ports with a temporary data directory ([`Node`]),
//! provisions subscribers over the REST API ([`Provisioning`]) and drives the platform with
//! SIPp scenarios from `crates/e2e-tests/sipp/` ([`Sipp`]).
//!
//! For the out-of-the-box case, [`LanLab`] builds a LAN of network namespaces (a server, phones,
//! a bridge) and [`DefaultNode`] runs `voxide up` there with no configuration at all; stock
//! phones besides SIPp and baresip are [`Linphonec`] and PJSUA2 ([`pjsua2::register`]).
//!
//! The tests themselves live in `crates/voxide/tests/`, where Cargo hands them the path of the
//! built binary (`CARGO_BIN_EXE_voxide`).

pub mod baresip;
pub mod default_node;
pub mod lan;
pub mod linphone;
pub mod netns;
pub mod node;
pub mod pjsua2;
pub mod ports;
pub mod provision;
pub mod ready;
pub mod scene;
pub mod sip_trace;
pub mod sipp;

pub use baresip::{Audio, Baresip, BaresipAccount, BaresipMedia};
pub use default_node::DefaultNode;
pub use lan::{LanHost, LanLab};
pub use linphone::{LinphoneAccount, Linphonec};
pub use netns::{Namespace, NatLab, unique_tag};
pub use node::{Component, Node, NodePorts};
pub use pjsua2::{Pjsua2Account, Pjsua2Registration};
pub use ports::{free_tcp_and_udp_port, free_udp_port};
pub use provision::{Provisioning, Subscriber};
pub use ready::wait_until_udp_bound;
pub use scene::Scene;
pub use sipp::{Sipp, SippOutcome, SippProcess};

/// The SIP domain the tests provision their subscribers in.
pub const TEST_DOMAIN: &str = "voxide.test";

/// Whether the tests run as root (effective uid 0): what loading BPF programs, creating
/// network namespaces and capturing packets need; tests that need it say so when it is not.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(2) == Some("0"))
    })
}

/// Run `future` to completion on a fresh single-threaded runtime, so plain `#[test]`s can
/// use the async REST client between blocking SIPp runs.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the REST client")
        .block_on(future)
}
