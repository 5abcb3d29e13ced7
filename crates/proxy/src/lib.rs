//! proxy: the registrar and call router of voxide (Kamailio's proxy role in Sipwise C5).
//!
//! It listens on one internal UDP address (default 127.0.0.1:5062) behind the load balancer,
//! which forwards every request from the phones and names their real source in
//! `X-Voxide-Source`. [`start`] runs one [`sip_net::SipEndpoint`] and one task that feeds its
//! events to the parts:
//! - `registrar`: REGISTER (RFC 3261 §10.3) with digest authentication (`authentication`) and
//!   the `location` service, Path included (RFC 3327);
//! - `routing`: everything else, as a stateful forking proxy (RFC 3261 §16);
//! - `accounting`: the `acc` records of calls, written by a writer task;
//! - `media`: the ng client that puts a media relay into every call (offer, answer, delete);
//! - `dialog`: confirmed dialogs, so the proxy can end a call whose media stopped.
//!
//! The transaction layer absorbs retransmissions and sends 100 Trying for INVITE at once
//! (RFC 3261 §17.2.1).

pub mod accounting;
pub mod authentication;
pub mod dialog;
pub mod location;
pub mod media;
pub mod preference_gate;
pub mod registrar;
pub mod reply;
pub mod routing;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sip_core::transaction::LayerConfig;
use sip_message::Method;
use sip_net::{EndpointConfig, EndpointEvent, SipEndpoint};
use store::Store;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::accounting::{AccountingStats, spawn_writer};
use crate::authentication::{AuthenticationPolicy, Authenticator};
use crate::location::{Location, LocationError, unix_now};
use crate::media::{MediaRelayClient, MediaRelayConfig};
use crate::registrar::{Registrar, RegistrarConfig};
use crate::routing::{Router, RouterConfig, RouterServices, Work, real_source};

/// The proxy's internal port in C5.
pub const DEFAULT_PORT: u16 = 5062;
/// Timer C default: RFC 3261 §16.6 step 11 asks for more than 3 minutes.
pub const DEFAULT_TIMER_C: Duration = Duration::from_secs(181);
/// How often confirmed calls are checked with the media relay by default.
pub const DEFAULT_MEDIA_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How often lapsed bindings are purged from the location service.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// How long [`ProxyHandle::shutdown`] waits for queued accounting records to be written.
const ACCOUNTING_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The internal UDP address (C5: 127.0.0.1:5062). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Load balancers whose `X-Voxide-*` headers are trusted.
    pub trusted_lb: Vec<IpAddr>,
    /// Domains served; empty means every domain in the provisioning store.
    pub domains: Vec<String>,
    /// Expiry limits and contacts per address-of-record.
    pub registrar: RegistrarConfig,
    /// Digest policy and brute-force brake.
    pub authentication: AuthenticationPolicy,
    /// Key of the stateless nonces; proxies that accept each other's nonces share it.
    /// Random per start when `None`.
    pub nonce_secret: Option<[u8; 32]>,
    /// Timer C (RFC 3261 §16.6 step 11).
    pub timer_c: Duration,
    /// Transaction timers (T1, T2, T4) and 100 Trying.
    pub transactions: LayerConfig,
    /// Accounting records that may wait for the database before new ones are dropped.
    pub accounting_queue: usize,
    /// The ng media relay every call's SDP goes through; `None` leaves SDP untouched.
    pub media_relay: Option<MediaRelayConfig>,
    /// How often the relay is asked (`query`) whether each confirmed call still exists; a call
    /// it ended for lack of media gets a BYE to both phones.
    pub media_check_interval: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            trusted_lb: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            domains: Vec::new(),
            registrar: RegistrarConfig::default(),
            authentication: AuthenticationPolicy::default(),
            nonce_secret: None,
            timer_c: DEFAULT_TIMER_C,
            transactions: LayerConfig::default(),
            accounting_queue: 10_000,
            media_relay: None,
            media_check_interval: DEFAULT_MEDIA_CHECK_INTERVAL,
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Binding the internal UDP socket failed.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// The location service could not load its bindings.
    #[error("cannot load the location service: {0}")]
    Location(#[from] LocationError),
    /// The ng client socket could not be created.
    #[error("cannot open the media relay client socket: {0}")]
    MediaRelay(std::io::Error),
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}

/// A running proxy.
#[derive(Debug)]
pub struct ProxyHandle {
    local_addr: SocketAddr,
    location: Arc<Location>,
    accounting: Arc<AccountingStats>,
    shutdown: Option<oneshot::Sender<()>>,
    main_loop: JoinHandle<()>,
    accounting_writer: JoinHandle<()>,
    purger: JoinHandle<()>,
}

impl ProxyHandle {
    /// The bound internal UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The location service (bindings, for tests and the admin interface).
    pub fn location(&self) -> &Arc<Location> {
        &self.location
    }

    /// Counters of the accounting writer.
    pub fn accounting_stats(&self) -> &Arc<AccountingStats> {
        &self.accounting
    }

    /// Stops the proxy: closes the socket, ends every transaction and writes the accounting
    /// records still queued.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.main_loop).await;
        self.purger.abort();
        // The writer ends once the router and every spawned decision have let go of it.
        let _ = tokio::time::timeout(ACCOUNTING_DRAIN_TIMEOUT, &mut self.accounting_writer).await;
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.main_loop.abort();
        self.purger.abort();
    }
}

