//! The sans-IO core of the load-balancer: one received message in, one [`Action`] out.
//!
//! [`Forwarder::handle`] decides what happens to a parsed and validated message (as
//! `sip-net` delivers it, top Via already stamped with `received`/`rport`) and rewrites it:
//! sanity answers, loop and relay refusal, Via/Record-Route/Path insertion, NAT aliases and
//! the internal `X-Voxide-Source` header. It keeps no state between calls: every decision is
//! a function of the message, where it came from and the configuration, which is what a
//! stateless proxy must be (RFC 3261 §16.11).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use sip_core::internal_headers::{self, Source, remove_internal_headers};
use sip_core::proxy_rules::{ToTag, is_dialog_forming, is_target_refresh, loop_hash};
use sip_core::response_routing::{request_source, sent_by_port, stamp_received_text};
use sip_core::transport::uri_destination;
use sip_message::{Contact, HeaderName, Host, Message, MessageBuilder, Method, Uri, Via};
use sip_net::TransportProtocol;

#[cfg(test)]
use nat::is_private;
use nat::{is_behind_nat, parse_alias, remove_uri_parameter, rewrite_contacts};

/// Prefix of every branch this LB writes: the RFC 3261 magic cookie, then `vx` so our own
/// Vias are recognised cheaply before their sent-by is compared.
const BRANCH_PREFIX: &str = "z9hG4bKvx";

/// Via parameter carrying the connection a response must go back on.
const FLOW_TOKEN_PARAMETER: &[u8] = b"vxf";

/// Contact/Request-URI parameter carrying a NATed phone's real address (`IP~PORT~PROTO`,
/// the encoding of Kamailio's `add_contact_alias`).
const ALIAS_PARAMETER: &[u8] = b"alias";

/// The header naming the real source of a phone's request (kept here for `lb`'s users).
pub use sip_core::internal_headers::SOURCE_HEADER;

/// Max-Forwards put on requests that carry none (RFC 3261 §8.1.1.6, §16.6 step 3).
const DEFAULT_MAX_FORWARDS: &[u8] = b"70";

/// A public listener: what it is bound to and the address written into Via and
/// Record-Route for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicInterface {
    pub transport: TransportProtocol,
    /// Bound address (may be a wildcard IP).
    pub bound: SocketAddr,
    /// Address phones reach it at.
    pub advertised: SocketAddr,
}

/// What the forwarding core needs to know; see [`crate::LbConfig`] for the user-facing form.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    pub public: Vec<PublicInterface>,
    /// The internal UDP socket: bound address, also written into Via, Path and Record-Route
    /// towards the proxy.
    pub internal: SocketAddr,
    /// Where requests from phones go.
    pub proxy: SocketAddr,
    /// Sources on the internal side whose requests are forwarded to phones and whose
    /// responses are trusted (the proxy's IP addresses).
    pub trusted_proxies: Vec<IpAddr>,
    /// Domains served (lower case); out-of-dialog requests for any other are refused.
    pub domains: HashSet<String>,
    /// Whether an out-of-dialog request for a domain not in `domains` is first handed back as
    /// [`Action::LookUpDomain`] (the provisioning database may have gained it since the list
    /// was read) instead of being refused at once.
    pub look_up_unknown_domains: bool,
}

/// How a message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inbound {
    pub transport: TransportProtocol,
    /// The local socket (for UDP its bound address, for streams the connection's local end).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The TCP/TLS connection id, for streams.
    pub connection: Option<u64>,
}

/// Where a forwarded message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Over the internal UDP socket to this address (the proxy).
    Internal(SocketAddr),
    /// Out of a public listener to a phone or peer. `connection` names the TCP/TLS
    /// connection to reuse when known (from a flow token).
    Public {
        transport: TransportProtocol,
        remote: SocketAddr,
        connection: Option<u64>,
    },
}

/// Why a message was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A response whose top Via is not ours (RFC 3261 §18.1.2).
    ResponseNotForUs,
    /// A response with no Via below ours, or one that does not lead to a trusted proxy.
    ResponseWithoutNextHop,
    /// An ACK that would have been refused: ACKs are never answered (RFC 3261 §17.2.1).
    AckRefused(u16),
    /// A message on the internal socket from an address that is not a trusted proxy.
    UntrustedInternalSource,
}

