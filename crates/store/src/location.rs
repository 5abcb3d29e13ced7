//! The registrar's location table: bindings of contact addresses to an address-of-record
//! (RFC 3261 §10.3), with the Path (RFC 3327) each was registered through.
//!
//! The proxy keeps a write-through cache in memory; this table is what survives a restart (even
//! `kill -9`), so every change is committed here before the registrar answers 200 OK. A refresh
//! of one contact is one statement ([`LocationRepository::apply_location_changes`] with a single
//! upsert runs it without an explicit transaction).

use crate::error::StoreResult;
use crate::{Backend, Store, StoreError, on_pool};

/// One binding row. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationRecord {
    /// The domain of the address-of-record, lower case.
    pub domain: String,
    /// The user part of the address-of-record.
    pub username: String,
    /// The contact URI as registered (without header parameters); with the AoR, the row key.
    pub contact: String,
    /// The `q` value times 1000 (RFC 3261 §20.10: 0 to 1 with up to three decimals).
    pub q: u16,
    /// When the binding lapses.
    pub expires_at: u64,
    /// Path header URIs (RFC 3327 §5.3), topmost first, as received.
    pub path: Vec<String>,
    /// The address the REGISTER really came from, when it differs from the contact (NAT).
    pub received: Option<String>,
    /// Call-ID of the REGISTER that created or last refreshed the binding (RFC 3261 §10.3 step 7).
    pub call_id: String,
    /// CSeq number of that REGISTER.
    pub cseq: u32,
    /// User-Agent of that REGISTER.
    pub user_agent: Option<String>,
    /// `+sip.instance` contact parameter (RFC 5626 §4.1).
    pub instance: Option<String>,
    /// `reg-id` contact parameter (RFC 5626 §4.2).
    pub reg_id: Option<u32>,
    /// When the row was last written.
    pub updated_at: u64,
}

/// The address-of-record and contact that name one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationKey {
    /// The domain of the address-of-record, lower case.
    pub domain: String,
    /// The user part of the address-of-record.
    pub username: String,
    /// The contact URI as registered.
    pub contact: String,
}

