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
use sip_message::{Contact, HeaderName, Host, Message, MessageBuilder, Method, Uri, Via};
use sip_net::TransportProtocol;

/// Prefix of every branch this LB writes: the RFC 3261 magic cookie, then `vx` so our own
/// Vias are recognised cheaply before their sent-by is compared.
const BRANCH_PREFIX: &str = "z9hG4bKvx";

/// Via parameter carrying the connection a response must go back on.
const FLOW_TOKEN_PARAMETER: &[u8] = b"vxf";

/// Contact/Request-URI parameter carrying a NATed phone's real address (`IP~PORT~PROTO`,
/// the encoding of Kamailio's `add_contact_alias`).
const ALIAS_PARAMETER: &[u8] = b"alias";

/// Header prefix reserved for LB → proxy information; clients may not send it.
const INTERNAL_HEADER_PREFIX: &[u8] = b"x-voxide-";

/// The header naming the real source of a phone's request.
pub const SOURCE_HEADER: &str = "X-Voxide-Source";

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
}

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

    /// Decides and rewrites. `message` must have passed `Message::validate` and carry the
    /// received/rport stamp of its transport (both done by `sip-net`, or by [`receive`]).
    pub fn handle(&self, message: Message, inbound: &Inbound) -> Action {
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
            && self.is_our_address(&via.host, via.port, default_port_for_via(via.transport))
    }

    fn is_our_uri(&self, uri: &Uri<'_>) -> bool {
        let default_port = if matches!(uri.scheme, sip_message::Scheme::Sips) {
            5061
        } else {
            5060
        };
        uri.is_sip() && self.is_our_address(&uri.host, uri.port, default_port)
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
        let host = uri.host.as_bytes();
        std::str::from_utf8(host).is_ok_and(|host| {
            self.config.domains.contains(host)
                || self.config.domains.contains(&host.to_ascii_lowercase())
        })
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
        let loop_hash = loop_hash(message);
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
        strip_internal_headers(&mut message);
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
        message.add_header(
            HeaderName::from_static(SOURCE_HEADER),
            format!("{} {}", transport_name(inbound.transport), inbound.remote),
        );
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
        strip_internal_headers(&mut message);
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
                    .and_then(|uri| uri_address(&uri))
                    .ok_or((400, "Bad Request - malformed Path received".to_owned()))?;
                return Ok((transport, remote, connection));
            }
        }
        if let Some(route) = message.routes().next() {
            let route = route.map_err(|error| (error.status_code(), error.reason_phrase()))?;
            let (transport, remote) = uri_address(&route.uri).ok_or((
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
        let (transport, remote) = uri_address(&uri).ok_or((
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
            transport_name(inbound.transport)
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
            transport_name(public)
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
            Ok(via) => via_response_address(&via),
            Err(_) => None,
        };
        let Some((_, address)) = next.filter(|(_, address)| self.is_trusted_proxy(address.ip()))
        else {
            return Action::Drop(DropReason::ResponseWithoutNextHop);
        };
        strip_internal_headers(&mut message);
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
        let next = match message.top_via() {
            Ok(via) => via_response_address(&via),
            Err(_) => None,
        };
        let Some((transport, remote)) = next else {
            return Action::Drop(DropReason::ResponseWithoutNextHop);
        };
        strip_internal_headers(&mut message);
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

/// Parses and validates a datagram and stamps `received`/`rport` on a request's top Via,
/// as the `sip-net` transports do before handing a message over: the whole receive path
/// without sockets, for tests and benchmarks.
pub fn receive(bytes: Bytes, source: SocketAddr) -> Result<Message, sip_message::ParseError> {
    let mut message = Message::parse(bytes)?;
    message.validate()?;
    if message.is_request() {
        let stamped = {
            let via = message.top_via()?;
            let rport = via.rport().is_some();
            let differs =
                via.host.ip().map(|ip| ip.to_canonical()) != Some(source.ip().to_canonical());
            (rport || differs).then(|| {
                let mut value = String::from_utf8_lossy(via.raw).into_owned();
                value = remove_param_text(&value, "received");
                value = remove_param_text(&value, "rport");
                let _ = write!(value, ";received={}", source.ip().to_canonical());
                if rport {
                    let _ = write!(value, ";rport={}", source.port());
                }
                value
            })
        };
        if let Some(value) = stamped {
            message.pop_via();
            message.push_via(value);
        }
    }
    Ok(message)
}

fn remove_param_text(via: &str, name: &str) -> String {
    String::from_utf8_lossy(&remove_uri_parameter(via.as_bytes(), name.as_bytes())).into_owned()
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
    let mut hasher = DefaultHasher::new();
    request.call_id().unwrap_or_default().hash(&mut hasher);
    request
        .from()
        .ok()
        .and_then(|from| from.tag())
        .hash(&mut hasher);
    let response = MessageBuilder::response_to(request, status, reason)
        .to_tag(format!("vx{:08x}", hasher.finish() as u32))
        .build();
    Action::Reply {
        response: response.to_bytes(),
        status,
    }
}

/// RFC 3261 §16.6 step 8 (loop detection hash): the fields a proxy's forwarding decision
/// depends on. A request that comes back with the same values went round a loop. The To tag
/// is left out on purpose: the ACK of a non-2xx answer carries one its INVITE lacked, yet
/// must get the INVITE's branch so the proxy's INVITE transaction matches it (§17.2.3).
fn loop_hash(message: &Message) -> u64 {
    let mut hasher = DefaultHasher::new();
    message.request_uri_bytes().hash(&mut hasher);
    message
        .from()
        .ok()
        .and_then(|from| from.tag())
        .hash(&mut hasher);
    message.call_id().ok().hash(&mut hasher);
    message
        .cseq()
        .ok()
        .map(|cseq| cseq.number)
        .hash(&mut hasher);
    for route in message.header_values(&HeaderName::Route) {
        route.hash(&mut hasher);
    }
    hasher.finish()
}

/// Removes every header whose name starts with `X-Voxide-`: only the LB may set them.
fn strip_internal_headers(message: &mut Message) {
    let is_internal = |name: &HeaderName| {
        let name = name.as_bytes();
        name.len() >= INTERNAL_HEADER_PREFIX.len()
            && name[..INTERNAL_HEADER_PREFIX.len()].eq_ignore_ascii_case(INTERNAL_HEADER_PREFIX)
    };
    // Most messages carry none: look before allocating.
    if !message.headers().any(|(name, _)| is_internal(&name)) {
        return;
    }
    let internal: Vec<HeaderName> = message
        .headers()
        .filter(|(name, _)| is_internal(name))
        .map(|(name, _)| name)
        .collect();
    for name in internal {
        message.remove_header(&name);
    }
}

/// Methods whose Contact becomes a dialog's remote target (RFC 3261 §12.1, RFC 3311,
/// RFC 3265, RFC 3515): their Contact gets the NAT alias.
fn is_target_refresh(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Subscribe | Method::Refer | Method::Notify | Method::Update
    )
}

/// Out-of-dialog requests that create a dialog and are therefore record-routed.
fn is_dialog_forming(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Subscribe | Method::Refer | Method::Notify
    )
}

/// NAT detection in the manner of Kamailio's `nat_uac_test`: the message came over a
/// stream (in-dialog requests must reuse the connection), the top Via or a Contact names an
/// address other than the source, or a Contact names a private address.
fn is_behind_nat(message: &Message, inbound: &Inbound) -> bool {
    if inbound.transport.is_stream() {
        return true;
    }
    let source = inbound.remote;
    let differs = |host: &Host<'_>, port: Option<u16>| {
        host.ip().map(|ip| ip.to_canonical()) != Some(source.ip().to_canonical())
            || port.unwrap_or(5060) != source.port()
    };
    // A response's top Via is ours; only a request's says where the phone thinks it is.
    if message.is_request()
        && let Ok(via) = message.top_via()
        && differs(&via.host, via.port)
    {
        return true;
    }
    message
        .contacts()
        .filter_map(Result::ok)
        .any(|contact| match contact {
            Contact::Wildcard => false,
            Contact::Address(address) => {
                differs(&address.uri.host, address.uri.port)
                    || address.uri.host.ip().is_some_and(is_private)
            }
        })
}

/// RFC 1918, RFC 6598 shared space, link-local and IPv6 unique-local addresses.
fn is_private(address: IpAddr) -> bool {
    match address.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_link_local()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Rewrites every Contact: any `alias` a client wrote is removed (it would let a client
/// steer our traffic), and when `nat` is given our alias with the real source is added.
fn rewrite_contacts(message: &mut Message, nat: Option<&Inbound>) {
    let has_alias = message.contacts().filter_map(Result::ok).any(|contact| {
        contact
            .address()
            .is_some_and(|address| address.uri.param(ALIAS_PARAMETER).is_some())
    });
    if nat.is_none() && !has_alias {
        return;
    }
    let alias = nat.map(|inbound| {
        format!(
            ";alias={}~{}~{}",
            host_text(inbound.remote.ip()),
            inbound.remote.port(),
            alias_protocol(inbound.transport)
        )
    });
    let mut values = Vec::new();
    for contact in message.header_values(&HeaderName::Contact) {
        let Ok(Contact::Address(address)) = Contact::parse(contact) else {
            values.push(contact.to_vec());
            continue;
        };
        let uri = remove_uri_parameter(address.uri.raw, ALIAS_PARAMETER);
        let uri_start = offset_in(address.raw, address.uri.raw);
        let uri_end = uri_start + address.uri.raw.len();
        let mut value = Vec::with_capacity(address.raw.len() + 32);
        if address.angle_brackets {
            value.extend_from_slice(&address.raw[..uri_start]);
            value.extend_from_slice(&uri);
            if let Some(alias) = &alias {
                value.extend_from_slice(alias.as_bytes());
            }
            value.extend_from_slice(&address.raw[uri_end..]);
        } else {
            // addr-spec form: parameters after the URI belong to the header, so the URI
            // needs brackets before it can take a parameter (RFC 3261 §20.10).
            value.push(b'<');
            value.extend_from_slice(&uri);
            if let Some(alias) = &alias {
                value.extend_from_slice(alias.as_bytes());
            }
            value.push(b'>');
            value.extend_from_slice(&address.raw[uri_end..]);
        }
        values.push(value);
    }
    if values.is_empty() {
        return;
    }
    let joined = values.join(&b", "[..]);
    message.replace_header(HeaderName::Contact, joined);
}

/// Byte offset of `inner` inside `outer` (`inner` is a sub-slice of `outer`).
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize)
        .saturating_sub(outer.as_ptr() as usize)
        .min(outer.len())
}

/// Removes `;name` / `;name=value` from a URI (or any `;`-parameter list), keeping the rest
/// byte for byte.
fn remove_uri_parameter(uri: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(uri.len());
    let mut rest = uri;
    // Only the parameter section is searched; `?headers` are copied as they are.
    let headers_start = rest.iter().position(|&b| b == b'?').unwrap_or(rest.len());
    let headers = &uri[headers_start..];
    rest = &rest[..headers_start];
    let mut first = true;
    for part in rest.split(|&b| b == b';') {
        if !first {
            let part_name = part.split(|&b| b == b'=').next().unwrap_or_default();
            if part_name.trim_ascii().eq_ignore_ascii_case(name) {
                continue;
            }
            out.push(b';');
        }
        first = false;
        out.extend_from_slice(part);
    }
    out.extend_from_slice(headers);
    out
}

/// `IP~PORT~PROTO` → destination (Kamailio numbering: 1 UDP, 2 TCP, 3 TLS).
fn parse_alias(alias: &[u8]) -> Option<(TransportProtocol, SocketAddr)> {
    let text = std::str::from_utf8(alias).ok()?;
    let mut parts = text.rsplitn(3, '~');
    let protocol = parts.next()?;
    let port: u16 = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let transport = match protocol {
        "1" => TransportProtocol::Udp,
        "2" => TransportProtocol::Tcp,
        "3" => TransportProtocol::Tls,
        _ => return None,
    };
    Some((transport, SocketAddr::new(ip, port)))
}

fn alias_protocol(transport: TransportProtocol) -> u8 {
    match transport {
        TransportProtocol::Udp => 1,
        TransportProtocol::Tcp => 2,
        TransportProtocol::Tls => 3,
    }
}

/// An IP literal as a URI host: IPv6 in brackets (RFC 3261 §25.1).
fn host_text(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn transport_name(transport: TransportProtocol) -> &'static str {
    match transport {
        TransportProtocol::Udp => "udp",
        TransportProtocol::Tcp => "tcp",
        TransportProtocol::Tls => "tls",
    }
}

fn transport_from_token(token: &[u8]) -> Option<TransportProtocol> {
    if token.eq_ignore_ascii_case(b"udp") {
        Some(TransportProtocol::Udp)
    } else if token.eq_ignore_ascii_case(b"tcp") {
        Some(TransportProtocol::Tcp)
    } else if token.eq_ignore_ascii_case(b"tls") {
        Some(TransportProtocol::Tls)
    } else {
        None
    }
}

fn default_port_for_via(transport: &[u8]) -> u16 {
    if transport.eq_ignore_ascii_case(b"tls") {
        5061
    } else {
        5060
    }
}

/// A SIP URI whose host is an IP literal → transport (from `transport=`, or TLS for `sips`)
/// and address. No DNS here (RFC 3263 is the proxy's job): a domain gives `None`.
fn uri_address(uri: &Uri<'_>) -> Option<(TransportProtocol, SocketAddr)> {
    if !uri.is_sip() {
        return None;
    }
    let sips = matches!(uri.scheme, sip_message::Scheme::Sips);
    let transport = match uri.param(b"transport") {
        Some(Some(token)) => transport_from_token(token)?,
        _ if sips => TransportProtocol::Tls,
        _ => TransportProtocol::Udp,
    };
    let ip = uri.host.ip()?;
    let default_port = if transport == TransportProtocol::Tls {
        5061
    } else {
        5060
    };
    Some((
        transport,
        SocketAddr::new(ip, uri.port.unwrap_or(default_port)),
    ))
}

/// Where a response goes by this Via (RFC 3261 §18.2.2, RFC 3581 §4): `received`/`rport`
/// when stamped, else sent-by.
fn via_response_address(via: &Via<'_>) -> Option<(TransportProtocol, SocketAddr)> {
    let transport = transport_from_token(via.transport)?;
    let ip = match via.received() {
        Some(received) => std::str::from_utf8(received).ok()?.parse().ok()?,
        None => via.host.ip()?,
    };
    let port = match via.rport() {
        Some(Some(port)) => port,
        _ => via.port.unwrap_or(default_port_for_via(via.transport)),
    };
    Some((transport, SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROXY: &str = "127.0.0.1:5062";
    const INTERNAL: &str = "127.0.0.1:5064";
    const PUBLIC_IP: &str = "192.0.2.10";
    const PHONE: &str = "203.0.113.5:40000";

    fn forwarder() -> Forwarder {
        let public = |transport, port: u16| {
            let address = SocketAddr::new(PUBLIC_IP.parse().unwrap(), port);
            PublicInterface {
                transport,
                bound: address,
                advertised: address,
            }
        };
        Forwarder::new(ForwarderConfig {
            public: vec![
                public(TransportProtocol::Udp, 5060),
                public(TransportProtocol::Tcp, 5060),
                public(TransportProtocol::Tls, 5061),
            ],
            internal: INTERNAL.parse().unwrap(),
            proxy: PROXY.parse().unwrap(),
            trusted_proxies: Vec::new(),
            domains: ["Example.COM".to_owned()].into_iter().collect(),
        })
    }

    fn from_phone(transport: TransportProtocol, connection: Option<u64>) -> Inbound {
        let port = if transport == TransportProtocol::Tls {
            5061
        } else {
            5060
        };
        Inbound {
            transport,
            local: SocketAddr::new(PUBLIC_IP.parse().unwrap(), port),
            remote: PHONE.parse().unwrap(),
            connection,
        }
    }

    fn from_proxy() -> Inbound {
        Inbound {
            transport: TransportProtocol::Udp,
            local: INTERNAL.parse().unwrap(),
            remote: PROXY.parse().unwrap(),
            connection: None,
        }
    }

    fn request(start: &str, headers: &[&str]) -> String {
        let mut text = format!("{start} SIP/2.0\r\n");
        for header in headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        text
    }

    fn invite(via_branch: &str, transport: &str) -> String {
        request(
            "INVITE sip:bob@example.com",
            &[
                &format!("Via: SIP/2.0/{transport} 10.0.0.5:5060;branch={via_branch};rport"),
                "From: <sip:alice@example.com>;tag=a1",
                "To: <sip:bob@example.com>",
                "Call-ID: call-1",
                "CSeq: 1 INVITE",
                "Max-Forwards: 70",
                "Contact: <sip:alice@10.0.0.5:5060>",
            ],
        )
    }

    fn handle(text: &str, inbound: &Inbound) -> Action {
        let message = receive(Bytes::from(text.to_owned()), inbound.remote).unwrap();
        forwarder().handle(message, inbound)
    }

    fn forwarded(action: Action) -> (Message, Target) {
        match action {
            Action::Forward { message, target } => (Message::parse(message).unwrap(), target),
            other => panic!("expected a forward, got {other:?}"),
        }
    }

    fn replied(action: Action) -> (u16, Message) {
        match action {
            Action::Reply { response, status } => (status, Message::parse(response).unwrap()),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn register_gets_path_with_received_and_source_header() {
        let register = request(
            "REGISTER sip:example.com",
            &[
                "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKreg1;rport",
                "From: <sip:alice@example.com>;tag=r1",
                "To: <sip:alice@example.com>",
                "Call-ID: reg-1",
                "CSeq: 1 REGISTER",
                "Contact: <sip:alice@10.0.0.5:5060>",
            ],
        );
        let (message, target) =
            forwarded(handle(&register, &from_phone(TransportProtocol::Udp, None)));
        assert_eq!(target, Target::Internal(PROXY.parse().unwrap()));
        let path = message.paths().next().unwrap().unwrap();
        assert_eq!(
            text(path.raw),
            "<sip:127.0.0.1:5064;lr;received=sip:203.0.113.5:40000%3Btransport%3Dudp>"
        );
        assert_eq!(
            message.header(&HeaderName::from_static(SOURCE_HEADER)),
            Some(&b"udp 203.0.113.5:40000"[..])
        );
        let top = message.top_via().unwrap();
        assert_eq!(text(top.host.as_bytes()), "127.0.0.1");
        assert_eq!(top.port, Some(5064));
        assert!(top.branch().unwrap().starts_with(BRANCH_PREFIX.as_bytes()));
        let phone_via = message.vias().nth(1).unwrap().unwrap();
        assert_eq!(phone_via.received(), Some(&b"203.0.113.5"[..]));
        assert_eq!(phone_via.rport(), Some(Some(40000)));
        // Max-Forwards absent → set to 70 (RFC 3261 §8.1.1.6); REGISTER is not record-routed.
        assert_eq!(message.max_forwards().unwrap(), Some(70));
        assert!(message.record_routes().next().is_none());
        assert_eq!(
            message.header(&HeaderName::Contact),
            Some(&b"<sip:alice@10.0.0.5:5060>"[..])
        );
    }

    #[test]
    fn register_over_tcp_carries_the_flow_token_in_path_and_via() {
        let register = request(
            "REGISTER sip:example.com",
            &[
                "Via: SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bKreg2",
                "From: <sip:alice@example.com>;tag=r1",
                "To: <sip:alice@example.com>",
                "Call-ID: reg-2",
                "CSeq: 1 REGISTER",
                "Contact: <sip:alice@10.0.0.5:5060;transport=tcp>",
            ],
        );
        let (message, _) = forwarded(handle(
            &register,
            &from_phone(TransportProtocol::Tcp, Some(42)),
        ));
        let path = message.paths().next().unwrap().unwrap();
        assert_eq!(path.uri.param(b"vxf"), Some(Some(&b"42"[..])));
        assert_eq!(
            path.uri.param(b"received"),
            Some(Some(&b"sip:203.0.113.5:40000%3Btransport%3Dtcp"[..]))
        );
        assert_eq!(
            message.top_via().unwrap().param(b"vxf"),
            Some(Some(&b"42"[..]))
        );
    }

    #[test]
    fn client_internal_headers_are_stripped() {
        let register = request(
            "REGISTER sip:example.com",
            &[
                "Via: SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bKreg3",
                "From: <sip:alice@example.com>;tag=r1",
                "To: <sip:alice@example.com>",
                "Call-ID: reg-3",
                "CSeq: 1 REGISTER",
                "X-Voxide-Source: udp 198.51.100.1:5060",
                "x-voxide-trusted: yes",
            ],
        );
        let (message, _) = forwarded(handle(&register, &from_phone(TransportProtocol::Udp, None)));
        let internal: Vec<_> = message
            .headers()
            .filter(|(name, _)| {
                name.as_bytes()
                    .to_ascii_lowercase()
                    .starts_with(b"x-voxide-")
            })
            .map(|(name, value)| (name.as_bytes().to_vec(), value.to_vec()))
            .collect();
        assert_eq!(
            internal,
            vec![(
                b"X-Voxide-Source".to_vec(),
                b"udp 203.0.113.5:40000".to_vec()
            )]
        );
    }

    #[test]
    fn retransmission_gets_the_same_branch_and_a_new_transaction_another() {
        let branch_of = |text: &str| {
            let (message, _) = forwarded(handle(text, &from_phone(TransportProtocol::Udp, None)));
            message.top_via().unwrap().branch().unwrap().to_vec()
        };
        let first = branch_of(&invite("z9hG4bKinv1", "UDP"));
        assert_eq!(first, branch_of(&invite("z9hG4bKinv1", "UDP")));
        assert_ne!(first, branch_of(&invite("z9hG4bKinv2", "UDP")));
    }

    #[test]
    fn ack_of_a_rejection_and_cancel_get_the_invite_branch() {
        let inbound = from_phone(TransportProtocol::Udp, None);
        let branch_of = |text: &str| {
            let (message, _) = forwarded(handle(text, &inbound));
            message.top_via().unwrap().branch().unwrap().to_vec()
        };
        let invite = invite("z9hG4bKtx407", "UDP");
        let ack = invite
            .replace(
                "INVITE sip:bob@example.com SIP",
                "ACK sip:bob@example.com SIP",
            )
            .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
            .replace(
                "To: <sip:bob@example.com>",
                "To: <sip:bob@example.com>;tag=rejected",
            );
        let cancel = invite
            .replace(
                "INVITE sip:bob@example.com SIP",
                "CANCEL sip:bob@example.com SIP",
            )
            .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
        assert_eq!(branch_of(&invite), branch_of(&ack));
        assert_eq!(branch_of(&invite), branch_of(&cancel));
    }

    #[test]
    fn max_forwards_zero_is_answered_483_and_otherwise_decremented() {
        let exhausted = invite("z9hG4bKmf", "UDP").replace("Max-Forwards: 70", "Max-Forwards: 0");
        let (status, response) = replied(handle(
            &exhausted,
            &from_phone(TransportProtocol::Udp, None),
        ));
        assert_eq!(status, 483);
        assert_eq!(response.status(), Some(483));
        assert!(response.to().unwrap().tag().is_some());
        let (message, _) = forwarded(handle(
            &invite("z9hG4bKmf", "UDP"),
            &from_phone(TransportProtocol::Udp, None),
        ));
        assert_eq!(message.max_forwards().unwrap(), Some(69));
    }

    #[test]
    fn ack_is_never_answered() {
        let ack = request(
            "ACK sip:bob@example.com",
            &[
                "Via: SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bKack",
                "From: <sip:alice@example.com>;tag=a1",
                "To: <sip:bob@example.com>;tag=b1",
                "Call-ID: call-1",
                "CSeq: 1 ACK",
                "Max-Forwards: 0",
            ],
        );
        assert_eq!(
            handle(&ack, &from_phone(TransportProtocol::Udp, None)),
            Action::Drop(DropReason::AckRefused(483))
        );
    }

    #[test]
    fn request_coming_back_unchanged_is_a_loop() {
        let inbound = from_phone(TransportProtocol::Udp, None);
        let (message, _) = forwarded(handle(&invite("z9hG4bKloop", "UDP"), &inbound));
        // The proxy sends it back to our public side unchanged, with its own Via on top.
        let mut looped = message;
        looped.push_via("SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKproxy");
        let looped = String::from_utf8(looped.to_bytes().to_vec()).unwrap();
        let (status, _) = replied(handle(&looped, &inbound));
        assert_eq!(status, 482);
    }

    #[test]
    fn foreign_domain_is_refused_unless_in_dialog_or_from_the_proxy() {
        let foreign = invite("z9hG4bKrelay", "UDP")
            .replace("sip:bob@example.com SIP", "sip:bob@elsewhere.net SIP");
        let (status, response) =
            replied(handle(&foreign, &from_phone(TransportProtocol::Udp, None)));
        assert_eq!(status, 403);
        assert_eq!(response.reason(), Some(&b"Forbidden - relaying denied"[..]));
        let in_dialog = foreign.replace(
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com>;tag=b1",
        );
        forwarded(handle(
            &in_dialog,
            &from_phone(TransportProtocol::Udp, None),
        ));
        // Our own address as domain is served too.
        let to_ip =
            invite("z9hG4bKip", "UDP").replace("sip:bob@example.com SIP", "sip:bob@192.0.2.10 SIP");
        forwarded(handle(&to_ip, &from_phone(TransportProtocol::Udp, None)));
    }

    #[test]
    fn served_domains_can_change_at_run_time() {
        let foreign = invite("z9hG4bKdom", "UDP").replace(
            "sip:bob@example.com SIP",
            "sip:bob@Customer.example.net SIP",
        );
        let inbound = from_phone(TransportProtocol::Udp, None);
        let mut forwarder = forwarder();
        let message = receive(Bytes::from(foreign.clone()), inbound.remote).unwrap();
        assert_eq!(replied(forwarder.handle(message, &inbound)).0, 403);
        forwarder.set_domains(["customer.EXAMPLE.net".to_owned()]);
        let message = receive(Bytes::from(foreign), inbound.remote).unwrap();
        forwarded(forwarder.handle(message, &inbound));
    }

    #[test]
    fn unsupported_scheme_is_answered_416() {
        let im = invite("z9hG4bKim", "UDP")
            .replace("INVITE sip:bob@example.com", "INVITE im:bob@example.com");
        let (status, _) = replied(handle(&im, &from_phone(TransportProtocol::Udp, None)));
        assert_eq!(status, 416);
    }

    #[test]
    fn invite_over_tcp_is_double_record_routed_and_aliased() {
        let (message, target) = forwarded(handle(
            &invite("z9hG4bKtcp", "TCP"),
            &from_phone(TransportProtocol::Tcp, Some(7)),
        ));
        assert_eq!(target, Target::Internal(PROXY.parse().unwrap()));
        let record_routes: Vec<String> = message
            .record_routes()
            .map(|route| text(route.unwrap().raw).to_owned())
            .collect();
        assert_eq!(
            record_routes,
            vec![
                "<sip:127.0.0.1:5064;lr;r2=on>".to_owned(),
                "<sip:192.0.2.10:5060;transport=tcp;lr;r2=on>".to_owned(),
            ]
        );
        assert_eq!(
            message.header(&HeaderName::Contact),
            Some(&b"<sip:alice@10.0.0.5:5060;alias=203.0.113.5~40000~2>"[..])
        );
        assert_eq!(
            message.top_via().unwrap().param(b"vxf"),
            Some(Some(&b"7"[..]))
        );
    }

    #[test]
    fn response_from_proxy_goes_back_on_the_phone_connection() {
        let (request, _) = forwarded(handle(
            &invite("z9hG4bKresp", "TCP"),
            &from_phone(TransportProtocol::Tcp, Some(7)),
        ));
        let ringing = MessageBuilder::response_to(&request, 180, "Ringing")
            .to_tag("b1")
            .build();
        let (response, target) = forwarded(forwarder().handle(ringing, &from_proxy()));
        assert_eq!(
            target,
            Target::Public {
                transport: TransportProtocol::Tcp,
                remote: PHONE.parse().unwrap(),
                connection: Some(7),
            }
        );
        assert_eq!(response.vias().count(), 1);
        assert_eq!(
            response.top_via().unwrap().branch(),
            Some(&b"z9hG4bKresp"[..])
        );
    }

    #[test]
    fn responses_not_through_us_are_dropped() {
        let request = Message::parse(Bytes::from(invite("z9hG4bKx", "UDP"))).unwrap();
        let response = MessageBuilder::response_to(&request, 200, "OK").build();
        assert_eq!(
            forwarder().handle(response.clone(), &from_proxy()),
            Action::Drop(DropReason::ResponseNotForUs)
        );
        assert_eq!(
            forwarder().handle(response, &from_phone(TransportProtocol::Udp, None)),
            Action::Drop(DropReason::ResponseNotForUs)
        );
    }

    #[test]
    fn phone_response_must_lead_back_to_a_trusted_proxy() {
        // A phone forges a response carrying our Via and, below it, a victim's address: the
        // LB must not reflect it to the victim over the internal side.
        let forged = "SIP/2.0 200 OK\r\n\
            Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKvx0123456789abcdef.0123456789abcdef\r\n\
            Via: SIP/2.0/UDP 198.51.100.66:5060;branch=z9hG4bKvictim\r\n\
            From: <sip:x@example.com>;tag=x1\r\n\
            To: <sip:bob@example.com>;tag=b1\r\n\
            Call-ID: reflect-1\r\n\
            CSeq: 1 OPTIONS\r\n\
            Content-Length: 0\r\n\r\n";
        let message = Message::parse(Bytes::from_static(forged.as_bytes())).unwrap();
        assert_eq!(
            forwarder().handle(message, &from_phone(TransportProtocol::Udp, None)),
            Action::Drop(DropReason::ResponseWithoutNextHop)
        );
        // The same response with the proxy below our Via goes to the proxy.
        let genuine = forged.replace("198.51.100.66:5060", PROXY);
        let message = Message::parse(Bytes::from(genuine)).unwrap();
        let (_, target) =
            forwarded(forwarder().handle(message, &from_phone(TransportProtocol::Udp, None)));
        assert_eq!(target, Target::Internal(PROXY.parse().unwrap()));
    }

    #[test]
    fn request_from_proxy_with_path_reaches_the_received_address() {
        let invite = request(
            "INVITE sip:alice@10.0.0.5:5060",
            &[
                "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKp1",
                "Route: <sip:127.0.0.1:5064;lr;received=sip:203.0.113.5:40000%3Btransport%3Dudp>",
                "From: <sip:bob@example.com>;tag=b1",
                "To: <sip:alice@example.com>",
                "Call-ID: call-2",
                "CSeq: 1 INVITE",
                "Max-Forwards: 69",
                "Contact: <sip:bob@203.0.113.9:5060>",
            ],
        );
        let (message, target) = forwarded(handle(&invite, &from_proxy()));
        assert_eq!(
            target,
            Target::Public {
                transport: TransportProtocol::Udp,
                remote: PHONE.parse().unwrap(),
                connection: None,
            }
        );
        assert!(message.routes().next().is_none());
        let top = message.top_via().unwrap();
        assert_eq!(text(top.host.as_bytes()), PUBLIC_IP);
        assert_eq!(top.rport(), Some(None));
        let record_routes: Vec<String> = message
            .record_routes()
            .map(|route| text(route.unwrap().raw).to_owned())
            .collect();
        assert_eq!(
            record_routes,
            vec![
                "<sip:192.0.2.10:5060;transport=udp;lr;r2=on>".to_owned(),
                "<sip:127.0.0.1:5064;lr;r2=on>".to_owned(),
            ]
        );
    }

    #[test]
    fn in_dialog_request_from_proxy_follows_the_alias() {
        let bye = request(
            "BYE sip:bob@10.0.0.6:5060;alias=203.0.113.6~5070~1",
            &[
                "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKbye",
                "Route: <sip:127.0.0.1:5064;lr;r2=on>, <sip:192.0.2.10:5060;transport=udp;lr;r2=on>",
                "From: <sip:alice@example.com>;tag=a1",
                "To: <sip:bob@example.com>;tag=b1",
                "Call-ID: call-3",
                "CSeq: 2 BYE",
                "Max-Forwards: 69",
            ],
        );
        let (message, target) = forwarded(handle(&bye, &from_proxy()));
        assert_eq!(
            target,
            Target::Public {
                transport: TransportProtocol::Udp,
                remote: "203.0.113.6:5070".parse().unwrap(),
                connection: None,
            }
        );
        assert_eq!(
            message.request_uri_bytes(),
            Some(&b"sip:bob@10.0.0.6:5060"[..])
        );
        assert!(message.routes().next().is_none());
        assert!(message.record_routes().next().is_none());
    }

    #[test]
    fn internal_side_trusts_only_the_proxy() {
        let mut stranger = from_proxy();
        stranger.remote = "127.0.0.9:5062".parse().unwrap();
        let (status, _) = replied(handle(&invite("z9hG4bKs", "UDP"), &stranger));
        assert_eq!(status, 403);
    }

    #[test]
    fn client_alias_is_removed_and_nat_response_contact_aliased() {
        // Not behind NAT (Contact = source), but a forged alias: removed.
        let forged = invite("z9hG4bKal", "UDP")
            .replace(
                "Via: SIP/2.0/UDP 10.0.0.5:5060",
                "Via: SIP/2.0/UDP 203.0.113.5:40000",
            )
            .replace(
                "Contact: <sip:alice@10.0.0.5:5060>",
                "Contact: <sip:alice@203.0.113.5:40000;alias=198.51.100.1~5060~1>;expires=60",
            );
        let (message, _) = forwarded(handle(&forged, &from_phone(TransportProtocol::Udp, None)));
        assert_eq!(
            message.header(&HeaderName::Contact),
            Some(&b"<sip:alice@203.0.113.5:40000>;expires=60"[..])
        );
        // A callee behind NAT answers 200: its Contact gets the alias on the way to the proxy.
        let from_proxy_invite = request(
            "INVITE sip:bob@10.0.0.6:5060",
            &[
                "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKp2",
                "From: <sip:alice@example.com>;tag=a1",
                "To: <sip:bob@example.com>",
                "Call-ID: call-4",
                "CSeq: 1 INVITE",
            ],
        );
        let (to_phone, _) = forwarded(handle(&from_proxy_invite, &from_proxy()));
        let message = MessageBuilder::response_to(&to_phone, 200, "OK")
            .to_tag("b2")
            .header(HeaderName::Contact, "sip:bob@10.0.0.6:5060;expires=60")
            .build();
        let (response, target) =
            forwarded(forwarder().handle(message, &from_phone(TransportProtocol::Udp, None)));
        assert_eq!(target, Target::Internal(PROXY.parse().unwrap()));
        assert_eq!(
            response.header(&HeaderName::Contact),
            Some(&b"<sip:bob@10.0.0.6:5060;alias=203.0.113.5~40000~1>;expires=60"[..])
        );
        assert_eq!(response.vias().count(), 1);
    }

    #[test]
    fn nat_request_without_contact_gets_no_empty_contact() {
        let no_contact =
            invite("z9hG4bKnc", "UDP").replace("Contact: <sip:alice@10.0.0.5:5060>\r\n", "");
        let (message, _) = forwarded(handle(
            &no_contact,
            &from_phone(TransportProtocol::Udp, None),
        ));
        assert!(!message.has_header(&HeaderName::Contact));
        message.validate().unwrap();
    }

    #[test]
    fn forged_path_and_record_route_from_a_phone_are_removed() {
        let forged =
            "<sip:127.0.0.1:5064;lr;received=sip:198.51.100.1:5060%3Btransport%3Dudp;vxf=3>";
        let register = request(
            "REGISTER sip:example.com",
            &[
                "Via: SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bKforge",
                "From: <sip:alice@example.com>;tag=r1",
                "To: <sip:alice@example.com>",
                "Call-ID: forge-1",
                "CSeq: 1 REGISTER",
                &format!("Path: {forged}"),
            ],
        );
        let (message, _) = forwarded(handle(&register, &from_phone(TransportProtocol::Udp, None)));
        let paths: Vec<String> = message
            .paths()
            .map(|path| text(path.unwrap().raw).to_owned())
            .collect();
        assert_eq!(
            paths,
            vec![
                "<sip:127.0.0.1:5064;lr;received=sip:203.0.113.5:40000%3Btransport%3Dudp>"
                    .to_owned()
            ]
        );
        // A callee's 200 keeps our plain Record-Route entries but loses a forged one.
        let (to_phone, _) = forwarded(handle(
            &request(
                "INVITE sip:bob@203.0.113.5:40000",
                &[
                    "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKp3",
                    "From: <sip:alice@example.com>;tag=a1",
                    "To: <sip:bob@example.com>",
                    "Call-ID: forge-2",
                    "CSeq: 1 INVITE",
                ],
            ),
            &from_proxy(),
        ));
        let mut ok = MessageBuilder::response_to(&to_phone, 200, "OK").to_tag("b3");
        for record_route in to_phone.header_values(&HeaderName::RecordRoute) {
            ok = ok.header(HeaderName::RecordRoute, record_route.to_vec());
        }
        let ok = ok.header(HeaderName::RecordRoute, forged).build();
        let (response, _) =
            forwarded(forwarder().handle(ok, &from_phone(TransportProtocol::Udp, None)));
        assert_eq!(
            response
                .record_routes()
                .map(|route| text(route.unwrap().raw).to_owned())
                .collect::<Vec<_>>(),
            vec![
                "<sip:192.0.2.10:5060;transport=udp;lr;r2=on>".to_owned(),
                "<sip:127.0.0.1:5064;lr;r2=on>".to_owned(),
            ]
        );
    }

    #[test]
    fn ipv6_phone_path_round_trip() {
        let mut inbound = from_phone(TransportProtocol::Udp, None);
        inbound.remote = "[2001:db8::5]:40000".parse().unwrap();
        let register = request(
            "REGISTER sip:example.com",
            &[
                "Via: SIP/2.0/UDP [fd00::5]:5060;branch=z9hG4bKv6;rport",
                "From: <sip:alice@example.com>;tag=r6",
                "To: <sip:alice@example.com>",
                "Call-ID: reg-v6",
                "CSeq: 1 REGISTER",
                "Contact: <sip:alice@[fd00::5]:5060>",
            ],
        );
        let (message, _) = forwarded(handle(&register, &inbound));
        let path = text(message.header(&HeaderName::Path).unwrap()).to_owned();
        assert_eq!(
            path,
            "<sip:127.0.0.1:5064;lr;received=sip:[2001:db8::5]:40000%3Btransport%3Dudp>"
        );
        assert_eq!(
            message.header(&HeaderName::from_static(SOURCE_HEADER)),
            Some(&b"udp [2001:db8::5]:40000"[..])
        );
        let invite = request(
            "INVITE sip:alice@[fd00::5]:5060",
            &[
                "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKp6",
                &format!("Route: {path}"),
                "From: <sip:bob@example.com>;tag=b6",
                "To: <sip:alice@example.com>",
                "Call-ID: call-v6",
                "CSeq: 1 INVITE",
            ],
        );
        let (_, target) = forwarded(handle(&invite, &from_proxy()));
        assert_eq!(
            target,
            Target::Public {
                transport: TransportProtocol::Udp,
                remote: "[2001:db8::5]:40000".parse().unwrap(),
                connection: None,
            }
        );
    }

    #[test]
    fn alias_and_parameter_helpers() {
        assert_eq!(
            parse_alias(b"[2001:db8::1]~5070~3"),
            Some((
                TransportProtocol::Tls,
                "[2001:db8::1]:5070".parse().unwrap()
            ))
        );
        assert_eq!(parse_alias(b"203.0.113.6~5070~9"), None);
        assert_eq!(parse_alias(b"host~x~1"), None);
        assert_eq!(
            remove_uri_parameter(b"sip:a@b;lr;alias=1~2~1;x=y?h=v", b"alias"),
            b"sip:a@b;lr;x=y?h=v".to_vec()
        );
        assert!(is_private("10.1.2.3".parse().unwrap()));
        assert!(is_private("100.64.0.1".parse().unwrap()));
        assert!(!is_private("203.0.113.5".parse().unwrap()));
    }
}
