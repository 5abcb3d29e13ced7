//! Thin conversions from the typed header views of `sip-message` (RFC 3261 §20.7,
//! §20.28, §20.27, §20.44) to the plain digest structs.

use sip_message::{Challenge, Credentials, Message};

use super::challenge::DigestChallenge;
use super::credentials::DigestResponse;
use super::parameters::DigestSyntaxError;

/// Which credentials header a request carries: Authorization answers a 401 from a
/// registrar or UAS, Proxy-Authorization a 407 from a proxy (RFC 3261 §22.2–§22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialsHeader {
    /// `Authorization`.
    Authorization,
    /// `Proxy-Authorization`.
    ProxyAuthorization,
}

/// Which challenge header a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeHeader {
    /// `WWW-Authenticate` (401).
    WwwAuthenticate,
    /// `Proxy-Authenticate` (407).
    ProxyAuthenticate,
}

/// `(name, unquoted value)` pairs of a Digest view, as owned UTF-8.
fn digest_parameters(view: &Credentials<'_>) -> Result<Vec<(String, String)>, DigestSyntaxError> {
    if !view.is_digest() {
        return Err(DigestSyntaxError::NotDigest {
            scheme: String::from_utf8_lossy(view.scheme).into_owned(),
        });
    }
    view.params
        .iter()
        .map(|(name, raw_value)| {
            let name = core::str::from_utf8(name).map_err(|_| DigestSyntaxError::NotUtf8)?;
            let value = sip_message::syntax::unquote(raw_value);
            let value = core::str::from_utf8(&value).map_err(|_| DigestSyntaxError::NotUtf8)?;
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}

impl DigestResponse {
    /// From an Authorization / Proxy-Authorization view.
    pub fn from_credentials(view: &Credentials<'_>) -> Result<Self, DigestSyntaxError> {
        let parameters = digest_parameters(view)?;
        Self::from_parameters(
            parameters
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        )
    }

    /// The Digest credentials for `realm` among the request's `header` values
    /// (RFC 3261 §22.4: a request may carry one per realm).
    ///
    /// `None` when no value is for this realm (answer with a challenge); the first
    /// syntax error when no good value matched but a broken one was present.
    pub fn find_in_request(
        request: &Message,
        header: CredentialsHeader,
        realm: &str,
    ) -> Option<Result<Self, DigestSyntaxError>> {
        let views: Vec<_> = match header {
            CredentialsHeader::Authorization => request.authorizations().collect(),
            CredentialsHeader::ProxyAuthorization => request.proxy_authorizations().collect(),
        };
        let mut first_error = None;
        for view in views {
            let parsed = view
                .map_err(DigestSyntaxError::Header)
                .and_then(|view| Self::from_credentials(&view));
            match parsed {
                Ok(credentials) if credentials.realm == realm => return Some(Ok(credentials)),
                Ok(_) => {}
                // Another scheme (e.g. Bearer for another realm) is not ours to judge.
                Err(DigestSyntaxError::NotDigest { .. }) => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map(Err)
    }
}

impl DigestChallenge {
    /// From a WWW-Authenticate / Proxy-Authenticate view.
    pub fn from_challenge(view: &Challenge<'_>) -> Result<Self, DigestSyntaxError> {
        let parameters = digest_parameters(view)?;
        Self::from_parameters(
            parameters
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        )
    }

    /// Every Digest challenge of a 401/407 `response` that this implementation can
    /// answer; other schemes and unsupported algorithms are skipped (RFC 7616 §3.7).
    pub fn all_in_response(response: &Message, header: ChallengeHeader) -> Vec<Self> {
        let views: Vec<_> = match header {
            ChallengeHeader::WwwAuthenticate => response.www_authenticates().collect(),
            ChallengeHeader::ProxyAuthenticate => response.proxy_authenticates().collect(),
        };
        views
            .into_iter()
            .filter_map(|view| Self::from_challenge(&view.ok()?).ok())
            .collect()
    }
}