/// Queries on the location table.
pub trait LocationRepository {
    /// Writes `upserts` (insert or replace by key) and `deletes` in one transaction; a single
    /// upsert or delete runs as one statement. Returns the number of statements sent (rows go
    /// in multi-row statements, so a batch takes a few).
    fn apply_location_changes(
        &self,
        upserts: &[LocationRecord],
        deletes: &[LocationKey],
    ) -> impl Future<Output = StoreResult<usize>> + Send;
    /// Removes every binding of an address-of-record; returns how many rows went.
    fn delete_locations_of(
        &self,
        username: &str,
        domain: &str,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// The bindings of one address-of-record that have not lapsed at `now`, highest q first.
    fn find_locations(
        &self,
        username: &str,
        domain: &str,
        now: u64,
    ) -> impl Future<Output = StoreResult<Vec<LocationRecord>>> + Send;
    /// Every binding that has not lapsed at `now`.
    fn list_live_locations(
        &self,
        now: u64,
    ) -> impl Future<Output = StoreResult<Vec<LocationRecord>>> + Send;
    /// Up to `limit` bindings live at `now` whose key (domain, username, contact) sorts after
    /// `after` (from the first when `None`), in key order. The proxy loads its cache page by
    /// page, so a million bindings never sit in memory twice.
    fn live_locations_page(
        &self,
        now: u64,
        after: Option<&LocationKey>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<LocationRecord>>> + Send;
    /// Deletes bindings that lapsed at or before `now`; returns how many rows went.
    fn purge_expired_locations(&self, now: u64) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// The column list of an upsert, as a literal so the statements below stay static text.
macro_rules! upsert_prefix {
    () => {
        "INSERT INTO location \
         (domain, username, contact, q, expires_at, path, received, call_id, cseq, user_agent, \
         instance, reg_id, updated_at) "
    };
}
macro_rules! sqlite_on_conflict {
    () => {
        " ON CONFLICT (domain, username, contact) DO UPDATE SET \
         q = excluded.q, expires_at = excluded.expires_at, path = excluded.path, \
         received = excluded.received, call_id = excluded.call_id, cseq = excluded.cseq, \
         user_agent = excluded.user_agent, instance = excluded.instance, \
         reg_id = excluded.reg_id, updated_at = excluded.updated_at"
    };
}
macro_rules! mysql_on_conflict {
    () => {
        " ON DUPLICATE KEY UPDATE q = VALUES(q), \
         expires_at = VALUES(expires_at), path = VALUES(path), received = VALUES(received), \
         call_id = VALUES(call_id), cseq = VALUES(cseq), user_agent = VALUES(user_agent), \
         instance = VALUES(instance), reg_id = VALUES(reg_id), updated_at = VALUES(updated_at)"
    };
}
const UPSERT_PREFIX: &str = upsert_prefix!();
const SQLITE_ON_CONFLICT: &str = sqlite_on_conflict!();
const MYSQL_ON_CONFLICT: &str = mysql_on_conflict!();
const SQLITE_UPSERT_ONE: &str = concat!(
    upsert_prefix!(),
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    sqlite_on_conflict!()
);
const MYSQL_UPSERT_ONE: &str = concat!(
    upsert_prefix!(),
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    mysql_on_conflict!()
);

/// Rows per multi-row statement: 13 placeholders a row stays far below SQLite's 32,766 and
/// MySQL's 65,535 placeholder limits.
const ROWS_PER_STATEMENT: usize = 500;

const DELETE_ONE: &str = "DELETE FROM location WHERE domain = ? AND username = ? AND contact = ?";

/// The column list of [`LocationRow`], as a literal so queries stay static text.
macro_rules! select_location {
    ($rest:literal) => {
        concat!(
            "SELECT domain, username, contact, q, expires_at, path, received, call_id, cseq, \
             user_agent, instance, reg_id, updated_at FROM location ",
            $rest
        )
    };
}

/// The row as both drivers decode it (all integers as BIGINT).
#[derive(sqlx::FromRow)]
struct LocationRow {
    domain: String,
    username: String,
    contact: String,
    q: i64,
    expires_at: i64,
    path: String,
    received: Option<String>,
    call_id: String,
    cseq: i64,
    user_agent: Option<String>,
    instance: Option<String>,
    reg_id: Option<i64>,
    updated_at: i64,
}

impl LocationRow {
    fn into_record(self) -> StoreResult<LocationRecord> {
        let path: Vec<String> = serde_json::from_str(&self.path).map_err(|error| {
            StoreError::invalid("path", format!("stored path unreadable: {error}"))
        })?;
        Ok(LocationRecord {
            domain: self.domain,
            username: self.username,
            contact: self.contact,
            q: u16::try_from(self.q.clamp(0, 1000)).unwrap_or(1000),
            expires_at: u64::try_from(self.expires_at).unwrap_or(0),
            path,
            received: self.received,
            call_id: self.call_id,
            cseq: u32::try_from(self.cseq).unwrap_or(u32::MAX),
            user_agent: self.user_agent,
            instance: self.instance,
            reg_id: self.reg_id.and_then(|id| u32::try_from(id).ok()),
            updated_at: u64::try_from(self.updated_at).unwrap_or(0),
        })
    }
}

/// Unix seconds as the signed BIGINT both backends store; far-future values saturate.
fn seconds(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn check_record(record: &LocationRecord) -> StoreResult<()> {
    if record.contact.is_empty() || record.contact.chars().count() > 512 {
        return Err(StoreError::invalid(
            "contact",
            "must be 1 to 512 characters",
        ));
    }
    if record.call_id.is_empty() || record.call_id.chars().count() > 255 {
        return Err(StoreError::invalid(
            "call_id",
            "must be 1 to 255 characters",
        ));
    }
    if record.domain.is_empty() || record.domain.chars().count() > 127 {
        return Err(StoreError::invalid("domain", "must be 1 to 127 characters"));
    }
    if record.username.is_empty() || record.username.chars().count() > 127 {
        return Err(StoreError::invalid(
            "username",
            "must be 1 to 127 characters",
        ));
    }
    Ok(())
}

/// Truncates free text to a column width (User-Agent, instance) on a character boundary.
fn fit(value: &Option<String>, width: usize) -> Option<String> {
    value
        .as_ref()
        .map(|text| text.chars().take(width).collect())
}

macro_rules! bind_record {
    ($query:expr, $record:expr, $path:expr) => {
        $query
            .bind(&$record.domain)
            .bind(&$record.username)
            .bind(&$record.contact)
            .bind(i64::from($record.q))
            .bind(seconds($record.expires_at))
            .bind($path)
            .bind(fit(&$record.received, 512))
            .bind(&$record.call_id)
            .bind(i64::from($record.cseq))
            .bind(fit(&$record.user_agent, 255))
            .bind(fit(&$record.instance, 255))
            .bind($record.reg_id.map(i64::from))
            .bind(seconds($record.updated_at))
    };
}

impl Store {
    fn upsert_one_statement(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite(_) => SQLITE_UPSERT_ONE,
            Backend::MySql(_) => MYSQL_UPSERT_ONE,
        }
    }

    fn on_conflict_clause(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite(_) => SQLITE_ON_CONFLICT,
            Backend::MySql(_) => MYSQL_ON_CONFLICT,
        }
    }
}

impl LocationRepository for Store {
    async fn apply_location_changes(
        &self,
        upserts: &[LocationRecord],
        deletes: &[LocationKey],
    ) -> StoreResult<usize> {
        let mut encoded = Vec::with_capacity(upserts.len());
        for record in upserts {
            check_record(record)?;
            let path = serde_json::to_string(&record.path)
                .map_err(|error| StoreError::invalid("path", error.to_string()))?;
            encoded.push((record, path));
        }
        let upsert = self.upsert_one_statement();
        match encoded.len() + deletes.len() {
            0 => return Ok(0),
            1 => {
                // One change: a single autocommit statement, no BEGIN/COMMIT round trips.
                on_pool!(self, pool => {
                    if let Some((record, path)) = encoded.first() {
                        bind_record!(sqlx::query(upsert), record, path).execute(pool).await?;
                    } else if let Some(key) = deletes.first() {
                        sqlx::query(DELETE_ONE)
                            .bind(&key.domain)
                            .bind(&key.username)
                            .bind(&key.contact)
                            .execute(pool)
                            .await?;
                    }
                });
                return Ok(1);
            }
            _ => {}
        }
        // Several changes (one REGISTER with many contacts, or the registrar's group commit of
        // many REGISTERs): one multi-row DELETE and one multi-row upsert per chunk inside one
        // transaction, so a batch costs a handful of database round trips, not one per row.
        let mut statements = 0;
        on_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            for chunk in deletes.chunks(ROWS_PER_STATEMENT) {
                let mut builder = sqlx::QueryBuilder::new("DELETE FROM location WHERE ");
                for (index, key) in chunk.iter().enumerate() {
                    builder.push(if index == 0 { "(domain = " } else { " OR (domain = " });
                    builder.push_bind(key.domain.clone());
                    builder.push(" AND username = ");
                    builder.push_bind(key.username.clone());
                    builder.push(" AND contact = ");
                    builder.push_bind(key.contact.clone());
                    builder.push(")");
                }
                builder.build().execute(&mut *transaction).await?;
                statements += 1;
            }
            for chunk in encoded.chunks(ROWS_PER_STATEMENT) {
                let mut builder = sqlx::QueryBuilder::new(UPSERT_PREFIX);
                builder.push_values(chunk, |mut row, (record, path)| {
                    row.push_bind(record.domain.clone())
                        .push_bind(record.username.clone())
                        .push_bind(record.contact.clone())
                        .push_bind(i64::from(record.q))
                        .push_bind(seconds(record.expires_at))
                        .push_bind(path.clone())
                        .push_bind(fit(&record.received, 512))
                        .push_bind(record.call_id.clone())
                        .push_bind(i64::from(record.cseq))
                        .push_bind(fit(&record.user_agent, 255))
                        .push_bind(fit(&record.instance, 255))
                        .push_bind(record.reg_id.map(i64::from))
                        .push_bind(seconds(record.updated_at));
                });
                builder.push(self.on_conflict_clause());
                builder.build().execute(&mut *transaction).await?;
                statements += 1;
            }
            transaction.commit().await?;
        });
        Ok(statements)
    }

