//! The one TOML configuration file. Every key has a default; an unknown key or a bad value
//! stops start-up with a message naming the key (serde's `deny_unknown_fields` plus typed
//! fields give "unknown field `x`, expected one of …" with the path).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use sip_core::auth::DigestAlgorithm;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded database, generated certificates and secrets live.
    pub data_dir: PathBuf,
    /// Provisioning database.
    pub database: DatabaseConfig,
    /// Provisioning REST API.
    pub api: ApiSection,
    /// The edge SIP load-balancer (`voxide lb`).
    pub lb: LbSection,
    /// The SIP proxy and registrar (`voxide proxy`).
    pub proxy: ProxySection,
    /// The media relay (`voxide media`).
    pub media: MediaSection,
    /// Mediation: acc records to CDRs (`voxide mediator`).
    pub mediator: MediatorSection,
    /// Settings of `voxide admin` (url, user, password, ca_cert, insecure), read by the CLI;
    /// accepted here so one file serves both.
    #[serde(rename = "admin")]
    pub admin_client: Option<toml::Table>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./voxide-data"),
            database: DatabaseConfig::default(),
            api: ApiSection::default(),
            lb: LbSection::default(),
            proxy: ProxySection::default(),
            media: MediaSection::default(),
            mediator: MediatorSection::default(),
            admin_client: None,
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `mysql://user:pass@host:port/db`; empty = SQLite file in the data dir.
    pub url: String,
}

/// `[api]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Listening address of the REST API.
    pub listen: SocketAddr,
    /// `self-signed` (default: generated into the data dir), `files` (`cert` + `key`) or
    /// `plain` (HTTP without TLS; only for loopback setups).
    pub tls: ApiTls,
    /// PEM certificate chain when `tls = "files"`.
    pub cert: Option<PathBuf>,
    /// PEM private key when `tls = "files"`.
    pub key: Option<PathBuf>,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], provisioning::DEFAULT_API_PORT)),
            tls: ApiTls::SelfSigned,
            cert: None,
            key: None,
        }
    }
}

/// `api.tls`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiTls {
    /// Generate a certificate on first start.
    SelfSigned,
    /// Use `api.cert` and `api.key`.
    Files,
    /// Plain HTTP.
    Plain,
}

/// Production port of the LB's internal UDP socket facing the proxy. Not 5060: the public
/// UDP listener holds `0.0.0.0:5060` by default and the kernel refuses a second socket on the
/// same port of 127.0.0.1.
pub const DEFAULT_LB_INTERNAL_PORT: u16 = 5064;
/// Production port of the proxy (the C5 default).
pub const DEFAULT_PROXY_PORT: u16 = 5062;

