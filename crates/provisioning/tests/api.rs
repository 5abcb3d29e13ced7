//! End-to-end tests of the provisioning REST API: a real server on 127.0.0.1 port 0, a real
//! HTTP client and a real database (SQLite and MariaDB).

mod common;

use common::{Harness, Reply};
use serde_json::{Value, json};
use store::prelude::*;

async fn create_domain(harness: &Harness, name: &str) -> i64 {
    harness
        .post("/api/domains/", &json!({ "domain": name }))
        .await
        .created_id()
}

async fn create_customer(harness: &Harness, name: &str) -> i64 {
    harness
        .post("/api/customers/", &json!({ "name": name }))
        .await
        .created_id()
}

fn subscriber_body(customer_id: i64, domain: &str, username: &str, sn: &str) -> Value {
    json!({
        "customer_id": customer_id,
        "domain": domain,
        "username": username,
        "password": format!("sip-secret-{username}"),
        "webusername": username,
        "webpassword": format!("web-secret-{username}"),
        "display_name": "Alice Example",
        "primary_number": {"cc": "43", "ac": "1", "sn": sn},
        "alias_numbers": [{"cc": "43", "ac": "1", "sn": format!("{sn}9")}],
    })
}

/// Every body the API sent must be free of the given secrets.
fn assert_no_secret(replies: &[&Reply], secrets: &[String]) {
    for reply in replies {
        for secret in secrets {
            assert!(
                !reply.text.contains(secret.as_str()),
                "response leaks a secret: {}",
                reply.text
            );
        }
        let lower = reply.text.to_ascii_lowercase();
        assert!(
            !lower.contains("\"password\""),
            "password member in {}",
            reply.text
        );
        assert!(!lower.contains("ha1"), "HA1 member in {}", reply.text);
    }
}

async fn domains_crud(harness: &Harness) {
    let created = harness
        .post("/api/domains/", &json!({"domain": "Sip.Example.org"}))
        .await;
    let id = created.created_id();
    assert_eq!(created.location(), format!("/api/domains/{id}"));
    assert!(created.text.is_empty());

    let item = harness.get(&format!("/api/domains/{id}")).await;
    assert_eq!(item.status, 200);
    assert!(item.content_type().starts_with("application/hal+json"));
    let item = item.json();
    assert_eq!(item["domain"], "sip.example.org");
    assert_eq!(item["_links"]["self"]["href"], format!("/api/domains/{id}"));

    create_domain(harness, "b.example.org").await;
    create_domain(harness, "c.example.net").await;
    let page = harness.get("/api/domains/?page=1&rows=2").await.json();
    assert_eq!(page["total_count"], 3);
    assert_eq!(
        page["_embedded"]["ngcp:domains"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        page["_links"]["next"]["href"],
        "/api/domains/?page=2&rows=2"
    );
    let filtered = harness.get("/api/domains/?domain=*.org").await.json();
    assert_eq!(filtered["total_count"], 2);
    let one = harness
        .get("/api/domains/?domain=c.example.net")
        .await
        .json();
    assert!(
        one["_embedded"]["ngcp:domains"].is_array(),
        "single item is still an array"
    );

    harness
        .post("/api/domains/", &json!({"domain": "sip.example.org"}))
        .await
        .assert_problem(409, Some("domain"));
    let after = harness.get("/api/domains/").await.json();
    assert_eq!(after["total_count"], 3, "duplicate must not be written");

    harness
        .get("/api/domains/0")
        .await
        .assert_problem(400, Some("id"));
    harness
        .get("/api/domains/abc")
        .await
        .assert_problem(400, Some("id"));
    harness
        .get("/api/domains/?rows=0")
        .await
        .assert_problem(400, Some("rows"));
    let redirect = harness.get("/api/domains").await;
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.location(), "/api/domains/");

    assert_eq!(
        harness.delete(&format!("/api/domains/{id}")).await.status,
        204
    );
    harness
        .get(&format!("/api/domains/{id}"))
        .await
        .assert_problem(404, None);
    harness
        .delete(&format!("/api/domains/{id}"))
        .await
        .assert_problem(404, None);
    // No PUT on domains (ngcp shape).
    harness
        .put(
            &format!("/api/domains/{id}"),
            &json!({"domain": "x.example"}),
        )
        .await
        .assert_problem(405, None);
}
on_both_backends!(domains_crud);

