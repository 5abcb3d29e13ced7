//! Digest authentication of subscribers against the provisioning store (RFC 3261 §22.2–§22.4,
//! RFC 8760 algorithms, RFC 7616 challenges).
//!
//! REGISTER is challenged with 401 and `WWW-Authenticate` (RFC 3261 §22.2), every other request
//! with 407 and `Proxy-Authenticate` (§22.3). The realm is the subscriber's domain: the To domain
//! of a REGISTER (the address-of-record being bound) and the From domain otherwise.
//!
//! Algorithms: MD5 alone by default (what Kamailio and Asterisk do, and the only algorithm
//! baresip 1.0, SIPp 3.6 and sipvicious answer). The `digest_algorithms` preference
//! (subscriber over customer over domain) offers SHA-256, alone or before MD5 (RFC 8760 §2.4);
//! only the algorithms offered are accepted in the answer.
//!
//! Nonces are stateless HMACs bound to the source IP of the request, so a nonce captured from one
//! address is useless from another.
//!
//! Not leaking who exists: an unknown user or domain gets exactly what a wrong password gets —
//! a fresh challenge, and 403 once the same source has failed too often for that username. Only
//! after the password was proven does a locked or terminated subscriber learn it is refused (403).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use sip_core::auth::{
    DigestAlgorithm, DigestAuthenticator, DigestPolicy, DigestResponse, RequestToAuthenticate,
    StoredCredentials, Verification,
};
use sip_message::{HeaderName, Message, Method};

use crate::preference_gate::PreferenceGate;
use crate::reply::local_response;
use store::{Store, SubscriberRepository};

/// How authentication behaves beyond the digest rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationPolicy {
    /// Nonce lifetime, algorithms offered, uri check (see [`DigestPolicy`]).
    pub digest: DigestPolicy,
    /// Failed attempts from one source IP for one username and realm before the answer becomes
    /// 403 instead of a new challenge (brute-force brake; 0 disables it).
    pub max_failures: u32,
    /// Seconds after the first failure at which the count starts over.
    pub failure_window_seconds: u64,
    /// How long the answer to "does any domain, customer or subscriber set
    /// `digest_algorithms`?" is trusted before the database is asked again (while none does,
    /// no request looks the preference up). At most one second (ARCHITECTURE.md invariant 7).
    pub preference_recheck: std::time::Duration,
}

impl Default for AuthenticationPolicy {
    fn default() -> Self {
        Self {
            // MD5 alone: every phone in the field answers it; SHA-256 per preference.
            digest: DigestPolicy {
                offered_algorithms: vec![DigestAlgorithm::Md5],
                ..DigestPolicy::default()
            },
            max_failures: 5,
            failure_window_seconds: 300,
            preference_recheck: std::time::Duration::from_secs(1),
        }
    }
}

/// The subscriber a request proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedSubscriber {
    /// Subscriber row id.
    pub id: i64,
    /// Stable UUID (CDR `user_id`).
    pub uuid: String,
    /// SIP username (the digest username).
    pub username: String,
    /// Domain (the realm), lower case.
    pub domain: String,
    /// Owning customer.
    pub customer_id: i64,
}

/// What to do with a request after [`Authenticator::authenticate`].
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    /// The credentials are right and the subscriber is active.
    Authenticated(AuthenticatedSubscriber),
    /// Send this 401/407 with fresh challenges.
    Challenge(Message),
    /// Send this final refusal (403 after too many failures or for a locked/terminated
    /// subscriber, 400 when the request names no usable realm).
    Rejected(Message),
}

/// Key of the failure counter: who tries which account.
type FailureKey = (IpAddr, String, String);

#[derive(Debug, Clone, Copy)]
struct FailureCount {
    failures: u32,
    first_failure_unix: u64,
}

/// Most failure counters kept at once; beyond this the oldest windows are dropped first.
const MAX_FAILURE_ENTRIES: usize = 100_000;

/// Challenges and verifies subscribers; shared by the registrar and the call router.
#[derive(Debug)]
pub struct Authenticator {
    digest: Mutex<DigestAuthenticator>,
    store: Store,
    policy: AuthenticationPolicy,
    failures: Mutex<HashMap<FailureKey, FailureCount>>,
    /// Whether any `digest_algorithms` preference exists, rechecked per `preference_recheck`.
    digest_preferences: PreferenceGate,
}

