//! Server side: challenges and verification (RFC 3261 §22.2–§22.3, RFC 7616 §3.3–§3.5,
//! RFC 8760 §2).

use rand_core::RngCore;

use super::algorithm::{DigestAlgorithm, HashFunction};
use super::challenge::DigestChallenge;
use super::credentials::DigestResponse;
use super::hashing::{QualityOfProtection, ResponseInput, compute_response, constant_time_equal};
use super::nonce::{NonceDefect, NonceIssuer, NonceSecretTooShort, NonceStatus};
use super::parameters::{DigestSyntaxError, HeaderValueError};
use super::replay::{NonceCountCheck, NonceCountTracker};

/// How strict the server is and what it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestPolicy {
    /// Seconds a nonce stays fresh (Kamailio `nonce_expire`, default 300).
    pub nonce_lifetime_seconds: u64,
    /// Algorithms offered, one challenge each, in this order (RFC 8760 §2.4: the
    /// preferred, SHA-256, first). Answers with other algorithms are rejected.
    pub offered_algorithms: Vec<DigestAlgorithm>,
    /// Accept RFC 2069 answers without `qop` (no cnonce, no nonce-count, hence no
    /// replay protection). Off by default.
    pub accept_without_quality_of_protection: bool,
    /// Require the credentials' `uri` to equal the Request-URI (RFC 3261 §22.4).
    pub require_uri_match: bool,
    /// `opaque` to send and to require back unchanged; none by default.
    pub opaque: Option<String>,
    /// Most nonces whose nonce-counts are remembered at once.
    pub replay_tracker_capacity: usize,
}

impl Default for DigestPolicy {
    fn default() -> Self {
        Self {
            nonce_lifetime_seconds: 300,
            offered_algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            accept_without_quality_of_protection: false,
            require_uri_match: true,
            opaque: None,
            replay_tracker_capacity: 65_536,
        }
    }
}

/// The stored secrets for one username and realm: HA1 values as lowercase hex, never the
/// password (C5 keeps MD5 HA1 in `ha1`; RFC 8760 adds the SHA-256 one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredCredentials {
    /// `MD5(username:realm:password)`.
    pub ha1_md5: Option<String>,
    /// `SHA-256(username:realm:password)`.
    pub ha1_sha256: Option<String>,
    /// `SHA-512/256(username:realm:password)`.
    pub ha1_sha512_256: Option<String>,
}

impl StoredCredentials {
    /// Every HA1 value for a password, as provisioning stores them.
    pub fn from_password(username: &str, realm: &str, password: &str) -> Self {
        let ha1 = |hash_function| Some(super::hash_a1(hash_function, username, realm, password));
        Self {
            ha1_md5: ha1(HashFunction::Md5),
            ha1_sha256: ha1(HashFunction::Sha256),
            ha1_sha512_256: ha1(HashFunction::Sha512_256),
        }
    }

    fn ha1_for(&self, hash_function: HashFunction) -> Option<&str> {
        match hash_function {
            HashFunction::Md5 => self.ha1_md5.as_deref(),
            HashFunction::Sha256 => self.ha1_sha256.as_deref(),
            HashFunction::Sha512_256 => self.ha1_sha512_256.as_deref(),
        }
    }
}

/// The request being authenticated.
#[derive(Debug, Clone, Copy)]
pub struct RequestToAuthenticate<'a> {
    /// The method from the request line; RFC 3261 §22.4 hashes it, not the CSeq method.
    pub method: &'a str,
    /// The Request-URI exactly as in the request line.
    pub request_uri: &'a str,
    /// The message body, hashed only for `qop=auth-int`.
    pub body: &'a [u8],
    /// The realm this request must authenticate in (e.g. the From domain).
    pub realm: &'a str,
    /// The values the nonce was bound to when issued (e.g. source IP, Call-ID).
    pub binding: &'a [&'a [u8]],
}

