//! One test per dialog rule (RFC 3261 §12–§15, RFC 3262, RFC 3311, RFC 5057), each driving two
//! dialogs — Alice's (UAC of the INVITE) and Bob's (UAS) — through the public API.

mod dialog_support;

use std::time::{Duration, Instant};

use dialog_support::*;
use sip_core::dialog::{
    Dialog, DialogError, DialogEvent, DialogSet, DialogState, InDialog, OfferState, Rejection,
    ResponseOutcome, Role, TerminationReason,
};
use sip_core::transaction::{make_response, make_timeout_response};
use sip_message::{HeaderName, Message, Method};

const LOOSE: [&str; 2] = ["<sip:p2.example.net;lr>", "<sip:p1.example.com;lr>"];

fn response_to(dialog: &mut Dialog, request: &Message, status: u16) -> Message {
    wire(&dialog.respond(Instant::now(), request, status, "Test", None))
}

#[test]
fn the_uac_reverses_record_route_and_the_uas_keeps_its_order() {
    let (mut alice, mut bob) = call(&LOOSE, Instant::now());
    assert_eq!(
        alice.route_set(),
        ["<sip:p1.example.com;lr>", "<sip:p2.example.net;lr>"]
    );
    assert_eq!(bob.route_set(), LOOSE);
    // Loose routing: Request-URI is the remote target, Route the whole set.
    let info = alice.request(Method::Info, None).unwrap();
    assert_eq!(info.request_uri_bytes(), Some(BOB_URI.as_bytes()));
    assert_eq!(
        routes(&info),
        ["<sip:p1.example.com;lr>", "<sip:p2.example.net;lr>"]
    );
    assert_eq!(alice.next_hop(), "sip:p1.example.com;lr");
    let info = bob.request(Method::Info, None).unwrap();
    assert_eq!(info.request_uri_bytes(), Some(ALICE_URI.as_bytes()));
    assert_eq!(routes(&info), LOOSE);
}

#[test]
fn a_strict_router_becomes_the_request_uri_and_the_target_the_last_route() {
    let record_route = [
        "<sip:p2.example.net;lr>",
        "<sip:strict.example.com;method=INVITE>",
    ];
    let (mut alice, _) = call(&record_route, Instant::now());
    let bye = alice.request(Method::Bye, None).unwrap();
    assert_eq!(
        bye.request_uri_bytes(),
        Some(&b"sip:strict.example.com"[..])
    );
    assert_eq!(routes(&bye), ["<sip:p2.example.net;lr>", BOB_CONTACT]);
    assert_eq!(alice.next_hop(), "sip:strict.example.com;method=INVITE");
}

#[test]
fn requests_carry_the_dialog_identity_and_the_next_cseq() {
    let (mut alice, mut bob) = call(&[], Instant::now());
    let mut numbers = Vec::new();
    for method in [
        Method::Info,
        Method::Options,
        Method::Update,
        Method::Message,
    ] {
        let request = alice.request(method.clone(), None).unwrap();
        let cseq = request.cseq().unwrap();
        assert_eq!(cseq.method, method);
        numbers.push(cseq.number);
        assert_eq!(request.call_id().unwrap(), CALL_ID.as_bytes());
        assert_eq!(request.from().unwrap().tag(), Some(ALICE_TAG.as_bytes()));
        assert_eq!(request.to().unwrap().tag(), Some(BOB_TAG.as_bytes()));
        assert_eq!(
            request.from().unwrap().display_name,
            Some(&b"\"Alice\""[..])
        );
        assert_eq!(request.max_forwards().unwrap(), Some(70));
        // Contact only in target refresh requests.
        assert_eq!(
            request.has_header(&HeaderName::Contact),
            method == Method::Update
        );
        assert!(matches!(
            bob.receive_request(&wire(&request)),
            Ok(InDialog::Request { .. })
        ));
    }
    assert_eq!(numbers, [2, 3, 4, 5], "the INVITE had 1");
    assert_eq!(alice.local_seq(), Some(5));
    assert_eq!(bob.remote_seq(), Some(5));
    // The UAS had no local sequence number: its first request starts one.
    assert_eq!(bob.local_seq(), None);
    assert_eq!(
        bob.request(Method::Info, None)
            .unwrap()
            .cseq()
            .unwrap()
            .number,
        1
    );
}