/// The decision for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the rewritten message.
    Forward { message: Bytes, target: Target },
    /// Send this response back the way the request came.
    Reply { response: Bytes, status: u16 },
    /// Do nothing.
    Drop(DropReason),
    /// Ask whether `domain` is served now, then pass the request, untouched, to
    /// [`Forwarder::handle_looked_up`]. Only with `look_up_unknown_domains`.
    LookUpDomain(Box<DomainLookup>),
}

/// An out-of-dialog request waiting for the answer to whether its domain is served.
#[derive(Debug, Clone)]
pub struct DomainLookup {
    /// The Request-URI host, lower case.
    pub domain: String,
    /// The request as it was handed to [`Forwarder::handle`].
    pub message: Message,
}

impl PartialEq for DomainLookup {
    fn eq(&self, other: &Self) -> bool {
        self.domain == other.domain && self.message.to_bytes() == other.message.to_bytes()
    }
}

impl Eq for DomainLookup {}

/// A refusal: status code and reason phrase.
type Refusal = (u16, String);

/// The stateless forwarding core. Cheap to share; every call is independent.
#[derive(Debug, Clone)]
pub struct Forwarder {
    config: ForwarderConfig,
}

impl Forwarder {
    pub fn new(mut config: ForwarderConfig) -> Forwarder {
        config.domains = config
            .domains
            .iter()
            .map(|domain| domain.to_ascii_lowercase())
            .collect();
        Forwarder { config }
    }

    pub fn config(&self) -> &ForwarderConfig {
        &self.config
    }

    /// Replaces the served domains (e.g. after provisioning changed).
    pub fn set_domains(&mut self, domains: impl IntoIterator<Item = String>) {
        self.config.domains = domains
            .into_iter()
            .map(|domain| domain.to_ascii_lowercase())
            .collect();
    }

    /// Serves one more domain (a lookup found it in the provisioning database).
    pub fn add_domain(&mut self, domain: &str) {
        self.config.domains.insert(domain.to_ascii_lowercase());
    }

    /// Decides and rewrites. `message` must have passed `Message::validate` and carry the
    /// received/rport stamp of its transport (both done by `sip-net`, or by [`receive`]).
    pub fn handle(&self, message: Message, inbound: &Inbound) -> Action {
        if self.config.look_up_unknown_domains
            && inbound.local != self.config.internal
            && let Some(domain) = self.unknown_domain(&message)
        {
            return Action::LookUpDomain(Box::new(DomainLookup { domain, message }));
        }
        self.handle_looked_up(message, inbound)
    }

    /// Decides a request whose domain was looked up (after [`Forwarder::add_domain`] when it
    /// is served): as [`Forwarder::handle`], but an unknown domain is refused.
    pub fn handle_looked_up(&self, message: Message, inbound: &Inbound) -> Action {
        let from_internal = inbound.local == self.config.internal;
        if from_internal && !self.is_trusted_proxy(inbound.remote.ip()) {
            if message.is_request() && message.method() != Some(&Method::Ack) {
                return reply(&message, 403, "Forbidden - not a trusted proxy".to_owned());
            }
            return Action::Drop(DropReason::UntrustedInternalSource);
        }
        match (message.is_request(), from_internal) {
            (true, false) => self.request_from_phone(message, inbound),
            (true, true) => self.request_from_proxy(message),
            (false, false) => self.response_from_phone(message, inbound),
            (false, true) => self.response_from_proxy(message),
        }
    }

    fn is_trusted_proxy(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        address == self.config.proxy.ip().to_canonical()
            || self.config.trusted_proxies.contains(&address)
    }

    fn public_interface(&self, transport: TransportProtocol) -> Option<&PublicInterface> {
        self.config
            .public
            .iter()
            .find(|interface| interface.transport == transport)
    }

    /// Whether `host:port` names one of our sockets (as written into Via or Route).
    fn is_our_address(&self, host: &Host<'_>, port: Option<u16>, default_port: u16) -> bool {
        let Some(ip) = host.ip().map(|ip| ip.to_canonical()) else {
            return false;
        };
        let port = port.unwrap_or(default_port);
        let matches =
            |address: SocketAddr| address.ip().to_canonical() == ip && address.port() == port;
        matches(self.config.internal)
            || self
                .config
                .public
                .iter()
                .any(|interface| matches(interface.advertised))
    }

    fn is_our_via(&self, via: &Via<'_>) -> bool {
        via.branch()
            .is_some_and(|branch| branch.starts_with(BRANCH_PREFIX.as_bytes()))
            && self.is_our_address(&via.host, via.port, sent_by_port(via))
    }

