//! The voxide provisioning REST API: ngcp-panel resource shapes over HTTPS (port 1443 by
//! default), HTTP Basic authentication of administrators, RFC 9457 problem documents for every
//! error and an OpenAPI 3 description at `/api/openapi.json`.
//!
//! ```no_run
//! # async fn run(store: store::Store) -> Result<(), provisioning::ApiStartError> {
//! let config = provisioning::ApiConfig::new("/var/lib/voxide");
//! provisioning::serve(config, store, std::future::pending()).await
//! # }
//! ```

pub mod auth;
pub mod extract;
pub mod hal;
pub mod login_limiter;
pub mod problem;
pub mod resources;
pub mod tls;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

pub use auth::{
    ADMIN_PASSWORD_ENV, ADMIN_PASSWORD_FILE, Bootstrap, BootstrapError, bootstrap_admin,
};
pub use login_limiter::LoginLimit;
pub use problem::{ApiError, Problem};

/// Production port of the admin API (the C5 default).
pub const DEFAULT_API_PORT: u16 = 1443;

/// How the listener does TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Generate a self-signed certificate into this directory on first start and reuse it.
    SelfSigned {
        /// Where `api-cert.pem` and `api-key.pem` live.
        data_dir: PathBuf,
    },
    /// Operator-supplied PEM files.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// Plain HTTP. Only when configured explicitly, e.g. on loopback for tests.
    Plain,
}

/// Listener settings of the provisioning API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Address to listen on; port 0 picks a free port (see [`ApiServer::local_addr`]).
    pub listen: SocketAddr,
    /// TLS mode.
    pub tls: TlsMode,
    /// Directory for generated secrets (certificate, first admin password).
    pub data_dir: PathBuf,
    /// Failed-login throttling.
    pub login_limit: LoginLimit,
}

impl ApiConfig {
    /// Production defaults: all addresses, port 1443, self-signed TLS in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_API_PORT)),
            tls: TlsMode::SelfSigned {
                data_dir: data_dir.clone(),
            },
            data_dir,
            login_limit: LoginLimit::default(),
        }
    }
}

/// Why the API could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    /// Binding or serving the socket failed.
    #[error("listener {address}: {source}")]
    Listen {
        /// The configured address.
        address: SocketAddr,
        /// The failure.
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsSetupError),
}

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The provisioning database.
    pub store: store::Store,
    pub(crate) login_limiter: Arc<login_limiter::LoginLimiter>,
    pub(crate) verified_logins: Arc<auth::VerifiedLogins>,
}

/// Build the API router (all routes, authentication, OpenAPI document) for `store`.
pub fn router(store: store::Store, login_limit: LoginLimit) -> Router {
    let state = AppState {
        store,
        login_limiter: Arc::new(login_limiter::LoginLimiter::new(login_limit)),
        verified_logins: Arc::new(auth::VerifiedLogins::default()),
    };
    resources::router(state)
}

/// A running API listener.
#[derive(Debug)]
pub struct ApiServer {
    local_addr: SocketAddr,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ApiServer {
    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Ask the server to stop accepting and finish open requests.
    pub fn shutdown(&self) {
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    }

    /// Wait until the server has stopped.
    pub async fn wait(self) -> Result<(), ApiStartError> {
        let address = self.local_addr;
        let outcome = self.task.await.map_err(|join| ApiStartError::Listen {
            address,
            source: std::io::Error::other(join.to_string()),
        })?;
        outcome.map_err(|source| ApiStartError::Listen { address, source })
    }
}

/// Bind the listener and start serving in a background task.
pub async fn bind(config: ApiConfig, store: store::Store) -> Result<ApiServer, ApiStartError> {
    let listen_error = |source| ApiStartError::Listen {
        address: config.listen,
        source,
    };
    let app = router(store, config.login_limit);
    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let listener = std::net::TcpListener::bind(config.listen).map_err(listen_error)?;
    listener.set_nonblocking(true).map_err(listen_error)?;
    let local_addr = listener.local_addr().map_err(listen_error)?;
    let handle = Handle::new();
    let task = match &config.tls {
        TlsMode::Plain => {
            let server = axum_server::from_tcp(listener)
                .map_err(listen_error)?
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(make_service).await })
        }
        TlsMode::SelfSigned { data_dir } => {
            let (cert, key) = tls::ensure_self_signed(data_dir)?;
            let rustls = RustlsConfig::from_config(Arc::new(tls::server_config(&cert, &key)?));
            let server = axum_server::tls_rustls::from_tcp_rustls(listener, rustls)
                .map_err(listen_error)?
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(make_service).await })
        }
        TlsMode::Files { cert, key } => {
            let rustls = RustlsConfig::from_config(Arc::new(tls::server_config(cert, key)?));
            let server = axum_server::tls_rustls::from_tcp_rustls(listener, rustls)
                .map_err(listen_error)?
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(make_service).await })
        }
    };
    tracing::info!(%local_addr, tls = !matches!(config.tls, TlsMode::Plain), "provisioning API listening");
    Ok(ApiServer {
        local_addr,
        handle,
        task,
    })
}

/// Serve until `shutdown` completes, then stop gracefully.
pub async fn serve(
    config: ApiConfig,
    store: store::Store,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiStartError> {
    let server = bind(config, store).await?;
    shutdown.await;
    server.shutdown();
    server.wait().await
}
