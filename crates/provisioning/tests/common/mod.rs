//! Test harness: a real API server on 127.0.0.1 port 0 over a real database (SQLite in a
//! temporary directory, or a fresh uniquely named MariaDB database dropped afterwards), driven
//! by a real HTTP client.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use provisioning::{ApiConfig, ApiServer, LoginLimit, TlsMode};
use reqwest_ring as reqwest;
use serde_json::Value;

pub const ADMIN_LOGIN: &str = store::INITIAL_ADMIN_LOGIN;
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// Which database backs a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MariaDb,
}

/// Drops a MariaDB test database when the test ends, also when it panics.
struct MariaDbGuard {
    name: String,
}

impl Drop for MariaDbGuard {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A fresh runtime on its own thread: Drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(pool) = sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/").await {
                    // The name is built by this harness from digits only; DDL takes no binds.
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS `{name}`"
                    )))
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// A running API with its store, a client and where to reach it.
pub struct Harness {
    pub server: ApiServer,
    pub store: store::Store,
    pub client: reqwest::Client,
    pub base: String,
    pub data_dir: tempfile::TempDir,
    _mariadb: Option<MariaDbGuard>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A rustls client configuration with the ring provider trusting `roots`.
pub fn client_tls(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

pub fn http_client(roots: rustls::RootCertStore) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(client_tls(roots))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Skip MariaDB only when explicitly told to; otherwise an unreachable server fails the test.
pub fn mariadb_skipped() -> bool {
    std::env::var("VOXIDE_SKIP_MARIADB").is_ok_and(|value| value == "1")
}

pub async fn open_store(
    backend: Backend,
    data_dir: &std::path::Path,
) -> (store::Store, Option<String>) {
    match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}?mode=rwc", data_dir.join("voxide.db").display());
            (
                store::Store::connect(&url).await.expect("sqlite store"),
                None,
            )
        }
        Backend::MariaDb => {
            let name = format!(
                "voxide_api_{}_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
                rand::random::<u32>()
            );
            let url = format!("mysql://root@127.0.0.1:3306/{name}");
            let store = store::Store::connect(&url)
                .await
                .expect("MariaDB at 127.0.0.1:3306 (root, no password) must be reachable; set VOXIDE_SKIP_MARIADB=1 to skip");
            (store, Some(name))
        }
    }
}

pub async fn start_with(backend: Backend, tls: Option<()>, login_limit: LoginLimit) -> Harness {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let (store, mariadb) = open_store(backend, data_dir.path()).await;
    let guard = mariadb.map(|name| MariaDbGuard { name });
    provisioning::bootstrap_admin(&store, data_dir.path(), Some(ADMIN_PASSWORD.to_owned()))
        .await
        .expect("bootstrap admin");
    let tls_mode = match tls {
        Some(()) => TlsMode::SelfSigned {
            data_dir: data_dir.path().to_owned(),
        },
        None => TlsMode::Plain,
    };
    let config = ApiConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        tls: tls_mode.clone(),
        data_dir: data_dir.path().to_owned(),
        login_limit,
    };
    let server = provisioning::bind(config, store.clone())
        .await
        .expect("bind");
    let (client, base) = match tls_mode {
        TlsMode::Plain => (
            http_client(rustls::RootCertStore::empty()),
            format!("http://{}", server.local_addr()),
        ),
        _ => {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let cert_path = data_dir
                .path()
                .join(provisioning::tls::SELF_SIGNED_CERT_FILE);
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&cert_path).expect("cert file") {
                roots.add(cert.expect("cert")).expect("add root");
            }
            (
                http_client(roots),
                format!("https://localhost:{}", server.local_addr().port()),
            )
        }
    };
    Harness {
        server,
        store,
        client,
        base,
        data_dir,
        _mariadb: guard,
    }
}

pub async fn start(backend: Backend) -> Harness {
    start_with(backend, None, LoginLimit::default()).await
}

/// A response read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text))
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// The id at the end of `Location`.
    pub fn created_id(&self) -> i64 {
        assert_eq!(
            self.status, 201,
            "expected 201, got {}: {}",
            self.status, self.text
        );
        self.location()
            .rsplit('/')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no id in Location '{}'", self.location()))
    }

    /// Assert a problem document with this status and, when given, this `field`.
    pub fn assert_problem(&self, status: u16, field: Option<&str>) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert!(
            self.content_type().starts_with("application/problem+json"),
            "content type {} for {}",
            self.content_type(),
            self.text
        );
        let problem = self.json();
        assert_eq!(problem["status"], status);
        assert_eq!(problem["code"], status);
        assert!(problem["type"].is_string() && problem["title"].is_string());
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|detail| !detail.is_empty())
        );
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "problem {problem}");
        }
        problem
    }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Reply {
            status,
            headers,
            text,
        }
    }

    pub fn authed(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .basic_auth(ADMIN_LOGIN, Some(ADMIN_PASSWORD))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.authed(reqwest::Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.authed(reqwest::Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(
            self.authed(reqwest::Method::POST, path)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(
            self.authed(reqwest::Method::PUT, path)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn patch(&self, path: &str, operations: &Value) -> Reply {
        self.send(
            self.authed(reqwest::Method::PATCH, path)
                .header("content-type", "application/json-patch+json")
                .body(operations.to_string()),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.send(
            self.authed(reqwest::Method::POST, path)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }
}

/// Run one async scenario against SQLite and MariaDB as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let harness = common::start(common::Backend::Sqlite).await;
                super::$scenario(&harness).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                if common::mariadb_skipped() {
                    return;
                }
                let harness = common::start(common::Backend::MariaDb).await;
                super::$scenario(&harness).await;
            }
        }
    };
}
