//! Where the CLI finds the API: URL, credentials and TLS trust, taken from flags, then the
//! environment, then a TOML config file, in that order of precedence.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::CliError;

/// Used when neither a flag, the environment nor a config file names the API: the provisioning
/// listener's default (C5 serves its admin API on HTTPS port 1443).
pub const DEFAULT_API_URL: &str = "https://127.0.0.1:1443";

/// Used when no user is given: the login of the first administrator that the provisioning
/// component creates on its first start (ngcp's default admin login too).
pub const DEFAULT_API_USER: &str = "administrator";

/// Environment variable for the API base URL.
pub const ENV_URL: &str = "VOXIDE_API_URL";
/// Environment variable for the API user.
pub const ENV_USER: &str = "VOXIDE_API_USER";
/// Environment variable for the API password.
pub const ENV_PASSWORD: &str = "VOXIDE_API_PASSWORD";

/// Connection flags shared by every `voxide admin` command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectionArgs {
    /// API base URL, e.g. https://127.0.0.1:1443 [env: VOXIDE_API_URL]
    #[arg(long = "url", id = "api_url", global = true, value_name = "URL")]
    pub url: Option<String>,
    /// API user (an administrator login; default: administrator) [env: VOXIDE_API_USER]
    #[arg(long = "user", id = "api_user", global = true, value_name = "USER")]
    pub user: Option<String>,
    /// API password [env: VOXIDE_API_PASSWORD]
    #[arg(
        long = "password",
        id = "api_password",
        global = true,
        value_name = "PASSWORD"
    )]
    pub password: Option<String>,
    /// TOML file with an [admin] table holding url, user, password (and optionally ca_cert,
    /// insecure); flags and environment variables override it
    #[arg(long = "config", id = "api_config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Trust the server certificate(s) in this PEM file instead of the system trust store
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate (prints a warning; for tests and first set-up only)
    #[arg(long, global = true)]
    pub insecure: bool,
}

/// The `[admin]` table of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminSection {
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    ca_cert: Option<PathBuf>,
    insecure: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    // Other components keep their own tables in the same file, so only [admin] is read.
    #[serde(default)]
    admin: AdminSection,
}

/// Resolved connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Base URL without a trailing slash and without `/api`, e.g. `https://127.0.0.1:1443`.
    pub base_url: String,
    /// API user.
    pub user: String,
    /// API password.
    pub password: String,
    /// PEM file whose certificates are the only trusted roots.
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate.
    pub insecure: bool,
}

impl Settings {
    /// Resolves the settings from the flags, an environment lookup (a function so tests need not
    /// touch the process environment) and the config file named by `--config`.
    ///
    /// # Errors
    /// [`CliError::Settings`] naming the flag, variable or config key that is missing or invalid.
    pub fn resolve(
        args: &ConnectionArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, CliError> {
        let file = match &args.config {
            Some(path) => read_config_file(path)?,
            None => AdminSection::default(),
        };
        let file_key = |key: &str| match &args.config {
            Some(path) => format!("[admin] {key} in {}", path.display()),
            None => key.to_owned(),
        };
        let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());

        let (url, url_source) = if let Some(url) = non_empty(args.url.clone()) {
            (url, "--url".to_owned())
        } else if let Some(url) = non_empty(env(ENV_URL)) {
            (url, ENV_URL.to_owned())
        } else if let Some(url) = non_empty(file.url) {
            (url, file_key("url"))
        } else {
            (DEFAULT_API_URL.to_owned(), "default URL".to_owned())
        };
        let base_url =
            normalise_base_url(&url).map_err(|detail| CliError::settings(url_source, detail))?;

        let user = non_empty(args.user.clone())
            .or_else(|| non_empty(env(ENV_USER)))
            .or_else(|| non_empty(file.user))
            .unwrap_or_else(|| DEFAULT_API_USER.to_owned());
        let password = non_empty(args.password.clone())
            .or_else(|| non_empty(env(ENV_PASSWORD)))
            .or_else(|| non_empty(file.password))
            .ok_or_else(|| {
                CliError::settings(
                    "--password",
                    format!(
                        "no API password given (use --password, {ENV_PASSWORD} or [admin] password in --config)"
                    ),
                )
            })?;

        Ok(Self {
            base_url,
            user,
            password,
            ca_cert: args.ca_cert.clone().or(file.ca_cert),
            insecure: args.insecure || file.insecure.unwrap_or(false),
        })
    }
}

fn read_config_file(path: &Path) -> Result<AdminSection, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::settings("--config", format!("cannot read {}: {e}", path.display()))
    })?;
    let parsed: ConfigFile = toml::from_str(&text).map_err(|e| {
        CliError::settings(
            "--config",
            format!(
                "{} is not a valid config file: {}",
                path.display(),
                e.message()
            ),
        )
    })?;
    Ok(parsed.admin)
}