impl Authenticator {
    /// An authenticator whose nonces are keyed by `secret` (share it between proxies that
    /// accept each other's nonces).
    pub fn new(store: Store, secret: [u8; 32], policy: AuthenticationPolicy) -> Self {
        let recheck = policy.preference_recheck;
        let digest = DigestAuthenticator::new(&secret, policy.digest.clone())
            .expect("a 32-byte secret is longer than the 16-byte minimum");
        Self {
            digest: Mutex::new(digest),
            store,
            policy,
            failures: Mutex::new(HashMap::new()),
            digest_preferences: PreferenceGate::new("digest_algorithms", recheck),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &AuthenticationPolicy {
        &self.policy
    }

    /// Authenticates `request` received from `source` at `now_unix`: 401 for REGISTER
    /// (WWW-Authenticate), 407 otherwise (Proxy-Authenticate); realm = the To (REGISTER) or
    /// From domain.
    pub async fn authenticate(
        &self,
        request: &Message,
        source: SocketAddr,
        now_unix: u64,
    ) -> AuthOutcome {
        let is_register = request.method() == Some(&Method::Register);
        let (identity_user, realm) = match identity_of(request, is_register) {
            Ok(identity) => identity,
            Err(reason) => {
                return AuthOutcome::Rejected(
                    local_response(request, 400, &format!("Bad Request - {reason}")).build(),
                );
            }
        };
        let source_ip = source.ip().to_string();
        let binding: [&[u8]; 1] = [source_ip.as_bytes()];

        let credentials = credentials_for_realm(request, is_register, &realm);
        // The algorithms of the account the credentials name (or the request claims to be).
        let account = credentials
            .as_ref()
            .map_or(identity_user.as_str(), |credentials| &credentials.username);
        let algorithms = self.algorithms_for(account, &realm).await;
        let Some(credentials) = credentials else {
            return self.challenge(
                request,
                is_register,
                &realm,
                &binding,
                &algorithms,
                false,
                now_unix,
            );
        };
        if credentials.userhash {
            // We never offer userhash (RFC 7616 §3.4.4), so such an answer cannot be ours.
            return self.failed(
                request,
                is_register,
                &realm,
                &binding,
                &algorithms,
                source.ip(),
                &credentials.username,
                now_unix,
            );
        }
        let row = match self
            .store
            .find_sip_credentials(&credentials.username, &realm)
            .await
        {
            Ok(row) => row,
            Err(error) => {
                tracing::error!(%error, "subscriber lookup for authentication failed");
                return AuthOutcome::Rejected(
                    local_response(request, 500, "Server Internal Error")
                        .header(HeaderName::RetryAfter, "5")
                        .build(),
                );
            }
        };
        let Some(store::SipCredentials {
            subscriber_id: id,
            uuid,
            customer_id,
            ha1_md5,
            ha1_sha256,
            status,
        }) = row
        else {
            return self.failed(
                request,
                is_register,
                &realm,
                &binding,
                &algorithms,
                source.ip(),
                &credentials.username,
                now_unix,
            );
        };
        let stored = StoredCredentials {
            ha1_md5: Some(ha1_md5),
            ha1_sha256: Some(ha1_sha256),
            ha1_sha512_256: None,
        };
        let method = match request.method() {
            Some(method) => String::from_utf8_lossy(method.as_bytes()).into_owned(),
            None => String::new(),
        };
        let request_uri = String::from_utf8_lossy(request.request_uri_bytes().unwrap_or_default());
        let body = request.body();
        let to_check = RequestToAuthenticate {
            method: &method,
            request_uri: &request_uri,
            body: &body,
            realm: &realm,
            binding: &binding,
        };
        let verification = self
            .digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .verify_offering(&algorithms, &to_check, &credentials, &stored, now_unix);
        match verification {
            Verification::Verified => {
                self.forget_failures(source.ip(), &credentials.username, &realm);
                if status != store::SubscriberStatus::Active {
                    tracing::info!(username = %credentials.username, %realm, %status, "refused: subscriber not active");
                    return AuthOutcome::Rejected(
                        local_response(request, 403, "Forbidden").build(),
                    );
                }
                AuthOutcome::Authenticated(AuthenticatedSubscriber {
                    id,
                    uuid,
                    username: credentials.username,
                    domain: realm,
                    customer_id,
                })
            }
            Verification::Stale => self.challenge(
                request,
                is_register,
                &realm,
                &binding,
                &algorithms,
                true,
                now_unix,
            ),
            Verification::Rejected(reason) => {
                tracing::info!(username = %credentials.username, %realm, %source, %reason, "digest refused");
                self.failed(
                    request,
                    is_register,
                    &realm,
                    &binding,
                    &algorithms,
                    source.ip(),
                    &credentials.username,
                    now_unix,
                )
            }
        }
    }

    /// The digest algorithms to offer `username` in `realm`: the `digest_algorithms`
    /// preference (subscriber, customer or domain), else the configured ones.
    async fn algorithms_for(&self, username: &str, realm: &str) -> Vec<DigestAlgorithm> {
        if !self.digest_preferences.any_set(&self.store).await {
            return self.policy.digest.offered_algorithms.clone();
        }
        match self.store.find_digest_algorithms(username, realm).await {
            Ok(Some(names)) => match parse_digest_algorithms(&names) {
                Some(algorithms) => return algorithms,
                None => {
                    tracing::warn!(%realm, value = %names, "unusable digest_algorithms preference")
                }
            },
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "digest_algorithms preference lookup failed"),
        }
        self.policy.digest.offered_algorithms.clone()
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "internal helper carrying the request context"
    )]
    fn challenge(
        &self,
        request: &Message,
        is_register: bool,
        realm: &str,
        binding: &[&[u8]],
        algorithms: &[DigestAlgorithm],
        stale: bool,
        now_unix: u64,
    ) -> AuthOutcome {
        let values = self
            .digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .challenges_offering(
                algorithms,
                realm,
                binding,
                stale,
                now_unix,
                &mut rand::rng(),
            );
        let values = match values {
            Ok(values) => values,
            Err(error) => {
                // Only a realm with characters a quoted-string cannot carry gets here.
                tracing::info!(%error, %realm, "cannot challenge in this realm");
                return AuthOutcome::Rejected(
                    local_response(request, 400, "Bad Request - unusable realm").build(),
                );
            }
        };
        let (status, reason, header) = if is_register {
            (401, "Unauthorized", HeaderName::WwwAuthenticate)
        } else {
            (
                407,
                "Proxy Authentication Required",
                HeaderName::ProxyAuthenticate,
            )
        };
        let mut builder = local_response(request, status, reason);
        for value in values {
            builder = builder.header(header.clone(), value);
        }
        AuthOutcome::Challenge(builder.build())
    }

