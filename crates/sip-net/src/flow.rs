//! Where a message came from and where it goes: transports, connections and flows.

use std::fmt;
use std::net::SocketAddr;

/// The transport protocols this crate carries SIP over: defined in `sip-core`, beside the
/// sans-IO rules that name transports (tokens, default ports, URI destinations).
pub use sip_core::transport::TransportProtocol;

/// Identifies one TCP or TLS connection for as long as it lives. Never reused within a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub(crate) u64);

impl ConnectionId {
    /// The number behind the id, for logs and flow tokens.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "conn-{}", self.0)
    }
}

/// The path a message took (RFC 5626 §3: a flow): transport, both addresses and, for streams,
/// the connection. Handing the flow of a request back to [`Transports::send`](crate::Transports::send)
/// sends the response on the very connection the request came in on (RFC 3261 §18.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: TransportProtocol,
    /// Our address: the UDP socket or the local end of the connection.
    pub local: SocketAddr,
    /// The peer's address (the source address of what we received).
    pub remote: SocketAddr,
    /// The connection, for TCP and TLS; `None` for UDP.
    pub connection: Option<ConnectionId>,
}

/// Where to send a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Back along a known flow; for streams, on that connection while it is open, else on a
    /// connection to the same remote address (opened if needed).
    Flow(Flow),
    /// To an address: an open connection to it is reused, else one is opened (streams).
    Address {
        transport: TransportProtocol,
        remote: SocketAddr,
        /// Name to check the TLS server certificate against; the IP address when `None`.
        server_name: Option<String>,
    },
}

impl Destination {
    /// A destination by transport and address, without a TLS server name.
    pub fn address(transport: TransportProtocol, remote: SocketAddr) -> Self {
        Destination::Address {
            transport,
            remote,
            server_name: None,
        }
    }

    pub fn transport(&self) -> TransportProtocol {
        match self {
            Destination::Flow(flow) => flow.transport,
            Destination::Address { transport, .. } => *transport,
        }
    }

    pub fn remote(&self) -> SocketAddr {
        match self {
            Destination::Flow(flow) => flow.remote,
            Destination::Address { remote, .. } => *remote,
        }
    }
}

impl From<Flow> for Destination {
    fn from(flow: Flow) -> Self {
        Destination::Flow(flow)
    }
}
