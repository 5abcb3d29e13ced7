//! Cost of digest authentication on the request path: issuing a 401/407 challenge
//! pair and verifying an answer (nonce MAC, response hash, nonce-count window).

use std::cell::Cell;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sip_core::auth::{
    ClientCredentials, DigestAlgorithm, DigestAuthenticator, DigestChallenge, DigestPolicy,
    RequestToAuthenticate, RequestToSign, StoredCredentials, Verification, answer_challenge,
};

const REALM: &str = "voxide.example";
const NOW: u64 = 1_764_000_000;

fn digest_benchmarks(criterion: &mut Criterion) {
    let mut server =
        DigestAuthenticator::new(b"benchmark secret, thirty-two b!!", DigestPolicy::default())
            .expect("secret long enough");
    let mut random = StdRng::seed_from_u64(7);
    let binding: &[&[u8]] = &[b"192.0.2.10", b"a84b4c76e66710@pc33.example"];

    criterion.bench_function("challenge pair (SHA-256 + MD5)", |bencher| {
        bencher.iter(|| {
            server
                .challenges(REALM, black_box(binding), false, NOW, &mut random)
                .expect("printable")
        });
    });

    let stored = StoredCredentials::from_password("alice", REALM, "correct horse");
    let credentials = ClientCredentials {
        username: "alice",
        password: "correct horse",
        realm: Some(REALM),
    };
    let signed = RequestToSign {
        method: "REGISTER",
        uri: "sip:voxide.example",
        body: b"",
    };
    let request = RequestToAuthenticate {
        method: "REGISTER",
        request_uri: "sip:voxide.example",
        body: b"",
        realm: REALM,
        binding,
    };
    for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Md5] {
        let challenge = server
            .challenges(REALM, binding, false, NOW, &mut random)
            .expect("printable")
            .iter()
            .map(|value| DigestChallenge::parse(value).expect("own challenge"))
            .find(|challenge| challenge.algorithm == algorithm)
            .expect("offered");
        // Each answer uses the next nonce-count so every verification is accepted.
        let nonce_count = Cell::new(0u32);
        criterion.bench_function(&format!("verify {algorithm} (accepted)"), |bencher| {
            bencher.iter_batched(
                || {
                    nonce_count.set(nonce_count.get() + 1);
                    answer_challenge(
                        &challenge,
                        &credentials,
                        &signed,
                        nonce_count.get(),
                        &mut random,
                    )
                    .expect("answerable")
                },
                |answer| {
                    let outcome = server.verify(&request, &answer, &stored, NOW);
                    debug_assert_eq!(outcome, Verification::Verified);
                    outcome
                },
                BatchSize::SmallInput,
            );
        });
    }
}

criterion_group!(benches, digest_benchmarks);
criterion_main!(benches);
