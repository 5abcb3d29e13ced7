//! Network namespaces the tests own, and a phone behind NAT built from them:
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
//!
//! Names come from [`unique_tag`], so two labs of one test binary (tests run in parallel)
//! and of two binaries never share a namespace or a link name; the 10.N subnet a lab puts
//! into the root namespace is one no interface or route there uses yet, claimed for the lab
//! alone ([`claim_root_subnet`]).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, bail};

/// A tag unique to this call among all running processes: the process id (six hex digits
/// hold any Linux pid, `pid_max` ≤ 2²²) and a per-process counter (two hex digits). Eight
/// characters, so `prefix + tag` stays within the 15 bytes of an interface name for
/// prefixes up to seven.
pub fn unique_tag() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let call = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:06x}{:02x}", std::process::id() & 0xff_ffff, call & 0xff)
}

/// Run a command to completion; its stderr is in the error when it fails.
pub fn run(arguments: &[&str]) -> anyhow::Result<()> {
    output(arguments).map(drop)
}

/// Run a command to completion and return its stdout.
fn output(arguments: &[&str]) -> anyhow::Result<String> {
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
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether an address or route of the root namespace lies in 10.`octet`.0.0/16.
fn root_uses_subnet(octet: u8) -> anyhow::Result<bool> {
    let taken = format!(
        "{}\n{}",
        output(&["ip", "-4", "-o", "addr", "show"])?,
        output(&["ip", "-4", "-o", "route", "show", "table", "all"])?
    );
    let prefix = format!("10.{octet}.");
    Ok(taken
        .split_whitespace()
        .any(|word| word.starts_with(&prefix)))
}

/// Claim a subnet 10.N.0.0/16 (N in `range`) for a lab that puts an address of it into the
/// root namespace: one no interface or route there uses yet. The claim is the namespace
/// `vxnet<N>`, returned for the lab to hold the far end of its root link: creating a
/// namespace fails when the name exists, so two labs — of this process or of another test
/// binary running at the same time — never get the same N, and the claim ends when the lab
/// deletes the namespace. The root namespace is checked again after the claim, because the
/// links of a lab that just deleted its namespace linger for a moment. The search starts at
/// an offset taken from `tag`, so concurrent labs start apart.
pub fn claim_root_subnet(
    range: std::ops::RangeInclusive<u8>,
    tag: &str,
) -> anyhow::Result<(u8, Namespace)> {
    let (first, last) = (*range.start(), *range.end());
    let count = u32::from(last.saturating_sub(first)) + 1;
    let start = tag.bytes().fold(0u32, |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(u32::from(byte))
    });
    for step in 0..count {
        let octet = first + u8::try_from(start.wrapping_add(step) % count).unwrap_or(0);
        if root_uses_subnet(octet)? {
            continue;
        }
        let name = format!("vxnet{octet}");
        let added = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .context("running ip netns add")?;
        if !added.status.success() {
            if String::from_utf8_lossy(&added.stderr).contains("File exists") {
                continue;
            }
            bail!(
                "ip netns add {name} failed ({}): {}",
                added.status,
                String::from_utf8_lossy(&added.stderr)
            );
        }
        let claim = Namespace { name };
        if root_uses_subnet(octet)? {
            continue;
        }
        claim.ip(&["link", "set", "lo", "up"])?;
        return Ok((octet, claim));
    }
    bail!("every 10.N.0.0/16 with N in {first}..={last} is in use or claimed")
}

