//! Behaviour of every repository, run against SQLite and MariaDB alike.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use serde_json::json;
use store::prelude::*;
use store::*;

async fn domain(store: &Store, name: &str) -> Domain {
    store
        .create_domain(&NewDomain {
            domain: name.into(),
        })
        .await
        .expect("create domain")
}

async fn customer(store: &Store, name: &str) -> Customer {
    store
        .create_customer(&NewCustomer {
            name: name.into(),
            status: CustomerStatus::Active,
            external_id: None,
        })
        .await
        .expect("create customer")
}

fn subscriber_input(
    customer_id: i64,
    domain_id: i64,
    username: &str,
    sn: Option<&str>,
) -> NewSubscriber {
    NewSubscriber {
        customer_id,
        domain_id,
        username: username.into(),
        password: "s3cret".into(),
        webusername: None,
        webpassword: None,
        display_name: None,
        email: None,
        external_id: None,
        status: SubscriberStatus::Active,
        administrative: false,
        primary_number: sn.map(|sn| E164Number::new("43", "1", sn)),
        alias_numbers: Vec::new(),
    }
}

fn alias(sn: &str) -> AliasNumber {
    AliasNumber {
        cc: "43".into(),
        ac: "1".into(),
        sn: sn.into(),
        is_devid: false,
    }
}

fn update_from(subscriber: &Subscriber) -> SubscriberUpdate {
    SubscriberUpdate {
        customer_id: subscriber.customer_id,
        domain_id: subscriber.domain_id,
        username: subscriber.username.clone(),
        password: None,
        webusername: subscriber.webusername.clone(),
        webpassword: None,
        display_name: subscriber.display_name.clone(),
        email: subscriber.email.clone(),
        external_id: subscriber.external_id.clone(),
        status: subscriber.status,
        administrative: subscriber.administrative,
        primary_number: subscriber
            .primary_number
            .as_ref()
            .map(|n| E164Number::new(&n.cc, &n.ac, &n.sn)),
        alias_numbers: subscriber
            .alias_numbers
            .iter()
            .map(|n| AliasNumber {
                cc: n.cc.clone(),
                ac: n.ac.clone(),
                sn: n.sn.clone(),
                is_devid: n.is_devid,
            })
            .collect(),
    }
}

