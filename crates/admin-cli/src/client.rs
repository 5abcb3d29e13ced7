//! HTTP(S) client for the provisioning REST API: TLS trust set-up, HAL collection paging,
//! create-then-read, and mapping of problem+json answers to [`CliError`].

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_platform_verifier::BuilderVerifierExt;
use serde_json::Value;

use crate::error::CliError;
use crate::settings::Settings;

/// Items fetched per page when listing a collection (the API's default is 10).
const PAGE_ROWS: usize = 100;
/// Guards against a server whose `next` link never ends.
const MAX_PAGES: usize = 10_000;

/// A logged-in view of the provisioning API.
#[derive(Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: String,
    user: String,
    password: String,
}

impl ApiClient {
    /// Builds the client; with `insecure` set, warns on `stderr` that certificates are not checked.
    ///
    /// # Errors
    /// [`CliError::Settings`] when the CA file cannot be read or holds no certificate.
    pub fn new(settings: &Settings, stderr: &mut dyn Write) -> Result<Self, CliError> {
        let tls = tls_config(settings)?;
        if settings.insecure {
            writeln!(
                stderr,
                "warning: --insecure: the API server's certificate is not checked; anyone on the path can read the credentials"
            )?;
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("voxide-admin/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::settings("TLS", error_chain(&e)))?;
        Ok(Self {
            http,
            base_url: settings.base_url.clone(),
            user: settings.user.clone(),
            password: settings.password.clone(),
        })
    }

    /// `/api/<path>` under the base URL, with the query pairs appended.
    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, CliError> {
        let text = format!("{}/api/{}", self.base_url, path.trim_start_matches('/'));
        let mut url =
            Url::parse(&text).map_err(|e| CliError::settings("--url", format!("{text}: {e}")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        Ok(url)
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<(&'static str, &Value)>,
    ) -> Result<reqwest::Response, CliError> {
        let mut request = self
            .http
            .request(method, url.clone())
            .basic_auth(&self.user, Some(&self.password))
            .header(
                reqwest::header::ACCEPT,
                "application/hal+json, application/json",
            );
        if let Some((content_type, body)) = body {
            let bytes = serde_json::to_vec(body).map_err(|e| CliError::Protocol {
                url: url.to_string(),
                detail: e.to_string(),
            })?;
            request = request.header(CONTENT_TYPE, content_type).body(bytes);
        }
        let response = request.send().await.map_err(|e| CliError::Connection {
            url: without_query(&url),
            detail: connection_detail(&e),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(CliError::Unauthorized {
                url: self.base_url.clone(),
                user: self.user.clone(),
            });
        }
        let text = response.text().await.unwrap_or_default();
        Err(problem_to_error(status, &text))
    }

    async fn read_json(url: &Url, response: reqwest::Response) -> Result<Value, CliError> {
        let bytes = response.bytes().await.map_err(|e| CliError::Connection {
            url: without_query(url),
            detail: connection_detail(&e),
        })?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| CliError::Protocol {
            url: url.to_string(),
            detail: format!("body is not JSON: {e}"),
        })
    }

    /// GET one resource (`path` relative to `/api/`).
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        let url = self.url(path, query)?;
        let response = self.send(Method::GET, url.clone(), None).await?;
        Self::read_json(&url, response).await
    }

    /// Every item of collection `name` (e.g. `domains`) that matches the filters, following
    /// the HAL `next` links page by page.
    pub async fn list(
        &self,
        name: &str,
        filters: &[(&str, String)],
    ) -> Result<Vec<Value>, CliError> {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut query: Vec<(&str, String)> = filters.to_vec();
            query.push(("page", page.to_string()));
            query.push(("rows", PAGE_ROWS.to_string()));
            let url = self.url(&format!("{name}/"), &query)?;
            let response = self.send(Method::GET, url.clone(), None).await?;
            let body = Self::read_json(&url, response).await?;
            let before = items.len();
            match body.pointer(&format!("/_embedded/ngcp:{name}")) {
                Some(Value::Array(page_items)) => items.extend(page_items.iter().cloned()),
                // ngcp quirk: a page holding exactly one item embeds the object itself.
                Some(item @ Value::Object(_)) => items.push(item.clone()),
                None | Some(Value::Null) => {}
                Some(other) => {
                    return Err(CliError::Protocol {
                        url: url.to_string(),
                        detail: format!(
                            "_embedded.ngcp:{name} is neither a list nor an object: {other}"
                        ),
                    });
                }
            }
            let got = items.len() - before;
            let has_next = body.pointer("/_links/next").is_some_and(|v| !v.is_null());
            if !has_next || got == 0 {
                break;
            }
        }
        Ok(items)
    }

    /// POST `body` to collection `name` and return the created item, read back from the
    /// `Location` header (ngcp answers most POSTs with an empty body).
    pub async fn create(&self, name: &str, body: &Value) -> Result<Value, CliError> {
        let url = self.url(&format!("{name}/"), &[])?;
        let response = self
            .send(Method::POST, url.clone(), Some(("application/json", body)))
            .await?;
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let returned = Self::read_json(&url, response).await?;
        if returned.get("id").is_some() {
            return Ok(returned);
        }
        let location = location.ok_or_else(|| CliError::Protocol {
            url: url.to_string(),
            detail: "201 Created without a Location header".into(),
        })?;
        let item_url = url.join(&location).map_err(|e| CliError::Protocol {
            url: url.to_string(),
            detail: format!("bad Location '{location}': {e}"),
        })?;
        let response = self.send(Method::GET, item_url.clone(), None).await?;
        Self::read_json(&item_url, response).await
    }

    /// POST `body` to `path` (an action such as `applyrewrites/`) and return its JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        let url = self.url(path, &[])?;
        let response = self
            .send(Method::POST, url.clone(), Some(("application/json", body)))
            .await?;
        Self::read_json(&url, response).await
    }

    /// PATCH `path` with a JSON Patch (RFC 6902) array.
    pub async fn patch(&self, path: &str, operations: &Value) -> Result<(), CliError> {
        let url = self.url(path, &[])?;
        self.send(
            Method::PATCH,
            url,
            Some(("application/json-patch+json", operations)),
        )
        .await?;
        Ok(())
    }

    /// PUT (full replacement) of `path`.
    pub async fn put(&self, path: &str, body: &Value) -> Result<(), CliError> {
        let url = self.url(path, &[])?;
        self.send(Method::PUT, url, Some(("application/json", body)))
            .await?;
        Ok(())
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> Result<(), CliError> {
        let url = self.url(path, &[])?;
        self.send(Method::DELETE, url, None).await?;
        Ok(())
    }
}

/// The URL as an operator would type it: paging parameters only add noise to a message.
fn without_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

/// Turns an error answer into a [`CliError::Api`], reading the RFC 9457 problem members
/// (`field`, `detail`, `title`) and falling back to ngcp's `message`.
pub(crate) fn problem_to_error(status: StatusCode, body: &str) -> CliError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let member = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut field = member("field");
    let detail = member("detail")
        .or_else(|| member("message"))
        .or_else(|| member("title"))
        .or_else(|| {
            let trimmed = body.trim();
            (!trimmed.is_empty() && trimmed.len() <= 200 && parsed.is_none())
                .then(|| trimmed.to_owned())
        })
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    if field.is_none() {
        field = ngcp_validation_field(&detail);
    }
    CliError::Api {
        status: status.as_u16(),
        field,
        detail: one_line(ngcp_validation_errors(&detail).unwrap_or(&detail)),
    }
}

/// The `errors='…'` part of an ngcp validation message: the field is already named in front
/// of the CLI's message, so the rest would only repeat it.
fn ngcp_validation_errors(message: &str) -> Option<&str> {
    if !message.starts_with("Validation failed.") {
        return None;
    }
    let start = message.find("errors='")? + "errors='".len();
    let end = message.rfind('\'')?;
    (end > start).then(|| &message[start..end])
}

/// Joins a multi-line detail (e.g. a regex error with a caret line) into one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// ngcp writes validation failures as `Validation failed. field='username', ...`.
fn ngcp_validation_field(message: &str) -> Option<String> {
    let start = message.find("field='")? + "field='".len();
    let rest = &message[start..];
    let end = rest.find('\'')?;
    Some(rest[..end].to_owned()).filter(|f| !f.is_empty())
}

/// The innermost cause of a transport error, which says what actually went wrong
/// ("Connection refused", "invalid peer certificate: UnknownIssuer"), plus a hint for TLS trust.
fn connection_detail(error: &reqwest::Error) -> String {
    let mut detail = error_chain(error);
    if error.is_timeout() {
        detail = format!("timed out ({detail})");
    }
    if detail.contains("certificate") {
        detail.push_str("; trust the server's certificate with --ca-cert FILE (or --insecure)");
    }
    detail
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut innermost = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        innermost = cause.to_string();
        source = cause.source();
    }
    innermost
}

fn tls_config(settings: &Settings) -> Result<ClientConfig, CliError> {
    // ring rather than aws-lc: no C/CMake build, same provider the server side uses.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::settings("TLS", e.to_string()))?;
    let config = if settings.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate { provider }))
            .with_no_client_auth()
    } else if let Some(path) = &settings.ca_cert {
        builder
            .with_root_certificates(read_root_certificates(path)?)
            .with_no_client_auth()
    } else {
        builder
            .with_platform_verifier()
            .map_err(|e| CliError::settings("TLS", format!("system trust store: {e}")))?
            .with_no_client_auth()
    };
    Ok(config)
}

