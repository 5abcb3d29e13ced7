//! `voxide admin` commands run end to end against the real provisioning API, served in-process
//! on a free loopback port with a temporary SQLite store.

use std::net::SocketAddr;
use std::path::Path;

use admin_cli::{AdminCli, CliError};
use clap::Parser;
use serde_json::Value;
use store::prelude::*;

const ADMIN_PASSWORD: &str = "admin-test-password";

struct Api {
    server: provisioning::ApiServer,
    store: store::Store,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.shutdown();
    }
}

async fn start_api(tls: bool) -> Api {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("voxide.db").display()
    );
    let store = store::Store::connect(&database).await.expect("store opens");
    provisioning::bootstrap_admin(&store, dir.path(), Some(ADMIN_PASSWORD.to_owned()))
        .await
        .expect("first admin");
    let tls_mode = if tls {
        provisioning::TlsMode::SelfSigned {
            data_dir: dir.path().to_owned(),
        }
    } else {
        provisioning::TlsMode::Plain
    };
    let config = provisioning::ApiConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: tls_mode,
        data_dir: dir.path().to_owned(),
        login_limit: provisioning::LoginLimit::default(),
    };
    let server = provisioning::bind(config, store.clone())
        .await
        .expect("API binds");
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://127.0.0.1:{}", server.local_addr().port());
    Api {
        server,
        store,
        url,
        dir,
    }
}

/// The outcome of one CLI invocation.
struct Outcome {
    result: Result<(), CliError>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Stdout of a command that must have succeeded.
    fn ok(self) -> String {
        if let Err(error) = &self.result {
            panic!("command failed: {error}\nstderr: {}", self.stderr);
        }
        self.stdout
    }

    /// The error of a command that must have failed.
    fn err(self) -> CliError {
        match self.result {
            Ok(()) => panic!("command succeeded unexpectedly:\n{}", self.stdout),
            Err(error) => error,
        }
    }

    fn json(self) -> Value {
        let text = self.ok();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
    }
}

async fn run_raw(argv: &[&str]) -> Outcome {
    let mut full = vec!["voxide-admin"];
    full.extend_from_slice(argv);
    let cli = AdminCli::try_parse_from(full).unwrap_or_else(|e| panic!("usage error: {e}"));
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let result = admin_cli::run(cli.admin, &mut stdout, &mut stderr).await;
    Outcome {
        result,
        stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
    }
}

async fn admin(api: &Api, argv: &[&str]) -> Outcome {
    let mut full = vec![
        "--url",
        api.url.as_str(),
        "--user",
        store::INITIAL_ADMIN_LOGIN,
        "--password",
        ADMIN_PASSWORD,
    ];
    full.extend_from_slice(argv);
    run_raw(&full).await
}

/// Creates domain `example.org`, a customer and subscriber alice with number 43 1 234567;
/// returns the customer id.
async fn provision_alice(api: &Api) -> String {
    admin(api, &["domain", "add", "example.org"]).await.ok();
    let customer = admin(api, &["--json", "customer", "add", "ACME Ltd"])
        .await
        .json();
    let customer_id = customer["id"].as_u64().expect("customer id").to_string();
    admin(
        api,
        &[
            "subscriber",
            "add",
            "example.org",
            "alice",
            "first-secret",
            "--customer",
            &customer_id,
            "--cc",
            "43",
            "--ac",
            "1",
            "--sn",
            "234567",
            "--display-name",
            "Alice",
        ],
    )
    .await
    .ok();
    customer_id
}

async fn ha1_of_alice(store: &store::Store) -> String {
    store
        .find_sip_credentials("alice", "example.org")
        .await
        .expect("store answers")
        .expect("alice exists")
        .ha1_md5
}