/// A listening address that an operator may switch off with `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "off" {
            return Ok(Self(None));
        }
        text.parse::<SocketAddr>()
            .map(|address| Self(Some(address)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{text}` is neither an address like \"0.0.0.0:5060\" nor \"off\""
                ))
            })
    }
}

/// `[lb]`: the only public SIP listener; forwards to the proxy over internal UDP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LbSection {
    /// Public UDP listener, or `"off"`.
    pub udp_listen: Listen,
    /// Public TCP listener, or `"off"`.
    pub tcp_listen: Listen,
    /// Public TLS listener, or `"off"`.
    pub tls_listen: Listen,
    /// `self-signed` (generated into the data dir on first start) or `files`.
    pub tls: SipTls,
    /// PEM certificate chain when `tls = "files"`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key when `tls = "files"`.
    pub tls_key: Option<PathBuf>,
    /// Address written into Record-Route and Via towards phones when the listeners are bound to
    /// an unspecified address (`0.0.0.0`); empty: the listener's own address.
    pub public_address: Option<IpAddr>,
    /// Internal UDP socket the LB talks to the proxy from.
    pub internal_listen: SocketAddr,
    /// The proxy the LB forwards requests to.
    pub proxy: SocketAddr,
    /// More proxy IP addresses trusted on the internal side (the one in `lb.proxy` is implied).
    pub trusted_proxies: Vec<IpAddr>,
    /// SIP domains served; out-of-dialog requests for others get 403 (no open relay). Empty:
    /// the domains of the provisioning database, read again every `domain_refresh_seconds`.
    pub domains: Vec<String>,
    /// How often the domain list is re-read from the database when `domains` is empty.
    pub domain_refresh_seconds: u64,
}

impl Default for LbSection {
    fn default() -> Self {
        Self {
            udp_listen: Listen(Some(SocketAddr::from(([0, 0, 0, 0], 5060)))),
            tcp_listen: Listen(Some(SocketAddr::from(([0, 0, 0, 0], 5060)))),
            tls_listen: Listen(Some(SocketAddr::from(([0, 0, 0, 0], 5061)))),
            tls: SipTls::SelfSigned,
            tls_cert: None,
            tls_key: None,
            public_address: None,
            internal_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_LB_INTERNAL_PORT)),
            proxy: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PROXY_PORT)),
            trusted_proxies: Vec::new(),
            domains: Vec::new(),
            domain_refresh_seconds: 1,
        }
    }
}

/// `lb.tls`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SipTls {
    /// Generate a certificate on first start and keep it in the data dir.
    SelfSigned,
    /// Use `lb.tls_cert` and `lb.tls_key`.
    Files,
}

/// `[proxy]`: registrar and router, reached by the LB over internal UDP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySection {
    /// Internal UDP listener.
    pub listen: SocketAddr,
    /// Addresses of the LBs whose `X-Voxide-*` headers and Path the proxy believes.
    pub trusted_lb: Vec<IpAddr>,
    /// Shortest registration accepted; shorter ones get 423 Interval Too Brief (RFC 3261 §10.3).
    pub min_expires: u32,
    /// Longest registration granted; longer ones are cut down to this.
    pub max_expires: u32,
    /// Registration lifetime when the REGISTER names none.
    pub default_expires: u32,
    /// Most live contacts per address-of-record.
    pub max_contacts: usize,
    /// SIP domains served; empty: every domain in the provisioning database.
    pub domains: Vec<String>,
    /// Seconds a digest nonce stays valid.
    pub nonce_lifetime_seconds: u64,
    /// Digest algorithms offered, one challenge each, in this order: `"SHA-256"`, `"MD5"`
    /// (the two whose HA1 the store keeps). Default `["MD5"]`, which every phone answers:
    /// baresip 1.0 gives up on any 401 carrying SHA-256, SIPp 3.6 reads only the first
    /// challenge. A domain, customer or subscriber asks for SHA-256 with the
    /// `digest_algorithms` preference, which overrides this.
    pub digest_algorithms: Vec<String>,
    /// Failed digest answers from one source for one user before 403 instead of a new
    /// challenge (0: no brake).
    pub auth_max_failures: u32,
    /// Seconds after the first failure at which the count starts over.
    pub auth_failure_window_seconds: u64,
    /// Timer C: how long an INVITE branch may go without a provisional response
    /// (RFC 3261 §16.6 step 11: more than 3 minutes).
    pub timer_c_seconds: u64,
    /// Timer J: how long a completed non-INVITE transaction over UDP keeps answering
    /// retransmissions of its request. Unset: RFC 3261's 64·T1 (32 s). A busy registrar may
    /// shorten it to hold less memory (Kamailio's tm keeps 5 s).
    pub timer_j_seconds: Option<u64>,
    /// The ng media relay every call's SDP goes through: unset = `media.ng_listen` (the relay
    /// of this configuration), an address like "127.0.0.1:12222" for any ng-speaking relay
    /// (rtpengine too), or `""`/`"off"` to leave SDP untouched.
    pub media_relay: MediaRelaySetting,
    /// Seconds between asking the relay whether each confirmed call still exists (a call it
    /// ended for lack of media gets a BYE to both phones).
    pub media_check_seconds: u64,
}

/// `proxy.media_relay`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaRelaySetting {
    /// The relay of `[media]`.
    #[default]
    Own,
    /// SDP untouched.
    Off,
    /// Any ng-speaking relay.
    Address(SocketAddr),
}

impl<'de> Deserialize<'de> for MediaRelaySetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() || text == "off" {
            return Ok(Self::Off);
        }
        text.parse::<SocketAddr>().map(Self::Address).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is neither an ng address like \"127.0.0.1:12222\" nor \"off\""
            ))
        })
    }
}

/// `[media]`: the rtpengine-compatible relay (ng control + RTP/RTCP data plane).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSection {
    /// ng control listener (UDP).
    pub ng_listen: SocketAddr,
    /// Address the RTP/RTCP sockets bind to. Unset: the host's address as for
    /// `lb.public_address` (the interface the default route leaves by, so phones on other
    /// hosts of the LAN reach the relay; 127.0.0.1 on a host without a default route).
    pub address: Option<IpAddr>,
    /// Address written into SDP; empty: `address` (set it behind 1:1 NAT).
    pub advertised_address: Option<IpAddr>,
    /// Lowest relay port.
    pub port_min: u16,
    /// Highest relay port.
    pub port_max: u16,
    /// Seconds without media (and signalling) after which a call is ended.
    pub timeout_seconds: u64,
    /// Seconds a deleted call stays known to ng `query`/`list` (its ports return to the pool at
    /// the delete; its old peers are kept from the ports' next owners for this long).
    pub delete_delay_seconds: u64,
    /// TOS byte of relayed packets (184 = DSCP EF).
    pub tos: u8,
    /// `steered` (one BPF-steered receive socket for all ports; falls back to `batched`
    /// without CAP_BPF), `batched` (recvmmsg/sendmmsg per port socket) or `simple` (one system
    /// call per packet).
    pub io_mode: MediaIoMode,
    /// Relay latched IPv4 streams in the kernel (a tc BPF program on every interface, like
    /// rtpengine's kernel module); user space where it cannot be attached.
    pub kernel_forwarding: bool,
}

/// `media.io_mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MediaIoMode {
    Steered,
    Batched,
    Simple,
}

impl Default for MediaSection {
    fn default() -> Self {
        let defaults = media::MediaConfig::default();
        Self {
            ng_listen: defaults.ng_address,
            address: None,
            advertised_address: None,
            port_min: defaults.port_min,
            port_max: defaults.port_max,
            timeout_seconds: defaults.media_timeout.as_secs(),
            delete_delay_seconds: defaults.delete_delay.as_secs(),
            tos: defaults.tos,
            io_mode: MediaIoMode::Steered,
            kernel_forwarding: defaults.kernel_forwarding,
        }
    }
}

impl Default for ProxySection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PROXY_PORT)),
            trusted_lb: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            min_expires: 60,
            max_expires: 43200,
            default_expires: 3600,
            max_contacts: 5,
            domains: Vec::new(),
            nonce_lifetime_seconds: 300,
            digest_algorithms: vec!["MD5".to_owned()],
            auth_max_failures: 5,
            auth_failure_window_seconds: 300,
            timer_c_seconds: 181,
            timer_j_seconds: None,
            media_relay: MediaRelaySetting::Own,
            media_check_seconds: 5,
        }
    }
}