/// Why credentials were refused. Each is answered with a new challenge (or 403 after
/// repeated failures); the variants are for logs and brute-force counting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectionReason {
    /// The header value could not be read as Digest credentials.
    #[error("malformed credentials: {0}")]
    Malformed(DigestSyntaxError),
    /// A parameter needed for the chosen qop or algorithm is absent.
    #[error("required parameter `{name}` is missing")]
    MissingParameter {
        /// The parameter name.
        name: &'static str,
    },
    /// The credentials are for another protection space.
    #[error("realm `{received}` does not match `{expected}`")]
    RealmMismatch {
        /// The realm the request must use.
        expected: String,
        /// The realm in the credentials.
        received: String,
    },
    /// Algorithm unknown or not offered by the policy.
    #[error("algorithm `{name}` is not accepted")]
    UnsupportedAlgorithm {
        /// The algorithm as received.
        name: String,
    },
    /// A `qop` other than `auth` / `auth-int`.
    #[error("qop `{value}` is not supported")]
    UnsupportedQualityOfProtection {
        /// The qop as received.
        value: String,
    },
    /// No `qop` and the policy requires one.
    #[error("qop is required")]
    QualityOfProtectionRequired,
    /// `nc` is not 8 hex digits.
    #[error("nonce-count `{value}` is not 8 hex digits")]
    MalformedNonceCount {
        /// The nc as received.
        value: String,
    },
    /// The digest-uri names another resource than the Request-URI (RFC 3261 §22.4).
    #[error("digest uri `{digest_uri}` differs from the Request-URI `{request_uri}`")]
    UriMismatch {
        /// The Request-URI of the request.
        request_uri: String,
        /// The `uri` of the credentials.
        digest_uri: String,
    },
    /// `opaque` was not returned unchanged.
    #[error("opaque does not match the challenge")]
    OpaqueMismatch,
    /// The nonce is not one we issued for this binding (forged, altered, other source).
    #[error("nonce rejected: {0}")]
    InvalidNonce(NonceDefect),
    /// The subscriber has no stored HA1 for this algorithm's hash function.
    #[error("no stored HA1 for {algorithm}")]
    NoStoredHash {
        /// The algorithm the client used.
        algorithm: DigestAlgorithm,
    },
    /// `response` is not a hex digest of the right length.
    #[error("response is not a {expected_length}-digit hex digest")]
    MalformedResponse {
        /// Hex digits the algorithm produces.
        expected_length: usize,
    },
    /// The digest does not match: wrong password (or wrong username/HA1).
    #[error("response does not match (wrong password)")]
    WrongResponse,
    /// A nonce-count already used with this nonce.
    #[error("nonce-count {nonce_count} replayed (highest seen {highest_seen})")]
    ReplayedNonceCount {
        /// The count received.
        nonce_count: u32,
        /// The highest count seen for the nonce.
        highest_seen: u32,
    },
}

/// The outcome of [`DigestAuthenticator::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The client knows the password and the request is not a replay.
    Verified,
    /// The digest is right but the nonce expired (or its count history was forgotten):
    /// challenge again with `stale=true` (RFC 7616 §3.3) so the client retries silently.
    Stale,
    /// Refused; challenge again without `stale`.
    Rejected(RejectionReason),
}

/// Issues challenges and verifies credentials; holds the nonce secret and the
/// nonce-count tracker. Clock and randomness come from the caller.
#[derive(Debug, Clone)]
pub struct DigestAuthenticator {
    policy: DigestPolicy,
    nonces: NonceIssuer,
    nonce_counts: NonceCountTracker,
}

