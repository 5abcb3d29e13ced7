//! CDRs and the mediation tables, on SQLite and MariaDB alike.

#[macro_use]
mod common;

use store::prelude::*;
use store::*;

const T0: i64 = 1_764_000_000_000;

async fn subscriber(store: &Store, username: &str, sn: &str) -> Subscriber {
    let domain = match store.find_domain_by_name("voxide.test").await.unwrap() {
        Some(domain) => domain,
        None => store
            .create_domain(&NewDomain {
                domain: "voxide.test".into(),
            })
            .await
            .unwrap(),
    };
    let customer = store
        .create_customer(&NewCustomer {
            name: format!("customer of {username}"),
            status: CustomerStatus::Active,
            external_id: None,
        })
        .await
        .unwrap();
    store
        .create_subscriber(&NewSubscriber {
            customer_id: customer.id,
            domain_id: domain.id,
            username: username.into(),
            password: "s3cret".into(),
            webusername: None,
            webpassword: None,
            display_name: None,
            email: None,
            external_id: None,
            status: SubscriberStatus::Active,
            administrative: false,
            primary_number: Some(E164Number::new("43", "1", sn)),
            alias_numbers: Vec::new(),
        })
        .await
        .unwrap()
}

fn acc(call_id: &str, method: &str, code: u16, time_ms: i64) -> NewAccRecord {
    NewAccRecord {
        method: method.into(),
        from_tag: "ft".into(),
        to_tag: "tt".into(),
        call_id: call_id.into(),
        sip_code: code,
        sip_reason: "OK".into(),
        source_ip: "127.0.0.9".into(),
        destination_user: "bob".into(),
        destination_domain: "voxide.test".into(),
        time_ms,
        source_user: "alice".into(),
        source_domain: "voxide.test".into(),
        source_cli: "alice".into(),
        ..NewAccRecord::default()
    }
}

fn new_cdr(acc_id: i64, call_id: &str, status: CallStatus, start_ms: i64) -> NewCdr {
    NewCdr {
        acc_id,
        call_id: call_id.into(),
        call_type: CallType::Call,
        call_status: status,
        call_code: 200,
        init_time_ms: start_ms,
        start_time_ms: start_ms,
        duration_ms: 1_500,
        source: CdrLeg::default(),
        destination: CdrLeg::default(),
        source_cli: "alice".into(),
        source_ip: "127.0.0.9".into(),
        destination_user_dialed: "bob".into(),
        destination_user_in: "bob".into(),
        destination_domain_in: "voxide.test".into(),
    }
}

