//! The voxide provisioning database: schema, migrations and repositories.
//!
//! # Layout
//! - [`Store`] owns a connection pool for one of two backends: **SQLite** (the embedded default,
//!   one file in the data directory, opened in WAL mode with foreign keys on and a busy timeout)
//!   or **MariaDB/MySQL** (production; InnoDB, utf8mb4 with binary collation so both backends
//!   compare names byte-wise alike). [`Store::connect`] picks the backend from the URL scheme and
//!   applies the migrations of `migrations/sqlite` or `migrations/mysql` (DDL dialects differ,
//!   the table and column names are the same).
//! - One repository trait per aggregate, all implemented by [`Store`]: [`DomainRepository`],
//!   [`CustomerRepository`], [`SubscriberRepository`] (incl. numbers and the SIP credential
//!   lookup), [`PreferenceRepository`], [`CallForwardRepository`], [`PeeringRepository`],
//!   [`RewriteRuleRepository`], [`AdminRepository`]. `use store::prelude::*;` brings them in.
//! - Models are plain serde structs whose field names follow the ngcp-panel REST API.
//! - Errors are [`StoreError`]: client-caused failures are typed (`NotFound`, `Conflict { field }`,
//!   `Invalid { field, reason }`, `InUse`), never a raw SQL message.
//!
//! # Backends
//! The pool is an enum ([`Backend`]) rather than `sqlx::Any`: each query is written once and
//! compiled for both drivers by the `on_pool!` macro, so native column types (bool, i64) decode
//! without `Any`'s lowest-common-denominator conversions. All SQL is static text with `?`
//! placeholders, which both dialects accept; optional filters use `(? IS NULL OR col = ?)`.
//!
//! # Freshness
//! There is **no cache**: every read goes to the database, so a committed write is visible to
//! the next read on any connection at once (well inside the one-second rule the proxy relies on
//! for "REGISTER works right after provisioning"). Multi-row writes (a subscriber and its
//! numbers, a set and its entries) run in one transaction, so readers never see half of one.

pub mod acc;
mod admin;
mod callforward;
pub mod cdr;
mod credentials;
mod customer;
mod direct;
mod domain;
mod error;
pub mod location;
mod paging;
mod peering;
mod preference;
mod rewrite;
mod subscriber;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use acc::{AccRecord, AccRepository, NewAccRecord};
pub use admin::{Admin, AdminRepository, INITIAL_ADMIN_LOGIN, NewAdmin};
pub use callforward::{
    CallForwardRepository, CallForwardType, CallForwards, CfMapping, CfMappings, CfSetFilter,
    Destination, DestinationSet, NewDestinationSet, NewSourceSet, NewTimeSet, SimpleCallForward,
    Source, SourceMode, SourceSet, TimePeriod, TimeSet,
};
pub use cdr::{
    CallStatus, CallType, Cdr, CdrFilter, CdrLeg, CdrRepository, ExportStatus, MediationCommit,
    MediationCounts, MediationOutcome, NewCdr, SubscriberRef, TrashedAcc,
};
pub use credentials::{
    ha1_md5, ha1_sha256, hash_password, hash_password_blocking, verify_password,
    verify_password_blocking,
};
pub use customer::{Customer, CustomerFilter, CustomerRepository, CustomerStatus, NewCustomer};
pub use direct::SipCallee;
pub use domain::{Domain, DomainFilter, DomainRepository, NewDomain};
pub use error::{StoreError, StoreResult};
pub use location::{LocationKey, LocationRecord, LocationRepository};
pub use paging::{Page, Paged};
pub use peering::{
    NewPeeringGroup, NewPeeringRule, NewPeeringServer, PeeringGroup, PeeringGroupFilter,
    PeeringRepository, PeeringRule, PeeringRuleFilter, PeeringServer, PeeringServerFilter,
    Transport,
};
pub use preference::{
    EffectivePreference, PreferenceDefinition, PreferenceLevel, PreferenceRepository,
    PreferenceSource, PreferenceType,
};
pub use rewrite::{
    CompiledRuleSet, NewRewriteRule, NewRewriteRuleSet, RewriteDirection, RewriteField,
    RewriteRule, RewriteRuleFilter, RewriteRuleRepository, RewriteRuleSet, RewriteRuleSetFilter,
    RewriteVariables, Rewritten, SkippedRule,
};
pub use subscriber::{
    AliasNumber, E164Number, NewSubscriber, Number, NumberFilter, NumberUpdate, SipCredentials,
    Subscriber, SubscriberFilter, SubscriberRepository, SubscriberStatus, SubscriberUpdate,
};

