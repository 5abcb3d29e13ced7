//! voxide's internal `X-Voxide-*` headers: what one component tells the next one inside the
//! platform (today the LB names a phone's real source for the proxy).
//!
//! The rules both sides keep: every name with the [`INTERNAL_HEADER_PREFIX`] is reserved, so
//! a component strips them from what a client sent before adding its own, and strips them
//! again from whatever leaves the platform; the value of [`SOURCE_HEADER`] is
//! `<udp|tcp|tls> <ip>:<port>` ([`Source`]). Whether to believe a received one (only from a
//! configured LB) stays the receiver's policy.

use core::fmt;
use std::net::SocketAddr;

use sip_message::{HeaderName, Message};

use crate::transport::TransportProtocol;

/// Prefix of every internal header name (compared case-insensitively, RFC 3261 §7.3.1).
pub const INTERNAL_HEADER_PREFIX: &str = "X-Voxide-";

/// The header in which the LB names the real source of a phone's request.
pub const SOURCE_HEADER: &str = "X-Voxide-Source";

/// The [`SOURCE_HEADER`] name.
pub fn source_header_name() -> HeaderName {
    HeaderName::from_static(SOURCE_HEADER)
}

/// Whether `name` is an internal header (starts with `X-Voxide-`, any case).
pub fn is_internal_header(name: &HeaderName) -> bool {
    name.as_bytes()
        .get(..INTERNAL_HEADER_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(INTERNAL_HEADER_PREFIX.as_bytes()))
}

/// Removes every internal header from `message`; returns how many lines went. A message
/// without any (nearly all) costs one scan and no allocation.
pub fn remove_internal_headers(message: &mut Message) -> usize {
    if !message.headers().any(|(name, _)| is_internal_header(&name)) {
        return 0;
    }
    let internal: Vec<HeaderName> = message
        .headers()
        .map(|(name, _)| name)
        .filter(is_internal_header)
        .collect();
    internal
        .iter()
        .map(|name| message.remove_header(name))
        .sum()
}

/// The value of [`SOURCE_HEADER`]: the transport and address a request really came from
/// before the LB relayed it over internal UDP, e.g. `tls 203.0.113.5:40000` or
/// `udp [2001:db8::5]:5060`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    pub transport: TransportProtocol,
    pub address: SocketAddr,
}

impl Source {
    /// Reads a header value: a transport name (any case), white space, `ip:port` (IPv6 in
    /// brackets). `None` for anything else, trailing words included.
    pub fn parse(value: &[u8]) -> Option<Source> {
        let text = core::str::from_utf8(value).ok()?;
        let mut words = text.split_ascii_whitespace();
        let transport = TransportProtocol::from_token(words.next()?.as_bytes())?;
        let address = words.next()?.parse().ok()?;
        if words.next().is_some() {
            return None;
        }
        Some(Source { transport, address })
    }

    /// The first [`SOURCE_HEADER`] of `message`, if present and well-formed. Trusting it is
    /// the caller's decision (it must come from a configured LB).
    pub fn from_message(message: &Message) -> Option<Source> {
        Source::parse(message.header(&source_header_name())?)
    }
}

impl fmt::Display for Source {
    /// The header value, e.g. `udp 192.0.2.1:5060`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {}", self.transport.name(), self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn message(extra: &str) -> Message {
        Message::parse(Bytes::from(format!(
            "OPTIONS sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKint\r\n\
             {extra}\
             From: <sip:alice@example.com>;tag=a\r\n\
             To: <sip:bob@example.com>\r\n\
             Call-ID: internal-1\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        )))
        .unwrap()
    }

    #[test]
    fn every_internal_header_goes_in_any_case_and_nothing_else() {
        let mut message = message(
            "X-Voxide-Source: udp 6.6.6.6:5060\r\n\
             x-voxide-route-to: sip:evil\r\n\
             X-VOXIDE-Source: tls 6.6.6.6:5061\r\n\
             X-Voxid: kept\r\n\
             X-Other: kept\r\n",
        );
        assert_eq!(remove_internal_headers(&mut message), 3);
        let printed = String::from_utf8(message.to_bytes().to_vec()).unwrap();
        assert!(
            !printed.to_ascii_lowercase().contains("x-voxide-"),
            "{printed}"
        );
        assert!(printed.contains("X-Voxid: kept\r\n"), "{printed}");
        assert!(printed.contains("X-Other: kept\r\n"), "{printed}");
        assert!(printed.contains("Call-ID: internal-1\r\n"), "{printed}");
    }

    #[test]
    fn a_message_without_internal_headers_is_left_untouched() {
        let original = message("X-Other: kept\r\n");
        let mut stripped = original.clone();
        assert_eq!(remove_internal_headers(&mut stripped), 0);
        assert_eq!(stripped.to_bytes(), original.to_bytes());
    }

    #[test]
    fn is_internal_compares_the_prefix_only() {
        assert!(is_internal_header(&source_header_name()));
        assert!(is_internal_header(&HeaderName::from_static("x-voxide-")));
        assert!(!is_internal_header(&HeaderName::from_static("X-Voxide")));
        assert!(!is_internal_header(&HeaderName::Via));
    }

    #[test]
    fn source_values_parse_and_print() {
        let source = Source::parse(b"tls [2001:db8::5]:5061").unwrap();
        assert_eq!(source.transport, TransportProtocol::Tls);
        assert_eq!(source.address, "[2001:db8::5]:5061".parse().unwrap());
        assert_eq!(source.to_string(), "tls [2001:db8::5]:5061");
        assert_eq!(
            Source::parse(b"  UDP   192.0.2.1:5060 "),
            Some(Source {
                transport: TransportProtocol::Udp,
                address: "192.0.2.1:5060".parse().unwrap(),
            })
        );
        for bad in [
            &b""[..],
            b"udp",
            b"udp 192.0.2.1",
            b"sctp 192.0.2.1:5060",
            b"192.0.2.1:5060",
            b"udp example.com:5060",
            b"udp 192.0.2.1:5060 extra",
            b"udp 192.0.2.1:99999",
            b"udp \xff",
        ] {
            assert_eq!(Source::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn from_message_reads_the_first_source_header() {
        let with = message("X-Voxide-Source: tcp 203.0.113.5:40000\r\n");
        assert_eq!(
            Source::from_message(&with),
            Some(Source {
                transport: TransportProtocol::Tcp,
                address: "203.0.113.5:40000".parse().unwrap(),
            })
        );
        assert_eq!(Source::from_message(&message("")), None);
        assert_eq!(
            Source::from_message(&message("X-Voxide-Source: garbage\r\n")),
            None
        );
    }

    proptest! {
        /// What the LB writes, the proxy reads back exactly.
        #[test]
        fn source_round_trips(
            transport in proptest::sample::select(TransportProtocol::ALL.to_vec()),
            ip in any::<std::net::IpAddr>(),
            port in any::<u16>(),
        ) {
            let source = Source { transport, address: SocketAddr::new(ip, port) };
            prop_assert_eq!(Source::parse(source.to_string().as_bytes()), Some(source));
        }
    }
}