/// `[mediator]`: turns the proxy's acc records into CDRs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediatorSection {
    /// Seconds between mediation passes.
    pub poll_interval_seconds: u64,
    /// Seconds an answered call may go without a BYE before it becomes a `failed` CDR.
    pub max_call_age_seconds: u64,
    /// Calls read and committed per database transaction.
    pub batch_size: u32,
}

impl Default for MediatorSection {
    fn default() -> Self {
        let defaults = mediator::MediatorConfig::default();
        Self {
            poll_interval_seconds: defaults.poll_interval.as_secs(),
            max_call_age_seconds: defaults.max_call_age.as_secs(),
            batch_size: defaults.batch_size,
        }
    }
}

impl Config {
    /// Read `path`, or the defaults when no file is given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// Parse and check a configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Config = toml::from_str(text).map_err(|error| anyhow::anyhow!("{error}"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.api.tls == ApiTls::Files {
            if self.api.cert.is_none() {
                anyhow::bail!("api.cert: required when api.tls = \"files\"");
            }
            if self.api.key.is_none() {
                anyhow::bail!("api.key: required when api.tls = \"files\"");
            }
        }
        if self.lb.tls == SipTls::Files && self.lb.tls_listen.0.is_some() {
            if self.lb.tls_cert.is_none() {
                anyhow::bail!("lb.tls_cert: required when lb.tls = \"files\"");
            }
            if self.lb.tls_key.is_none() {
                anyhow::bail!("lb.tls_key: required when lb.tls = \"files\"");
            }
        }
        if self.lb.udp_listen.0.is_none()
            && self.lb.tcp_listen.0.is_none()
            && self.lb.tls_listen.0.is_none()
        {
            anyhow::bail!("lb.udp_listen: every public listener is \"off\"; keep at least one");
        }
        let proxy = &self.proxy;
        if proxy.min_expires == 0 {
            anyhow::bail!("proxy.min_expires: must be at least 1 second");
        }
        if proxy.max_expires < proxy.min_expires {
            anyhow::bail!(
                "proxy.max_expires: {} is below proxy.min_expires {}",
                proxy.max_expires,
                proxy.min_expires
            );
        }
        if !(proxy.min_expires..=proxy.max_expires).contains(&proxy.default_expires) {
            anyhow::bail!(
                "proxy.default_expires: {} is outside proxy.min_expires..=proxy.max_expires ({}..={})",
                proxy.default_expires,
                proxy.min_expires,
                proxy.max_expires
            );
        }
        digest_algorithms(&proxy.digest_algorithms)?;
        if proxy.max_contacts == 0 {
            anyhow::bail!("proxy.max_contacts: must be at least 1");
        }
        if proxy.nonce_lifetime_seconds == 0 {
            anyhow::bail!("proxy.nonce_lifetime_seconds: must be at least 1");
        }
        if proxy.timer_c_seconds == 0 {
            anyhow::bail!("proxy.timer_c_seconds: must be at least 1");
        }
        if let Some(seconds) = proxy.timer_j_seconds
            && !(1..=32).contains(&seconds)
        {
            anyhow::bail!("proxy.timer_j_seconds: must be 1 to 32 (RFC 3261's 64*T1)");
        }
        if self.lb.domain_refresh_seconds == 0 {
            anyhow::bail!("lb.domain_refresh_seconds: must be at least 1");
        }
        if self.lb.internal_listen.ip().is_unspecified() {
            anyhow::bail!(
                "lb.internal_listen: {} is a wildcard; the proxy needs a concrete address to answer",
                self.lb.internal_listen
            );
        }
        if proxy.trusted_lb.is_empty() {
            anyhow::bail!("proxy.trusted_lb: empty; the proxy would refuse every LB");
        }
        if proxy.media_check_seconds == 0 {
            anyhow::bail!("proxy.media_check_seconds: must be at least 1");
        }
        let media = &self.media;
        if media.port_min == 0 || media.port_min >= media.port_max {
            anyhow::bail!(
                "media.port_min: {} must be above 0 and below media.port_max {}",
                media.port_min,
                media.port_max
            );
        }
        if media.timeout_seconds == 0 {
            anyhow::bail!("media.timeout_seconds: must be at least 1");
        }
        if media.delete_delay_seconds > 86_400 {
            anyhow::bail!("media.delete_delay_seconds: at most 86400 (a day)");
        }
        let advertised = media.advertised_address.or(media.address);
        if advertised.is_some_and(|address| address.is_unspecified()) {
            anyhow::bail!(
                "media.advertised_address: media.address is a wildcard; name the address phones \
                 send media to"
            );
        }
        let mediator = &self.mediator;
        if mediator.poll_interval_seconds == 0 {
            anyhow::bail!("mediator.poll_interval_seconds: must be at least 1");
        }
        if mediator.max_call_age_seconds == 0 {
            anyhow::bail!("mediator.max_call_age_seconds: must be at least 1");
        }
        if !(1..=10_000).contains(&mediator.batch_size) {
            anyhow::bail!("mediator.batch_size: must be 1 to 10000");
        }
        Ok(())
    }

    /// The database URL, defaulting to an SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("voxide.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }

    /// The provisioning API settings.
    pub fn api_config(&self) -> provisioning::ApiConfig {
        let mut api = provisioning::ApiConfig::new(self.data_dir.clone());
        api.listen = self.api.listen;
        api.tls = match self.api.tls {
            ApiTls::SelfSigned => provisioning::TlsMode::SelfSigned {
                data_dir: self.data_dir.clone(),
            },
            ApiTls::Plain => provisioning::TlsMode::Plain,
            ApiTls::Files => provisioning::TlsMode::Files {
                cert: self.api.cert.clone().unwrap_or_default(),
                key: self.api.key.clone().unwrap_or_default(),
            },
        };
        api
    }
}

