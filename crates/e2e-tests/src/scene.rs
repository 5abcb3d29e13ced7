//! A node with subscribers in [`crate::TEST_DOMAIN`], provisioned over the REST API, and the
//! LB already serving that domain.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::node::{Node, NodePorts};
use crate::provision::Subscriber;
use crate::sipp::Sipp;
use crate::{TEST_DOMAIN, block_on, free_udp_port};

/// A running node and its subscribers.
#[derive(Debug)]
pub struct Scene {
    /// The node.
    pub node: Node,
    /// The subscribers, in the order their usernames were given.
    pub subscribers: Vec<Subscriber>,
}

impl Scene {
    /// Start `binary up` on free loopback ports and provision `usernames`.
    pub fn start(binary: impl Into<PathBuf>, usernames: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_ports(binary, NodePorts::free()?, usernames)
    }

    /// Start with the given ports and provision `usernames`.
    pub fn start_with_ports(
        binary: impl Into<PathBuf>,
        ports: NodePorts,
        usernames: &[&str],
    ) -> anyhow::Result<Self> {
        let node = Node::start_with_ports(binary, ports)?;
        let provisioning = node.provisioning()?;
        let subscribers = block_on(async {
            let customer = provisioning.create_domain_and_customer(TEST_DOMAIN).await?;
            let mut subscribers = Vec::new();
            for (index, username) in usernames.iter().enumerate() {
                let password = format!("secret-{username}-1");
                let sn = format!("{}", 100_000 + index);
                subscribers.push(
                    provisioning
                        .create_subscriber(customer, TEST_DOMAIN, username, &password, &sn)
                        .await?,
                );
            }
            anyhow::Ok(subscribers)
        })?;
        // No waiting: a domain created through the API is served from the next request on.
        Ok(Self { node, subscribers })
    }

    /// The subscriber named `username`.
    pub fn subscriber(&self, username: &str) -> &Subscriber {
        self.subscribers
            .iter()
            .find(|subscriber| subscriber.username == username)
            .unwrap_or_else(|| panic!("no subscriber {username} in the scene"))
    }

    /// A SIPp run of `scenario` against the LB from `local_port` on the LB's own address
    /// (127.0.0.1 unless the node listens elsewhere), with the `domain` key set.
    pub fn sipp(&self, scenario: &str, local_port: u16) -> Sipp {
        self.sipp_from(
            scenario,
            SocketAddr::new(self.node.ports.public_ip, local_port),
        )
    }

    /// A SIPp run of `scenario` against the LB from `local`, with the `domain` key set.
    pub fn sipp_from(&self, scenario: &str, local: SocketAddr) -> Sipp {
        Sipp::new(
            scenario,
            self.node.sip_address(),
            local,
            self.node.directory(),
        )
        .key("domain", TEST_DOMAIN)
    }

    /// Register `username` from `local_port` on the LB's address (digest over the LB) and
    /// return the SIPp outcome.
    pub fn register(&self, username: &str, local_port: u16) -> anyhow::Result<crate::SippOutcome> {
        self.register_from(
            username,
            self.sipp("register.xml", local_port),
            &format!("register-{username}-{local_port}"),
        )
    }

    /// Register `username` with the prepared SIPp run `sipp` of `register.xml`.
    pub fn register_from(
        &self,
        username: &str,
        sipp: Sipp,
        tag: &str,
    ) -> anyhow::Result<crate::SippOutcome> {
        let subscriber = self.subscriber(username);
        sipp.key("user", username)
            .key("expires", "3600")
            .credentials(
                username,
                &subscriber.password,
                &format!("sip:{TEST_DOMAIN}"),
            )
            .run(tag)
    }

    /// A free UDP port for a SIPp peer.
    pub fn free_port() -> u16 {
        free_udp_port().expect("a free UDP port")
    }
}