on_both_backends!(mediation_moves_acc_rows_with_the_cdr_exactly_once, |db| {
    let store = &db.store;
    let alice = subscriber(store, "alice", "100001").await;
    let mut invite = acc("call-a", "INVITE", 200, T0);
    invite.source_user_id = Some(alice.uuid.clone());
    store
        .insert_acc_records(&[
            invite,
            acc("call-b", "OPTIONS", 200, T0 + 1),
            acc("call-a", "BYE", 200, T0 + 2_000),
        ])
        .await
        .unwrap();

    let groups = store.pending_acc_groups(0, 10).await.unwrap();
    let names: Vec<&str> = groups.iter().map(|(call_id, _)| call_id.as_str()).collect();
    assert_eq!(names, ["call-a", "call-b"], "ordered by first row");
    // Paging by the first row id walks on from the last group seen.
    let after_first = store.pending_acc_groups(groups[0].1, 10).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].0, "call-b");

    let rows = store.acc_group("call-a").await.unwrap();
    let methods: Vec<&str> = rows.iter().map(|row| row.method.as_str()).collect();
    assert_eq!(methods, ["INVITE", "BYE"]);
    let trash_rows = store.acc_group("call-b").await.unwrap();

    let refs = store
        .subscriber_refs(&[alice.uuid.clone(), "no-such-uuid".into()])
        .await
        .unwrap();
    assert_eq!(refs.len(), 1);
    let alice_ref = &refs[&alice.uuid];
    assert_eq!(
        (
            alice_ref.id,
            alice_ref.customer_id,
            alice_ref.username.as_str()
        ),
        (alice.id, alice.customer_id, "alice")
    );
    assert_eq!(alice_ref.primary_number.as_deref(), Some("431100001"));

    let mut cdr = new_cdr(rows[0].id, "call-a", CallStatus::Ok, T0);
    cdr.source = CdrLeg {
        user_id: Some(alice.uuid.clone()),
        subscriber_id: Some(alice.id),
        customer_id: Some(alice.customer_id),
        user: "alice".into(),
        domain: "voxide.test".into(),
    };
    let outcomes = [
        MediationOutcome::Cdrs {
            acc_ids: rows.iter().map(|row| row.id).collect(),
            cdrs: vec![cdr],
        },
        MediationOutcome::Trash {
            acc_ids: vec![trash_rows[0].id],
            reason: "acc row 2: method 'OPTIONS' is neither INVITE nor BYE".into(),
        },
    ];
    let written = store.commit_mediation(&outcomes, T0 + 5_000).await.unwrap();
    assert_eq!(
        written,
        MediationCommit {
            cdrs: 1,
            archived: 2,
            trashed: 1
        }
    );
    let counts = store.mediation_counts().await.unwrap();
    assert_eq!(
        (
            counts.pending,
            counts.archived,
            counts.trashed,
            counts.cdrs,
            counts.unexported
        ),
        (0, 2, 1, 1, 1)
    );
    let trash = store.list_acc_trash().await.unwrap();
    assert_eq!(trash.len(), 1);
    assert_eq!(trash[0].call_id, "call-b");
    assert_eq!(trash[0].method, "OPTIONS");
    assert!(trash[0].reason.contains("neither INVITE nor BYE"));

    // Committing the same outcome again (a second mediator that read the same rows) fails and
    // leaves everything as it was.
    let again = store.commit_mediation(&outcomes[..1], T0 + 6_000).await;
    assert!(again.is_err(), "{again:?}");
    let after = store.mediation_counts().await.unwrap();
    assert_eq!(after, counts);

    let listed = store
        .list_cdrs(&CdrFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(listed.total_count, 1);
    let stored = &listed.items[0];
    assert_eq!(store.get_cdr(stored.id).await.unwrap(), *stored);
    assert_eq!(stored.call_status, CallStatus::Ok);
    assert_eq!(stored.duration_ms, 1_500);
    assert_eq!(stored.source_subscriber_id, Some(alice.id));
    assert_eq!(stored.source_user_id.as_deref(), Some(alice.uuid.as_str()));
    assert_eq!(stored.export_status, ExportStatus::Unexported);
    assert_eq!(stored.rating_status, "unrated");
    assert_eq!(stored.mediated_at_ms, T0 + 5_000);
    assert!(matches!(
        store.get_cdr(stored.id + 100).await,
        Err(StoreError::NotFound { .. })
    ));
});

on_both_backends!(a_cdr_for_the_same_invite_row_is_refused, |db| {
    let store = &db.store;
    store
        .insert_acc_records(&[acc("c1", "INVITE", 486, T0), acc("c2", "INVITE", 486, T0)])
        .await
        .unwrap();
    let first = store.acc_group("c1").await.unwrap()[0].id;
    let second = store.acc_group("c2").await.unwrap()[0].id;
    store
        .commit_mediation(
            &[MediationOutcome::Cdrs {
                acc_ids: vec![first],
                cdrs: vec![new_cdr(first, "c1", CallStatus::Busy, T0)],
            }],
            T0,
        )
        .await
        .unwrap();
    // A CDR naming an INVITE row that already has one is a conflict, and the transaction
    // (including the archive move of c2) is rolled back.
    let duplicate = store
        .commit_mediation(
            &[MediationOutcome::Cdrs {
                acc_ids: vec![second],
                cdrs: vec![new_cdr(first, "c2", CallStatus::Busy, T0)],
            }],
            T0,
        )
        .await;
    assert!(
        matches!(
            duplicate,
            Err(StoreError::Conflict {
                field: "acc_id",
                ..
            })
        ),
        "{duplicate:?}"
    );
    let counts = store.mediation_counts().await.unwrap();
    assert_eq!((counts.pending, counts.archived, counts.cdrs), (1, 1, 1));
});