    fn is_our_uri(&self, uri: &Uri<'_>) -> bool {
        let default_port = if matches!(uri.scheme, sip_message::Scheme::Sips) {
            5061
        } else {
            5060
        };
        uri.is_sip() && self.is_our_address(&uri.host, uri.port, default_port)
    }

    /// The Request-URI's domain of an out-of-dialog request that would be refused for
    /// relaying only because the domain is not in the served set.
    fn unknown_domain(&self, message: &Message) -> Option<String> {
        if !message.is_request() || message.method() == Some(&Method::Ack) {
            return None;
        }
        if message.to().ok().and_then(|to| to.tag()).is_some() {
            return None;
        }
        if let Some(Ok(route)) = message.routes().next()
            && self.is_our_uri(&route.uri)
        {
            return None;
        }
        let uri = message.request_uri()?.ok()?;
        if self.serves(&uri) {
            return None;
        }
        uri.host.domain_name()
    }

    /// Whether the Request-URI names a domain (or one of our addresses) we serve.
    fn serves(&self, uri: &Uri<'_>) -> bool {
        if !uri.is_sip() {
            // tel: and other schemes carry no domain; the proxy authenticates the caller.
            return true;
        }
        if let Some(ip) = uri.host.ip() {
            let ip = ip.to_canonical();
            if self.config.internal.ip().to_canonical() == ip
                || self
                    .config
                    .public
                    .iter()
                    .any(|interface| interface.advertised.ip().to_canonical() == ip)
            {
                return true;
            }
        }
        // The name the domain is provisioned under: lower case, an IPv6 host in brackets.
        uri.host
            .domain_name()
            .is_some_and(|domain| self.config.domains.contains(&domain))
    }

    /// Removes Record-Route and Path values from a phone's message that pose as our Path URI
    /// (our URI with `received` or `vxf`): only we write those, and a forged one would let a
    /// phone point the proxy's requests at another address or another phone's connection.
    /// Our plain Record-Route entries stay: a callee echoes them in its responses.
    fn strip_forged_routing(&self, message: &mut Message) {
        for name in [HeaderName::RecordRoute, HeaderName::Path] {
            let forged = |value: &[u8]| {
                sip_message::NameAddr::parse(value, &name).is_ok_and(|address| {
                    self.is_our_uri(&address.uri)
                        && (address.uri.param(b"received").is_some()
                            || address.uri.param(FLOW_TOKEN_PARAMETER).is_some())
                })
            };
            if !message.header_values(&name).any(forged) {
                continue;
            }
            let kept: Vec<&[u8]> = message
                .header_values(&name)
                .filter(|value| !forged(value))
                .collect();
            let kept = kept.join(&b", "[..]);
            if kept.is_empty() {
                message.remove_header(&name);
            } else {
                message.replace_header(name.clone(), kept);
            }
        }
    }

    // ----- requests -----

    /// Checks every request gets whichever side it comes from: URI scheme (416), loops (482),
    /// Max-Forwards (483, else decremented or set). Returns the loop hash for our branch.
    fn sanity(&self, message: &mut Message) -> Result<u64, Refusal> {
        if let Err(error) = message.check_request_uri_scheme() {
            return Err((error.status_code(), error.reason_phrase()));
        }
        // Stateless: the To tag stays out, so a non-2xx ACK gets its INVITE's branch.
        let loop_hash = loop_hash(message, ToTag::Ignored);
        let looped = message.vias().filter_map(Result::ok).any(|via| {
            self.is_our_via(&via)
                && via
                    .branch()
                    .and_then(|branch| branch.rsplit(|&b| b == b'.').next())
                    .and_then(|suffix| std::str::from_utf8(suffix).ok())
                    .and_then(|suffix| u64::from_str_radix(suffix, 16).ok())
                    == Some(loop_hash)
        });
        if looped {
            return Err((482, "Loop Detected".to_owned()));
        }
        match message.max_forwards() {
            Ok(Some(0)) => return Err((483, "Too Many Hops".to_owned())),
            Ok(Some(hops)) => {
                message.replace_header(HeaderName::MaxForwards, (hops - 1).to_string())
            }
            Ok(None) => message.add_header(
                HeaderName::MaxForwards,
                Bytes::from_static(DEFAULT_MAX_FORWARDS),
            ),
            Err(error) => return Err((error.status_code(), error.reason_phrase())),
        }
        Ok(loop_hash)
    }