fn read_root_certificates(path: &Path) -> Result<RootCertStore, CliError> {
    let bytes = std::fs::read(path).map_err(|e| {
        CliError::settings("--ca-cert", format!("cannot read {}: {e}", path.display()))
    })?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&bytes) {
        let certificate = certificate.map_err(|e| {
            CliError::settings("--ca-cert", format!("{}: bad PEM: {e}", path.display()))
        })?;
        roots.add(certificate).map_err(|e| {
            CliError::settings(
                "--ca-cert",
                format!("{}: unusable certificate: {e}", path.display()),
            )
        })?;
    }
    if roots.is_empty() {
        return Err(CliError::settings(
            "--ca-cert",
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(roots)
}

/// `--insecure`: skips the certificate check but still verifies the handshake signatures, so the
/// connection is at least bound to whatever key the server presented.
#[derive(Debug)]
struct AcceptAnyServerCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_json_field_and_detail_are_used() {
        let body = r#"{"type":"about:blank","title":"Unprocessable Entity","status":422,
            "detail":"already exists in domain example.org","field":"username","code":422,
            "message":"Validation failed"}"#;
        let error = problem_to_error(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(
            error.to_string(),
            "username: already exists in domain example.org"
        );
    }

    #[test]
    fn ngcp_message_is_the_fallback_and_its_field_is_extracted() {
        let body = r#"{"code":422,"message":"Validation failed. field='username', input='', errors='required'"}"#;
        let error = problem_to_error(StatusCode::UNPROCESSABLE_ENTITY, body);
        match &error {
            CliError::Api {
                status,
                field,
                detail,
            } => {
                assert_eq!(*status, 422);
                assert_eq!(field.as_deref(), Some("username"));
                assert_eq!(detail, "required");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ngcp_validation_wrapping_is_reduced_to_the_reason_on_one_line() {
        let body = r#"{"status":422,"field":"customer_id","detail":"Validation failed. field='customer_id', errors='Invalid 'customer_id', doesn't exist: 99'"}"#;
        let error = problem_to_error(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(
            error.to_string(),
            "customer_id: Invalid 'customer_id', doesn't exist: 99"
        );

        let body = r#"{"status":422,"field":"match_pattern","detail":"Validation failed. field='match_pattern', errors='not a valid regular expression: regex parse error:\n    ((\n     ^\nerror: unclosed group'"}"#;
        let error = problem_to_error(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(
            error.to_string(),
            "match_pattern: not a valid regular expression: regex parse error: (( ^ error: unclosed group"
        );
    }

    #[test]
    fn non_json_or_empty_bodies_still_give_a_message() {
        let error = problem_to_error(StatusCode::NOT_FOUND, "");
        assert_eq!(error.to_string(), "Not Found (HTTP 404)");
        let error = problem_to_error(StatusCode::BAD_GATEWAY, "upstream down");
        assert_eq!(error.to_string(), "upstream down (HTTP 502)");
    }

    #[test]
    fn ca_file_without_certificates_is_rejected() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let error = read_root_certificates(file.path()).expect_err("empty file");
        assert!(error.to_string().starts_with("--ca-cert:"), "{error}");
        let error = read_root_certificates(Path::new("/nonexistent/ca.pem")).expect_err("missing");
        assert!(error.to_string().contains("cannot read"), "{error}");
    }
}
