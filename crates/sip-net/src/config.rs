//! Settings of the transport layer.

use std::time::Duration;

use sip_message::Limits;

/// Limits and socket options shared by all transports.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Parser bounds. `max_message_size` (default 64 KiB - 1) caps a datagram and a stream
    /// message; a stream whose header section passes `max_header_section_size` without an empty
    /// line is closed, so a connection never buffers more than that plus one read.
    pub limits: Limits,
    /// A connection with no traffic in either direction for this long is closed. Default 120 s.
    pub idle_timeout: Duration,
    /// Limit for opening an outbound TCP connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Limit for a TLS handshake, inbound or outbound. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// `SO_RCVBUF` for UDP sockets, left to the kernel when `None`. Default 4 MiB (the kernel
    /// caps it at `net.core.rmem_max`): with the kernel's ~208 KiB default, bursts at a few
    /// thousand calls/s overflowed the LB's and proxy's internal sockets in the load bench.
    pub udp_receive_buffer_size: Option<usize>,
    /// `SO_SNDBUF` for UDP sockets, left to the kernel when `None`.
    pub udp_send_buffer_size: Option<usize>,
    /// IPv4 TOS / IPv6 traffic class byte for sent packets (e.g. `0x68` for DSCP AF31).
    pub type_of_service: Option<u32>,
    /// How many received messages may wait for the application before receive tasks pause.
    pub inbound_queue_length: usize,
    /// How many messages may wait to be written on one connection before senders wait.
    pub connection_queue_length: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            udp_receive_buffer_size: Some(4 << 20),
            udp_send_buffer_size: None,
            type_of_service: None,
            inbound_queue_length: 1024,
            connection_queue_length: 64,
        }
    }
}
