//! Stateless nonces (RFC 7616 §3.3 "nonce" and §5.4–§5.5), built the way Kamailio's
//! `auth` module builds them: the issue time and a MAC over it travel inside the nonce,
//! so any node sharing the secret can check a nonce without having stored it.
//!
//! Layout before hex encoding (32 bytes):
//! `issued_at (u64, big-endian) ‖ random (8) ‖ HMAC-SHA256(secret, label ‖ issued_at ‖
//! random ‖ binding)[..16]`. The binding (e.g. source IP, Call-ID, From tag) is not in
//! the nonce: it is recomputed from the request, so a nonce lifted into another dialog
//! or from another address fails the MAC.

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use rand_core::RngCore;
use sha2::Sha256;

const ISSUED_AT_LENGTH: usize = 8;
const RANDOM_LENGTH: usize = 8;
/// 128-bit truncated tag: forging needs 2^128 work, and the nonce stays 64 hex digits.
const TAG_LENGTH: usize = 16;
const NONCE_LENGTH: usize = ISSUED_AT_LENGTH + RANDOM_LENGTH + TAG_LENGTH;
/// Separates this MAC's inputs from any other use of the same secret.
const DOMAIN_LABEL: &[u8] = b"voxide sip digest nonce v1";
/// Shorter secrets are guessable offline from a single nonce.
const MINIMUM_SECRET_LENGTH: usize = 16;

/// The secret given to [`NonceIssuer::new`] is too short to key the MAC safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("nonce secret has {length} bytes; at least 16 are needed")]
pub struct NonceSecretTooShort {
    /// Length of the secret that was offered.
    pub length: usize,
}

/// What identifies an authentic nonce: the nonce-count tracker keys on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NonceIdentity {
    /// Unix seconds at which the nonce was issued.
    pub issued_at: u64,
    /// The nonce's MAC tag: unique per nonce because it covers the random part.
    pub tag: [u8; TAG_LENGTH],
}

/// Why a nonce is not one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceDefect {
    /// Not 64 hex digits.
    #[error("nonce is not in the issued format")]
    Malformed,
    /// The MAC does not match: forged, altered, issued under another secret, or bound
    /// to another source address / dialog.
    #[error("nonce MAC does not match")]
    NotAuthentic,
}

/// Result of checking a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Authentic and within its lifetime.
    Fresh(NonceIdentity),
    /// Authentic but older than its lifetime: answer with `stale=true` if the digest was
    /// otherwise right (RFC 7616 §3.3).
    Expired(NonceIdentity),
    /// Not a nonce we issued for this binding.
    Invalid(NonceDefect),
}

/// Issues and checks stateless nonces.
#[derive(Clone)]
pub struct NonceIssuer {
    mac: Hmac<Sha256>,
    lifetime_seconds: u64,
}

impl fmt::Debug for NonceIssuer {
    // The keyed MAC state must never reach a log.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("NonceIssuer")
            .field("lifetime_seconds", &self.lifetime_seconds)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// A nonce issuer keyed with `secret` (shared by every node that verifies) whose
    /// nonces live `lifetime_seconds` (Kamailio's `nonce_expire` default is 300).
    pub fn new(secret: &[u8], lifetime_seconds: u64) -> Result<Self, NonceSecretTooShort> {
        if secret.len() < MINIMUM_SECRET_LENGTH {
            return Err(NonceSecretTooShort {
                length: secret.len(),
            });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| NonceSecretTooShort {
            length: secret.len(),
        })?;
        Ok(Self {
            mac,
            lifetime_seconds,
        })
    }

    /// How long a nonce is fresh.
    pub fn lifetime_seconds(&self) -> u64 {
        self.lifetime_seconds
    }

    /// A new nonce issued at `now` (Unix seconds) and bound to `binding`.
    pub fn issue(&self, now: u64, binding: &[&[u8]], random: &mut dyn RngCore) -> String {
        let mut raw = [0u8; NONCE_LENGTH];
        raw[..ISSUED_AT_LENGTH].copy_from_slice(&now.to_be_bytes());
        random.fill_bytes(&mut raw[ISSUED_AT_LENGTH..ISSUED_AT_LENGTH + RANDOM_LENGTH]);
        let tag = self.tag(&raw[..ISSUED_AT_LENGTH + RANDOM_LENGTH], binding);
        raw[ISSUED_AT_LENGTH + RANDOM_LENGTH..].copy_from_slice(&tag);
        hex::encode(raw)
    }