#[tokio::test]
async fn domains_are_added_listed_and_removed() {
    let api = start_api(false).await;
    let added = admin(&api, &["domain", "add", "example.org"]).await.ok();
    assert!(added.starts_with("created domain "), "{added}");
    assert!(added.trim_end().ends_with("(example.org)"), "{added}");
    admin(&api, &["domain", "add", "other.example"]).await.ok();

    let table = admin(&api, &["domain", "list"]).await.ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("DOMAIN"),
        "{table}"
    );
    assert!(lines.iter().any(|l| l.ends_with("example.org")), "{table}");

    let listed = admin(&api, &["--json", "domain", "list"]).await.json();
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["domain"].as_str())
        .collect();
    assert_eq!(names, ["example.org", "other.example"]);

    let removed = admin(&api, &["domain", "rm", "other.example"]).await.ok();
    assert!(removed.starts_with("deleted domain "), "{removed}");
    let listed = admin(&api, &["--json", "domain", "list"]).await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    let error = admin(&api, &["domain", "rm", "missing.example"])
        .await
        .err();
    assert_eq!(
        error.to_string(),
        "domain: no domain 'missing.example' found"
    );
}

#[tokio::test]
async fn lists_follow_every_page() {
    let api = start_api(false).await;
    // More than one page of the CLI's 100 rows, written straight to the store.
    for n in 0..105 {
        api.store
            .create_domain(&store::NewDomain {
                domain: format!("d{n:03}.example"),
            })
            .await
            .expect("domain stored");
    }
    let listed = admin(&api, &["--json", "domain", "list"]).await.json();
    let names: Vec<String> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["domain"].as_str().map(str::to_owned))
        .collect();
    let expected: Vec<String> = (0..105).map(|n| format!("d{n:03}.example")).collect();
    assert_eq!(names, expected);

    let filtered = admin(&api, &["--json", "domain", "list", "--filter", "d10*"])
        .await
        .json();
    assert_eq!(filtered.as_array().map(Vec::len), Some(5), "{filtered}");
}

