//! Authentication, throttling, TLS and first-admin bootstrap.

mod common;

use std::time::Duration;

use common::{ADMIN_LOGIN, ADMIN_PASSWORD, Backend};
use provisioning::LoginLimit;
use reqwest_ring::Method;
use serde_json::Value;
use store::prelude::*;

fn relaxed_limit() -> LoginLimit {
    LoginLimit {
        max_failures: 100_000,
        window: Duration::from_secs(60),
        capacity: 16,
    }
}

/// Every operation of the OpenAPI document, with `{id}` filled in.
async fn operations(harness: &common::Harness) -> Vec<(Method, String)> {
    let document = harness
        .send(harness.client.get(harness.url("/api/openapi.json")))
        .await;
    assert_eq!(document.status, 200);
    let document: Value = document.json();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                let method =
                    Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
                operations.push((method, path.replace("{id}", "1")));
            }
        }
    }
    operations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_requires_valid_credentials() {
    let harness = common::start_with(Backend::Sqlite, None, relaxed_limit()).await;
    let operations = operations(&harness).await;
    assert!(
        operations.len() >= 60,
        "only {} operations documented",
        operations.len()
    );
    for (method, path) in operations {
        let anonymous = harness
            .send(harness.client.request(method.clone(), harness.url(&path)))
            .await;
        anonymous.assert_problem(401, None);
        assert!(
            anonymous.headers.contains_key("www-authenticate"),
            "{method} {path}"
        );
        let wrong = harness
            .send(
                harness
                    .client
                    .request(method.clone(), harness.url(&path))
                    .basic_auth(ADMIN_LOGIN, Some("wrong password")),
            )
            .await;
        wrong.assert_problem(401, None);
        let unknown_user = harness
            .send(
                harness
                    .client
                    .request(method.clone(), harness.url(&path))
                    .basic_auth("mallory", Some(ADMIN_PASSWORD)),
            )
            .await;
        unknown_user.assert_problem(401, None);
    }
    // Unknown paths are not an oracle either.
    harness
        .send(harness.client.get(harness.url("/api/secret-things/")))
        .await
        .assert_problem(401, None);
    // Positive control: the same credentials mechanism works when right.
    assert_eq!(harness.get("/api/domains/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_per_address() {
    let limit = LoginLimit {
        max_failures: 5,
        window: Duration::from_secs(60),
        capacity: 1024,
    };
    let harness = common::start_with(Backend::Sqlite, None, limit).await;
    for attempt in 0..5 {
        let reply = harness
            .send(
                harness
                    .client
                    .get(harness.url("/api/domains/"))
                    .basic_auth(ADMIN_LOGIN, Some(format!("guess-{attempt}"))),
            )
            .await;
        reply.assert_problem(401, None);
    }
    let blocked = harness
        .send(
            harness
                .client
                .get(harness.url("/api/domains/"))
                .basic_auth(ADMIN_LOGIN, Some("guess-6")),
        )
        .await;
    blocked.assert_problem(429, None);
    let retry_after: u64 = blocked
        .headers
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&retry_after));
    // Even the right password is refused while blocked, so guessing learns nothing.
    harness.get("/api/domains/").await.assert_problem(429, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_generated_self_signed_certificate() {
    let harness = common::start_with(Backend::Sqlite, Some(()), LoginLimit::default()).await;
    assert!(harness.base.starts_with("https://"));
    let reply = harness.get("/api/domains/").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    harness
        .send(harness.client.get(harness.url("/api/domains/")))
        .await
        .assert_problem(401, None);
    // A client that does not trust the certificate cannot talk to it.
    let untrusting = common::http_client(rustls::RootCertStore::empty());
    assert!(
        untrusting
            .get(harness.url("/api/domains/"))
            .send()
            .await
            .is_err()
    );
    // The same pair is reused on the next start.
    let cert_path = harness
        .data_dir
        .path()
        .join(provisioning::tls::SELF_SIGNED_CERT_FILE);
    let before = std::fs::read(&cert_path).expect("cert");
    provisioning::tls::ensure_self_signed(harness.data_dir.path()).expect("reuse");
    assert_eq!(before, std::fs::read(&cert_path).expect("cert"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_generates_a_private_password_file_once() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = common::open_store(Backend::Sqlite, data_dir.path()).await;
    let outcome = provisioning::bootstrap_admin(&store, data_dir.path(), None)
        .await
        .expect("bootstrap");
    let path = data_dir.path().join(provisioning::ADMIN_PASSWORD_FILE);
    assert_eq!(
        outcome,
        provisioning::Bootstrap::CreatedWithGeneratedPassword(path.clone())
    );
    let password = std::fs::read_to_string(&path).expect("password file");
    let password = password.trim();
    assert!(password.len() >= 20);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        store
            .verify_admin(store::INITIAL_ADMIN_LOGIN, password)
            .await
            .expect("verify")
            .is_some()
    );
    let again = provisioning::bootstrap_admin(&store, data_dir.path(), Some("other".into()))
        .await
        .expect("second bootstrap");
    assert_eq!(again, provisioning::Bootstrap::AlreadyPresent);
}
