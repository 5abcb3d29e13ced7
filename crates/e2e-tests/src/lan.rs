//! A LAN on the test machine: a server namespace and phone namespaces joined by a bridge, the
//! way a new user's phones and the box running `voxide up` share one office network.
//!
//! ```text
//!                      switch namespace: bridge br0
//!        ┌───────────────┬──────────┴───────┬──────────────────┐
//!  root namespace   server namespace   phone namespace 1   phone namespace 2 …
//!    10.N.0.1          10.N.0.2           10.N.0.11           10.N.0.12
//! ```
//!
//! Every namespace but the root has a default route via 10.N.0.254, an address nobody owns:
//! the LAN interface is the default-route interface, as on a real network (what `voxide up`
//! advertises by default, and what linphone checks before it registers), yet a packet for
//! anywhere else finds no neighbour and goes nowhere. The root namespace only gets an address
//! on the LAN (so the test process reaches the API at `https://10.N.0.2:1443`) and does not
//! forward what arrives on it. The switch namespace, `vxnet<N>`, is the lab's claim on 10.N
//! ([`crate::netns::claim_root_subnet`]). Dropping [`LanLab`] deletes the namespaces, and with
//! the switch namespace every link of the lab.

use std::net::Ipv4Addr;

use crate::netns::{Namespace, claim_root_subnet, run, unique_tag};

/// One member of the LAN: its namespace and address.
#[derive(Debug)]
pub struct LanHost {
    /// The namespace (for `ip netns exec`).
    pub namespace: Namespace,
    /// Its address on the LAN.
    pub ip: Ipv4Addr,
}

impl LanHost {
    /// The namespace's name.
    pub fn netns(&self) -> &str {
        self.namespace.name()
    }
}

/// The server, the phones and the bridge between them.
#[derive(Debug)]
pub struct LanLab {
    /// Where voxide runs: 10.N.0.2.
    pub server: LanHost,
    /// The phones: 10.N.0.11, 10.N.0.12, …
    pub phones: Vec<LanHost>,
    /// The root namespace's address on the LAN (where the test process talks from).
    pub root_ip: Ipv4Addr,
    /// The default gateway of the LAN, an address no host owns.
    pub gateway: Ipv4Addr,
    // Deleted last: with it go the bridge and every veth pair (the root's end too).
    switch: Namespace,
}

impl LanLab {
    /// Build the LAN with `phones` phone namespaces. Needs root (CAP_NET_ADMIN) and `ip`.
    pub fn create(phones: usize) -> anyhow::Result<Self> {
        if phones > 200 {
            anyhow::bail!("{phones} phones do not fit 10.N.0.11-254");
        }
        let tag = unique_tag();
        // 10.60-99: clear of the NAT lab's 10.100-199 and the forwarding tests' 10.200-249.
        // The claim is the switch's namespace, which holds the root link's far end.
        let (subnet, switch) = claim_root_subnet(60..=99, &tag)?;
        let address = |host: u8| Ipv4Addr::new(10, subnet, 0, host);
        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        let gateway = address(254);

        let server = LanHost {
            namespace: Namespace::named(format!("vxsv{tag}"))?,
            ip: address(2),
        };
        let mut members = Vec::new();
        for index in 0..phones {
            let host = 11 + u8::try_from(index).expect("at most 200 phones");
            members.push(LanHost {
                namespace: Namespace::named(format!("vxp{index}{tag}"))?,
                ip: address(host),
            });
        }
        let lab = Self {
            server,
            phones: members,
            root_ip: address(1),
            gateway,
            switch,
        };
        for (port, host) in std::iter::once(&lab.server)
            .chain(lab.phones.iter())
            .enumerate()
        {
            lab.plug(&format!("port{port}"), host)?;
        }
        lab.plug_root(&tag, subnet)?;
        Ok(lab)
    }

    /// A veth pair from the bridge (`port`) to `host`'s `lan0`, its address and the default
    /// route via the gateway nobody owns.
    fn plug(&self, port: &str, host: &LanHost) -> anyhow::Result<()> {
        let switch = &self.switch;
        switch.ip(&[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "lan0",
            "netns",
            host.netns(),
        ])?;
        switch.ip(&["link", "set", port, "master", "br0"])?;
        switch.ip(&["link", "set", port, "up"])?;
        let namespace = &host.namespace;
        namespace.ip(&["addr", "add", &format!("{}/24", host.ip), "dev", "lan0"])?;
        namespace.ip(&["link", "set", "lan0", "up"])?;
        namespace.ip(&["route", "add", "default", "via", &self.gateway.to_string()])?;
        Ok(())
    }

    /// The root namespace's link to the bridge: an address, no forwarding.
    fn plug_root(&self, tag: &str, subnet: u8) -> anyhow::Result<()> {
        let link = format!("vxl{tag}");
        run(&[
            "ip",
            "link",
            "add",
            &link,
            "type",
            "veth",
            "peer",
            "name",
            "uplink",
            "netns",
            self.switch.name(),
        ])?;
        self.switch
            .ip(&["link", "set", "uplink", "master", "br0"])?;
        self.switch.ip(&["link", "set", "uplink", "up"])?;
        // Whatever arrives from the LAN is for the test process or for nobody.
        run(&[
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv4.conf.{link}.forwarding=0"),
        ])?;
        run(&[
            "ip",
            "addr",
            "add",
            &format!("10.{subnet}.0.1/24"),
            "dev",
            &link,
        ])?;
        run(&["ip", "link", "set", &link, "up"])?;
        Ok(())
    }

    /// Phone `index` (0-based).
    pub fn phone(&self, index: usize) -> &LanHost {
        &self.phones[index]
    }
}
