//! Where responses go: the server stamps `received`/`rport` on the top Via of each
//! request it receives (RFC 3261 §18.2.1, RFC 3581 §4), later sends the response to the
//! address that Via names (RFC 3261 §18.2.2, RFC 3581 §4), and a client drops responses
//! whose top Via is not its own (RFC 3261 §18.1.2).
//!
//! Pure functions over [`TopVia`], a plain copy of one `via-parm` read from
//! `sip_message::Via`. The caller applies a rewritten Via with `Message::pop_via` and
//! `Message::push_via`.

use core::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use crate::transport::TransportProtocol;

/// The transport of a Via `sent-protocol` (RFC 3261 §20.42, RFC 7118 §5 for WS/WSS).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `UDP`.
    Udp,
    /// `TCP`.
    Tcp,
    /// `TLS`.
    Tls,
    /// `SCTP`.
    Sctp,
    /// `TLS-SCTP`.
    TlsSctp,
    /// `WS` (RFC 7118).
    Ws,
    /// `WSS` (RFC 7118).
    Wss,
    /// Any other token, kept uppercase (RFC 3261 §25.1 `other-transport`).
    Other(String),
}

impl Transport {
    /// Reads a transport token; tokens compare case-insensitively. Only an unknown token
    /// allocates (this runs for every Via a stateless proxy looks at).
    pub fn from_token(token: &str) -> Self {
        const KNOWN: [Transport; 7] = [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Sctp,
            Transport::TlsSctp,
            Transport::Ws,
            Transport::Wss,
        ];
        KNOWN
            .into_iter()
            .find(|known| known.token().eq_ignore_ascii_case(token))
            .unwrap_or_else(|| Self::Other(token.to_ascii_uppercase()))
    }

    /// The token as written in a Via.
    pub fn token(&self) -> &str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Sctp => "SCTP",
            Self::TlsSctp => "TLS-SCTP",
            Self::Ws => "WS",
            Self::Wss => "WSS",
            Self::Other(token) => token,
        }
    }

    /// Whether the transport is connection-oriented and reliable (RFC 3261 §18.2.2).
    /// Unknown transports count as unreliable, the case that needs no connection.
    pub fn is_reliable(&self) -> bool {
        matches!(
            self,
            Self::Tcp | Self::Tls | Self::Sctp | Self::TlsSctp | Self::Ws | Self::Wss
        )
    }

    /// The port implied when sent-by has none: 5060, or 5061 over TLS (RFC 3261
    /// §18.2.2, §19.1.2); 80 and 443 for WS and WSS (RFC 7118 §5).
    pub fn default_port(&self) -> u16 {
        match self {
            Self::Tls | Self::TlsSctp => 5061,
            Self::Ws => 80,
            Self::Wss => 443,
            Self::Udp | Self::Tcp | Self::Sctp | Self::Other(_) => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.token())
    }
}

/// A sent-by or maddr host (RFC 3261 §25.1 `host`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// A host name, to be resolved by RFC 3263 §5 by the caller.
    Domain(String),
}

impl Host {
    /// Reads a host: an IPv4 literal, an IPv6 literal with or without brackets (RFC 5118
    /// §4.5 allows both in `received`), else a domain name.
    pub fn parse(text: &str) -> Self {
        let unbracketed = text
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(text);
        match unbracketed.parse::<IpAddr>() {
            Ok(address) => Self::Ip(address.to_canonical()),
            Err(_) => Self::Domain(text.to_owned()),
        }
    }

    /// Same host: addresses by value (so `::ffff:192.0.2.1` equals `192.0.2.1`), names
    /// case-insensitively (RFC 3261 §19.1.4).
    pub fn matches(&self, other: &Host) -> bool {
        match (self, other) {
            (Self::Ip(left), Self::Ip(right)) => left.to_canonical() == right.to_canonical(),
            (Self::Domain(left), Self::Domain(right)) => left
                .trim_end_matches('.')
                .eq_ignore_ascii_case(right.trim_end_matches('.')),
            _ => false,
        }
    }
}

impl fmt::Display for Host {
    /// Host as written in a sent-by or URI: IPv6 in brackets (RFC 3261 §25.1 `IPv6reference`).
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V6(address)) => write!(formatter, "[{address}]"),
            Self::Ip(IpAddr::V4(address)) => write!(formatter, "{address}"),
            Self::Domain(name) => formatter.write_str(name),
        }
    }
}

