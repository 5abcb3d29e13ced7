//! Registrar costs against a real SQLite file: a full REGISTER refresh (401 challenge, then the
//! authenticated REGISTER with its one UPSERT) and a location lookup from the cache.

#[path = "../tests/registrar_support/mod.rs"]
mod registrar_support;

use criterion::{Criterion, criterion_group, criterion_main};
use proxy::location::AddressOfRecord;
use proxy::registrar::RegistrarConfig;
use registrar_support::*;
use sip_core::auth::DigestAlgorithm;

fn registrar(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fixture =
        runtime.block_on(async { fixture(sqlite().await, RegistrarConfig::default()).await });
    let mut phone = Phone::new("alice");
    let contact = [("Contact", "<sip:alice@192.0.2.1:5060>")];

    criterion.bench_function("register_refresh_sqlite_challenge_and_upsert", |bencher| {
        bencher.iter(|| {
            runtime.block_on(async {
                let response =
                    register(&fixture, &mut phone, &contact, DigestAlgorithm::Sha256, NOW).await;
                assert_eq!(response.status(), Some(200));
            })
        })
    });

    let aor = AddressOfRecord::new("alice", DOMAIN);
    criterion.bench_function("location_lookup_cached", |bencher| {
        bencher.iter(|| fixture.location.lookup_at(&aor, NOW))
    });
}

criterion_group!(benches, registrar);
criterion_main!(benches);
