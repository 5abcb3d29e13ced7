//! Relay settings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::dataplane::IoMode;

/// DSCP EF (46) shifted into the TOS byte: 46 << 2 = 184 (RFC 3246, RFC 2474 §3).
pub const TOS_EXPEDITED_FORWARDING: u8 = 184;

/// How a [`crate::MediaRelay`] runs.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Where the ng control protocol listens (C5 default port 12222).
    pub ng_address: SocketAddr,
    /// Address the relay sockets bind to.
    pub media_bind_address: IpAddr,
    /// Address written into rewritten SDP (differs from the bind address behind 1:1 NAT).
    pub advertised_address: IpAddr,
    /// Lowest relay port (rounded up to even).
    pub port_min: u16,
    /// Highest relay port.
    pub port_max: u16,
    /// A call with no media (and no signalling) for this long is ended.
    pub media_timeout: Duration,
    /// How long a deleted call is remembered by default (rtpengine's `--delete-delay`): its
    /// ports return to the pool at the delete, but `query` still answers with its final
    /// figures and late packets of its phones are kept from the ports' next owners.
    pub delete_delay: Duration,
    /// How long a cookie's reply is replayed for retransmissions (lives 1–2 times this).
    pub cookie_cache_ttl: Duration,
    /// Most cached replies per generation, so a flood of cookies cannot exhaust memory.
    pub cookie_cache_capacity: usize,
    /// TOS byte on every relayed packet.
    pub tos: u8,
    /// Data-plane I/O: steered receive (BPF, falls back to batched), batched per socket, or the
    /// simple reference path.
    pub io_mode: IoMode,
    /// Pause of the data plane after a busy round so the next epoll_wait gathers many ready
    /// sockets (at most this much added latency; zero = wake for every packet).
    pub poll_coalesce: Duration,
    /// Relay latched IPv4 streams in the kernel (a tc BPF program, like rtpengine's kernel
    /// module); falls back to user space where it cannot be attached.
    pub kernel_forwarding: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            ng_address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 12222),
            media_bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertised_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: 30000,
            port_max: 40000,
            media_timeout: Duration::from_secs(60),
            delete_delay: Duration::from_secs(30),
            cookie_cache_ttl: Duration::from_secs(30),
            cookie_cache_capacity: 100_000,
            tos: TOS_EXPEDITED_FORWARDING,
            io_mode: IoMode::Steered,
            poll_coalesce: Duration::from_micros(500),
            kernel_forwarding: true,
        }
    }
}

impl MediaConfig {
    /// Settings for tests and embedding: loopback, ng on a free port, relay on `address`.
    #[must_use]
    pub fn loopback(port_min: u16, port_max: u16) -> Self {
        MediaConfig {
            ng_address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            port_min,
            port_max,
            ..MediaConfig::default()
        }
    }
}
