//! Digest authentication end to end through the public API: server challenges, client
//! answers, server verifies (RFC 3261 §22, RFC 7616, RFC 8760).

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sip_core::auth::{
    ChallengeHeader, ClientCredentials, ClientError, CredentialsHeader, DigestAlgorithm,
    DigestAuthenticator, DigestChallenge, DigestPolicy, DigestResponse, DigestSyntaxError,
    HashFunction, NonceDefect, QualityOfProtection, RejectionReason, RequestToAuthenticate,
    RequestToSign, StoredCredentials, Verification, answer_challenge, answer_challenge_with_cnonce,
    hash_a1, hash_username, select_challenge,
};

const SECRET: &[u8] = b"test secret of thirty-two bytes!";
const REALM: &str = "voxide.example";
const REQUEST_URI: &str = "sip:voxide.example";
const SOURCE: &[u8] = b"192.0.2.10";
const CALL_ID: &[u8] = b"a84b4c76e66710@pc33.example";
const NOW: u64 = 1_764_000_000;

fn authenticator(policy: DigestPolicy) -> DigestAuthenticator {
    DigestAuthenticator::new(SECRET, policy).expect("secret is long enough")
}

fn request<'a>(binding: &'a [&'a [u8]]) -> RequestToAuthenticate<'a> {
    RequestToAuthenticate {
        method: "REGISTER",
        request_uri: REQUEST_URI,
        body: b"",
        realm: REALM,
        binding,
    }
}

fn alice() -> ClientCredentials<'static> {
    ClientCredentials {
        username: "alice",
        password: "correct horse",
        realm: Some(REALM),
    }
}

fn to_sign() -> RequestToSign<'static> {
    RequestToSign {
        method: "REGISTER",
        uri: REQUEST_URI,
        body: b"",
    }
}

/// Challenges from `server`, parsed as a client would see them.
fn challenges(
    server: &DigestAuthenticator,
    binding: &[&[u8]],
    stale: bool,
    now: u64,
    random: &mut StdRng,
) -> Vec<DigestChallenge> {
    server
        .challenges(REALM, binding, stale, now, random)
        .expect("realm is printable")
        .iter()
        .map(|value| DigestChallenge::parse(value).expect("own challenge parses"))
        .collect()
}

/// A full round: challenge at `issued`, answer with `nonce_count`, return the header
/// value the client sends.
fn answer(
    server: &DigestAuthenticator,
    algorithm: DigestAlgorithm,
    nonce_count: u32,
    issued: u64,
    random: &mut StdRng,
) -> String {
    let binding: &[&[u8]] = &[SOURCE, CALL_ID];
    let offered = challenges(server, binding, false, issued, random);
    let challenge = offered
        .iter()
        .find(|challenge| challenge.algorithm == algorithm)
        .expect("algorithm offered");
    answer_challenge(challenge, &alice(), &to_sign(), nonce_count, random)
        .expect("answerable")
        .to_header_value()
        .expect("printable")
}

fn stored_alice() -> StoredCredentials {
    StoredCredentials::from_password("alice", REALM, "correct horse")
}

