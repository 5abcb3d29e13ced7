//! The one error type every repository method returns.

/// Why a store operation failed.
///
/// Client-caused problems (`NotFound`, `Conflict`, `Invalid`) carry the field they are about so the
/// REST API can answer 404/422 naming it; only `Database` and `Migrate` are server faults (500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The referenced row does not exist (`Entity '<entity>' not found.` in ngcp terms).
    #[error("{entity} '{key}' not found")]
    NotFound {
        /// What was looked up, e.g. `"subscriber"`.
        entity: &'static str,
        /// The id or name that was looked up.
        key: String,
    },
    /// A unique constraint would be violated (duplicate username, number, name …).
    #[error("{field} '{value}' already exists")]
    Conflict {
        /// The input field that collides, e.g. `"username"` or `"number"`.
        field: &'static str,
        /// The colliding value as the client sent it.
        value: String,
    },
    /// The input is malformed, out of range, or references something that does not exist.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The input field at fault (for preferences: the preference name).
        field: String,
        /// Human-readable reason, safe to show to the client.
        reason: String,
    },
    /// The row is still referenced and cannot be deleted (ngcp answers 423).
    #[error("{entity} '{key}' is still in use")]
    InUse {
        /// What was to be deleted.
        entity: &'static str,
        /// Its id.
        key: String,
    },
    /// The connection URL names no supported backend.
    #[error("unsupported database URL (expected sqlite:… or mysql:/mariadb:…): {0}")]
    UnsupportedUrl(String),
    /// A hashing primitive failed (argon2 parameters, thread pool gone).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// Server-side database failure; not the client's fault.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Shorthand for [`StoreError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`StoreError::NotFound`].
    pub fn not_found(entity: &'static str, key: impl ToString) -> Self {
        StoreError::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// True for errors the client caused (map to HTTP 4xx).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound { .. }
                | StoreError::Conflict { .. }
                | StoreError::Invalid { .. }
                | StoreError::InUse { .. }
        )
    }
}

/// Result alias used throughout the crate.
pub type StoreResult<T> = Result<T, StoreError>;

/// How a failed write relates to the constraints of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConstraintKind {
    Unique,
    ForeignKey,
    Other,
}

pub(crate) fn constraint_kind(error: &sqlx::Error) -> ConstraintKind {
    match error {
        sqlx::Error::Database(db) => match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => ConstraintKind::Unique,
            sqlx::error::ErrorKind::ForeignKeyViolation => ConstraintKind::ForeignKey,
            // SQLite reports an `ON DELETE RESTRICT` hit as SQLITE_CONSTRAINT_TRIGGER (1811),
            // which sqlx does not classify; its message is fixed text without client data.
            _ if db.code().as_deref() == Some("1811")
                && db.message().contains("FOREIGN KEY constraint failed") =>
            {
                ConstraintKind::ForeignKey
            }
            _ => ConstraintKind::Other,
        },
        _ => ConstraintKind::Other,
    }
}

/// Maps a write error: a unique violation becomes `Conflict { field, value }`, a foreign-key
/// violation becomes `Invalid { fk_field, "doesn't exist" }`, anything else stays a database error.
/// The caller names the fields because only it knows which constraint the statement can hit.
pub(crate) fn map_write_error(
    error: sqlx::Error,
    unique_field: &'static str,
    unique_value: &str,
    fk_field: &'static str,
) -> StoreError {
    match constraint_kind(&error) {
        ConstraintKind::Unique => StoreError::Conflict {
            field: unique_field,
            value: unique_value.to_owned(),
        },
        ConstraintKind::ForeignKey => {
            StoreError::invalid(fk_field, format!("'{fk_field}' doesn't exist"))
        }
        ConstraintKind::Other => StoreError::Database(error),
    }
}
