//! REGISTER handling end to end against a real database (SQLite and MariaDB): digest
//! challenges, authorization, contacts, expiry rules, Call-ID/CSeq ordering and Path.

mod registrar_support;

use proxy::location::AddressOfRecord;
use proxy::registrar::RegistrarConfig;
use registrar_support::*;
use sip_core::auth::DigestAlgorithm;
use sip_message::HeaderName;

fn alice() -> AddressOfRecord {
    AddressOfRecord::new("alice", DOMAIN)
}

const ALICE_CONTACT: &str = "<sip:alice@127.0.0.1:5070>";

async fn challenge_then_md5_register(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("alice");
    let first = phone.request(&[("Contact", ALICE_CONTACT)], None);
    let challenge = fixture
        .registrar
        .handle_register(&first, source(), NOW)
        .await;
    assert_eq!(challenge.status(), Some(401));
    let offered = challenges(&challenge);
    assert_eq!(
        offered.iter().map(|c| c.algorithm).collect::<Vec<_>>(),
        vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
        "SHA-256 is offered first"
    );
    assert!(
        offered.iter().all(|c| c.realm == DOMAIN),
        "realm is the subscriber's domain"
    );
    assert!(
        fixture.location.lookup_at(&alice(), NOW).is_empty(),
        "nothing bound before auth"
    );

    let authorization = phone.answer(&challenge, DigestAlgorithm::Md5);
    let second = phone.request(&[("Contact", ALICE_CONTACT)], Some(&authorization));
    let ok = fixture
        .registrar
        .handle_register(&second, source(), NOW)
        .await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        contacts(&ok),
        vec!["<sip:alice@127.0.0.1:5070>;expires=3600"]
    );
    let bindings = fixture.location.lookup_at(&alice(), NOW);
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].contact, "sip:alice@127.0.0.1:5070");
    assert_eq!(bindings[0].expires_at_unix, NOW + 3600);
    assert_eq!(bindings[0].call_id, phone.call_id);
    assert_eq!(bindings[0].cseq, 2);
    assert_eq!(bindings[0].user_agent.as_deref(), Some("voxide-test-phone"));
}

