//! Readiness probes: a test waits until a peer it started can take traffic, instead of
//! pausing for "a moment" that is too long on a quiet machine and too short on a busy one.
//!
//! A UDP peer (a SIPp UAS, a relay) is ready once its socket is bound: from then on the kernel
//! queues every datagram sent to it, however late the program gets round to reading. The
//! kernel lists the bound UDP sockets of a network namespace in `/proc/net/udp` and
//! `/proc/net/udp6` as the reader's namespace sees them, so a peer inside a namespace is probed
//! by reading those files through `ip netns exec`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How often the socket tables are read while waiting.
const POLL: Duration = Duration::from_millis(10);

/// The socket tables of one network namespace.
const TABLES: [&str; 2] = ["/proc/net/udp", "/proc/net/udp6"];

/// Waits until some process has a UDP socket bound to `address` (or to the wildcard address
/// on its port) in network namespace `netns` (`None`: this process's own), for at most
/// `limit`.
///
/// # Errors
/// When nothing is bound there within `limit`, or the tables cannot be read.
pub fn wait_until_udp_bound(
    address: SocketAddr,
    netns: Option<&str>,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !udp_bound(address, netns)? {
        if Instant::now() > deadline {
            bail!(
                "nothing bound UDP {address}{} within {limit:?}",
                netns
                    .map(|name| format!(" in namespace {name}"))
                    .unwrap_or_default()
            );
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// Whether a UDP socket is bound to `address` (or to the wildcard address on its port) in
/// network namespace `netns` right now.
///
/// # Errors
/// When the socket tables cannot be read.
pub fn udp_bound(address: SocketAddr, netns: Option<&str>) -> anyhow::Result<bool> {
    let tables = match netns {
        None => {
            let own = TABLES.map(std::fs::read_to_string);
            if own.iter().all(Result::is_err) {
                bail!("cannot read {TABLES:?}");
            }
            // A kernel without IPv6 has no udp6 table.
            own.into_iter().filter_map(Result::ok).collect::<String>()
        }
        Some(name) => {
            let output = Command::new("ip")
                .args(["netns", "exec", name, "cat"])
                .args(TABLES)
                .output()
                .context("running ip netns exec")?;
            // cat prints the tables it can read and fails on a missing udp6 one.
            if output.stdout.is_empty() {
                bail!(
                    "cannot read the UDP sockets of namespace {name}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };
    Ok(tables.lines().any(|line| binds(line, address)))
}

/// Whether `line` of a socket table is a socket bound to `address`, or to the wildcard address
/// of a family that receives for it (an IPv6 wildcard socket takes IPv4 too unless it is
/// IPv6-only), on its port.
fn binds(line: &str, address: SocketAddr) -> bool {
    // `  sl  local_address rem_address   st …`, e.g. `  12: 0100007F:EE48 00000000:0000 07 …`
    let Some((ip, port)) = line
        .split_whitespace()
        .nth(1)
        .and_then(|local| local.split_once(':'))
    else {
        return false;
    };
    if u16::from_str_radix(port, 16).ok() != Some(address.port()) {
        return false;
    }
    match table_ip(ip) {
        Some(bound) if bound.is_unspecified() => bound.is_ipv6() || address.is_ipv4(),
        Some(bound) => bound.to_canonical() == address.ip().to_canonical(),
        None => false,
    }
}

/// An address as the kernel prints it in the socket tables: its 32-bit words, each in the
/// machine's byte order as eight hex digits (one word for IPv4, four for IPv6).
fn table_ip(hex: &str) -> Option<IpAddr> {
    if !hex.is_ascii() {
        return None;
    }
    let mut octets = Vec::with_capacity(16);
    for word in hex.as_bytes().chunks(8) {
        let word = std::str::from_utf8(word).ok()?;
        if word.len() != 8 {
            return None;
        }
        octets.extend_from_slice(&u32::from_str_radix(word, 16).ok()?.to_ne_bytes());
    }
    match octets.len() {
        4 => Some(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]).into()),
        16 => Some(Ipv6Addr::from(<[u8; 16]>::try_from(octets).ok()?).into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// A table line for `ip:port` as this machine's kernel prints it.
    fn line(ip: IpAddr, port: u16) -> String {
        let words: String = match ip {
            IpAddr::V4(ip) => format!("{:08X}", u32::from_ne_bytes(ip.octets())),
            IpAddr::V6(ip) => ip
                .octets()
                .chunks(4)
                .map(|word| format!("{:08X}", u32::from_ne_bytes(word.try_into().unwrap())))
                .collect(),
        };
        format!("  7: {words}:{port:04X} 00000000:0000 07 00000000:00000000 00:00000000 0")
    }

    #[test]
    fn table_lines_name_the_bound_address_and_port() {
        let loopback: SocketAddr = "127.0.0.1:61000".parse().unwrap();
        assert!(binds(&line(loopback.ip(), 61000), loopback));
        assert!(!binds(&line(loopback.ip(), 61001), loopback), "other port");
        assert!(
            !binds(&line("127.0.0.2".parse().unwrap(), 61000), loopback),
            "other address"
        );
        assert!(
            binds(&line(Ipv4Addr::UNSPECIFIED.into(), 61000), loopback),
            "the IPv4 wildcard receives for every local address"
        );
        assert!(
            binds(&line(Ipv6Addr::UNSPECIFIED.into(), 61000), loopback),
            "so does a dual-stack IPv6 wildcard"
        );
        let v6: SocketAddr = "[::1]:61000".parse().unwrap();
        assert!(binds(&line(v6.ip(), 61000), v6));
        assert!(
            !binds(&line(Ipv4Addr::UNSPECIFIED.into(), 61000), v6),
            "an IPv4 wildcard does not receive IPv6"
        );
        assert!(!binds(
            "  sl  local_address rem_address   st tx_queue",
            loopback
        ));
    }

    #[test]
    fn a_socket_bound_by_this_process_is_seen() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = socket.local_addr().unwrap();
        assert!(udp_bound(address, None).unwrap());
        wait_until_udp_bound(address, None, Duration::from_secs(1)).unwrap();
        // The same port on another loopback address is not bound.
        let elsewhere = SocketAddr::new("127.0.0.3".parse().unwrap(), address.port());
        assert!(!udp_bound(elsewhere, None).unwrap());
        let error = wait_until_udp_bound(elsewhere, None, Duration::from_millis(30)).unwrap_err();
        assert!(error.to_string().contains("nothing bound UDP"), "{error}");
    }

    #[test]
    fn an_ipv6_socket_is_seen_in_the_udp6_table() {
        let Ok(socket) = UdpSocket::bind("[::1]:0") else {
            // No IPv6 on this machine: nothing to look up.
            return;
        };
        let address = socket.local_addr().unwrap();
        assert!(udp_bound(address, None).unwrap());
    }
}
