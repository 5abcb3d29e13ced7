//! The digest computation itself (RFC 7616 §3.4.1–§3.4.3, RFC 2617 §3.2.2 for no-qop).

use core::fmt;
use core::str::FromStr;

use super::algorithm::{DigestAlgorithm, HashFunction};

/// The `qop` value (RFC 7616 §3.3 "qop-options", §3.4 "qop").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QualityOfProtection {
    /// `auth`: authentication only.
    Authentication,
    /// `auth-int`: authentication with integrity protection of the body.
    AuthenticationWithIntegrity,
}

impl QualityOfProtection {
    /// The token as written in the `qop` parameter.
    pub fn token(self) -> &'static str {
        match self {
            Self::Authentication => "auth",
            Self::AuthenticationWithIntegrity => "auth-int",
        }
    }
}

impl fmt::Display for QualityOfProtection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.token())
    }
}

impl FromStr for QualityOfProtection {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("auth") {
            Ok(Self::Authentication)
        } else if text.eq_ignore_ascii_case("auth-int") {
            Ok(Self::AuthenticationWithIntegrity)
        } else {
            Err(())
        }
    }
}

/// `HA1 = H(username:realm:password)` as lowercase hex (RFC 7616 §3.4.2), the value a
/// subscriber database stores instead of the password (C5's `ha1` / SHA-256 column).
pub fn hash_a1(hash_function: HashFunction, username: &str, realm: &str, password: &str) -> String {
    hash_function.hex_of_joined(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// `H(username:realm)`, the `username` sent when a challenge sets `userhash=true`
/// (RFC 7616 §3.4.4).
pub fn hash_username(hash_function: HashFunction, username: &str, realm: &str) -> String {
    hash_function.hex_of_joined(&[username.as_bytes(), realm.as_bytes()])
}

/// Everything the response hash covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResponseInput<'a> {
    pub(crate) algorithm: DigestAlgorithm,
    /// The plain `H(username:realm:password)` in lowercase hex.
    pub(crate) ha1: &'a str,
    pub(crate) nonce: &'a str,
    pub(crate) cnonce: Option<&'a str>,
    /// The 8 hex digits exactly as sent: the hash covers the text, not the number.
    pub(crate) nonce_count: Option<&'a str>,
    pub(crate) quality_of_protection: Option<QualityOfProtection>,
    pub(crate) method: &'a str,
    pub(crate) uri: &'a str,
    pub(crate) body: &'a [u8],
}

/// The `response` value as lowercase hex.
///
/// With a qop: `H(HA1:nonce:nc:cnonce:qop:HA2)` (RFC 7616 §3.4.1); without one, the
/// RFC 2069 form `H(HA1:nonce:HA2)` that RFC 3261 §22.4 still allows.
pub(crate) fn compute_response(input: &ResponseInput<'_>) -> String {
    let hash_function = input.algorithm.hash_function();
    let cnonce = input.cnonce.unwrap_or("");
    let session_ha1;
    let ha1 = if input.algorithm.is_session() {
        // RFC 7616 §3.4.2: A1 = H(user:realm:password):nonce:cnonce for -sess.
        session_ha1 = hash_function.hex_of_joined(&[
            input.ha1.as_bytes(),
            input.nonce.as_bytes(),
            cnonce.as_bytes(),
        ]);
        session_ha1.as_str()
    } else {
        input.ha1
    };
    let ha2 = match input.quality_of_protection {
        Some(QualityOfProtection::AuthenticationWithIntegrity) => {
            let body_hash = hash_function.hex_of_joined(&[input.body]);
            hash_function.hex_of_joined(&[
                input.method.as_bytes(),
                input.uri.as_bytes(),
                body_hash.as_bytes(),
            ])
        }
        _ => hash_function.hex_of_joined(&[input.method.as_bytes(), input.uri.as_bytes()]),
    };
    match input.quality_of_protection {
        Some(quality_of_protection) => hash_function.hex_of_joined(&[
            ha1.as_bytes(),
            input.nonce.as_bytes(),
            input.nonce_count.unwrap_or("").as_bytes(),
            cnonce.as_bytes(),
            quality_of_protection.token().as_bytes(),
            ha2.as_bytes(),
        ]),
        None => {
            hash_function.hex_of_joined(&[ha1.as_bytes(), input.nonce.as_bytes(), ha2.as_bytes()])
        }
    }
}

/// Equality that takes the same time wherever the first difference is, so response
/// comparison leaks nothing about how close a guess was.
pub(crate) fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let difference = left
        .iter()
        .zip(right)
        .fold(0u8, |accumulated, (a, b)| accumulated | (a ^ b));
    core::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1: user "Mufasa", password "Circle of Life", GET /dir/index.html.
    const REALM: &str = "http-auth@example.org";
    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc_7616_response(algorithm: DigestAlgorithm) -> String {
        let ha1 = hash_a1(algorithm.hash_function(), "Mufasa", REALM, "Circle of Life");
        compute_response(&ResponseInput {
            algorithm,
            ha1: &ha1,
            nonce: NONCE,
            cnonce: Some(CNONCE),
            nonce_count: Some("00000001"),
            quality_of_protection: Some(QualityOfProtection::Authentication),
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        })
    }

    #[test]
    fn rfc_7616_section_3_9_1_md5_example() {
        assert_eq!(
            rfc_7616_response(DigestAlgorithm::Md5),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc_7616_section_3_9_1_sha256_example() {
        assert_eq!(
            rfc_7616_response(DigestAlgorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc_2617_section_3_5_example() {
        // RFC 2617 §3.5 (qop=auth, MD5, "Circle Of Life" with a capital O).
        let ha1 = hash_a1(
            HashFunction::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let response = compute_response(&ResponseInput {
            algorithm: DigestAlgorithm::Md5,
            ha1: &ha1,
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            cnonce: Some("0a4f113b"),
            nonce_count: Some("00000001"),
            quality_of_protection: Some(QualityOfProtection::Authentication),
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        });
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn session_variant_and_integrity_change_the_response() {
        let plain = rfc_7616_response(DigestAlgorithm::Md5);
        let session = rfc_7616_response(DigestAlgorithm::Md5Session);
        assert_ne!(plain, session);
        // MD5-sess by hand: HA1' = MD5(HA1:nonce:cnonce).
        let ha1 = hash_a1(HashFunction::Md5, "Mufasa", REALM, "Circle of Life");
        let session_ha1 =
            HashFunction::Md5.hex_of_joined(&[ha1.as_bytes(), NONCE.as_bytes(), CNONCE.as_bytes()]);
        let ha2 = HashFunction::Md5.hex_of_joined(&[b"GET", b"/dir/index.html"]);
        let expected = HashFunction::Md5.hex_of_joined(&[
            session_ha1.as_bytes(),
            NONCE.as_bytes(),
            b"00000001",
            CNONCE.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]);
        assert_eq!(session, expected);
    }

    #[test]
    fn constant_time_equal_compares_content_and_length() {
        assert!(constant_time_equal(b"abc", b"abc"));
        assert!(!constant_time_equal(b"abc", b"abd"));
        assert!(!constant_time_equal(b"abc", b"abcd"));
    }
}
