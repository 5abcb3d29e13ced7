//! Subscribers for the tests, created the way an operator does it: over the REST API.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use reqwest_ring as reqwest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{Value, json};

/// A provisioned SIP subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// Id in the API.
    pub id: i64,
    /// SIP username (user part of the AoR, digest username).
    pub username: String,
    /// SIP domain (digest realm).
    pub domain: String,
    /// SIP password.
    pub password: String,
    /// E.164 number without `+`: cc + ac + sn.
    pub number: String,
}

/// A client of the provisioning API logged in as the first administrator.
#[derive(Debug, Clone)]
pub struct Provisioning {
    client: reqwest::Client,
    base_url: String,
    login: String,
    password: String,
}

impl Provisioning {
    /// A client for `base_url` (`http://127.0.0.1:port`, or `https://…` with any
    /// certificate: a test talks to the node it started, whose self-signed certificate names
    /// `localhost` only).
    pub fn new(base_url: &str, login: &str, password: &str) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(AnyCertificate(provider.signature_verification_algorithms));
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()?;
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            login: login.to_owned(),
            password: password.to_owned(),
        })
    }

    /// POST a JSON body; the id of the created resource from `Location`.
    pub async fn create(&self, path: &str, body: &Value) -> anyhow::Result<i64> {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .basic_auth(&self.login, Some(&self.password))
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        if status.as_u16() != 201 {
            bail!("POST {path}: {status}: {text}");
        }
        location
            .rsplit('/')
            .find(|part| !part.is_empty())
            .and_then(|id| id.parse().ok())
            .with_context(|| format!("POST {path}: no id in Location `{location}`"))
    }

    /// GET a JSON document.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.base_url))
            .basic_auth(&self.login, Some(&self.password))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("GET {path}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("GET {path}: not JSON: {text}"))
    }

    /// PUT a JSON body (e.g. a whole preference set); any 2xx is success.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<()> {
        let response = self
            .client
            .put(format!("{}{path}", self.base_url))
            .basic_auth(&self.login, Some(&self.password))
            .json(body)
            .send()
            .await
            .with_context(|| format!("PUT {path}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("PUT {path}: {status}: {text}");
        }
        Ok(())
    }

    /// A domain; returns its id.
    pub async fn create_domain(&self, domain: &str) -> anyhow::Result<i64> {
        self.create("/api/domains/", &json!({ "domain": domain }))
            .await
    }

    /// A domain and a customer to hang subscribers on; returns the customer id.
    pub async fn create_domain_and_customer(&self, domain: &str) -> anyhow::Result<i64> {
        self.create_domain(domain).await?;
        self.create(
            "/api/customers/",
            &json!({ "name": format!("customer of {domain}") }),
        )
        .await
    }

    /// A subscriber with primary number `43 1 <sn>`.
    pub async fn create_subscriber(
        &self,
        customer_id: i64,
        domain: &str,
        username: &str,
        password: &str,
        sn: &str,
    ) -> anyhow::Result<Subscriber> {
        let id = self
            .create(
                "/api/subscribers/",
                &json!({
                    "customer_id": customer_id,
                    "domain": domain,
                    "username": username,
                    "password": password,
                    "primary_number": {"cc": "43", "ac": "1", "sn": sn},
                }),
            )
            .await?;
        Ok(Subscriber {
            id,
            username: username.to_owned(),
            domain: domain.to_owned(),
            password: password.to_owned(),
            number: format!("431{sn}"),
        })
    }
}

/// Accepts whatever certificate the server shows but still checks that the handshake was
/// signed with its key, so the connection is at least to the holder of that certificate.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
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
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
