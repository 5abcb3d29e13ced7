//! # lb
//!
//! The edge load-balancer of voxide, the only public SIP listener (the job Kamailio does as
//! the Sipwise C5 LB). It answers what must never reach the proxy (sanity failures, loops,
//! relaying, exhausted Max-Forwards), forwards everything else statelessly (RFC 3261 §16.11)
//! between the public UDP/TCP/TLS listeners and the proxy's internal UDP address, and does
//! the NAT traversal: `received`/`rport` (RFC 3581), Path with the real source on REGISTER
//! (RFC 3327), a contact alias on dialog-forming messages, double Record-Route when the
//! interface changes (RFC 5658) and a flow token so answers and in-dialog requests reuse the
//! phone's TCP/TLS connection.
//!
//! Map: [`forward`] is the sans-IO core (message in, [`Action`] out), unit-tested and
//! benchmarked without sockets; [`flood`] bans sources that send too many requests (pike-like,
//! also sans-IO); this module binds the sockets (through `sip-net`, which also answers
//! unparsable requests with 400 and stamps `received`/`rport`) and runs one task that feeds
//! received messages to the core and sends what it decides. TCP/TLS writes go through one
//! writer task per connection so a slow peer never stalls the loop.
//!
//! Not done here: DNS (next hops must be IP literals), WebSocket, dispatching over several
//! proxies, scanner User-Agent filtering, signed flow tokens.
//!
//! Wire contract with the proxy: requests from phones arrive with our Via on top (branch
//! `z9hG4bKvx…`, `;vxf=<connection>` for streams), `X-Voxide-Source: <udp|tcp|tls> <ip>:<port>`
//! and, on REGISTER, `Path: <sip:INTERNAL;lr;received=sip:SRC%3Btransport%3DT;vxf=N>`.

pub mod domains;
pub mod flood;
pub mod forward;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::Message;

use sip_net::{
    Destination, Flow, TlsIdentity, TransportConfig, TransportEvent, TransportProtocol, Transports,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle};

pub use domains::DomainLookupFn;
pub use flood::{FloodGuard, FloodLimit, Verdict};
pub use forward::{
    Action, DomainLookup, DropReason, Forwarder, ForwarderConfig, Inbound, PublicInterface,
    SOURCE_HEADER, Target,
};

/// Where the TLS listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsCertificate {
    /// PEM certificate chain and private key given by the operator.
    Files { certificate: PathBuf, key: PathBuf },
    /// A self-signed certificate generated on first start and kept in this directory.
    Generated { data_dir: PathBuf },
}

/// The TLS listener (RFC 3261 §26.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListen {
    pub address: SocketAddr,
    pub certificate: TlsCertificate,
}

/// Settings of the load-balancer.
#[derive(Debug, Clone)]
pub struct LbConfig {
    /// Public UDP listener; `None` disables it. Default `0.0.0.0:5060`.
    pub udp: Option<SocketAddr>,
    /// Public TCP listener; `None` disables it. Default `0.0.0.0:5060`.
    pub tcp: Option<SocketAddr>,
    /// Public TLS listener; default none (C5 uses 5061).
    pub tls: Option<TlsListen>,
    /// The address phones reach the public listeners at, written into Via and Record-Route.
    /// Required when a public listener is bound to a wildcard address.
    pub advertised_address: Option<IpAddr>,
    /// The internal UDP socket facing the proxy; must be a concrete address. Default
    /// `127.0.0.1:5064`.
    pub internal: SocketAddr,
    /// The proxy's internal UDP address. Default `127.0.0.1:5062`.
    pub proxy: SocketAddr,
    /// More proxy IP addresses trusted on the internal side (the proxy's own is implied).
    pub trusted_proxies: Vec<IpAddr>,
    /// SIP domains served; out-of-dialog requests for others are refused with 403.
    /// Update at run time with [`LbHandle::set_domains`].
    pub domains: Vec<String>,
    /// Asked about a domain not in `domains` before a request for it is refused, so a domain
    /// created a moment ago is served at once (see [`domains`]); `None`: refuse at once.
    pub domain_lookup: Option<DomainLookupFn>,
    /// Flood banning of public sources (pike-like); `None` turns it off.
    pub flood: Option<FloodLimit>,
    /// Transport limits and socket options.
    pub transport: TransportConfig,
}

