//! The authenticator on its own: 407 for calls with the From domain as realm, the identity it
//! hands to routing, stale nonces, nonces bound to the source address, and replays.

mod registrar_support;

use std::net::SocketAddr;

use bytes::Bytes;
use proxy::authentication::AuthOutcome;
use proxy::registrar::RegistrarConfig;
use registrar_support::*;
use sip_core::auth::{
    ClientCredentials, DigestAlgorithm, DigestChallenge, RequestToSign, answer_challenge,
};
use sip_message::{HeaderName, Message};
use store::{DomainRepository, PreferenceLevel, PreferenceRepository, SubscriberRepository};

fn invite(from_user: &str, proxy_authorization: Option<&str>) -> Message {
    let mut text = format!(
        "INVITE sip:bob@{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {PHONE_SOURCE};branch=z9hG4bK{:016x}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{from_user}@{DOMAIN}>;tag=abc\r\n\
         To: <sip:bob@{DOMAIN}>\r\n\
         Call-ID: call-1@phone\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{from_user}@{PHONE_SOURCE}>\r\n",
        rand::random::<u64>()
    );
    if let Some(value) = proxy_authorization {
        text.push_str(&format!("Proxy-Authorization: {value}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    Message::parse(Bytes::from(text)).expect("INVITE parses")
}

fn answer_proxy_challenge(response: &Message, username: &str, password: &str) -> String {
    let challenge = response
        .header_values(&HeaderName::ProxyAuthenticate)
        .map(|value| DigestChallenge::parse(std::str::from_utf8(value).unwrap()).unwrap())
        .next()
        .expect("a Proxy-Authenticate challenge");
    let credentials = ClientCredentials {
        username,
        password,
        realm: None,
    };
    let uri = format!("sip:bob@{DOMAIN}");
    let request = RequestToSign {
        method: "INVITE",
        uri: &uri,
        body: b"",
    };
    answer_challenge(&challenge, &credentials, &request, 1, &mut rand::rng())
        .unwrap()
        .to_header_value()
        .unwrap()
}

async fn calls_are_challenged_with_407_and_identify_the_caller(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let AuthOutcome::Challenge(challenge) = fixture
        .authenticator
        .authenticate(&invite("alice", None), source(), NOW)
        .await
    else {
        panic!("an INVITE without credentials is challenged");
    };
    assert_eq!(challenge.status(), Some(407));
    assert_eq!(
        challenge
            .header_values(&HeaderName::ProxyAuthenticate)
            .count(),
        2
    );
    assert!(!challenge.has_header(&HeaderName::WwwAuthenticate));
    assert!(
        challenge.to().unwrap().tag().is_some(),
        "a local response carries a To tag"
    );

    let authorization = answer_proxy_challenge(&challenge, "alice", &password_of("alice"));
    let outcome = fixture
        .authenticator
        .authenticate(&invite("alice", Some(&authorization)), source(), NOW)
        .await;
    let AuthOutcome::Authenticated(subscriber) = outcome else {
        panic!("right password authenticates, got {outcome:?}");
    };
    let stored = fixture
        .db
        .store
        .find_subscriber("alice", DOMAIN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(subscriber.id, stored.id);
    assert_eq!(subscriber.uuid, stored.uuid);
    assert_eq!(subscriber.customer_id, stored.customer_id);
    assert_eq!(
        (subscriber.username.as_str(), subscriber.domain.as_str()),
        ("alice", DOMAIN)
    );

    let wrong = answer_proxy_challenge(&challenge, "alice", "guess");
    let outcome = fixture
        .authenticator
        .authenticate(&invite("alice", Some(&wrong)), source(), NOW)
        .await;
    assert!(
        matches!(outcome, AuthOutcome::Challenge(ref response) if response.status() == Some(407))
    );
}

async fn stale_nonce_is_challenged_with_stale_true(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("alice");
    let headers = [("Contact", "<sip:alice@192.0.2.1>")];
    let challenge = fixture
        .registrar
        .handle_register(&phone.request(&headers, None), source(), NOW)
        .await;
    let authorization = phone.answer(&challenge, DigestAlgorithm::Sha256);
    let lifetime = fixture.authenticator.policy().digest.nonce_lifetime_seconds;
    let late = fixture
        .registrar
        .handle_register(
            &phone.request(&headers, Some(&authorization)),
            source(),
            NOW + lifetime + 1,
        )
        .await;
    assert_eq!(late.status(), Some(401));
    assert!(
        challenges(&late).iter().all(|challenge| challenge.stale),
        "stale=true: the password was right"
    );
}

async fn a_nonce_only_works_from_the_address_it_was_issued_to(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("alice");
    let headers = [("Contact", "<sip:alice@192.0.2.1>")];
    let challenge = fixture
        .registrar
        .handle_register(&phone.request(&headers, None), source(), NOW)
        .await;
    let authorization = phone.answer(&challenge, DigestAlgorithm::Sha256);
    let elsewhere: SocketAddr = "127.0.0.9:5070".parse().unwrap();
    let response = fixture
        .registrar
        .handle_register(
            &phone.request(&headers, Some(&authorization)),
            elsewhere,
            NOW,
        )
        .await;
    assert_eq!(response.status(), Some(401));
    assert!(
        challenges(&response)
            .iter()
            .all(|challenge| !challenge.stale)
    );
}

async fn a_replayed_authorization_is_not_accepted(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let mut phone = Phone::new("alice");
    let headers = [("Contact", "<sip:alice@192.0.2.1>")];
    let challenge = fixture
        .registrar
        .handle_register(&phone.request(&headers, None), source(), NOW)
        .await;
    let authorization = phone.answer(&challenge, DigestAlgorithm::Sha256);
    let ok = fixture
        .registrar
        .handle_register(
            &phone.request(&headers, Some(&authorization)),
            source(),
            NOW,
        )
        .await;
    assert_eq!(ok.status(), Some(200));
    // An eavesdropper resends the same credentials (same nonce and nonce-count) later.
    let replay = fixture
        .registrar
        .handle_register(
            &phone.request(&headers, Some(&authorization)),
            source(),
            NOW + 5,
        )
        .await;
    assert_eq!(replay.status(), Some(401));
}

on_both_backends!(
    the_digest_algorithms_preference_chooses_the_challenges,
    calls_are_challenged_with_407_and_identify_the_caller,
    stale_nonce_is_challenged_with_stale_true,
    a_nonce_only_works_from_the_address_it_was_issued_to,
    a_replayed_authorization_is_not_accepted,
);

/// MD5 alone unless a preference asks for more; the subscriber's preference beats the
/// domain's; an answer with an algorithm that was not offered is refused.
async fn the_digest_algorithms_preference_chooses_the_challenges(db: TestDb) {
    let fixture = fixture(db, RegistrarConfig::default()).await;
    let store = &fixture.db.store;
    let offered = |response: &Message| {
        challenges(response)
            .iter()
            .map(|challenge| challenge.algorithm)
            .collect::<Vec<_>>()
    };
    let register = |phone: &mut Phone| phone.request(&[("Contact", "<sip:alice@192.0.2.1>")], None);
    let domain = store.find_domain_by_name(DOMAIN).await.unwrap().unwrap();
    // The fixture's domain offers SHA-256 first; without a preference: MD5 alone.
    store
        .delete_preference(PreferenceLevel::Domain, domain.id, "digest_algorithms")
        .await
        .unwrap();
    let mut phone = Phone::new("alice");
    let challenge = fixture
        .registrar
        .handle_register(&register(&mut phone), source(), NOW)
        .await;
    assert_eq!(offered(&challenge), [DigestAlgorithm::Md5]);
    // A user nobody provisioned is challenged as the domain's users are.
    let stranger = fixture
        .registrar
        .handle_register(&register(&mut Phone::new("nobody")), source(), NOW)
        .await;
    assert_eq!(offered(&stranger), [DigestAlgorithm::Md5]);

    // alice alone asks for SHA-256: her challenge offers it, bob's does not.
    let alice = store
        .find_subscriber("alice", DOMAIN)
        .await
        .unwrap()
        .unwrap();
    store
        .set_preference(
            PreferenceLevel::Subscriber,
            alice.id,
            "digest_algorithms",
            &serde_json::json!("SHA-256"),
        )
        .await
        .unwrap();
    let mut phone = Phone::new("alice");
    let challenge = fixture
        .registrar
        .handle_register(&register(&mut phone), source(), NOW)
        .await;
    assert_eq!(offered(&challenge), [DigestAlgorithm::Sha256]);
    let bob = fixture
        .registrar
        .handle_register(&register(&mut Phone::new("bob")), source(), NOW)
        .await;
    assert_eq!(offered(&bob), [DigestAlgorithm::Md5]);

    // An MD5 answer to alice's SHA-256-only challenge does not pass, the SHA-256 one does.
    let mut md5_offer = challenge.clone();
    md5_offer.remove_header(&HeaderName::WwwAuthenticate);
    let sha256 = challenges(&challenge).remove(0);
    let md5_challenge = DigestChallenge {
        algorithm: DigestAlgorithm::Md5,
        ..sha256
    };
    md5_offer.add_header(
        HeaderName::WwwAuthenticate,
        md5_challenge.to_header_value().unwrap(),
    );
    let downgraded = phone.answer(&md5_offer, DigestAlgorithm::Md5);
    let refused = fixture
        .registrar
        .handle_register(
            &phone.request(&[("Contact", "<sip:alice@192.0.2.1>")], Some(&downgraded)),
            source(),
            NOW,
        )
        .await;
    assert_eq!(refused.status(), Some(401));
    let authorization = phone.answer(&challenge, DigestAlgorithm::Sha256);
    let ok = fixture
        .registrar
        .handle_register(
            &phone.request(
                &[("Contact", "<sip:alice@192.0.2.1>")],
                Some(&authorization),
            ),
            source(),
            NOW,
        )
        .await;
    assert_eq!(ok.status(), Some(200));
}
