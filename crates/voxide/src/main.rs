//! The voxide binary: subcommands, configuration loading and wiring. No business logic lives
//! here; each component's crate owns its behaviour.

mod config;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::Config;

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
    /// Operator commands against the provisioning API.
    Admin(admin_cli::AdminArgs),
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
            admin_cli::main_with(args, &mut stdout, &mut stderr).await
        }),
        Command::Up(args) => run(&runtime, args, Components::ALL),
        Command::Provisioning(args) => run(&runtime, args, Components::API),
        Command::Lb(args) => run(&runtime, args, Components::LB),
        Command::Proxy(args) => run(&runtime, args, Components::PROXY),
    }
}

/// Which components one process runs.
#[derive(Debug, Clone, Copy)]
struct Components {
    api: bool,
    lb: bool,
    proxy: bool,
}

impl Components {
    const ALL: Self = Self { api: true, lb: true, proxy: true };
    const API: Self = Self { api: true, lb: false, proxy: false };
    const LB: Self = Self { api: false, lb: true, proxy: false };
    const PROXY: Self = Self { api: false, lb: false, proxy: true };

    fn needs_store(self) -> bool {
        self.api || self.proxy
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
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// Start the components this node runs, print what listens where, and wait for SIGINT/SIGTERM.
async fn run_node(args: ConfigArgs, components: Components) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("data_dir: creating {}", config.data_dir.display()))?;
    let database_url = config.database_url();
    let store = if components.needs_store() {
        let store = store::Store::connect(&database_url)
            .await
            .with_context(|| format!("database.url: connecting to {database_url}"))?;
        eprintln!("database:     {database_url}");
        Some(store)
    } else {
        None
    };

    let mut api = None;
    if let (true, Some(store)) = (components.api, &store) {
        api = Some(start_api(&config, store).await?);
    }

    eprintln!("ready");
    shutdown_signal().await;
    eprintln!("shutting down");
    if let Some(api) = api {
        api.shutdown();
        api.wait().await.context("provisioning API")?;
    }
    if let Some(store) = store {
        store.close().await;
    }
    Ok(())
}

/// Create the first administrator when there is none, then serve the REST API.
async fn start_api(config: &Config, store: &store::Store) -> anyhow::Result<provisioning::ApiServer> {
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
    let scheme = if matches!(api_config.tls, provisioning::TlsMode::Plain) { "http" } else { "https" };
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
