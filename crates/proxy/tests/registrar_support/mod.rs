//! Shared set-up for the registrar tests: a fresh SQLite file or a fresh uniquely named MariaDB
//! database per test (dropped afterwards), provisioned subscribers, and a phone that builds
//! REGISTER requests and answers digest challenges like a real UA.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use proxy::authentication::{AuthenticationPolicy, Authenticator};
use proxy::location::Location;
use proxy::registrar::{Registrar, RegistrarConfig};
use sip_core::auth::{
    ClientCredentials, DigestAlgorithm, DigestChallenge, RequestToSign, answer_challenge,
};
use sip_message::{HeaderName, Message};
use store::{
    CustomerRepository, DomainRepository, NewCustomer, NewDomain, NewSubscriber, PreferenceLevel,
    PreferenceRepository, Store, SubscriberRepository, SubscriberStatus,
};
use tempfile::TempDir;

/// The MariaDB server of the MariaDB half (loopback only).
pub const MARIADB_SERVER: &str = "mysql://root@127.0.0.1:3306";
/// The domain every test subscriber lives in.
pub const DOMAIN: &str = "example.org";
/// Where the test phones claim to send from (never bound: the registrar is called directly).
pub const PHONE_SOURCE: &str = "127.0.0.1:5070";
/// The nonce secret of the test authenticators.
pub const SECRET: [u8; 32] = [7; 32];

/// One test database.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    mariadb_name: Option<String>,
    _dir: Option<TempDir>,
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

/// `None` only with `VOXIDE_SKIP_MARIADB=1`; an unreachable server fails the test.
pub async fn mariadb() -> Option<TestDb> {
    if std::env::var("VOXIDE_SKIP_MARIADB").as_deref() == Ok("1") {
        return None;
    }
    let name = format!("voxide_reg_{:016x}", rand::random::<u64>());
    let url = format!("{MARIADB_SERVER}/{name}");
    let store = Store::connect(&url).await.unwrap_or_else(|error| {
        panic!(
            "MariaDB at {MARIADB_SERVER} unreachable ({error}); set VOXIDE_SKIP_MARIADB=1 to skip"
        )
    });
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
        // Drop may run inside the test's runtime: clean up on a thread with its own runtime.
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
                let statement = format!("DROP DATABASE IF EXISTS `{name}`");
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    connection.execute(sqlx::AssertSqlSafe(statement)),
                )
                .await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Provisions `example.org` with active `alice` and `bob` and locked `carol`.
pub async fn provision(store: &Store) {
    let domain = store
        .create_domain(&NewDomain {
            domain: DOMAIN.into(),
        })
        .await
        .expect("domain");
    let customer = store
        .create_customer(&NewCustomer {
            name: "Test customer".into(),
            status: Default::default(),
            external_id: None,
        })
        .await
        .expect("customer");
    for (username, status) in [
        ("alice", SubscriberStatus::Active),
        ("bob", SubscriberStatus::Active),
        ("carol", SubscriberStatus::Locked),
    ] {
        store
            .create_subscriber(&NewSubscriber {
                customer_id: customer.id,
                domain_id: domain.id,
                username: username.into(),
                password: password_of(username),
                webusername: None,
                webpassword: None,
                display_name: None,
                email: None,
                external_id: None,
                status,
                administrative: false,
                primary_number: None,
                alias_numbers: Vec::new(),
            })
            .await
            .expect("subscriber");
    }
}

pub fn password_of(username: &str) -> String {
    format!("{username}-Secret-123")
}

/// A registrar over a provisioned database.
pub struct Fixture {
    pub db: TestDb,
    pub location: Arc<Location>,
    pub authenticator: Arc<Authenticator>,
    pub registrar: Registrar,
}

/// [`provision`]ed, and the domain's `digest_algorithms` preference offers SHA-256 before MD5
/// (the proxy's default is MD5 alone), so these tests go through the preference and both
/// algorithms.
pub async fn fixture(db: TestDb, config: RegistrarConfig) -> Fixture {
    provision(&db.store).await;
    let domain = db
        .store
        .find_domain_by_name(DOMAIN)
        .await
        .expect("domain lookup")
        .expect("provisioned domain");
    db.store
        .set_preference(
            PreferenceLevel::Domain,
            domain.id,
            "digest_algorithms",
            &serde_json::json!("SHA-256,MD5"),
        )
        .await
        .expect("digest_algorithms preference");
    fixture_without_provisioning(db, config, 0).await
}

/// A fresh registrar (as after a restart) over an already provisioned database, loading the
/// bindings live at `now_unix` (0: all stored).
pub async fn fixture_without_provisioning(
    db: TestDb,
    config: RegistrarConfig,
    now_unix: u64,
) -> Fixture {
    // These tests change preferences between requests: no second of grace.
    let policy = AuthenticationPolicy {
        preference_recheck: std::time::Duration::ZERO,
        ..AuthenticationPolicy::default()
    };
    fixture_with_policy(db, config, now_unix, policy).await
}