#[test]
fn rfc_7616_section_3_9_1_examples_from_the_client() {
    for (algorithm, expected) in [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        (
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let challenge = DigestChallenge::parse(&format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
             algorithm={algorithm}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        ))
        .unwrap();
        let credentials = ClientCredentials {
            username: "Mufasa",
            password: "Circle of Life",
            realm: None,
        };
        let response = answer_challenge_with_cnonce(
            &challenge,
            &credentials,
            &RequestToSign {
                method: "GET",
                uri: "/dir/index.html",
                body: b"",
            },
            1,
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        )
        .unwrap();
        assert_eq!(response.response, expected, "{algorithm}");
        assert_eq!(response.nonce_count.as_deref(), Some("00000001"));
        assert_eq!(response.quality_of_protection.as_deref(), Some("auth"));
        assert_eq!(
            response.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
    }
}

#[test]
fn stored_ha1_is_the_hash_of_username_realm_password() {
    // Computed independently: printf 'Mufasa:http-auth@example.org:Circle of Life' | md5sum / sha256sum
    let stored =
        StoredCredentials::from_password("Mufasa", "http-auth@example.org", "Circle of Life");
    assert_eq!(
        stored.ha1_md5.as_deref(),
        Some("3d78807defe7de2157e2b0b6573a855f")
    );
    assert_eq!(
        stored.ha1_sha256.as_deref(),
        Some("7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232")
    );
    assert_eq!(
        hash_a1(
            HashFunction::Md5,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life"
        ),
        "3d78807defe7de2157e2b0b6573a855f"
    );
}

#[test]
fn challenges_offer_sha256_first_then_md5_with_qop_auth() {
    let server = authenticator(DigestPolicy::default());
    let mut random = StdRng::seed_from_u64(1);
    let values = server
        .challenges(REALM, &[SOURCE], false, NOW, &mut random)
        .unwrap();
    assert_eq!(values.len(), 2);
    assert!(values[0].contains("algorithm=SHA-256"), "{}", values[0]);
    assert!(values[1].contains("algorithm=MD5"), "{}", values[1]);
    for value in &values {
        assert!(value.starts_with("Digest realm=\"voxide.example\", nonce=\""));
        assert!(value.contains("qop=\"auth\""));
        assert!(!value.contains("stale"));
    }
    let parsed = challenges(&server, &[SOURCE], true, NOW, &mut random);
    assert!(parsed.iter().all(|challenge| challenge.stale));
    assert_eq!(parsed[0].nonce, parsed[1].nonce, "one nonce for both");
    assert_eq!(
        select_challenge(&parsed).map(|challenge| challenge.algorithm),
        Some(DigestAlgorithm::Sha256)
    );
}

#[test]
fn round_trip_verifies_for_every_offered_algorithm() {
    let mut server = authenticator(DigestPolicy {
        offered_algorithms: vec![
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha256Session,
            DigestAlgorithm::Md5,
            DigestAlgorithm::Md5Session,
        ],
        ..DigestPolicy::default()
    });
    let mut random = StdRng::seed_from_u64(2);
    let binding: &[&[u8]] = &[SOURCE, CALL_ID];
    for algorithm in server.policy().offered_algorithms.clone() {
        let header = answer(&server, algorithm, 1, NOW, &mut random);
        assert_eq!(
            server.verify_header_value(&request(binding), &header, &stored_alice(), NOW + 1),
            Verification::Verified,
            "{algorithm}: {header}"
        );
    }
}

#[test]
fn wrong_password_is_rejected() {
    let mut server = authenticator(DigestPolicy::default());
    let mut random = StdRng::seed_from_u64(3);
    let header = answer(&server, DigestAlgorithm::Sha256, 1, NOW, &mut random);
    let other_password = StoredCredentials::from_password("alice", REALM, "wrong horse");
    assert_eq!(
        server.verify_header_value(&request(&[SOURCE, CALL_ID]), &header, &other_password, NOW),
        Verification::Rejected(RejectionReason::WrongResponse)
    );
}

#[test]
fn expired_nonce_with_right_password_is_stale_and_with_wrong_password_rejected() {
    let mut server = authenticator(DigestPolicy::default());
    let mut random = StdRng::seed_from_u64(4);
    let binding: &[&[u8]] = &[SOURCE, CALL_ID];
    let header = answer(&server, DigestAlgorithm::Md5, 1, NOW, &mut random);
    let later = NOW + 301;
    let wrong = StoredCredentials::from_password("alice", REALM, "guess");
    assert_eq!(
        server.verify_header_value(&request(binding), &header, &wrong, later),
        Verification::Rejected(RejectionReason::WrongResponse),
        "a wrong password must not learn that the nonce was merely stale"
    );
    assert_eq!(
        server.verify_header_value(&request(binding), &header, &stored_alice(), later),
        Verification::Stale
    );
    // The client retries on the stale=true challenge and gets in.
    let retry = challenges(&server, binding, true, later, &mut random);
    assert!(retry[0].stale);
    let header = answer_challenge(&retry[0], &alice(), &to_sign(), 1, &mut random)
        .unwrap()
        .to_header_value()
        .unwrap();
    assert_eq!(
        server.verify_header_value(&request(binding), &header, &stored_alice(), later),
        Verification::Verified
    );
}

#[test]
fn tampered_or_foreign_nonces_are_rejected() {
    let mut server = authenticator(DigestPolicy::default());
    let mut random = StdRng::seed_from_u64(5);
    let binding: &[&[u8]] = &[SOURCE, CALL_ID];
    let header = answer(&server, DigestAlgorithm::Sha256, 1, NOW, &mut random);
    let stored = stored_alice();

    // From another source address: the binding no longer matches.
    let elsewhere: &[&[u8]] = &[b"198.51.100.7", CALL_ID];
    assert_eq!(
        server.verify_header_value(&request(elsewhere), &header, &stored, NOW),
        Verification::Rejected(RejectionReason::InvalidNonce(NonceDefect::NotAuthentic))
    );

    // A nonce re-signed by the client itself (response recomputed over an altered
    // nonce): the MAC gives it away even though the digest is consistent.
    let mut credentials = DigestResponse::parse(&header).unwrap();
    let mut nonce = credentials.nonce.into_bytes();
    nonce[0] = if nonce[0] == b'f' { b'e' } else { b'f' };
    let forged_challenge = DigestChallenge {
        realm: REALM.into(),
        nonce: String::from_utf8(nonce).unwrap(),
        opaque: None,
        algorithm: DigestAlgorithm::Sha256,
        quality_of_protection_options: Some(vec![QualityOfProtection::Authentication]),
        stale: false,
        userhash: false,
    };
    credentials =
        answer_challenge(&forged_challenge, &alice(), &to_sign(), 1, &mut random).unwrap();
    assert_eq!(
        server.verify(&request(binding), &credentials, &stored, NOW),
        Verification::Rejected(RejectionReason::InvalidNonce(NonceDefect::NotAuthentic))
    );

    // Not our format at all.
    credentials.nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into();
    assert_eq!(
        server.verify(&request(binding), &credentials, &stored, NOW),
        Verification::Rejected(RejectionReason::InvalidNonce(NonceDefect::Malformed))
    );

    // Another server secret.
    let mut other =
        DigestAuthenticator::new(b"a different secret, 32 bytes....", DigestPolicy::default())
            .unwrap();
    assert_eq!(
        other.verify_header_value(&request(binding), &header, &stored, NOW),
        Verification::Rejected(RejectionReason::InvalidNonce(NonceDefect::NotAuthentic))
    );
}

#[test]
fn replayed_nonce_count_is_rejected_and_higher_counts_pass() {
    let mut server = authenticator(DigestPolicy::default());
    let mut random = StdRng::seed_from_u64(6);
    let binding: &[&[u8]] = &[SOURCE, CALL_ID];
    let stored = stored_alice();
    let offered = challenges(&server, binding, false, NOW, &mut random);
    let sign = |nonce_count: u32, random: &mut StdRng| {
        answer_challenge(&offered[0], &alice(), &to_sign(), nonce_count, random)
            .unwrap()
            .to_header_value()
            .unwrap()
    };
    let first = sign(1, &mut random);
    assert_eq!(
        server.verify_header_value(&request(binding), &first, &stored, NOW),
        Verification::Verified
    );
    assert_eq!(
        server.verify_header_value(&request(binding), &first, &stored, NOW + 1),
        Verification::Rejected(RejectionReason::ReplayedNonceCount {
            nonce_count: 1,
            highest_seen: 1
        })
    );
    let third = sign(3, &mut random);
    let second = sign(2, &mut random);
    assert_eq!(
        server.verify_header_value(&request(binding), &third, &stored, NOW + 2),
        Verification::Verified
    );
    assert_eq!(
        server.verify_header_value(&request(binding), &second, &stored, NOW + 2),
        Verification::Verified,
        "reordered counts inside the window are fine"
    );
    assert_eq!(server.nonce_counts().len(), 1);
}

#[test]
fn forged_requests_do_not_burn_nonce_counts() {
    let mut server = authenticator(DigestPolicy::default());
    let mut random = StdRng::seed_from_u64(7);
    let binding: &[&[u8]] = &[SOURCE, CALL_ID];
    let offered = challenges(&server, binding, false, NOW, &mut random);
    let attacker = ClientCredentials {
        username: "alice",
        password: "guess",
        realm: Some(REALM),
    };
    let forged = answer_challenge(&offered[0], &attacker, &to_sign(), 1, &mut random).unwrap();
    assert_eq!(
        server.verify(&request(binding), &forged, &stored_alice(), NOW),
        Verification::Rejected(RejectionReason::WrongResponse)
    );
    let genuine = answer_challenge(&offered[0], &alice(), &to_sign(), 1, &mut random).unwrap();
    assert_eq!(
        server.verify(&request(binding), &genuine, &stored_alice(), NOW),
        Verification::Verified
    );
}

#[test]
fn wrong_realm_uri_opaque_and_algorithm_are_named() {
    let mut server = authenticator(DigestPolicy {
        opaque: Some("opaque-value".into()),
        offered_algorithms: vec![DigestAlgorithm::Sha256],
        ..DigestPolicy::default()
    });
    let mut random = StdRng::seed_from_u64(8);
    let binding: &[&[u8]] = &[SOURCE];
    let offered = challenges(&server, binding, false, NOW, &mut random);
    assert_eq!(offered.len(), 1);
    assert_eq!(offered[0].opaque.as_deref(), Some("opaque-value"));
    let good = answer_challenge(&offered[0], &alice(), &to_sign(), 1, &mut random).unwrap();
    let stored = stored_alice();

    let mut other_realm = request(binding);
    other_realm.realm = "other.example";
    assert_eq!(
        server.verify(&other_realm, &good, &stored, NOW),
        Verification::Rejected(RejectionReason::RealmMismatch {
            expected: "other.example".into(),
            received: REALM.into()
        })
    );

    let mut other_uri = request(binding);
    other_uri.request_uri = "sip:bob@voxide.example";
    assert_eq!(
        server.verify(&other_uri, &good, &stored, NOW),
        Verification::Rejected(RejectionReason::UriMismatch {
            request_uri: "sip:bob@voxide.example".into(),
            digest_uri: REQUEST_URI.into()
        })
    );

    let mut without_opaque = good.clone();
    without_opaque.opaque = None;
    assert_eq!(
        server.verify(&request(binding), &without_opaque, &stored, NOW),
        Verification::Rejected(RejectionReason::OpaqueMismatch)
    );

    let mut md5 = good.clone();
    md5.algorithm = Some("MD5".into());
    assert_eq!(
        server.verify(&request(binding), &md5, &stored, NOW),
        Verification::Rejected(RejectionReason::UnsupportedAlgorithm { name: "MD5".into() })
    );
    let mut unknown = good.clone();
    unknown.algorithm = Some("SHA-512-256".into());
    assert_eq!(
        server.verify(&request(binding), &unknown, &stored, NOW),
        Verification::Rejected(RejectionReason::UnsupportedAlgorithm {
            name: "SHA-512-256".into()
        })
    );

    let only_md5 = StoredCredentials {
        ha1_sha256: None,
        ..stored.clone()
    };
    assert_eq!(
        server.verify(&request(binding), &good, &only_md5, NOW),
        Verification::Rejected(RejectionReason::NoStoredHash {
            algorithm: DigestAlgorithm::Sha256
        })
    );
    assert_eq!(
        server.verify(&request(binding), &good, &stored, NOW),
        Verification::Verified
    );
}

#[test]
fn malformed_parameters_are_named() {
    let mut server = authenticator(DigestPolicy::default());
    let mut random = StdRng::seed_from_u64(9);
    let binding: &[&[u8]] = &[SOURCE];
    let offered = challenges(&server, binding, false, NOW, &mut random);
    let good = answer_challenge(&offered[0], &alice(), &to_sign(), 1, &mut random).unwrap();
    let stored = stored_alice();
    let mut check =
        |credentials: DigestResponse| server.verify(&request(binding), &credentials, &stored, NOW);

    let mut no_qop = good.clone();
    no_qop.quality_of_protection = None;
    assert_eq!(
        check(no_qop),
        Verification::Rejected(RejectionReason::QualityOfProtectionRequired)
    );
    let mut odd_qop = good.clone();
    odd_qop.quality_of_protection = Some("auth-conf".into());
    assert_eq!(
        check(odd_qop),
        Verification::Rejected(RejectionReason::UnsupportedQualityOfProtection {
            value: "auth-conf".into()
        })
    );
    let mut no_nc = good.clone();
    no_nc.nonce_count = None;
    assert_eq!(
        check(no_nc),
        Verification::Rejected(RejectionReason::MissingParameter { name: "nc" })
    );
    for bad in ["1", "0000000g", "00000000", "000000001"] {
        let mut bad_nc = good.clone();
        bad_nc.nonce_count = Some(bad.into());
        assert_eq!(
            check(bad_nc),
            Verification::Rejected(RejectionReason::MalformedNonceCount { value: bad.into() })
        );
    }
    let mut no_cnonce = good.clone();
    no_cnonce.cnonce = None;
    assert_eq!(
        check(no_cnonce),
        Verification::Rejected(RejectionReason::MissingParameter { name: "cnonce" })
    );
    let mut short = good.clone();
    short.response.truncate(10);
    assert_eq!(
        check(short),
        Verification::Rejected(RejectionReason::MalformedResponse {
            expected_length: 64
        })
    );
    let mut not_hex = good.clone();
    not_hex.response = "z".repeat(64);
    assert_eq!(
        check(not_hex),
        Verification::Rejected(RejectionReason::MalformedResponse {
            expected_length: 64
        })
    );
    // Uppercase hex from a client is the same digest.
    let mut upper = good.clone();
    upper.response = upper.response.to_ascii_uppercase();
    assert_eq!(check(upper), Verification::Verified);

    assert_eq!(
        server.verify_header_value(&request(binding), "Basic YWxpY2U6cGFzcw==", &stored, NOW),
        Verification::Rejected(RejectionReason::Malformed(DigestSyntaxError::NotDigest {
            scheme: "Basic".into()
        }))
    );
    assert_eq!(
        server.verify_header_value(&request(binding), "Digest username=\"alice\"", &stored, NOW),
        Verification::Rejected(RejectionReason::Malformed(
            DigestSyntaxError::MissingParameter { name: "realm" }
        ))
    );
}

#[test]
fn answers_without_qop_only_when_the_policy_allows() {
    let binding: &[&[u8]] = &[SOURCE];
    let mut random = StdRng::seed_from_u64(10);
    for allowed in [false, true] {
        let mut server = authenticator(DigestPolicy {
            accept_without_quality_of_protection: allowed,
            ..DigestPolicy::default()
        });
        let mut challenge = challenges(&server, binding, false, NOW, &mut random).remove(1);
        // An RFC 2069 client ignores qop.
        challenge.quality_of_protection_options = None;
        let credentials =
            answer_challenge(&challenge, &alice(), &to_sign(), 1, &mut random).unwrap();
        assert_eq!(credentials.quality_of_protection, None);
        assert_eq!(credentials.cnonce, None);
        assert_eq!(credentials.nonce_count, None);
        let expected = if allowed {
            Verification::Verified
        } else {
            Verification::Rejected(RejectionReason::QualityOfProtectionRequired)
        };
        assert_eq!(
            server.verify(&request(binding), &credentials, &stored_alice(), NOW),
            expected
        );
    }
}

#[test]
fn integrity_protection_covers_the_body() {
    let mut server = authenticator(DigestPolicy::default());
    let mut random = StdRng::seed_from_u64(11);
    let binding: &[&[u8]] = &[SOURCE];
    let mut challenge = challenges(&server, binding, false, NOW, &mut random).remove(0);
    challenge.quality_of_protection_options =
        Some(vec![QualityOfProtection::AuthenticationWithIntegrity]);
    let body = b"v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\n";
    let signed = RequestToSign {
        method: "INVITE",
        uri: REQUEST_URI,
        body,
    };
    let credentials = answer_challenge(&challenge, &alice(), &signed, 1, &mut random).unwrap();
    assert_eq!(
        credentials.quality_of_protection.as_deref(),
        Some("auth-int")
    );
    let mut invite = RequestToAuthenticate {
        method: "INVITE",
        body: b"v=0\r\no=mallory 1 1 IN IP4 203.0.113.1\r\n",
        ..request(binding)
    };
    assert_eq!(
        server.verify(&invite, &credentials, &stored_alice(), NOW),
        Verification::Rejected(RejectionReason::WrongResponse)
    );
    invite.body = body;
    assert_eq!(
        server.verify(&invite, &credentials, &stored_alice(), NOW),
        Verification::Verified
    );
}

#[test]
fn client_refuses_foreign_realms_and_unknown_qop() {
    let mut random = StdRng::seed_from_u64(12);
    let foreign =
        DigestChallenge::parse("Digest realm=\"gateway.example\", nonce=\"abc\", qop=\"auth\"")
            .unwrap();
    assert_eq!(
        answer_challenge(&foreign, &alice(), &to_sign(), 1, &mut random),
        Err(ClientError::RealmNotOurs {
            expected: REALM.into(),
            received: "gateway.example".into()
        })
    );
    let odd =
        DigestChallenge::parse("Digest realm=\"voxide.example\", nonce=\"abc\", qop=\"auth-conf\"")
            .unwrap();
    assert_eq!(
        answer_challenge(&odd, &alice(), &to_sign(), 1, &mut random),
        Err(ClientError::NoSupportedQualityOfProtection)
    );
    assert!(select_challenge(std::slice::from_ref(&odd)).is_none());
    let ok = DigestChallenge::parse("Digest realm=\"voxide.example\", nonce=\"abc\", qop=\"auth\"")
        .unwrap();
    assert_eq!(
        answer_challenge(&ok, &alice(), &to_sign(), 0, &mut random),
        Err(ClientError::ZeroNonceCount)
    );
    let printed = format!("{:?}", alice());
    assert!(!printed.contains("correct horse"));
}

#[test]
fn tracker_memory_bound_turns_forgotten_nonces_stale_not_verified() {
    let mut server = authenticator(DigestPolicy {
        replay_tracker_capacity: 1,
        ..DigestPolicy::default()
    });
    let mut random = StdRng::seed_from_u64(13);
    let binding: &[&[u8]] = &[SOURCE];
    let first = answer(&server, DigestAlgorithm::Sha256, 1, NOW, &mut random);
    let second = answer(&server, DigestAlgorithm::Sha256, 1, NOW + 1, &mut random);
    let check = |server: &mut DigestAuthenticator, header: &str| {
        server.verify_header_value(&request(binding), header, &stored_alice(), NOW + 2)
    };
    // `answer` binds to SOURCE and CALL_ID.
    let binding_with_call: &[&[u8]] = &[SOURCE, CALL_ID];
    let check_bound = |server: &mut DigestAuthenticator, header: &str| {
        server.verify_header_value(
            &request(binding_with_call),
            header,
            &stored_alice(),
            NOW + 2,
        )
    };
    assert_eq!(
        check(&mut server, &first),
        Verification::Rejected(RejectionReason::InvalidNonce(NonceDefect::NotAuthentic))
    );
    assert_eq!(check_bound(&mut server, &first), Verification::Verified);
    assert_eq!(check_bound(&mut server, &second), Verification::Verified);
    assert_eq!(server.nonce_counts().len(), 1);
    // The first nonce was evicted: its replay is not accepted, the client is sent a
    // fresh nonce instead.
    assert_eq!(check_bound(&mut server, &first), Verification::Stale);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any username/password verifies with the right password and fails with any other.
    #[test]
    fn verifies_if_and_only_if_the_password_matches(
        username in "[a-zA-Z0-9._+-]{1,24}",
        password in "\\PC{0,32}",
        other_password in "\\PC{0,32}",
        use_md5 in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut server = authenticator(DigestPolicy::default());
        let mut random = StdRng::seed_from_u64(seed);
        let binding: &[&[u8]] = &[SOURCE];
        let offered = challenges(&server, binding, false, NOW, &mut random);
        let challenge = &offered[usize::from(use_md5)];
        let client = ClientCredentials {
            username: &username,
            password: &password,
            realm: Some(REALM),
        };
        let header = answer_challenge(challenge, &client, &to_sign(), 1, &mut random)
            .unwrap()
            .to_header_value()
            .unwrap();
        let parsed = DigestResponse::parse(&header).unwrap();
        prop_assert_eq!(&parsed.username, &username);
        let stored = StoredCredentials::from_password(&username, REALM, &other_password);
        let outcome = server.verify(&request(binding), &parsed, &stored, NOW);
        if other_password == password {
            prop_assert_eq!(outcome, Verification::Verified);
        } else {
            prop_assert_eq!(outcome, Verification::Rejected(RejectionReason::WrongResponse));
        }
    }

    /// Arbitrary header text never panics the verifier and is never verified.
    #[test]
    fn arbitrary_header_values_are_rejected_without_panic(text in "\\PC{0,200}") {
        let mut server = authenticator(DigestPolicy::default());
        let outcome = server.verify_header_value(&request(&[SOURCE]), &text, &stored_alice(), NOW);
        prop_assert!(matches!(outcome, Verification::Rejected(_)));
    }

    /// Same for text that looks like Digest credentials.
    #[test]
    fn digest_shaped_garbage_is_rejected(
        pairs in proptest::collection::vec(
            ("(username|realm|nonce|uri|response|nc|cnonce|qop|algorithm|opaque)", "[ -~]{0,40}"),
            0..12,
        )
    ) {
        let mut text = String::from("Digest ");
        for (name, value) in &pairs {
            text.push_str(&format!("{name}=\"{}\", ", value.replace(['"', '\\'], "")));
        }
        let mut server = authenticator(DigestPolicy::default());
        let outcome = server.verify_header_value(&request(&[SOURCE]), &text, &stored_alice(), NOW);
        prop_assert!(matches!(outcome, Verification::Rejected(_)));
    }
}

#[test]
fn rfc_7616_section_3_9_2_sha512_256_userhash_example_as_corrected_by_erratum_4897() {
    // RFC 7616 §3.9.2 printed values made with a draft SHA-512/256; erratum 4897 gives
    // these, which Python's hashlib reproduces as well.
    let challenge = DigestChallenge::parse(
        "Digest realm=\"api@example.org\", qop=\"auth\", algorithm=SHA-512-256, \
         nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\", \
         opaque=\"HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS\", charset=UTF-8, userhash=true",
    )
    .unwrap();
    assert_eq!(challenge.algorithm, DigestAlgorithm::Sha512_256);
    assert!(challenge.userhash);
    let credentials = ClientCredentials {
        username: "J\u{e4}s\u{f8}n Doe",
        password: "Secret, or not?",
        realm: Some("api@example.org"),
    };
    let response = answer_challenge_with_cnonce(
        &challenge,
        &credentials,
        &RequestToSign {
            method: "GET",
            uri: "/doe.json",
            body: b"",
        },
        1,
        "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
    )
    .unwrap();
    assert_eq!(
        response.username,
        "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
    );
    assert_eq!(
        hash_username(
            HashFunction::Sha512_256,
            "J\u{e4}s\u{f8}n Doe",
            "api@example.org"
        ),
        response.username
    );
    assert!(response.userhash);
    assert_eq!(
        response.response,
        "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
    );
    let printed = response.to_header_value().unwrap();
    assert!(printed.ends_with(", userhash=true"), "{printed}");
    assert_eq!(DigestResponse::parse(&printed).unwrap(), response);
}

#[test]
fn sha512_256_round_trip_when_offered() {
    let mut server = authenticator(DigestPolicy {
        offered_algorithms: vec![
            DigestAlgorithm::Sha512_256,
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Md5,
        ],
        ..DigestPolicy::default()
    });
    let mut random = StdRng::seed_from_u64(14);
    let binding: &[&[u8]] = &[SOURCE, CALL_ID];
    let offered = challenges(&server, binding, false, NOW, &mut random);
    assert_eq!(
        select_challenge(&offered).map(|challenge| challenge.algorithm),
        Some(DigestAlgorithm::Sha512_256)
    );
    let header = answer(&server, DigestAlgorithm::Sha512_256, 1, NOW, &mut random);
    assert_eq!(
        server.verify_header_value(&request(binding), &header, &stored_alice(), NOW),
        Verification::Verified
    );
}

fn register(authorization_lines: &str) -> sip_message::Message {
    let text = format!(
        "REGISTER sip:voxide.example SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKreg1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@voxide.example>;tag=a73kszlfl\r\n\
         To: <sip:alice@voxide.example>\r\n\
         Call-ID: a84b4c76e66710@pc33.example\r\n\
         CSeq: 2 REGISTER\r\n\
         Contact: <sip:alice@192.0.2.10>\r\n\
         {authorization_lines}\
         Content-Length: 0\r\n\r\n"
    );
    sip_message::Message::parse(bytes::Bytes::from(text)).expect("valid REGISTER")
}

#[test]
fn whole_messages_challenge_answer_and_verify() {
    let mut server = authenticator(DigestPolicy::default());
    let mut random = StdRng::seed_from_u64(15);
    let binding: &[&[u8]] = &[SOURCE, CALL_ID];
    let values = server
        .challenges(REALM, binding, false, NOW, &mut random)
        .unwrap();
    let response_text = format!(
        "SIP/2.0 401 Unauthorized\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKreg1\r\n\
         From: <sip:alice@voxide.example>;tag=a73kszlfl\r\n\
         To: <sip:alice@voxide.example>;tag=1410948204\r\n\
         Call-ID: a84b4c76e66710@pc33.example\r\n\
         CSeq: 1 REGISTER\r\n\
         WWW-Authenticate: Bearer realm=\"other\"\r\n\
         WWW-Authenticate: {}\r\n\
         WWW-Authenticate: {}\r\n\
         Content-Length: 0\r\n\r\n",
        values[0], values[1]
    );
    let response = sip_message::Message::parse(bytes::Bytes::from(response_text)).unwrap();
    let offered = DigestChallenge::all_in_response(&response, ChallengeHeader::WwwAuthenticate);
    assert_eq!(offered.len(), 2, "Bearer is skipped");
    let chosen = select_challenge(&offered).unwrap();
    assert_eq!(chosen.algorithm, DigestAlgorithm::Sha256);
    let authorization = answer_challenge(chosen, &alice(), &to_sign(), 1, &mut random)
        .unwrap()
        .to_header_value()
        .unwrap();

    // Credentials for another realm come first; the server must pick ours.
    let register_request = register(&format!(
        "Authorization: Digest username=\"alice\", realm=\"elsewhere.example\", \
         nonce=\"x\", uri=\"sip:voxide.example\", response=\"00\"\r\n\
         Authorization: {authorization}\r\n"
    ));
    let credentials =
        DigestResponse::find_in_request(&register_request, CredentialsHeader::Authorization, REALM)
            .expect("credentials for our realm")
            .expect("well formed");
    assert_eq!(credentials.username, "alice");
    assert_eq!(
        server.verify(&request(binding), &credentials, &stored_alice(), NOW),
        Verification::Verified
    );

    // No credentials: the caller challenges.
    let bare = register("");
    assert_eq!(
        DigestResponse::find_in_request(&bare, CredentialsHeader::Authorization, REALM),
        None
    );
    // Broken credentials for no realm: reported, not silently ignored.
    let broken =
        register("Proxy-Authorization: Digest username=\"alice\", realm=\"voxide.example\"\r\n");
    assert_eq!(
        DigestResponse::find_in_request(&broken, CredentialsHeader::ProxyAuthorization, REALM),
        Some(Err(DigestSyntaxError::MissingParameter { name: "nonce" }))
    );
}