    fn request_from_phone(&self, mut message: Message, inbound: &Inbound) -> Action {
        let loop_hash = match self.sanity(&mut message) {
            Ok(hash) => hash,
            Err(refusal) => return refuse(&message, refusal),
        };
        // RFC 3261 §16.3 step 5: no proxy extension is supported here, so any Proxy-Require
        // gets 420 naming what was required (a CANCEL's is ignored, an ACK is never answered).
        let required: Vec<&[u8]> = message.proxy_require().collect();
        if !required.is_empty() && message.method() != Some(&Method::Cancel) {
            if message.method() == Some(&Method::Ack) {
                return Action::Drop(DropReason::AckRefused(420));
            }
            let unsupported = required.join(&b", "[..]);
            return reply_with(
                &message,
                420,
                "Bad Extension".to_owned(),
                &[(HeaderName::Unsupported, Bytes::from(unsupported))],
            );
        }
        remove_internal_headers(&mut message);
        self.strip_forged_routing(&mut message);
        let popped = self.pop_our_routes(&mut message);
        let has_to_tag = message.to().ok().and_then(|to| to.tag()).is_some();
        let in_dialog = has_to_tag || !popped.is_empty();
        let served = message
            .request_uri()
            .and_then(Result::ok)
            .is_some_and(|uri| self.serves(&uri));
        if !in_dialog && !served {
            return refuse(&message, (403, "Forbidden - relaying denied".to_owned()));
        }
        let method = message.method().cloned().unwrap_or(Method::Options);
        let behind_nat = is_behind_nat(&message, inbound);
        if method == Method::Register {
            message.add_header_before(HeaderName::Path, self.path_value(inbound));
        } else if is_target_refresh(&method) {
            rewrite_contacts(&mut message, behind_nat.then_some(inbound));
        }
        if !has_to_tag && is_dialog_forming(&method) {
            self.record_route(&mut message, inbound.transport, Side::Public);
        }
        let source = Source {
            transport: inbound.transport,
            address: inbound.remote,
        };
        message.add_header(internal_headers::source_header_name(), source.to_string());
        let branch = self.branch(&message, loop_hash);
        let mut via = format!("SIP/2.0/UDP {};branch={branch}", self.config.internal);
        if let Some(connection) = inbound.connection {
            let _ = write!(via, ";vxf={connection}");
        }
        message.push_via(via);
        Action::Forward {
            message: message.to_bytes(),
            target: Target::Internal(self.config.proxy),
        }
    }

    fn request_from_proxy(&self, mut message: Message) -> Action {
        let loop_hash = match self.sanity(&mut message) {
            Ok(hash) => hash,
            Err(refusal) => return refuse(&message, refusal),
        };
        remove_internal_headers(&mut message);
        let popped = self.pop_our_routes(&mut message);
        let method = message.method().cloned().unwrap_or(Method::Options);
        let has_to_tag = message.to().ok().and_then(|to| to.tag()).is_some();
        let next_hop = match self.next_hop_to_phone(&mut message, &popped) {
            Ok(next_hop) => next_hop,
            Err(refusal) => return refuse(&message, refusal),
        };
        let (transport, remote, connection) = next_hop;
        let Some(interface) = self.public_interface(transport).copied() else {
            return refuse(
                &message,
                (
                    503,
                    format!("Service Unavailable - no {transport} listener"),
                ),
            );
        };
        if !has_to_tag && is_dialog_forming(&method) {
            self.record_route(&mut message, transport, Side::Internal);
        }
        let branch = self.branch(&message, loop_hash);
        message.push_via(format!(
            "SIP/2.0/{} {};branch={branch};rport",
            transport.via_token(),
            interface.advertised
        ));
        Action::Forward {
            message: message.to_bytes(),
            target: Target::Public {
                transport,
                remote,
                connection,
            },
        }
    }

    /// Pops the top Route while it names us (at most our two Record-Route entries, RFC 3261
    /// §16.4) and returns the popped URIs, e.g. a Path URI with its `received` parameter.
    fn pop_our_routes(&self, message: &mut Message) -> Vec<Bytes> {
        let mut popped = Vec::new();
        for _ in 0..2 {
            let top = match message.routes().next() {
                Some(Ok(route)) if self.is_our_uri(&route.uri) => {
                    Bytes::copy_from_slice(route.uri.raw)
                }
                _ => break,
            };
            message.remove_first_value(&HeaderName::Route);
            popped.push(top);
        }
        popped
    }