impl Default for LbConfig {
    fn default() -> Self {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        LbConfig {
            udp: Some(SocketAddr::new(any, 5060)),
            tcp: Some(SocketAddr::new(any, 5060)),
            tls: None,
            advertised_address: None,
            internal: SocketAddr::new(loopback, 5064),
            proxy: SocketAddr::new(loopback, 5062),
            trusted_proxies: Vec::new(),
            domains: Vec::new(),
            domain_lookup: None,
            flood: Some(FloodLimit::default()),
            transport: TransportConfig::default(),
        }
    }
}

/// Why the load-balancer could not start.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("binding {transport} {address}: {source}")]
    Bind {
        transport: TransportProtocol,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS certificate: {0}")]
    Certificate(#[from] sip_net::CertificateError),
    #[error(
        "the {transport} listener is bound to the wildcard address {address}: set advertised_address"
    )]
    AdvertisedAddressRequired {
        transport: TransportProtocol,
        address: SocketAddr,
    },
    #[error("the internal address {0} must be a concrete IP address, not a wildcard")]
    WildcardInternalAddress(SocketAddr),
    #[error("no public listener configured")]
    NoPublicListener,
}

/// A running load-balancer.
#[derive(Debug)]
pub struct LbHandle {
    /// Bound public UDP address.
    pub udp: Option<SocketAddr>,
    /// Bound public TCP address.
    pub tcp: Option<SocketAddr>,
    /// Bound public TLS address.
    pub tls: Option<SocketAddr>,
    /// Bound internal UDP address (what the proxy sees as the LB).
    pub internal: SocketAddr,
    /// The TLS server certificate (DER), e.g. for clients to trust a generated one.
    pub tls_certificate: Option<Vec<u8>>,
    domains: watch::Sender<Vec<String>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl LbHandle {
    /// Replaces the served domains.
    pub fn set_domains(&self, domains: Vec<String>) {
        self.domains.send_replace(domains);
    }

    /// Stops forwarding and closes every socket and connection.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LbHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Binds every listener and starts forwarding.
pub async fn start(config: LbConfig) -> Result<LbHandle, LbError> {
    if config.internal.ip().is_unspecified() {
        return Err(LbError::WildcardInternalAddress(config.internal));
    }
    if config.udp.is_none() && config.tcp.is_none() && config.tls.is_none() {
        return Err(LbError::NoPublicListener);
    }
    let (transports, events) = Transports::new(config.transport.clone());
    let bind_error = |transport, address| {
        move |source| LbError::Bind {
            transport,
            address,
            source,
        }
    };
    let mut public = Vec::new();
    let mut advertise = |transport, bound: SocketAddr| -> Result<(), LbError> {
        let ip = match (config.advertised_address, bound.ip().is_unspecified()) {
            (Some(ip), _) => ip,
            (None, false) => bound.ip(),
            (None, true) => {
                return Err(LbError::AdvertisedAddressRequired {
                    transport,
                    address: bound,
                });
            }
        };
        public.push(PublicInterface {
            transport,
            bound,
            advertised: SocketAddr::new(ip, bound.port()),
        });
        Ok(())
    };
    let udp = match config.udp {
        Some(address) => {
            let bound = transports
                .bind_udp(address)
                .map_err(bind_error(TransportProtocol::Udp, address))?;
            advertise(TransportProtocol::Udp, bound)?;
            Some(bound)
        }
        None => None,
    };
    let tcp = match config.tcp {
        Some(address) => {
            let bound = transports
                .listen_tcp(address)
                .map_err(bind_error(TransportProtocol::Tcp, address))?;
            advertise(TransportProtocol::Tcp, bound)?;
            Some(bound)
        }
        None => None,
    };
    let mut tls_certificate = None;
    let tls = match &config.tls {
        Some(listen) => {
            let identity = match &listen.certificate {
                TlsCertificate::Files { certificate, key } => {
                    TlsIdentity::from_pem_files(certificate, key)?
                }
                TlsCertificate::Generated { data_dir } => {
                    let mut names = vec!["localhost".to_owned()];
                    if let Some(ip) = config.advertised_address {
                        names.push(ip.to_string());
                    }
                    if !listen.address.ip().is_unspecified() {
                        names.push(listen.address.ip().to_string());
                    }
                    TlsIdentity::load_or_generate(data_dir, &names)?.0
                }
            };
            tls_certificate = Some(identity.certificate().to_vec());
            let bound = transports
                .listen_tls(listen.address, identity.server_config()?)
                .map_err(bind_error(TransportProtocol::Tls, listen.address))?;
            advertise(TransportProtocol::Tls, bound)?;
            Some(bound)
        }
        None => None,
    };
    let internal = transports
        .bind_udp(config.internal)
        .map_err(bind_error(TransportProtocol::Udp, config.internal))?;
    let forwarder = Forwarder::new(ForwarderConfig {
        public,
        internal,
        proxy: config.proxy,
        trusted_proxies: config
            .trusted_proxies
            .iter()
            .map(|ip| ip.to_canonical())
            .collect(),
        domains: config.domains.iter().cloned().collect::<HashSet<_>>(),
        look_up_unknown_domains: config.domain_lookup.is_some(),
    });
    let (domains, domain_updates) = watch::channel(config.domains.clone());
    let (stop, stopped) = oneshot::channel();
    let flood = config.flood.map(FloodGuard::new);
    let task = tokio::spawn(run(
        Loop {
            forwarder,
            flood,
            transports,
            domain_lookup: config.domain_lookup.clone(),
        },
        events,
        domain_updates,
        stopped,
    ));
    tracing::info!(?udp, ?tcp, ?tls, %internal, proxy = %config.proxy, "load-balancer started");
    Ok(LbHandle {
        udp,
        tcp,
        tls,
        internal,
        tls_certificate,
        domains,
        stop: Some(stop),
        task: Some(task),
    })
}

/// What the forwarding loop owns.
struct Loop {
    forwarder: Forwarder,
    flood: Option<FloodGuard>,
    transports: Transports,
    domain_lookup: Option<DomainLookupFn>,
}

/// How long a domain lookup may take before the requests waiting for it are refused.
const DOMAIN_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends what the core decided for a message that came on `flow`.
struct Sender {
    transports: Transports,
    /// Open stream flows by connection id, so a flow token in a Via or Path picks the very
    /// connection the phone opened (sip-net's ids cannot be built from a number).
    connections: HashMap<u64, Flow>,
    stream_writers: StreamWriters,
}

impl Sender {
    async fn dispatch(&mut self, forwarder: &Forwarder, action: Action, flow: Flow) {
        let (destination, bytes) = match action {
            Action::Forward { message, target } => {
                (destination(forwarder, &self.connections, target), message)
            }
            Action::Reply { response, status } => {
                tracing::debug!(remote = %flow.remote, status, "answered");
                (Some(Destination::Flow(flow)), response)
            }
            Action::Drop(reason) => {
                tracing::debug!(remote = %flow.remote, ?reason, "dropped");
                return;
            }
            Action::LookUpDomain(lookup) => {
                // Only `handle` defers; what reaches here came from `handle_looked_up`.
                tracing::debug!(domain = %lookup.domain, "second lookup asked for: dropped");
                return;
            }
        };
        let Some(destination) = destination else {
            tracing::debug!(remote = %flow.remote, "no listener for the next hop");
            return;
        };
        if destination.transport().is_stream() {
            self.stream_writers
                .send(&self.transports, destination, bytes);
        } else if let Err(error) = self.transports.send(&destination, bytes).await {
            tracing::debug!(%error, "forwarding failed");
        }
    }
}

fn inbound_of(flow: &Flow) -> Inbound {
    Inbound {
        transport: flow.transport,
        local: flow.local,
        remote: flow.remote,
        connection: flow.connection.map(|id| id.get()),
    }
}

/// The forwarding loop: one task, so the core needs no locking; it never waits on anything
/// but a send, which for UDP is immediate and for streams only queues. Domain lookups run as
/// tasks of their own and come back as messages.
async fn run(
    state: Loop,
    mut events: mpsc::Receiver<TransportEvent>,
    mut domain_updates: watch::Receiver<Vec<String>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let Loop {
        mut forwarder,
        mut flood,
        transports,
        domain_lookup,
    } = state;
    let mut sender = Sender {
        transports,
        connections: HashMap::new(),
        stream_writers: StreamWriters::default(),
    };
    let mut unknown = domains::UnknownDomains::<(Message, Flow)>::default();
    let (looked_up, mut lookups_done) = mpsc::unbounded_channel::<(String, Result<bool, String>)>();
    loop {
        let event = tokio::select! {
            // Stop first, then domain updates, so an update is in force for the next message.
            biased;
            _ = &mut stopped => break,
            changed = domain_updates.changed() => {
                // An error means the handle is gone: nobody can stop us any more, so stop.
                if changed.is_err() {
                    break;
                }
                forwarder.set_domains(domain_updates.borrow_and_update().clone());
                continue;
            }
            Some((domain, answer)) = lookups_done.recv() => {
                let served = answer.unwrap_or_else(|error| {
                    tracing::warn!(%domain, %error, "domain lookup failed");
                    false
                });
                if served {
                    tracing::info!(%domain, "lb: domain served after lookup");
                    forwarder.add_domain(&domain);
                }
                for (message, flow) in unknown.resolved(&domain, served, Instant::now()) {
                    let action = forwarder.handle_looked_up(message, &inbound_of(&flow));
                    sender.dispatch(&forwarder, action, flow).await;
                }
                continue;
            }
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        let received = match event {
            TransportEvent::Message(received) => received,
            TransportEvent::Rejected {
                flow,
                error,
                answered,
            } => {
                tracing::debug!(remote = %flow.remote, %error, answered, "malformed message");
                continue;
            }
            TransportEvent::ConnectionClosed { flow, reason } => {
                if let Some(connection) = flow.connection {
                    sender.connections.remove(&connection.get());
                    sender.stream_writers.connection_closed(connection.get());
                }
                tracing::debug!(remote = %flow.remote, ?reason, "connection closed");
                continue;
            }
        };
        let flow = received.flow;
        if let Some(guard) = &mut flood
            && received.message.is_request()
            && flow.local != forwarder.config().internal
        {
            match guard.check(flow.remote.ip(), Instant::now()) {
                Verdict::Admit => {}
                Verdict::BannedNow => {
                    // One stable line per ban, for operators and fail2ban.
                    tracing::warn!(target: "voxide::security", source = %flow.remote.ip(), "flood ban");
                    continue;
                }
                Verdict::Banned => continue,
            }
        }
        if let Some(connection) = flow.connection {
            sender.connections.insert(connection.get(), flow);
        }
        let inbound = inbound_of(&flow);
        let action = match forwarder.handle(received.message, &inbound) {
            Action::LookUpDomain(lookup) => {
                let forward::DomainLookup { domain, message } = *lookup;
                match unknown.admit(&domain, (message, flow), Instant::now()) {
                    domains::Admission::LookUp => {
                        if let Some(lookup) = &domain_lookup {
                            let answer = lookup.look_up(domain.clone());
                            let looked_up = looked_up.clone();
                            tokio::spawn(async move {
                                let answer = tokio::time::timeout(DOMAIN_LOOKUP_TIMEOUT, answer)
                                    .await
                                    .unwrap_or_else(|_| Err("timed out".to_owned()));
                                let _ = looked_up.send((domain, answer));
                            });
                        }
                        continue;
                    }
                    domains::Admission::Queued => continue,
                    domains::Admission::Refuse((message, flow)) => {
                        forwarder.handle_looked_up(message, &inbound_of(&flow))
                    }
                }
            }
            action => action,
        };
        sender.dispatch(&forwarder, action, flow).await;
    }
    sender.stream_writers.stop();
}

/// How many messages may wait for one TCP/TLS peer before more are dropped.
const STREAM_QUEUE_LENGTH: usize = 256;

/// A stream writer with nothing to send for this long ends (a new one starts on demand).
const STREAM_WRITER_IDLE: Duration = Duration::from_secs(60);

/// One writer task per TCP/TLS destination, so a peer that reads slowly, or a connection
/// that must first be opened, never stalls the forwarding loop, while messages to one peer
/// keep their order (a 180 never overtakes the 200 after it).
#[derive(Debug, Default)]
struct StreamWriters {
    writers: HashMap<WriterKey, (mpsc::Sender<Bytes>, AbortHandle)>,
    /// Table size at which writers that ended idle are swept out.
    sweep_at: usize,
}

/// What a writer sends to: one connection, or whichever connection to an address is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WriterKey {
    Connection(u64),
    Address(TransportProtocol, SocketAddr),
}

impl WriterKey {
    fn of(destination: &Destination) -> WriterKey {
        match destination {
            Destination::Flow(Flow {
                connection: Some(id),
                ..
            }) => WriterKey::Connection(id.get()),
            other => WriterKey::Address(other.transport(), other.remote()),
        }
    }
}

impl StreamWriters {
    fn send(&mut self, transports: &Transports, destination: Destination, bytes: Bytes) {
        let mut bytes = bytes;
        let key = WriterKey::of(&destination);
        if let Some((writer, _)) = self.writers.get(&key) {
            match writer.try_send(bytes) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(remote = %destination.remote(), "stream queue full, message dropped");
                    return;
                }
                // The writer went idle and ended: start a new one.
                Err(mpsc::error::TrySendError::Closed(unsent)) => bytes = unsent,
            }
        }
        let (writer, queue) = mpsc::channel(STREAM_QUEUE_LENGTH);
        // A fresh channel has room for one message.
        let _ = writer.try_send(bytes);
        let task = tokio::spawn(write_stream(transports.clone(), destination, queue));
        if self.writers.len() >= self.sweep_at {
            self.writers.retain(|_, (writer, _)| !writer.is_closed());
            self.sweep_at = (self.writers.len() * 2).max(64);
        }
        self.writers.insert(key, (writer, task.abort_handle()));
    }

