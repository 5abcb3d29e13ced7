//! Properties where the dialog rules combine: CSeq order over any request sequence and any
//! delivery order, the two sides' views of one dialog, where requests go for any route set,
//! which responses end a dialog, and the glare back-off windows; and the offer/answer flows
//! where reliable provisional responses, 2xx and ACK meet.

mod dialog_support;

use std::time::{Duration, Instant};

use dialog_support::*;
use proptest::prelude::*;
use sip_core::dialog::{
    Dialog, DialogError, DialogState, FailureEffect, InDialog, OfferState, ResponseOutcome,
    failure_effect, glare_retry_delay,
};
use sip_message::{HeaderName, Message, Method, NameAddr};

/// What Alice does next in the call.
#[derive(Debug, Clone)]
enum Step {
    Plain(Method),
    /// A re-INVITE, answered 200 (with SDP when `offer`) and acknowledged.
    Reinvite {
        offer: bool,
    },
    /// A request from Bob instead.
    FromBob(Method),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        prop::sample::select(vec![
            Method::Info,
            Method::Options,
            Method::Message,
            Method::Update
        ])
        .prop_map(Step::Plain),
        any::<bool>().prop_map(|offer| Step::Reinvite { offer }),
        prop::sample::select(vec![Method::Info, Method::Update]).prop_map(Step::FromBob),
    ]
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]{1,16}"
}

/// Record-Route values top first, as the UAS sees them; `strict` ones lack `lr`.
fn record_route() -> impl Strategy<Value = Vec<(String, bool)>> {
    prop::collection::vec(("[a-z]{1,8}", any::<bool>()), 0..5).prop_map(|hops| {
        hops.into_iter()
            .enumerate()
            .map(|(index, (name, strict))| (format!("{name}{index}.example.net"), strict))
            .collect()
    })
}

fn uri_of(value: &[u8]) -> String {
    text(NameAddr::parse(value, &HeaderName::Route).unwrap().uri.raw)
}

/// The URIs a request visits, in order: its Route URIs then the Request-URI when the first
/// hop is a loose router, the Request-URI (a strict router) then the Routes otherwise.
fn path(request: &Message, remote_target: &str) -> Vec<String> {
    let request_uri = text(request.request_uri_bytes().unwrap());
    let routes: Vec<String> = request
        .header_values(&HeaderName::Route)
        .map(uri_of)
        .collect();
    if request_uri == remote_target {
        routes.into_iter().chain([request_uri]).collect()
    } else {
        [request_uri].into_iter().chain(routes).collect()
    }
}