async fn customers_crud(harness: &Harness) {
    let id = harness
        .post(
            "/api/customers/",
            &json!({"name": "ACME", "external_id": "c-1"}),
        )
        .await
        .created_id();
    let item = harness.get(&format!("/api/customers/{id}")).await.json();
    assert_eq!(item["status"], "active");
    assert_eq!(item["external_id"], "c-1");

    let replaced = harness
        .send(
            harness
                .authed(reqwest_ring::Method::PUT, &format!("/api/customers/{id}"))
                .header("content-type", "application/json")
                .header("prefer", "return=representation")
                .body(json!({"name": "ACME Ltd", "status": "locked"}).to_string()),
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(replaced.json()["status"], "locked");
    assert_eq!(
        replaced.json()["external_id"],
        Value::Null,
        "PUT clears omitted fields"
    );

    let patched = harness
        .patch(
            &format!("/api/customers/{id}"),
            &json!([{"op": "replace", "path": "/status", "value": "terminated"}]),
        )
        .await;
    assert_eq!(patched.status, 204, "{}", patched.text);
    let stored = harness.store.get_customer(id).await.expect("stored");
    assert_eq!(stored.status, store::CustomerStatus::Terminated);
    assert_eq!(stored.name, "ACME Ltd");

    harness
        .patch(
            &format!("/api/customers/{id}"),
            &json!([{"op": "replace", "path": "/id", "value": 99}]),
        )
        .await
        .assert_problem(422, Some("id"));
    harness
        .patch(
            &format!("/api/customers/{id}"),
            &json!([{"op": "replace", "path": "/status", "value": "bogus"}]),
        )
        .await
        .assert_problem(422, Some("status"));
    harness
        .patch(
            &format!("/api/customers/{id}"),
            &json!([{"op": "replace", "path": "/nope", "value": 1}]),
        )
        .await
        .assert_problem(422, None);
    harness
        .patch(&format!("/api/customers/{id}"), &json!({"op": "replace"}))
        .await
        .assert_problem(400, None);

    let list = harness
        .get("/api/customers/?status=terminated")
        .await
        .json();
    assert_eq!(list["total_count"], 1);
    assert_eq!(
        harness.delete(&format!("/api/customers/{id}")).await.status,
        204
    );
    harness
        .get(&format!("/api/customers/{id}"))
        .await
        .assert_problem(404, None);
}
on_both_backends!(customers_crud);

async fn subscribers_and_numbers(harness: &Harness) {
    let domain_id = create_domain(harness, "sip.example.org").await;
    let customer_id = create_customer(harness, "ACME").await;
    let body = subscriber_body(customer_id, "sip.example.org", "alice", "234567");
    let created = harness.post("/api/subscribers/", &body).await;
    let alice = created.created_id();
    let bob = harness
        .post(
            "/api/subscribers/",
            &subscriber_body(customer_id, "sip.example.org", "bob", "555000"),
        )
        .await
        .created_id();

    let item = harness.get(&format!("/api/subscribers/{alice}")).await;
    assert_eq!(item.status, 200);
    let view = item.json();
    assert_eq!(view["username"], "alice");
    assert_eq!(view["domain_id"], domain_id);
    assert_eq!(view["primary_number"]["sn"], "234567");
    assert_eq!(view["alias_numbers"][0]["sn"], "2345679");

    // Filters named in the brief.
    for (query, expected) in [
        ("username=alice", 1),
        ("username=*", 2),
        ("domain=sip.example.org", 2),
        ("number=431234567", 1),
        ("number=4312345679", 1),
        (&format!("customer_id={customer_id}") as &str, 2),
        ("customer_id=999999", 0),
    ] {
        let page = harness.get(&format!("/api/subscribers/?{query}")).await;
        assert_eq!(page.status, 200, "{query}: {}", page.text);
        assert_eq!(page.json()["total_count"], expected, "filter {query}");
    }

    // PUT keeps the SIP password when omitted; PATCH edits the GET representation.
    let mut replacement = body.clone();
    replacement["password"] = Value::Null;
    replacement["display_name"] = json!("Alice Replaced");
    let put = harness
        .put(&format!("/api/subscribers/{alice}"), &replacement)
        .await;
    assert_eq!(put.status, 204, "{}", put.text);
    let patch = harness
        .patch(
            &format!("/api/subscribers/{alice}"),
            &json!([{"op": "replace", "path": "/display_name", "value": "Alice Patched"},
                    {"op": "add", "path": "/alias_numbers/-", "value": {"cc": "43", "ac": "1", "sn": "777"}}]),
        )
        .await;
    assert_eq!(patch.status, 204, "{}", patch.text);
    let stored = harness.store.get_subscriber(alice).await.expect("stored");
    assert_eq!(stored.display_name.as_deref(), Some("Alice Patched"));
    assert_eq!(stored.alias_numbers.len(), 2);
    let credentials = harness
        .store
        .find_sip_credentials("alice", "sip.example.org")
        .await
        .expect("lookup")
        .expect("credentials");
    let ha1 = store::ha1_md5("alice", "sip.example.org", "sip-secret-alice");
    assert_eq!(
        credentials.ha1_md5, ha1,
        "password kept through PUT and PATCH"
    );

    // Numbers: list, filter, move an alias to bob.
    let numbers = harness
        .get(&format!("/api/numbers/?subscriber_id={alice}&type=alias"))
        .await
        .json();
    assert_eq!(numbers["total_count"], 2);
    let alias = &numbers["_embedded"]["ngcp:numbers"][0];
    let alias_id = alias["id"].as_i64().expect("id");
    let moved = harness
        .put(
            &format!("/api/numbers/{alias_id}"),
            &json!({"subscriber_id": bob, "is_devid": false}),
        )
        .await;
    assert_eq!(moved.status, 204, "{}", moved.text);
    assert_eq!(
        harness
            .store
            .get_number(alias_id)
            .await
            .expect("number")
            .subscriber_id,
        bob
    );
    // PUT re-creates the number rows, so read the current id.
    let current = harness
        .get(&format!("/api/subscribers/{alice}"))
        .await
        .json();
    let primary_id = current["primary_number"]["number_id"]
        .as_i64()
        .expect("number id");
    harness
        .patch(
            &format!("/api/numbers/{primary_id}"),
            &json!([{"op": "replace", "path": "/sn", "value": "1"}]),
        )
        .await
        .assert_problem(422, Some("sn"));

    // Duplicates: username in the same domain, and an existing number.
    harness
        .post(
            "/api/subscribers/",
            &subscriber_body(customer_id, "sip.example.org", "alice", "999111"),
        )
        .await
        .assert_problem(409, None);
    harness
        .post(
            "/api/subscribers/",
            &subscriber_body(customer_id, "sip.example.org", "carol", "234567"),
        )
        .await
        .assert_problem(409, None);
    harness
        .post(
            "/api/subscribers/",
            &subscriber_body(customer_id, "nowhere.example", "dave", "888111"),
        )
        .await
        .assert_problem(422, Some("domain"));
    let count = harness
        .store
        .list_subscribers(
            &store::SubscriberFilter::default(),
            store::Page::new(1, 100),
        )
        .await
        .expect("list")
        .total_count;
    assert_eq!(count, 2, "rejected subscribers must not be written");

    // No response carries a password or HA1. (The first alias moved to bob above.)
    replacement["alias_numbers"] = json!([]);
    let list = harness.get("/api/subscribers/").await;
    let item = harness.get(&format!("/api/subscribers/{alice}")).await;
    let with_body = harness
        .send(
            harness
                .authed(
                    reqwest_ring::Method::PUT,
                    &format!("/api/subscribers/{alice}"),
                )
                .header("content-type", "application/json")
                .header("prefer", "return=representation")
                .body(replacement.to_string()),
        )
        .await;
    assert_eq!(with_body.status, 200, "{}", with_body.text);
    let secrets = vec![
        "sip-secret-alice".to_owned(),
        "web-secret-alice".to_owned(),
        ha1,
        credentials.ha1_sha256.clone(),
    ];
    assert_no_secret(&[&list, &item, &with_body], &secrets);

    assert_eq!(
        harness
            .delete(&format!("/api/subscribers/{bob}"))
            .await
            .status,
        204
    );
    harness
        .get(&format!("/api/subscribers/{bob}"))
        .await
        .assert_problem(404, None);
}
on_both_backends!(subscribers_and_numbers);

async fn bad_input_is_rejected_and_nothing_written(harness: &Harness) {
    create_domain(harness, "sip.example.org").await;
    let customer_id = create_customer(harness, "ACME").await;
    let good = subscriber_body(customer_id, "sip.example.org", "alice", "234567");
    let path = "/api/subscribers/";

    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("username");
    harness
        .post(path, &missing)
        .await
        .assert_problem(422, Some("username"));

    let mut extra = good.clone();
    extra["shoe_size"] = json!(44);
    harness
        .post(path, &extra)
        .await
        .assert_problem(422, Some("shoe_size"));

    let mut nested_extra = good.clone();
    nested_extra["primary_number"]["extension"] = json!("1");
    harness
        .post(path, &nested_extra)
        .await
        .assert_problem(422, Some("primary_number.extension"));

    let mut wrong_type = good.clone();
    wrong_type["customer_id"] = json!("seven");
    harness
        .post(path, &wrong_type)
        .await
        .assert_problem(422, Some("customer_id"));

    let mut too_long = good.clone();
    too_long["display_name"] = json!("x".repeat(129));
    harness
        .post(path, &too_long)
        .await
        .assert_problem(422, Some("display_name"));

    let mut long_username = good.clone();
    long_username["username"] = json!("u".repeat(300));
    harness
        .post(path, &long_username)
        .await
        .assert_problem(422, Some("username"));

    for injection in [
        "alice'; DROP TABLE subscribers; --",
        "\" OR 1=1 --",
        "alice' OR '1'='1",
    ] {
        let mut body = good.clone();
        body["username"] = json!(injection);
        harness
            .post(path, &body)
            .await
            .assert_problem(422, Some("username"));
        let mut in_domain = good.clone();
        in_domain["domain"] = json!(injection);
        harness
            .post(path, &in_domain)
            .await
            .assert_problem(422, Some("domain"));
    }
    // An injection string in a filter is just a value that matches nothing.
    let filtered = harness
        .get("/api/subscribers/?username=x%27%20OR%20%271%27%3D%271")
        .await;
    assert_eq!(filtered.status, 200, "{}", filtered.text);
    assert_eq!(filtered.json()["total_count"], 0);

    harness
        .post_raw(
            path,
            "application/json",
            b"{\"username\": \"\xff\xfe\"}".to_vec(),
        )
        .await
        .assert_problem(400, None);
    harness
        .post_raw(path, "application/json", b"{\"username\": ".to_vec())
        .await
        .assert_problem(400, None);
    harness
        .post_raw(path, "application/json", Vec::new())
        .await
        .assert_problem(400, None);
    harness
        .post_raw(path, "text/plain", good.to_string().into_bytes())
        .await
        .assert_problem(415, None);
    let mut huge = br#"{"username": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    huge.extend(br#""}"#);
    harness
        .post_raw(path, "application/json", huge)
        .await
        .assert_problem(413, None);

    let mut unknown_customer = good.clone();
    unknown_customer["customer_id"] = json!(987_654);
    harness
        .post(path, &unknown_customer)
        .await
        .assert_problem(422, Some("customer_id"));

    let count = harness
        .store
        .list_subscribers(&store::SubscriberFilter::default(), store::Page::new(1, 10))
        .await
        .expect("list (table still exists)")
        .total_count;
    assert_eq!(count, 0, "no bad request may write anything");
    let numbers = harness
        .store
        .list_numbers(&store::NumberFilter::default(), store::Page::new(1, 10))
        .await
        .expect("numbers")
        .total_count;
    assert_eq!(numbers, 0);

    // The good body still works afterwards.
    harness.post(path, &good).await.created_id();
}
on_both_backends!(bad_input_is_rejected_and_nothing_written);

async fn preferences(harness: &Harness) {
    let domain_id = create_domain(harness, "sip.example.org").await;
    let customer_id = create_customer(harness, "ACME").await;
    let subscriber_id = harness
        .post(
            "/api/subscribers/",
            &subscriber_body(customer_id, "sip.example.org", "alice", "234567"),
        )
        .await
        .created_id();

    let defs = harness.get("/api/subscriberpreferencedefs/").await;
    assert_eq!(defs.status, 200);
    let defs = defs.json();
    let (name, definition) = defs
        .as_object()
        .and_then(|map| map.iter().find(|(_, def)| def["data_type"] == "boolean"))
        .expect("a boolean preference definition");
    assert_eq!(definition["max_occur"], 1);

    let path = format!("/api/subscriberpreferences/{subscriber_id}");
    let empty = harness.get(&path).await.json();
    assert_eq!(empty["subscriber_id"], subscriber_id);
    assert!(empty.get(name).is_none(), "only set preferences are shown");

    let put = harness.put(&path, &json!({ name.as_str(): true })).await;
    assert_eq!(put.status, 204, "{}", put.text);
    assert_eq!(harness.get(&path).await.json()[name.as_str()], true);
    assert_eq!(
        harness
            .store
            .get_preference(store::PreferenceLevel::Subscriber, subscriber_id, name)
            .await
            .expect("read"),
        Some(json!(true))
    );

    let patch = harness
        .patch(
            &path,
            &json!([{"op": "remove", "path": format!("/{name}")}]),
        )
        .await;
    assert_eq!(patch.status, 204, "{}", patch.text);
    assert!(harness.get(&path).await.json().get(name).is_none());

    harness
        .put(&path, &json!({"no_such_preference": 1}))
        .await
        .assert_problem(422, Some("no_such_preference"));
    harness
        .put(&path, &json!({ name.as_str(): "not a boolean" }))
        .await
        .assert_problem(422, Some(name.as_str()));
    harness
        .get("/api/subscriberpreferences/999999")
        .await
        .assert_problem(404, None);

    let domain_path = format!("/api/domainpreferences/{domain_id}");
    assert_eq!(
        harness.get(&domain_path).await.json()["domain_id"],
        domain_id
    );
    let customer_path = format!("/api/customerpreferences/{customer_id}");
    assert_eq!(
        harness.get(&customer_path).await.json()["customer_id"],
        customer_id
    );
    for defs in [
        "domainpreferencedefs",
        "customerpreferencedefs",
        "peeringserverpreferencedefs",
    ] {
        assert_eq!(
            harness.get(&format!("/api/{defs}/")).await.status,
            200,
            "{defs}"
        );
    }
}
on_both_backends!(preferences);

async fn call_forwards(harness: &Harness) {
    create_domain(harness, "sip.example.org").await;
    let customer_id = create_customer(harness, "ACME").await;
    let subscriber_id = harness
        .post(
            "/api/subscribers/",
            &subscriber_body(customer_id, "sip.example.org", "alice", "234567"),
        )
        .await
        .created_id();
    let path = format!("/api/callforwards/{subscriber_id}");
    let empty = harness.get(&path).await.json();
    assert_eq!(empty["cfu"]["destinations"], json!([]));

    let put = harness
        .put(
            &path,
            &json!({
                "cfu": {"destinations": [{"destination": "4312345678", "timeout": 30, "priority": 1}]},
                "cft": {"destinations": [{"destination": "voicebox"}], "ringtimeout": 20},
            }),
        )
        .await;
    assert_eq!(put.status, 204, "{}", put.text);
    let stored = harness
        .store
        .get_call_forwards(subscriber_id)
        .await
        .expect("forwards");
    assert_eq!(
        stored
            .cfu
            .as_ref()
            .map(|cf| cf.destinations[0].destination.as_str()),
        Some("4312345678")
    );
    assert_eq!(stored.cft_ringtimeout, Some(20));

    let view = harness.get(&path).await.json();
    assert_eq!(view["cft"]["ringtimeout"], 20);
    assert_eq!(view["cft"]["destinations"][0]["timeout"], 300);

    let patch = harness
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/cfu/destinations/0/destination", "value": "4399"}]),
        )
        .await;
    assert_eq!(patch.status, 204, "{}", patch.text);
    assert_eq!(
        harness.get(&path).await.json()["cfu"]["destinations"][0]["destination"],
        "4399"
    );

    harness
        .put(&path, &json!({"cfx": {}}))
        .await
        .assert_problem(422, Some("cfx"));
    harness
        .put(
            &path,
            &json!({"cfu": {"destinations": [{"destination": "x", "timeout": "long"}]}}),
        )
        .await
        .assert_problem(422, None);

    assert_eq!(harness.delete(&path).await.status, 204);
    let cleared = harness
        .store
        .get_call_forwards(subscriber_id)
        .await
        .expect("forwards");
    assert!(cleared.cfu.is_none() && cleared.cft.is_none());
    harness
        .get("/api/callforwards/424242")
        .await
        .assert_problem(404, None);
}
on_both_backends!(call_forwards);