/// Why a Via cannot be used for response routing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViaError {
    /// The Via value does not parse (RFC 3261 §20.42).
    #[error("malformed Via: {0}")]
    Malformed(sip_message::ParseError),
    /// The message has no Via at all (RFC 3261 §8.1.1.7 makes one mandatory).
    #[error("message has no Via")]
    Missing,
    /// A sent-by host in a form that cannot be addressed (e.g. `[2001:db8:::1]`).
    #[error("sent-by host `{host}` is not a usable address")]
    UnusableHost {
        /// The host as received.
        host: String,
    },
    /// The Via holds bytes that are not UTF-8.
    #[error("Via is not UTF-8")]
    NotUtf8,
}

/// One Via value (`via-parm`) as plain data: the fields routing needs and every
/// parameter in order, so it can be printed back with edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopVia {
    /// `protocol-name "/" protocol-version`, normally `SIP/2.0`.
    pub protocol: String,
    /// The transport.
    pub transport: Transport,
    /// sent-by host.
    pub host: Host,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// Parameters in order: `(name, value)`, values raw (quotes kept).
    pub parameters: Vec<(String, Option<String>)>,
}

impl TopVia {
    /// Parses one Via value, e.g. `SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport`.
    pub fn parse(value: &str) -> Result<Self, ViaError> {
        let via = sip_message::Via::parse(value.as_bytes()).map_err(ViaError::Malformed)?;
        Self::from_view(&via)
    }

    /// The top Via of a message (the one a server stamps and a client checks).
    pub fn from_message(message: &sip_message::Message) -> Result<Self, ViaError> {
        match message.vias().next() {
            None => Err(ViaError::Missing),
            Some(Err(error)) => Err(ViaError::Malformed(error)),
            Some(Ok(via)) => Self::from_view(&via),
        }
    }

    /// Copies a `sip_message::Via` view.
    pub fn from_view(via: &sip_message::Via<'_>) -> Result<Self, ViaError> {
        let text = |bytes: &[u8]| {
            core::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| ViaError::NotUtf8)
        };
        let host_text = text(via.host.as_bytes())?;
        let host = match via.host {
            sip_message::Host::Domain(_) => Host::Domain(host_text),
            sip_message::Host::Ipv4(_) | sip_message::Host::Ipv6(_) => match via.host.ip() {
                Some(address) => Host::Ip(address.to_canonical()),
                None => return Err(ViaError::UnusableHost { host: host_text }),
            },
        };
        let parameters = via
            .params
            .iter()
            .map(|(name, value)| Ok((text(name)?, value.map(text).transpose()?)))
            .collect::<Result<Vec<_>, ViaError>>()?;
        Ok(Self {
            protocol: format!(
                "{}/{}",
                text(via.protocol_name)?,
                text(via.protocol_version)?
            ),
            transport: Transport::from_token(&text(via.transport)?),
            host,
            port: via.port,
            parameters,
        })
    }

    /// A parameter by name (case-insensitive): `None` absent, `Some(None)` without value.
    pub fn parameter(&self, name: &str) -> Option<Option<&str>> {
        self.parameters
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_deref())
    }

    /// `received` as an address; absent or unreadable gives `None`.
    pub fn received(&self) -> Option<IpAddr> {
        match Host::parse(self.parameter("received")??) {
            Host::Ip(address) => Some(address),
            Host::Domain(_) => None,
        }
    }

    /// `rport` (RFC 3581 §3): `None` absent, `Some(None)` requested, `Some(Some(port))`
    /// filled in. An unreadable value counts as requested.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.parameter("rport")
            .map(|value| value.and_then(|port| port.parse().ok()))
    }

    /// `maddr` (RFC 3261 §18.2.2).
    pub fn maddr(&self) -> Option<Host> {
        self.parameter("maddr")?.map(Host::parse)
    }

    /// The sent-by port, or the transport's default.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.transport.default_port())
    }

    /// Sets a parameter in place, or appends it.
    fn set_parameter(&mut self, name: &str, value: String) {
        match self
            .parameters
            .iter_mut()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
        {
            Some(entry) => entry.1 = Some(value),
            None => self.parameters.push((name.to_owned(), Some(value))),
        }
    }

    /// The Via value text, e.g. for `Message::push_via`.
    pub fn to_header_value(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TopVia {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}/{} {}",
            self.protocol, self.transport, self.host
        )?;
        if let Some(port) = self.port {
            write!(formatter, ":{port}")?;
        }
        for (name, value) in &self.parameters {
            match value {
                Some(value) => write!(formatter, ";{name}={value}")?,
                None => write!(formatter, ";{name}")?,
            }
        }
        Ok(())
    }
}

/// The stamp a server puts on the top Via of a received request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedStamp {
    /// The `received` value added or replaced.
    pub received: IpAddr,
    /// The `rport` value filled in, when the client asked for it.
    pub rport: Option<u16>,
    /// The rewritten Via, to replace the top one.
    pub via: TopVia,
}