proptest! {
    /// Whatever Alice and Bob send, each side's CSeq goes up by exactly one per request (the
    /// ACK reuses its INVITE's), and the peer accepts every request in order.
    #[test]
    fn cseq_is_contiguous_and_accepted_in_order(steps in prop::collection::vec(step(), 1..24)) {
        let now = Instant::now();
        let (mut alice, mut bob) = call(&[], now);
        let mut alice_numbers = vec![1];
        let mut bob_numbers = Vec::new();
        for step in steps {
            match step {
                Step::Plain(method) => {
                    let request = wire(&alice.request(method, None).unwrap());
                    alice_numbers.push(request.cseq().unwrap().number);
                    let accepted = bob.receive_request(&request);
                    prop_assert!(matches!(accepted, Ok(InDialog::Request { .. })), "{:?}", accepted);
                    let ok = wire(&bob.respond(now, &request, 200, "OK", None));
                    prop_assert_eq!(alice.receive_response(&ok).unwrap(), ResponseOutcome::Success);
                }
                Step::Reinvite { offer } => {
                    let body = if offer { sdp(7) } else { None };
                    let reinvite = wire(&alice.request(Method::Invite, body).unwrap());
                    let number = reinvite.cseq().unwrap().number;
                    alice_numbers.push(number);
                    prop_assert!(bob.receive_request(&reinvite).is_ok());
                    let ok = wire(&bob.respond(now, &reinvite, 200, "OK", sdp(8)));
                    prop_assert_eq!(alice.receive_response(&ok).unwrap(), ResponseOutcome::Success);
                    // No offer in the re-INVITE: the 2xx offered, the ACK answers.
                    let answer = if offer { None } else { sdp(9) };
                    let ack = wire(&alice.ack_for_2xx(&ok, answer).unwrap());
                    prop_assert_eq!(ack.cseq().unwrap().number, number);
                    prop_assert_eq!(bob.receive_request(&ack).unwrap(), InDialog::Ack { cseq: number });
                }
                Step::FromBob(method) => {
                    let request = wire(&bob.request(method, None).unwrap());
                    bob_numbers.push(request.cseq().unwrap().number);
                    prop_assert!(alice.receive_request(&request).is_ok());
                    let ok = wire(&alice.respond(now, &request, 200, "OK", None));
                    prop_assert_eq!(bob.receive_response(&ok).unwrap(), ResponseOutcome::Success);
                }
            }
            prop_assert!(!alice.invite_session().invite_in_progress());
            prop_assert!(!bob.invite_session().invite_in_progress());
        }
        let expected: Vec<u32> = (1..=alice_numbers.len() as u32).collect();
        prop_assert_eq!(&alice_numbers, &expected);
        let expected: Vec<u32> = (1..=bob_numbers.len() as u32).collect();
        prop_assert_eq!(&bob_numbers, &expected);
        prop_assert_eq!(bob.remote_seq(), alice.local_seq());
        prop_assert_eq!(alice.remote_seq(), bob.local_seq());
    }

    /// Requests delivered in any order: each is accepted exactly when its CSeq is not below
    /// the highest accepted so far, and refused with a plain 500 otherwise (§12.2.2).
    #[test]
    fn reordered_requests_are_refused_exactly_when_older(order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle()) {
        let (mut alice, mut bob) = call(&[], Instant::now());
        let sent: Vec<Message> = (0..12)
            .map(|_| wire(&alice.request(Method::Info, None).unwrap()))
            .collect();
        let mut highest = 1;
        for index in order {
            let request = &sent[index];
            let number = request.cseq().unwrap().number;
            match bob.receive_request(request) {
                Ok(_) => {
                    prop_assert!(number >= highest);
                    highest = number;
                }
                Err(rejection) => {
                    prop_assert!(number < highest);
                    prop_assert_eq!((rejection.status, rejection.retry_after), (500, false));
                }
            }
            prop_assert_eq!(bob.remote_seq(), Some(highest));
        }
    }

    /// The dialog Bob builds from the INVITE and the one Alice builds from Bob's answer are
    /// the same dialog seen from both ends, and each side's requests visit the other's route
    /// set in its own direction, ending at the other's Contact.
    #[test]
    fn both_ends_agree_on_the_dialog_and_its_path(
        call_id in token(),
        alice_tag in token(),
        bob_tag in token(),
        cseq in 1u32..(1 << 31),
        hops in record_route(),
        early in any::<bool>(),
    ) {
        let values: Vec<String> = hops
            .iter()
            .map(|(host, strict)| if *strict { format!("<sip:{host}>") } else { format!("<sip:{host};lr>") })
            .collect();
        let value_refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let invite = invite_with(&format!("{call_id}@192.0.2.10"), &alice_tag, cseq, &value_refs, true);
        let mut bob = Dialog::from_uas_request(&invite, bob_tag.clone(), BOB_CONTACT).unwrap();
        let status = if early { 180 } else { 200 };
        let answer = wire(&bob.respond(Instant::now(), &invite, status, "Answer", None));
        let mut alice = Dialog::from_uac_response(&invite, &answer).unwrap();

        prop_assert_eq!(alice.id(), &bob.id().reversed());
        prop_assert_eq!(alice.local_uri(), bob.remote_uri());
        prop_assert_eq!(alice.remote_uri(), bob.local_uri());
        prop_assert_eq!(alice.remote_target(), BOB_URI);
        prop_assert_eq!(bob.remote_target(), ALICE_URI);
        prop_assert_eq!(alice.state(), bob.state());
        prop_assert_eq!(alice.state() == DialogState::Early, early);
        let mut reversed = bob.route_set().to_vec();
        reversed.reverse();
        prop_assert_eq!(alice.route_set(), &reversed[..]);

        let hosts: Vec<String> = hops.iter().map(|(host, strict)| {
            if *strict { format!("sip:{host}") } else { format!("sip:{host};lr") }
        }).collect();
        // An early dialog lets the caller send UPDATE; a confirmed one anything.
        let from_alice = alice.request(Method::Update, None).unwrap();
        let expected: Vec<String> = hosts.iter().rev().cloned().chain([BOB_URI.to_owned()]).collect();
        prop_assert_eq!(path(&from_alice, BOB_URI), expected.clone());
        prop_assert_eq!(text(&alice.next_hop()), expected[0].clone());
        prop_assert_eq!(from_alice.call_id().unwrap(), bob.id().call_id.as_ref());
        prop_assert_eq!(from_alice.cseq().unwrap().number, cseq + 1);
        prop_assert!(bob.receive_request(&wire(&from_alice)).is_ok());

        let from_bob = bob.request(Method::Update, None).unwrap();
        let expected: Vec<String> = hosts.iter().cloned().chain([ALICE_URI.to_owned()]).collect();
        prop_assert_eq!(path(&from_bob, ALICE_URI), expected.clone());
        prop_assert_eq!(text(&bob.next_hop()), expected[0].clone());
        prop_assert!(alice.receive_request(&wire(&from_bob)).is_ok());
    }

    /// A final failure to a request inside the dialog ends it exactly when RFC 5057 says the
    /// dialog or its (only) usage is gone; 491 never ends it.
    #[test]
    fn only_the_rfc_5057_failures_end_the_dialog(status in 300u16..700, reinvite in any::<bool>()) {
        let (mut alice, mut bob) = call(&[], Instant::now());
        let method = if reinvite { Method::Invite } else { Method::Info };
        let request = wire(&alice.request(method, None).unwrap());
        bob.receive_request(&request).unwrap();
        let response = wire(&bob.respond(Instant::now(), &request, status, "Failure", None));
        let outcome = alice.receive_response(&response).unwrap();
        let ends = failure_effect(status) != FailureEffect::TransactionOnly;
        if status == 491 && reinvite {
            prop_assert_eq!(outcome, ResponseOutcome::RequestPending);
            prop_assert_eq!(alice.state(), DialogState::Confirmed);
        } else {
            prop_assert_eq!(outcome, ResponseOutcome::Failure { status, terminated: ends });
            prop_assert_eq!(alice.state() == DialogState::Terminated, ends);
        }
        prop_assert!(!alice.invite_session().invite_in_progress());
        prop_assert!(!bob.invite_session().invite_in_progress());
    }

    /// The §14.1 back-off: 2.1–4 s for the Call-ID's owner, 0–2 s for the other side, in
    /// 10 ms steps, counted from the instant given.
    #[test]
    fn glare_back_off_stays_in_its_window(random in any::<u32>(), offset_ms in 0u64..100_000) {
        let (mut alice, mut bob) = call(&[], Instant::now());
        let now = Instant::now() + Duration::from_millis(offset_ms);
        for (dialog, low, high) in [(&mut alice, 2100, 4000), (&mut bob, 0, 2000)] {
            let reinvite = wire(&dialog.request(Method::Invite, None).unwrap());
            let pending = wire(&sip_core::transaction::make_response(&reinvite, 491, "Request Pending", None));
            prop_assert_eq!(dialog.receive_response(&pending).unwrap(), ResponseOutcome::RequestPending);
            let at = dialog.schedule_glare_retry(now, random).unwrap();
            let delay = (at - now).as_millis();
            prop_assert!((low..=high).contains(&delay), "{} not in {}..={}", delay, low, high);
            prop_assert_eq!(delay % 10, 0);
            prop_assert_eq!(at - now, glare_retry_delay(dialog.is_call_id_owner(), random));
        }
    }
}

