//! A phone behind NAT, built from network namespaces the test owns:
//!
//! ```text
//!  root namespace                 router namespace                 phone namespace
//!  10.N.1.1 (LB listens here) ── 10.N.1.2 │ MASQUERADE │ 10.N.2.1 ── 10.N.2.2 (phone)
//! ```
//!
//! The router masquerades with random source ports, so the address the LB sees differs from
//! the phone's Contact in host and port. The phone namespace has no route to anything but
//! the router, and the root namespace has no route to 10.N.2.0/24: only the NAT binding
//! reaches the phone. Dropping [`NatLab`] deletes both namespaces and with them the veth
//! pairs and the iptables rules.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The namespaces and addresses of one NAT set-up.
#[derive(Debug)]
pub struct NatLab {
    /// Name of the phone's namespace (for `ip netns exec`).
    pub phone_namespace: String,
    router_namespace: String,
    /// The root namespace's end of the public link (where the LB listens).
    pub public_ip: IpAddr,
    /// The phone's private address.
    pub phone_ip: IpAddr,
    /// The router's public address (what the LB sees as the phone's source).
    pub router_public_ip: IpAddr,
}

fn run(arguments: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(arguments[0])
        .args(&arguments[1..])
        .output()
        .with_context(|| format!("running {arguments:?}"))?;
    if !output.status.success() {
        bail!(
            "{arguments:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

impl NatLab {
    /// Create the namespaces, links, addresses, routes and the MASQUERADE rule. Needs root
    /// (CAP_NET_ADMIN), `ip` (iproute2) and `iptables`.
    pub fn create() -> anyhow::Result<Self> {
        let id = std::process::id();
        // A subnet per process, so two suites on one machine do not collide.
        let subnet = 100 + (id % 100) as u8;
        let tag = format!("{:x}", id % 0xfffff);
        let lab = Self {
            phone_namespace: format!("vxph{tag}"),
            router_namespace: format!("vxrt{tag}"),
            public_ip: IpAddr::V4(Ipv4Addr::new(10, subnet, 1, 1)),
            phone_ip: IpAddr::V4(Ipv4Addr::new(10, subnet, 2, 2)),
            router_public_ip: IpAddr::V4(Ipv4Addr::new(10, subnet, 1, 2)),
        };
        lab.build(subnet, &tag)?;
        Ok(lab)
    }

    fn build(&self, subnet: u8, tag: &str) -> anyhow::Result<()> {
        let router = self.router_namespace.as_str();
        let phone = self.phone_namespace.as_str();
        let root_end = format!("vxr{tag}");
        let router_public = format!("vxrp{tag}");
        let router_private = format!("vxrq{tag}");
        let phone_end = format!("vxp{tag}");
        let public_net = |host: u8| format!("10.{subnet}.1.{host}/24");
        let private_net = |host: u8| format!("10.{subnet}.2.{host}/24");
        run(&["ip", "netns", "add", router])?;
        run(&["ip", "netns", "add", phone])?;
        // root <-> router
        run(&[
            "ip",
            "link",
            "add",
            &root_end,
            "type",
            "veth",
            "peer",
            "name",
            &router_public,
        ])?;
        run(&["ip", "link", "set", &router_public, "netns", router])?;
        run(&["ip", "addr", "add", &public_net(1), "dev", &root_end])?;
        run(&["ip", "link", "set", &root_end, "up"])?;
        run(&[
            "ip",
            "netns",
            "exec",
            router,
            "ip",
            "addr",
            "add",
            &public_net(2),
            "dev",
            &router_public,
        ])?;
        run(&[
            "ip",
            "netns",
            "exec",
            router,
            "ip",
            "link",
            "set",
            &router_public,
            "up",
        ])?;
        // router <-> phone
        run(&[
            "ip",
            "netns",
            "exec",
            router,
            "ip",
            "link",
            "add",
            &router_private,
            "type",
            "veth",
            "peer",
            "name",
            &phone_end,
        ])?;
        run(&[
            "ip", "netns", "exec", router, "ip", "link", "set", &phone_end, "netns", phone,
        ])?;
        run(&[
            "ip",
            "netns",
            "exec",
            router,
            "ip",
            "addr",
            "add",
            &private_net(1),
            "dev",
            &router_private,
        ])?;
        run(&[
            "ip",
            "netns",
            "exec",
            router,
            "ip",
            "link",
            "set",
            &router_private,
            "up",
        ])?;
        run(&[
            "ip", "netns", "exec", router, "ip", "link", "set", "lo", "up",
        ])?;
        run(&[
            "ip",
            "netns",
            "exec",
            phone,
            "ip",
            "addr",
            "add",
            &private_net(2),
            "dev",
            &phone_end,
        ])?;
        run(&[
            "ip", "netns", "exec", phone, "ip", "link", "set", &phone_end, "up",
        ])?;
        run(&[
            "ip", "netns", "exec", phone, "ip", "link", "set", "lo", "up",
        ])?;
        let gateway = format!("10.{subnet}.2.1");
        run(&[
            "ip", "netns", "exec", phone, "ip", "route", "add", "default", "via", &gateway,
        ])?;
        // The router forwards and masquerades what leaves towards the public side.
        run(&[
            "ip",
            "netns",
            "exec",
            router,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
        ])?;
        run(&[
            "ip",
            "netns",
            "exec",
            router,
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            &router_public,
            "-j",
            "MASQUERADE",
            "--random",
        ])?;
        Ok(())
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends, whose peers go with them.
        let _ = run(&["ip", "netns", "del", &self.phone_namespace]);
        let _ = run(&["ip", "netns", "del", &self.router_namespace]);
    }
}
