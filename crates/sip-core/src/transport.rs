//! The transports the platform carries SIP over, their names on the wire, and where a SIP URI
//! with an IP-literal host leads.
//!
//! [`TransportProtocol`] is the closed set voxide implements (UDP, TCP, TLS); the open set of
//! every Via `sent-protocol` token is [`crate::response_routing::Transport`]. `sip-net` binds
//! sockets for these transports and re-exports this type, so the sans-IO rules here and the
//! I/O edge share one name for them.

use core::fmt;
use std::net::SocketAddr;

use sip_message::{Scheme, Uri};

use crate::response_routing::Transport;

/// A transport voxide carries SIP over (RFC 3261 §18; TLS per RFC 3261 §26.2, RFC 5630).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportProtocol {
    Udp,
    Tcp,
    Tls,
}

impl TransportProtocol {
    /// Every transport, for tests and tables.
    pub const ALL: [TransportProtocol; 3] = [
        TransportProtocol::Udp,
        TransportProtocol::Tcp,
        TransportProtocol::Tls,
    ];

    /// The token of a Via `sent-protocol` (RFC 3261 §20.42): `UDP`, `TCP`, `TLS`.
    pub fn via_token(self) -> &'static str {
        match self {
            TransportProtocol::Udp => "UDP",
            TransportProtocol::Tcp => "TCP",
            TransportProtocol::Tls => "TLS",
        }
    }

    /// The lower-case name used in a URI `transport=` parameter (RFC 3261 §19.1.1) and in
    /// voxide's `X-Voxide-Source` header: `udp`, `tcp`, `tls`.
    pub fn name(self) -> &'static str {
        match self {
            TransportProtocol::Udp => "udp",
            TransportProtocol::Tcp => "tcp",
            TransportProtocol::Tls => "tls",
        }
    }

    /// Reads a transport token in any case (Via tokens and URI parameters compare
    /// case-insensitively, RFC 3261 §7.1, §19.1.4); `None` for a transport voxide does not
    /// carry (SCTP, WS, …).
    pub fn from_token(token: &[u8]) -> Option<TransportProtocol> {
        TransportProtocol::ALL
            .into_iter()
            .find(|transport| token.eq_ignore_ascii_case(transport.name().as_bytes()))
    }

    /// Whether messages travel over a connection that must be framed (RFC 3261 §18.3).
    pub fn is_stream(self) -> bool {
        !matches!(self, TransportProtocol::Udp)
    }

    /// The port implied when a sent-by or URI has none: 5061 for TLS, else 5060
    /// (RFC 3261 §18.2.2, §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            TransportProtocol::Tls => 5061,
            TransportProtocol::Udp | TransportProtocol::Tcp => 5060,
        }
    }
}

impl fmt::Display for TransportProtocol {
    /// The Via token, e.g. `TLS`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.via_token())
    }
}

impl From<TransportProtocol> for Transport {
    fn from(transport: TransportProtocol) -> Transport {
        match transport {
            TransportProtocol::Udp => Transport::Udp,
            TransportProtocol::Tcp => Transport::Tcp,
            TransportProtocol::Tls => Transport::Tls,
        }
    }
}

impl TryFrom<&Transport> for TransportProtocol {
    /// The Via transport voxide cannot carry.
    type Error = Transport;

    fn try_from(transport: &Transport) -> Result<TransportProtocol, Transport> {
        match transport {
            Transport::Udp => Ok(TransportProtocol::Udp),
            Transport::Tcp => Ok(TransportProtocol::Tcp),
            Transport::Tls => Ok(TransportProtocol::Tls),
            other => Err(other.clone()),
        }
    }
}