#[test]
fn a_request_older_than_the_remote_cseq_gets_500() {
    let (mut alice, mut bob) = call(&[], Instant::now());
    let first = wire(&alice.request(Method::Info, None).unwrap());
    let second = wire(&alice.request(Method::Info, None).unwrap());
    assert!(bob.receive_request(&second).is_ok());
    let rejection = bob.receive_request(&first).unwrap_err();
    assert_eq!((rejection.status, rejection.retry_after), (500, false));
    let response = rejection.response(&first, 0);
    assert_eq!(response.status(), Some(500));
    assert_eq!(response.cseq().unwrap().number, 2);
    // Gaps are fine: only lower numbers are out of order (§12.2.2).
    alice.request(Method::Options, None).unwrap();
    let fourth = wire(&alice.request(Method::Info, None).unwrap());
    assert!(bob.receive_request(&fourth).is_ok());
    assert_eq!(bob.remote_seq(), Some(5));
}

#[test]
fn a_2xx_to_a_target_refresh_moves_the_remote_target_both_ways() {
    let (mut alice, mut bob) = call(&[], Instant::now());
    // Bob moves and re-INVITEs: Alice takes the new Contact when she answers 2xx.
    bob.set_local_contact("<sip:bob@203.0.113.5:5090>");
    let reinvite = wire(&bob.request(Method::Invite, sdp(2)).unwrap());
    let received = alice.receive_request(&reinvite).unwrap();
    assert_eq!(
        received,
        InDialog::Request {
            method: Method::Invite,
            cseq: 1,
            target_refresh: true
        }
    );
    assert_eq!(alice.remote_target(), BOB_URI, "not before the 2xx");
    let ok = response_to(&mut alice, &reinvite, 200);
    assert_eq!(alice.remote_target(), "sip:bob@203.0.113.5:5090");
    assert_eq!(ok.contacts().count(), 1);
    assert_eq!(bob.receive_response(&ok).unwrap(), ResponseOutcome::Success);
    // Alice UPDATEs; Bob answers from yet another Contact; Alice follows.
    let update = wire(&alice.request(Method::Update, None).unwrap());
    bob.receive_request(&update).unwrap();
    bob.set_local_contact("<sip:bob@203.0.113.6>");
    let ok = response_to(&mut bob, &update, 200);
    assert_eq!(
        alice.receive_response(&ok).unwrap(),
        ResponseOutcome::Success
    );
    assert_eq!(alice.remote_target(), "sip:bob@203.0.113.6");
    // INFO is no target refresh: a Contact in its 2xx changes nothing.
    let info = wire(&alice.request(Method::Info, None).unwrap());
    let mut ok = response_to(&mut bob, &info, 200);
    ok.add_header(HeaderName::Contact, "<sip:elsewhere@192.0.2.200>");
    alice.receive_response(&wire(&ok)).unwrap();
    assert_eq!(alice.remote_target(), "sip:bob@203.0.113.6");
}

#[test]
fn a_failed_target_refresh_keeps_the_old_target() {
    let (mut alice, mut bob) = call(&[], Instant::now());
    bob.set_local_contact("<sip:bob@203.0.113.5>");
    let reinvite = wire(&bob.request(Method::Invite, None).unwrap());
    alice.receive_request(&reinvite).unwrap();
    let refused = response_to(&mut alice, &reinvite, 488);
    assert_eq!(alice.remote_target(), BOB_URI);
    assert!(!alice.invite_session().invite_in_progress());
    assert_eq!(
        bob.receive_response(&refused).unwrap(),
        ResponseOutcome::Failure {
            status: 488,
            terminated: false
        }
    );
    assert_eq!(bob.state(), DialogState::Confirmed);
}

