//! Test databases: a fresh SQLite file per test, and a fresh uniquely named MariaDB database per
//! test that is dropped afterwards (also when the test panics).

#![allow(dead_code)]

use store::Store;
use tempfile::TempDir;

/// Server the MariaDB half of the suite talks to (loopback only).
pub const MARIADB_SERVER: &str = "mysql://root@127.0.0.1:3306";

/// One test database and the store connected to it.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    mariadb_name: Option<String>,
    _dir: Option<TempDir>,
}

impl TestDb {
    /// Opens a second, independent store (own pool) on the same database.
    pub async fn second_store(&self) -> Store {
        Store::connect(&self.url).await.expect("second connection")
    }
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/voxide.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url).await.expect("open SQLite store");
    TestDb {
        store,
        url,
        mariadb_name: None,
        _dir: Some(dir),
    }
}

/// `None` only when `VOXIDE_SKIP_MARIADB=1`; an unreachable server fails the test.
pub async fn mariadb() -> Option<TestDb> {
    if std::env::var("VOXIDE_SKIP_MARIADB").as_deref() == Ok("1") {
        return None;
    }
    let name = format!("voxide_t_{:016x}", rand::random::<u64>());
    let url = format!("{MARIADB_SERVER}/{name}");
    let store = match Store::connect(&url).await {
        Ok(store) => store,
        Err(error) => panic!(
            "MariaDB at {MARIADB_SERVER} is unreachable or failed ({error}); \
             start it or set VOXIDE_SKIP_MARIADB=1 to skip the MariaDB half"
        ),
    };
    Some(TestDb {
        store,
        url,
        mariadb_name: Some(name),
        _dir: None,
    })
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.mariadb_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime (maybe while unwinding), so do the cleanup on a
        // thread with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                use sqlx::{Connection, Executor};
                let mut connection = sqlx::mysql::MySqlConnection::connect(MARIADB_SERVER)
                    .await
                    .expect("connect for cleanup");
                // Bounded wait: a connection left mid-transaction by a panicking test must not
                // hang the suite; the database then leaks and the message says which one.
                connection
                    .execute("SET SESSION lock_wait_timeout = 10")
                    .await
                    .expect("set lock wait timeout");
                let drop_sql = format!("DROP DATABASE IF EXISTS `{name}`");
                if let Err(error) = connection.execute(sqlx::AssertSqlSafe(drop_sql)).await {
                    eprintln!("could not drop test database {name}: {error}");
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Runs the test body once against SQLite and once against MariaDB, as two test functions
/// `<name>::sqlite` and `<name>::mariadb`.
macro_rules! on_both_backends {
    ($name:ident, |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $db = crate::common::sqlite().await;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                let Some($db) = crate::common::mariadb().await else {
                    return;
                };
                $body
            }
        }
    };
}