    /// Where a request from the proxy goes: the `received` address of a Path URI we wrote,
    /// else the next Route, else the Request-URI's `alias`, else the Request-URI itself. Our
    /// `alias` never leaves towards a phone: it is removed from the Request-URI.
    fn next_hop_to_phone(
        &self,
        message: &mut Message,
        popped: &[Bytes],
    ) -> Result<(TransportProtocol, SocketAddr, Option<u64>), Refusal> {
        let uri_bytes = Bytes::copy_from_slice(message.request_uri_bytes().unwrap_or_default());
        let uri =
            Uri::parse(&uri_bytes).map_err(|error| (error.status_code(), error.reason_phrase()))?;
        let alias = uri.param(ALIAS_PARAMETER);
        if alias.is_some() {
            message.set_request_uri(remove_uri_parameter(&uri_bytes, ALIAS_PARAMETER));
        }
        for route in popped {
            let Ok(route) = Uri::parse(route) else {
                continue;
            };
            let connection = route
                .param(FLOW_TOKEN_PARAMETER)
                .flatten()
                .and_then(|token| std::str::from_utf8(token).ok()?.parse().ok());
            if let Some(Some(received)) = route.param(b"received") {
                let received: Vec<u8> = sip_message::Unescaped::new(received).collect();
                let (transport, remote) = Uri::parse(&received)
                    .ok()
                    .and_then(|uri| uri_destination(&uri))
                    .ok_or((400, "Bad Request - malformed Path received".to_owned()))?;
                return Ok((transport, remote, connection));
            }
        }
        if let Some(route) = message.routes().next() {
            let route = route.map_err(|error| (error.status_code(), error.reason_phrase()))?;
            let (transport, remote) = uri_destination(&route.uri).ok_or((
                502,
                "Bad Gateway - next hop is not an IP address".to_owned(),
            ))?;
            return Ok((transport, remote, None));
        }
        if let Some(alias) = alias {
            let (transport, remote) = alias
                .and_then(parse_alias)
                .ok_or((400, "Bad Request - malformed alias parameter".to_owned()))?;
            return Ok((transport, remote, None));
        }
        let (transport, remote) = uri_destination(&uri).ok_or((
            502,
            "Bad Gateway - Request-URI host is not an IP address".to_owned(),
        ))?;
        Ok((transport, remote, None))
    }

    /// `Path` for a REGISTER (RFC 3327 §5.1): our internal URI, with the phone's real
    /// address and connection so the proxy's requests to this binding come back to us and
    /// leave on the right flow.
    fn path_value(&self, inbound: &Inbound) -> String {
        let mut path = format!(
            "<sip:{};lr;received=sip:{}%3Btransport%3D{}",
            self.config.internal,
            inbound.remote,
            inbound.transport.name()
        );
        if let Some(connection) = inbound.connection {
            let _ = write!(path, ";vxf={connection}");
        }
        path.push('>');
        path
    }

    /// Record-Route (RFC 3261 §16.6 step 4), two entries because the request changes
    /// interface (RFC 5658): the one facing the next hop on top.
    fn record_route(&self, message: &mut Message, public: TransportProtocol, came_from: Side) {
        let Some(interface) = self.public_interface(public) else {
            return;
        };
        let public_entry = format!(
            "<sip:{};transport={};lr;r2=on>",
            interface.advertised,
            public.name()
        );
        let internal_entry = format!("<sip:{};lr;r2=on>", self.config.internal);
        let (lower, upper) = match came_from {
            Side::Public => (public_entry, internal_entry),
            Side::Internal => (internal_entry, public_entry),
        };
        message.add_header_before(HeaderName::RecordRoute, lower);
        message.add_header_before(HeaderName::RecordRoute, upper);
    }

    /// Our branch (RFC 3261 §16.11): a hash of the incoming top Via's branch and sent-by, so
    /// a retransmission (and the ACK/CANCEL of the same INVITE) gets the same branch, then the
    /// loop hash (§16.6 step 8) so a request that comes back unchanged is recognised.
    fn branch(&self, message: &Message, loop_hash: u64) -> String {
        let mut hasher = DefaultHasher::new();
        match message.top_via() {
            Ok(via) if via.has_rfc3261_branch() => {
                via.branch().hash(&mut hasher);
                via.host.as_bytes().hash(&mut hasher);
                via.port.hash(&mut hasher);
            }
            // RFC 2543 peer: no unique branch, so use the fields that identify its transaction.
            via => {
                via.map(|via| via.raw).unwrap_or_default().hash(&mut hasher);
                message.call_id().unwrap_or_default().hash(&mut hasher);
                message
                    .cseq()
                    .map(|cseq| cseq.number)
                    .unwrap_or_default()
                    .hash(&mut hasher);
                message
                    .from()
                    .ok()
                    .and_then(|from| from.tag())
                    .hash(&mut hasher);
            }
        }
        format!("{BRANCH_PREFIX}{:016x}.{loop_hash:016x}", hasher.finish())
    }

