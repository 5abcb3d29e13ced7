//! Where the kernel would send a packet: one `RTM_GETROUTE` request over rtnetlink, asked once
//! per stream when kernel forwarding takes it over, so the forwarding program sends each stream
//! out of the interface the routing table picks for it (a relay whose phones sit behind several
//! interfaces) and knows which receivers are on this host.
//!
//! Hand-written: one synchronous request and reply on the data-plane thread. The rtnetlink
//! crates are built around an async connection task, which this thread does not run.
use std::io::{self, Read as _};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_OIF: u16 = 4;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;

const HEADER: usize = 16;
const ROUTE_MESSAGE: usize = 12;

/// The routing table's answer for one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// An address of this host: delivered locally.
    Local,
    /// Sent out of this interface (index).
    Interface(u32),
}

/// A route socket bound to the network namespace it was opened in.
#[derive(Debug)]
pub struct RouteSocket {
    /// The socket and the sequence number of the last request sent on it.
    socket: Mutex<(Socket, u32)>,
}

impl RouteSocket {
    pub fn open() -> io::Result<Self> {
        let socket = Socket::new(
            Domain::from(libc::AF_NETLINK),
            Type::DGRAM,
            Some(Protocol::from(libc::NETLINK_ROUTE)),
        )?;
        // The kernel answers at once; the timeout only keeps a lost reply from hanging the
        // data plane.
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(RouteSocket {
            socket: Mutex::new((socket, 0)),
        })
    }

    /// Where a packet from `source` (an address of this host) to `destination` goes.
    /// `NetworkUnreachable` and the like when there is no route.
    pub fn next_hop(&self, source: Ipv4Addr, destination: Ipv4Addr) -> io::Result<NextHop> {
        let mut guard = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        guard.1 = guard.1.wrapping_add(1);
        let (socket, sequence) = (&guard.0, guard.1);
        // Unaddressed, a netlink datagram goes to the kernel.
        socket.send(&request(sequence, source, destination))?;
        let mut reply = [0_u8; 1024];
        loop {
            let len = (&*socket).read(&mut reply)?;
            match parse_reply(&reply[..len], sequence)? {
                Some(hop) => return Ok(hop),
                // A late reply to an earlier, timed-out request.
                None => continue,
            }
        }
    }
}

fn request(sequence: u32, source: Ipv4Addr, destination: Ipv4Addr) -> Vec<u8> {
    let attribute = |kind: u16, address: Ipv4Addr| {
        let mut bytes = Vec::with_capacity(8);
        bytes.extend_from_slice(&8_u16.to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&address.octets());
        bytes
    };
    let mut body = vec![
        libc::AF_INET as u8,
        32, // destination prefix length: one host
        32, // source prefix length
        0,  // tos
        0,  // table
        0,  // protocol
        0,  // scope
        0,  // type
    ];
    body.extend_from_slice(&0_u32.to_ne_bytes()); // flags
    body.extend(attribute(RTA_DST, destination));
    body.extend(attribute(RTA_SRC, source));
    let mut message = Vec::with_capacity(HEADER + body.len());
    message.extend_from_slice(&((HEADER + body.len()) as u32).to_ne_bytes());
    message.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    message.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    message.extend_from_slice(&sequence.to_ne_bytes());
    message.extend_from_slice(&0_u32.to_ne_bytes());
    message.extend(body);
    message
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed rtnetlink reply")
}