on_both_backends!(calls_filter_by_party_status_and_time_with_paging, |db| {
    let store = &db.store;
    let alice = subscriber(store, "alice", "100001").await;
    let bob = subscriber(store, "bob", "100002").await;
    let leg = |subscriber: &Subscriber| CdrLeg {
        user_id: Some(subscriber.uuid.clone()),
        subscriber_id: Some(subscriber.id),
        customer_id: Some(subscriber.customer_id),
        user: subscriber.username.clone(),
        domain: "voxide.test".into(),
    };
    let mut records = Vec::new();
    for index in 0..5 {
        records.push(acc(&format!("f{index}"), "INVITE", 486, T0 + index * 1_000));
    }
    store.insert_acc_records(&records).await.unwrap();
    let mut outcomes = Vec::new();
    for index in 0..5i64 {
        let call_id = format!("f{index}");
        let row = store.acc_group(&call_id).await.unwrap().remove(0);
        let status = if index % 2 == 0 {
            CallStatus::Ok
        } else {
            CallStatus::Busy
        };
        let mut cdr = new_cdr(row.id, &call_id, status, T0 + index * 1_000);
        // alice → bob for 0..3, bob → unknown for 3..5
        if index < 3 {
            cdr.source = leg(&alice);
            cdr.destination = leg(&bob);
        } else {
            cdr.source = leg(&bob);
        }
        outcomes.push(MediationOutcome::Cdrs {
            acc_ids: vec![row.id],
            cdrs: vec![cdr],
        });
    }
    store.commit_mediation(&outcomes, T0).await.unwrap();

    let ids = |page: &Paged<Cdr>| -> Vec<String> {
        page.items.iter().map(|cdr| cdr.call_id.clone()).collect()
    };
    let all = store
        .list_cdrs(&CdrFilter::default(), Page::new(1, 2))
        .await
        .unwrap();
    assert_eq!(all.total_count, 5);
    assert_eq!(ids(&all), ["f4", "f3"], "newest first");
    let page3 = store
        .list_cdrs(&CdrFilter::default(), Page::new(3, 2))
        .await
        .unwrap();
    assert_eq!(ids(&page3), ["f0"]);

    let of = |filter: CdrFilter| async move {
        let page = store.list_cdrs(&filter, Page::new(1, 50)).await.unwrap();
        let mut names = ids(&page);
        names.sort();
        assert_eq!(page.total_count as usize, names.len());
        names
    };
    assert_eq!(
        of(CdrFilter {
            subscriber_id: Some(alice.id),
            ..CdrFilter::default()
        })
        .await,
        ["f0", "f1", "f2"]
    );
    // Bob is the callee of three calls and the caller of two.
    assert_eq!(
        of(CdrFilter {
            subscriber_id: Some(bob.id),
            ..CdrFilter::default()
        })
        .await
        .len(),
        5
    );
    assert_eq!(
        of(CdrFilter {
            customer_id: Some(alice.customer_id),
            ..CdrFilter::default()
        })
        .await,
        ["f0", "f1", "f2"]
    );
    assert_eq!(
        of(CdrFilter {
            call_status: Some(CallStatus::Busy),
            ..CdrFilter::default()
        })
        .await,
        ["f1", "f3"]
    );
    assert_eq!(
        of(CdrFilter {
            start_ge_ms: Some(T0 + 1_000),
            start_le_ms: Some(T0 + 3_000),
            ..CdrFilter::default()
        })
        .await,
        ["f1", "f2", "f3"]
    );
    assert_eq!(
        of(CdrFilter {
            call_id: Some("f2".into()),
            ..CdrFilter::default()
        })
        .await,
        ["f2"]
    );
    assert!(matches!(
        store.list_cdrs(&CdrFilter::default(), Page::new(0, 10)).await,
        Err(StoreError::Invalid { field, .. }) if field == "page"
    ));

    // Export marking: only unexported rows at or after `since`, each marked once.
    let since = store.unexported_cdrs(T0 + 2_000, 100).await.unwrap();
    let since_ids: Vec<String> = since.iter().map(|cdr| cdr.call_id.clone()).collect();
    assert_eq!(since_ids, ["f2", "f3", "f4"]);
    let ids_to_mark: Vec<i64> = since.iter().map(|cdr| cdr.id).collect();
    assert_eq!(
        store
            .mark_cdrs_exported(&ids_to_mark, T0 + 9)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .mark_cdrs_exported(&ids_to_mark, T0 + 10)
            .await
            .unwrap(),
        0
    );
    assert!(
        store
            .unexported_cdrs(T0 + 2_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.unexported_cdrs(0, 100).await.unwrap().len(), 2);
    let marked = store.get_cdr(ids_to_mark[0]).await.unwrap();
    assert_eq!(marked.export_status, ExportStatus::Ok);
    assert_eq!(marked.exported_at_ms, Some(T0 + 9));
});