#[test]
fn an_early_dialog_from_a_1xx_is_confirmed_by_the_2xx() {
    let invite = invite(&["<sip:p1.example.com;lr>"]);
    let mut bob = Dialog::from_uas_request(&invite, BOB_TAG, BOB_CONTACT).unwrap();
    assert_eq!(bob.state(), DialogState::Early);
    let ringing = response_to(&mut bob, &invite, 180);
    assert_eq!(ringing.to().unwrap().tag(), Some(BOB_TAG.as_bytes()));
    assert_eq!(
        text(ringing.header(&HeaderName::RecordRoute).unwrap()),
        "<sip:p1.example.com;lr>"
    );
    let mut alice = Dialog::from_uac_response(&invite, &ringing).unwrap();
    assert_eq!(alice.state(), DialogState::Early);
    assert_eq!(alice.role(), Role::Uac);
    assert!(alice.invite_session().invite_in_progress());
    assert_eq!(
        alice.request(Method::Invite, None).unwrap_err(),
        DialogError::NotAllowed {
            method: Method::Invite,
            why: "no re-INVITE before the dialog is confirmed"
        }
    );
    // The 2xx passed a second record-routing proxy: §13.2.2.4 recomputes the route set.
    let mut ok = bob.respond(Instant::now(), &invite, 200, "OK", sdp(1));
    ok.add_header_first(HeaderName::RecordRoute, "<sip:p0.example.org;lr>");
    assert_eq!(
        alice.receive_response(&wire(&ok)).unwrap(),
        ResponseOutcome::Success
    );
    assert_eq!(alice.state(), DialogState::Confirmed);
    assert_eq!(bob.state(), DialogState::Confirmed);
    assert_eq!(
        alice.route_set(),
        ["<sip:p1.example.com;lr>", "<sip:p0.example.org;lr>"]
    );
    assert_eq!(alice.invite_session().offer_state(), OfferState::Idle);
}

#[test]
fn forked_early_dialogs_end_when_one_fork_answers() {
    let invite = invite(&[]);
    let mut set = DialogSet::new();
    let fork = |tag: &str, status: u16| {
        let mut dialog = Dialog::from_uas_request(&invite, tag.to_owned(), BOB_CONTACT).unwrap();
        wire(&dialog.respond(Instant::now(), &invite, status, "Fork", sdp(1)))
    };
    let trying = wire(&make_response(&invite, 100, "Trying", None));
    assert_eq!(set.receive_response(&invite, &trying).unwrap(), None);
    let first = set
        .receive_response(&invite, &fork("f1", 180))
        .unwrap()
        .unwrap();
    let second = set
        .receive_response(&invite, &fork("f2", 183))
        .unwrap()
        .unwrap();
    assert!(first.created && second.created);
    assert_eq!(set.len(), 2);
    let again = set
        .receive_response(&invite, &fork("f1", 180))
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.created, again.outcome),
        (false, ResponseOutcome::Provisional)
    );

    let answered = set
        .receive_response(&invite, &fork("f2", 200))
        .unwrap()
        .unwrap();
    assert_eq!(
        (answered.id.clone(), answered.outcome),
        (second.id.clone(), ResponseOutcome::Success)
    );
    assert_eq!(set.get(&second.id).unwrap().state(), DialogState::Confirmed);
    let loser = set.get_mut(&first.id).unwrap();
    assert_eq!(loser.state(), DialogState::Terminated);
    assert!(matches!(
        events(loser)[..],
        [DialogEvent::Terminated(TerminationReason::ForkNotChosen)]
    ));
    // The losing fork answers too: a new confirmed dialog to ACK and BYE (§13.2.2.4).
    let late = set
        .receive_response(&invite, &fork("f1", 200))
        .unwrap()
        .unwrap();
    assert_eq!(
        (late.created, late.outcome),
        (true, ResponseOutcome::AdditionalFork)
    );
    let late_dialog = set.get_mut(&late.id).unwrap();
    assert_eq!(late_dialog.state(), DialogState::Confirmed);
    let ok = fork("f1", 200);
    let ack = late_dialog.ack_for_2xx(&ok, None).unwrap();
    assert_eq!(ack.to().unwrap().tag(), Some(&b"f1"[..]));
    let bye = late_dialog.request(Method::Bye, None).unwrap();
    assert_eq!(bye.cseq().unwrap().number, 2);
    assert_eq!(set.remove_terminated(), vec![late.id]);
    assert_eq!(set.len(), 1);
}

