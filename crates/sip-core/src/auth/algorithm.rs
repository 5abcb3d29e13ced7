//! Digest algorithms (RFC 7616 §3.3 and §6.1, RFC 8760 §2.2).

use core::fmt;
use core::str::FromStr;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// The hash function behind a digest algorithm; the stored HA1 is per hash function
/// because `-sess` variants reuse the plain HA1 (RFC 7616 §3.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashFunction {
    /// MD5 (RFC 1321): 32 hex digits.
    Md5,
    /// SHA-256 (FIPS 180-4): 64 hex digits.
    Sha256,
    /// SHA-512/256 (FIPS 180-4 §5.3.6): 64 hex digits.
    Sha512_256,
}

impl HashFunction {
    /// Length of the lowercase hex digest this function produces.
    pub fn hex_length(self) -> usize {
        match self {
            Self::Md5 => 32,
            Self::Sha256 | Self::Sha512_256 => 64,
        }
    }

    /// `H(part₀:part₁:…)`: the parts joined by colons, hashed, as lowercase hex
    /// (RFC 7616 §3.4 `H(data)` and its `":"` separators).
    pub(crate) fn hex_of_joined(self, parts: &[&[u8]]) -> String {
        match self {
            Self::Md5 => hex_of_joined_with::<Md5>(parts),
            Self::Sha256 => hex_of_joined_with::<Sha256>(parts),
            Self::Sha512_256 => hex_of_joined_with::<Sha512_256>(parts),
        }
    }
}

fn hex_of_joined_with<D: Digest>(parts: &[&[u8]]) -> String {
    let mut hasher = D::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            hasher.update(b":");
        }
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// The `algorithm` parameter of a challenge or credentials (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// `MD5`, also the meaning of an absent `algorithm` parameter (RFC 3261 §22.4).
    Md5,
    /// `MD5-sess`.
    Md5Session,
    /// `SHA-256` (RFC 8760 §2.2 asks servers to offer it first).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Session,
    /// `SHA-512-256` (RFC 7616 §3.3, RFC 8760 §2.2).
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Session,
}

impl DigestAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 6] = [
        Self::Md5,
        Self::Md5Session,
        Self::Sha256,
        Self::Sha256Session,
        Self::Sha512_256,
        Self::Sha512_256Session,
    ];

    /// The token as written in the `algorithm` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Session => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Session => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Session => "SHA-512-256-sess",
        }
    }

    /// Whether this is a `-sess` variant, whose HA1 also covers nonce and cnonce.
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Self::Md5Session | Self::Sha256Session | Self::Sha512_256Session
        )
    }

    /// The hash function underneath.
    pub fn hash_function(self) -> HashFunction {
        match self {
            Self::Md5 | Self::Md5Session => HashFunction::Md5,
            Self::Sha256 | Self::Sha256Session => HashFunction::Sha256,
            Self::Sha512_256 | Self::Sha512_256Session => HashFunction::Sha512_256,
        }
    }

    /// Preference when a client picks among several challenges: stronger hash first,
    /// plain before `-sess` (RFC 7616 §3.7: use the first supported, strongest one).
    pub(crate) fn strength(self) -> u8 {
        match self {
            Self::Sha512_256 => 6,
            Self::Sha512_256Session => 5,
            Self::Sha256 => 4,
            Self::Sha256Session => 3,
            Self::Md5 => 2,
            Self::Md5Session => 1,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// An `algorithm` value this implementation does not know (e.g. `AKAv1-MD5`, RFC 3310).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported digest algorithm `{name}`")]
pub struct UnknownAlgorithm {
    /// The token as received.
    pub name: String,
}

impl FromStr for DigestAlgorithm {
    type Err = UnknownAlgorithm;

    /// Algorithm tokens compare case-insensitively (RFC 7616 §3.3 lists them as tokens;
    /// deployed clients send `md5` as well as `MD5`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownAlgorithm {
                name: text.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for algorithm in DigestAlgorithm::ALL {
            assert_eq!(algorithm.name().parse::<DigestAlgorithm>(), Ok(algorithm));
            assert_eq!(
                algorithm
                    .name()
                    .to_ascii_lowercase()
                    .parse::<DigestAlgorithm>(),
                Ok(algorithm)
            );
        }
        assert_eq!(
            "AKAv1-MD5".parse::<DigestAlgorithm>(),
            Err(UnknownAlgorithm {
                name: "AKAv1-MD5".into()
            })
        );
    }

    #[test]
    fn joined_hash_matches_known_digests() {
        // MD5, SHA-512/256 and SHA-256 of "a:b", computed independently (coreutils, openssl).
        assert_eq!(
            HashFunction::Md5.hex_of_joined(&[b"a", b"b"]),
            "d8160c9b3dc20d4e931aeb4f45262155"
        );
        assert_eq!(
            HashFunction::Sha512_256.hex_of_joined(&[b"a", b"b"]),
            "399ce3b985f4a59dcded69bacdd23f8fe39ff5dacb7ced8431ff48ca561cf644"
        );
        assert_eq!(
            HashFunction::Sha256.hex_of_joined(&[b"a", b"b"]),
            "6783a31eabf68ccc0660f935c0826282bdd2241f3a80a9f2d10d59aea9ebb5d8"
        );
    }
}
