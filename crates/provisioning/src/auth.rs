//! HTTP Basic authentication (RFC 7617) of administrators, with failed-login throttling.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use store::prelude::*;

use crate::AppState;
use crate::problem::ApiError;

/// Environment variable holding the first administrator's password.
pub const ADMIN_PASSWORD_ENV: &str = "VOXIDE_ADMIN_PASSWORD";
/// File in the data directory that receives a generated first password.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

/// How long a verified login/password pair is trusted without running argon2 again. argon2 is
/// deliberately slow; re-verifying on every API call would cap the API at a few dozen requests
/// per second per core.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// Most verified pairs remembered (bounds memory).
const VERIFIED_CAPACITY: usize = 1024;

/// Recently verified credentials, keyed by a SHA-256 of login and password so no plain password
/// is kept in memory.
#[derive(Debug, Default)]
pub struct VerifiedLogins {
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

impl VerifiedLogins {
    fn key(login: &str, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(login.as_bytes());
        hasher.update([0u8]);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    fn is_fresh(&self, key: &[u8; 32], now: Instant) -> bool {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(key)
            .is_some_and(|verified_at| now.saturating_duration_since(*verified_at) < VERIFIED_TTL)
    }

    fn remember(&self, key: [u8; 32], now: Instant) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= VERIFIED_CAPACITY {
            entries.retain(|_, verified_at| {
                now.saturating_duration_since(*verified_at) < VERIFIED_TTL
            });
            if entries.len() >= VERIFIED_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, now);
    }
}

/// Decode `Authorization: Basic base64(login:password)` (RFC 7617 §2).
fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (login, password) = text.split_once(':')?;
    Some((login.to_owned(), password.to_owned()))
}

fn client_address(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Middleware: lets the request through only with valid administrator credentials.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    // Read what is needed up front: the request itself is not `Sync`, so it must not be
    // borrowed across an await.
    let address = client_address(&request);
    let credentials = basic_credentials(&request);
    match authenticate(&state, address, credentials).await {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn authenticate(
    state: &AppState,
    address: IpAddr,
    credentials: Option<(String, String)>,
) -> Result<(), ApiError> {
    let now = Instant::now();
    // Checked before the credentials so a blocked client learns nothing, right or wrong.
    if let Some(seconds) = state.login_limiter.blocked_for(address, now) {
        return Err(ApiError::too_many_requests(seconds));
    }
    let Some((login, password)) = credentials else {
        return Err(ApiError::unauthorized());
    };
    let key = VerifiedLogins::key(&login, &password);
    if state.verified_logins.is_fresh(&key, now) {
        return Ok(());
    }
    // The store runs a hash check for unknown logins too, so timing does not reveal which
    // logins exist (security.md A3: no user-existence oracle).
    let admin = state
        .store
        .verify_admin(&login, &password)
        .await
        .map_err(crate::resources::store_error)?;
    if admin.is_some() {
        state.login_limiter.record_success(address);
        state.verified_logins.remember(key, now);
        Ok(())
    } else {
        tracing::warn!(%address, login = %login, "provisioning API login failed");
        state.login_limiter.record_failure(address, now);
        Err(ApiError::unauthorized())
    }
}

/// Generate a random password of 24 URL-safe characters (about 143 bits).
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Why the first administrator could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The store refused.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Writing the password file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The password file.
        path: std::path::PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// What [`bootstrap_admin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// An administrator already existed; nothing changed.
    AlreadyPresent,
    /// Created with the password from `VOXIDE_ADMIN_PASSWORD`.
    CreatedFromEnvironment,
    /// Created with a generated password, written to this file (mode 0600).
    CreatedWithGeneratedPassword(std::path::PathBuf),
}

/// Create the first administrator ([`store::INITIAL_ADMIN_LOGIN`]) when there is none. The password comes from
/// `password_from_env` (pass `std::env::var(ADMIN_PASSWORD_ENV).ok()`), else one is generated and
/// written to `<data_dir>/admin-password`, readable by the owner only.
pub async fn bootstrap_admin(
    store: &store::Store,
    data_dir: &Path,
    password_from_env: Option<String>,
) -> Result<Bootstrap, BootstrapError> {
    if store.list_admins(store::Page::new(1, 1)).await?.total_count > 0 {
        return Ok(Bootstrap::AlreadyPresent);
    }
    let (password, outcome) = match password_from_env.filter(|password| !password.is_empty()) {
        Some(password) => (password, Bootstrap::CreatedFromEnvironment),
        None => {
            let password = generate_password();
            std::fs::create_dir_all(data_dir).map_err(|source| BootstrapError::Io {
                path: data_dir.to_owned(),
                source,
            })?;
            let path = data_dir.join(ADMIN_PASSWORD_FILE);
            crate::tls::write_private_file(&path, format!("{password}\n").as_bytes()).map_err(
                |source| BootstrapError::Io {
                    path: path.clone(),
                    source,
                },
            )?;
            (password, Bootstrap::CreatedWithGeneratedPassword(path))
        }
    };
    match store.ensure_initial_admin(&password).await? {
        Some(_) => Ok(outcome),
        // Another process created one between the check and the insert.
        None => Ok(Bootstrap::AlreadyPresent),
    }
}
