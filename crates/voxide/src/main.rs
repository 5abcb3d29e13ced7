//! The voxide binary: subcommands, configuration loading and wiring. No business logic lives
//! here; each component's crate owns its behaviour.

mod config;
mod sip_thread;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::Config;

/// jemalloc, with its background threads purging freed pages: after a load peak (transactions
/// held for Timer J, group-commit batches) unused memory goes back to the system within
/// seconds (`dirty_decay_ms`, 10 s by default). glibc's malloc keeps most of it in its arenas,
/// so a node stayed at its peak RSS. Tunable at run time through `_RJEM_MALLOC_CONF`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "voxide", version, about = "voxide: a Class-5 SIP softswitch")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every component on this node (embedded SQLite by default).
    Up(ConfigArgs),
    /// Run the provisioning REST API alone.
    Provisioning(ConfigArgs),
    /// Run the edge SIP load-balancer alone (`[lb]`).
    Lb(ConfigArgs),
    /// Run the SIP proxy and registrar alone (`[proxy]`, `[database]`).
    Proxy(ConfigArgs),
    /// Run the media relay alone (`[media]`): ng control and the RTP/RTCP relay.
    Media(ConfigArgs),
    /// Run the mediator alone (`[mediator]`): acc records to CDRs.
    Mediator(ConfigArgs),
    /// Call detail records: `voxide cdr export --since … --out DIR`.
    Cdr(CdrArgs),
    /// Operator commands against the provisioning API.
    Admin(Box<admin_cli::AdminArgs>),
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// TOML configuration file (see docs/configuration.md); defaults apply without one.
    #[arg(long, short = 'c', env = "VOXIDE_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Admin(args) => runtime.block_on(async {
            let mut stdout = std::io::stdout();
            let mut stderr = std::io::stderr();
            admin_cli::main_with(*args, &mut stdout, &mut stderr).await
        }),
        Command::Up(args) => run(&runtime, args, Components::ALL),
        Command::Provisioning(args) => run(&runtime, args, Components::API),
        Command::Lb(args) => run(&runtime, args, Components::LB),
        Command::Proxy(args) => run(&runtime, args, Components::PROXY),
        Command::Media(args) => run(&runtime, args, Components::MEDIA),
        Command::Mediator(args) => run(&runtime, args, Components::MEDIATOR),
        Command::Cdr(args) => match runtime.block_on(cdr_command(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Which components one process runs.
#[derive(Debug, Clone, Copy)]
struct Components {
    api: bool,
    lb: bool,
    proxy: bool,
    media: bool,
    mediator: bool,
}

impl Components {
    const ALL: Self = Self {
        api: true,
        lb: true,
        proxy: true,
        media: true,
        mediator: true,
    };
    const API: Self = Self {
        api: true,
        lb: false,
        proxy: false,
        media: false,
        mediator: false,
    };
    const LB: Self = Self {
        api: false,
        lb: true,
        proxy: false,
        media: false,
        mediator: false,
    };
    const PROXY: Self = Self {
        api: false,
        lb: false,
        proxy: true,
        media: false,
        mediator: false,
    };
    const MEDIA: Self = Self {
        api: false,
        lb: false,
        proxy: false,
        media: true,
        mediator: false,
    };
    const MEDIATOR: Self = Self {
        api: false,
        lb: false,
        proxy: false,
        media: false,
        mediator: true,
    };

    fn needs_store(self) -> bool {
        self.api || self.proxy || self.mediator
    }
}

fn run(runtime: &tokio::runtime::Runtime, args: ConfigArgs, components: Components) -> ExitCode {
    init_logging();
    match runtime.block_on(run_node(args, components)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal; log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// Start the components this node runs, print what listens where, and wait for SIGINT/SIGTERM.
async fn run_node(args: ConfigArgs, components: Components) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("data_dir: creating {}", config.data_dir.display()))?;
    let host = host_address(&config, &components);
    let database_url = config.database_url();
    let lb_reads_domains = components.lb && config.lb.domains.is_empty();
    let store = if components.needs_store() || lb_reads_domains {
        let store = store::Store::connect(&database_url)
            .await
            .with_context(|| {
                format!(
                    "database.url: connecting to {}",
                    without_password(&database_url)
                )
            })?;
        eprintln!("database:     {}", without_password(&database_url));
        Some(store)
    } else {
        None
    };

    let mut api = None;
    if let (true, Some(store)) = (components.api, &store) {
        api = Some(start_api(&config, store).await?);
    }

    // The relay first, so the proxy's first offer finds it.
    let mut relay = None;
    if components.media {
        relay = Some(start_media(&config, host).await?);
    }

    // The LB and the proxy each get a thread of their own: hops inside a component stay on
    // one thread, and the two can use two cores.
    let lb_thread = if components.lb {
        Some(sip_thread::SipThread::spawn("voxide-lb")?)
    } else {
        None
    };
    let proxy_thread = if components.proxy {
        Some(sip_thread::SipThread::spawn("voxide-proxy")?)
    } else {
        None
    };

    let mut proxy = None;
    if let (true, Some(store), Some(proxy_thread)) = (components.proxy, &store, &proxy_thread) {
        let handle = proxy_thread
            .run(proxy::start(config.proxy_config(), store.clone()))
            .await?
            .context("proxy.listen: starting the proxy")?;
        eprintln!("proxy:        udp {} (internal)", handle.local_addr());
        match config.media_relay_address() {
            Some(address) => eprintln!("proxy:        media relay ng {address}"),
            None => eprintln!("proxy:        media relay off (SDP passes untouched)"),
        }
        proxy = Some(handle);
    }

    let mut mediation = None;
    if let (true, Some(store)) = (components.mediator, &store) {
        let mediator_config = config.mediator_config();
        eprintln!(
            "mediator:     every {}s, answered calls without BYE closed after {}s",
            mediator_config.poll_interval.as_secs(),
            mediator_config.max_call_age.as_secs()
        );
        mediation = Some(mediator::spawn(store.clone(), mediator_config));
    }

    let mut lb = None;
    let mut domain_refresher = None;
    if components.lb {
        // Served from the first packet on, not only after the first refresh.
        let initial_domains = match (&store, lb_reads_domains) {
            (Some(store), true) => all_domains(store)
                .await
                .context("lb: reading the domains")?,
            _ => config.lb.domains.clone(),
        };
        let lb_thread = lb_thread.as_ref().expect("started for the LB");
        let lookup_store = store.as_ref().filter(|_| lb_reads_domains);
        let handle = start_lb(&config, host, initial_domains, lookup_store, lb_thread).await?;
        if lb_reads_domains && let Some(store) = &store {
            domain_refresher = Some(spawn_domain_refresher(
                store.clone(),
                &handle,
                Duration::from_secs(config.lb.domain_refresh_seconds),
            ));
        }
        lb = Some(handle);
    }

    eprintln!("ready");
    shutdown_signal().await;
    eprintln!("shutting down");
    if let Some(refresher) = domain_refresher {
        refresher.abort();
        let _ = refresher.await;
    }
    if let Some(lb) = lb {
        // The refresher held only a weak reference and has ended, so this is the last one.
        if let Ok(lb) = Arc::try_unwrap(lb) {
            lb.shutdown().await;
        }
    }
    if let Some(proxy) = proxy {
        proxy.shutdown().await;
    }
    drop(proxy_thread);
    drop(lb_thread);
    if let Some(relay) = relay {
        relay.shutdown().await;
    }
    if let Some(mediation) = mediation {
        mediation.shutdown().await;
    }
    if let Some(api) = api {
        api.shutdown();
        api.wait().await.context("provisioning API")?;
    }
    if let Some(store) = store {
        store.close().await;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
struct CdrArgs {
    #[command(subcommand)]
    command: CdrCommand,
}

#[derive(Debug, Subcommand)]
enum CdrCommand {
    /// Write not-yet-exported CDRs as CSV files (docs/cdr-export.md) and mark them exported.
    Export {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only CDRs that started at or after this UTC time: `2026-11-25`,
        /// `2026-11-25 10:00:00` or RFC 3339. Default: all.
        #[arg(long)]
        since: Option<String>,
        /// Directory for the files (created when missing).
        #[arg(long)]
        out: PathBuf,
    },
}

async fn cdr_command(args: CdrArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let CdrCommand::Export { config, since, out } = args.command;
    let since_ms = match since.as_deref() {
        Some(text) => mediator::export::parse_time(text)
            .map_err(|reason| anyhow::anyhow!("--since: {reason}"))?,
        None => 0,
    };
    let config = Config::load(config.config.as_deref())?;
    let database_url = config.database_url();
    let store = store::Store::connect(&database_url)
        .await
        .with_context(|| {
            format!(
                "database.url: connecting to {}",
                without_password(&database_url)
            )
        })?;
    let report = mediator::export(&store, since_ms, &out)
        .await
        .context("cdr export")?;
    store.close().await;
    let mut stdout = std::io::stdout().lock();
    for file in &report.files {
        writeln!(stdout, "{}", file.display())?;
    }
    writeln!(
        stdout,
        "exported {} CDRs into {} files",
        report.rows,
        report.files.len()
    )?;
    Ok(())
}

/// `url` with the password (between `user:` and `@`) replaced, for printing.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Start the media relay and print where it listens. Its timeout notices are only logged:
/// the proxy learns of ended calls over ng (`query`), as it would from any rtpengine.
async fn start_media(config: &Config, host: IpAddr) -> anyhow::Result<media::MediaRelay> {
    let media_config = config.media_config(host);
    let (address, advertised) = (
        media_config.media_bind_address,
        media_config.advertised_address,
    );
    let (port_min, port_max) = (media_config.port_min, media_config.port_max);
    let mut relay = media::MediaRelay::start(media_config)
        .await
        .context("media: starting the relay")?;
    if let Some(mut events) = relay.take_events() {
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                tracing::debug!(?event, "media relay event");
            }
        });
    }
    eprintln!("media:        ng udp {}", relay.ng_addr());
    eprintln!(
        "media:        rtp {address} ports {port_min}-{port_max}, advertised as {advertised}{}",
        if config.media.address.is_none() {
            " (set media.address to change)"
        } else {
            ""
        }
    );
    Ok(relay)
}

/// The host's own address for the settings left to default to it (`lb.public_address`,
/// `media.address`): the default-route interface's, so phones on other hosts reach the node;
/// 127.0.0.1 with one warning on a host without a default route, which then serves itself.
fn host_address(config: &Config, components: &Components) -> IpAddr {
    let keys = config.keys_defaulting_to_host_address(components.lb, components.media);
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if keys.is_empty() {
        return loopback;
    }
    match config::default_route_address() {
        Some(address) => address,
        None => {
            eprintln!(
                "warning: no default route: {} fall back to {loopback}, so only this host can \
                 reach the node; set them to serve other hosts",
                keys.join(" and ")
            );
            loopback
        }
    }
}

/// Bind the LB's listeners and print them.
async fn start_lb(
    config: &Config,
    host: IpAddr,
    domains: Vec<String>,
    lookup_store: Option<&store::Store>,
    sip_thread: &sip_thread::SipThread,
) -> anyhow::Result<Arc<lb::LbHandle>> {
    let advertised = config.lb_needs_advertised_address().then_some(host);
    let mut lb_config = config.lb_config(advertised);
    lb_config.domains = domains;
    if let Some(store) = lookup_store {
        // A request for a domain the list lacks asks the database once (created a moment ago?).
        let store = store.clone();
        lb_config.domain_lookup = Some(lb::DomainLookupFn::new(move |domain| {
            let store = store.clone();
            Box::pin(async move {
                use store::DomainRepository as _;
                store
                    .find_domain_by_name(&domain)
                    .await
                    .map(|found| found.is_some())
                    .map_err(|error| error.to_string())
            })
        }));
    }
    let handle = sip_thread
        .run(lb::start(lb_config))
        .await?
        .context("lb: starting the load-balancer")?;
    let shown = |address: Option<SocketAddr>| address.map(|address| address.to_string());
    for (transport, address) in [
        ("udp", shown(handle.udp)),
        ("tcp", shown(handle.tcp)),
        ("tls", shown(handle.tls)),
    ] {
        if let Some(address) = address {
            eprintln!("lb:           {transport} {address} (public)");
        }
    }
    eprintln!(
        "lb:           udp {} (internal, towards {})",
        handle.internal, config.lb.proxy
    );
    if let Some(advertised) = advertised {
        eprintln!("lb:           advertised as {advertised} (set lb.public_address to change)");
    }
    Ok(Arc::new(handle))
}

/// Keep the LB's served domains in step with the provisioning database, so a domain created
/// over the API is served without a restart.
fn spawn_domain_refresher(
    store: store::Store,
    lb: &Arc<lb::LbHandle>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let lb = Arc::downgrade(lb);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        let mut last = None;
        loop {
            ticker.tick().await;
            let Some(lb) = lb.upgrade() else { return };
            match all_domains(&store).await {
                Ok(domains) => {
                    if last.as_ref() != Some(&domains) {
                        tracing::info!(count = domains.len(), "lb: served domains updated");
                        lb.set_domains(domains.clone());
                        last = Some(domains);
                    }
                }
                Err(error) => tracing::warn!(%error, "lb: reading the domains failed"),
            }
        }
    })
}

