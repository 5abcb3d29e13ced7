//! Free loopback ports for the nodes and phones tests start.
//!
//! Ports come from above the kernel's ephemeral range (Linux: 32768–60999), never from port 0:
//! a port the kernel once handed out as ephemeral can be handed out again at any moment — to an
//! outgoing connection of another test, say — between the check here and the moment a node or
//! a phone binds it (baresip binds UDP *and* TCP on its SIP port and failed that way). Each
//! pick reserves a block of four numbers, because baresip also binds TLS on the port after its
//! SIP port; the port and the next one are checked on both transports. A process-wide counter
//! from a per-process random start keeps parallel tests in one process apart, the check keeps
//! processes apart.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// First port above the ephemeral range.
const FIRST: u32 = 61_000;
/// Ports in the pool (61000–65535).
const COUNT: u32 = 65_536 - FIRST;
/// Numbers each pick reserves: the port, the one after it (baresip's TLS), two spare.
const BLOCK: u32 = 4;

fn next_candidate() -> u16 {
    static START: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = *START.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        std::process::id().wrapping_mul(7_919) ^ nanos
    });
    let block = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % (COUNT / BLOCK);
    u16::try_from(FIRST + block * BLOCK).expect("below 65536")
}

fn free_on_both(port: u16) -> bool {
    [port, port + 1].iter().all(|&port| {
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
            && UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok()
    })
}

/// A UDP port free on 127.0.0.1 (and free for TCP too, so it may serve SIP on both).
pub fn free_udp_port() -> std::io::Result<u16> {
    free_tcp_and_udp_port()
}

/// A port free for both TCP and UDP on 127.0.0.1 (SIP listens on both with one number).
pub fn free_tcp_and_udp_port() -> std::io::Result<u16> {
    for _ in 0..COUNT / BLOCK {
        let port = next_candidate();
        if free_on_both(port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::other(
        "no port free on TCP and UDP in 61000-65535",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_pair_is_bindable_on_both_transports() {
        let port = free_tcp_and_udp_port().unwrap();
        assert!(
            u32::from(port) >= FIRST,
            "{port} is outside the ephemeral range"
        );
        let _tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        let _udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn consecutive_picks_differ() {
        let picks: Vec<u16> = (0..20).map(|_| free_tcp_and_udp_port().unwrap()).collect();
        for (index, pick) in picks.iter().enumerate() {
            // No pick lands on another's TLS neighbour (port + 1).
            for other in &picks[index + 1..] {
                assert!(pick.abs_diff(*other) >= 2, "{pick} and {other}");
            }
        }
    }
}
