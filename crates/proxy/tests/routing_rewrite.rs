//! Rewrite rules on calls: the caller's `callee_in` rules (the `rewrite_rule_set` preference)
//! turn national and local dialling into E.164 before the callee is looked up, as C5's dialplan
//! does on the way in. Real UDP on 127.0.0.1, SQLite in a temporary directory.

mod routing_support;

use routing_support::*;
use sip_message::Method;
use store::{
    NewRewriteRule, NewRewriteRuleSet, PreferenceLevel, PreferenceRepository, RewriteDirection,
    RewriteField, RewriteRuleRepository, SubscriberRepository,
};

/// A rule set for Vienna (cc 43, ac 111): national `0…` and local three-digit dialling.
async fn vienna_rules(platform: &Platform) -> i64 {
    let store = &platform.store;
    let set = store
        .create_rewrite_rule_set(&NewRewriteRuleSet {
            name: "vienna".to_owned(),
            description: None,
        })
        .await
        .unwrap();
    for (priority, match_pattern, replace_pattern) in [
        (10, "^0([1-9][0-9]+)$", r"${caller_cc}\1"),
        (20, "^([0-9]{3})$", r"${caller_cc}${caller_ac}\1"),
    ] {
        store
            .create_rewrite_rule(&NewRewriteRule {
                set_id: set.id,
                match_pattern: match_pattern.to_owned(),
                replace_pattern: replace_pattern.to_owned(),
                description: String::new(),
                direction: RewriteDirection::In,
                field: RewriteField::Callee,
                priority,
                enabled: true,
            })
            .await
            .unwrap();
    }
    set.id
}

/// Calls `dialled` from alice: the Request-URI bob's phone got, or the final status alice got
/// instead.
async fn dial(alice: &Phone, bob: &Phone, dialled: &str) -> Result<String, u16> {
    let mut call = Call::new("alice", &uri(dialled));
    call.invite_authenticated(alice, "alice").await;
    let reached = tokio::select! {
        invite = bob.receive_request(Method::Invite) => {
            bob.answer(&invite, 486, "Busy Here", "bob").await;
            let busy = alice.receive_response(486).await;
            alice.send(call.ack_for(&busy, alice)).await;
            // The proxy's own ACK of the 486 (RFC 3261 §17.1.1.3).
            bob.receive_request(Method::Ack).await;
            Ok(String::from_utf8_lossy(invite.request_uri_bytes().unwrap_or_default()).into_owned())
        }
        answer = final_response(alice) => {
            let status = answer.status().unwrap_or(0);
            alice.send(call.ack_for(&answer, alice)).await;
            Err(status)
        }
    };
    reached
}

/// The next final response `phone` receives (provisional ones are skipped).
async fn final_response(phone: &Phone) -> sip_message::Message {
    loop {
        let message = phone.receive().await;
        if message.status().is_some_and(|status| status >= 200) {
            return message;
        }
    }
}

#[tokio::test]
async fn national_and_local_dialling_reach_the_subscriber_with_that_number() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let bob = Phone::new(&platform.proxy).await;
    platform.register("bob", &bob).await;
    // Without rules, "0111002" is no one's number.
    assert_eq!(dial(&alice, &bob, "0111002").await, Err(404));

    let set = vienna_rules(&platform).await;
    let alice_row = platform
        .store
        .find_subscriber("alice", DOMAIN)
        .await
        .unwrap()
        .expect("alice");
    platform
        .store
        .set_preference(
            PreferenceLevel::Subscriber,
            alice_row.id,
            "rewrite_rule_set",
            &serde_json::json!("vienna"),
        )
        .await
        .unwrap();
    assert!(set > 0);
    // The preference counts within a second (the proxy rechecks whether any exists at most
    // once a second): the first call after it may still miss, so probe until one lands.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match dial(&alice, &bob, "0111002").await {
            Ok(request_uri) => {
                assert!(request_uri.starts_with("sip:bob@"), "{request_uri}");
                break;
            }
            Err(404) if tokio::time::Instant::now() < deadline => {}
            other => panic!("national dialling: {other:?}"),
        }
    }
    // Local dialling takes the caller's area code; an unmatched number is left alone.
    assert!(dial(&alice, &bob, "002").await.is_ok());
    assert_eq!(dial(&alice, &bob, "+999").await, Err(404));
    // An international prefix the set has no rule for stays as dialled.
    assert_eq!(dial(&alice, &bob, "00043111002").await, Err(404));
}