#[test]
fn a_2xx_repeating_the_answer_of_a_reliable_1xx_is_no_new_offer() {
    let start = Instant::now();
    let invite = invite(&[]);
    let mut bob = Dialog::from_uas_request(&invite, BOB_TAG, BOB_CONTACT).unwrap();
    assert_eq!(bob.invite_session().offer_state(), OfferState::RemoteOffer);
    let progress = wire(
        &bob.respond_reliably(start, &invite, 183, "Session Progress", sdp(1), 5)
            .unwrap(),
    );
    assert_eq!(bob.invite_session().offer_state(), OfferState::Idle);
    let mut alice = Dialog::from_uac_response(&invite, &progress).unwrap();
    assert_eq!(alice.invite_session().offer_state(), OfferState::Idle);
    let prack = wire(&alice.prack(&progress, None).unwrap());
    assert!(matches!(
        bob.receive_request(&prack),
        Ok(InDialog::Prack { .. })
    ));
    // The 2xx carries the same SDP again (RFC 3262 §5): still no offer outstanding.
    let ok = wire(&bob.respond(start, &invite, 200, "OK", sdp(1)));
    assert_eq!(bob.invite_session().offer_state(), OfferState::Idle);
    assert_eq!(
        alice.receive_response(&ok).unwrap(),
        ResponseOutcome::Success
    );
    assert_eq!(alice.invite_session().offer_state(), OfferState::Idle);
    let ack = wire(&alice.ack_for_2xx(&ok, None).unwrap());
    assert_eq!(
        bob.receive_request(&ack).unwrap(),
        InDialog::Ack { cseq: 1 }
    );
    assert_eq!(bob.invite_session().offer_state(), OfferState::Idle);
    // So a new offer may go out at once.
    let update = wire(&alice.request(Method::Update, sdp(2)).unwrap());
    assert!(bob.receive_request(&update).is_ok());
}

#[test]
fn an_offer_in_the_2xx_is_answered_in_the_ack() {
    let start = Instant::now();
    let invite = invite_with(CALL_ID, ALICE_TAG, 1, &[], false);
    let (mut alice, mut bob, ok) = call_with(&invite, start);
    assert_eq!(bob.invite_session().offer_state(), OfferState::LocalOffer);
    assert_eq!(
        alice.invite_session().offer_state(),
        OfferState::RemoteOffer
    );
    assert_eq!(
        alice.request(Method::Update, sdp(5)).unwrap_err(),
        DialogError::OfferPending
    );
    let ack = wire(&alice.ack_for_2xx(&ok, sdp(2)).unwrap());
    assert_eq!(alice.invite_session().offer_state(), OfferState::Idle);
    bob.receive_request(&ack).unwrap();
    assert_eq!(bob.invite_session().offer_state(), OfferState::Idle);
}
