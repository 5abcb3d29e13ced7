//! The location service's persistence: bindings survive a restart (a fresh `Location` loaded
//! from the database), lapsed bindings are never returned and get purged, and a REGISTER
//! refresh costs exactly one database write.

mod registrar_support;

use proxy::location::{AddressOfRecord, Binding, BindingChanges, Location};
use proxy::registrar::RegistrarConfig;
use registrar_support::*;
use sip_core::auth::DigestAlgorithm;
use store::LocationRepository;

fn alice() -> AddressOfRecord {
    AddressOfRecord::new("alice", DOMAIN)
}

async fn bindings_survive_a_restart(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let path = "<sip:127.0.0.1:5060;lr;received=sip:198.51.100.7:40000;vxf=tok>";
    let mut phone = Phone::new("alice");
    let ok = register(
        &fixture,
        &mut phone,
        &[
            ("Contact", "<sip:alice@10.1.2.3:5062;transport=udp>;q=0.7;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\";reg-id=1"),
            ("Contact", "<sip:alice@10.1.2.4:5062>;q=0.2;expires=600"),
            ("Path", path),
        ],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(ok.status(), Some(200));
    let before = fixture.location.lookup_at(&alice(), NOW);
    assert_eq!(before.len(), 2);

    // Drop everything in memory, as `kill -9` would, and start over from the database.
    let url = fixture.db.url.clone();
    let restarted = fixture_without_provisioning(fixture.db, RegistrarConfig::default(), NOW).await;
    let after = restarted.location.lookup_at(&alice(), NOW);
    assert_eq!(after, before, "every field comes back from the database");
    assert_eq!(after[0].contact, "sip:alice@10.1.2.3:5062;transport=udp");
    assert_eq!(after[0].q, 700);
    assert_eq!(after[0].path, vec![path.to_owned()]);
    assert_eq!(after[0].received.as_deref(), Some("sip:127.0.0.1:5070"));
    assert_eq!(
        after[0].instance.as_deref(),
        Some("\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"")
    );
    assert_eq!(after[0].reg_id, Some(1));
    assert_eq!(after[1].expires_at_unix, NOW + 600);

    // A second, independent connection (another process) sees the same rows.
    let other = store::Store::connect(&url)
        .await
        .expect("second connection");
    let rows = other
        .find_locations("alice", DOMAIN, NOW)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 2);
    other.close().await;

    // The restarted registrar keeps enforcing the CSeq rule from the stored state.
    phone.cseq = 0;
    let stale = register(
        &restarted,
        &mut phone,
        &[("Contact", "<sip:alice@10.1.2.4:5062>")],
        DigestAlgorithm::Md5,
        NOW,
    )
    .await;
    assert_eq!(stale.status(), Some(400));
}

async fn expired_bindings_are_not_returned_and_get_purged(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut short = Phone::new("alice");
    let mut long = Phone::new("alice");
    register(
        &fixture,
        &mut short,
        &[("Contact", "<sip:alice@192.0.2.1>;expires=60")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    register(
        &fixture,
        &mut long,
        &[("Contact", "<sip:alice@192.0.2.2>;expires=600")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(fixture.location.lookup_at(&alice(), NOW + 59).len(), 2);

    let later = fixture.location.lookup_at(&alice(), NOW + 60);
    assert_eq!(later.len(), 1, "the lapsed binding is ignored at once");
    assert_eq!(later[0].contact, "sip:alice@192.0.2.2");
    assert_eq!(
        fixture
            .db
            .store
            .find_locations("alice", DOMAIN, NOW + 60)
            .await
            .expect("rows")
            .len(),
        1
    );

    // The 200 of a query lists only live bindings.
    let query = register(&fixture, &mut long, &[], DigestAlgorithm::Sha256, NOW + 100).await;
    assert_eq!(contacts(&query), vec!["<sip:alice@192.0.2.2>;expires=500"]);

    // A restart after the lapse does not bring it back.
    let restarted_store = fixture.db.store.clone();
    let reloaded = Location::load(restarted_store, NOW + 60)
        .await
        .expect("load");
    assert_eq!(reloaded.lookup_at(&alice(), NOW + 60).len(), 1);

    // Purging deletes the row from the database and memory.
    let purged = fixture
        .location
        .purge_expired(NOW + 60)
        .await
        .expect("purge");
    assert_eq!(purged, 1);
    let all_rows = fixture.db.store.list_live_locations(0).await.expect("rows");
    assert_eq!(all_rows.len(), 1, "only the live row is left in the table");
    assert_eq!(
        fixture
            .location
            .purge_expired(NOW + 601)
            .await
            .expect("purge"),
        1
    );
    assert_eq!(fixture.location.address_of_record_count(), 0);
}

async fn a_refresh_costs_one_upsert(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("alice");
    let contact = [("Contact", "<sip:alice@192.0.2.1>")];
    let ok = register(&fixture, &mut phone, &contact, DigestAlgorithm::Sha256, NOW).await;
    assert_eq!(ok.status(), Some(200));

    let before = fixture.location.database_statements();
    let refresh = register(
        &fixture,
        &mut phone,
        &contact,
        DigestAlgorithm::Sha256,
        NOW + 1800,
    )
    .await;
    assert_eq!(refresh.status(), Some(200));
    assert_eq!(
        fixture.location.database_statements() - before,
        1,
        "one UPSERT; the challenge round and the bindings check use memory"
    );
    assert_eq!(
        fixture.location.lookup_at(&alice(), NOW + 1800)[0].expires_at_unix,
        NOW + 5400
    );
    // A query REGISTER writes nothing.
    let before = fixture.location.database_statements();
    register(
        &fixture,
        &mut phone,
        &[],
        DigestAlgorithm::Sha256,
        NOW + 1800,
    )
    .await;
    assert_eq!(fixture.location.database_statements(), before);
}

async fn location_changes_apply_atomically(db: TestDb) {
    provision(&db.store).await;
    let location = Location::load(db.store.clone(), NOW).await.expect("load");
    let binding = |contact: &str, q: u16| Binding {
        contact: contact.into(),
        q,
        expires_at_unix: NOW + 100,
        path: vec![],
        received: None,
        call_id: "c@x".into(),
        cseq: 1,
        user_agent: None,
        instance: None,
        reg_id: None,
        updated_at_unix: NOW,
    };
    location
        .apply(
            &alice(),
            &BindingChanges {
                upserts: vec![
                    binding("sip:a@192.0.2.1", 500),
                    binding("sip:a@192.0.2.2", 900),
                ],
                removals: vec![],
            },
        )
        .await
        .expect("apply");
    // One batch with a row the database refuses (contact too long): nothing of it is applied.
    let too_long = binding(&format!("sip:{}@192.0.2.3", "x".repeat(600)), 1000);
    let refused = location
        .apply(
            &alice(),
            &BindingChanges {
                upserts: vec![too_long],
                removals: vec!["sip:a@192.0.2.1".into()],
            },
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(
        location.lookup_at(&alice(), NOW).len(),
        2,
        "memory unchanged"
    );
    assert_eq!(
        db.store
            .find_locations("alice", DOMAIN, NOW)
            .await
            .expect("rows")
            .len(),
        2,
        "database unchanged"
    );
    assert_eq!(location.remove_all(&alice()).await.expect("remove"), 2);
    assert!(location.lookup_at(&alice(), NOW).is_empty());
    assert!(
        Location::load(db.store.clone(), NOW)
            .await
            .expect("load")
            .lookup_at(&alice(), NOW)
            .is_empty()
    );
}

async fn the_purger_removes_lapsed_bindings_in_the_background(db: TestDb) {
    provision(&db.store).await;
    let location = std::sync::Arc::new(Location::load(db.store.clone(), 0).await.expect("load"));
    let now = proxy::location::unix_now();
    let binding = |contact: &str, expires_at_unix: u64| Binding {
        contact: contact.into(),
        q: 1000,
        expires_at_unix,
        path: vec![],
        received: None,
        call_id: "c@x".into(),
        cseq: 1,
        user_agent: None,
        instance: None,
        reg_id: None,
        updated_at_unix: now,
    };
    location
        .apply(
            &alice(),
            &BindingChanges {
                upserts: vec![
                    binding("sip:a@192.0.2.1", now - 1),
                    binding("sip:a@192.0.2.2", now + 3600),
                ],
                removals: vec![],
            },
        )
        .await
        .expect("apply");
    let purger = location.spawn_purger(std::time::Duration::from_millis(20));
    let mut rows = usize::MAX;
    for _ in 0..250 {
        rows = db.store.list_live_locations(0).await.expect("rows").len();
        if rows == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    purger.abort();
    assert_eq!(rows, 1, "the lapsed row was purged, the live one kept");
    assert_eq!(location.lookup_at(&alice(), now).len(), 1);
}

async fn concurrent_changes_share_one_commit_and_a_bad_one_fails_alone(db: TestDb) {
    provision(&db.store).await;
    let location = std::sync::Arc::new(Location::load(db.store.clone(), NOW).await.expect("load"));
    let binding = |contact: String| Binding {
        contact,
        q: 1000,
        expires_at_unix: NOW + 100,
        path: vec![],
        received: None,
        call_id: "c@x".into(),
        cseq: 1,
        user_agent: None,
        instance: None,
        reg_id: None,
        updated_at_unix: NOW,
    };
    let register_all = |users: std::ops::Range<usize>, bad: Option<usize>| {
        let mut tasks = tokio::task::JoinSet::new();
        for index in users {
            let location = std::sync::Arc::clone(&location);
            let contact = if bad == Some(index) {
                format!("sip:{}@192.0.2.9", "x".repeat(600))
            } else {
                format!("sip:user{index}@192.0.2.9")
            };
            let changes = BindingChanges {
                upserts: vec![binding(contact)],
                removals: vec![],
            };
            tasks.spawn(async move {
                let aor = AddressOfRecord::new(format!("user{index}"), DOMAIN);
                (index, location.apply(&aor, &changes).await.is_ok())
            });
        }
        tasks
    };

    // 100 registrations at once: all durable, never more than one database trip each (the
    // committer merges whatever is queued while a write is in flight).
    let before = location.database_statements();
    let outcomes = register_all(0..100, None).join_all().await;
    assert!(outcomes.iter().all(|(_, ok)| *ok));
    let statements = location.database_statements() - before;
    assert!(
        (1..=100).contains(&statements),
        "100 concurrent registrations took {statements} database trips"
    );
    assert_eq!(
        db.store.list_live_locations(NOW).await.expect("rows").len(),
        100
    );

    // A refused row among good ones: only its own caller sees the error.
    let outcomes = register_all(100..121, Some(110)).join_all().await;
    for (index, ok) in outcomes {
        assert_eq!(ok, index != 110, "user{index}");
    }
    assert_eq!(
        db.store.list_live_locations(NOW).await.expect("rows").len(),
        120
    );
    assert_eq!(
        location
            .lookup_at(&AddressOfRecord::new("user115", DOMAIN), NOW)
            .len(),
        1
    );
    assert!(
        location
            .lookup_at(&AddressOfRecord::new("user110", DOMAIN), NOW)
            .is_empty()
    );
}

on_both_backends!(
    concurrent_changes_share_one_commit_and_a_bad_one_fails_alone,
    the_purger_removes_lapsed_bindings_in_the_background,
    bindings_survive_a_restart,
    expired_bindings_are_not_returned_and_get_purged,
    a_refresh_costs_one_upsert,
    location_changes_apply_atomically,
);