impl DigestAuthenticator {
    /// An authenticator whose nonces are keyed by `secret` (at least 16 bytes, shared
    /// by all nodes that verify each other's nonces).
    pub fn new(secret: &[u8], policy: DigestPolicy) -> Result<Self, NonceSecretTooShort> {
        let nonces = NonceIssuer::new(secret, policy.nonce_lifetime_seconds)?;
        let nonce_counts = NonceCountTracker::new(
            policy.replay_tracker_capacity,
            policy.nonce_lifetime_seconds,
        );
        Ok(Self {
            policy,
            nonces,
            nonce_counts,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &DigestPolicy {
        &self.policy
    }

    /// The nonce-count tracker, e.g. to report its size.
    pub fn nonce_counts(&self) -> &NonceCountTracker {
        &self.nonce_counts
    }

    /// The WWW-Authenticate (401) or Proxy-Authenticate (407) header values, one per
    /// offered algorithm in policy order, sharing one fresh nonce bound to `binding`.
    /// `stale` marks the answer to a [`Verification::Stale`] outcome.
    pub fn challenges(
        &self,
        realm: &str,
        binding: &[&[u8]],
        stale: bool,
        now: u64,
        random: &mut dyn RngCore,
    ) -> Result<Vec<String>, HeaderValueError> {
        self.challenges_offering(
            &self.policy.offered_algorithms,
            realm,
            binding,
            stale,
            now,
            random,
        )
    }

    /// [`DigestAuthenticator::challenges`] offering `algorithms` (in this order) instead of
    /// the policy's, e.g. what a per-domain or per-subscriber preference asks for.
    pub fn challenges_offering(
        &self,
        algorithms: &[DigestAlgorithm],
        realm: &str,
        binding: &[&[u8]],
        stale: bool,
        now: u64,
        random: &mut dyn RngCore,
    ) -> Result<Vec<String>, HeaderValueError> {
        let nonce = self.nonces.issue(now, binding, random);
        algorithms
            .iter()
            .map(|&algorithm| {
                DigestChallenge {
                    realm: realm.to_owned(),
                    nonce: nonce.clone(),
                    opaque: self.policy.opaque.clone(),
                    algorithm,
                    quality_of_protection_options: Some(vec![QualityOfProtection::Authentication]),
                    stale,
                    userhash: false,
                }
                .to_header_value()
            })
            .collect()
    }

    /// Verifies an Authorization / Proxy-Authorization header value as received.
    pub fn verify_header_value(
        &mut self,
        request: &RequestToAuthenticate<'_>,
        header_value: &str,
        stored: &StoredCredentials,
        now: u64,
    ) -> Verification {
        match DigestResponse::parse(header_value) {
            Ok(credentials) => self.verify(request, &credentials, stored, now),
            Err(error) => Verification::Rejected(RejectionReason::Malformed(error)),
        }
    }

    /// Verifies `credentials` for `request` against the subscriber's `stored` HA1s at
    /// `now` (Unix seconds). The caller looked `stored` up by `credentials.username`
    /// and `request.realm`.
    ///
    /// Order matters: the digest is checked before the nonce's age, so only a client
    /// that knows the password learns its nonce was stale (RFC 7616 §3.3), and before
    /// the nonce-count, so forged requests cannot burn counts of a genuine client.
    pub fn verify(
        &mut self,
        request: &RequestToAuthenticate<'_>,
        credentials: &DigestResponse,
        stored: &StoredCredentials,
        now: u64,
    ) -> Verification {
        let offered = std::mem::take(&mut self.policy.offered_algorithms);
        let verification = self.verify_offering(&offered, request, credentials, stored, now);
        self.policy.offered_algorithms = offered;
        verification
    }

    /// [`DigestAuthenticator::verify`] accepting only answers with one of `algorithms` (what
    /// the challenge offered), so a client cannot fall back to an algorithm not asked for.
    pub fn verify_offering(
        &mut self,
        algorithms: &[DigestAlgorithm],
        request: &RequestToAuthenticate<'_>,
        credentials: &DigestResponse,
        stored: &StoredCredentials,
        now: u64,
    ) -> Verification {
        match self.check(algorithms, request, credentials, stored, now) {
            Ok(verification) => verification,
            Err(reason) => Verification::Rejected(reason),
        }
    }

    fn check(
        &mut self,
        algorithms: &[DigestAlgorithm],
        request: &RequestToAuthenticate<'_>,
        credentials: &DigestResponse,
        stored: &StoredCredentials,
        now: u64,
    ) -> Result<Verification, RejectionReason> {
        if credentials.realm != request.realm {
            return Err(RejectionReason::RealmMismatch {
                expected: request.realm.to_owned(),
                received: credentials.realm.clone(),
            });
        }
        let algorithm = match &credentials.algorithm {
            None => DigestAlgorithm::Md5,
            Some(name) => name
                .parse()
                .map_err(|_| RejectionReason::UnsupportedAlgorithm { name: name.clone() })?,
        };
        if !algorithms.contains(&algorithm) {
            return Err(RejectionReason::UnsupportedAlgorithm {
                name: algorithm.name().to_owned(),
            });
        }
        let quality_of_protection = match &credentials.quality_of_protection {
            None if self.policy.accept_without_quality_of_protection => None,
            None => return Err(RejectionReason::QualityOfProtectionRequired),
            Some(value) => Some(value.parse::<QualityOfProtection>().map_err(|()| {
                RejectionReason::UnsupportedQualityOfProtection {
                    value: value.clone(),
                }
            })?),
        };
        let nonce_count = match (&quality_of_protection, &credentials.nonce_count) {
            (None, _) => None,
            (Some(_), None) => return Err(RejectionReason::MissingParameter { name: "nc" }),
            (Some(_), Some(text)) => Some(parse_nonce_count(text)?),
        };
        let needs_cnonce = quality_of_protection.is_some() || algorithm.is_session();
        if needs_cnonce && credentials.cnonce.is_none() {
            return Err(RejectionReason::MissingParameter { name: "cnonce" });
        }
        if self.policy.require_uri_match && credentials.uri != request.request_uri {
            return Err(RejectionReason::UriMismatch {
                request_uri: request.request_uri.to_owned(),
                digest_uri: credentials.uri.clone(),
            });
        }
        if let Some(opaque) = &self.policy.opaque
            && credentials.opaque.as_ref() != Some(opaque)
        {
            return Err(RejectionReason::OpaqueMismatch);
        }
        let (identity, expired) = match self.nonces.check(&credentials.nonce, now, request.binding)
        {
            NonceStatus::Fresh(identity) => (identity, false),
            NonceStatus::Expired(identity) => (identity, true),
            NonceStatus::Invalid(defect) => return Err(RejectionReason::InvalidNonce(defect)),
        };

        let hash_function = algorithm.hash_function();
        let ha1 = stored
            .ha1_for(hash_function)
            .map(str::to_ascii_lowercase)
            .ok_or(RejectionReason::NoStoredHash { algorithm })?;
        let malformed_response = RejectionReason::MalformedResponse {
            expected_length: hash_function.hex_length(),
        };
        if credentials.response.len() != hash_function.hex_length() {
            return Err(malformed_response);
        }
        let received = hex::decode(&credentials.response).map_err(|_| malformed_response)?;
        let expected_hex = compute_response(&ResponseInput {
            algorithm,
            ha1: &ha1,
            nonce: &credentials.nonce,
            cnonce: credentials.cnonce.as_deref(),
            nonce_count: nonce_count.map(|(text, _)| text),
            quality_of_protection,
            method: request.method,
            uri: &credentials.uri,
            body: request.body,
        });
        let expected = hex::decode(expected_hex).unwrap_or_default();
        if !constant_time_equal(&received, &expected) {
            return Err(RejectionReason::WrongResponse);
        }
        if expired {
            return Ok(Verification::Stale);
        }
        if let Some((_, count)) = nonce_count {
            match self.nonce_counts.check_and_record(identity, count, now) {
                NonceCountCheck::Accepted => {}
                NonceCountCheck::Forgotten => return Ok(Verification::Stale),
                NonceCountCheck::Replayed {
                    nonce_count,
                    highest_seen,
                } => {
                    return Err(RejectionReason::ReplayedNonceCount {
                        nonce_count,
                        highest_seen,
                    });
                }
            }
        }
        Ok(Verification::Verified)
    }
}

/// `nc` is exactly 8 hex digits (RFC 7616 §3.4 `nc-value = 8LHEX`); uppercase is
/// tolerated on input. Zero is never a valid count.
fn parse_nonce_count(text: &str) -> Result<(&str, u32), RejectionReason> {
    let malformed = || RejectionReason::MalformedNonceCount {
        value: text.to_owned(),
    };
    if text.len() != 8 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(malformed());
    }
    let count = u32::from_str_radix(text, 16).map_err(|_| malformed())?;
    if count == 0 {
        return Err(malformed());
    }
    Ok((text, count))
}