async fn all_domains(store: &store::Store) -> Result<Vec<String>, store::StoreError> {
    use store::DomainRepository as _;
    const ROWS: u32 = 500;
    let filter = store::DomainFilter::default();
    let mut domains = Vec::new();
    for page in 1.. {
        let paged = store
            .list_domains(&filter, store::Page::new(page, ROWS))
            .await?;
        let count = paged.items.len();
        domains.extend(paged.items.into_iter().map(|domain| domain.domain));
        if count < ROWS as usize {
            break;
        }
    }
    Ok(domains)
}

/// Create the first administrator when there is none, then serve the REST API.
async fn start_api(
    config: &Config,
    store: &store::Store,
) -> anyhow::Result<provisioning::ApiServer> {
    let bootstrap = provisioning::bootstrap_admin(
        store,
        &config.data_dir,
        std::env::var(provisioning::ADMIN_PASSWORD_ENV).ok(),
    )
    .await
    .context("creating the first administrator")?;
    match &bootstrap {
        provisioning::Bootstrap::AlreadyPresent => {}
        provisioning::Bootstrap::CreatedFromEnvironment => {
            eprintln!(
                "admin: created `{}` with the password from VOXIDE_ADMIN_PASSWORD",
                store::INITIAL_ADMIN_LOGIN
            );
        }
        provisioning::Bootstrap::CreatedWithGeneratedPassword(path) => {
            eprintln!(
                "admin: created `{}`; its password is in {}",
                store::INITIAL_ADMIN_LOGIN,
                path.display()
            );
        }
    }
    let api_config = config.api_config();
    let scheme = if matches!(api_config.tls, provisioning::TlsMode::Plain) {
        "http"
    } else {
        "https"
    };
    let api = provisioning::bind(api_config, store.clone())
        .await
        .context("api.listen: starting the provisioning API")?;
    eprintln!("provisioning: {scheme}://{}/api/", api.local_addr());
    Ok(api)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn printed_database_urls_hide_the_password() {
        assert_eq!(
            without_password("mysql://voxide:s3cret@db.internal:3306/voxide"),
            "mysql://voxide:***@db.internal:3306/voxide"
        );
        assert_eq!(
            without_password("sqlite://./voxide-data/voxide.db?mode=rwc"),
            "sqlite://./voxide-data/voxide.db?mode=rwc"
        );
        assert_eq!(
            without_password("mysql://root@127.0.0.1:3306/test"),
            "mysql://root@127.0.0.1:3306/test"
        );
    }
}
