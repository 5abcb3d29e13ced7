//! Every way a `voxide admin` command can fail, each rendered as one line that names the field,
//! flag or URL at fault.

use std::process::ExitCode;

/// A failed `voxide admin` command.
///
/// `Display` gives the one-line message printed after `error: `; [`CliError::exit_code`] gives
/// the process exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The connection settings are missing or invalid (URL, credentials, config file, CA file).
    #[error("{setting}: {detail}")]
    Settings {
        /// The flag, environment variable or config key at fault.
        setting: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A command argument passed clap's checks but is still unusable (e.g. a preference value
    /// that does not match the preference's type).
    #[error("{argument}: {detail}")]
    Argument {
        /// The argument or flag at fault.
        argument: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The API could not be reached at all.
    #[error("cannot reach the API at {url}: {detail}")]
    Connection {
        /// The URL the request went to.
        url: String,
        /// The underlying transport or TLS failure.
        detail: String,
    },
    /// The API refused the credentials (HTTP 401).
    #[error(
        "authentication failed for user '{user}' at {url} (HTTP 401): check --user and --password"
    )]
    Unauthorized {
        /// The API base URL.
        url: String,
        /// The user name that was sent.
        user: String,
    },
    /// The API answered with an error status and (usually) an RFC 9457 problem body.
    #[error("{}", render_api_error(*.status, .field.as_deref(), .detail))]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The offending input field, from the problem body's `field` member.
        field: Option<String>,
        /// The human-readable explanation, from `detail` (or ngcp's `message`).
        detail: String,
    },
    /// A name given on the command line does not match any object on the server.
    #[error("{kind}: no {kind} '{key}' found")]
    NotFound {
        /// What was looked up (`domain`, `subscriber`, `peering group`, ...).
        kind: &'static str,
        /// The name or id that was given.
        key: String,
    },
    /// The API answered 2xx but with a body this client cannot read.
    #[error("unexpected answer from {url}: {detail}")]
    Protocol {
        /// The URL the request went to.
        url: String,
        /// What was unexpected.
        detail: String,
    },
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

fn render_api_error(status: u16, field: Option<&str>, detail: &str) -> String {
    match field {
        Some(field) if !field.is_empty() => format!("{field}: {detail}"),
        _ => format!("{detail} (HTTP {status})"),
    }
}

impl CliError {
    /// The process exit status for this error: 2 for bad settings or arguments (as clap uses for
    /// usage errors), 3 when the API is unreachable, 4 for rejected credentials, 1 for anything
    /// the API refused.
    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_status())
    }

    /// The numeric form of [`CliError::exit_code`], for callers and tests that compare it.
    #[must_use]
    pub fn exit_status(&self) -> u8 {
        match self {
            Self::Settings { .. } | Self::Argument { .. } => 2,
            Self::Connection { .. } => 3,
            Self::Unauthorized { .. } => 4,
            Self::Api { .. } | Self::NotFound { .. } | Self::Protocol { .. } | Self::Output(_) => 1,
        }
    }

    pub(crate) fn argument(argument: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Argument {
            argument: argument.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn settings(setting: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Settings {
            setting: setting.into(),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_with_field_names_the_field_first() {
        let error = CliError::Api {
            status: 422,
            field: Some("username".into()),
            detail: "already exists in domain example.org".into(),
        };
        assert_eq!(
            error.to_string(),
            "username: already exists in domain example.org"
        );
        assert_eq!(error.exit_status(), 1);
    }

    #[test]
    fn api_error_without_field_shows_the_status() {
        let error = CliError::Api {
            status: 404,
            field: None,
            detail: "Entity 'subscriber' not found.".into(),
        };
        assert_eq!(
            error.to_string(),
            "Entity 'subscriber' not found. (HTTP 404)"
        );
    }

    #[test]
    fn unauthorized_names_user_url_and_flags() {
        let error = CliError::Unauthorized {
            url: "https://127.0.0.1:1443".into(),
            user: "admin".into(),
        };
        let text = error.to_string();
        assert!(text.contains("'admin'"), "{text}");
        assert!(text.contains("https://127.0.0.1:1443"), "{text}");
        assert!(text.contains("401"), "{text}");
        assert_eq!(error.exit_status(), 4);
    }

    #[test]
    fn exit_statuses_differ_by_kind() {
        assert_eq!(CliError::settings("--url", "missing").exit_status(), 2);
        assert_eq!(
            CliError::Connection {
                url: "http://127.0.0.1:9".into(),
                detail: "connection refused".into()
            }
            .exit_status(),
            3
        );
        assert_eq!(
            CliError::NotFound {
                kind: "domain",
                key: "x.example".into()
            }
            .to_string(),
            "domain: no domain 'x.example' found"
        );
    }
}