/// Starts the proxy over `store`.
pub async fn start(config: ProxyConfig, store: Store) -> Result<ProxyHandle, ProxyError> {
    if config.listen.ip().is_unspecified() {
        // The address goes into Via and Record-Route: it must be one peers can reach.
        return Err(ProxyError::Config("listen must name a concrete IP address"));
    }
    if config.timer_c < Duration::from_secs(1) {
        return Err(ProxyError::Config("timer_c must be at least one second"));
    }
    let location = Arc::new(Location::load(store.clone(), unix_now()).await?);
    let secret = config.nonce_secret.unwrap_or_else(rand::random);
    let authenticator = Arc::new(Authenticator::new(
        store.clone(),
        secret,
        config.authentication.clone(),
    ));
    let registrar = Arc::new(Registrar::new(
        store.clone(),
        Arc::clone(&location),
        Arc::clone(&authenticator),
        config.registrar.clone(),
    ));
    if config.media_check_interval.is_zero() {
        return Err(ProxyError::Config("media_check_interval must not be zero"));
    }
    let media = match config.media_relay {
        Some(relay) => {
            let client = MediaRelayClient::connect(relay)
                .await
                .map_err(ProxyError::MediaRelay)?;
            let probe = client.clone();
            // The relay may start after the proxy: only say so, the first call will retry.
            tokio::spawn(async move {
                match probe.ping().await {
                    Ok(()) => tracing::info!(relay = %probe.relay(), "media relay answers"),
                    Err(error) => tracing::warn!(%error, "media relay not answering yet"),
                }
            });
            Some(client)
        }
        None => None,
    };
    let (accounting, accounting_writer) = spawn_writer(store.clone(), config.accounting_queue);
    let accounting_stats = Arc::clone(accounting.stats());

    let endpoint = SipEndpoint::new(EndpointConfig {
        transactions: config.transactions,
        ..EndpointConfig::default()
    });
    let local_addr = endpoint
        .transports()
        .bind_udp(config.listen)
        .map_err(|source| ProxyError::Bind {
            address: config.listen,
            source,
        })?;
    let (work_sender, work_receiver) = mpsc::unbounded_channel();
    let router = Router::new(
        RouterConfig {
            local_addr,
            trusted_load_balancers: config.trusted_lb.clone(),
            served_domains: config.domains.clone(),
            timer_c: config.timer_c,
            media_check_interval: config.media_check_interval,
        },
        Arc::new(RouterServices {
            store,
            rewrite_sets: routing::PreferenceGate::new(
                "rewrite_rule_set",
                authenticator.policy().preference_recheck,
            ),
            authenticator,
            location: Arc::clone(&location),
            accounting,
            media,
        }),
        work_sender.clone(),
    );
    let (shutdown, shutdown_signal) = oneshot::channel();
    let main_loop = tokio::spawn(
        MainLoop {
            endpoint,
            router,
            registrar,
            trusted_lb: config.trusted_lb,
            work_sender,
        }
        .run(work_receiver, shutdown_signal),
    );
    let purger = location.spawn_purger(PURGE_INTERVAL);
    tracing::info!(%local_addr, "proxy listening");
    Ok(ProxyHandle {
        local_addr,
        location,
        accounting: accounting_stats,
        shutdown: Some(shutdown),
        main_loop,
        accounting_writer,
        purger,
    })
}

/// The task that owns the endpoint and the router.
struct MainLoop {
    endpoint: SipEndpoint,
    router: Router,
    registrar: Arc<Registrar>,
    trusted_lb: Vec<IpAddr>,
    work_sender: mpsc::UnboundedSender<Work>,
}

impl MainLoop {
    async fn run(
        mut self,
        mut work: mpsc::UnboundedReceiver<Work>,
        mut shutdown: oneshot::Receiver<()>,
    ) {
        loop {
            let next_timer = self.router.next_timer();
            let timer = async {
                match next_timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                event = self.endpoint.recv() => match event {
                    Some(event) => self.handle_event(event).await,
                    None => return,
                },
                Some(item) = work.recv() => self.router.handle_work(&self.endpoint, item).await,
                () = timer => self.router.handle_timers(&self.endpoint).await,
            }
        }
    }

    async fn handle_event(&mut self, event: EndpointEvent) {
        let endpoint = &self.endpoint;
        match event {
            EndpointEvent::Request {
                transaction,
                request,
                flow,
            } => {
                if request.method() == Some(&Method::Register) {
                    // The registrar queries the database: answer from a task of its own.
                    let source = real_source(&request, &flow, &self.trusted_lb);
                    let registrar = Arc::clone(&self.registrar);
                    let work = self.work_sender.clone();
                    tokio::spawn(async move {
                        let response = registrar
                            .handle_register(&request, source, unix_now())
                            .await;
                        let _ = work.send(Work::Respond {
                            transaction,
                            response: Box::new(response),
                            parties: routing::CallParties::default(),
                        });
                    });
                } else {
                    self.router
                        .handle_request(endpoint, transaction, request, flow)
                        .await;
                }
            }
            EndpointEvent::Cancel {
                transaction,
                request,
                invite,
                ..
            } => {
                self.router
                    .handle_cancel(endpoint, transaction, request, invite)
                    .await;
            }
            EndpointEvent::Transaction { transaction, event } => {
                self.router
                    .handle_transaction_event(endpoint, transaction, event)
                    .await;
            }
            EndpointEvent::UnmatchedAck { request, .. } => {
                self.router.handle_unmatched_ack(endpoint, request).await;
            }
            EndpointEvent::StrayResponse { response, .. } => {
                self.router.handle_stray_response(endpoint, response).await;
            }
            EndpointEvent::Unmatchable { flow, error } => {
                tracing::debug!(%error, remote = %flow.remote, "unmatchable message");
            }
            EndpointEvent::Rejected { flow, error, .. } => {
                tracing::debug!(%error, remote = %flow.remote, "malformed message");
            }
            EndpointEvent::ConnectionClosed { .. } => {}
        }
    }
}