    /// A wrong password, unknown user or unusable credentials: challenge again, or 403 once
    /// this source has failed `max_failures` times for the username within the window.
    #[allow(
        clippy::too_many_arguments,
        reason = "internal helper carrying the request context"
    )]
    fn failed(
        &self,
        request: &Message,
        is_register: bool,
        realm: &str,
        binding: &[&[u8]],
        algorithms: &[DigestAlgorithm],
        source_ip: IpAddr,
        username: &str,
        now_unix: u64,
    ) -> AuthOutcome {
        if self.record_failure(source_ip, username, realm, now_unix) {
            return AuthOutcome::Rejected(local_response(request, 403, "Forbidden").build());
        }
        self.challenge(
            request,
            is_register,
            realm,
            binding,
            algorithms,
            false,
            now_unix,
        )
    }

    /// Counts a failure; true when the limit is reached.
    fn record_failure(
        &self,
        source_ip: IpAddr,
        username: &str,
        realm: &str,
        now_unix: u64,
    ) -> bool {
        if self.policy.max_failures == 0 {
            return false;
        }
        let window = self.policy.failure_window_seconds;
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= MAX_FAILURE_ENTRIES {
            failures.retain(|_, count| now_unix.saturating_sub(count.first_failure_unix) < window);
            if failures.len() >= MAX_FAILURE_ENTRIES {
                failures.clear();
            }
        }
        let count = failures
            .entry((source_ip, username.to_owned(), realm.to_owned()))
            .or_insert(FailureCount {
                failures: 0,
                first_failure_unix: now_unix,
            });
        if now_unix.saturating_sub(count.first_failure_unix) >= window {
            *count = FailureCount {
                failures: 0,
                first_failure_unix: now_unix,
            };
        }
        count.failures = count.failures.saturating_add(1);
        count.failures > self.policy.max_failures
    }

    fn forget_failures(&self, source_ip: IpAddr, username: &str, realm: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(source_ip, username.to_owned(), realm.to_owned()));
    }
}

