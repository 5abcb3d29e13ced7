//! Password handling: SIP digest HA1 values and argon2 hashes for web and admin logins.
//!
//! Plaintext passwords never reach the database. The SIP side needs HA1 (RFC 7616 §3.4.2:
//! `H(username ":" realm ":" password)`), so both MD5 (RFC 2617 / RFC 7616 `MD5`) and SHA-256
//! (RFC 7616 `SHA-256`) forms are stored; web and admin passwords only need verifying, so they
//! get a salted argon2id hash (PHC string format).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::error::{StoreError, StoreResult};

/// `MD5(username:realm:password)` as lower-case hex, the HA1 of RFC 7616 §3.4.2 for `MD5`.
pub fn ha1_md5(username: &str, realm: &str, password: &str) -> String {
    let mut hasher = Md5::new();
    feed_ha1(&mut hasher, username, realm, password);
    hex::encode(hasher.finalize())
}

/// `SHA-256(username:realm:password)` as lower-case hex, the HA1 of RFC 7616 §3.4.2 for `SHA-256`.
pub fn ha1_sha256(username: &str, realm: &str, password: &str) -> String {
    let mut hasher = Sha256::new();
    feed_ha1(&mut hasher, username, realm, password);
    hex::encode(hasher.finalize())
}

fn feed_ha1<D: Digest>(hasher: &mut D, username: &str, realm: &str, password: &str) {
    hasher.update(username.as_bytes());
    hasher.update(b":");
    hasher.update(realm.as_bytes());
    hasher.update(b":");
    hasher.update(password.as_bytes());
}

/// Hashes a password with argon2id and a fresh random salt (PHC string).
///
/// Runs on the blocking pool: argon2 is deliberately slow and must not stall the async workers.
pub async fn hash_password(password: &str) -> StoreResult<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(|e| StoreError::Hashing(e.to_string()))?
}

/// Synchronous form of [`hash_password`].
pub fn hash_password_blocking(password: &str) -> StoreResult<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::Hashing(e.to_string()))
}

/// Checks a password against a PHC hash from [`hash_password`]; a malformed hash verifies nothing.
pub async fn verify_password(password: &str, phc_hash: &str) -> StoreResult<bool> {
    let password = password.to_owned();
    let phc_hash = phc_hash.to_owned();
    tokio::task::spawn_blocking(move || verify_password_blocking(&password, &phc_hash))
        .await
        .map_err(|e| StoreError::Hashing(e.to_string()))
}

/// Synchronous form of [`verify_password`].
pub fn verify_password_blocking(password: &str, phc_hash: &str) -> bool {
    match PasswordHash::new(phc_hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Verifies `password` against a hash of a password nobody has, so that an unknown login costs as
/// long as a wrong password and response times do not reveal which logins exist.
pub(crate) async fn spend_verification_time(password: &str) -> StoreResult<()> {
    static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let hash = DUMMY_HASH
            .get_or_init(|| hash_password_blocking("voxide-no-such-login").unwrap_or_default());
        verify_password_blocking(&password, hash);
    })
    .await
    .map_err(|e| StoreError::Hashing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha1_matches_rfc_2617_example() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / "Circle Of Life".
        assert_eq!(
            ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn ha1_sha256_matches_rfc_7616_example() {
        // RFC 7616 §3.9.1: Mufasa / http-auth@example.org / "Circle of Life".
        assert_eq!(
            ha1_sha256("Mufasa", "http-auth@example.org", "Circle of Life"),
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
    }

    #[test]
    fn argon2_round_trip() {
        let hash = hash_password_blocking("s3cret").unwrap();
        assert!(hash.starts_with("$argon2"));
        assert!(verify_password_blocking("s3cret", &hash));
        assert!(!verify_password_blocking("s3cret!", &hash));
        assert!(!verify_password_blocking("s3cret", "not a hash"));
    }
}
