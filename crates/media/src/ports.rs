//! Relay port pairs: even RTP port, odd RTCP port (RFC 3550 §11), from a configured range.
//!
//! A pair is only handed out once both sockets are bound, so a port held by another program is
//! skipped rather than shared; running out is an error the ng reply reports.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// No free pair in the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Ran out of ports")]
pub struct PortsExhausted;

/// Two bound, non-blocking sockets with the TOS byte set.
#[derive(Debug)]
pub struct PortPair {
    pub rtp_port: u16,
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

/// Where the data plane reports RTP ports whose sockets it has closed.
pub type ReleasedPorts = Arc<Mutex<Vec<u16>>>;

/// How long an allocation waits for the data plane to close sockets of deleted calls when the
/// range is otherwise exhausted.
const RELEASE_WAIT: Duration = Duration::from_millis(100);

/// Hands out port pairs round-robin so a just-released port is not reused at once (late
/// packets of the old call would land in the new one). A pair returns to the pool only when the
/// data plane has closed its sockets (reported through [`ReleasedPorts`]).
#[derive(Debug)]
pub struct PortAllocator {
    address: IpAddr,
    tos: u8,
    free: VecDeque<u16>,
    in_use: HashSet<u16>,
    released: ReleasedPorts,
    /// Pairs handed back to the data plane whose sockets are not closed yet.
    closing: usize,
}

impl PortAllocator {
    /// Pairs `(p, p+1)` with even `p`, `min <= p`, `p + 1 <= max`.
    #[must_use]
    pub fn new(address: IpAddr, min: u16, max: u16, tos: u8) -> Self {
        let first = min.saturating_add(min % 2);
        let free = (u32::from(first)..u32::from(max))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .collect();
        PortAllocator {
            address,
            tos,
            free,
            in_use: HashSet::new(),
            released: ReleasedPorts::default(),
            closing: 0,
        }
    }

    /// The queue the data plane pushes closed RTP ports to.
    #[must_use]
    pub fn released_ports(&self) -> ReleasedPorts {
        self.released.clone()
    }

    /// Marks a pair as going back: its sockets were handed to the data plane for closing.
    pub fn closing(&mut self, pairs: usize) {
        self.closing += pairs;
    }

    fn collect_released(&mut self) {
        let ports = match self.released.lock() {
            Ok(mut released) => std::mem::take(&mut *released),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for port in ports {
            self.closing = self.closing.saturating_sub(1);
            self.release(port);
        }
    }

    /// Pairs currently handed out.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    /// Binds the next free pair.
    ///
    /// # Errors
    /// [`PortsExhausted`] when every pair is in use or cannot be bound.
    pub fn allocate(&mut self) -> Result<PortPair, PortsExhausted> {
        self.collect_released();
        match self.try_allocate() {
            Err(PortsExhausted) if self.closing > 0 => {
                // Deleted calls' sockets are still open in the data plane: it closes them
                // within microseconds, so wait briefly rather than refuse the call.
                let deadline = Instant::now() + RELEASE_WAIT;
                while Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                    self.collect_released();
                    if let Ok(pair) = self.try_allocate() {
                        return Ok(pair);
                    }
                }
                Err(PortsExhausted)
            }
            result => result,
        }
    }

    fn try_allocate(&mut self) -> Result<PortPair, PortsExhausted> {
        for _ in 0..self.free.len() {
            let Some(port) = self.free.pop_front() else {
                break;
            };
            match (self.bind(port), self.bind(port + 1)) {
                (Ok(rtp), Ok(rtcp)) => {
                    self.in_use.insert(port);
                    return Ok(PortPair {
                        rtp_port: port,
                        rtp,
                        rtcp,
                    });
                }
                // Busy (another program, or our own socket not yet closed): try it later.
                _ => self.free.push_back(port),
            }
        }
        Err(PortsExhausted)
    }

    /// Returns a pair to the pool.
    pub fn release(&mut self, rtp_port: u16) {
        if self.in_use.remove(&rtp_port) {
            self.free.push_back(rtp_port);
        }
    }

    fn bind(&self, port: u16) -> io::Result<UdpSocket> {
        let address = SocketAddr::new(self.address, port);
        let socket = Socket::new(
            Domain::for_address(address),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        // Every relayed packet carries the TOS byte (DSCP EF by default).
        if address.is_ipv4() {
            socket.set_tos_v4(u32::from(self.tos))?;
        } else {
            socket.set_tclass_v6(u32::from(self.tos))?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        Ok(socket.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A run of free ports from `base` up, below the kernel's ephemeral range (32768+) where
    /// other programs' port-0 binds land.
    fn free_even_range(mut base: u16, pairs: u16) -> u16 {
        loop {
            let all_free = (base..base + pairs * 2)
                .all(|port| UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok());
            if all_free {
                return base;
            }
            base += pairs * 2 + 2;
        }
    }

    #[test]
    fn pairs_are_even_odd_unique_and_run_out() {
        let base = free_even_range(21_000, 3);
        let mut allocator =
            PortAllocator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), base, base + 5, 184);
        let pairs: Vec<PortPair> = (0..3).map(|_| allocator.allocate().unwrap()).collect();
        let ports: HashSet<u16> = pairs.iter().map(|p| p.rtp_port).collect();
        assert_eq!(ports.len(), 3);
        for pair in &pairs {
            assert_eq!(pair.rtp_port % 2, 0);
            assert_eq!(pair.rtcp.local_addr().unwrap().port(), pair.rtp_port + 1);
            assert_eq!(socket2::SockRef::from(&pair.rtp).tos_v4().unwrap(), 184);
        }
        assert_eq!(allocator.allocate().unwrap_err(), PortsExhausted);
        assert_eq!(PortsExhausted.to_string(), "Ran out of ports");
        let first = pairs[0].rtp_port;
        drop(pairs);
        allocator.release(first);
        assert_eq!(allocator.allocate().unwrap().rtp_port, first);
    }

    #[test]
    fn odd_minimum_rounds_up() {
        let allocator = PortAllocator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 30001, 30006, 0);
        assert_eq!(allocator.free, VecDeque::from(vec![30002, 30004]));
    }

    #[test]
    fn busy_port_is_skipped() {
        let base = free_even_range(23_000, 2);
        let _blocker = UdpSocket::bind((Ipv4Addr::LOCALHOST, base + 1)).unwrap();
        let mut allocator = PortAllocator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), base, base + 3, 0);
        assert_eq!(allocator.allocate().unwrap().rtp_port, base + 2);
        assert_eq!(allocator.allocate().unwrap_err(), PortsExhausted);
    }
}