/// Where a SIP URI whose host is an IP literal leads, without DNS: the transport from its
/// `transport` parameter, else TLS for `sips` and UDP for `sip` (RFC 3263 §4.1 for a numeric
/// host), and the URI port, else the transport's default (§4.2). `None` for a host name (RFC
/// 3263 resolution is the caller's job), a non-SIP URI or a transport voxide does not carry.
pub fn uri_destination(uri: &Uri<'_>) -> Option<(TransportProtocol, SocketAddr)> {
    if !uri.is_sip() {
        return None;
    }
    let transport = match uri.param(b"transport") {
        Some(Some(token)) => TransportProtocol::from_token(token)?,
        _ if matches!(uri.scheme, Scheme::Sips) => TransportProtocol::Tls,
        _ => TransportProtocol::Udp,
    };
    let ip = uri.host.ip()?;
    let port = uri.port.unwrap_or_else(|| transport.default_port());
    Some((transport, SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_and_tokens_read_back_in_any_case() {
        for transport in TransportProtocol::ALL {
            assert_eq!(
                TransportProtocol::from_token(transport.name().as_bytes()),
                Some(transport)
            );
            assert_eq!(
                TransportProtocol::from_token(transport.via_token().as_bytes()),
                Some(transport)
            );
            assert_eq!(transport.to_string(), transport.via_token());
        }
        assert_eq!(
            TransportProtocol::from_token(b"tLs"),
            Some(TransportProtocol::Tls)
        );
        assert_eq!(TransportProtocol::from_token(b"SCTP"), None);
        assert_eq!(TransportProtocol::from_token(b"WS"), None);
        assert_eq!(TransportProtocol::from_token(b""), None);
        assert_eq!(TransportProtocol::from_token(b"udpx"), None);
    }

    #[test]
    fn only_tls_defaults_to_5061_and_only_udp_is_a_datagram_transport() {
        assert_eq!(TransportProtocol::Udp.default_port(), 5060);
        assert_eq!(TransportProtocol::Tcp.default_port(), 5060);
        assert_eq!(TransportProtocol::Tls.default_port(), 5061);
        assert!(!TransportProtocol::Udp.is_stream());
        assert!(TransportProtocol::Tcp.is_stream());
        assert!(TransportProtocol::Tls.is_stream());
    }

    #[test]
    fn converts_to_and_from_the_open_via_transport() {
        for transport in TransportProtocol::ALL {
            let open = Transport::from(transport);
            assert_eq!(open.token(), transport.via_token());
            assert_eq!(TransportProtocol::try_from(&open), Ok(transport));
            assert_eq!(open.default_port(), transport.default_port());
            assert_eq!(open.is_reliable(), transport.is_stream());
        }
        assert_eq!(
            TransportProtocol::try_from(&Transport::Ws),
            Err(Transport::Ws)
        );
    }

    fn destination(uri: &str) -> Option<(TransportProtocol, SocketAddr)> {
        uri_destination(&Uri::parse(uri.as_bytes()).unwrap())
    }

    #[test]
    fn uri_destination_follows_transport_parameter_scheme_and_default_port() {
        let at = |transport, address: &str| Some((transport, address.parse().unwrap()));
        assert_eq!(
            destination("sip:alice@192.0.2.1"),
            at(TransportProtocol::Udp, "192.0.2.1:5060")
        );
        assert_eq!(
            destination("sips:alice@192.0.2.1"),
            at(TransportProtocol::Tls, "192.0.2.1:5061")
        );
        assert_eq!(
            destination("sip:192.0.2.1;transport=TCP"),
            at(TransportProtocol::Tcp, "192.0.2.1:5060")
        );
        assert_eq!(
            destination("sip:192.0.2.1;transport=tls"),
            at(TransportProtocol::Tls, "192.0.2.1:5061")
        );
        assert_eq!(
            destination("sip:[2001:db8::1]:5070;lr"),
            at(TransportProtocol::Udp, "[2001:db8::1]:5070")
        );
        assert_eq!(destination("sip:alice@example.com"), None);
        assert_eq!(destination("sip:192.0.2.1;transport=sctp"), None);
        assert_eq!(destination("tel:+15551234567"), None);
    }

    proptest! {
        /// Any IPv4 literal, port and transport written into a URI comes back out.
        #[test]
        fn uri_destination_reads_back_what_was_written(
            octets in any::<[u8; 4]>(),
            port in 1_u16..,
            transport in proptest::sample::select(TransportProtocol::ALL.to_vec()),
            upper in any::<bool>(),
        ) {
            let ip = std::net::Ipv4Addr::from(octets);
            let name = if upper { transport.via_token() } else { transport.name() };
            let uri = format!("sip:user@{ip}:{port};transport={name}");
            prop_assert_eq!(
                destination(&uri),
                Some((transport, SocketAddr::new(ip.into(), port)))
            );
        }
    }
}
