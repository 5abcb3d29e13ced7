//! Serves the provisioning API over plain HTTP on 127.0.0.1 with a throw-away SQLite database,
//! for contract tests such as `tests/schemathesis.sh`.
//!
//! Usage: `api_for_tests <port> <admin-password>`; the login is `administrator`. Failed-login
//! throttling is relaxed so a fuzzer's deliberate unauthenticated calls do not lock it out
//! (the throttle has its own tests).

use std::net::SocketAddr;
use std::time::Duration;

use provisioning::{ApiConfig, LoginLimit, TlsMode};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .ok_or("usage: api_for_tests <port> <password>")?
        .parse()?;
    let password = args
        .next()
        .ok_or("usage: api_for_tests <port> <password>")?;
    let data_dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        data_dir.path().join("voxide.db").display()
    );
    let store = store::Store::connect(&url).await?;
    provisioning::bootstrap_admin(&store, data_dir.path(), Some(password)).await?;
    let config = ApiConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        tls: TlsMode::Plain,
        data_dir: data_dir.path().to_owned(),
        login_limit: LoginLimit {
            max_failures: u32::MAX,
            window: Duration::from_secs(1),
            capacity: 16,
        },
    };
    let server = provisioning::bind(config, store).await?;
    eprintln!("listening on http://{}", server.local_addr());
    tokio::signal::ctrl_c().await?;
    server.shutdown();
    server.wait().await?;
    Ok(())
}