/// Decides the `received` and `rport` parameters for a request's top Via, given the
/// packet's source address; `None` when the Via needs no change.
///
/// RFC 3261 §18.2.1: add `received` when sent-by is a domain name or an address other
/// than the source. RFC 3581 §4: when `rport` is present, fill it with the source port
/// and add `received` even if the address matches. An `rport` that already has a value
/// is overwritten: the packet's real source is what the response must reach.
pub fn stamp_received(via: &TopVia, source: SocketAddr) -> Option<ReceivedStamp> {
    let sent_by = match via.host {
        Host::Ip(address) => Some(address),
        Host::Domain(_) => None,
    };
    let claimed = via.parameter("received").map(|value| {
        value.and_then(|text| match Host::parse(text) {
            Host::Ip(address) => Some(address),
            Host::Domain(_) => None,
        })
    });
    let (received, rport) = stamp_values(sent_by, claimed, via.rport().is_some(), source)?;
    let mut stamped = via.clone();
    // RFC 3261 §25.1: `received` holds the bare address, IPv6 without brackets.
    stamped.set_parameter("received", received.to_string());
    if let Some(port) = rport {
        stamped.set_parameter("rport", port.to_string());
    }
    Some(ReceivedStamp {
        received,
        rport,
        via: stamped,
    })
}

/// The one rule behind [`stamp_received`] and [`stamp_received_text`]: the `received`
/// address and filled `rport` for a Via whose sent-by is `sent_by` (`None` for a host name)
/// and which arrived with a `received` parameter `claimed` (`Some(None)`: one that is no
/// address), or `None` when the Via stays as it is.
///
/// A `received` the sender wrote itself that is not its real source is replaced: otherwise a
/// phone could name a victim in it and have every response reflected there.
fn stamp_values(
    sent_by: Option<IpAddr>,
    claimed: Option<Option<IpAddr>>,
    rport_requested: bool,
    source: SocketAddr,
) -> Option<(IpAddr, Option<u16>)> {
    let source_address = source.ip().to_canonical();
    let sent_by_differs = sent_by.map(|address| address.to_canonical()) != Some(source_address);
    let forged = claimed.is_some_and(|claimed| {
        claimed.map(|address| address.to_canonical()) != Some(source_address)
    });
    if !rport_requested && !sent_by_differs && !forged {
        return None;
    }
    Some((source_address, rport_requested.then(|| source.port())))
}

/// [`stamp_received`] on the borrowed view, for receive paths that stamp every request and
/// should not copy the Via into a [`TopVia`] first: the same decision, and the same edit of
/// the parameters (`received` and `rport` replaced where they stand, `received` appended when
/// new); the sent-protocol and sent-by stay as written. `None` when the Via needs no change,
/// or when [`TopVia::from_view`] would refuse it (bytes that are not UTF-8, an unusable
/// address), so both stamp the same requests.
pub fn stamp_received_text(via: &sip_message::Via<'_>, source: SocketAddr) -> Option<String> {
    let sent_by = match via.host {
        sip_message::Host::Domain(_) => None,
        sip_message::Host::Ipv4(_) | sip_message::Host::Ipv6(_) => Some(via.host.ip()?),
    };
    let rport_requested = via.rport().is_some();
    let claimed =
        via.received().map(
            |value| match Host::parse(core::str::from_utf8(value).ok()?) {
                Host::Ip(address) => Some(address),
                Host::Domain(_) => None,
            },
        );
    let (received, rport) = stamp_values(sent_by, claimed, rport_requested, source)?;
    // The sent-protocol and sent-by end at the first `;` (neither may contain one).
    let parameters_start = via
        .raw
        .iter()
        .position(|&byte| byte == b';')
        .unwrap_or(via.raw.len());
    let head = core::str::from_utf8(via.raw[..parameters_start].trim_ascii_end()).ok()?;
    let mut text = String::with_capacity(via.raw.len() + 40);
    text.push_str(head);
    let (mut received_written, mut rport_written) = (false, rport.is_none());
    for (name, value) in via.params.iter() {
        let name = core::str::from_utf8(name).ok()?;
        text.push(';');
        text.push_str(name);
        if !received_written && name.eq_ignore_ascii_case("received") {
            received_written = true;
            let _ = write!(text, "={received}");
        } else if let (false, Some(port)) = (rport_written, rport)
            && name.eq_ignore_ascii_case("rport")
        {
            rport_written = true;
            let _ = write!(text, "={port}");
        } else if let Some(value) = value {
            text.push('=');
            text.push_str(core::str::from_utf8(value).ok()?);
        }
    }
    if !received_written {
        let _ = write!(text, ";received={received}");
    }
    Some(text)
}