async fn challenge_then_sha256_register(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("bob");
    let ok = register(
        &fixture,
        &mut phone,
        &[("Contact", "<sip:bob@127.0.0.1:5071>")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(contacts(&ok), vec!["<sip:bob@127.0.0.1:5071>;expires=3600"]);
    assert_eq!(
        fixture
            .location
            .lookup_at(&AddressOfRecord::new("bob", DOMAIN), NOW)
            .len(),
        1
    );
}

async fn wrong_password_is_challenged_again_then_forbidden(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("alice");
    phone.password = "not-the-password".into();
    let max_failures = fixture.authenticator.policy().max_failures;
    let mut previous_nonce = None;
    for attempt in 1..=max_failures {
        let response = register(
            &fixture,
            &mut phone,
            &[("Contact", ALICE_CONTACT)],
            DigestAlgorithm::Sha256,
            NOW,
        )
        .await;
        assert_eq!(
            response.status(),
            Some(401),
            "attempt {attempt} gets a fresh challenge"
        );
        let nonce = challenges(&response)[0].nonce.clone();
        assert_ne!(
            previous_nonce.as_ref(),
            Some(&nonce),
            "each challenge has a new nonce"
        );
        previous_nonce = Some(nonce);
    }
    let response = register(
        &fixture,
        &mut phone,
        &[("Contact", ALICE_CONTACT)],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(response.status(), Some(403), "too many failures end in 403");
    assert!(fixture.location.lookup_at(&alice(), NOW).is_empty());

    // The right password from the same source still works: the brake only answers failures.
    phone.password = password_of("alice");
    let ok = register(
        &fixture,
        &mut phone,
        &[("Contact", ALICE_CONTACT)],
        DigestAlgorithm::Md5,
        NOW,
    )
    .await;
    assert_eq!(ok.status(), Some(200));
}

async fn unknown_user_looks_like_a_wrong_password(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("mallory");
    let response = register(
        &fixture,
        &mut phone,
        &[("Contact", "<sip:mallory@127.0.0.1:5070>")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(
        response.status(),
        Some(401),
        "no 404 that would reveal the user is unknown"
    );
    assert_eq!(challenges(&response)[0].realm, DOMAIN);
}

async fn another_users_address_of_record_is_forbidden(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("alice");
    phone.to_user = "bob".into();
    let response = register(
        &fixture,
        &mut phone,
        &[("Contact", ALICE_CONTACT)],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(response.status(), Some(403));
    assert!(
        fixture
            .location
            .lookup_at(&AddressOfRecord::new("bob", DOMAIN), NOW)
            .is_empty()
    );
}

async fn locked_subscriber_cannot_register(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("carol");
    let response = register(
        &fixture,
        &mut phone,
        &[("Contact", "<sip:carol@127.0.0.1:5070>")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(response.status(), Some(403));
    assert!(
        fixture
            .location
            .lookup_at(&AddressOfRecord::new("carol", DOMAIN), NOW)
            .is_empty()
    );
}

async fn contacts_are_ordered_by_q_value(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("alice");
    let ok = register(
        &fixture,
        &mut phone,
        &[
            ("Contact", "<sip:alice@192.0.2.1:5060>;q=0.1"),
            (
                "Contact",
                "<sip:alice@192.0.2.2:5060>;q=1.0, <sip:alice@192.0.2.3:5060>;q=0.5",
            ),
        ],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        contacts(&ok),
        vec![
            "<sip:alice@192.0.2.2:5060>;expires=3600",
            "<sip:alice@192.0.2.3:5060>;expires=3600;q=0.5",
            "<sip:alice@192.0.2.1:5060>;expires=3600;q=0.1",
        ]
    );
    let order: Vec<(String, u16)> = fixture
        .location
        .lookup_at(&alice(), NOW)
        .into_iter()
        .map(|binding| (binding.contact, binding.q))
        .collect();
    assert_eq!(
        order,
        vec![
            ("sip:alice@192.0.2.2:5060".to_owned(), 1000),
            ("sip:alice@192.0.2.3:5060".to_owned(), 500),
            ("sip:alice@192.0.2.1:5060".to_owned(), 100),
        ]
    );

    let mut bad = Phone::new("alice");
    let response = register(
        &fixture,
        &mut bad,
        &[("Contact", "<sip:alice@192.0.2.9>;q=1.5")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(response.status(), Some(400), "q above 1 is malformed");
}

async fn expires_is_clamped_and_too_brief_gets_423(db: TestDb) {
    let config = RegistrarConfig {
        min_expires: 60,
        max_expires: 7200,
        default_expires: 1800,
        max_contacts: 5,
    };
    let fixture = fixture(db, config).await;
    let mut phone = Phone::new("alice");

    let too_brief = register(
        &fixture,
        &mut phone,
        &[("Contact", ALICE_CONTACT), ("Expires", "30")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(too_brief.status(), Some(423));
    assert_eq!(
        header(&too_brief, HeaderName::MinExpires).as_deref(),
        Some("60")
    );
    assert!(fixture.location.lookup_at(&alice(), NOW).is_empty());

    let too_long = register(
        &fixture,
        &mut phone,
        &[("Contact", ALICE_CONTACT), ("Expires", "100000")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(too_long.status(), Some(200));
    assert_eq!(
        contacts(&too_long),
        vec!["<sip:alice@127.0.0.1:5070>;expires=7200"]
    );

    // The contact parameter wins over the Expires header (RFC 3261 §10.2.1.1).
    let parameter = register(
        &fixture,
        &mut phone,
        &[
            ("Contact", "<sip:alice@127.0.0.1:5070>;expires=120"),
            ("Expires", "3000"),
        ],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(
        contacts(&parameter),
        vec!["<sip:alice@127.0.0.1:5070>;expires=120"]
    );

    let default = register(
        &fixture,
        &mut phone,
        &[("Contact", ALICE_CONTACT)],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(
        contacts(&default),
        vec!["<sip:alice@127.0.0.1:5070>;expires=1800"]
    );

    // Later, the 200 counts down the remaining time.
    let query = register(
        &fixture,
        &mut phone,
        &[],
        DigestAlgorithm::Sha256,
        NOW + 800,
    )
    .await;
    assert_eq!(query.status(), Some(200));
    assert_eq!(
        contacts(&query),
        vec!["<sip:alice@127.0.0.1:5070>;expires=1000"]
    );

    let removal = register(
        &fixture,
        &mut phone,
        &[("Contact", "<sip:alice@127.0.0.1:5070>;expires=0")],
        DigestAlgorithm::Sha256,
        NOW + 900,
    )
    .await;
    assert_eq!(removal.status(), Some(200));
    assert!(contacts(&removal).is_empty());
    assert!(fixture.location.lookup_at(&alice(), NOW + 900).is_empty());
}

async fn wildcard_contact_removes_all_bindings(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut desk = Phone::new("alice");
    let mut mobile = Phone::new("alice");
    let ok = register(
        &fixture,
        &mut desk,
        &[("Contact", "<sip:alice@192.0.2.1>")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(ok.status(), Some(200));
    let ok = register(
        &fixture,
        &mut mobile,
        &[("Contact", "<sip:alice@192.0.2.2>")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(contacts(&ok).len(), 2, "both phones are listed");

    let not_zero = register(
        &fixture,
        &mut desk,
        &[("Contact", "*"), ("Expires", "60")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(not_zero.status(), Some(400), "* needs Expires: 0");
    let mixed = register(
        &fixture,
        &mut desk,
        &[
            ("Contact", "*"),
            ("Contact", "<sip:alice@192.0.2.3>"),
            ("Expires", "0"),
        ],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(
        mixed.status(),
        Some(400),
        "* cannot be mixed with other contacts"
    );
    let no_expires = register(
        &fixture,
        &mut desk,
        &[("Contact", "*")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(
        no_expires.status(),
        Some(400),
        "* without Expires is refused"
    );
    assert_eq!(
        fixture.location.lookup_at(&alice(), NOW).len(),
        2,
        "nothing removed yet"
    );

    let removed = register(
        &fixture,
        &mut desk,
        &[("Contact", "*"), ("Expires", "0")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(removed.status(), Some(200));
    assert!(contacts(&removed).is_empty());
    assert!(fixture.location.lookup_at(&alice(), NOW).is_empty());
    let restarted = fixture_without_provisioning(fixture.db, RegistrarConfig::default(), NOW).await;
    assert!(
        restarted.location.lookup_at(&alice(), NOW).is_empty(),
        "removed in the database too"
    );
}

async fn call_id_and_cseq_ordering(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("alice");
    phone.cseq = 10;
    let ok = register(
        &fixture,
        &mut phone,
        &[("Contact", ALICE_CONTACT), ("Expires", "600")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(fixture.location.lookup_at(&alice(), NOW)[0].cseq, 12);

    // Same Call-ID, CSeq not higher than stored (12): aborted, nothing changes.
    phone.cseq = 5;
    let stale = register(
        &fixture,
        &mut phone,
        &[("Contact", ALICE_CONTACT), ("Expires", "1200")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(stale.status(), Some(400));
    let binding = &fixture.location.lookup_at(&alice(), NOW)[0];
    assert_eq!((binding.cseq, binding.expires_at_unix), (12, NOW + 600));

    // Equal CSeq is refused as well (CSeq 11 challenged, 12 answered = stored 12).
    phone.cseq = 10;
    let equal = register(
        &fixture,
        &mut phone,
        &[("Contact", ALICE_CONTACT), ("Expires", "1200")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(equal.status(), Some(400));

    // A removal with a stale CSeq is refused too.
    phone.cseq = 3;
    let stale_wildcard = register(
        &fixture,
        &mut phone,
        &[("Contact", "*"), ("Expires", "0")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(stale_wildcard.status(), Some(400));
    assert_eq!(fixture.location.lookup_at(&alice(), NOW).len(), 1);

    // Another Call-ID (the phone rebooted) may have any CSeq: the binding is updated.
    let mut rebooted = Phone::new("alice");
    let updated = register(
        &fixture,
        &mut rebooted,
        &[("Contact", ALICE_CONTACT), ("Expires", "1200")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(updated.status(), Some(200));
    let binding = &fixture.location.lookup_at(&alice(), NOW)[0];
    assert_eq!(binding.call_id, rebooted.call_id);
    assert_eq!((binding.cseq, binding.expires_at_unix), (2, NOW + 1200));

    // Same Call-ID, higher CSeq: refreshed.
    let refreshed = register(
        &fixture,
        &mut rebooted,
        &[("Contact", ALICE_CONTACT), ("Expires", "900")],
        DigestAlgorithm::Sha256,
        NOW + 10,
    )
    .await;
    assert_eq!(refreshed.status(), Some(200));
    assert_eq!(
        fixture.location.lookup_at(&alice(), NOW + 10)[0].expires_at_unix,
        NOW + 910
    );
}

async fn path_is_stored_and_echoed_when_supported(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let path = "<sip:127.0.0.1:5060;lr;received=sip:198.51.100.7:40000%3Btransport%3Dudp;vxf=abc>";
    let mut phone = Phone::new("alice");
    let ok = register(
        &fixture,
        &mut phone,
        &[
            ("Contact", ALICE_CONTACT),
            ("Path", path),
            ("Supported", "path, outbound"),
        ],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        header(&ok, HeaderName::Path).as_deref(),
        Some(path),
        "Path echoed (RFC 3327 §5.3)"
    );
    assert_eq!(
        fixture.location.lookup_at(&alice(), NOW)[0].path,
        vec![path.to_owned()]
    );

    // Without `Supported: path` the Path is still stored but not echoed.
    let mut other = Phone::new("bob");
    let ok = register(
        &fixture,
        &mut other,
        &[("Contact", "<sip:bob@10.0.0.5:5060>"), ("Path", path)],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(header(&ok, HeaderName::Path), None);
    let bob = fixture
        .location
        .lookup_at(&AddressOfRecord::new("bob", DOMAIN), NOW);
    assert_eq!(bob[0].path, vec![path.to_owned()]);
    assert_eq!(
        bob[0].received.as_deref(),
        Some("sip:127.0.0.1:5070"),
        "NATed contact keeps its source"
    );

    // `Require` of an extension we lack is refused with 420 and Unsupported.
    let mut picky = Phone::new("alice");
    let request = picky.request(
        &[("Contact", ALICE_CONTACT), ("Require", "path, sec-agree")],
        None,
    );
    let response = fixture
        .registrar
        .handle_register(&request, source(), NOW)
        .await;
    assert_eq!(response.status(), Some(420));
    assert_eq!(
        header(&response, HeaderName::Unsupported).as_deref(),
        Some("sec-agree")
    );
}

async fn too_many_contacts_are_refused(db: TestDb) {
    let config = RegistrarConfig {
        max_contacts: 2,
        ..RegistrarConfig::default()
    };
    let fixture = fixture(db, config).await;
    let mut phone = Phone::new("alice");
    let ok = register(
        &fixture,
        &mut phone,
        &[("Contact", "<sip:alice@192.0.2.1>, <sip:alice@192.0.2.2>")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(ok.status(), Some(200));
    let mut third = Phone::new("alice");
    let refused = register(
        &fixture,
        &mut third,
        &[("Contact", "<sip:alice@192.0.2.3>")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(refused.status(), Some(503));
    assert_eq!(fixture.location.lookup_at(&alice(), NOW).len(), 2);
    // Refreshing an existing contact does not count as a new one.
    let refresh = register(
        &fixture,
        &mut phone,
        &[("Contact", "<sip:alice@192.0.2.2>")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(refresh.status(), Some(200));
}

async fn malformed_requests_get_400_and_duplicates_merge(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("alice");
    let bad_contact = register(
        &fixture,
        &mut phone,
        &[("Contact", "<sip:alice@192.0.2.1")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(bad_contact.status(), Some(400));
    let bad_expires = register(
        &fixture,
        &mut phone,
        &[("Contact", ALICE_CONTACT), ("Expires", "soon")],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(bad_expires.status(), Some(400));
    let long_contact = format!("<sip:{}@192.0.2.1>", "a".repeat(600));
    let too_long = register(
        &fixture,
        &mut phone,
        &[("Contact", &long_contact)],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(too_long.status(), Some(400));
    assert!(fixture.location.lookup_at(&alice(), NOW).is_empty());

    let twice = register(
        &fixture,
        &mut phone,
        &[(
            "Contact",
            "<sip:alice@192.0.2.1>;expires=300, <sip:alice@192.0.2.1>;expires=900",
        )],
        DigestAlgorithm::Sha256,
        NOW,
    )
    .await;
    assert_eq!(twice.status(), Some(200));
    assert_eq!(contacts(&twice), vec!["<sip:alice@192.0.2.1>;expires=900"]);
    assert_eq!(fixture.location.lookup_at(&alice(), NOW).len(), 1);
}

on_both_backends!(
    challenge_then_md5_register,
    challenge_then_sha256_register,
    wrong_password_is_challenged_again_then_forbidden,
    unknown_user_looks_like_a_wrong_password,
    another_users_address_of_record_is_forbidden,
    locked_subscriber_cannot_register,
    contacts_are_ordered_by_q_value,
    expires_is_clamped_and_too_brief_gets_423,
    wildcard_contact_removes_all_bindings,
    call_id_and_cseq_ordering,
    path_is_stored_and_echoed_when_supported,
    too_many_contacts_are_refused,
    malformed_requests_get_400_and_duplicates_merge,
);