#[tokio::test]
async fn subscriber_life_cycle_with_password_and_aliases() {
    let api = start_api(false).await;
    let customer_id = provision_alice(&api).await;

    let table = admin(&api, &["subscriber", "list"]).await.ok();
    let alice_line = table
        .lines()
        .find(|l| l.contains("alice"))
        .unwrap_or_else(|| panic!("alice not listed:\n{table}"));
    assert!(alice_line.contains("example.org"), "{table}");
    assert!(alice_line.contains("431234567"), "{table}");

    let filtered = admin(
        &api,
        &["--json", "subscriber", "list", "--customer", &customer_id],
    )
    .await
    .json();
    assert_eq!(filtered.as_array().map(Vec::len), Some(1));
    assert_eq!(filtered[0]["username"], "alice");

    let shown = admin(&api, &["--json", "subscriber", "show", "alice@example.org"])
        .await
        .json();
    assert_eq!(shown["display_name"], "Alice");
    assert_eq!(shown["primary_number"]["sn"], "234567");
    let id = shown["id"].as_u64().expect("id").to_string();
    let by_id = admin(&api, &["subscriber", "show", &id]).await.ok();
    assert!(
        by_id
            .lines()
            .any(|l| l.starts_with("username") && l.ends_with("alice")),
        "{by_id}"
    );

    // passwd changes the digest secret the registrar will check.
    assert_eq!(
        ha1_of_alice(&api.store).await,
        store::ha1_md5("alice", "example.org", "first-secret")
    );
    let changed = admin(
        &api,
        &["subscriber", "passwd", "alice@example.org", "second-secret"],
    )
    .await
    .ok();
    assert_eq!(
        changed.trim_end(),
        "changed the SIP password of alice@example.org"
    );
    assert_eq!(
        ha1_of_alice(&api.store).await,
        store::ha1_md5("alice", "example.org", "second-secret")
    );

    let added = admin(
        &api,
        &[
            "number",
            "alias",
            "add",
            "alice@example.org",
            "--cc",
            "43",
            "--ac",
            "1",
            "--sn",
            "99",
        ],
    )
    .await
    .ok();
    assert_eq!(added.trim_end(), "added alias 43199 to alice@example.org");
    admin(
        &api,
        &[
            "number", "alias", "add", &id, "--cc", "43", "--ac", "1", "--sn", "98", "--devid",
        ],
    )
    .await
    .ok();
    let shown = admin(&api, &["--json", "subscriber", "show", &id])
        .await
        .json();
    let aliases: Vec<(String, bool)> = shown["alias_numbers"]
        .as_array()
        .expect("aliases")
        .iter()
        .map(|a| {
            (
                a["sn"].as_str().unwrap_or_default().to_owned(),
                a["is_devid"] == true,
            )
        })
        .collect();
    assert_eq!(aliases, [("99".to_owned(), false), ("98".to_owned(), true)]);
    let numbers = admin(
        &api,
        &["number", "list", "--subscriber", "alice@example.org"],
    )
    .await
    .ok();
    let numbered: Vec<&str> = numbers
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(numbered, ["431234567", "43199", "43198"], "{numbers}");
    let by_number = api
        .store
        .find_subscriber_by_number("43199")
        .await
        .expect("store");
    assert_eq!(by_number.map(|s| s.username), Some("alice".to_owned()));

    let duplicate = admin(
        &api,
        &[
            "number", "alias", "add", &id, "--cc", "43", "--ac", "1", "--sn", "99",
        ],
    )
    .await
    .err();
    assert!(
        duplicate
            .to_string()
            .starts_with("number: 43199 is already an alias"),
        "{duplicate}"
    );

    let removed = admin(
        &api,
        &[
            "number",
            "alias",
            "rm",
            "alice@example.org",
            "--cc",
            "43",
            "--ac",
            "1",
            "--sn",
            "99",
        ],
    )
    .await
    .ok();
    assert_eq!(
        removed.trim_end(),
        "removed alias 43199 from alice@example.org"
    );
    let shown = admin(&api, &["--json", "subscriber", "show", &id])
        .await
        .json();
    assert_eq!(
        shown["alias_numbers"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
    assert!(
        api.store
            .find_subscriber_by_number("43199")
            .await
            .expect("store")
            .is_none()
    );
    let missing = admin(
        &api,
        &[
            "number", "alias", "rm", &id, "--cc", "43", "--ac", "1", "--sn", "99",
        ],
    )
    .await
    .err();
    assert!(missing.to_string().contains("is not an alias"), "{missing}");

    let deleted = admin(&api, &["subscriber", "rm", "alice@example.org"])
        .await
        .ok();
    assert!(deleted.starts_with("deleted subscriber "), "{deleted}");
    assert_eq!(admin(&api, &["subscriber", "list"]).await.ok(), "(none)\n");
    let removed = admin(&api, &["customer", "rm", &customer_id]).await.ok();
    assert_eq!(
        removed.trim_end(),
        format!("deleted customer {customer_id}")
    );
    assert_eq!(admin(&api, &["customer", "list"]).await.ok(), "(none)\n");
    let gone = admin(&api, &["subscriber", "show", "alice@example.org"])
        .await
        .err();
    assert_eq!(
        gone.to_string(),
        "subscriber: no subscriber 'alice@example.org' found"
    );
}

#[tokio::test]
async fn preferences_are_typed_set_read_and_removed_on_each_level() {
    let api = start_api(false).await;
    let customer_id = provision_alice(&api).await;
    let alice = ["--subscriber", "alice@example.org"];

    // A digit string stays a string for a string preference.
    let set = admin(
        &api,
        &[
            "preference",
            "set",
            alice[0],
            alice[1],
            "user_cli",
            "431234567",
        ],
    )
    .await
    .ok();
    assert_eq!(
        set.trim_end(),
        "set user_cli = 431234567 on subscriber alice@example.org"
    );
    admin(
        &api,
        &["preference", "set", alice[0], alice[1], "clir", "yes"],
    )
    .await
    .ok();
    admin(
        &api,
        &[
            "preference",
            "set",
            alice[0],
            alice[1],
            "allowed_ips",
            "192.0.2.0/24",
            "198.51.100.7",
        ],
    )
    .await
    .ok();
    let all = admin(&api, &["--json", "preference", "get", alice[0], alice[1]])
        .await
        .json();
    assert_eq!(
        all,
        serde_json::json!({
            "user_cli": "431234567",
            "clir": true,
            "allowed_ips": ["192.0.2.0/24", "198.51.100.7"]
        })
    );
    let table = admin(&api, &["preference", "get", alice[0], alice[1]])
        .await
        .ok();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("allowed_ips") && l.ends_with("192.0.2.0/24,198.51.100.7")),
        "{table}"
    );

    let error = admin(
        &api,
        &["preference", "set", alice[0], alice[1], "clir", "maybe"],
    )
    .await
    .err();
    assert_eq!(
        error.to_string(),
        "value: 'maybe' is not a boolean (true/false) for preference 'clir'"
    );
    let error = admin(
        &api,
        &[
            "preference",
            "set",
            alice[0],
            alice[1],
            "concurrent_max",
            "five",
        ],
    )
    .await
    .err();
    assert!(
        error
            .to_string()
            .starts_with("value: 'five' is not an integer"),
        "{error}"
    );

    let unset = admin(
        &api,
        &["preference", "unset", alice[0], alice[1], "user_cli"],
    )
    .await
    .ok();
    assert_eq!(
        unset.trim_end(),
        "removed user_cli from subscriber alice@example.org"
    );
    let got = admin(&api, &["preference", "get", alice[0], alice[1], "user_cli"])
        .await
        .ok();
    assert!(got.contains("(not set)"), "{got}");
    let again = admin(
        &api,
        &["preference", "unset", alice[0], alice[1], "user_cli"],
    )
    .await
    .ok();
    assert_eq!(
        again.trim_end(),
        "user_cli was not set on subscriber alice@example.org"
    );

    // Domain level, with an enum checked against its values.
    admin(
        &api,
        &[
            "preference",
            "set",
            "--domain",
            "example.org",
            "nat_sipping",
            "nat",
        ],
    )
    .await
    .ok();
    let got = admin(
        &api,
        &[
            "--json",
            "preference",
            "get",
            "--domain",
            "example.org",
            "nat_sipping",
        ],
    )
    .await
    .json();
    assert_eq!(got, serde_json::json!({"nat_sipping": "nat"}));
    let error = admin(
        &api,
        &[
            "preference",
            "set",
            "--domain",
            "example.org",
            "nat_sipping",
            "always",
        ],
    )
    .await
    .err();
    assert!(error.to_string().contains("not one of"), "{error}");

    // Customer level.
    admin(
        &api,
        &[
            "preference",
            "set",
            "--customer",
            &customer_id,
            "concurrent_max",
            "10",
        ],
    )
    .await
    .ok();
    let got = admin(
        &api,
        &["--json", "preference", "get", "--customer", &customer_id],
    )
    .await
    .json();
    assert_eq!(got, serde_json::json!({"concurrent_max": 10}));
    let unknown = admin(
        &api,
        &[
            "preference",
            "set",
            "--customer",
            &customer_id,
            "no_such_preference",
            "1",
        ],
    )
    .await
    .err();
    assert_eq!(
        unknown.to_string(),
        "preference: unknown customer preference 'no_such_preference'"
    );
}