    // ----- responses -----

    fn response_from_phone(&self, mut message: Message, inbound: &Inbound) -> Action {
        let flow_is_ours = match message.top_via() {
            Ok(via) => self.is_our_via(&via),
            Err(_) => false,
        };
        if !flow_is_ours {
            return Action::Drop(DropReason::ResponseNotForUs);
        }
        message.pop_via();
        let next = match message.top_via() {
            Ok(via) => request_source(&via),
            Err(_) => None,
        };
        let Some((_, address)) = next.filter(|(_, address)| self.is_trusted_proxy(address.ip()))
        else {
            return Action::Drop(DropReason::ResponseWithoutNextHop);
        };
        remove_internal_headers(&mut message);
        self.strip_forged_routing(&mut message);
        let dialog_forming = message
            .cseq()
            .is_ok_and(|cseq| is_target_refresh(&cseq.method));
        let status = message.status().unwrap_or_default();
        if dialog_forming && (101..300).contains(&status) {
            let behind_nat = is_behind_nat(&message, inbound);
            rewrite_contacts(&mut message, behind_nat.then_some(inbound));
        }
        Action::Forward {
            message: message.to_bytes(),
            target: Target::Internal(address),
        }
    }

    fn response_from_proxy(&self, mut message: Message) -> Action {
        let connection = match message.top_via() {
            Ok(via) if self.is_our_via(&via) => via
                .param(FLOW_TOKEN_PARAMETER)
                .flatten()
                .and_then(|token| std::str::from_utf8(token).ok()?.parse::<u64>().ok()),
            _ => return Action::Drop(DropReason::ResponseNotForUs),
        };
        message.pop_via();
        // Where the phone's request came from (received/rport): over a stream the remote
        // end of its connection, which the flow token names when it is still open.
        let next = match message.top_via() {
            Ok(via) => request_source(&via),
            Err(_) => None,
        };
        let Some((transport, remote)) = next else {
            return Action::Drop(DropReason::ResponseWithoutNextHop);
        };
        remove_internal_headers(&mut message);
        Action::Forward {
            message: message.to_bytes(),
            target: Target::Public {
                transport,
                remote,
                connection: connection.filter(|_| transport.is_stream()),
            },
        }
    }
}

/// Which side a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Public,
    Internal,
}

/// Parses and validates a datagram and stamps `received`/`rport` on a request's top Via
/// with `sip-core`'s rule, as the `sip-net` transports do before handing a message over: the
/// whole receive path without sockets, for tests and benchmarks.
pub fn receive(bytes: Bytes, source: SocketAddr) -> Result<Message, sip_message::ParseError> {
    let mut message = Message::parse(bytes)?;
    message.validate()?;
    if message.is_request() {
        let stamped = stamp_received_text(&message.top_via()?, source);
        if let Some(via) = stamped {
            message.pop_via();
            message.push_via(via);
        }
    }
    Ok(message)
}

/// Answers a refused request; an ACK is never answered (RFC 3261 §17.2.1), only dropped.
fn refuse(request: &Message, (status, reason): Refusal) -> Action {
    if request.method() == Some(&Method::Ack) {
        Action::Drop(DropReason::AckRefused(status))
    } else {
        reply(request, status, reason)
    }
}

/// A stateless response to `request` (RFC 3261 §16.11 lets a stateless element answer).
fn reply(request: &Message, status: u16, reason: String) -> Action {
    reply_with(request, status, reason, &[])
}

/// [`reply`] with more header lines (e.g. `Unsupported` on a 420).
fn reply_with(
    request: &Message,
    status: u16,
    reason: String,
    headers: &[(HeaderName, Bytes)],
) -> Action {
    let mut hasher = DefaultHasher::new();
    request.call_id().unwrap_or_default().hash(&mut hasher);
    request
        .from()
        .ok()
        .and_then(|from| from.tag())
        .hash(&mut hasher);
    let mut builder = MessageBuilder::response_to(request, status, reason)
        .to_tag(format!("vx{:08x}", hasher.finish() as u32));
    for (name, value) in headers {
        builder = builder.header(name.clone(), value.clone());
    }
    let response = builder.build();
    Action::Reply {
        response: response.to_bytes(),
        status,
    }
}

mod nat;
#[cfg(test)]
mod tests;