impl Config {
    /// The load-balancer's settings; `advertised` is the public address to write into Via
    /// and Record-Route when a listener is bound to a wildcard address.
    pub fn lb_config(&self, advertised: Option<IpAddr>) -> lb::LbConfig {
        let section = &self.lb;
        let certificate = match section.tls {
            SipTls::SelfSigned => lb::TlsCertificate::Generated {
                data_dir: self.data_dir.clone(),
            },
            SipTls::Files => lb::TlsCertificate::Files {
                certificate: section.tls_cert.clone().unwrap_or_default(),
                key: section.tls_key.clone().unwrap_or_default(),
            },
        };
        lb::LbConfig {
            udp: section.udp_listen.0,
            tcp: section.tcp_listen.0,
            tls: section.tls_listen.0.map(|address| lb::TlsListen {
                address,
                certificate,
            }),
            advertised_address: section.public_address.or(advertised),
            internal: section.internal_listen,
            proxy: section.proxy,
            trusted_proxies: section.trusted_proxies.clone(),
            domains: section.domains.clone(),
            ..lb::LbConfig::default()
        }
    }

    /// The settings that, left unset, take the host's own address (the default-route
    /// interface's) when the components in `running` start: `lb.public_address`,
    /// `media.address`.
    pub fn keys_defaulting_to_host_address(&self, lb: bool, media: bool) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if lb && self.lb_needs_advertised_address() {
            keys.push("lb.public_address");
        }
        if media && self.media.address.is_none() {
            keys.push("media.address");
        }
        keys
    }

    /// Whether some public listener is bound to a wildcard address with no
    /// `lb.public_address` to advertise instead.
    pub fn lb_needs_advertised_address(&self) -> bool {
        let lb = &self.lb;
        lb.public_address.is_none()
            && [lb.udp_listen, lb.tcp_listen, lb.tls_listen]
                .iter()
                .filter_map(|listen| listen.0)
                .any(|address| address.ip().is_unspecified())
    }

    /// The proxy's settings.
    pub fn proxy_config(&self) -> proxy::ProxyConfig {
        let section = &self.proxy;
        let mut config = proxy::ProxyConfig {
            listen: section.listen,
            trusted_lb: section.trusted_lb.clone(),
            domains: section.domains.clone(),
            timer_c: std::time::Duration::from_secs(section.timer_c_seconds),
            ..proxy::ProxyConfig::default()
        };
        config.transactions.timer_j = section.timer_j_seconds.map(std::time::Duration::from_secs);
        config.registrar.min_expires = section.min_expires;
        config.registrar.max_expires = section.max_expires;
        config.registrar.default_expires = section.default_expires;
        config.registrar.max_contacts = section.max_contacts;
        config.authentication.digest.nonce_lifetime_seconds = section.nonce_lifetime_seconds;
        // Checked at load time; see `check`.
        if let Ok(algorithms) = digest_algorithms(&section.digest_algorithms) {
            config.authentication.digest.offered_algorithms = algorithms;
        }
        config.authentication.max_failures = section.auth_max_failures;
        config.authentication.failure_window_seconds = section.auth_failure_window_seconds;
        config.media_relay = self
            .media_relay_address()
            .map(proxy::media::MediaRelayConfig::new);
        config.media_check_interval = std::time::Duration::from_secs(section.media_check_seconds);
        config
    }

    /// The ng address the proxy sends to; `None` when switched off.
    pub fn media_relay_address(&self) -> Option<SocketAddr> {
        match self.proxy.media_relay {
            MediaRelaySetting::Off => None,
            MediaRelaySetting::Address(address) => Some(address),
            MediaRelaySetting::Own => {
                let listen = self.media.ng_listen;
                // A wildcard listener is reached on loopback from the same host.
                Some(if listen.ip().is_unspecified() {
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
                } else {
                    listen
                })
            }
        }
    }

    /// The media relay's settings; `host` is the host's own address (see
    /// [`default_route_address`]), used when `media.address` is unset.
    pub fn media_config(&self, host: IpAddr) -> media::MediaConfig {
        let section = &self.media;
        let address = section.address.unwrap_or(host);
        media::MediaConfig {
            ng_address: section.ng_listen,
            media_bind_address: address,
            advertised_address: section.advertised_address.unwrap_or(address),
            port_min: section.port_min,
            port_max: section.port_max,
            media_timeout: std::time::Duration::from_secs(section.timeout_seconds),
            delete_delay: std::time::Duration::from_secs(section.delete_delay_seconds),
            tos: section.tos,
            io_mode: match section.io_mode {
                MediaIoMode::Steered => media::IoMode::Steered,
                MediaIoMode::Batched => media::IoMode::Batched,
                MediaIoMode::Simple => media::IoMode::Simple,
            },
            kernel_forwarding: section.kernel_forwarding,
            ..media::MediaConfig::default()
        }
    }
}