/// Who a request claims to be and the realm it authenticates in: the To user and domain of a
/// REGISTER, the From user and domain otherwise.
fn identity_of(request: &Message, is_register: bool) -> Result<(String, String), &'static str> {
    let address = if is_register {
        request.to().map_err(|_| "malformed To")?
    } else {
        request.from().map_err(|_| "malformed From")?
    };
    // The realm is the domain as provisioned (an IPv6 host in brackets, canonical).
    let host = address.uri.host.domain_name().ok_or("host is not UTF-8")?;
    if host.is_empty() {
        return Err("no domain to authenticate in");
    }
    let user = address
        .uri
        .user
        .as_ref()
        .map(|user| String::from_utf8_lossy(user).into_owned())
        .unwrap_or_default();
    Ok((user, host))
}

/// A `digest_algorithms` value (`"SHA-256,MD5"`) as algorithms in order; `None` when it names
/// none or one whose HA1 the store does not keep.
pub fn parse_digest_algorithms(names: &str) -> Option<Vec<DigestAlgorithm>> {
    let mut algorithms = Vec::new();
    for name in names.split(',').map(str::trim) {
        let algorithm = match name.to_ascii_uppercase().as_str() {
            "MD5" => DigestAlgorithm::Md5,
            "SHA-256" => DigestAlgorithm::Sha256,
            _ => return None,
        };
        if !algorithms.contains(&algorithm) {
            algorithms.push(algorithm);
        }
    }
    (!algorithms.is_empty()).then_some(algorithms)
}

/// The Digest credentials for `realm` (a request may carry others for other proxies,
/// RFC 3261 §22.3); unreadable ones are skipped.
fn credentials_for_realm(
    request: &Message,
    is_register: bool,
    realm: &str,
) -> Option<DigestResponse> {
    let header = if is_register {
        HeaderName::Authorization
    } else {
        HeaderName::ProxyAuthorization
    };
    request
        .header_values(&header)
        .filter_map(|value| std::str::from_utf8(value).ok())
        .filter_map(|value| DigestResponse::parse(value).ok())
        .find(|credentials| credentials.realm.eq_ignore_ascii_case(realm))
}

/// Removes the `Proxy-Authorization` and `Authorization` lines answering `realm` (the ones this
/// proxy checked), as Kamailio's `consume_credentials()` does: the next hop must never see a
/// digest response and nonce it could attack offline. Credentials for other realms stay.
pub fn consume_credentials(request: &mut Message, realm: &str) {
    for header in [HeaderName::ProxyAuthorization, HeaderName::Authorization] {
        request.remove_header_where(&header, |value| {
            std::str::from_utf8(value)
                .ok()
                .and_then(|value| DigestResponse::parse(value).ok())
                .is_some_and(|credentials| credentials.realm.eq_ignore_ascii_case(realm))
        });
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn invite_with(credentials: &[&str]) -> Message {
        let mut text = String::from(
            "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n\
             Call-ID: c\r\nCSeq: 1 INVITE\r\nFrom: <sip:alice@a.example>;tag=1\r\n\
             To: <sip:bob@b.example>\r\nMax-Forwards: 70\r\n",
        );
        for realm in credentials {
            text.push_str(&format!(
                "Proxy-Authorization: Digest username=\"alice\", realm=\"{realm}\", \
                 nonce=\"abc\", uri=\"sip:bob@b.example\", response=\"0123456789abcdef0123456789abcdef\"\r\n"
            ));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(Bytes::from(text)).unwrap()
    }

    #[test]
    fn credentials_for_our_realm_are_consumed_and_others_pass() {
        let mut request = invite_with(&["A.example", "carrier.example"]);
        consume_credentials(&mut request, "a.example");
        let left: Vec<String> = request
            .header_values(&HeaderName::ProxyAuthorization)
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].contains("realm=\"carrier.example\""));

        let mut only_ours = invite_with(&["a.example"]);
        consume_credentials(&mut only_ours, "a.example");
        assert!(!only_ours.has_header(&HeaderName::ProxyAuthorization));
    }

    #[test]
    fn digest_algorithm_preference_values() {
        use DigestAlgorithm::{Md5, Sha256};
        assert_eq!(parse_digest_algorithms("MD5"), Some(vec![Md5]));
        assert_eq!(parse_digest_algorithms("SHA-256"), Some(vec![Sha256]));
        assert_eq!(
            parse_digest_algorithms("sha-256, MD5"),
            Some(vec![Sha256, Md5])
        );
        assert_eq!(parse_digest_algorithms("MD5,MD5"), Some(vec![Md5]));
        assert_eq!(parse_digest_algorithms("SHA-512-256"), None);
        assert_eq!(parse_digest_algorithms(""), None);
    }
}