/// Where a response goes (RFC 3261 §18.2.2, RFC 3581 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseTarget {
    /// Back over the connection the request came on.
    SameConnection,
    /// To this address; a [`Host::Domain`] is resolved by RFC 3263 §5.
    Address {
        /// Host to send to.
        host: Host,
        /// Port to send to.
        port: u16,
        /// Transport to use.
        transport: Transport,
    },
}

/// The target for a response whose top Via is `via`. `request_connection_open` tells
/// whether the connection that carried a reliable-transport request still exists.
///
/// In RFC 3261 §18.2.2 order: reliable transport → that connection, else `received`
/// (or sent-by) at the sent-by port; `maddr` → that address at the sent-by port;
/// unreliable with `received` and a filled `rport` → exactly there (RFC 3581 §4);
/// with `received` → that address at the sent-by port; else sent-by itself.
pub fn response_target(via: &TopVia, request_connection_open: bool) -> ResponseTarget {
    let port = via.effective_port();
    let transport = via.transport.clone();
    let received = via.received().map(Host::Ip);
    if via.transport.is_reliable() {
        if request_connection_open {
            return ResponseTarget::SameConnection;
        }
        return ResponseTarget::Address {
            host: received.unwrap_or_else(|| via.host.clone()),
            port,
            transport,
        };
    }
    if let Some(maddr) = via.maddr() {
        return ResponseTarget::Address {
            host: maddr,
            port,
            transport,
        };
    }
    if let Some(received) = received {
        let port = match via.rport() {
            Some(Some(rport)) => rport,
            _ => port,
        };
        return ResponseTarget::Address {
            host: received,
            port,
            transport,
        };
    }
    ResponseTarget::Address {
        host: via.host.clone(),
        port,
        transport,
    }
}

/// The sent-by port of a parsed Via, else its transport's default ([`Transport::default_port`]),
/// read from the borrowed view without copying it (the [`TopVia::effective_port`] rule).
pub fn sent_by_port(via: &sip_message::Via<'_>) -> u16 {
    via.port.unwrap_or_else(|| {
        core::str::from_utf8(via.transport)
            .map_or(5060, |token| Transport::from_token(token).default_port())
    })
}

/// Where the request that carried `via` came from, as the server that received it stamped it
/// (RFC 3261 §18.2.1, RFC 3581 §4): the `received` address, else the sent-by IP; the filled
/// `rport`, else the sent-by port or the transport default. Read from the borrowed view, so a
/// stateless element pays no copy per response.
///
/// Over UDP, for a Via without `maddr`, this is the §18.2.2 target [`response_target`] gives.
/// Over TCP/TLS with `rport` it is the remote end of the connection the request came on, the
/// connection §18.2.2 sends the response on, so a stateless element finds that connection
/// again by it ([`response_target`] instead gives the sent-by port to open a new connection
/// to once that one is gone).
///
/// `None` for a transport voxide does not carry, a `received` that is not an address, or a
/// sent-by host name without `received` (no DNS here).
pub fn request_source(via: &sip_message::Via<'_>) -> Option<(TransportProtocol, SocketAddr)> {
    let transport = TransportProtocol::from_token(via.transport)?;
    let ip = match via.received() {
        Some(received) => match Host::parse(core::str::from_utf8(received).ok()?) {
            Host::Ip(address) => address,
            Host::Domain(_) => return None,
        },
        None => via.host.ip()?,
    };
    let port = match via.rport() {
        Some(Some(port)) => port,
        _ => via.port.unwrap_or_else(|| transport.default_port()),
    };
    Some((transport, SocketAddr::new(ip, port)))
}

/// A sent-by this client transport puts into its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSentBy {
    /// Host as inserted into our Vias.
    pub host: Host,
    /// Port as inserted, or the transport default when we leave it out.
    pub port: u16,
}

/// What a client transport does with a received response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseDisposition {
    /// The top Via is ours: hand the response to the transaction layer.
    Accept,
    /// The top Via is someone else's: drop it silently (RFC 3261 §18.1.2).
    Discard,
}

/// RFC 3261 §18.1.2: a response whose top Via sent-by is not one we insert is
/// discarded. Ports compare after applying the transport default, so `host` and
/// `host:5060` are the same sent-by over UDP.
pub fn check_response_via(via: &TopVia, ours: &[LocalSentBy]) -> ResponseDisposition {
    let port = via.effective_port();
    if ours
        .iter()
        .any(|local| local.port == port && local.host.matches(&via.host))
    {
        ResponseDisposition::Accept
    } else {
        ResponseDisposition::Discard
    }
}
