//! The shared receive socket of steered mode: one socket for every relay port, filled by the
//! steering program, and the table from port to leg the data plane reads per packet.

use super::*;

/// The relay ports' address and range, for receive steering and kernel forwarding.
#[derive(Debug, Clone, Copy)]
pub struct SteeredRange {
    pub address: IpAddr,
    pub port_min: u16,
    pub port_max: u16,
    /// TOS byte of packets the kernel relays.
    pub tos: u8,
    /// Hand latched streams to the in-kernel forwarder ([`crate::forwarding`]).
    pub kernel_forwarding: bool,
}

/// Receive buffer of the shared socket: it queues every stream's packets, so it needs room for
/// a burst of thousands of streams while the thread is busy sending.
const STEERED_RECEIVE_BUFFER: usize = 16 * 1024 * 1024;

/// The shared receive socket and the program that fills it.
pub(super) struct SteeredSocket {
    pub(super) socket: UdpSocket,
    pub(super) steering: Steering,
    /// Which leg owns each steered port, indexed by port − `port_min` (a dense table stays in
    /// cache; a hash map lookup per packet was a cache miss).
    pub(super) legs_by_port: Vec<Option<usize>>,
    pub(super) port_min: u16,
}

impl SteeredSocket {
    pub(super) fn slot(&mut self, port: u16) -> Option<&mut Option<usize>> {
        self.legs_by_port
            .get_mut(usize::from(port.checked_sub(self.port_min)?))
    }

    pub(super) fn leg(&self, port: u16) -> Option<usize> {
        *self
            .legs_by_port
            .get(usize::from(port.checked_sub(self.port_min)?))?
    }
}

impl SteeredSocket {
    pub(super) fn attach(range: SteeredRange) -> io::Result<Self> {
        use socket2::{Domain, Protocol, Socket, Type};
        let address = SocketAddr::new(range.address, 0);
        let socket = Socket::new(
            Domain::for_address(address),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        if address.is_ipv6() {
            // A wildcard IPv6 relay also takes IPv4; its per-port sockets are dual-stack too.
            socket.set_only_v6(false)?;
        }
        socket.set_nonblocking(true)?;
        crate::fastpath::set_receive_original_destination(&socket, address.is_ipv6())?;
        crate::fastpath::force_receive_buffer(&socket, STEERED_RECEIVE_BUFFER);
        socket.bind(&address.into())?;
        let socket: UdpSocket = socket.into();
        let steering = Steering::attach(
            socket.as_raw_fd(),
            range.address,
            range.port_min,
            range.port_max,
        )?;
        Ok(SteeredSocket {
            socket,
            steering,
            legs_by_port: vec![
                None;
                usize::from(range.port_max.saturating_sub(range.port_min)) + 1
            ],
            port_min: range.port_min,
        })
    }
}