    async fn delete_locations_of(&self, username: &str, domain: &str) -> StoreResult<u64> {
        Ok(on_pool!(self, pool => {
            sqlx::query("DELETE FROM location WHERE domain = ? AND username = ?")
                .bind(domain)
                .bind(username)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    async fn find_locations(
        &self,
        username: &str,
        domain: &str,
        now: u64,
    ) -> StoreResult<Vec<LocationRecord>> {
        let sql = select_location!(
            "WHERE domain = ? AND username = ? AND expires_at > ? \
             ORDER BY q DESC, updated_at DESC, contact"
        );
        let rows: Vec<LocationRow> = on_pool!(self, pool => {
            sqlx::query_as(sql)
                .bind(domain)
                .bind(username)
                .bind(seconds(now))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(LocationRow::into_record).collect()
    }

    async fn list_live_locations(&self, now: u64) -> StoreResult<Vec<LocationRecord>> {
        let sql = select_location!(
            "WHERE expires_at > ? ORDER BY domain, username, q DESC, updated_at DESC, contact"
        );
        let rows: Vec<LocationRow> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(seconds(now)).fetch_all(pool).await?
        });
        rows.into_iter().map(LocationRow::into_record).collect()
    }

    async fn live_locations_page(
        &self,
        now: u64,
        after: Option<&LocationKey>,
        limit: usize,
    ) -> StoreResult<Vec<LocationRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<LocationRow> = match (self.backend(), after) {
            (_, None) => on_pool!(self, pool => {
                sqlx::query_as(select_location!(
                    "WHERE expires_at > ? ORDER BY domain, username, contact LIMIT ?"
                ))
                .bind(seconds(now))
                .bind(limit)
                .fetch_all(pool)
                .await?
            }),
            // A row value walks the primary key index in SQLite; MariaDB only plans a range
            // over the key for the spelled-out form.
            (Backend::Sqlite(pool), Some(key)) => {
                sqlx::query_as(select_location!(
                    "WHERE expires_at > ? AND (domain, username, contact) > (?, ?, ?) \
                     ORDER BY domain, username, contact LIMIT ?"
                ))
                .bind(seconds(now))
                .bind(&key.domain)
                .bind(&key.username)
                .bind(&key.contact)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
            (Backend::MySql(pool), Some(key)) => {
                sqlx::query_as(select_location!(
                    "WHERE expires_at > ? AND (domain > ? OR (domain = ? AND (username > ? \
                     OR (username = ? AND contact > ?)))) \
                     ORDER BY domain, username, contact LIMIT ?"
                ))
                .bind(seconds(now))
                .bind(&key.domain)
                .bind(&key.domain)
                .bind(&key.username)
                .bind(&key.username)
                .bind(&key.contact)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        };
        rows.into_iter().map(LocationRow::into_record).collect()
    }

    async fn purge_expired_locations(&self, now: u64) -> StoreResult<u64> {
        Ok(on_pool!(self, pool => {
            sqlx::query("DELETE FROM location WHERE expires_at <= ?")
                .bind(seconds(now))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &str, contact: &str, expires_at: u64) -> LocationRecord {
        LocationRecord {
            domain: "example.org".to_owned(),
            username: username.to_owned(),
            contact: contact.to_owned(),
            q: 1000,
            expires_at,
            path: vec!["<sip:192.0.2.1;lr>".to_owned()],
            received: None,
            call_id: "c@x".to_owned(),
            cseq: 1,
            user_agent: None,
            instance: None,
            reg_id: None,
            updated_at: 1,
        }
    }

    /// Reads every live row page by page, pages of `limit` rows.
    async fn read_in_pages(store: &Store, now: u64, limit: usize) -> Vec<LocationRecord> {
        let mut all = Vec::new();
        let mut after: Option<LocationKey> = None;
        loop {
            let page = store
                .live_locations_page(now, after.as_ref(), limit)
                .await
                .unwrap();
            assert!(page.len() <= limit);
            let full = page.len() == limit;
            after = page.last().map(|last| LocationKey {
                domain: last.domain.clone(),
                username: last.username.clone(),
                contact: last.contact.clone(),
            });
            all.extend(page);
            if !full {
                return all;
            }
        }
    }

    async fn pages_cover_every_live_binding_once(store: &Store) {
        // Users whose keys differ in each column, and lapsed rows between live ones.
        let mut rows = Vec::new();
        for user in ["a", "ab", "b", "bob"] {
            for (contact, expires_at) in [
                ("sip:x@192.0.2.1", 100),
                ("sip:x@192.0.2.2", 5),
                ("sip:y@192.0.2.1", 100),
            ] {
                rows.push(binding(user, contact, expires_at));
            }
        }
        let mut other_domain = binding("a", "sip:z@192.0.2.1", 100);
        other_domain.domain = "example.net".to_owned();
        rows.push(other_domain);
        store.apply_location_changes(&rows, &[]).await.unwrap();

        let mut expected: Vec<LocationRecord> =
            rows.into_iter().filter(|row| row.expires_at > 10).collect();
        expected.sort_by(|left, right| {
            (&left.domain, &left.username, &left.contact).cmp(&(
                &right.domain,
                &right.username,
                &right.contact,
            ))
        });
        for limit in [1, 2, 3, 8, 9, 100] {
            assert_eq!(
                read_in_pages(store, 10, limit).await,
                expected,
                "pages of {limit}"
            );
        }
    }

    #[tokio::test]
    async fn pages_cover_every_live_binding_once_on_sqlite() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        pages_cover_every_live_binding_once(&store).await;
    }

    /// A store on a SQLite file in a fresh directory (kept alive by the returned guard), and
    /// its URL.
    async fn file_store() -> (tempfile::TempDir, String, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/voxide.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.unwrap();
        (dir, url, store)
    }

    #[tokio::test]
    async fn pages_cover_every_live_binding_once_on_a_sqlite_file() {
        let (_dir, _, store) = file_store().await;
        pages_cover_every_live_binding_once(&store).await;
    }

    #[tokio::test]
    async fn a_sqlite_file_keeps_every_field_of_a_binding_and_its_deletes() {
        let (_dir, url, store) = file_store().await;
        let mut full = binding("alice", "sip:alice@192.0.2.1;transport=tcp", 500);
        full.q = 700;
        full.path = vec![
            "<sip:10.0.0.1;lr>".to_owned(),
            "<sip:10.0.0.2;lr>".to_owned(),
        ];
        full.received = Some("sip:198.51.100.7:5062".to_owned());
        full.cseq = 42;
        full.user_agent = Some("é".repeat(300));
        full.instance = Some("<urn:uuid:0001>".to_owned());
        full.reg_id = Some(3);
        full.updated_at = 99;
        // A lone upsert (autocommit), then a batch that replaces it and adds a row.
        assert_eq!(
            store
                .apply_location_changes(&[full.clone()], &[])
                .await
                .unwrap(),
            1
        );
        let mut stored = full.clone();
        stored.user_agent = Some("é".repeat(255));
        assert_eq!(
            store
                .find_locations("alice", "example.org", 10)
                .await
                .unwrap(),
            [stored.clone()]
        );
        let second = binding("alice", "sip:alice@192.0.2.2", 500);
        stored.cseq = 43;
        let mut refreshed = full.clone();
        refreshed.cseq = 43;
        store
            .apply_location_changes(&[refreshed, second.clone()], &[])
            .await
            .unwrap();
        assert_eq!(
            store
                .find_locations("alice", "example.org", 10)
                .await
                .unwrap(),
            [second.clone(), stored],
            "q 1000 first"
        );
        // A batch of deletes, one of them of a row that does not exist.
        let key = |record: &LocationRecord| LocationKey {
            domain: record.domain.clone(),
            username: record.username.clone(),
            contact: record.contact.clone(),
        };
        let missing = binding("alice", "sip:gone@192.0.2.9", 500);
        store
            .apply_location_changes(&[], &[key(&full), key(&missing)])
            .await
            .unwrap();
        assert_eq!(
            store
                .find_locations("alice", "example.org", 10)
                .await
                .unwrap(),
            [second]
        );
        // Another store on the same file sees what was committed.
        let other = Store::connect(&url).await.unwrap();
        assert_eq!(other.list_live_locations(10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn pages_cover_every_live_binding_once_on_mariadb() {
        if std::env::var("VOXIDE_SKIP_MARIADB").as_deref() == Ok("1") {
            return;
        }
        let server = "mysql://root@127.0.0.1:3306";
        let name = format!("voxide_t_{:016x}", rand::random::<u64>());
        let store = Store::connect(&format!("{server}/{name}"))
            .await
            .expect("MariaDB at 127.0.0.1:3306 (VOXIDE_SKIP_MARIADB=1 skips this test)");
        pages_cover_every_live_binding_once(&store).await;
        store.close().await;
        use sqlx::{Connection, Executor};
        let mut connection = sqlx::mysql::MySqlConnection::connect(server).await.unwrap();
        connection
            .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE `{name}`")))
            .await
            .unwrap();
    }
}
