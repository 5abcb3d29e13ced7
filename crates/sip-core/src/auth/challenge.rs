//! The WWW-Authenticate / Proxy-Authenticate `Digest` challenge (RFC 3261 §22.1,
//! RFC 7616 §3.3).

use super::algorithm::DigestAlgorithm;
use super::hashing::QualityOfProtection;
use super::parameters::{
    DigestSyntaxError, HeaderValueError, Parameter, collect_parameters, parse_digest_parameters,
    push_quoted, push_token, take, take_required,
};

/// The parameters of one `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    /// `realm`: the protection space, in SIP usually the domain (RFC 3261 §22.1).
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, to be returned unchanged.
    pub opaque: Option<String>,
    /// `algorithm`; MD5 when absent.
    pub algorithm: DigestAlgorithm,
    /// `qop` options offered; `None` when the challenge has no `qop` (RFC 2069 style).
    /// Unknown option tokens are dropped.
    pub quality_of_protection_options: Option<Vec<QualityOfProtection>>,
    /// `stale=true`: the previous nonce was merely expired, the password was right
    /// (RFC 7616 §3.3), so a client retries without asking its user.
    pub stale: bool,
    /// `userhash=true`: the server wants the username hashed (RFC 7616 §3.4.4).
    pub userhash: bool,
}

impl DigestChallenge {
    /// Parses a whole header value: `Digest realm="…", nonce="…", …`.
    pub fn parse(header_value: &str) -> Result<Self, DigestSyntaxError> {
        Self::from_parameter_list(parse_digest_parameters(header_value)?)
    }

    /// Builds from already-split `(name, unquoted value)` pairs (a `sip-message` view).
    pub fn from_parameters<'a>(
        parameters: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, DigestSyntaxError> {
        Self::from_parameter_list(collect_parameters(parameters)?)
    }

    fn from_parameter_list(mut parameters: Vec<Parameter>) -> Result<Self, DigestSyntaxError> {
        let realm = take_required(&mut parameters, "realm")?;
        let nonce = take_required(&mut parameters, "nonce")?;
        let algorithm = match take(&mut parameters, "algorithm") {
            None => DigestAlgorithm::Md5,
            Some(name) => name
                .parse()
                .map_err(|_| DigestSyntaxError::UnsupportedAlgorithm { name })?,
        };
        let quality_of_protection_options = take(&mut parameters, "qop").map(|options| {
            options
                .split(',')
                .filter_map(|option| option.trim().parse().ok())
                .collect()
        });
        Ok(Self {
            realm,
            nonce,
            opaque: take(&mut parameters, "opaque"),
            algorithm,
            quality_of_protection_options,
            stale: take(&mut parameters, "stale")
                .is_some_and(|stale| stale.eq_ignore_ascii_case("true")),
            userhash: take(&mut parameters, "userhash")
                .is_some_and(|userhash| userhash.eq_ignore_ascii_case("true")),
        })
    }

    /// Writes the header value. `qop` is quoted here (it is a list in challenges,
    /// RFC 7616 §3.3), `algorithm` and `stale` are not.
    pub fn to_header_value(&self) -> Result<String, HeaderValueError> {
        let mut output = String::from("Digest");
        push_quoted(&mut output, "realm", &self.realm)?;
        push_quoted(&mut output, "nonce", &self.nonce)?;
        if let Some(opaque) = &self.opaque {
            push_quoted(&mut output, "opaque", opaque)?;
        }
        push_token(&mut output, "algorithm", self.algorithm.name());
        if let Some(options) = &self.quality_of_protection_options {
            let list = options
                .iter()
                .map(|option| option.token())
                .collect::<Vec<_>>()
                .join(",");
            push_quoted(&mut output, "qop", &list)?;
        }
        if self.stale {
            push_token(&mut output, "stale", "true");
        }
        if self.userhash {
            push_token(&mut output, "userhash", "true");
        }
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rfc_7616_challenge() {
        let challenge = DigestChallenge::parse(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        assert_eq!(challenge.realm, "http-auth@example.org");
        assert_eq!(challenge.algorithm, DigestAlgorithm::Sha256);
        assert_eq!(
            challenge.quality_of_protection_options,
            Some(vec![
                QualityOfProtection::Authentication,
                QualityOfProtection::AuthenticationWithIntegrity
            ])
        );
        assert!(!challenge.stale);
    }

    #[test]
    fn absent_algorithm_is_md5_and_stale_is_read() {
        let challenge =
            DigestChallenge::parse("Digest realm=\"r\", nonce=\"n\", stale=TRUE").unwrap();
        assert_eq!(challenge.algorithm, DigestAlgorithm::Md5);
        assert_eq!(challenge.quality_of_protection_options, None);
        assert!(challenge.stale);
    }

    #[test]
    fn unknown_algorithm_is_reported() {
        assert_eq!(
            DigestChallenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=AKAv1-MD5"),
            Err(DigestSyntaxError::UnsupportedAlgorithm {
                name: "AKAv1-MD5".into()
            })
        );
    }

    #[test]
    fn prints_and_parses_back() {
        let challenge = DigestChallenge {
            realm: "example.org".into(),
            nonce: "abc".into(),
            opaque: Some("xyz".into()),
            algorithm: DigestAlgorithm::Sha256,
            quality_of_protection_options: Some(vec![QualityOfProtection::Authentication]),
            stale: true,
            userhash: false,
        };
        let printed = challenge.to_header_value().unwrap();
        assert_eq!(
            printed,
            "Digest realm=\"example.org\", nonce=\"abc\", opaque=\"xyz\", algorithm=SHA-256, \
             qop=\"auth\", stale=true"
        );
        assert_eq!(DigestChallenge::parse(&printed).unwrap(), challenge);
    }
}
