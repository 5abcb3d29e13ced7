//! The Authorization / Proxy-Authorization `Digest` credentials (RFC 3261 §22.4,
//! RFC 7616 §3.4).

use super::parameters::{
    DigestSyntaxError, HeaderValueError, Parameter, collect_parameters, parse_digest_parameters,
    push_quoted, push_token, take, take_required,
};

/// The parameters of a `Digest` Authorization or Proxy-Authorization header value.
///
/// Fields a server must judge (`algorithm`, `qop`, `nc`) stay text here so that a bad
/// value becomes a typed rejection in [`super::DigestAuthenticator::verify`] rather
/// than a parse failure without context.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestResponse {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`, echoed from the challenge.
    pub nonce: String,
    /// `uri` (RFC 7616 "digest-uri"): must name the Request-URI (RFC 3261 §22.4).
    pub uri: String,
    /// `response`: the hex digest proving knowledge of the password.
    pub response: String,
    /// `algorithm`; absent means MD5.
    pub algorithm: Option<String>,
    /// `cnonce`, required with a qop.
    pub cnonce: Option<String>,
    /// `nc` (nonce-count): 8 hex digits, required with a qop.
    pub nonce_count: Option<String>,
    /// `qop` chosen by the client; absent only in RFC 2069 style answers.
    pub quality_of_protection: Option<String>,
    /// `opaque`, echoed from the challenge.
    pub opaque: Option<String>,
    /// `userhash=true`: `username` is `H(username:realm)` (RFC 7616 §3.4.4); the caller
    /// looks the subscriber up by that hash.
    pub userhash: bool,
}

impl DigestResponse {
    /// Parses a whole header value: `Digest username="…", realm="…", …`.
    pub fn parse(header_value: &str) -> Result<Self, DigestSyntaxError> {
        Self::from_parameter_list(parse_digest_parameters(header_value)?)
    }

    /// Builds from already-split `(name, unquoted value)` pairs, as a typed
    /// `sip-message` credentials view provides them. Names compare case-insensitively;
    /// unknown parameters are ignored (RFC 7616 §3.4).
    pub fn from_parameters<'a>(
        parameters: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, DigestSyntaxError> {
        Self::from_parameter_list(collect_parameters(parameters)?)
    }

    fn from_parameter_list(mut parameters: Vec<Parameter>) -> Result<Self, DigestSyntaxError> {
        Ok(Self {
            username: take_required(&mut parameters, "username")?,
            realm: take_required(&mut parameters, "realm")?,
            nonce: take_required(&mut parameters, "nonce")?,
            uri: take_required(&mut parameters, "uri")?,
            response: take_required(&mut parameters, "response")?,
            algorithm: take(&mut parameters, "algorithm"),
            cnonce: take(&mut parameters, "cnonce"),
            nonce_count: take(&mut parameters, "nc"),
            quality_of_protection: take(&mut parameters, "qop"),
            opaque: take(&mut parameters, "opaque"),
            userhash: take(&mut parameters, "userhash")
                .is_some_and(|userhash| userhash.eq_ignore_ascii_case("true")),
        })
    }

    /// Writes the header value. `algorithm`, `qop` and `nc` go unquoted as RFC 7616
    /// §3.4 demands ("a sender MUST NOT generate the quoted string syntax" for them).
    pub fn to_header_value(&self) -> Result<String, HeaderValueError> {
        let mut output = String::from("Digest");
        push_quoted(&mut output, "username", &self.username)?;
        push_quoted(&mut output, "realm", &self.realm)?;
        push_quoted(&mut output, "nonce", &self.nonce)?;
        push_quoted(&mut output, "uri", &self.uri)?;
        push_quoted(&mut output, "response", &self.response)?;
        if let Some(algorithm) = &self.algorithm {
            push_unquoted_checked(&mut output, "algorithm", algorithm)?;
        }
        if let Some(cnonce) = &self.cnonce {
            push_quoted(&mut output, "cnonce", cnonce)?;
        }
        if let Some(opaque) = &self.opaque {
            push_quoted(&mut output, "opaque", opaque)?;
        }
        if let Some(quality_of_protection) = &self.quality_of_protection {
            push_unquoted_checked(&mut output, "qop", quality_of_protection)?;
        }
        if let Some(nonce_count) = &self.nonce_count {
            push_unquoted_checked(&mut output, "nc", nonce_count)?;
        }
        if self.userhash {
            push_token(&mut output, "userhash", "true");
        }
        Ok(output)
    }
}