#[test]
fn a_final_failure_ends_every_early_dialog_of_the_request() {
    let invite = invite(&[]);
    let mut set = DialogSet::new();
    for tag in ["f1", "f2"] {
        let mut dialog = Dialog::from_uas_request(&invite, tag, BOB_CONTACT).unwrap();
        let ringing = wire(&dialog.respond(Instant::now(), &invite, 180, "Ringing", None));
        set.receive_response(&invite, &ringing).unwrap();
    }
    let mut dialog = Dialog::from_uas_request(&invite, "f3", BOB_CONTACT).unwrap();
    let busy = wire(&dialog.respond(Instant::now(), &invite, 486, "Busy Here", None));
    assert_eq!(dialog.state(), DialogState::Terminated);
    assert_eq!(set.receive_response(&invite, &busy).unwrap(), None);
    for dialog in set.iter_mut() {
        assert_eq!(dialog.state(), DialogState::Terminated);
        assert!(matches!(
            events(dialog)[..],
            [DialogEvent::Terminated(TerminationReason::Rejected(486))]
        ));
    }
    assert_eq!(set.remove_terminated().len(), 2);
}

#[test]
fn bye_ends_the_dialog_on_both_sides() {
    let (mut alice, mut bob) = call(&LOOSE, Instant::now());
    let bye = wire(&alice.request(Method::Bye, None).unwrap());
    assert_eq!(alice.state(), DialogState::Terminated);
    assert!(matches!(
        events(&mut alice)[..],
        [DialogEvent::Terminated(TerminationReason::ByeSent)]
    ));
    assert_eq!(
        alice.request(Method::Info, None).unwrap_err(),
        DialogError::Terminated
    );
    assert_eq!(
        bob.receive_request(&bye).unwrap(),
        InDialog::Bye { cseq: 2 }
    );
    assert_eq!(bob.state(), DialogState::Terminated);
    assert!(matches!(
        events(&mut bob)[..],
        [DialogEvent::Terminated(TerminationReason::ByeReceived)]
    ));
    let ok = response_to(&mut bob, &bye, 200);
    assert_eq!(
        alice.receive_response(&ok).unwrap(),
        ResponseOutcome::Success
    );
    // Anything after it gets 481.
    let mut late = bye.clone();
    late.replace_header(HeaderName::CSeq, "3 BYE");
    assert_eq!(
        bob.receive_request(&wire(&late)).unwrap_err(),
        Rejection {
            status: 481,
            reason: "Call/Transaction Does Not Exist",
            retry_after: false
        }
    );
}

#[test]
fn the_callee_waits_for_the_ack_before_bye() {
    let invite = invite(&[]);
    let (_, mut bob, _) = call_with(&invite, Instant::now());
    assert!(matches!(
        bob.request(Method::Bye, None),
        Err(DialogError::NotAllowed { .. })
    ));
    bob.give_up_ack();
    assert!(bob.request(Method::Bye, None).is_ok());
    let mut early = Dialog::from_uas_request(&invite, BOB_TAG, BOB_CONTACT).unwrap();
    assert!(matches!(
        early.request(Method::Bye, None),
        Err(DialogError::NotAllowed { .. })
    ));
}