    /// Checks that `nonce` was issued by us for `binding`, and whether it has expired.
    pub fn check(&self, nonce: &str, now: u64, binding: &[&[u8]]) -> NonceStatus {
        let mut raw = [0u8; NONCE_LENGTH];
        if hex::decode_to_slice(nonce, &mut raw).is_err() {
            return NonceStatus::Invalid(NonceDefect::Malformed);
        }
        let (message, received_tag) = raw.split_at(ISSUED_AT_LENGTH + RANDOM_LENGTH);
        let mut mac = self.mac.clone();
        feed(&mut mac, message, binding);
        // verify_truncated_left compares in constant time.
        if mac.verify_truncated_left(received_tag).is_err() {
            return NonceStatus::Invalid(NonceDefect::NotAuthentic);
        }
        let mut issued_at = [0u8; ISSUED_AT_LENGTH];
        issued_at.copy_from_slice(&raw[..ISSUED_AT_LENGTH]);
        let mut tag = [0u8; TAG_LENGTH];
        tag.copy_from_slice(received_tag);
        let identity = NonceIdentity {
            issued_at: u64::from_be_bytes(issued_at),
            tag,
        };
        if now > identity.issued_at.saturating_add(self.lifetime_seconds) {
            NonceStatus::Expired(identity)
        } else {
            NonceStatus::Fresh(identity)
        }
    }

    fn tag(&self, message: &[u8], binding: &[&[u8]]) -> [u8; TAG_LENGTH] {
        let mut mac = self.mac.clone();
        feed(&mut mac, message, binding);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LENGTH];
        tag.copy_from_slice(&full[..TAG_LENGTH]);
        tag
    }
}

/// Length-prefixes every binding part so that `["ab", "c"]` and `["a", "bc"]` differ.
fn feed(mac: &mut Hmac<Sha256>, message: &[u8], binding: &[&[u8]]) {
    mac.update(DOMAIN_LABEL);
    mac.update(message);
    for part in binding {
        let length = u32::try_from(part.len()).unwrap_or(u32::MAX);
        mac.update(&length.to_be_bytes());
        mac.update(part);
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn issuer() -> NonceIssuer {
        NonceIssuer::new(SECRET, 300).unwrap()
    }

    #[test]
    fn fresh_until_the_lifetime_ends_then_expired() {
        let mut random = StdRng::seed_from_u64(1);
        let nonce = issuer().issue(1_000, &[b"192.0.2.1"], &mut random);
        assert_eq!(nonce.len(), 64);
        let fresh = issuer().check(&nonce, 1_300, &[b"192.0.2.1"]);
        let NonceStatus::Fresh(identity) = fresh else {
            panic!("expected fresh, got {fresh:?}");
        };
        assert_eq!(identity.issued_at, 1_000);
        assert_eq!(
            issuer().check(&nonce, 1_301, &[b"192.0.2.1"]),
            NonceStatus::Expired(identity)
        );
    }

    #[test]
    fn other_binding_secret_or_altered_bytes_are_not_authentic() {
        let mut random = StdRng::seed_from_u64(2);
        let nonce = issuer().issue(1_000, &[b"192.0.2.1", b"call-1"], &mut random);
        let not_authentic = NonceStatus::Invalid(NonceDefect::NotAuthentic);
        assert_eq!(
            issuer().check(&nonce, 1_000, &[b"192.0.2.2", b"call-1"]),
            not_authentic
        );
        // Same bytes split differently must not collide.
        assert_eq!(
            issuer().check(&nonce, 1_000, &[b"192.0.2.1c", b"all-1"]),
            not_authentic
        );
        let other = NonceIssuer::new(b"another secret, also 32 bytes!!!", 300).unwrap();
        assert_eq!(
            other.check(&nonce, 1_000, &[b"192.0.2.1", b"call-1"]),
            not_authentic
        );
        // Pushing the issue time forward to dodge expiry breaks the MAC.
        let mut altered = nonce.clone().into_bytes();
        altered[15] = if altered[15] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(
            issuer().check(&altered, 1_000, &[b"192.0.2.1", b"call-1"]),
            not_authentic
        );
    }

    #[test]
    fn malformed_nonces_are_reported() {
        let malformed = NonceStatus::Invalid(NonceDefect::Malformed);
        assert_eq!(issuer().check("", 0, &[]), malformed);
        assert_eq!(issuer().check("zz", 0, &[]), malformed);
        assert_eq!(issuer().check(&"a".repeat(66), 0, &[]), malformed);
    }

    #[test]
    fn short_secret_is_refused_and_debug_hides_the_key() {
        assert_eq!(
            NonceIssuer::new(b"short", 300).unwrap_err(),
            NonceSecretTooShort { length: 5 }
        );
        let printed = format!("{:?}", issuer());
        assert!(printed.contains("lifetime_seconds: 300"));
        assert!(!printed.contains("0123456789abcdef"));
    }

    #[test]
    fn every_nonce_is_different() {
        let mut random = StdRng::seed_from_u64(3);
        let first = issuer().issue(1_000, &[], &mut random);
        let second = issuer().issue(1_000, &[], &mut random);
        assert_ne!(first, second);
    }
}