async fn peering_and_rewrite_rules(harness: &Harness) {
    let group = harness
        .post(
            "/api/peeringgroups/",
            &json!({"name": "carrier-a", "priority": 1}),
        )
        .await
        .created_id();
    harness
        .post("/api/peeringgroups/", &json!({"name": "carrier-a"}))
        .await
        .assert_problem(409, Some("name"));
    let server = harness
        .post(
            "/api/peeringservers/",
            &json!({"group_id": group, "name": "carrier-a-1", "ip": "192.0.2.10", "port": 5060, "transport": "udp", "weight": 1}),
        )
        .await
        .created_id();
    harness
        .post(
            "/api/peeringservers/",
            &json!({"group_id": 999_999, "name": "orphan", "ip": "192.0.2.11"}),
        )
        .await
        .assert_problem(422, Some("group_id"));
    let rule = harness
        .post(
            "/api/peeringrules/",
            &json!({"group_id": group, "callee_prefix": "43", "description": "Austria"}),
        )
        .await
        .created_id();

    let patched = harness
        .patch(
            &format!("/api/peeringservers/{server}"),
            &json!([{"op": "replace", "path": "/weight", "value": 5}]),
        )
        .await;
    assert_eq!(patched.status, 204, "{}", patched.text);
    assert_eq!(
        harness
            .store
            .get_peering_server(server)
            .await
            .expect("server")
            .weight,
        5
    );
    let servers = harness
        .get(&format!("/api/peeringservers/?group_id={group}"))
        .await
        .json();
    assert_eq!(servers["total_count"], 1);
    let prefs = harness
        .get(&format!("/api/peeringserverpreferences/{server}"))
        .await;
    assert_eq!(prefs.status, 200, "{}", prefs.text);
    assert_eq!(prefs.json()["peering_id"], server);

    let put_rule = harness
        .put(
            &format!("/api/peeringrules/{rule}"),
            &json!({"group_id": group, "callee_prefix": "49", "description": "Germany", "enabled": false}),
        )
        .await;
    assert_eq!(put_rule.status, 204, "{}", put_rule.text);
    let stored_rule = harness.store.get_peering_rule(rule).await.expect("rule");
    assert_eq!(stored_rule.callee_prefix, "49");
    assert!(!stored_rule.enabled);

    let set = harness
        .post(
            "/api/rewriterulesets/",
            &json!({"name": "default", "description": "normalise"}),
        )
        .await
        .created_id();
    let rewrite = harness
        .post(
            "/api/rewriterules/",
            &json!({"set_id": set, "match_pattern": "^0([1-9][0-9]+)$", "replace_pattern": "43\\1",
                    "description": "national", "direction": "in", "field": "callee", "priority": 50}),
        )
        .await
        .created_id();
    harness
        .post(
            "/api/rewriterules/",
            &json!({"set_id": set, "match_pattern": "([", "replace_pattern": "x",
                    "description": "broken", "direction": "in", "field": "callee"}),
        )
        .await
        .assert_problem(422, Some("match_pattern"));
    let rules = harness
        .get(&format!("/api/rewriterules/?set_id={set}"))
        .await
        .json();
    assert_eq!(rules["total_count"], 1);
    let rule_view = harness
        .get(&format!("/api/rewriterules/{rewrite}"))
        .await
        .json();
    assert_eq!(rule_view["direction"], "in");

    // The dry run: a subscriber in Vienna (cc 43, ac 1) with the set, dialling nationally.
    harness
        .post(
            "/api/rewriterules/",
            &json!({"set_id": set, "match_pattern": "^([1-9][0-9]+)$", "replace_pattern": "${caller_cc}${caller_ac}\\1",
                    "description": "local", "direction": "in", "field": "callee", "priority": 60}),
        )
        .await
        .created_id();
    let customer = create_customer(harness, "rewrite-customer").await;
    create_domain(harness, "rewrite.example.org").await;
    let subscriber = harness
        .post(
            "/api/subscribers/",
            &subscriber_body(customer, "rewrite.example.org", "vienna", "5550100"),
        )
        .await
        .created_id();
    let apply = |number: &str, direction: &str| json!({"subscriber_id": subscriber, "direction": direction, "number": number});
    let unset = harness
        .post("/api/applyrewrites/", &apply("01234567", "callee_in"))
        .await;
    assert_eq!(unset.status, 200, "{}", unset.text);
    assert_eq!(
        unset.json()["result"],
        "01234567",
        "no rule set yet: unchanged"
    );
    let prefs = format!("/api/subscriberpreferences/{subscriber}");
    let put = harness
        .put(&prefs, &json!({"rewrite_rule_set": "default"}))
        .await;
    assert_eq!(put.status, 204, "{}", put.text);
    let national = harness
        .post("/api/applyrewrites/", &apply("01234567", "callee_in"))
        .await
        .json();
    assert_eq!(national["result"], "431234567");
    assert_eq!(national["rule_id"], rewrite, "the first match by priority");
    let local = harness
        .post("/api/applyrewrites/", &apply("5550199", "callee_in"))
        .await
        .json();
    assert_eq!(
        local["result"], "4315550199",
        "variables from the subscriber's number"
    );
    let other_list = harness
        .post("/api/applyrewrites/", &apply("01234567", "caller_out"))
        .await
        .json();
    assert_eq!(
        other_list["result"], "01234567",
        "only callee_in rules exist"
    );
    harness
        .post("/api/applyrewrites/", &apply("1", "sideways"))
        .await
        .assert_problem(422, Some("direction"));
    harness
        .post(
            "/api/applyrewrites/",
            &json!({"subscriber_id": 999_999, "direction": "callee_in", "number": "1"}),
        )
        .await
        .assert_problem(404, None);
    assert_eq!(
        harness
            .delete(&format!("/api/subscribers/{subscriber}"))
            .await
            .status,
        204
    );

    for path in [
        format!("/api/rewriterules/{rewrite}"),
        format!("/api/rewriterulesets/{set}"),
        format!("/api/peeringrules/{rule}"),
        format!("/api/peeringservers/{server}"),
        format!("/api/peeringgroups/{group}"),
    ] {
        assert_eq!(harness.delete(&path).await.status, 204, "{path}");
        harness.get(&path).await.assert_problem(404, None);
    }
}
on_both_backends!(peering_and_rewrite_rules);