#[test]
fn responses_481_408_and_404_end_the_dialog_but_486_does_not() {
    for (status, ends) in [
        (481, true),
        (408, true),
        (404, true),
        (486, false),
        (500, false),
    ] {
        let (mut alice, mut bob) = call(&[], Instant::now());
        let info = wire(&alice.request(Method::Info, None).unwrap());
        bob.receive_request(&info).unwrap();
        let response = response_to(&mut bob, &info, status);
        assert_eq!(
            alice.receive_response(&response).unwrap(),
            ResponseOutcome::Failure {
                status,
                terminated: ends
            },
            "{status}"
        );
        assert_eq!(alice.state() == DialogState::Terminated, ends, "{status}");
        if ends {
            assert!(matches!(
                events(&mut alice)[..],
                [DialogEvent::Terminated(TerminationReason::ErrorResponse(code))] if code == status
            ));
        }
    }
    // A transaction timeout counts as a 408 (RFC 3261 §8.1.3.1).
    let (mut alice, _) = call(&[], Instant::now());
    let options = wire(&alice.request(Method::Options, None).unwrap());
    let timeout = make_timeout_response(&options);
    assert!(matches!(
        alice.receive_response(&timeout),
        Ok(ResponseOutcome::Failure {
            status: 408,
            terminated: true
        })
    ));
}

#[test]
fn an_unknown_dialog_gets_481() {
    let (mut alice, bob) = call(&[], Instant::now());
    let mut set = DialogSet::new();
    set.insert(bob);
    let info = wire(&alice.request(Method::Info, None).unwrap());
    assert!(matches!(
        set.receive_request(&info),
        Ok((_, InDialog::Request { .. }))
    ));
    let mut stranger = info.clone();
    stranger.replace_header(
        HeaderName::To,
        "<sip:bob@biloxi.example.com>;tag=someone-else",
    );
    let rejection = set.receive_request(&wire(&stranger)).unwrap_err();
    assert_eq!(rejection.status, 481);
    let response = rejection.response(&stranger, 7);
    assert_eq!(response.status(), Some(481));
    assert!(response.header(&HeaderName::RetryAfter).is_none());
}

#[test]
fn simultaneous_reinvites_get_491_and_back_off_by_call_id_ownership() {
    let (mut alice, mut bob) = call(&[], Instant::now());
    let from_alice = wire(&alice.request(Method::Invite, sdp(2)).unwrap());
    let from_bob = wire(&bob.request(Method::Invite, sdp(2)).unwrap());
    assert_eq!(
        alice.request(Method::Invite, None).unwrap_err(),
        DialogError::InviteInProgress
    );
    let at_bob = bob.receive_request(&from_alice).unwrap_err();
    let at_alice = alice.receive_request(&from_bob).unwrap_err();
    assert_eq!((at_bob.status, at_alice.status), (491, 491));
    let now = Instant::now();
    for (dialog, request, rejection, window) in [
        (&mut alice, &from_alice, at_bob, (2100, 4000)),
        (&mut bob, &from_bob, at_alice, (0, 2000)),
    ] {
        let pending = wire(&rejection.response(request, 0));
        assert_eq!(
            dialog.receive_response(&pending).unwrap(),
            ResponseOutcome::RequestPending
        );
        assert!(!dialog.invite_session().invite_in_progress());
        assert_eq!(
            dialog.invite_session().offer_state(),
            OfferState::Idle,
            "the offer was rejected"
        );
        let at = dialog.schedule_glare_retry(now, 12_345).unwrap();
        let delay = (at - now).as_millis();
        assert!(
            (window.0..=window.1).contains(&delay),
            "{delay} ms outside {window:?}"
        );
        assert_eq!(dialog.poll_timeout(), Some(at));
        dialog.handle_timeout(at - Duration::from_millis(1));
        assert!(dialog.poll_event().is_none());
        dialog.handle_timeout(at);
        assert!(matches!(
            dialog.poll_event(),
            Some(DialogEvent::RetryDue(Method::Invite))
        ));
        assert_eq!(
            dialog.schedule_glare_retry(now, 1).unwrap_err(),
            DialogError::NoGlare
        );
    }
}

