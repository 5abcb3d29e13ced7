//! Client side: answering a 401/407 challenge (RFC 3261 §22.2–§22.3, RFC 7616 §3.4),
//! for registering to and calling through peers.

use rand_core::RngCore;

use super::algorithm::DigestAlgorithm;
use super::challenge::DigestChallenge;
use super::credentials::DigestResponse;
use super::hashing::{
    QualityOfProtection, ResponseInput, compute_response, hash_a1, hash_username,
};

/// The request the Authorization header will be added to.
#[derive(Debug, Clone, Copy)]
pub struct RequestToSign<'a> {
    /// The method from the request line.
    pub method: &'a str,
    /// The Request-URI; RFC 3261 §22.4 makes it the digest `uri`.
    pub uri: &'a str,
    /// The body, hashed only for `qop=auth-int`.
    pub body: &'a [u8],
}

/// Why a challenge is not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The challenge names another realm than the credentials are for: answering would
    /// hand a crackable digest of our password to whoever sent it (the
    /// CVE-2021-41158 digest leak).
    #[error("challenge realm `{received}` is not the credentials' realm `{expected}`")]
    RealmNotOurs {
        /// The realm the credentials belong to.
        expected: String,
        /// The realm in the challenge.
        received: String,
    },
    /// The challenge offers only qop values this implementation does not know.
    #[error("challenge offers no supported qop")]
    NoSupportedQualityOfProtection,
    /// Nonce-count zero is not a valid count (counting starts at 1).
    #[error("nonce-count must start at 1")]
    ZeroNonceCount,
}

/// The secret side of a client.
#[derive(Clone, Copy)]
pub struct ClientCredentials<'a> {
    /// `username`.
    pub username: &'a str,
    /// The cleartext password; only its hashes leave this function.
    pub password: &'a str,
    /// When set, challenges for any other realm are refused.
    pub realm: Option<&'a str>,
}

impl core::fmt::Debug for ClientCredentials<'_> {
    // Passwords never reach a log.
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter
            .debug_struct("ClientCredentials")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// Picks the challenge to answer from several (RFC 8760 §2.4: a server may send one
/// per algorithm): the strongest algorithm whose qop options can be met.
pub fn select_challenge(challenges: &[DigestChallenge]) -> Option<&DigestChallenge> {
    challenges
        .iter()
        .filter(|challenge| {
            challenge
                .quality_of_protection_options
                .as_ref()
                .is_none_or(|options| !options.is_empty())
        })
        .max_by_key(|challenge| challenge.algorithm.strength())
}

/// Answers `challenge` for `request` with a fresh cnonce from `random`.
///
/// `nonce_count` is how many requests this nonce has now signed, 1 for the first; the
/// caller keeps it per nonce (RFC 7616 §3.4).
pub fn answer_challenge(
    challenge: &DigestChallenge,
    credentials: &ClientCredentials<'_>,
    request: &RequestToSign<'_>,
    nonce_count: u32,
    random: &mut dyn RngCore,
) -> Result<DigestResponse, ClientError> {
    let mut cnonce_bytes = [0u8; 16];
    random.fill_bytes(&mut cnonce_bytes);
    answer_challenge_with_cnonce(
        challenge,
        credentials,
        request,
        nonce_count,
        &hex::encode(cnonce_bytes),
    )
}

/// [`answer_challenge`] with a given cnonce, for reproducing published examples.
pub fn answer_challenge_with_cnonce(
    challenge: &DigestChallenge,
    credentials: &ClientCredentials<'_>,
    request: &RequestToSign<'_>,
    nonce_count: u32,
    cnonce: &str,
) -> Result<DigestResponse, ClientError> {
    if let Some(expected) = credentials.realm
        && expected != challenge.realm
    {
        return Err(ClientError::RealmNotOurs {
            expected: expected.to_owned(),
            received: challenge.realm.clone(),
        });
    }
    if nonce_count == 0 {
        return Err(ClientError::ZeroNonceCount);
    }
    // auth over auth-int: the body may be changed by proxies (SDP rewriting).
    let quality_of_protection = match &challenge.quality_of_protection_options {
        None => None,
        Some(options) if options.contains(&QualityOfProtection::Authentication) => {
            Some(QualityOfProtection::Authentication)
        }
        Some(options) if options.contains(&QualityOfProtection::AuthenticationWithIntegrity) => {
            Some(QualityOfProtection::AuthenticationWithIntegrity)
        }
        Some(_) => return Err(ClientError::NoSupportedQualityOfProtection),
    };
    let algorithm = challenge.algorithm;
    let uses_cnonce = quality_of_protection.is_some() || algorithm.is_session();
    let cnonce = uses_cnonce.then(|| cnonce.to_owned());
    let nonce_count_text = quality_of_protection.map(|_| format!("{nonce_count:08x}"));
    let ha1 = hash_a1(
        algorithm.hash_function(),
        credentials.username,
        &challenge.realm,
        credentials.password,
    );
    let response = compute_response(&ResponseInput {
        algorithm,
        ha1: &ha1,
        nonce: &challenge.nonce,
        cnonce: cnonce.as_deref(),
        nonce_count: nonce_count_text.as_deref(),
        quality_of_protection,
        method: request.method,
        uri: request.uri,
        body: request.body,
    });
    let username = if challenge.userhash {
        hash_username(
            algorithm.hash_function(),
            credentials.username,
            &challenge.realm,
        )
    } else {
        credentials.username.to_owned()
    };
    Ok(DigestResponse {
        username,
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: request.uri.to_owned(),
        response,
        // RFC 3261 §22.4 clients may omit MD5; naming it always is clearer for peers.
        algorithm: Some(algorithm_name(algorithm)),
        cnonce,
        nonce_count: nonce_count_text,
        quality_of_protection: quality_of_protection.map(|qop| qop.token().to_owned()),
        opaque: challenge.opaque.clone(),
        userhash: challenge.userhash,
    })
}

fn algorithm_name(algorithm: DigestAlgorithm) -> String {
    algorithm.name().to_owned()
}
