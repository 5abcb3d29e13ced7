//! `/api/calls/`: CDRs written through the store's mediation path, read over the real API on
//! SQLite and MariaDB.

mod common;

use common::Harness;
use serde_json::json;
use store::*;

const T0: i64 = 1_764_000_000_000; // 2025-11-24 16:00:00 UTC

/// One CDR to write: Call-ID, status, code, start offset (ms), duration (ms), source
/// subscriber id.
type CallSpec<'a> = (&'a str, CallStatus, u16, i64, i64, Option<i64>);

/// Writes one CDR per spec the way the mediator does.
async fn write_cdrs(harness: &Harness, calls: &[CallSpec<'_>]) {
    let store = &harness.store;
    let records: Vec<NewAccRecord> = calls
        .iter()
        .map(|(call_id, _, code, offset, _, _)| NewAccRecord {
            method: "INVITE".into(),
            call_id: (*call_id).into(),
            sip_code: *code,
            time_ms: T0 + offset,
            ..NewAccRecord::default()
        })
        .collect();
    store.insert_acc_records(&records).await.unwrap();
    let mut outcomes = Vec::new();
    for (call_id, status, code, offset, duration, subscriber) in calls {
        let row = store.acc_group(call_id).await.unwrap().remove(0);
        outcomes.push(MediationOutcome::Cdrs {
            acc_ids: vec![row.id],
            cdrs: vec![NewCdr {
                acc_id: row.id,
                call_id: (*call_id).into(),
                call_type: CallType::Call,
                call_status: *status,
                call_code: *code,
                init_time_ms: T0 + offset,
                start_time_ms: T0 + offset,
                duration_ms: *duration,
                source: CdrLeg {
                    subscriber_id: *subscriber,
                    customer_id: subscriber.map(|id| id + 100),
                    user: "alice".into(),
                    domain: "voxide.test".into(),
                    ..CdrLeg::default()
                },
                destination: CdrLeg {
                    user: "bob".into(),
                    domain: "voxide.test".into(),
                    ..CdrLeg::default()
                },
                source_cli: "431100000".into(),
                source_ip: "127.0.0.1".into(),
                destination_user_dialed: "bob".into(),
                destination_user_in: "bob".into(),
                destination_domain_in: "voxide.test".into(),
            }],
        });
    }
    store
        .commit_mediation(&outcomes, T0 + 60_000)
        .await
        .unwrap();
}

async fn calls_list_filter_and_item(harness: &Harness) {
    write_cdrs(
        harness,
        &[
            ("c-ok", CallStatus::Ok, 200, 0, 5_432, Some(1)),
            ("c-busy", CallStatus::Busy, 486, 60_000, 0, Some(1)),
            ("c-cancel", CallStatus::Cancel, 487, 120_000, 0, Some(2)),
        ],
    )
    .await;
    let all = harness.get("/api/calls/?rows=2").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert!(all.content_type().starts_with("application/hal+json"));
    let body = all.json();
    assert_eq!(body["total_count"], 3);
    let items = body["_embedded"]["ngcp:calls"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["call_id"], "c-cancel", "newest first");
    assert!(body["_links"]["next"]["href"].is_string());

    let ok = harness.get("/api/calls/?call_status=ok").await.json();
    assert_eq!(ok["total_count"], 1);
    let call = &ok["_embedded"]["ngcp:calls"][0];
    assert_eq!(call["call_id"], "c-ok");
    assert_eq!(call["call_code"], "200");
    assert_eq!(call["call_type"], "call");
    assert_eq!(call["duration"], json!(5.432));
    assert_eq!(call["start_time"], "2025-11-24 16:00:00.000");
    assert_eq!(call["source_customer_id"], 101);
    assert_eq!(call["destination_user"], "bob");
    assert_eq!(call["export_status"], "unexported");
    assert_eq!(
        call["_links"]["ngcp:subscribers"]["href"],
        "/api/subscribers/1"
    );

    let id = call["id"].as_i64().unwrap();
    let item = harness.get(&format!("/api/calls/{id}")).await;
    assert_eq!(item.status, 200, "{}", item.text);
    assert_eq!(item.json()["call_id"], "c-ok");
    harness
        .get(&format!("/api/calls/{}", id + 1000))
        .await
        .assert_problem(404, None);

    let count =
        |path: String| async move { harness.get(&path).await.json()["total_count"].clone() };
    assert_eq!(count("/api/calls/?subscriber_id=1".into()).await, 2);
    assert_eq!(count("/api/calls/?customer_id=102".into()).await, 1);
    assert_eq!(count("/api/calls/?call_id=c-busy".into()).await, 1);
    assert_eq!(
        count("/api/calls/?start_ge=2025-11-24%2016:01:00&start_le=2025-11-24T16:02:00Z".into())
            .await,
        2
    );
    assert_eq!(count("/api/calls/?start_ge=2025-11-25".into()).await, 0);

    harness
        .get("/api/calls/?call_status=great")
        .await
        .assert_problem(400, Some("call_status"));
    harness
        .get("/api/calls/?start_ge=yesterday")
        .await
        .assert_problem(400, Some("start_ge"));
    harness
        .get("/api/calls/?colour=blue")
        .await
        .assert_problem(400, None);
    // Read-only: no POST.
    harness
        .post("/api/calls/", &json!({"call_id": "x"}))
        .await
        .assert_problem(405, None);
}

on_both_backends!(calls_list_filter_and_item);
