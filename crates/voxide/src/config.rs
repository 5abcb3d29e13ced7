//! The one TOML configuration file. Every key has a default; an unknown key or a bad value
//! stops start-up with a message naming the key (serde's `deny_unknown_fields` plus typed
//! fields give "unknown field `x`, expected one of …" with the path).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded database, generated certificates and secrets live.
    pub data_dir: PathBuf,
    /// Provisioning database.
    pub database: DatabaseConfig,
    /// Provisioning REST API.
    pub api: ApiSection,
    /// Settings of `voxide admin` (url, user, password, ca_cert, insecure), read by the CLI;
    /// accepted here so one file serves both.
    #[serde(rename = "admin")]
    pub admin_client: Option<toml::Table>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./voxide-data"),
            database: DatabaseConfig::default(),
            api: ApiSection::default(),
            admin_client: None,
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `mysql://user:pass@host:port/db`; empty = SQLite file in the data dir.
    pub url: String,
}

/// `[api]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Listening address of the REST API.
    pub listen: SocketAddr,
    /// `self-signed` (default: generated into the data dir), `files` (`cert` + `key`) or
    /// `plain` (HTTP without TLS; only for loopback setups).
    pub tls: ApiTls,
    /// PEM certificate chain when `tls = "files"`.
    pub cert: Option<PathBuf>,
    /// PEM private key when `tls = "files"`.
    pub key: Option<PathBuf>,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], provisioning::DEFAULT_API_PORT)),
            tls: ApiTls::SelfSigned,
            cert: None,
            key: None,
        }
    }
}

/// `api.tls`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiTls {
    /// Generate a certificate on first start.
    SelfSigned,
    /// Use `api.cert` and `api.key`.
    Files,
    /// Plain HTTP.
    Plain,
}

impl Config {
    /// Read `path`, or the defaults when no file is given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// Parse and check a configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Config = toml::from_str(text).map_err(|error| anyhow::anyhow!("{error}"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.api.tls == ApiTls::Files {
            if self.api.cert.is_none() {
                anyhow::bail!("api.cert: required when api.tls = \"files\"");
            }
            if self.api.key.is_none() {
                anyhow::bail!("api.key: required when api.tls = \"files\"");
            }
        }
        Ok(())
    }

    /// The database URL, defaulting to an SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("voxide.db").display())
        } else {
            self.database.url.clone()
        }
    }

    /// The provisioning API settings.
    pub fn api_config(&self) -> provisioning::ApiConfig {
        let mut api = provisioning::ApiConfig::new(self.data_dir.clone());
        api.listen = self.api.listen;
        api.tls = match self.api.tls {
            ApiTls::SelfSigned => provisioning::TlsMode::SelfSigned {
                data_dir: self.data_dir.clone(),
            },
            ApiTls::Plain => provisioning::TlsMode::Plain,
            ApiTls::Files => provisioning::TlsMode::Files {
                cert: self.api.cert.clone().unwrap_or_default(),
                key: self.api.key.clone().unwrap_or_default(),
            },
        };
        api
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./voxide-data"));
        assert_eq!(config.api.listen.port(), 1443);
        assert_eq!(config.api.tls, ApiTls::SelfSigned);
        assert!(config.database_url().starts_with("sqlite://./voxide-data/voxide.db"));
    }

    #[test]
    fn unknown_key_is_named() {
        let error = Config::parse("[api]\nlisten = \"127.0.0.1:1\"\nlsten = 3\n").unwrap_err();
        assert!(format!("{error:#}").contains("lsten"), "{error:#}");
    }

    #[test]
    fn bad_value_is_named() {
        let error = Config::parse("[api]\nlisten = \"not an address\"\n").unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("listen"), "{text}");
        let error = Config::parse("[api]\ntls = \"files\"\n").unwrap_err();
        assert!(format!("{error:#}").contains("api.cert"));
    }
}
