//! Synchronous point reads on the embedded SQLite file, for the proxy's per-request lookups.
//!
//! Why hand-written next to sqlx: sqlx runs every SQLite connection on a worker thread and hands
//! each query and each row across channels. On the REGISTER path those hand-offs (futex wake-ups
//! of the worker and of the waiting task) cost more CPU than the indexed read itself — a perf
//! profile of the proxy under load put a third of its time there. An indexed read takes a few
//! microseconds, so it runs inline on the calling task through rusqlite, on a small pool of
//! read-only connections to the same file. Nothing is cached: every call reads the database
//! (ARCHITECTURE.md invariant 7). MariaDB and in-memory SQLite keep using sqlx.
//!
//! Writes stay on sqlx on purpose: in WAL mode a reader never waits for a writer, but a writer
//! waits for the write lock (the mediator's or the API's transactions), and that wait must not
//! stall the SIP thread a read runs on.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::{StoreError, StoreResult};

/// Idle connections kept for reuse; more concurrent readers open (and then drop) their own.
const IDLE_CONNECTIONS: usize = 8;
/// How long a read waits for a lock (only WAL recovery or a checkpoint can hold readers up).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read-only rusqlite connections to one SQLite file.
#[derive(Debug)]
pub(crate) struct DirectReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

fn database_error(error: rusqlite::Error) -> StoreError {
    // The direct reader shares StoreError's server-fault variant with sqlx.
    StoreError::Database(sqlx::Error::Protocol(format!("sqlite read: {error}")))
}

impl DirectReader {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        Ok(connection)
    }

    /// Runs `read` on an idle connection (or a new one) and returns the connection to the pool.
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => self.open().map_err(database_error)?,
        };
        let result = read(&connection).map_err(database_error);
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(connection);
        }
        result
    }
}

/// What routing a call to a subscriber needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipCallee {
    /// Row id.
    pub id: i64,
    /// Public uuid.
    pub uuid: String,
    /// SIP username.
    pub username: String,
    /// The subscriber's domain, lower case.
    pub domain: String,
    /// `active`, `locked` or `terminated`.
    pub status: String,
}

const CALLEE_BY_NAME: &str = "SELECT s.id, s.uuid, s.username, d.domain, s.status \
     FROM subscribers s JOIN domains d ON d.id = s.domain_id \
     WHERE s.username = ? AND d.domain = ?";

const CALLEE_BY_NUMBER: &str = "SELECT s.id, s.uuid, s.username, d.domain, s.status \
     FROM numbers n JOIN subscribers s ON s.id = n.subscriber_id \
     JOIN domains d ON d.id = s.domain_id WHERE n.e164 = ?";

/// The `digest_algorithms` preference of `username@domain`: the subscriber's value over its
/// customer's over its domain's; the domain's alone when no such subscriber exists, so an
/// unknown user is challenged as the domain's users are.
const DIGEST_ALGORITHMS: &str = "SELECT value FROM ( \
       SELECT v.value AS value, 1 AS level_rank FROM subscriber_preferences v \
         JOIN preference_definitions p ON p.id = v.preference_id \
         JOIN subscribers s ON s.id = v.subscriber_id JOIN domains d ON d.id = s.domain_id \
         WHERE p.name = 'digest_algorithms' AND s.username = ? AND d.domain = ? \
       UNION ALL \
       SELECT v.value, 2 FROM customer_preferences v \
         JOIN preference_definitions p ON p.id = v.preference_id \
         JOIN subscribers s ON s.customer_id = v.customer_id \
         JOIN domains d ON d.id = s.domain_id \
         WHERE p.name = 'digest_algorithms' AND s.username = ? AND d.domain = ? \
       UNION ALL \
       SELECT v.value, 3 FROM domain_preferences v \
         JOIN preference_definitions p ON p.id = v.preference_id \
         JOIN domains d ON d.id = v.domain_id \
         WHERE p.name = 'digest_algorithms' AND d.domain = ? \
     ) levels ORDER BY level_rank LIMIT 1";