#[test]
fn an_invite_overlapping_the_peers_unanswered_invite_gets_500_with_retry_after() {
    let (mut alice, mut bob) = call(&[], Instant::now());
    let first = wire(&alice.request(Method::Invite, None).unwrap());
    bob.receive_request(&first).unwrap();
    // Alice's own state would stop her; a broken peer sends anyway.
    let mut second = first.clone();
    second.replace_header(HeaderName::CSeq, "3 INVITE");
    let rejection = bob.receive_request(&wire(&second)).unwrap_err();
    assert_eq!((rejection.status, rejection.retry_after), (500, true));
    let response = rejection.response(&second, 25);
    assert_eq!(response.header(&HeaderName::RetryAfter), Some(&b"3"[..]));
}

#[test]
fn crossing_update_offers_get_491_and_an_update_without_offer_passes() {
    let (mut alice, mut bob) = call(&[], Instant::now());
    let from_alice = wire(&alice.request(Method::Update, sdp(3)).unwrap());
    assert_eq!(
        alice.request(Method::Update, sdp(4)).unwrap_err(),
        DialogError::OfferPending
    );
    let from_bob = wire(&bob.request(Method::Update, sdp(3)).unwrap());
    assert_eq!(bob.receive_request(&from_alice).unwrap_err().status, 491);
    assert_eq!(alice.receive_request(&from_bob).unwrap_err().status, 491);
    let refresh = wire(&alice.request(Method::Update, None).unwrap());
    assert!(
        bob.receive_request(&refresh).is_ok(),
        "a session refresh carries no offer"
    );
    let pending = wire(
        &Rejection {
            status: 491,
            reason: "Request Pending",
            retry_after: false,
        }
        .response(&from_alice, 0),
    );
    assert_eq!(
        alice.receive_response(&pending).unwrap(),
        ResponseOutcome::RequestPending
    );
    assert!(matches!(
        alice.invite_session().glare_pending(),
        Some(Method::Update)
    ));
}

#[test]
fn a_reliable_provisional_response_is_pracked_and_retransmitted_until_then() {
    let start = Instant::now();
    let invite = invite_with(CALL_ID, ALICE_TAG, 1, &[], false);
    let mut bob = Dialog::from_uas_request(&invite, BOB_TAG, BOB_CONTACT).unwrap();
    // INVITE without offer: the reliable 183 offers, the PRACK answers (RFC 3262 §5).
    let progress = bob
        .respond_reliably(start, &invite, 183, "Session Progress", sdp(1), 99)
        .unwrap();
    assert_eq!(bob.invite_session().unacknowledged_rseq(), Some(100));
    assert_eq!(bob.invite_session().offer_state(), OfferState::LocalOffer);
    assert_eq!(
        bob.respond_reliably(start, &invite, 180, "Ringing", None, 0)
            .unwrap_err(),
        DialogError::ReliableProvisionalPending
    );
    assert_eq!(bob.poll_timeout(), Some(start + Duration::from_millis(500)));
    bob.handle_timeout(start + Duration::from_millis(500));
    assert!(matches!(events(&mut bob)[..], [DialogEvent::Retransmit(_)]));

    let progress = wire(&progress);
    let mut alice = Dialog::from_uac_response(&invite, &progress).unwrap();
    assert_eq!(alice.state(), DialogState::Early);
    assert_eq!(
        alice.receive_response(&progress).unwrap(),
        ResponseOutcome::Ignored,
        "retransmission"
    );
    let prack = wire(&alice.prack(&progress, sdp(2)).unwrap());
    assert_eq!(prack.cseq().unwrap().number, 2);
    assert_eq!(prack.header(&HeaderName::RAck), Some(&b"100 1 INVITE"[..]));
    assert_eq!(
        alice.prack(&progress, None).unwrap_err(),
        DialogError::NotReliableProvisional
    );

    let mut wrong = prack.clone();
    wrong.replace_header(HeaderName::RAck, "101 1 INVITE");
    wrong.replace_header(HeaderName::CSeq, "2 PRACK");
    assert_eq!(bob.receive_request(&wire(&wrong)).unwrap_err().status, 481);
    assert_eq!(
        bob.receive_request(&prack).unwrap(),
        InDialog::Prack { cseq: 2, rseq: 100 }
    );
    assert_eq!(bob.invite_session().offer_state(), OfferState::Idle);
    assert_eq!(
        bob.poll_timeout(),
        None,
        "the PRACK stopped the retransmissions"
    );
    let next = wire(
        &bob.respond_reliably(start, &invite, 180, "Ringing", None, 0)
            .unwrap(),
    );
    assert_eq!(next.header(&HeaderName::RSeq), Some(&b"101"[..]));
    assert_eq!(
        alice.receive_response(&next).unwrap(),
        ResponseOutcome::ReliableProvisional { rseq: 101 }
    );
}