/// Like [`fixture_without_provisioning`] with a chosen authentication policy.
pub async fn fixture_with_policy(
    db: TestDb,
    config: RegistrarConfig,
    now_unix: u64,
    policy: AuthenticationPolicy,
) -> Fixture {
    let location = Arc::new(
        Location::load(db.store.clone(), now_unix)
            .await
            .expect("load location"),
    );
    let authenticator = Arc::new(Authenticator::new(db.store.clone(), SECRET, policy));
    let registrar = Registrar::new(
        db.store.clone(),
        Arc::clone(&location),
        Arc::clone(&authenticator),
        config,
    );
    Fixture {
        db,
        location,
        authenticator,
        registrar,
    }
}

pub fn source() -> SocketAddr {
    PHONE_SOURCE.parse().expect("socket address")
}

/// A SIP phone: one Call-ID, increasing CSeq, answers challenges with its password.
pub struct Phone {
    pub username: String,
    pub password: String,
    /// Whose address-of-record the To names (normally the phone's own user).
    pub to_user: String,
    pub call_id: String,
    pub cseq: u32,
}

impl Phone {
    pub fn new(username: &str) -> Self {
        Self {
            username: username.into(),
            password: password_of(username),
            to_user: username.into(),
            call_id: format!("{:016x}@phone", rand::random::<u64>()),
            cseq: 0,
        }
    }

    /// A REGISTER with the next CSeq; `headers` are added as given (Contact, Expires, …).
    pub fn request(&mut self, headers: &[(&str, &str)], authorization: Option<&str>) -> Message {
        self.cseq += 1;
        let mut text = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {PHONE_SOURCE};branch=z9hG4bK{:016x};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{}@{DOMAIN}>;tag={:08x}\r\n\
             To: <sip:{}@{DOMAIN}>\r\n\
             Call-ID: {}\r\n\
             CSeq: {} REGISTER\r\n\
             User-Agent: voxide-test-phone\r\n",
            rand::random::<u64>(),
            self.username,
            rand::random::<u32>(),
            self.to_user,
            self.call_id,
            self.cseq,
        );
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(authorization) = authorization {
            text.push_str(&format!("Authorization: {authorization}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        // Not validated: some tests send malformed headers on purpose.
        Message::parse(Bytes::from(text)).expect("test REGISTER parses")
    }

    /// The Authorization value answering the `algorithm` challenge of a 401.
    pub fn answer(&self, challenge_response: &Message, algorithm: DigestAlgorithm) -> String {
        let challenge = challenges(challenge_response)
            .into_iter()
            .find(|challenge| challenge.algorithm == algorithm)
            .expect("the 401 offers the algorithm");
        let credentials = ClientCredentials {
            username: &self.username,
            password: &self.password,
            realm: None,
        };
        let uri = format!("sip:{DOMAIN}");
        let request = RequestToSign {
            method: "REGISTER",
            uri: &uri,
            body: b"",
        };
        answer_challenge(&challenge, &credentials, &request, 1, &mut rand::rng())
            .expect("answerable")
            .to_header_value()
            .expect("printable")
    }
}

/// The challenges of a 401, in header order.
pub fn challenges(response: &Message) -> Vec<DigestChallenge> {
    response
        .header_values(&HeaderName::WwwAuthenticate)
        .map(|value| {
            DigestChallenge::parse(std::str::from_utf8(value).expect("UTF-8")).expect("challenge")
        })
        .collect()
}

/// Sends `headers` unauthenticated, expects 401, answers with `algorithm` and returns the final
/// response.
pub async fn register(
    fixture: &Fixture,
    phone: &mut Phone,
    headers: &[(&str, &str)],
    algorithm: DigestAlgorithm,
    now_unix: u64,
) -> Message {
    let first = phone.request(headers, None);
    let challenge = fixture
        .registrar
        .handle_register(&first, source(), now_unix)
        .await;
    assert_eq!(
        challenge.status(),
        Some(401),
        "first REGISTER is challenged"
    );
    let authorization = phone.answer(&challenge, algorithm);
    let second = phone.request(headers, Some(&authorization));
    fixture
        .registrar
        .handle_register(&second, source(), now_unix)
        .await
}

/// The Contact values of a response as text.
pub fn contacts(response: &Message) -> Vec<String> {
    response
        .header_values(&HeaderName::Contact)
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .collect()
}

pub fn header(response: &Message, name: HeaderName) -> Option<String> {
    response
        .header(&name)
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

/// A fixed clock for the tests (2026-11-25).
pub const NOW: u64 = 1_795_000_000;

/// Runs an `async fn(TestDb)` scenario once on SQLite and once on MariaDB.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::registrar_support::sqlite().await).await;
                }
            )+
        }
        mod mariadb_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(db) = $crate::registrar_support::mariadb().await {
                        super::$scenario(db).await;
                    }
                }
            )+
        }
    };
}