/// All repository traits, for `use store::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AdminRepository, CallForwardRepository, CdrRepository, CustomerRepository,
        DomainRepository, PeeringRepository, PreferenceRepository, RewriteRuleRepository, Store,
        StoreError, StoreResult, SubscriberRepository,
    };
}

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static MYSQL_MIGRATOR: Migrator = sqlx::migrate!("./migrations/mysql");

/// How long a SQLite writer waits for another writer's lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection pool of one backend.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite(SqlitePool),
    /// MariaDB or MySQL server.
    MySql(MySqlPool),
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// SQLite.
    Sqlite,
    /// MariaDB/MySQL.
    MySql,
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend is active. The body is
/// compiled once per backend, so the same static SQL serves both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite($pool) => $body,
            $crate::Backend::MySql($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The id of the row an `INSERT` created; the two drivers name this differently.
pub(crate) trait InsertedId {
    fn inserted_id(&self) -> i64;
}

impl InsertedId for sqlx::sqlite::SqliteQueryResult {
    fn inserted_id(&self) -> i64 {
        self.last_insert_rowid()
    }
}

impl InsertedId for sqlx::mysql::MySqlQueryResult {
    fn inserted_id(&self) -> i64 {
        // AUTO_INCREMENT BIGINT ids stay far below i64::MAX.
        i64::try_from(self.last_insert_id()).unwrap_or(i64::MAX)
    }
}

/// Declares a closed set of lower-case text values stored as VARCHAR/TEXT and sent as JSON
/// strings, with `as_str`, `FromStr` and `TryFrom<String>` (the latter for `sqlx(try_from)`).
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text form stored in the database and used in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::StoreError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::StoreError::invalid(
                        $field,
                        format!("'{other}' is not one of: {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::StoreError;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                text.parse()
            }
        }
    };
}
pub(crate) use text_enum;

/// The provisioning database. Cheap to clone (the pool is shared); hold it in an `Arc` or clone it.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Inline reads on the SQLite file for the proxy's hot lookups (see `direct.rs`).
    direct: Option<std::sync::Arc<direct::DirectReader>>,
}

impl Store {
    /// Opens the database named by `url` and applies pending migrations.
    ///
    /// - `sqlite:///var/lib/voxide/voxide.db?mode=rwc` (or `sqlite:relative.db`): WAL journal,
    ///   `synchronous=NORMAL`, foreign keys on, 5 s busy timeout. The file is created if missing.
    ///   `sqlite::memory:` gives a private in-memory database (tests, demos).
    /// - `mysql://user:pass@host:3306/voxide` (or `mariadb://…`): the database is created if it
    ///   does not exist yet.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let mut pool_options = SqlitePoolOptions::new().max_connections(8);
            if in_memory {
                // An in-memory database lives only while a connection holds it: keep one open.
                pool_options = pool_options
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
            let direct = (!in_memory).then(|| {
                std::sync::Arc::new(direct::DirectReader::new(options.get_filename().to_owned()))
            });
            let pool = pool_options.connect_with(options).await?;
            SQLITE_MIGRATOR.run(&pool).await?;
            Ok(Store {
                backend: Backend::Sqlite(pool),
                direct,
            })
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            let url = match url.strip_prefix("mariadb:") {
                Some(rest) => format!("mysql:{rest}"),
                None => url.to_owned(),
            };
            if !MySql::database_exists(&url).await? {
                MySql::create_database(&url).await?;
            }
            let options = MySqlConnectOptions::from_str(&url)?.charset("utf8mb4");
            let pool = MySqlPoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?;
            MYSQL_MIGRATOR.run(&pool).await?;
            Ok(Store {
                backend: Backend::MySql(pool),
                direct: None,
            })
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// Which backend this store uses.
    pub fn backend_kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::MySql(_) => BackendKind::MySql,
        }
    }

    /// The underlying pool, for components that need their own queries (e.g. the registrar).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Closes every pooled connection; further calls fail.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}
