//! SIP digest access authentication: RFC 3261 §22 with the RFC 7616 algorithms that
//! RFC 8760 brings to SIP (MD5, SHA-256 and their `-sess` variants, `qop=auth`/`auth-int`).
//!
//! Server side: [`DigestAuthenticator`] issues challenges with stateless HMAC nonces
//! ([`NonceIssuer`]), verifies [`DigestResponse`]s against stored HA1 values
//! ([`StoredCredentials`], never cleartext) and rejects replayed nonce-counts
//! ([`NonceCountTracker`]). Client side: [`answer_challenge`] computes the
//! Authorization / Proxy-Authorization value for a received challenge.
//!
//! Sans-IO: the current time is passed in as Unix seconds and randomness comes from an
//! injected [`rand_core::RngCore`].
//!
//! ```
//! use rand::SeedableRng;
//! use sip_core::auth::*;
//!
//! let mut random = rand::rngs::StdRng::seed_from_u64(1);
//! let mut server = DigestAuthenticator::new(b"shared secret of 16+ bytes", DigestPolicy::default())?;
//! let now = 1_764_000_000;
//! // Bind the nonce to what the request carries: here source address and Call-ID.
//! let binding: &[&[u8]] = &[b"192.0.2.10", b"call-id@host"];
//!
//! // 401: one WWW-Authenticate value per algorithm, SHA-256 first.
//! let values = server.challenges("example.org", binding, false, now, &mut random)?;
//! let challenges: Vec<_> = values.iter().map(|v| DigestChallenge::parse(v)).collect::<Result<_, _>>()?;
//!
//! // The UA answers the strongest one.
//! let alice = ClientCredentials { username: "alice", password: "secret", realm: Some("example.org") };
//! let request = RequestToSign { method: "REGISTER", uri: "sip:example.org", body: b"" };
//! let chosen = select_challenge(&challenges).expect("answerable");
//! let authorization = answer_challenge(chosen, &alice, &request, 1, &mut random)?.to_header_value()?;
//!
//! // The registrar checks it against the stored HA1 values.
//! let stored = StoredCredentials::from_password("alice", "example.org", "secret");
//! let to_check = RequestToAuthenticate {
//!     method: "REGISTER", request_uri: "sip:example.org", body: b"", realm: "example.org", binding,
//! };
//! assert_eq!(server.verify_header_value(&to_check, &authorization, &stored, now + 1), Verification::Verified);
//! // The same request again is a replay.
//! assert!(matches!(
//!     server.verify_header_value(&to_check, &authorization, &stored, now + 2),
//!     Verification::Rejected(RejectionReason::ReplayedNonceCount { .. })
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod algorithm;
mod challenge;
mod client;
mod credentials;
mod hashing;
mod message_views;
mod nonce;
mod parameters;
mod replay;
mod server;

pub use algorithm::{DigestAlgorithm, HashFunction, UnknownAlgorithm};
pub use challenge::DigestChallenge;
pub use client::{
    ClientCredentials, ClientError, RequestToSign, answer_challenge, answer_challenge_with_cnonce,
    select_challenge,
};
pub use credentials::DigestResponse;
pub use hashing::{QualityOfProtection, hash_a1, hash_username};
pub use message_views::{ChallengeHeader, CredentialsHeader};
pub use nonce::{NonceDefect, NonceIdentity, NonceIssuer, NonceSecretTooShort, NonceStatus};
pub use parameters::{DigestSyntaxError, HeaderValueError};
pub use replay::{NonceCountCheck, NonceCountTracker};
pub use server::{
    DigestAuthenticator, DigestPolicy, RejectionReason, RequestToAuthenticate, StoredCredentials,
    Verification,
};