#[test]
fn no_prack_within_64_t1_is_reported() {
    let start = Instant::now();
    let invite = invite(&[]);
    let mut bob = Dialog::from_uas_request(&invite, BOB_TAG, BOB_CONTACT).unwrap();
    bob.respond_reliably(start, &invite, 180, "Ringing", None, 0)
        .unwrap();
    let mut retransmissions = 0;
    while let Some(at) = bob.poll_timeout() {
        bob.handle_timeout(at);
        for event in events(&mut bob) {
            match event {
                DialogEvent::Retransmit(_) => retransmissions += 1,
                DialogEvent::PrackTimeout { cseq } => {
                    assert_eq!((cseq, at - start), (1, Duration::from_secs(32)));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: doubling without the T2 cap.
    assert_eq!(retransmissions, 6);
}

#[test]
fn the_ack_reuses_the_invite_cseq_and_stops_the_2xx_retransmission() {
    let start = Instant::now();
    let invite = invite(&LOOSE);
    let (mut alice, mut bob, ok) = call_with(&invite, start);
    bob.handle_timeout(start + Duration::from_millis(500));
    let retransmitted = match &events(&mut bob)[..] {
        [DialogEvent::Retransmit(response)] => wire(response),
        other => panic!("expected a retransmission, got {other:?}"),
    };
    assert_eq!(
        alice.receive_response(&retransmitted).unwrap(),
        ResponseOutcome::SuccessRetransmission
    );
    let ack = wire(&alice.ack_for_2xx(&ok, None).unwrap());
    assert_eq!(ack.method(), Some(&Method::Ack));
    let cseq = ack.cseq().unwrap();
    assert_eq!((cseq.number, cseq.method), (1, Method::Ack));
    assert_eq!(
        routes(&ack),
        ["<sip:p1.example.com;lr>", "<sip:p2.example.net;lr>"]
    );
    assert_eq!(ack.request_uri_bytes(), Some(BOB_URI.as_bytes()));
    assert_eq!(alice.local_seq(), Some(1), "the ACK takes no new number");
    assert_eq!(
        bob.receive_request(&ack).unwrap(),
        InDialog::Ack { cseq: 1 }
    );
    assert_eq!(bob.poll_timeout(), None);
    assert_eq!(bob.receive_request(&ack).unwrap(), InDialog::StrayAck);
    assert!(
        alice.ack_for_2xx(&invite, None).is_err(),
        "an INVITE is no 2xx"
    );
}

#[test]
fn the_2xx_carries_record_route_contact_and_tag() {
    let invite = invite(&LOOSE);
    let (_, _, ok) = call_with(&invite, Instant::now());
    let record_route: Vec<String> = ok
        .header_values(&HeaderName::RecordRoute)
        .map(text)
        .collect();
    assert_eq!(record_route, LOOSE);
    assert_eq!(text(ok.header(&HeaderName::Contact).unwrap()), BOB_CONTACT);
    assert_eq!(ok.to().unwrap().tag(), Some(BOB_TAG.as_bytes()));
    assert_eq!(ok.content_type().unwrap().unwrap().subtype, b"sdp");
}

#[test]
fn both_sides_name_the_dialog_the_same_way_with_tags_swapped() {
    let (alice, bob) = call(&LOOSE, Instant::now());
    assert_eq!(alice.id(), &bob.id().reversed());
    assert_eq!(alice.local_uri(), bob.remote_uri());
    assert_eq!(alice.remote_uri(), bob.local_uri());
    assert!(alice.is_call_id_owner() && !bob.is_call_id_owner());
    assert!(!alice.is_secure());
}

#[test]
fn a_sips_request_uri_makes_the_dialog_secure() {
    let mut invite = invite(&[]);
    invite.set_request_uri("sips:bob@biloxi.example.com");
    let invite = wire(&invite);
    let (alice, bob, _) = call_with(&invite, Instant::now());
    assert!(alice.is_secure() && bob.is_secure());
}

#[test]
fn creating_a_dialog_needs_a_dialog_forming_request_and_a_tagged_answer() {
    let invite = invite(&[]);
    let mut bob = Dialog::from_uas_request(&invite, BOB_TAG, BOB_CONTACT).unwrap();
    let trying = wire(&make_response(&invite, 100, "Trying", None));
    assert_eq!(
        Dialog::from_uac_response(&invite, &trying).unwrap_err(),
        DialogError::NotDialogCreating(100)
    );
    let busy = response_to(&mut bob, &invite, 486);
    assert_eq!(
        Dialog::from_uac_response(&invite, &busy).unwrap_err(),
        DialogError::NotDialogCreating(486)
    );
    let message = String::from_utf8_lossy(&invite.to_bytes())
        .replacen("INVITE sip", "MESSAGE sip", 1)
        .replace("1 INVITE", "1 MESSAGE");
    let message = Message::parse(bytes::Bytes::from(message)).unwrap();
    assert_eq!(
        Dialog::from_uas_request(&message, BOB_TAG, BOB_CONTACT).unwrap_err(),
        DialogError::NotDialogForming(Method::Message)
    );
    let ok = response_to(
        &mut Dialog::from_uas_request(&invite, BOB_TAG, BOB_CONTACT).unwrap(),
        &invite,
        200,
    );
    let in_dialog = wire(
        &Dialog::from_uac_response(&invite, &ok)
            .unwrap()
            .request(Method::Invite, None)
            .unwrap(),
    );
    assert_eq!(
        Dialog::from_uas_request(&in_dialog, BOB_TAG, BOB_CONTACT).unwrap_err(),
        DialogError::AlreadyInDialog
    );
}

#[test]
fn the_200_to_a_cancel_concerns_no_dialog() {
    let invite = invite(&[]);
    let mut set = DialogSet::new();
    let mut bob = Dialog::from_uas_request(&invite, BOB_TAG, BOB_CONTACT).unwrap();
    let ringing = wire(&bob.respond(Instant::now(), &invite, 180, "Ringing", None));
    set.receive_response(&invite, &ringing).unwrap();
    let cancel = wire(&sip_core::transaction::make_cancel(&invite));
    let ok = wire(&make_response(&cancel, 200, "OK", Some(BOB_TAG.as_bytes())));
    assert_eq!(set.receive_response(&cancel, &ok).unwrap(), None);
    let terminated = wire(&bob.respond(Instant::now(), &invite, 487, "Request Terminated", None));
    assert_eq!(
        set.receive_response(&invite, &terminated)
            .unwrap()
            .unwrap()
            .outcome,
        ResponseOutcome::Failure {
            status: 487,
            terminated: true
        }
    );
    assert_eq!(set.remove_terminated().len(), 1);
}

#[test]
fn the_local_cseq_never_wraps() {
    let invite = invite_with(CALL_ID, ALICE_TAG, u32::MAX, &[], true);
    let (mut alice, _, _) = call_with(&invite, Instant::now());
    assert_eq!(alice.local_seq(), Some(u32::MAX));
    assert_eq!(
        alice.request(Method::Info, None).unwrap_err(),
        DialogError::SequenceExhausted
    );
}