/// The next hop in a reply to request `sequence`; `None` for a reply to another request.
fn parse_reply(reply: &[u8], sequence: u32) -> io::Result<Option<NextHop>> {
    let length = u32_at(reply, 0).ok_or_else(malformed)? as usize;
    let kind = u16_at(reply, 4).ok_or_else(malformed)?;
    if length < HEADER || length > reply.len() {
        return Err(malformed());
    }
    if u32_at(reply, 8) != Some(sequence) {
        return Ok(None);
    }
    let message = &reply[..length];
    match kind {
        NLMSG_ERROR => {
            let code = u32_at(message, HEADER).ok_or_else(malformed)? as i32;
            Err(if code < 0 {
                io::Error::from_raw_os_error(-code)
            } else {
                malformed()
            })
        }
        RTM_NEWROUTE => {
            let route_type = *message.get(HEADER + 7).ok_or_else(malformed)?;
            let mut at = HEADER + ROUTE_MESSAGE;
            let mut interface = None;
            while at + 4 <= message.len() {
                let attribute_length = usize::from(u16_at(message, at).ok_or_else(malformed)?);
                let attribute_kind = u16_at(message, at + 2).ok_or_else(malformed)?;
                if attribute_length < 4 || at + attribute_length > message.len() {
                    return Err(malformed());
                }
                if attribute_kind == RTA_OIF {
                    interface = u32_at(message, at + 4);
                }
                at += attribute_length.div_ceil(4) * 4;
            }
            match (route_type, interface) {
                (RTN_LOCAL, _) => Ok(Some(NextHop::Local)),
                (RTN_UNICAST, Some(interface)) => Ok(Some(NextHop::Interface(interface))),
                _ => Err(io::Error::new(
                    io::ErrorKind::NetworkUnreachable,
                    format!("route of type {route_type} is not a unicast route"),
                )),
            }
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected rtnetlink message type {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_destinations_are_local() {
        let routes = RouteSocket::open().unwrap();
        for destination in [Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 63)] {
            assert_eq!(
                routes.next_hop(Ipv4Addr::LOCALHOST, destination).unwrap(),
                NextHop::Local,
                "{destination}"
            );
        }
    }

    #[test]
    fn a_source_that_is_not_ours_is_refused_with_the_kernels_error() {
        let routes = RouteSocket::open().unwrap();
        // 192.0.2.0/24 (TEST-NET-1) is never an address of this host.
        let error = routes
            .next_hop(Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::LOCALHOST)
            .unwrap_err();
        assert!(error.raw_os_error().is_some(), "{error}");
    }

    #[test]
    fn replies_are_parsed_field_by_field() {
        // A reply as the kernel builds it: header, rtmsg (type unicast), RTA_TABLE, RTA_OIF.
        let mut reply = Vec::new();
        reply.extend_from_slice(&44_u32.to_ne_bytes());
        reply.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        reply.extend_from_slice(&0_u16.to_ne_bytes());
        reply.extend_from_slice(&7_u32.to_ne_bytes());
        reply.extend_from_slice(&0_u32.to_ne_bytes());
        reply.extend_from_slice(&[2, 32, 0, 0, 254, 0, 0, RTN_UNICAST]);
        reply.extend_from_slice(&0_u32.to_ne_bytes());
        reply.extend_from_slice(&8_u16.to_ne_bytes());
        reply.extend_from_slice(&15_u16.to_ne_bytes());
        reply.extend_from_slice(&254_u32.to_ne_bytes());
        reply.extend_from_slice(&8_u16.to_ne_bytes());
        reply.extend_from_slice(&RTA_OIF.to_ne_bytes());
        reply.extend_from_slice(&3_u32.to_ne_bytes());
        assert_eq!(parse_reply(&reply, 7).unwrap(), Some(NextHop::Interface(3)));
        // Another request's reply is skipped, not taken.
        assert_eq!(parse_reply(&reply, 8).unwrap(), None);
        // Unreachable: a clear error, not a next hop.
        reply[16 + 7] = 7;
        assert_eq!(
            parse_reply(&reply, 7).unwrap_err().kind(),
            io::ErrorKind::NetworkUnreachable
        );
        // Truncated and overlong attributes are malformed.
        assert!(parse_reply(&reply[..20], 7).is_err());
        let mut overlong = reply.clone();
        overlong[36] = 200;
        assert!(parse_reply(&overlong, 7).is_err());
        // An error message carries the kernel's errno.
        let mut error = Vec::new();
        error.extend_from_slice(&36_u32.to_ne_bytes());
        error.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error.extend_from_slice(&0_u16.to_ne_bytes());
        error.extend_from_slice(&7_u32.to_ne_bytes());
        error.extend_from_slice(&0_u32.to_ne_bytes());
        error.extend_from_slice(&(-libc::ENETUNREACH).to_ne_bytes());
        error.extend_from_slice(&[0; 16]);
        assert_eq!(
            parse_reply(&error, 7).unwrap_err().raw_os_error(),
            Some(libc::ENETUNREACH)
        );
    }
}