impl Config {
    /// The mediator's settings.
    pub fn mediator_config(&self) -> mediator::MediatorConfig {
        mediator::MediatorConfig {
            poll_interval: std::time::Duration::from_secs(self.mediator.poll_interval_seconds),
            max_call_age: std::time::Duration::from_secs(self.mediator.max_call_age_seconds),
            batch_size: self.mediator.batch_size,
        }
    }
}

/// The address of the interface the default route leaves by (what other hosts reach this one
/// at), or `None` without a default route. Connecting a UDP socket only asks the kernel for a
/// route; no packet is sent.
pub fn default_route_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // TEST-NET-1 (RFC 5737): never a real peer, only a route lookup.
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let address = socket.local_addr().ok()?.ip();
    (!address.is_unspecified()).then_some(address)
}

/// `proxy.digest_algorithms` as algorithms, refusing names the store has no HA1 for.
fn digest_algorithms(names: &[String]) -> anyhow::Result<Vec<DigestAlgorithm>> {
    if names.is_empty() {
        anyhow::bail!("proxy.digest_algorithms: empty; offer \"SHA-256\", \"MD5\" or both");
    }
    let mut algorithms = Vec::new();
    for name in names {
        let algorithm = match name.to_ascii_uppercase().as_str() {
            "SHA-256" => DigestAlgorithm::Sha256,
            "MD5" => DigestAlgorithm::Md5,
            _ => anyhow::bail!(
                "proxy.digest_algorithms: `{name}` is not offered; use \"SHA-256\" or \"MD5\""
            ),
        };
        if algorithms.contains(&algorithm) {
            anyhow::bail!("proxy.digest_algorithms: `{name}` appears twice");
        }
        algorithms.push(algorithm);
    }
    Ok(algorithms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mediator_section_defaults_and_checks() {
        let config = Config::parse("").unwrap();
        let mediator = config.mediator_config();
        assert_eq!(mediator.poll_interval, std::time::Duration::from_secs(5));
        assert_eq!(
            mediator.max_call_age,
            std::time::Duration::from_secs(4 * 3600)
        );
        let config =
            Config::parse("[mediator]\npoll_interval_seconds = 1\nmax_call_age_seconds = 60\n")
                .unwrap();
        assert_eq!(
            config.mediator_config().max_call_age,
            std::time::Duration::from_secs(60)
        );
        let error = Config::parse("[mediator]\npoll_interval_seconds = 0\n").unwrap_err();
        assert!(
            error.to_string().contains("mediator.poll_interval_seconds"),
            "{error}"
        );
        let error = Config::parse("[mediator]\nintervall = 3\n").unwrap_err();
        assert!(error.to_string().contains("intervall"), "{error}");
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./voxide-data"));
        assert_eq!(config.api.listen.port(), 1443);
        assert_eq!(config.api.tls, ApiTls::SelfSigned);
        assert!(
            config
                .database_url()
                .starts_with("sqlite://./voxide-data/voxide.db")
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let error = Config::parse("[api]\nlisten = \"127.0.0.1:1\"\nlsten = 3\n").unwrap_err();
        assert!(format!("{error:#}").contains("lsten"), "{error:#}");
    }

    #[test]
    fn bad_value_is_named() {
        let error = Config::parse("[api]\nlisten = \"not an address\"\n").unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("listen"), "{text}");
        let error = Config::parse("[api]\ntls = \"files\"\n").unwrap_err();
        assert!(format!("{error:#}").contains("api.cert"));
    }

    #[test]
    fn sip_defaults_match_the_c5_ports() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.lb.udp_listen.0.unwrap().port(), 5060);
        assert_eq!(config.lb.tcp_listen.0.unwrap().port(), 5060);
        assert_eq!(config.lb.tls_listen.0.unwrap().port(), 5061);
        assert_eq!(config.lb.proxy, config.proxy.listen);
        assert_eq!(config.proxy.listen.port(), 5062);
        assert_eq!(
            config.proxy.trusted_lb,
            vec![config.lb.internal_listen.ip()]
        );
        assert_eq!(
            (
                config.proxy.min_expires,
                config.proxy.default_expires,
                config.proxy.max_expires
            ),
            (60, 3600, 43200)
        );
    }

    #[test]
    fn listeners_can_be_switched_off() {
        let config = Config::parse("[lb]\ntcp_listen = \"off\"\ntls_listen = \"off\"\n").unwrap();
        assert_eq!(config.lb.tcp_listen.0, None);
        assert_eq!(config.lb.tls_listen.0, None);
        assert!(config.lb.udp_listen.0.is_some());
        let error = Config::parse(
            "[lb]\nudp_listen = \"off\"\ntcp_listen = \"off\"\ntls_listen = \"off\"\n",
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("lb.udp_listen"), "{error:#}");
    }

    #[test]
    fn bad_sip_values_are_named() {
        for (text, key) in [
            ("[lb]\nudp_listen = \"5060\"\n", "udp_listen"),
            ("[lb]\nprxy = \"127.0.0.1:5062\"\n", "prxy"),
            ("[lb]\ntls = \"files\"\n", "lb.tls_cert"),
            ("[lb]\npublic_address = \"example\"\n", "public_address"),
            ("[proxy]\nlisten = \"127.0.0.1\"\n", "listen"),
            ("[proxy]\nmin_expires = -1\n", "min_expires"),
            ("[proxy]\nmin_expires = 0\n", "proxy.min_expires"),
            ("[proxy]\nmax_expires = 30\n", "proxy.max_expires"),
            (
                "[proxy]\ndefault_expires = 50000\n",
                "proxy.default_expires",
            ),
            ("[proxy]\ntrusted_lb = [\"lb.internal\"]\n", "trusted_lb"),
            ("[proxy]\ntrusted_lb = []\n", "proxy.trusted_lb"),
            ("[proxy]\nregistrar = 1\n", "registrar"),
            ("[proxy]\ntimer_j_seconds = 0\n", "proxy.timer_j_seconds"),
            ("[proxy]\ntimer_j_seconds = 60\n", "proxy.timer_j_seconds"),
            (
                "[proxy]\ndigest_algorithms = [\"SHA-1\"]\n",
                "proxy.digest_algorithms",
            ),
            (
                "[proxy]\ndigest_algorithms = []\n",
                "proxy.digest_algorithms",
            ),
            (
                "[proxy]\ndigest_algorithms = [\"MD5\", \"md5\"]\n",
                "proxy.digest_algorithms",
            ),
            (
                "[lb]\ninternal_listen = \"0.0.0.0:5064\"\n",
                "lb.internal_listen",
            ),
        ] {
            let error = Config::parse(text).unwrap_err();
            let message = format!("{error:#}");
            assert!(message.contains(key), "{text:?} gave {message}");
        }
    }

    #[test]
    fn the_proxy_settings_reach_the_proxy() {
        let config = Config::parse(
            "[proxy]\nmin_expires = 30\nmax_expires = 600\ndefault_expires = 120\n\
             max_contacts = 2\ndigest_algorithms = [\"MD5\"]\ntimer_c_seconds = 200\n\
             timer_j_seconds = 5\n",
        )
        .unwrap();
        let proxy = config.proxy_config();
        assert_eq!(
            (proxy.registrar.min_expires, proxy.registrar.max_expires),
            (30, 600)
        );
        assert_eq!(proxy.registrar.default_expires, 120);
        assert_eq!(proxy.registrar.max_contacts, 2);
        assert_eq!(
            proxy.authentication.digest.offered_algorithms,
            vec![DigestAlgorithm::Md5]
        );
        assert_eq!(proxy.timer_c, std::time::Duration::from_secs(200));
        assert_eq!(
            proxy.transactions.timer_j,
            Some(std::time::Duration::from_secs(5))
        );
        let defaults = Config::parse("").unwrap().proxy_config();
        assert_eq!(defaults.transactions.timer_j, None, "RFC 64*T1 unless set");
        assert_eq!(
            defaults.authentication.digest.offered_algorithms,
            vec![DigestAlgorithm::Md5],
            "MD5 alone unless asked: baresip 1.0 and SIPp 3.6 fail on SHA-256"
        );
    }

    #[test]
    fn the_lb_settings_reach_the_lb() {
        let config = Config::parse(
            "[lb]\nudp_listen = \"0.0.0.0:5060\"\ntcp_listen = \"off\"\ntls_listen = \"127.0.0.1:5061\"\n\
             domains = [\"sip.example.org\"]\n",
        )
        .unwrap();
        assert!(config.lb_needs_advertised_address());
        let lb = config.lb_config(Some("192.0.2.7".parse().unwrap()));
        assert_eq!(lb.advertised_address, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(lb.tcp, None);
        assert_eq!(lb.tls.unwrap().address.port(), 5061);
        assert_eq!(lb.domains, vec!["sip.example.org".to_owned()]);
        let pinned = Config::parse("[lb]\npublic_address = \"198.51.100.1\"\n").unwrap();
        assert!(!pinned.lb_needs_advertised_address());
        assert_eq!(
            pinned.lb_config(None).advertised_address,
            Some("198.51.100.1".parse().unwrap())
        );
    }

    #[test]
    fn the_media_settings_reach_the_relay_and_the_proxy() {
        let defaults = Config::parse("").unwrap();
        let host: IpAddr = "192.0.2.44".parse().unwrap();
        let relay = defaults.media_config(host);
        assert_eq!(relay.media_bind_address, host, "unset: the host's address");
        assert_eq!(relay.advertised_address, host);
        assert_eq!(
            defaults.keys_defaulting_to_host_address(true, true),
            ["lb.public_address", "media.address"]
        );
        assert_eq!(
            defaults.keys_defaulting_to_host_address(false, true),
            ["media.address"]
        );
        assert_eq!(relay.ng_address, "127.0.0.1:12222".parse().unwrap());
        assert_eq!((relay.port_min, relay.port_max), (30000, 40000));
        assert_eq!(relay.media_timeout, std::time::Duration::from_secs(60));
        assert_eq!(relay.tos, 184);
        assert_eq!(relay.io_mode, media::IoMode::Steered);
        assert!(relay.kernel_forwarding);
        let proxy = defaults.proxy_config();
        assert_eq!(
            proxy.media_relay.map(|relay| relay.address),
            Some("127.0.0.1:12222".parse().unwrap())
        );
        assert_eq!(
            proxy.media_check_interval,
            std::time::Duration::from_secs(5)
        );

        let config = Config::parse(
            "[media]\nng_listen = \"0.0.0.0:2223\"\naddress = \"10.0.0.5\"\n\
             advertised_address = \"192.0.2.5\"\nport_min = 20000\nport_max = 20100\n\
             timeout_seconds = 3\ndelete_delay_seconds = 0\ntos = 0\nio_mode = \"simple\"\nkernel_forwarding = false\n\
             [proxy]\nmedia_check_seconds = 1\n",
        )
        .unwrap();
        assert!(
            config
                .keys_defaulting_to_host_address(false, true)
                .is_empty()
        );
        let relay = config.media_config(host);
        assert_eq!(
            relay.media_bind_address,
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            relay.advertised_address,
            "192.0.2.5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(relay.media_timeout, std::time::Duration::from_secs(3));
        assert_eq!(relay.io_mode, media::IoMode::Simple);
        assert!(!relay.kernel_forwarding);
        assert_eq!(
            config.media_relay_address(),
            Some("127.0.0.1:2223".parse().unwrap())
        );
        for (text, expected) in [
            ("[proxy]\nmedia_relay = \"off\"\n", None),
            ("[proxy]\nmedia_relay = \"\"\n", None),
            (
                "[proxy]\nmedia_relay = \"192.0.2.9:2222\"\n",
                Some("192.0.2.9:2222".parse().unwrap()),
            ),
        ] {
            assert_eq!(
                Config::parse(text).unwrap().media_relay_address(),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn bad_media_values_are_named() {
        for (text, key) in [
            ("[media]\nng_lisen = \"127.0.0.1:1\"\n", "ng_lisen"),
            (
                "[media]\nport_min = 40000\nport_max = 30000\n",
                "media.port_min",
            ),
            ("[media]\nport_min = 70000\n", "port_min"),
            ("[media]\ntimeout_seconds = 0\n", "media.timeout_seconds"),
            ("[media]\ntos = 300\n", "tos"),
            ("[media]\nio_mode = \"fast\"\n", "io_mode"),
            (
                "[media]\naddress = \"0.0.0.0\"\n",
                "media.advertised_address",
            ),
            ("[proxy]\nmedia_relay = \"relay.local\"\n", "media_relay"),
            (
                "[proxy]\nmedia_check_seconds = 0\n",
                "proxy.media_check_seconds",
            ),
        ] {
            let error = Config::parse(text).unwrap_err();
            let message = format!("{error:#}");
            assert!(message.contains(key), "{text:?} gave {message}");
        }
    }

    #[test]
    fn a_split_setup_parses() {
        let config = Config::parse(
            "[lb]\nudp_listen = \"192.0.2.10:5060\"\ninternal_listen = \"10.0.0.1:5060\"\n\
             proxy = \"10.0.0.2:5062\"\npublic_address = \"192.0.2.10\"\n\
             [proxy]\nlisten = \"10.0.0.2:5062\"\ntrusted_lb = [\"10.0.0.1\", \"10.0.0.3\"]\n",
        )
        .unwrap();
        assert_eq!(config.lb.proxy, config.proxy.listen);
        assert_eq!(config.proxy.trusted_lb.len(), 2);
        assert_eq!(
            config.lb.public_address,
            Some("192.0.2.10".parse().unwrap())
        );
    }
}