/// Accepts `https://host:port`, with or without a trailing `/` or `/api/`, and returns the form
/// without either, so request paths can be appended as `/api/<collection>/`.
fn normalise_base_url(raw: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| format!("'{raw}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("'{raw}' must start with http:// or https://"));
    }
    if url.host_str().is_none() {
        return Err(format!("'{raw}' has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("'{raw}' must not carry a query or fragment"));
    }
    let mut text = url.as_str().trim_end_matches('/').to_owned();
    if let Some(stripped) = text.strip_suffix("/api") {
        text = stripped.to_owned();
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write as _;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |key| map.get(key).cloned()
    }

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write config");
        file
    }

    #[test]
    fn flags_override_environment_and_file() {
        let file = config_file(
            "[admin]\nurl = \"https://file.example:1443\"\nuser = \"fileuser\"\npassword = \"filepw\"\n",
        );
        let args = ConnectionArgs {
            url: Some("http://127.0.0.1:8080".into()),
            user: Some("flaguser".into()),
            password: Some("flagpw".into()),
            config: Some(file.path().to_owned()),
            ..ConnectionArgs::default()
        };
        let env = env_of(&[
            (ENV_URL, "https://env.example"),
            (ENV_USER, "envuser"),
            (ENV_PASSWORD, "envpw"),
        ]);
        let settings = Settings::resolve(&args, &env).expect("resolves");
        assert_eq!(settings.base_url, "http://127.0.0.1:8080");
        assert_eq!(settings.user, "flaguser");
        assert_eq!(settings.password, "flagpw");
    }

    #[test]
    fn environment_overrides_file() {
        let file = config_file(
            "[admin]\nurl = \"https://file.example:1443\"\nuser = \"fileuser\"\npassword = \"filepw\"\n",
        );
        let args = ConnectionArgs {
            config: Some(file.path().to_owned()),
            ..ConnectionArgs::default()
        };
        let env = env_of(&[(ENV_USER, "envuser")]);
        let settings = Settings::resolve(&args, &env).expect("resolves");
        assert_eq!(settings.base_url, "https://file.example:1443");
        assert_eq!(settings.user, "envuser");
        assert_eq!(settings.password, "filepw");
    }

    #[test]
    fn file_supplies_everything_and_tls_options() {
        let file = config_file(
            "[proxy]\nlisten = \"x\"\n[admin]\nurl = \"https://a.example:1443/api/\"\nuser = \"u\"\npassword = \"p\"\nca_cert = \"/etc/voxide/ca.pem\"\ninsecure = true\n",
        );
        let args = ConnectionArgs {
            config: Some(file.path().to_owned()),
            ..ConnectionArgs::default()
        };
        let settings = Settings::resolve(&args, &env_of(&[])).expect("resolves");
        assert_eq!(
            settings,
            Settings {
                base_url: "https://a.example:1443".into(),
                user: "u".into(),
                password: "p".into(),
                ca_cert: Some("/etc/voxide/ca.pem".into()),
                insecure: true,
            }
        );
    }

    #[test]
    fn url_defaults_to_local_https_listener() {
        let env = env_of(&[(ENV_USER, "u"), (ENV_PASSWORD, "p")]);
        let settings = Settings::resolve(&ConnectionArgs::default(), &env).expect("resolves");
        assert_eq!(settings.base_url, DEFAULT_API_URL);
        assert!(!settings.insecure);
    }

    #[test]
    fn empty_values_count_as_unset() {
        let args = ConnectionArgs {
            user: Some(String::new()),
            ..ConnectionArgs::default()
        };
        let env = env_of(&[(ENV_USER, "envuser"), (ENV_PASSWORD, "p")]);
        assert_eq!(
            Settings::resolve(&args, &env).expect("resolves").user,
            "envuser"
        );
    }

    #[test]
    fn user_defaults_to_the_first_administrator() {
        let settings =
            Settings::resolve(&ConnectionArgs::default(), &env_of(&[(ENV_PASSWORD, "p")]))
                .expect("resolves");
        assert_eq!(settings.user, DEFAULT_API_USER);
    }

    #[test]
    fn missing_password_names_the_flag_and_alternatives() {
        let error = Settings::resolve(&ConnectionArgs::default(), &env_of(&[(ENV_USER, "u")]))
            .expect_err("no password");
        let text = error.to_string();
        assert!(text.starts_with("--password:"), "{text}");
        assert!(text.contains(ENV_PASSWORD), "{text}");
        assert_eq!(error.exit_status(), 2);
    }

    #[test]
    fn bad_url_names_its_source() {
        let env = env_of(&[
            (ENV_URL, "ftp://x.example"),
            (ENV_USER, "u"),
            (ENV_PASSWORD, "p"),
        ]);
        let error = Settings::resolve(&ConnectionArgs::default(), &env).expect_err("bad scheme");
        assert!(error.to_string().starts_with("VOXIDE_API_URL:"), "{error}");

        let args = ConnectionArgs {
            url: Some("not a url".into()),
            ..ConnectionArgs::default()
        };
        let error = Settings::resolve(&args, &env).expect_err("not a url");
        assert!(error.to_string().starts_with("--url:"), "{error}");
    }

    #[test]
    fn unreadable_or_invalid_config_file_is_reported() {
        let args = ConnectionArgs {
            config: Some("/nonexistent/voxide.toml".into()),
            ..ConnectionArgs::default()
        };
        let error = Settings::resolve(&args, &env_of(&[])).expect_err("missing file");
        assert!(
            error.to_string().starts_with("--config: cannot read"),
            "{error}"
        );

        let file = config_file("[admin]\nurll = \"typo\"\n");
        let args = ConnectionArgs {
            config: Some(file.path().to_owned()),
            ..ConnectionArgs::default()
        };
        let error = Settings::resolve(&args, &env_of(&[])).expect_err("unknown key");
        let text = error.to_string();
        assert!(text.contains("urll"), "{text}");
    }

    #[test]
    fn base_url_normalisation() {
        assert_eq!(
            normalise_base_url("https://h:1443/").as_deref(),
            Ok("https://h:1443")
        );
        assert_eq!(
            normalise_base_url("https://h:1443/api").as_deref(),
            Ok("https://h:1443")
        );
        assert_eq!(
            normalise_base_url("https://h:1443/api/").as_deref(),
            Ok("https://h:1443")
        );
        assert_eq!(
            normalise_base_url("http://h/prefix/").as_deref(),
            Ok("http://h/prefix")
        );
        assert!(normalise_base_url("https://h/?a=b").is_err());
    }
}
