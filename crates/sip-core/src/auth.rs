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

mod algorithm;
mod challenge;
mod client;
mod credentials;
mod hashing;
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
pub use hashing::{QualityOfProtection, hash_a1};
pub use nonce::{NonceDefect, NonceIdentity, NonceIssuer, NonceSecretTooShort, NonceStatus};
pub use parameters::{DigestSyntaxError, HeaderValueError};
pub use replay::{NonceCountCheck, NonceCountTracker};
pub use server::{
    DigestAuthenticator, DigestPolicy, RejectionReason, RequestToAuthenticate, StoredCredentials,
    Verification,
};