#[tokio::test]
async fn call_forwards_are_set_and_cleared() {
    let api = start_api(false).await;
    provision_alice(&api).await;

    let set = admin(
        &api,
        &[
            "callforward",
            "set",
            "alice@example.org",
            "cft",
            "--to",
            "4311",
            "--to",
            "voicebox",
            "--timeout",
            "20",
            "--ringtimeout",
            "15",
        ],
    )
    .await
    .ok();
    assert!(set.starts_with("set cft of alice@example.org\n"), "{set}");
    let cft_line = set.lines().find(|l| l.starts_with("cft")).expect("cft row");
    assert!(cft_line.contains("(20s)"), "{set}");
    assert!(cft_line.contains("rings 15s first"), "{set}");

    admin(
        &api,
        &[
            "callforward",
            "set",
            "alice@example.org",
            "cfb",
            "--to",
            "voicebox",
        ],
    )
    .await
    .ok();
    let shown = admin(
        &api,
        &["--json", "callforward", "show", "alice@example.org"],
    )
    .await
    .json();
    assert_eq!(
        shown["cft"]["destinations"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );
    assert_eq!(
        shown["cfb"]["destinations"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );

    let cleared = admin(&api, &["callforward", "clear", "alice@example.org", "cft"])
        .await
        .ok();
    let cft_line = cleared
        .lines()
        .find(|l| l.starts_with("cft"))
        .expect("cft row");
    assert_eq!(cft_line.trim_end(), "cft   -", "{cleared}");
    assert!(
        cleared
            .lines()
            .any(|l| l.starts_with("cfb") && l.contains("voicebox")),
        "{cleared}"
    );

    let cleared = admin(&api, &["callforward", "clear", "alice@example.org"])
        .await
        .ok();
    assert!(
        cleared.lines().skip(2).all(|l| l.trim_end().ends_with('-')),
        "{cleared}"
    );

    let error = admin(
        &api,
        &[
            "callforward",
            "set",
            "alice@example.org",
            "cfu",
            "--to",
            "1",
            "--ringtimeout",
            "5",
        ],
    )
    .await
    .err();
    assert!(error.to_string().starts_with("--ringtimeout:"), "{error}");
}

#[tokio::test]
async fn peerings_and_rewrite_rules_are_created() {
    let api = start_api(false).await;

    let group = admin(
        &api,
        &[
            "peer",
            "group",
            "add",
            "carrier-a",
            "--priority",
            "2",
            "--description",
            "Carrier A",
        ],
    )
    .await
    .ok();
    assert!(group.starts_with("created peering group "), "{group}");
    let server = admin(
        &api,
        &[
            "peer",
            "server",
            "add",
            "carrier-a",
            "carrier-a-1",
            "192.0.2.10",
            "--transport",
            "tcp",
            "--weight",
            "5",
        ],
    )
    .await
    .ok();
    assert!(server.contains("192.0.2.10:5060"), "{server}");
    admin(
        &api,
        &[
            "peer",
            "rule",
            "add",
            "carrier-a",
            "--callee-prefix",
            "43",
            "--description",
            "Austria",
        ],
    )
    .await
    .ok();

    let servers = admin(
        &api,
        &["--json", "peer", "server", "list", "--group", "carrier-a"],
    )
    .await
    .json();
    assert_eq!(servers[0]["name"], "carrier-a-1");
    assert_eq!(servers[0]["transport"], "tcp");
    assert_eq!(servers[0]["weight"], 5);
    let rules = admin(&api, &["peer", "rule", "list"]).await.ok();
    assert!(
        rules
            .lines()
            .any(|l| l.contains("43") && l.contains("Austria")),
        "{rules}"
    );
    let groups = admin(&api, &["peer", "group", "list"]).await.ok();
    assert!(
        groups
            .lines()
            .any(|l| l.contains("carrier-a") && l.contains("Carrier A")),
        "{groups}"
    );

    let unknown = admin(
        &api,
        &["peer", "server", "add", "no-such-group", "s", "192.0.2.11"],
    )
    .await
    .err();
    assert_eq!(
        unknown.to_string(),
        "peering group: no peering group 'no-such-group' found"
    );

    admin(
        &api,
        &[
            "rewrite",
            "set",
            "add",
            "default-in",
            "--description",
            "national to E.164",
        ],
    )
    .await
    .ok();
    let rule = admin(
        &api,
        &[
            "rewrite",
            "rule",
            "add",
            "default-in",
            "--match",
            "^0([1-9][0-9]+)$",
            "--replace",
            "${caller_cc}\\1",
            "--description",
            "national",
            "--priority",
            "10",
        ],
    )
    .await
    .ok();
    assert!(
        rule.contains("in callee ^0([1-9][0-9]+)$ -> ${caller_cc}\\1"),
        "{rule}"
    );
    let rules = admin(&api, &["--json", "rewrite", "rule", "list", "default-in"])
        .await
        .json();
    assert_eq!(rules[0]["match_pattern"], "^0([1-9][0-9]+)$");
    assert_eq!(rules[0]["replace_pattern"], "${caller_cc}\\1");
    assert_eq!(rules[0]["priority"], 10);
    let sets = admin(&api, &["rewrite", "set", "list"]).await.ok();
    assert!(sets.lines().any(|l| l.contains("default-in")), "{sets}");

    // The dry run for a subscriber (cc 43): unchanged without the preference, E.164 with it.
    provision_alice(&api).await;
    let dry_run = |list: &'static str| {
        let api = &api;
        async move {
            admin(
                api,
                &[
                    "rewrite",
                    "apply",
                    "alice@example.org",
                    "01234567",
                    "--list",
                    list,
                ],
            )
            .await
            .ok()
        }
    };
    assert_eq!(
        dry_run("callee-in").await.trim_end(),
        "01234567 -> 01234567 (callee_in for alice@example.org, no rule matched)"
    );
    admin(
        &api,
        &[
            "preference",
            "set",
            "--subscriber",
            "alice@example.org",
            "rewrite_rule_set",
            "default-in",
        ],
    )
    .await
    .ok();
    let rewritten = dry_run("callee-in").await;
    assert!(
        rewritten.starts_with("01234567 -> 431234567 (callee_in for alice@example.org, rule "),
        "{rewritten}"
    );
    assert!(dry_run("caller-out").await.contains("no rule matched"));
    let unknown = admin(&api, &["rewrite", "apply", "nobody@example.org", "1"])
        .await
        .err();
    assert!(
        unknown.to_string().contains("nobody@example.org"),
        "{unknown}"
    );

    // Preferences of a peering server, found by its name.
    admin(
        &api,
        &[
            "preference",
            "set",
            "--peer-server",
            "carrier-a-1",
            "max_call_duration",
            "3600",
        ],
    )
    .await
    .ok();
    let got = admin(
        &api,
        &[
            "--json",
            "preference",
            "get",
            "--peer-server",
            "carrier-a-1",
        ],
    )
    .await
    .json();
    assert_eq!(got, serde_json::json!({"max_call_duration": 3600}));

    // Removal, innermost first.
    let rules = admin(
        &api,
        &["--json", "peer", "rule", "list", "--group", "carrier-a"],
    )
    .await
    .json();
    let rule_id = rules[0]["id"].as_u64().expect("rule id").to_string();
    let removed = admin(&api, &["peer", "rule", "rm", &rule_id]).await.ok();
    assert_eq!(
        removed.trim_end(),
        format!("deleted peering rule {rule_id}")
    );
    admin(&api, &["peer", "server", "rm", "carrier-a-1"])
        .await
        .ok();
    admin(&api, &["peer", "group", "rm", "carrier-a"])
        .await
        .ok();
    for listing in [
        ["peer", "rule", "list"],
        ["peer", "server", "list"],
        ["peer", "group", "list"],
    ] {
        assert_eq!(admin(&api, &listing).await.ok(), "(none)\n", "{listing:?}");
    }
    let rules = admin(&api, &["--json", "rewrite", "rule", "list", "default-in"])
        .await
        .json();
    let rule_id = rules[0]["id"].as_u64().expect("rule id").to_string();
    admin(&api, &["rewrite", "rule", "rm", &rule_id]).await.ok();
    assert_eq!(
        admin(&api, &["rewrite", "rule", "list", "default-in"])
            .await
            .ok(),
        "(none)\n"
    );
    let removed = admin(&api, &["rewrite", "set", "rm", "default-in"])
        .await
        .ok();
    assert!(removed.trim_end().ends_with("(default-in)"), "{removed}");
    assert_eq!(
        admin(&api, &["rewrite", "set", "list"]).await.ok(),
        "(none)\n"
    );
}

#[tokio::test]
async fn api_errors_name_the_field() {
    let api = start_api(false).await;
    let customer_id = provision_alice(&api).await;

    let duplicate = admin(
        &api,
        &[
            "subscriber",
            "add",
            "example.org",
            "alice",
            "pw-2",
            "--customer",
            &customer_id,
        ],
    )
    .await
    .err();
    let text = duplicate.to_string();
    assert!(text.starts_with("username: "), "{text}");
    assert!(text.contains("alice"), "{text}");
    assert_eq!(duplicate.exit_status(), 1);

    let unknown_domain = admin(
        &api,
        &[
            "subscriber",
            "add",
            "nowhere.example",
            "bob",
            "pw",
            "--customer",
            &customer_id,
        ],
    )
    .await
    .err();
    let text = unknown_domain.to_string();
    assert!(text.starts_with("domain: "), "{text}");

    let duplicate_domain = admin(&api, &["domain", "add", "example.org"]).await.err();
    assert!(
        duplicate_domain.to_string().starts_with("domain: "),
        "{duplicate_domain}"
    );
}

#[tokio::test]
async fn wrong_password_gives_a_clear_401_message() {
    let api = start_api(false).await;
    let outcome = run_raw(&[
        "--url",
        &api.url,
        "--user",
        store::INITIAL_ADMIN_LOGIN,
        "--password",
        "wrong",
        "domain",
        "list",
    ])
    .await;
    let error = outcome.err();
    assert!(matches!(error, CliError::Unauthorized { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(text.contains(store::INITIAL_ADMIN_LOGIN), "{text}");
    assert_eq!(error.exit_status(), 4);

    let mut stderr = Vec::new();
    let code = admin_cli::report(&error, &mut stderr);
    assert_eq!(code, std::process::ExitCode::from(4));
    let stderr = String::from_utf8(stderr).expect("utf-8");
    assert!(
        stderr.starts_with("error: authentication failed"),
        "{stderr}"
    );
}

#[tokio::test]
async fn unreachable_api_names_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}");
    let error = run_raw(&[
        "--url",
        &url,
        "--user",
        "u",
        "--password",
        "p",
        "domain",
        "list",
    ])
    .await
    .err();
    assert!(matches!(error, CliError::Connection { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("cannot reach the API at {url}/api/domains/: ")),
        "{text}"
    );
    assert_eq!(error.exit_status(), 3);
}

#[tokio::test]
async fn self_signed_tls_needs_the_ca_file_or_insecure() {
    let api = start_api(true).await;
    let certificate = api.dir.path().join("api-cert.pem");
    assert!(
        Path::new(&certificate).exists(),
        "server wrote its certificate"
    );

    // The system trust store does not know the self-signed certificate.
    let error = admin(&api, &["domain", "list"]).await.err();
    let text = error.to_string();
    assert!(matches!(error, CliError::Connection { .. }), "{error:?}");
    assert!(text.contains("--ca-cert"), "{text}");

    let certificate = certificate.to_str().expect("utf-8 path");
    admin(
        &api,
        &["--ca-cert", certificate, "domain", "add", "tls.example"],
    )
    .await
    .ok();
    let listed = admin(&api, &["--ca-cert", certificate, "domain", "list"])
        .await
        .ok();
    assert!(listed.contains("tls.example"), "{listed}");

    let outcome = admin(&api, &["--insecure", "domain", "list"]).await;
    assert!(
        outcome.stderr.starts_with("warning: --insecure"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.ok().contains("tls.example"));
}

#[tokio::test]
async fn settings_come_from_the_config_file() {
    let api = start_api(false).await;
    let config = api.dir.path().join("voxide.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nurl = \"{}/api/\"\npassword = \"{ADMIN_PASSWORD}\"\n",
            api.url
        ),
    )
    .expect("write config");
    let config = config.to_str().expect("utf-8 path");
    // No user anywhere: the CLI's default is the login provisioning creates first.
    assert_eq!(
        admin_cli::settings::DEFAULT_API_USER,
        store::INITIAL_ADMIN_LOGIN
    );
    run_raw(&["--config", config, "domain", "add", "file.example"])
        .await
        .ok();
    // A flag overrides the file: the wrong password on the command line wins and fails.
    let error = run_raw(&["--config", config, "--password", "wrong", "domain", "list"])
        .await
        .err();
    assert!(matches!(error, CliError::Unauthorized { .. }), "{error:?}");
}

/// `calls list|show` read the CDRs the mediator wrote (here written through the store's
/// mediation path), filtered by subscriber and status.
#[tokio::test]
async fn calls_are_listed_filtered_and_shown() {
    use store::{
        AccRepository, CallStatus, CallType, CdrLeg, CdrRepository, MediationOutcome, NewAccRecord,
        NewCdr,
    };
    let api = start_api(false).await;
    provision_alice(&api).await;
    let alice = admin(&api, &["--json", "subscriber", "show", "alice@example.org"])
        .await
        .json();
    let alice_id = alice["id"].as_i64().expect("subscriber id");
    let t0 = 1_764_000_000_000;
    let calls = [
        ("cli-ok", 200u16, CallStatus::Ok),
        ("cli-busy", 486, CallStatus::Busy),
    ];
    let records: Vec<NewAccRecord> = calls
        .iter()
        .map(|(call_id, code, _)| NewAccRecord {
            method: "INVITE".into(),
            call_id: (*call_id).into(),
            sip_code: *code,
            time_ms: t0,
            ..NewAccRecord::default()
        })
        .collect();
    api.store.insert_acc_records(&records).await.unwrap();
    let mut outcomes = Vec::new();
    for (index, (call_id, code, status)) in calls.iter().enumerate() {
        let row = api.store.acc_group(call_id).await.unwrap().remove(0);
        outcomes.push(MediationOutcome::Cdrs {
            acc_ids: vec![row.id],
            cdrs: vec![NewCdr {
                acc_id: row.id,
                call_id: (*call_id).into(),
                call_type: CallType::Call,
                call_status: *status,
                call_code: *code,
                init_time_ms: t0 + index as i64,
                start_time_ms: t0 + index as i64,
                duration_ms: if *code == 200 { 2_500 } else { 0 },
                source: CdrLeg {
                    subscriber_id: (index == 0).then_some(alice_id),
                    ..CdrLeg::default()
                },
                destination: CdrLeg::default(),
                source_cli: "431234567".into(),
                source_ip: "127.0.0.1".into(),
                destination_user_dialed: "bob".into(),
                destination_user_in: "bob".into(),
                destination_domain_in: "example.org".into(),
            }],
        });
    }
    api.store.commit_mediation(&outcomes, t0).await.unwrap();

    let table = admin(&api, &["calls", "list"]).await.ok();
    assert!(table.contains("cli-") || table.contains("busy"), "{table}");
    assert!(table.contains("page 1: 2 of 2 calls"), "{table}");
    let alices = admin(
        &api,
        &[
            "--json",
            "calls",
            "list",
            "--subscriber",
            "alice@example.org",
        ],
    )
    .await
    .json();
    let alices = alices.as_array().expect("array");
    assert_eq!(alices.len(), 1);
    assert_eq!(alices[0]["call_id"], "cli-ok");
    assert_eq!(alices[0]["duration"], 2.5);
    let busy = admin(&api, &["--json", "calls", "list", "--status", "busy"])
        .await
        .json();
    assert_eq!(busy[0]["call_id"], "cli-busy");
    let id = alices[0]["id"].as_u64().unwrap().to_string();
    let shown = admin(&api, &["calls", "show", &id]).await.ok();
    assert!(
        shown.contains("cli-ok") && shown.contains("431234567"),
        "{shown}"
    );
    let error = admin(&api, &["calls", "list", "--status", "great"])
        .await
        .err();
    assert!(error.to_string().contains("call_status"), "{error}");
}