/// One row when any level sets `digest_algorithms`.
const ANY_PREFERENCE_SET: &str = "SELECT 1 FROM preference_definitions p WHERE \
     p.name = ? AND ( \
       EXISTS (SELECT 1 FROM subscriber_preferences v WHERE v.preference_id = p.id) \
       OR EXISTS (SELECT 1 FROM customer_preferences v WHERE v.preference_id = p.id) \
       OR EXISTS (SELECT 1 FROM domain_preferences v WHERE v.preference_id = p.id))";

type SipCalleeRow = (i64, String, String, String, String);

fn callee_from_row((id, uuid, username, domain, status): SipCalleeRow) -> SipCallee {
    SipCallee {
        id,
        uuid,
        username,
        domain,
        status,
    }
}

impl crate::Store {
    /// The inline reader, for SQLite files only.
    pub(crate) fn direct_reader(&self) -> Option<&DirectReader> {
        self.direct.as_deref()
    }

    /// The subscriber `username@domain` as call routing needs it (domain compared in lower
    /// case), or `None`.
    pub async fn find_sip_callee(
        &self,
        username: &str,
        domain: &str,
    ) -> StoreResult<Option<SipCallee>> {
        let domain = domain.trim().to_ascii_lowercase();
        self.find_callee_where(CALLEE_BY_NAME, &[username, &domain])
            .await
    }

    /// The subscriber owning E.164 number `e164` (primary or alias; a leading `+` ignored) as
    /// call routing needs it, or `None`.
    pub async fn find_sip_callee_by_number(&self, e164: &str) -> StoreResult<Option<SipCallee>> {
        self.find_callee_where(CALLEE_BY_NUMBER, &[e164.trim_start_matches('+')])
            .await
    }

    /// Whether any domain, customer or subscriber sets preference `name` at all (when none
    /// does, the proxy skips its per-request lookup: `digest_algorithms`, `rewrite_rule_set`).
    pub async fn any_preference_set(&self, name: &str) -> StoreResult<bool> {
        let found: Option<i64> = match self.direct_reader() {
            Some(reader) => reader.read(|connection| {
                connection
                    .prepare_cached(ANY_PREFERENCE_SET)?
                    .query_row([name], |row| row.get(0))
                    .optional()
            })?,
            None => crate::on_pool!(self, pool => {
                sqlx::query_scalar(ANY_PREFERENCE_SET)
                    .bind(name)
                    .fetch_optional(pool)
                    .await?
            }),
        };
        Ok(found.is_some())
    }

    /// The digest algorithms to challenge `username@domain` with, as the `digest_algorithms`
    /// preference names them (e.g. `"SHA-256,MD5"`), or `None` when no level sets it (the
    /// proxy's configured default applies).
    pub async fn find_digest_algorithms(
        &self,
        username: &str,
        domain: &str,
    ) -> StoreResult<Option<String>> {
        let domain = domain.trim().to_ascii_lowercase();
        let values = [username, &domain, username, &domain, &domain];
        let text: Option<String> = match self.direct_reader() {
            Some(reader) => reader.read(|connection| {
                connection
                    .prepare_cached(DIGEST_ALGORITHMS)?
                    .query_row(rusqlite::params_from_iter(values), |row| row.get(0))
                    .optional()
            })?,
            None => crate::on_pool!(self, pool => {
                let mut query = sqlx::query_scalar(DIGEST_ALGORITHMS);
                for value in values {
                    query = query.bind(value);
                }
                query.fetch_optional(pool).await?
            }),
        };
        // Values are stored as JSON text (`"SHA-256"`), checked against the enum on write.
        Ok(text.and_then(|text| serde_json::from_str::<String>(&text).ok()))
    }

    async fn find_callee_where(
        &self,
        sql: &'static str,
        values: &[&str],
    ) -> StoreResult<Option<SipCallee>> {
        let row: Option<SipCalleeRow> = match self.direct_reader() {
            Some(reader) => reader.read(|connection| {
                connection
                    .prepare_cached(sql)?
                    .query_row(rusqlite::params_from_iter(values), |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    })
                    .optional()
            })?,
            None => crate::on_pool!(self, pool => {
                let mut query = sqlx::query_as(sql);
                for value in values {
                    query = query.bind(*value);
                }
                query.fetch_optional(pool).await?
            }),
        };
        Ok(row.map(callee_from_row))
    }
}
