//! Hot read paths the SIP side runs per request: digest credentials, number lookup and the
//! effective preference, on the embedded SQLite backend with 1000 subscribers.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use store::prelude::*;
use store::{E164Number, NewCustomer, NewDomain, NewSubscriber, PreferenceLevel, SubscriberStatus};

const SUBSCRIBERS: usize = 1000;

fn lookups(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let (store, subscriber_id) = runtime.block_on(async {
        let store = Store::connect(&url).await.expect("store");
        let domain = store
            .create_domain(&NewDomain {
                domain: "bench.example".into(),
            })
            .await
            .expect("domain");
        let customer = store
            .create_customer(&NewCustomer {
                name: "bench".into(),
                status: Default::default(),
                external_id: None,
            })
            .await
            .expect("customer");
        let mut last = 0;
        for i in 0..SUBSCRIBERS {
            last = store
                .create_subscriber(&NewSubscriber {
                    customer_id: customer.id,
                    domain_id: domain.id,
                    username: format!("user{i}"),
                    password: "secret".into(),
                    webusername: None,
                    webpassword: None,
                    display_name: None,
                    email: None,
                    external_id: None,
                    status: SubscriberStatus::Active,
                    administrative: false,
                    primary_number: Some(E164Number::new("43", "1", format!("{:06}", i))),
                    alias_numbers: Vec::new(),
                })
                .await
                .expect("subscriber")
                .id;
        }
        store
            .set_preference(
                PreferenceLevel::Domain,
                domain.id,
                "concurrent_max",
                &json!(5),
            )
            .await
            .expect("preference");
        (store, last)
    });

    c.bench_function("find_sip_credentials", |b| {
        b.iter(|| {
            runtime
                .block_on(store.find_sip_credentials("user500", "bench.example"))
                .expect("lookup")
        })
    });
    c.bench_function("find_subscriber_by_number", |b| {
        b.iter(|| {
            runtime
                .block_on(store.find_subscriber_by_number("431000500"))
                .expect("lookup")
        })
    });
    c.bench_function("effective_preference_from_domain", |b| {
        b.iter(|| {
            runtime
                .block_on(store.effective_preference(subscriber_id, "concurrent_max"))
                .expect("lookup")
        })
    });
}

criterion_group!(benches, lookups);
criterion_main!(benches);