/// A network namespace with loopback up; deleted (with every interface in it) when dropped.
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Create `<prefix><unique tag>`. A namespace of that name can only be a leftover of a
    /// dead process (the tag holds the pid of a live one), so it is deleted first.
    pub fn create(prefix: &str) -> anyhow::Result<Self> {
        Self::named(format!("{prefix}{}", unique_tag()))
    }

    /// Create the namespace `name` (see [`Namespace::create`]).
    pub fn named(name: String) -> anyhow::Result<Self> {
        if std::path::Path::new("/run/netns").join(&name).exists() {
            run(&["ip", "netns", "del", &name])?;
        }
        run(&["ip", "netns", "add", &name])?;
        let namespace = Self { name };
        namespace.ip(&["link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// The name, for `ip netns exec` and `ip -n`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `ip <arguments>` inside the namespace.
    pub fn ip(&self, arguments: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["ip", "-n", &self.name];
        all.extend_from_slice(arguments);
        run(&all)
    }

    /// Run `program <arguments>` inside the namespace (`ip netns exec`).
    pub fn exec(&self, arguments: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(arguments);
        run(&all)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting a namespace deletes its interfaces; a veth end's peer goes with it.
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// The namespaces and addresses of one NAT set-up.
#[derive(Debug)]
pub struct NatLab {
    /// Name of the phone's namespace (for `ip netns exec`).
    pub phone_namespace: String,
    /// The root namespace's end of the public link (where the LB listens).
    pub public_ip: IpAddr,
    /// The phone's private address.
    pub phone_ip: IpAddr,
    /// The router's public address (what the LB sees as the phone's source).
    pub router_public_ip: IpAddr,
    // Dropped last: deleting them deletes the links and the iptables rules.
    phone: Namespace,
    router: Namespace,
}

impl NatLab {
    /// Create the namespaces, links, addresses, routes and the MASQUERADE rule. Needs root
    /// (CAP_NET_ADMIN), `ip` (iproute2) and `iptables`.
    pub fn create() -> anyhow::Result<Self> {
        let tag = unique_tag();
        // 10.100-199: clear of the LAN lab's and the media forwarding tests' subnets. The
        // claim is the router's namespace, which holds the root link's far end.
        let (subnet, router) = claim_root_subnet(100..=199, &tag)?;
        let phone = Namespace::named(format!("vxph{tag}"))?;
        let lab = Self {
            phone_namespace: phone.name().to_owned(),
            public_ip: IpAddr::V4(Ipv4Addr::new(10, subnet, 1, 1)),
            phone_ip: IpAddr::V4(Ipv4Addr::new(10, subnet, 2, 2)),
            router_public_ip: IpAddr::V4(Ipv4Addr::new(10, subnet, 1, 2)),
            phone,
            router,
        };
        lab.build(subnet, &tag)?;
        Ok(lab)
    }

    fn build(&self, subnet: u8, tag: &str) -> anyhow::Result<()> {
        let router = &self.router;
        let phone = &self.phone;
        let root_end = format!("vxr{tag}");
        let router_public = "public0";
        let router_private = "private0";
        let phone_end = "lan0";
        let public_net = |host: u8| format!("10.{subnet}.1.{host}/24");
        let private_net = |host: u8| format!("10.{subnet}.2.{host}/24");
        // root <-> router: the router's end is created inside its namespace, so only the
        // root end needs a name unique on the machine.
        run(&[
            "ip",
            "link",
            "add",
            &root_end,
            "type",
            "veth",
            "peer",
            "name",
            router_public,
            "netns",
            router.name(),
        ])?;
        run(&["ip", "addr", "add", &public_net(1), "dev", &root_end])?;
        run(&["ip", "link", "set", &root_end, "up"])?;
        router.ip(&["addr", "add", &public_net(2), "dev", router_public])?;
        router.ip(&["link", "set", router_public, "up"])?;
        // router <-> phone
        router.ip(&[
            "link",
            "add",
            router_private,
            "type",
            "veth",
            "peer",
            "name",
            phone_end,
            "netns",
            phone.name(),
        ])?;
        router.ip(&["addr", "add", &private_net(1), "dev", router_private])?;
        router.ip(&["link", "set", router_private, "up"])?;
        phone.ip(&["addr", "add", &private_net(2), "dev", phone_end])?;
        phone.ip(&["link", "set", phone_end, "up"])?;
        let gateway = format!("10.{subnet}.2.1");
        phone.ip(&["route", "add", "default", "via", &gateway])?;
        // The router forwards and masquerades what leaves towards the public side.
        router.exec(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        router.exec(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            router_public,
            "-j",
            "MASQUERADE",
            "--random",
        ])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_differ_per_call_and_fit_an_interface_name() {
        let tags: Vec<String> = (0..50).map(|_| unique_tag()).collect();
        for (index, tag) in tags.iter().enumerate() {
            assert_eq!(tag.len(), 8, "{tag}");
            assert!(!tags[index + 1..].contains(tag), "{tag} twice");
        }
        assert!(format!("vxfa{}", tags[0]).len() <= 15);
    }

    #[test]
    fn tags_differ_across_threads() {
        let tags: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8).map(|_| scope.spawn(unique_tag)).collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect()
        });
        for (index, tag) in tags.iter().enumerate() {
            assert!(!tags[index + 1..].contains(tag), "{tag} twice");
        }
    }

    #[test]
    fn a_claimed_subnet_is_unused_and_claimed_once() {
        if !crate::is_root() {
            eprintln!("skipped: claiming a subnet creates network namespaces (needs root)");
            return;
        }
        let (first, first_claim) = claim_root_subnet(100..=199, &unique_tag()).unwrap();
        assert!((100..=199).contains(&first));
        assert!(!root_uses_subnet(first).unwrap());
        // Same start, yet another subnet while the first claim is held.
        let tag = unique_tag();
        let claims: Vec<(u8, Namespace)> = (0..3)
            .map(|_| claim_root_subnet(100..=199, &tag).unwrap())
            .collect();
        let mut octets: Vec<u8> = claims.iter().map(|(octet, _)| *octet).collect();
        octets.push(first);
        octets.sort_unstable();
        octets.dedup();
        assert_eq!(octets.len(), 4, "{octets:?}");
        drop(first_claim);
    }
}