/// Unquoted values must be plain tokens, else the header would change meaning.
fn push_unquoted_checked(
    output: &mut String,
    name: &'static str,
    value: &str,
) -> Result<(), HeaderValueError> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_'))
    {
        return Err(HeaderValueError::NotAToken { parameter: name });
    }
    push_token(output, name, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA-256 Authorization header of RFC 7616 §3.9.1, unfolded.
    const RFC_7616_SHA256_AUTHORIZATION: &str = "Digest username=\"Mufasa\", \
        realm=\"http-auth@example.org\", uri=\"/dir/index.html\", algorithm=SHA-256, \
        nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
        cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
        response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
        opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

    #[test]
    fn parses_the_rfc_7616_example_and_prints_it_back() {
        let credentials = DigestResponse::parse(RFC_7616_SHA256_AUTHORIZATION).unwrap();
        assert_eq!(credentials.username, "Mufasa");
        assert_eq!(credentials.realm, "http-auth@example.org");
        assert_eq!(credentials.uri, "/dir/index.html");
        assert_eq!(credentials.algorithm.as_deref(), Some("SHA-256"));
        assert_eq!(credentials.nonce_count.as_deref(), Some("00000001"));
        assert_eq!(credentials.quality_of_protection.as_deref(), Some("auth"));
        assert_eq!(
            credentials.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        let printed = credentials.to_header_value().unwrap();
        assert!(printed.contains("algorithm=SHA-256"));
        assert!(printed.contains("qop=auth"));
        assert!(printed.contains("nc=00000001"));
        assert_eq!(DigestResponse::parse(&printed).unwrap(), credentials);
    }

    #[test]
    fn missing_required_parameter_is_named() {
        assert_eq!(
            DigestResponse::parse("Digest username=\"a\", realm=\"b\", nonce=\"c\", uri=\"d\""),
            Err(DigestSyntaxError::MissingParameter { name: "response" })
        );
    }

    #[test]
    fn split_parameters_from_a_view_give_the_same_result() {
        let from_text = DigestResponse::parse(RFC_7616_SHA256_AUTHORIZATION).unwrap();
        let from_view = DigestResponse::from_parameters([
            ("Username", "Mufasa"),
            ("realm", "http-auth@example.org"),
            ("uri", "/dir/index.html"),
            ("algorithm", "SHA-256"),
            ("nonce", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"),
            ("nc", "00000001"),
            ("cnonce", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
            ("qop", "auth"),
            (
                "response",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            ("opaque", "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"),
            ("userhash", "false"),
        ])
        .unwrap();
        assert_eq!(from_view, from_text);
        assert_eq!(
            DigestResponse::from_parameters([("nonce", "a"), ("NONCE", "b")]),
            Err(DigestSyntaxError::DuplicateParameter {
                name: "nonce".into()
            })
        );
    }

    #[test]
    fn refuses_to_print_injected_values() {
        let credentials = DigestResponse {
            username: "alice".into(),
            realm: "example.org".into(),
            nonce: "n".into(),
            uri: "sip:example.org".into(),
            response: "00".into(),
            quality_of_protection: Some("auth, evil=1".into()),
            ..DigestResponse::default()
        };
        assert_eq!(
            credentials.to_header_value(),
            Err(HeaderValueError::NotAToken { parameter: "qop" })
        );
    }
}