    /// Forgets the writers of a closed connection.
    fn connection_closed(&mut self, connection: u64) {
        self.writers.retain(|key, (_, task)| {
            let closed = *key == WriterKey::Connection(connection);
            if closed {
                task.abort();
            }
            !closed
        });
    }

    fn stop(&mut self) {
        for (_, (_, task)) in self.writers.drain() {
            task.abort();
        }
    }
}

async fn write_stream(
    transports: Transports,
    destination: Destination,
    mut queue: mpsc::Receiver<Bytes>,
) {
    while let Ok(Some(bytes)) = tokio::time::timeout(STREAM_WRITER_IDLE, queue.recv()).await {
        if let Err(error) = transports.send(&destination, bytes).await {
            tracing::debug!(%error, remote = %destination.remote(), "forwarding failed");
        }
    }
}

/// The `sip-net` destination of a target: UDP from the right socket, streams on the flow's
/// connection when known, else on any open connection to the address.
fn destination(
    forwarder: &Forwarder,
    connections: &HashMap<u64, Flow>,
    target: Target,
) -> Option<Destination> {
    match target {
        Target::Internal(remote) => Some(Destination::Flow(Flow {
            transport: TransportProtocol::Udp,
            local: forwarder.config().internal,
            remote,
            connection: None,
        })),
        Target::Public {
            transport,
            remote,
            connection,
        } => {
            if let Some(flow) = connection.and_then(|id| connections.get(&id))
                && flow.transport == transport
            {
                return Some(Destination::Flow(*flow));
            }
            if transport.is_stream() {
                return Some(Destination::address(transport, remote));
            }
            let interface = forwarder
                .config()
                .public
                .iter()
                .find(|interface| interface.transport == transport)?;
            Some(Destination::Flow(Flow {
                transport,
                local: interface.bound,
                remote,
                connection: None,
            }))
        }
    }
}