fn assert_conflict<T: std::fmt::Debug>(result: StoreResult<T>, expected_field: &str) {
    match result {
        Err(StoreError::Conflict { field, .. }) => assert_eq!(field, expected_field),
        other => panic!("expected Conflict on {expected_field}, got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(result: StoreResult<T>, expected_field: &str) {
    match result {
        Err(StoreError::Invalid { field, .. }) => assert_eq!(field, expected_field),
        other => panic!("expected Invalid on {expected_field}, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: StoreResult<T>) {
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "expected NotFound, got {result:?}"
    );
}

on_both_backends!(domains_crud_and_conflicts, |db| {
    let store = &db.store;
    let created = domain(store, "SIP.Example.org").await;
    assert_eq!(created.domain, "sip.example.org");
    assert_eq!(store.get_domain(created.id).await.unwrap(), created);
    assert_eq!(
        store.find_domain_by_name("sip.EXAMPLE.org").await.unwrap(),
        Some(created.clone())
    );
    assert_conflict(
        store
            .create_domain(&NewDomain {
                domain: "sip.example.ORG".into(),
            })
            .await,
        "domain",
    );
    assert_invalid(
        store
            .create_domain(&NewDomain {
                domain: "bad domain".into(),
            })
            .await,
        "domain",
    );
    for name in ["a.example", "b.example", "c.test"] {
        domain(store, name).await;
    }
    let page = store
        .list_domains(&DomainFilter::default(), Page::new(2, 3))
        .await
        .unwrap();
    assert_eq!(page.total_count, 4);
    assert_eq!(page.items.len(), 1);
    let filtered = store
        .list_domains(
            &DomainFilter {
                domain: Some("*.example".into()),
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(filtered.total_count, 2);
    assert_eq!(
        filtered
            .items
            .iter()
            .map(|d| d.domain.as_str())
            .collect::<Vec<_>>(),
        ["a.example", "b.example"]
    );
    assert_invalid(
        store
            .list_domains(&DomainFilter::default(), Page::new(0, 10))
            .await,
        "page",
    );
    store.delete_domain(created.id).await.unwrap();
    assert_not_found(store.get_domain(created.id).await);
    assert_not_found(store.delete_domain(created.id).await);
});

on_both_backends!(customers_crud_and_in_use, |db| {
    let store = &db.store;
    let mut created = customer(store, "ACME").await;
    assert_eq!(store.get_customer(created.id).await.unwrap(), created);
    let update = NewCustomer {
        name: "ACME Ltd".into(),
        status: CustomerStatus::Locked,
        external_id: Some("ext-1".into()),
    };
    created = store.update_customer(created.id, &update).await.unwrap();
    assert_eq!(store.get_customer(created.id).await.unwrap(), created);
    assert_eq!(created.status, CustomerStatus::Locked);
    // An update that changes nothing still succeeds.
    store.update_customer(created.id, &update).await.unwrap();
    assert_not_found(store.update_customer(9999, &update).await);
    customer(store, "Other").await;
    let locked = store
        .list_customers(
            &CustomerFilter {
                status: Some(CustomerStatus::Locked),
                ..CustomerFilter::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(locked.total_count, 1);
    assert_eq!(locked.items[0].id, created.id);

    let d = domain(store, "in-use.example").await;
    store
        .create_subscriber(&subscriber_input(created.id, d.id, "bob", None))
        .await
        .unwrap();
    let in_use = store.delete_customer(created.id).await;
    assert!(
        matches!(in_use, Err(StoreError::InUse { .. })),
        "{in_use:?}"
    );
    let empty = customer(store, "Empty").await;
    store.delete_customer(empty.id).await.unwrap();
    assert_not_found(store.get_customer(empty.id).await);
    assert_invalid(
        store
            .create_customer(&NewCustomer {
                name: String::new(),
                status: CustomerStatus::Active,
                external_id: None,
            })
            .await,
        "name",
    );
});

on_both_backends!(subscriber_credentials_are_hashed, |db| {
    let store = &db.store;
    let d = domain(store, "sip.example.org").await;
    let c = customer(store, "ACME").await;
    let mut input = subscriber_input(c.id, d.id, "alice", Some("234567"));
    input.webusername = Some("alice.web".into());
    input.webpassword = Some("W3b!pass".into());
    input.alias_numbers = vec![alias("234568")];
    let alice = store.create_subscriber(&input).await.unwrap();
    assert_eq!(alice.domain, "sip.example.org");
    assert_eq!(alice.primary_number.as_ref().unwrap().e164, "431234567");
    assert_eq!(alice.alias_numbers.len(), 1);
    assert_eq!(alice.alias_numbers[0].e164, "431234568");
    assert!(uuid::Uuid::parse_str(&alice.uuid).is_ok());

    let credentials = store
        .find_sip_credentials("alice", "SIP.example.org")
        .await
        .unwrap()
        .expect("credentials");
    assert_eq!(credentials.subscriber_id, alice.id);
    assert_eq!(credentials.status, SubscriberStatus::Active);
    // printf 'alice:sip.example.org:s3cret' | md5sum / sha256sum
    assert_eq!(credentials.ha1_md5, "4cded4200e3c5f94806db4a26bd45166");
    assert_eq!(
        credentials.ha1_sha256,
        "5c0f1cebb73c8c95f7ec2c123a41d9895fa1fb645c0a64de3265347b0b53ba08"
    );
    assert!(
        store
            .find_sip_credentials("alice", "other.org")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_sip_credentials("Alice", "sip.example.org")
            .await
            .unwrap()
            .is_none()
    );

    // No column holds a clear password.
    let secrets: Vec<(String, String, Option<String>)> = match store.backend() {
        Backend::Sqlite(pool) => {
            sqlx::query_as("SELECT ha1_md5, ha1_sha256, webpassword_hash FROM subscribers")
                .fetch_all(pool)
                .await
                .unwrap()
        }
        Backend::MySql(pool) => {
            sqlx::query_as("SELECT ha1_md5, ha1_sha256, webpassword_hash FROM subscribers")
                .fetch_all(pool)
                .await
                .unwrap()
        }
    };
    let (_, _, web_hash) = &secrets[0];
    let web_hash = web_hash.as_deref().unwrap();
    assert!(web_hash.starts_with("$argon2id$"), "{web_hash}");
    assert!(verify_password_blocking("W3b!pass", web_hash));
    for (a, b, c) in &secrets {
        for text in [a.as_str(), b.as_str(), c.as_deref().unwrap_or("")] {
            assert!(!text.contains("s3cret") && !text.contains("W3b!pass"));
        }
    }

    let by_web = store
        .verify_subscriber_web_password("alice.web", "sip.example.org", "W3b!pass")
        .await
        .unwrap();
    assert_eq!(by_web.map(|s| s.id), Some(alice.id));
    assert!(
        store
            .verify_subscriber_web_password("alice.web", "sip.example.org", "wrong")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .verify_subscriber_web_password("nobody", "sip.example.org", "W3b!pass")
            .await
            .unwrap()
            .is_none()
    );

    let by_alias = store.find_subscriber_by_number("431234568").await.unwrap();
    assert_eq!(by_alias.map(|s| s.id), Some(alice.id));
    let by_primary = store.find_subscriber_by_number("+431234567").await.unwrap();
    assert_eq!(by_primary.map(|s| s.id), Some(alice.id));
    assert!(
        store
            .find_subscriber_by_number("49999")
            .await
            .unwrap()
            .is_none()
    );
    let found = store
        .find_subscriber("alice", "sip.example.org")
        .await
        .unwrap();
    assert_eq!(found, Some(alice));
});

on_both_backends!(subscriber_uniqueness_and_rollback, |db| {
    let store = &db.store;
    let d1 = domain(store, "one.example").await;
    let d2 = domain(store, "two.example").await;
    let c = customer(store, "ACME").await;
    let alice = store
        .create_subscriber(&subscriber_input(c.id, d1.id, "alice", Some("100")))
        .await
        .unwrap();

    // Username is unique per domain only; the message names the field, not SQL internals.
    let duplicate = store
        .create_subscriber(&subscriber_input(c.id, d1.id, "alice", Some("105")))
        .await
        .unwrap_err();
    assert_eq!(duplicate.to_string(), "username 'alice' already exists");
    assert!(duplicate.is_client_error());
    assert_conflict(
        store
            .create_subscriber(&subscriber_input(c.id, d1.id, "alice", Some("101")))
            .await,
        "username",
    );
    store
        .create_subscriber(&subscriber_input(c.id, d2.id, "alice", Some("102")))
        .await
        .unwrap();

    // E.164 is unique system-wide, primary against primary …
    assert_conflict(
        store
            .create_subscriber(&subscriber_input(c.id, d2.id, "bob", Some("100")))
            .await,
        "number",
    );
    // … and an alias against another subscriber's primary. The subscriber row was already
    // written inside the transaction, so this also proves the rollback.
    let mut carol = subscriber_input(c.id, d1.id, "carol", Some("103"));
    carol.alias_numbers = vec![alias("102")];
    assert_conflict(store.create_subscriber(&carol).await, "number");
    assert!(
        store
            .find_subscriber("carol", "one.example")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_subscriber_by_number("431103")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_sip_credentials("carol", "one.example")
            .await
            .unwrap()
            .is_none()
    );
    // The same input without the clash goes through, so nothing of the failed try remained.
    carol.alias_numbers = vec![alias("104")];
    store.create_subscriber(&carol).await.unwrap();

    let mut dave = subscriber_input(c.id, d1.id, "dave", None);
    dave.webusername = Some("alice".into());
    store.create_subscriber(&dave).await.unwrap();
    let mut eve = subscriber_input(c.id, d1.id, "eve", None);
    eve.webusername = Some("alice".into());
    assert_conflict(store.create_subscriber(&eve).await, "webusername");

    // Unknown references are typed errors naming the field.
    assert_invalid(
        store
            .create_subscriber(&subscriber_input(c.id, 9999, "frank", None))
            .await,
        "domain_id",
    );
    assert_invalid(
        store
            .create_subscriber(&subscriber_input(9999, d1.id, "frank", None))
            .await,
        "customer_id",
    );
    assert_invalid(
        store
            .create_subscriber(&subscriber_input(c.id, d1.id, "bad name", None))
            .await,
        "username",
    );
    let total = store
        .list_subscribers(&SubscriberFilter::default(), Page::default())
        .await
        .unwrap()
        .total_count;
    assert_eq!(total, 4);

    // A failing update leaves the old row and numbers intact.
    let mut update = update_from(&alice);
    update.display_name = Some("changed".into());
    update.alias_numbers = vec![alias("104")];
    assert_conflict(store.update_subscriber(alice.id, &update).await, "number");
    let unchanged = store.get_subscriber(alice.id).await.unwrap();
    assert_eq!(unchanged, alice);
});

on_both_backends!(subscriber_update_and_delete, |db| {
    let store = &db.store;
    let d = domain(store, "sip.example.org").await;
    let c = customer(store, "ACME").await;
    let other = customer(store, "Other").await;
    let mut input = subscriber_input(c.id, d.id, "alice", Some("1"));
    input.alias_numbers = vec![alias("2"), alias("3")];
    let alice = store.create_subscriber(&input).await.unwrap();

    let mut update = update_from(&alice);
    update.display_name = Some("Alice".into());
    update.status = SubscriberStatus::Locked;
    update.alias_numbers = vec![alias("4")];
    let updated = store.update_subscriber(alice.id, &update).await.unwrap();
    // The kept primary number keeps its id.
    assert_eq!(
        updated.primary_number.as_ref().map(|n| n.id),
        alice.primary_number.as_ref().map(|n| n.id)
    );
    // Swapping primary and alias in one update works despite the unique index.
    let mut swap = update_from(&updated);
    swap.primary_number = Some(E164Number::new("43", "1", "4"));
    swap.alias_numbers = vec![alias("1")];
    let swapped = store.update_subscriber(alice.id, &swap).await.unwrap();
    assert_eq!(swapped.primary_number.as_ref().unwrap().e164, "4314");
    assert_eq!(swapped.alias_numbers[0].e164, "4311");
    let updated = store.update_subscriber(alice.id, &update).await.unwrap();
    assert_eq!(updated.display_name.as_deref(), Some("Alice"));
    assert_eq!(updated.status, SubscriberStatus::Locked);
    assert_eq!(
        updated
            .alias_numbers
            .iter()
            .map(|n| n.e164.as_str())
            .collect::<Vec<_>>(),
        ["4314"]
    );
    // Released aliases are free again.
    assert!(
        store
            .find_subscriber_by_number("4312")
            .await
            .unwrap()
            .is_none()
    );
    let old_ha1 = store
        .find_sip_credentials("alice", "sip.example.org")
        .await
        .unwrap()
        .unwrap();

    // HA1 covers the username, so a rename needs the password.
    let mut rename = update_from(&updated);
    rename.username = "alice2".into();
    assert_invalid(store.update_subscriber(alice.id, &rename).await, "password");
    rename.password = Some("n3w-pass".into());
    store.update_subscriber(alice.id, &rename).await.unwrap();
    let new_credentials = store
        .find_sip_credentials("alice2", "sip.example.org")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(new_credentials.ha1_md5, old_ha1.ha1_md5);
    assert_eq!(
        new_credentials.ha1_md5,
        ha1_md5("alice2", "sip.example.org", "n3w-pass")
    );
    assert_eq!(new_credentials.status, SubscriberStatus::Locked);

    let mut move_customer = update_from(&updated);
    move_customer.username = "alice2".into();
    move_customer.customer_id = other.id;
    assert_invalid(
        store.update_subscriber(alice.id, &move_customer).await,
        "customer_id",
    );
    assert_not_found(store.update_subscriber(9999, &update_from(&updated)).await);

    store.delete_subscriber(alice.id).await.unwrap();
    assert_not_found(store.get_subscriber(alice.id).await);
    assert!(
        store
            .find_subscriber_by_number("4311")
            .await
            .unwrap()
            .is_none()
    );
    assert_not_found(store.delete_subscriber(alice.id).await);
});

on_both_backends!(subscriber_lists_filter_and_page, |db| {
    let store = &db.store;
    let d1 = domain(store, "one.example").await;
    let d2 = domain(store, "two.example").await;
    let c1 = customer(store, "C1").await;
    let c2 = customer(store, "C2").await;
    for (i, name) in ["anna", "anton", "a_c", "abc", "bert"].iter().enumerate() {
        let (c, d) = if i < 3 { (&c1, &d1) } else { (&c2, &d2) };
        let sn = format!("50{i}");
        let mut input = subscriber_input(c.id, d.id, name, Some(&sn));
        input.alias_numbers = vec![alias(&format!("60{i}"))];
        store.create_subscriber(&input).await.unwrap();
    }
    let all = store
        .list_subscribers(&SubscriberFilter::default(), Page::new(1, 2))
        .await
        .unwrap();
    assert_eq!(all.total_count, 5);
    assert_eq!(all.items.len(), 2);
    let last = store
        .list_subscribers(&SubscriberFilter::default(), Page::new(3, 2))
        .await
        .unwrap();
    assert_eq!(last.items.len(), 1);
    assert_eq!(last.items[0].username, "bert");
    assert_eq!(last.items[0].alias_numbers[0].e164, "431604");

    let count = |filter: SubscriberFilter| async move {
        store
            .list_subscribers(&filter, Page::new(1, 100))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.username)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        count(SubscriberFilter {
            username: Some("an*".into()),
            ..Default::default()
        })
        .await,
        ["anna", "anton"]
    );
    // `_` is literal in a filter, not a SQL wildcard.
    assert_eq!(
        count(SubscriberFilter {
            username: Some("a_c".into()),
            ..Default::default()
        })
        .await,
        ["a_c"]
    );
    assert_eq!(
        count(SubscriberFilter {
            domain: Some("two.example".into()),
            ..Default::default()
        })
        .await,
        ["abc", "bert"]
    );
    assert_eq!(
        count(SubscriberFilter {
            customer_id: Some(c1.id),
            ..Default::default()
        })
        .await,
        ["anna", "anton", "a_c"]
    );
    assert_eq!(
        count(SubscriberFilter {
            number: Some("431601".into()),
            ..Default::default()
        })
        .await,
        ["anton"]
    );
    assert_eq!(
        count(SubscriberFilter {
            primary_number: Some("431502".into()),
            ..Default::default()
        })
        .await,
        ["a_c"]
    );
    assert!(
        count(SubscriberFilter {
            primary_number: Some("431602".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );

    let numbers = store
        .list_numbers(
            &NumberFilter {
                customer_id: Some(c2.id),
                is_primary: Some(false),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(numbers.total_count, 2);
    assert!(numbers.items.iter().all(|n| !n.is_primary));
});

on_both_backends!(numbers_move_between_subscribers, |db| {
    let store = &db.store;
    let d = domain(store, "sip.example.org").await;
    let c = customer(store, "ACME").await;
    let mut input = subscriber_input(c.id, d.id, "alice", Some("1"));
    input.alias_numbers = vec![alias("2")];
    let alice = store.create_subscriber(&input).await.unwrap();
    let bob = store
        .create_subscriber(&subscriber_input(c.id, d.id, "bob", Some("3")))
        .await
        .unwrap();
    let alias_id = alice.alias_numbers[0].id;
    let moved = store
        .update_number(
            alias_id,
            &NumberUpdate {
                subscriber_id: bob.id,
                is_devid: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.subscriber_id, bob.id);
    assert!(moved.is_devid);
    assert_eq!(
        store
            .find_subscriber_by_number("4312")
            .await
            .unwrap()
            .map(|s| s.id),
        Some(bob.id)
    );
    let primary_id = alice.primary_number.unwrap().id;
    assert_invalid(
        store
            .update_number(
                primary_id,
                &NumberUpdate {
                    subscriber_id: bob.id,
                    is_devid: false,
                },
            )
            .await,
        "subscriber_id",
    );
    assert_invalid(
        store
            .update_number(
                alias_id,
                &NumberUpdate {
                    subscriber_id: 9999,
                    is_devid: false,
                },
            )
            .await,
        "subscriber_id",
    );
    assert_not_found(store.get_number(9999).await);
});

on_both_backends!(hostile_and_non_ascii_text_round_trips, |db| {
    let store = &db.store;
    let d = domain(store, "sip.example.org").await;
    let injection = "Robert'); DROP TABLE subscribers; --";
    let c = store
        .create_customer(&NewCustomer {
            name: injection.into(),
            status: CustomerStatus::Active,
            external_id: Some("x' OR '1'='1".into()),
        })
        .await
        .unwrap();
    assert_eq!(store.get_customer(c.id).await.unwrap().name, injection);
    let unicode = "Zoë Ünïcødé 日本語 😀";
    let mut input = subscriber_input(c.id, d.id, "o'neil;--", Some("77"));
    input.display_name = Some(unicode.into());
    input.email = Some(injection.into());
    input.password = "pässwörd 🔑".into();
    let created = store.create_subscriber(&input).await.unwrap();
    let read = store.get_subscriber(created.id).await.unwrap();
    assert_eq!(read.display_name.as_deref(), Some(unicode));
    assert_eq!(read.email.as_deref(), Some(injection));
    assert_eq!(read.username, "o'neil;--");
    let credentials = store
        .find_sip_credentials("o'neil;--", "sip.example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        credentials.ha1_md5,
        ha1_md5("o'neil;--", "sip.example.org", "pässwörd 🔑")
    );
    // Lookups with hostile input just find nothing.
    assert!(
        store
            .find_sip_credentials("' OR '1'='1", "sip.example.org")
            .await
            .unwrap()
            .is_none()
    );
    let filtered = store
        .list_subscribers(
            &SubscriberFilter {
                display_name: Some("*日本語*".into()),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(filtered.total_count, 1);
    store
        .set_preference(
            PreferenceLevel::Subscriber,
            created.id,
            "user_cli",
            &json!(unicode),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_preference(PreferenceLevel::Subscriber, created.id, "user_cli")
            .await
            .unwrap(),
        Some(json!(unicode))
    );
    // The tables are all still there.
    assert_eq!(
        store
            .list_subscribers(&SubscriberFilter::default(), Page::default())
            .await
            .unwrap()
            .total_count,
        1
    );
});

on_both_backends!(preference_definitions_and_validation, |db| {
    let store = &db.store;
    let definitions = store.list_preference_definitions(None).await.unwrap();
    let names: Vec<&str> = definitions.iter().map(|d| d.name.as_str()).collect();
    for expected in [
        "concurrent_max",
        "concurrent_max_out",
        "clir",
        "lock",
        "allowed_ips",
        "block_in_mode",
        "block_in_list",
        "block_out_mode",
        "block_out_list",
        "ringtimeout",
        "max_call_duration",
        "nat_sipping",
        "user_cli",
        "rewrite_rule_set",
        "allow_out_foreign_domain",
    ] {
        assert!(names.contains(&expected), "{expected} missing");
    }
    let nat = store
        .get_preference_definition("nat_sipping")
        .await
        .unwrap();
    assert_eq!(nat.data_type, PreferenceType::Enum);
    assert_eq!(nat.enum_values, ["no", "yes", "nat"]);
    assert_eq!(nat.default_value, Some(json!("no")));
    let peer_level = store
        .list_preference_definitions(Some(PreferenceLevel::Peer))
        .await
        .unwrap();
    assert!(peer_level.iter().all(|d| d.peer_pref));
    assert!(peer_level.iter().any(|d| d.name == "max_call_duration"));

    let d = domain(store, "sip.example.org").await;
    let c = customer(store, "ACME").await;
    let s = store
        .create_subscriber(&subscriber_input(c.id, d.id, "alice", None))
        .await
        .unwrap();
    let sub = PreferenceLevel::Subscriber;
    assert_invalid(
        store
            .set_preference(sub, s.id, "concurrent_max", &json!("ten"))
            .await,
        "concurrent_max",
    );
    assert_invalid(
        store
            .set_preference(sub, s.id, "concurrent_max", &json!(-1))
            .await,
        "concurrent_max",
    );
    assert_invalid(
        store.set_preference(sub, s.id, "lock", &json!(6)).await,
        "lock",
    );
    assert_invalid(
        store
            .set_preference(sub, s.id, "nat_sipping", &json!("always"))
            .await,
        "nat_sipping",
    );
    assert_invalid(
        store
            .set_preference(sub, s.id, "block_in_list", &json!("43*"))
            .await,
        "block_in_list",
    );
    assert_invalid(
        store
            .set_preference(sub, s.id, "allowed_ips", &json!(["10.0.0.0/33"]))
            .await,
        "allowed_ips",
    );
    assert_invalid(
        store
            .set_preference(sub, s.id, "no_such_pref", &json!(1))
            .await,
        "no_such_pref",
    );
    assert_invalid(
        store
            .set_preference(PreferenceLevel::Domain, d.id, "user_cli", &json!("431"))
            .await,
        "user_cli",
    );
    assert_invalid(
        store
            .set_preference(sub, s.id, "rewrite_rule_set", &json!("missing"))
            .await,
        "rewrite_rule_set",
    );
    assert_not_found(store.set_preference(sub, 9999, "clir", &json!(true)).await);

    assert_eq!(
        store
            .set_preference(sub, s.id, "clir", &json!(1))
            .await
            .unwrap(),
        json!(true)
    );
    store
        .set_preference(sub, s.id, "lock", &json!(4))
        .await
        .unwrap();
    store
        .set_preference(
            sub,
            s.id,
            "allowed_ips",
            &json!(["192.0.2.0/24", "2001:db8::1"]),
        )
        .await
        .unwrap();
    store
        .set_preference(sub, s.id, "lock", &json!(3))
        .await
        .unwrap();
    let set = store.get_preferences(sub, s.id).await.unwrap();
    assert_eq!(set.len(), 3);
    assert_eq!(set["lock"], json!(3));
    assert_eq!(set["clir"], json!(true));
    assert_eq!(set["allowed_ips"], json!(["192.0.2.0/24", "2001:db8::1"]));
    assert!(store.delete_preference(sub, s.id, "clir").await.unwrap());
    assert!(!store.delete_preference(sub, s.id, "clir").await.unwrap());

    // PUT semantics: all or nothing.
    let mut bad = BTreeMap::new();
    bad.insert("concurrent_max".to_owned(), json!(5));
    bad.insert("ringtimeout".to_owned(), json!(0));
    assert_invalid(
        store.replace_preferences(sub, s.id, &bad).await,
        "ringtimeout",
    );
    assert_eq!(store.get_preferences(sub, s.id).await.unwrap().len(), 2);
    let mut good = BTreeMap::new();
    good.insert("concurrent_max".to_owned(), json!(5));
    good.insert("block_in_mode".to_owned(), json!(0));
    let replaced = store.replace_preferences(sub, s.id, &good).await.unwrap();
    assert_eq!(replaced["block_in_mode"], json!(false));
    let stored = store.get_preferences(sub, s.id).await.unwrap();
    assert_eq!(stored, replaced);
});

on_both_backends!(effective_preference_precedence, |db| {
    let store = &db.store;
    let d = domain(store, "sip.example.org").await;
    let c = customer(store, "ACME").await;
    let s = store
        .create_subscriber(&subscriber_input(c.id, d.id, "alice", None))
        .await
        .unwrap();
    let effective = |name: &'static str| async move {
        store
            .effective_preference(s.id, name)
            .await
            .unwrap()
            .map(|e| (e.value, e.source))
    };
    assert_eq!(effective("concurrent_max").await, None);
    assert_eq!(
        effective("ringtimeout").await,
        Some((json!(180), PreferenceSource::Default))
    );

    store
        .set_preference(PreferenceLevel::Domain, d.id, "concurrent_max", &json!(30))
        .await
        .unwrap();
    assert_eq!(
        effective("concurrent_max").await,
        Some((json!(30), PreferenceSource::Domain))
    );
    store
        .set_preference(
            PreferenceLevel::Customer,
            c.id,
            "concurrent_max",
            &json!(20),
        )
        .await
        .unwrap();
    assert_eq!(
        effective("concurrent_max").await,
        Some((json!(20), PreferenceSource::Customer))
    );
    store
        .set_preference(
            PreferenceLevel::Subscriber,
            s.id,
            "concurrent_max",
            &json!(10),
        )
        .await
        .unwrap();
    assert_eq!(
        effective("concurrent_max").await,
        Some((json!(10), PreferenceSource::Subscriber))
    );
    store
        .delete_preference(PreferenceLevel::Customer, c.id, "concurrent_max")
        .await
        .unwrap();
    store
        .delete_preference(PreferenceLevel::Subscriber, s.id, "concurrent_max")
        .await
        .unwrap();
    assert_eq!(
        effective("concurrent_max").await,
        Some((json!(30), PreferenceSource::Domain))
    );
    assert_not_found(store.effective_preference(9999, "concurrent_max").await);
    assert_invalid(store.effective_preference(s.id, "bogus").await, "bogus");

    // Deleting the domain removes its preferences with it.
    store.delete_subscriber(s.id).await.unwrap();
    store.delete_domain(d.id).await.unwrap();
    assert!(
        store
            .get_preferences(PreferenceLevel::Domain, d.id)
            .await
            .unwrap()
            .is_empty()
    );
});

on_both_backends!(call_forward_sets_and_mappings, |db| {
    let store = &db.store;
    let d = domain(store, "sip.example.org").await;
    let c = customer(store, "ACME").await;
    let s = store
        .create_subscriber(&subscriber_input(c.id, d.id, "alice", Some("1")))
        .await
        .unwrap();
    let other = store
        .create_subscriber(&subscriber_input(c.id, d.id, "bob", Some("2")))
        .await
        .unwrap();

    let destinations = store
        .create_destination_set(&NewDestinationSet {
            subscriber_id: s.id,
            name: "office".into(),
            destinations: vec![
                Destination {
                    destination: "voicebox".into(),
                    timeout: 300,
                    priority: 2,
                },
                Destination {
                    destination: "4312345678".into(),
                    timeout: 20,
                    priority: 1,
                },
            ],
        })
        .await
        .unwrap();
    assert_eq!(destinations.destinations[0].destination, "4312345678");
    let times = store
        .create_time_set(&NewTimeSet {
            subscriber_id: s.id,
            name: "work".into(),
            times: vec![TimePeriod {
                wday: Some("2-6".into()),
                hour: Some("8-17".into()),
                ..TimePeriod::default()
            }],
        })
        .await
        .unwrap();
    let sources = store
        .create_source_set(&NewSourceSet {
            subscriber_id: s.id,
            name: "boss".into(),
            mode: SourceMode::Whitelist,
            is_regex: true,
            sources: vec![Source {
                source: "^43".into(),
            }],
        })
        .await
        .unwrap();
    assert_invalid(
        store
            .create_source_set(&NewSourceSet {
                subscriber_id: s.id,
                name: "bad".into(),
                mode: SourceMode::Blacklist,
                is_regex: true,
                sources: vec![Source { source: "(".into() }],
            })
            .await,
        "source",
    );
    assert_invalid(
        store
            .create_time_set(&NewTimeSet {
                subscriber_id: 9999,
                name: "x".into(),
                times: Vec::new(),
            })
            .await,
        "subscriber_id",
    );

    let mappings = CfMappings {
        cft: vec![CfMapping {
            destination_set_id: destinations.id,
            time_set_id: Some(times.id),
            source_set_id: Some(sources.id),
            enabled: true,
        }],
        cft_ringtimeout: Some(25),
        ..CfMappings::default()
    };
    let stored = store.replace_cf_mappings(s.id, &mappings).await.unwrap();
    assert_eq!(stored, mappings);
    assert_eq!(
        store
            .get_preference(PreferenceLevel::Subscriber, s.id, "ringtimeout")
            .await
            .unwrap(),
        Some(json!(25))
    );
    // Sets of another subscriber cannot be wired in.
    let foreign = CfMappings {
        cfu: vec![CfMapping {
            destination_set_id: destinations.id,
            time_set_id: None,
            source_set_id: None,
            enabled: true,
        }],
        ..CfMappings::default()
    };
    assert_invalid(
        store.replace_cf_mappings(other.id, &foreign).await,
        "destinationset_id",
    );

    let simple = store.get_call_forwards(s.id).await.unwrap();
    let cft = simple.cft.expect("cft");
    assert_eq!(cft.destinations.len(), 2);
    assert_eq!(cft.times[0].hour.as_deref(), Some("8-17"));
    assert_eq!(cft.sources[0].source, "^43");
    assert!(cft.sources_is_regex);
    assert!(simple.cfu.is_none());
    assert_eq!(simple.cft_ringtimeout, Some(25));

    assert!(matches!(
        store.delete_time_set(times.id).await,
        Err(StoreError::InUse { .. })
    ));
    let updated = store
        .update_destination_set(
            destinations.id,
            &NewDestinationSet {
                subscriber_id: s.id,
                name: "office2".into(),
                destinations: vec![Destination {
                    destination: "voicebox".into(),
                    timeout: 300,
                    priority: 1,
                }],
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.destinations.len(), 1);
    let listed = store
        .list_destination_sets(
            &CfSetFilter {
                subscriber_id: Some(s.id),
                name: None,
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(listed.total_count, 1);
    assert_eq!(listed.items[0].name, "office2");

    // Two cfu mappings are not a simple call forward.
    let double = CfMappings {
        cfu: vec![
            CfMapping {
                destination_set_id: destinations.id,
                time_set_id: None,
                source_set_id: None,
                enabled: true,
            },
            CfMapping {
                destination_set_id: destinations.id,
                time_set_id: Some(times.id),
                source_set_id: None,
                enabled: true,
            },
        ],
        ..CfMappings::default()
    };
    store.replace_cf_mappings(s.id, &double).await.unwrap();
    assert_invalid(store.get_call_forwards(s.id).await, "cfu");

    store
        .replace_cf_mappings(s.id, &CfMappings::default())
        .await
        .unwrap();
    store.delete_time_set(times.id).await.unwrap();
    assert_not_found(store.get_time_set(times.id).await);
    store.delete_source_set(sources.id).await.unwrap();
    store.delete_destination_set(destinations.id).await.unwrap();
});

on_both_backends!(simple_call_forwards_round_trip, |db| {
    let store = &db.store;
    let d = domain(store, "sip.example.org").await;
    let c = customer(store, "ACME").await;
    let s = store
        .create_subscriber(&subscriber_input(c.id, d.id, "alice", Some("1")))
        .await
        .unwrap();
    let forwards = CallForwards {
        cfb: Some(SimpleCallForward {
            destinations: vec![Destination {
                destination: "voicebox".into(),
                timeout: 300,
                priority: 1,
            }],
            ..SimpleCallForward::default()
        }),
        cft: Some(SimpleCallForward {
            destinations: vec![Destination {
                destination: "4312345678".into(),
                timeout: 300,
                priority: 1,
            }],
            times: vec![TimePeriod {
                hour: Some("18-7".into()),
                ..TimePeriod::default()
            }],
            sources: vec![Source {
                source: "4366*".into(),
            }],
            sources_mode: SourceMode::Blacklist,
            sources_is_regex: false,
        }),
        cft_ringtimeout: Some(20),
        ..CallForwards::default()
    };
    let stored = store.replace_call_forwards(s.id, &forwards).await.unwrap();
    assert_eq!(stored, forwards);
    assert_eq!(store.get_call_forwards(s.id).await.unwrap(), forwards);
    let sets = store
        .list_destination_sets(
            &CfSetFilter {
                subscriber_id: Some(s.id),
                name: None,
            },
            Page::default(),
        )
        .await
        .unwrap();
    let mut names: Vec<String> = sets.items.into_iter().map(|set| set.name).collect();
    names.sort();
    assert_eq!(names, ["quickset_cfb", "quickset_cft"]);

    // PUT replaces: cfb dropped, cfu added, no leftover quicksets.
    let replacement = CallForwards {
        cfu: Some(SimpleCallForward {
            destinations: vec![Destination {
                destination: "sip:x@example.net".into(),
                timeout: 30,
                priority: 1,
            }],
            ..SimpleCallForward::default()
        }),
        cft_ringtimeout: Some(20),
        ..CallForwards::default()
    };
    assert_eq!(
        store
            .replace_call_forwards(s.id, &replacement)
            .await
            .unwrap(),
        replacement
    );
    let sets = store
        .list_destination_sets(
            &CfSetFilter {
                subscriber_id: Some(s.id),
                name: None,
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(sets.total_count, 1);
    assert_invalid(
        store
            .replace_call_forwards(
                s.id,
                &CallForwards {
                    cfu: Some(SimpleCallForward {
                        destinations: vec![Destination {
                            destination: "x".into(),
                            timeout: 300,
                            priority: 1,
                        }],
                        times: vec![TimePeriod {
                            month: Some("13".into()),
                            ..TimePeriod::default()
                        }],
                        ..SimpleCallForward::default()
                    }),
                    ..CallForwards::default()
                },
            )
            .await,
        "month",
    );
    // The rejected PUT changed nothing.
    assert_eq!(store.get_call_forwards(s.id).await.unwrap(), replacement);
    store.delete_call_forwards(s.id).await.unwrap();
    let cleared = store.get_call_forwards(s.id).await.unwrap();
    assert!(cleared.cfu.is_none() && cleared.cfb.is_none() && cleared.cft.is_none());
    assert_not_found(store.get_call_forwards(9999).await);
});

on_both_backends!(peering_crud, |db| {
    let store = &db.store;
    let group = store
        .create_peering_group(&NewPeeringGroup {
            name: "carrier-a".into(),
            priority: 1,
            description: Some("primary".into()),
        })
        .await
        .unwrap();
    assert_conflict(
        store
            .create_peering_group(&NewPeeringGroup {
                name: "carrier-a".into(),
                priority: 2,
                description: None,
            })
            .await,
        "name",
    );
    assert_invalid(
        store
            .create_peering_group(&NewPeeringGroup {
                name: "x".into(),
                priority: 10,
                description: None,
            })
            .await,
        "priority",
    );
    let server_input = NewPeeringServer {
        group_id: group.id,
        name: "carrier-a-1".into(),
        ip: "203.0.113.10".into(),
        host: None,
        port: 5060,
        transport: Transport::Udp,
        weight: 1,
        probe: false,
        enabled: true,
    };
    let server = store.create_peering_server(&server_input).await.unwrap();
    assert_eq!(server.port, 5060);
    assert_eq!(server.transport.ngcp_code(), 1);
    assert_conflict(store.create_peering_server(&server_input).await, "name");
    assert_invalid(
        store
            .create_peering_server(&NewPeeringServer {
                group_id: 9999,
                name: "other".into(),
                ..server_input.clone()
            })
            .await,
        "group_id",
    );
    assert_invalid(
        store
            .create_peering_server(&NewPeeringServer {
                ip: "not-an-ip".into(),
                name: "other".into(),
                ..server_input.clone()
            })
            .await,
        "ip",
    );
    let updated = store
        .update_peering_server(
            server.id,
            &NewPeeringServer {
                transport: Transport::Tls,
                port: 5061,
                enabled: false,
                ..server_input.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.transport, updated.port, updated.enabled),
        (Transport::Tls, 5061, false)
    );
    let enabled = store
        .list_peering_servers(
            &PeeringServerFilter {
                enabled: Some(true),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(enabled.total_count, 0);

    let rule_input = NewPeeringRule {
        group_id: group.id,
        callee_prefix: "43".into(),
        caller_pattern: None,
        callee_pattern: Some("^43[0-9]+$".into()),
        description: "Austria".into(),
        enabled: true,
        stopper: false,
    };
    let rule = store.create_peering_rule(&rule_input).await.unwrap();
    assert_eq!(rule.caller_pattern, None);
    assert_eq!(rule.callee_pattern.as_deref(), Some("^43[0-9]+$"));
    assert!(matches!(
        store.create_peering_rule(&rule_input).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_invalid(
        store
            .create_peering_rule(&NewPeeringRule {
                callee_pattern: Some("([".into()),
                ..rule_input.clone()
            })
            .await,
        "callee_pattern",
    );
    let rules = store
        .list_peering_rules(
            &PeeringRuleFilter {
                group_id: Some(group.id),
                enabled: None,
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(rules.total_count, 1);

    // Peer-level preferences live on the server.
    store
        .set_preference(
            PreferenceLevel::Peer,
            server.id,
            "max_call_duration",
            &json!(3600),
        )
        .await
        .unwrap();
    store.delete_peering_group(group.id).await.unwrap();
    assert_not_found(store.get_peering_server(server.id).await);
    assert_not_found(store.get_peering_rule(rule.id).await);
    assert!(
        store
            .get_preferences(PreferenceLevel::Peer, server.id)
            .await
            .unwrap()
            .is_empty()
    );
});

on_both_backends!(rewrite_rules_crud_and_apply, |db| {
    let store = &db.store;
    let set = store
        .create_rewrite_rule_set(&NewRewriteRuleSet {
            name: "default".into(),
            description: None,
        })
        .await
        .unwrap();
    assert_conflict(
        store
            .create_rewrite_rule_set(&NewRewriteRuleSet {
                name: "default".into(),
                description: None,
            })
            .await,
        "name",
    );
    let national = NewRewriteRule {
        set_id: set.id,
        match_pattern: "^0([1-9][0-9]+)$".into(),
        replace_pattern: r"43\1".into(),
        description: "national".into(),
        direction: RewriteDirection::In,
        field: RewriteField::Callee,
        priority: 50,
        enabled: true,
    };
    let national_rule = store.create_rewrite_rule(&national).await.unwrap();
    let international = NewRewriteRule {
        match_pattern: "^00([1-9][0-9]+)$".into(),
        replace_pattern: r"\1".into(),
        description: "international".into(),
        priority: 10,
        ..national.clone()
    };
    let first = store.create_rewrite_rule(&international).await.unwrap();
    store
        .create_rewrite_rule(&NewRewriteRule {
            enabled: false,
            match_pattern: ".*".into(),
            replace_pattern: "dropped".into(),
            ..national.clone()
        })
        .await
        .unwrap();
    assert_invalid(
        store
            .create_rewrite_rule(&NewRewriteRule {
                match_pattern: "^(0".into(),
                ..national.clone()
            })
            .await,
        "match_pattern",
    );
    assert_invalid(
        store
            .create_rewrite_rule(&NewRewriteRule {
                set_id: 9999,
                ..national.clone()
            })
            .await,
        "set_id",
    );
    let unset = RewriteVariables::default();
    let apply = |number: &'static str| {
        let unset = &unset;
        async move {
            store
                .apply_rewrite_rules(
                    set.id,
                    RewriteDirection::In,
                    RewriteField::Callee,
                    number,
                    unset,
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(apply("01234567").await.number, "431234567");
    // First match wins: the international rule (priority 10) runs, the national one never sees
    // its result.
    assert_eq!(
        apply("004912345").await,
        Rewritten {
            number: "4912345".into(),
            rule_id: Some(first.id),
        }
    );
    assert_eq!(
        apply("+4312").await,
        Rewritten {
            number: "+4312".into(),
            rule_id: None,
        }
    );
    assert_eq!(
        store
            .apply_rewrite_rules(
                set.id,
                RewriteDirection::Out,
                RewriteField::Callee,
                "01234",
                &unset,
            )
            .await
            .unwrap()
            .number,
        "01234"
    );
    assert_not_found(
        store
            .apply_rewrite_rules(
                9999,
                RewriteDirection::In,
                RewriteField::Callee,
                "1",
                &unset,
            )
            .await,
    );
    assert_invalid(
        store
            .create_rewrite_rule(&NewRewriteRule {
                replace_pattern: r"43\2".into(),
                ..national.clone()
            })
            .await,
        "replace_pattern",
    );

    // Variables come from a subscriber's primary number (cc 43, ac 1), as in the ngcp example
    // `^0([1-9])` -> `${caller_cc}\1`; the outbound rule renders E.164 national again.
    let vars_set = store
        .create_rewrite_rule_set(&NewRewriteRuleSet {
            name: "with-variables".into(),
            description: None,
        })
        .await
        .unwrap();
    let callee_in = store
        .create_rewrite_rule(&NewRewriteRule {
            set_id: vars_set.id,
            replace_pattern: r"${caller_cc}\1".into(),
            ..national.clone()
        })
        .await
        .unwrap();
    let callee_out = store
        .create_rewrite_rule(&NewRewriteRule {
            set_id: vars_set.id,
            match_pattern: "^43(.+)$".into(),
            replace_pattern: r"0\1".into(),
            direction: RewriteDirection::Out,
            ..national.clone()
        })
        .await
        .unwrap();
    let rw_domain = domain(store, "rewrite.example.org").await;
    let rw_customer = customer(store, "rewrite customer").await;
    let caller = store
        .create_subscriber(&subscriber_input(
            rw_customer.id,
            rw_domain.id,
            "austria",
            Some("234567"),
        ))
        .await
        .unwrap();
    let no_number = store
        .create_subscriber(&subscriber_input(
            rw_customer.id,
            rw_domain.id,
            "nonumber",
            None,
        ))
        .await
        .unwrap();
    let vars = store
        .rewrite_variables(Some(caller.id), None)
        .await
        .unwrap();
    assert_eq!(vars.caller_cc.as_deref(), Some("43"));
    assert_eq!(vars.caller_ac.as_deref(), Some("1"));
    assert_eq!(vars.caller_sn.as_deref(), Some("234567"));
    assert_eq!(vars.callee_cc, None);
    let both = store
        .rewrite_variables(Some(no_number.id), Some(caller.id))
        .await
        .unwrap();
    assert_eq!(both.caller_cc, None);
    assert_eq!(both.callee_cc.as_deref(), Some("43"));
    assert_not_found(store.rewrite_variables(Some(9999), None).await);
    let normalised = store
        .apply_rewrite_rules(
            vars_set.id,
            RewriteDirection::In,
            RewriteField::Callee,
            "01234567",
            &vars,
        )
        .await
        .unwrap();
    assert_eq!(
        normalised,
        Rewritten {
            number: "431234567".into(),
            rule_id: Some(callee_in.id),
        }
    );
    // An unset variable expands to nothing.
    assert_eq!(
        store
            .apply_rewrite_rules(
                vars_set.id,
                RewriteDirection::In,
                RewriteField::Callee,
                "01234567",
                &unset,
            )
            .await
            .unwrap()
            .number,
        "1234567"
    );
    // applyrewrites by subscriber: the set comes from the rewrite_rule_set preference.
    let by_subscriber = |id: i64| async move {
        store
            .apply_subscriber_rewrite_rules(
                id,
                RewriteDirection::In,
                RewriteField::Callee,
                "01234567",
            )
            .await
    };
    assert_eq!(
        by_subscriber(caller.id).await.unwrap(),
        Rewritten {
            number: "01234567".into(),
            rule_id: None,
        }
    );
    store
        .set_preference(
            PreferenceLevel::Domain,
            rw_domain.id,
            "rewrite_rule_set",
            &json!("with-variables"),
        )
        .await
        .unwrap();
    assert_eq!(
        by_subscriber(caller.id).await.unwrap(),
        Rewritten {
            number: "431234567".into(),
            rule_id: Some(callee_in.id),
        }
    );
    assert_eq!(by_subscriber(no_number.id).await.unwrap().number, "1234567");
    assert_not_found(by_subscriber(9999).await);
    let compiled = store.compiled_rewrite_rule_set(vars_set.id).await.unwrap();
    assert_eq!(compiled.len(), 2);
    assert!(compiled.skipped().is_empty());
    assert_eq!(
        compiled.apply(
            RewriteDirection::Out,
            RewriteField::Callee,
            &normalised.number,
            &vars
        ),
        Rewritten {
            number: "01234567".into(),
            rule_id: Some(callee_out.id),
        }
    );
    assert_eq!(
        compiled
            .apply(
                RewriteDirection::In,
                RewriteField::Callee,
                "01234567",
                &vars
            )
            .number,
        "431234567"
    );
    assert_not_found(store.compiled_rewrite_rule_set(9999).await);
    let whole = store.compiled_rewrite_rule_set(set.id).await.unwrap();
    assert_eq!(
        whole.rule_ids(RewriteDirection::In, RewriteField::Callee),
        vec![first.id, national_rule.id]
    );
    let listed = store
        .list_rewrite_rules(
            &RewriteRuleFilter {
                set_id: Some(set.id),
                direction: Some(RewriteDirection::In),
                field: None,
            },
            Page::new(1, 2),
        )
        .await
        .unwrap();
    assert_eq!(listed.total_count, 3);
    assert_eq!(listed.items[0].id, first.id);

    // The preference accepts the set by name once it exists.
    let d = domain(store, "sip.example.org").await;
    store
        .set_preference(
            PreferenceLevel::Domain,
            d.id,
            "rewrite_rule_set",
            &json!("default"),
        )
        .await
        .unwrap();
    store
        .update_rewrite_rule(
            first.id,
            &NewRewriteRule {
                priority: 99,
                ..international.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.get_rewrite_rule(first.id).await.unwrap().priority, 99);
    store.delete_rewrite_rule(first.id).await.unwrap();
    assert_not_found(store.get_rewrite_rule(first.id).await);
    store.delete_rewrite_rule_set(set.id).await.unwrap();
    assert_eq!(
        store
            .list_rewrite_rules(
                &RewriteRuleFilter {
                    set_id: Some(set.id),
                    ..Default::default()
                },
                Page::default()
            )
            .await
            .unwrap()
            .total_count,
        0
    );
});

on_both_backends!(admin_accounts, |db| {
    let store = &db.store;
    let initial = store
        .ensure_initial_admin("initial-pass")
        .await
        .unwrap()
        .expect("created");
    assert_eq!(initial.login, INITIAL_ADMIN_LOGIN);
    assert!(initial.is_superuser);
    assert!(
        store
            .ensure_initial_admin("other-pass")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .verify_admin(INITIAL_ADMIN_LOGIN, "initial-pass")
            .await
            .unwrap(),
        Some(initial.clone())
    );
    assert!(
        store
            .verify_admin(INITIAL_ADMIN_LOGIN, "other-pass")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .verify_admin("nobody", "initial-pass")
            .await
            .unwrap()
            .is_none()
    );

    let ops = store
        .create_admin(&NewAdmin {
            login: "ops".into(),
            password: "0ps-pass".into(),
            is_superuser: false,
        })
        .await
        .unwrap();
    assert_conflict(
        store
            .create_admin(&NewAdmin {
                login: "ops".into(),
                password: "0ps-pass".into(),
                is_superuser: false,
            })
            .await,
        "login",
    );
    assert_invalid(
        store
            .create_admin(&NewAdmin {
                login: "a:b".into(),
                password: "0ps-pass".into(),
                is_superuser: false,
            })
            .await,
        "login",
    );
    assert_invalid(
        store
            .create_admin(&NewAdmin {
                login: "short".into(),
                password: "x".into(),
                is_superuser: false,
            })
            .await,
        "password",
    );
    store
        .set_admin_password(ops.id, "n3w-0ps-pass")
        .await
        .unwrap();
    assert!(
        store
            .verify_admin("ops", "0ps-pass")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.verify_admin("ops", "n3w-0ps-pass").await.unwrap(),
        Some(ops.clone())
    );
    assert_eq!(
        store
            .list_admins(Page::default())
            .await
            .unwrap()
            .total_count,
        2
    );
    store.delete_admin(ops.id).await.unwrap();
    assert_not_found(store.get_admin(ops.id).await);
});

on_both_backends!(domain_delete_cascades, |db| {
    let store = &db.store;
    let d = domain(store, "gone.example").await;
    let c = customer(store, "ACME").await;
    let s = store
        .create_subscriber(&subscriber_input(c.id, d.id, "alice", Some("9")))
        .await
        .unwrap();
    store
        .set_preference(PreferenceLevel::Subscriber, s.id, "clir", &json!(true))
        .await
        .unwrap();
    store
        .replace_call_forwards(
            s.id,
            &CallForwards {
                cfu: Some(SimpleCallForward {
                    destinations: vec![Destination {
                        destination: "voicebox".into(),
                        timeout: 300,
                        priority: 1,
                    }],
                    ..SimpleCallForward::default()
                }),
                ..CallForwards::default()
            },
        )
        .await
        .unwrap();
    store.delete_domain(d.id).await.unwrap();
    assert_not_found(store.get_subscriber(s.id).await);
    assert!(
        store
            .find_subscriber_by_number("4319")
            .await
            .unwrap()
            .is_none()
    );
    // The number is free for a new subscriber elsewhere.
    let d2 = domain(store, "new.example").await;
    store
        .create_subscriber(&subscriber_input(c.id, d2.id, "alice", Some("9")))
        .await
        .unwrap();
    assert_eq!(
        store
            .list_destination_sets(
                &CfSetFilter {
                    subscriber_id: Some(s.id),
                    name: None
                },
                Page::default()
            )
            .await
            .unwrap()
            .total_count,
        0
    );
});

on_both_backends!(writes_are_visible_to_other_connections_at_once, |db| {
    let writer = &db.store;
    let reader = db.second_store().await;
    let d = domain(writer, "fresh.example").await;
    assert_eq!(
        reader.find_domain_by_name("fresh.example").await.unwrap(),
        Some(d.clone())
    );
    let c = customer(writer, "ACME").await;
    let s = writer
        .create_subscriber(&subscriber_input(c.id, d.id, "alice", Some("5")))
        .await
        .unwrap();
    assert!(
        reader
            .find_sip_credentials("alice", "fresh.example")
            .await
            .unwrap()
            .is_some()
    );
    // The proxy's lookup (inline rusqlite on SQLite files) names the subscriber fully.
    let sip = reader
        .find_sip_credentials("alice", "fresh.example")
        .await
        .unwrap()
        .expect("subscriber visible to the authentication lookup");
    assert_eq!(
        (sip.subscriber_id, sip.uuid.as_str()),
        (s.id, s.uuid.as_str())
    );
    assert_eq!(sip.customer_id, c.id);
    assert_eq!(sip.status, SubscriberStatus::Active);
    assert_eq!(sip.ha1_md5.len(), 32);
    assert_eq!(sip.ha1_sha256.len(), 64);
    // …and the call-routing lookups, by name (domain case-insensitive) and by E.164 number.
    let callee = reader
        .find_sip_callee("alice", "FRESH.example")
        .await
        .unwrap()
        .expect("callee by name");
    assert_eq!(
        (
            callee.id,
            callee.username.as_str(),
            callee.domain.as_str(),
            callee.status.as_str()
        ),
        (s.id, "alice", "fresh.example", "active")
    );
    assert_eq!(callee.uuid, s.uuid);
    let number = s
        .primary_number
        .as_ref()
        .expect("primary number")
        .e164
        .clone();
    assert_eq!(
        reader
            .find_sip_callee_by_number(&format!("+{number}"))
            .await
            .unwrap()
            .map(|callee| callee.id),
        Some(s.id)
    );
    assert!(
        reader
            .find_sip_callee_by_number("999")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        reader
            .find_sip_callee("bob", "fresh.example")
            .await
            .unwrap()
            .is_none()
    );
    writer
        .set_preference(
            PreferenceLevel::Subscriber,
            s.id,
            "concurrent_max",
            &json!(2),
        )
        .await
        .unwrap();
    assert_eq!(
        reader
            .effective_preference(s.id, "concurrent_max")
            .await
            .unwrap()
            .map(|e| e.value),
        Some(json!(2))
    );
    writer.delete_subscriber(s.id).await.unwrap();
    assert!(
        reader
            .find_sip_credentials("alice", "fresh.example")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        reader
            .find_sip_credentials("' OR '1'='1", "fresh.example")
            .await
            .unwrap()
            .is_none()
    );
    reader.close().await;
});

#[tokio::test]
async fn unsupported_url_is_a_typed_error() {
    assert!(matches!(
        Store::connect("postgres://localhost/x").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys() {
    let db = common::sqlite().await;
    let Backend::Sqlite(pool) = db.store.backend() else {
        panic!("expected SQLite");
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
    // Opening again re-runs no migration and keeps the data.
    domain(&db.store, "kept.example").await;
    let again = db.second_store().await;
    assert!(
        again
            .find_domain_by_name("kept.example")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn in_memory_sqlite_keeps_its_schema_across_pooled_connections() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    // More concurrent operations than one connection can serve, so the pool opens several.
    let creates = (0..6).map(|i| {
        let store = store.clone();
        async move {
            store
                .create_domain(&NewDomain {
                    domain: format!("m{i}.example"),
                })
                .await
        }
    });
    for result in futures_join_all(creates).await {
        result.unwrap();
    }
    let listed = store
        .list_domains(&DomainFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(listed.total_count, 6);
}

/// Runs futures concurrently on the test runtime (no extra dependency for `join_all`).
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}