async fn bad_input_on_every_collection(harness: &Harness) {
    let group = harness
        .post("/api/peeringgroups/", &json!({"name": "g"}))
        .await
        .created_id();
    let set = harness
        .post("/api/rewriterulesets/", &json!({"name": "s"}))
        .await
        .created_id();
    // (collection, a valid body, its required field, a string field with its limit)
    let cases = [
        (
            "domains",
            json!({"domain": "ok.example"}),
            "domain",
            ("domain", 200),
        ),
        ("customers", json!({"name": "ACME"}), "name", ("name", 300)),
        (
            "peeringgroups",
            json!({"name": "g2"}),
            "name",
            ("description", 300),
        ),
        (
            "peeringservers",
            json!({"group_id": group, "name": "s1", "ip": "192.0.2.1"}),
            "ip",
            ("host", 300),
        ),
        (
            "peeringrules",
            json!({"group_id": group, "callee_prefix": "43"}),
            "group_id",
            ("callee_prefix", 17),
        ),
        (
            "rewriterulesets",
            json!({"name": "s2"}),
            "name",
            ("name", 65),
        ),
        (
            "rewriterules",
            json!({"set_id": set, "match_pattern": "^1$", "replace_pattern": "2",
                   "description": "d", "direction": "in", "field": "callee"}),
            "match_pattern",
            ("description", 256),
        ),
    ];
    for (collection, valid, required, (long_field, long_len)) in cases {
        let path = format!("/api/{collection}/");
        let before = harness.get(&path).await.json()["total_count"].clone();

        let mut missing = valid.clone();
        missing.as_object_mut().expect("object").remove(required);
        harness
            .post(&path, &missing)
            .await
            .assert_problem(422, Some(required));

        let mut unknown = valid.clone();
        unknown["colour"] = json!("blue");
        harness
            .post(&path, &unknown)
            .await
            .assert_problem(422, Some("colour"));

        let mut wrong_type = valid.clone();
        wrong_type[required] = json!({"nested": true});
        harness
            .post(&path, &wrong_type)
            .await
            .assert_problem(422, Some(required));

        let mut long = valid.clone();
        long[long_field] = json!("a".repeat(long_len));
        harness
            .post(&path, &long)
            .await
            .assert_problem(422, Some(long_field));

        harness
            .post_raw(&path, "application/json", b"[1, 2".to_vec())
            .await
            .assert_problem(400, None);
        harness
            .post_raw(&path, "application/xml", b"<domain/>".to_vec())
            .await
            .assert_problem(415, None);

        let after = harness.get(&path).await.json()["total_count"].clone();
        assert_eq!(
            before, after,
            "{collection}: a rejected request wrote something"
        );
        harness.post(&path, &valid).await.created_id();
    }
}
on_both_backends!(bad_input_on_every_collection);
