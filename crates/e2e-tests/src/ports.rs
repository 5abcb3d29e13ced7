//! Free loopback ports. The kernel picks a free port for port 0; the socket is closed again
//! and the number handed to the node, so a rare race with another process is possible, which
//! the retry in [`free_tcp_and_udp_port`] and the node's start-up error make visible.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

/// A UDP port free on 127.0.0.1.
pub fn free_udp_port() -> std::io::Result<u16> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(socket.local_addr()?.port())
}

/// A port free for both TCP and UDP on 127.0.0.1 (SIP listens on both with one number).
pub fn free_tcp_and_udp_port() -> std::io::Result<u16> {
    let mut last_error = None;
    for _ in 0..50 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        match UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
            Ok(_) => return Ok(port),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no free port pair")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_pair_is_bindable_on_both_transports() {
        let port = free_tcp_and_udp_port().unwrap();
        assert_ne!(port, 0);
        let _tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        let _udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}
