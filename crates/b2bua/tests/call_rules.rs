//! One test per rule of the call core: the B leg INVITE built anew, the responses relayed,
//! ACK, CANCEL, forks, in-dialog requests both ways, BYE, the call-length limit.

mod support;

use std::time::Duration;

use b2bua::{Action, Call, EndReason, HeaderPolicy, Leg, Outbound};
use bytes::Bytes;
use sip_core::dialog::{Body, Dialog, DialogState, InDialog};
use sip_core::transaction::{TimerConfig, make_response};
use sip_message::{HeaderName, Message, Method};
use support::*;

// ----- the B leg INVITE -----

#[test]
fn the_b_invite_is_built_anew() {
    let setup = setup();
    let invite = &setup.b_invite;
    let printed = text(invite);
    assert_eq!(invite.request_uri_bytes(), Some(TARGET.as_bytes()));
    assert_ne!(invite.call_id().unwrap(), CALLER_CALL_ID.as_bytes());
    assert_eq!(invite.call_id().unwrap(), &setup.call.b_call_id()[..]);
    let from = invite.from().unwrap();
    assert_eq!(from.display_name, Some(&b"\"Alice\""[..]));
    assert_eq!(from.uri.raw, b"sip:alice@voxide.example");
    assert!(from.tag().is_some_and(|tag| tag != CALLER_TAG.as_bytes()));
    let to = invite.to().unwrap();
    assert_eq!(to.uri.raw, b"sip:+43123456@voxide.example");
    assert_eq!(to.tag(), None);
    let cseq = invite.cseq().unwrap();
    assert_eq!((cseq.number, cseq.method), (1, Method::Invite));
    assert_eq!(header(invite, "Contact").as_deref(), Some(B_CONTACT));
    assert_eq!(invite.max_forwards().unwrap(), Some(67));
    assert_eq!(header(invite, "User-Agent").as_deref(), Some("voxide"));
    // The shell's Via only: none of the caller's.
    assert_eq!(invite.vias().count(), 1);
    assert!(!invite.has_header(&HeaderName::RecordRoute));
    assert!(!invite.has_header(&HeaderName::Route));
    for secret in CALLER_SECRETS {
        assert!(!printed.contains(secret), "{secret} leaked:\n{printed}");
    }
    assert!(
        !printed.to_ascii_lowercase().contains("x-voxide"),
        "{printed}"
    );
    assert!(
        !printed.contains("X-Secret"),
        "unknown headers stay: {printed}"
    );
    assert!(!printed.contains("P-Asserted-Identity"), "{printed}");
    // What crosses: the body, Subject, filtered Supported and Allow.
    assert_eq!(invite.body(), setup.a_invite.body());
    assert_eq!(
        header(invite, "Content-Type").as_deref(),
        Some("application/sdp")
    );
    assert_eq!(header(invite, "Subject").as_deref(), Some("hello"));
    assert_eq!(header(invite, "Supported").as_deref(), Some("timer"));
    assert_eq!(
        header(invite, "Allow").as_deref(),
        Some("INVITE, ACK, CANCEL, BYE, UPDATE")
    );
}

#[test]
fn identity_headers_cross_only_when_configured() {
    let mut config = config();
    config.headers = HeaderPolicy::default().with_identity();
    let setup = setup_with(caller_invite("Privacy: id\r\n", true), &config);
    assert_eq!(
        header(&setup.b_invite, "P-Asserted-Identity").as_deref(),
        Some("<sip:+4311111@voxide.example>")
    );
    assert_eq!(header(&setup.b_invite, "Privacy").as_deref(), Some("id"));
}

#[test]
fn outbound_parties_replace_the_callers() {
    let outbound = Outbound {
        request_uri: Bytes::from_static(TARGET.as_bytes()),
        from: Some(Bytes::from_static(
            b"\"Anonymous\" <sip:anonymous@anonymous.invalid>",
        )),
        to: Some(Bytes::from_static(b"<sip:+43123456@carrier.example.net>")),
    };
    let (_, invite) = Call::new(
        std::time::Instant::now(),
        &caller_invite("", true),
        &outbound,
        &config(),
        1,
    )
    .unwrap();
    let invite = wire(&invite, "x");
    let printed = text(&invite);
    assert!(!printed.contains("Alice"), "{printed}");
    assert_eq!(
        invite.from().unwrap().uri.raw,
        b"sip:anonymous@anonymous.invalid"
    );
    assert_eq!(
        invite.to().unwrap().uri.raw,
        b"sip:+43123456@carrier.example.net"
    );
}

#[test]
fn max_forwards_is_decremented_and_zero_refused() {
    let none = caller_invite("", true);
    let mut without = none.clone();
    without.remove_header(&HeaderName::MaxForwards);
    let (_, invite) = Call::new(
        std::time::Instant::now(),
        &without,
        &Outbound::new(TARGET),
        &config(),
        1,
    )
    .unwrap();
    assert_eq!(invite.max_forwards().unwrap(), Some(70));
    let mut zero = none;
    zero.replace_header(HeaderName::MaxForwards, "0");
    let rejection = Call::new(
        std::time::Instant::now(),
        &zero,
        &Outbound::new(TARGET),
        &config(),
        1,
    )
    .unwrap_err();
    assert_eq!((rejection.status, rejection.reason), (483, "Too Many Hops"));
    let response = wire(&rejection.response(&zero, b"t1"), "");
    assert_eq!(response.status(), Some(483));
    assert_eq!(response.to().unwrap().tag(), Some(&b"t1"[..]));
}

#[test]
fn an_unknown_requirement_is_refused_with_420() {
    let invite = caller_invite("Require: 100rel, timer\r\n", true);
    let rejection = Call::new(
        std::time::Instant::now(),
        &invite,
        &Outbound::new(TARGET),
        &config(),
        1,
    )
    .unwrap_err();
    assert_eq!(rejection.status, 420);
    let response = wire(&rejection.response(&invite, b"t"), "");
    assert_eq!(header(&response, "Unsupported").as_deref(), Some("100rel"));
}

#[test]
fn broken_requests_and_targets_are_refused() {
    let now = std::time::Instant::now();
    let outbound = Outbound::new(TARGET);
    let mut no_contact = caller_invite("", true);
    no_contact.remove_header(&HeaderName::Contact);
    assert_eq!(
        Call::new(now, &no_contact, &outbound, &config(), 1)
            .unwrap_err()
            .status,
        400
    );
    let mut tagged = caller_invite("", true);
    tagged.replace_header(HeaderName::To, "<sip:bob@voxide.example>;tag=x");
    assert_eq!(
        Call::new(now, &tagged, &outbound, &config(), 1)
            .unwrap_err()
            .status,
        481
    );
    let bad = Outbound::new("not a uri");
    assert_eq!(
        Call::new(now, &caller_invite("", true), &bad, &config(), 1)
            .unwrap_err()
            .status,
        500
    );
}

#[test]
fn seeds_give_different_calls() {
    let now = std::time::Instant::now();
    let invite = caller_invite("", true);
    let outbound = Outbound::new(TARGET);
    let (one, first) = Call::new(now, &invite, &outbound, &config(), 1).unwrap();
    let (two, second) = Call::new(now, &invite, &outbound, &config(), 2).unwrap();
    assert_ne!(one.b_call_id(), two.b_call_id());
    assert_ne!(first.from().unwrap().tag(), second.from().unwrap().tag());
    assert_ne!(one.a_dialog().id().local_tag, two.a_dialog().id().local_tag);
    assert_eq!(one.a_call_id(), CALLER_CALL_ID.as_bytes());
}

// ----- responses to the INVITE -----

#[test]
fn early_media_is_relayed_on_the_a_leg_dialog() {
    let mut setup = setup();
    setup.callee_answers(100, None);
    assert!(drain(&mut setup.call).is_empty(), "100 is hop by hop");
    setup.callee_answers(183, Some(sdp("bob")));
    let actions = drain(&mut setup.call);
    let responses = responses_to_a(&actions);
    assert_eq!(responses.len(), 1);
    let early = &responses[0];
    assert_eq!(early.status(), Some(183));
    assert_eq!(early.reason(), Some(&b"Session Progress"[..]));
    assert_eq!(early.body(), sdp("bob").content);
    assert_eq!(early.call_id().unwrap(), CALLER_CALL_ID.as_bytes());
    assert_eq!(
        early.to().unwrap().tag(),
        Some(&setup.call.a_dialog().id().local_tag[..])
    );
    assert_eq!(header(early, "Contact").as_deref(), Some(A_CONTACT));
    // The caller's own Via and Record-Route come back to it; nothing of the callee's.
    assert_eq!(early.vias().count(), 3);
    assert_eq!(early.header_values(&HeaderName::RecordRoute).count(), 2);
    let printed = text(early);
    for secret in ["198.51.100.9", CALLEE_TAG, "callee"] {
        assert!(!printed.contains(secret), "{secret}:\n{printed}");
    }
    assert!(!printed.contains(&*String::from_utf8_lossy(setup.call.b_call_id())));
    let caller = Dialog::from_uac_response(&setup.a_invite, early).unwrap();
    assert_eq!(caller.state(), DialogState::Early);
    assert_eq!(caller.remote_target(), "sip:b2bua-a@10.0.0.7:5080");
}

#[test]
fn the_callees_2xx_is_acknowledged_when_the_caller_acknowledges() {
    let mut setup = setup_with(caller_invite("", false), &config());
    // A late offer: no SDP in the INVITE, the offer in the 2xx, the answer in the ACK.
    assert!(setup.b_invite.body().is_empty());
    let ok = setup.callee_answers(200, Some(sdp("bob")));
    let actions = drain(&mut setup.call);
    assert!(
        requests_to_b(&actions).is_empty(),
        "no ACK before the caller's"
    );
    let relayed = responses_to_a(&actions).pop().unwrap();
    assert_eq!(relayed.status(), Some(200));
    assert_eq!(relayed.body(), sdp("bob").content);
    assert_eq!(setup.call.answered_at(), Some(setup.now));
    // The callee retransmits its 2xx meanwhile: still no ACK.
    setup.call.handle_from_b(setup.now, ok.clone());
    assert!(drain(&mut setup.call).is_empty());
    let mut caller = Dialog::from_uac_response(&setup.a_invite, &relayed).unwrap();
    let ack = wire(
        &caller.ack_for_2xx(&relayed, Some(sdp("alice"))).unwrap(),
        "ack1",
    );
    setup.call.handle_from_a(setup.now, ack);
    let ours = requests_to_b(&drain(&mut setup.call));
    assert_eq!(ours.len(), 1);
    let b_ack = wire(&ours[0], "ack2");
    assert_eq!(b_ack.method(), Some(&Method::Ack));
    assert_eq!(b_ack.cseq().unwrap().number, 1);
    assert_eq!(b_ack.body(), sdp("alice").content, "the answer crosses");
    assert_eq!(
        setup.callee.receive_request(&b_ack),
        Ok(InDialog::Ack { cseq: 1 })
    );
    // A retransmitted 2xx now gets the same ACK again.
    setup.call.handle_from_b(setup.now, ok);
    let again = requests_to_b(&drain(&mut setup.call));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].to_bytes(), ours[0].to_bytes());
}

#[test]
fn our_2xx_to_the_caller_is_retransmitted_in_full_until_the_ack() {
    let mut setup = setup();
    setup.callee_answers(200, Some(sdp("bob")));
    let first = responses_to_a(&drain(&mut setup.call)).pop().unwrap();
    let due = setup.call.poll_timeout().expect("2xx retransmission timer");
    assert_eq!(due, setup.now + Duration::from_millis(500));
    setup.call.handle_timeout(due);
    let again = responses_to_a(&drain(&mut setup.call));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].to_bytes(), first.to_bytes());
    assert_eq!(header(&again[0], "Server").as_deref(), Some("voxide"));
}

#[test]
fn failures_keep_their_status_except_503_and_challenges() {
    for (status, expected) in [(486, 486), (404, 404), (603, 603), (503, 500), (407, 500)] {
        let mut setup = setup();
        setup.callee_answers(180, None);
        drain(&mut setup.call);
        let response =
            setup
                .callee
                .respond(setup.now, &setup.b_invite, status, "Callee Says", None);
        let mut response = wire(&response, "");
        response.add_header(HeaderName::ProxyAuthenticate, "Digest realm=\"carrier\"");
        response.add_header(HeaderName::RetryAfter, "30");
        setup.call.handle_from_b(setup.now, response);
        let actions = drain(&mut setup.call);
        let relayed = responses_to_a(&actions).pop().unwrap();
        assert_eq!(relayed.status(), Some(expected));
        let reason = if status == expected {
            "Callee Says"
        } else {
            "Server Internal Error"
        };
        assert_eq!(relayed.reason(), Some(reason.as_bytes()));
        assert!(!relayed.has_header(&HeaderName::ProxyAuthenticate));
        assert_eq!(header(&relayed, "Retry-After").as_deref(), Some("30"));
        assert_eq!(
            ended(&actions),
            [EndReason::Rejected {
                received: status,
                sent: expected
            }]
        );
        assert_eq!(setup.call.a_dialog().state(), DialogState::Terminated);
        assert!(setup.call.is_finished());
    }
}

#[test]
fn a_redirect_crosses_without_its_contact() {
    let mut setup = setup();
    let redirect = setup
        .callee
        .respond(setup.now, &setup.b_invite, 302, "Moved", None);
    let mut redirect = wire(&redirect, "");
    redirect.add_header(HeaderName::Contact, "<sip:elsewhere@10.9.9.9>");
    setup.call.handle_from_b(setup.now, redirect);
    let relayed = responses_to_a(&drain(&mut setup.call)).pop().unwrap();
    assert_eq!(relayed.status(), Some(302));
    assert!(!text(&relayed).contains("10.9.9.9"));
}

#[test]
fn cancel_answers_487_at_once_and_cancels_the_b_leg() {
    let mut setup = setup();
    setup.callee_answers(180, None);
    drain(&mut setup.call);
    let cancel = wire(&sip_core::transaction::make_cancel(&setup.a_invite), "");
    setup.call.handle_from_a(setup.now, cancel);
    let actions = drain(&mut setup.call);
    let responses = responses_to_a(&actions);
    let statuses: Vec<(u16, Method)> = responses
        .iter()
        .map(|r| (r.status().unwrap(), r.cseq().unwrap().method))
        .collect();
    assert_eq!(statuses, [(200, Method::Cancel), (487, Method::Invite)]);
    assert!(
        actions
            .iter()
            .any(|action| matches!(action, Action::CancelB { cseq: 1 }))
    );
    assert_eq!(ended(&actions), [EndReason::Cancelled]);
    assert!(!setup.call.is_finished(), "the B leg INVITE is still open");
    // The callee's 487 ends the B leg; nothing more reaches the caller.
    setup.callee_answers(487, None);
    assert!(drain(&mut setup.call).is_empty());
    assert!(setup.call.is_finished());
}

#[test]
fn a_2xx_after_cancel_is_acknowledged_and_hung_up() {
    let mut setup = setup();
    setup.callee_answers(180, None);
    drain(&mut setup.call);
    let cancel = wire(&sip_core::transaction::make_cancel(&setup.a_invite), "");
    setup.call.handle_from_a(setup.now, cancel);
    drain(&mut setup.call);
    setup.callee_answers(200, Some(sdp("bob")));
    let actions = drain(&mut setup.call);
    assert!(responses_to_a(&actions).is_empty());
    let methods: Vec<Method> = requests_to_b(&actions)
        .iter()
        .map(|request| request.method().unwrap().clone())
        .collect();
    assert_eq!(methods, [Method::Ack, Method::Bye]);
    assert!(setup.call.is_finished());
}

#[test]
fn forks_the_first_2xx_wins_and_a_later_one_is_hung_up() {
    let mut setup = setup();
    let mut other =
        Dialog::from_uas_request(&setup.b_invite, "fork-2", "<sip:fork2@198.51.100.10>").unwrap();
    setup.callee_answers(180, None);
    let ringing = wire(
        &other.respond(setup.now, &setup.b_invite, 180, "Ringing", None),
        "",
    );
    setup.call.handle_from_b(setup.now, ringing);
    assert_eq!(responses_to_a(&drain(&mut setup.call)).len(), 2);
    let ok = wire(
        &other.respond(setup.now, &setup.b_invite, 200, "OK", Some(sdp("fork"))),
        "",
    );
    setup.call.handle_from_b(setup.now, ok);
    let relayed = responses_to_a(&drain(&mut setup.call));
    assert_eq!(relayed[0].status(), Some(200));
    assert_eq!(
        setup.call.b_dialog().unwrap().id().remote_tag,
        Bytes::from_static(b"fork-2")
    );
    // The first fork answers too, later: ACK and BYE to it, nothing to the caller.
    setup.callee_answers(200, Some(sdp("bob")));
    let actions = drain(&mut setup.call);
    assert!(responses_to_a(&actions).is_empty());
    let late: Vec<(Method, Option<Vec<u8>>)> = requests_to_b(&actions)
        .iter()
        .map(|r| {
            (
                r.method().unwrap().clone(),
                r.to().unwrap().tag().map(<[u8]>::to_vec),
            )
        })
        .collect();
    assert_eq!(
        late,
        [
            (Method::Ack, Some(CALLEE_TAG.as_bytes().to_vec())),
            (Method::Bye, Some(CALLEE_TAG.as_bytes().to_vec()))
        ]
    );
}

#[test]
fn a_reliable_provisional_is_pracked_by_the_core_and_relayed_unreliably() {
    let mut setup = setup();
    let reliable = setup
        .callee
        .respond_reliably(
            setup.now,
            &setup.b_invite,
            183,
            "Progress",
            Some(sdp("bob")),
            9,
        )
        .unwrap();
    setup.call.handle_from_b(setup.now, wire(&reliable, ""));
    let actions = drain(&mut setup.call);
    let prack = wire(&requests_to_b(&actions).pop().unwrap(), "prack");
    assert_eq!(prack.method(), Some(&Method::Prack));
    assert_eq!(header(&prack, "RAck").as_deref(), Some("10 1 INVITE"));
    assert!(matches!(
        setup.callee.receive_request(&prack),
        Ok(InDialog::Prack { rseq: 10, .. })
    ));
    let relayed = responses_to_a(&actions).pop().unwrap();
    assert_eq!(relayed.status(), Some(183));
    assert!(!relayed.has_header(&HeaderName::RSeq));
    assert!(!relayed.has_header(&HeaderName::Require));
    // The 200 to our PRACK is taken quietly.
    let ok = setup.callee.respond(setup.now, &prack, 200, "OK", None);
    setup.call.handle_from_b(setup.now, wire(&ok, ""));
    assert!(drain(&mut setup.call).is_empty());
}

// ----- inside the dialogs -----

#[test]
fn a_reinvite_from_the_callee_crosses_and_the_ack_follows() {
    let mut setup = setup();
    let mut caller = setup.answered();
    let reinvite = setup
        .callee
        .request(Method::Invite, Some(sdp("bob2")))
        .unwrap();
    setup
        .call
        .handle_from_b(setup.now, wire(&reinvite, "reinv"));
    let on_a = requests_to_a(&drain(&mut setup.call)).pop().unwrap();
    let on_a = wire(&on_a, "reinv-a");
    assert_eq!(on_a.method(), Some(&Method::Invite));
    assert_eq!(on_a.call_id().unwrap(), CALLER_CALL_ID.as_bytes());
    assert_eq!(on_a.body(), sdp("bob2").content);
    // Our A dialog routes through the caller's Record-Route set.
    assert_eq!(on_a.header_values(&HeaderName::Route).count(), 2);
    assert_eq!(
        caller.receive_request(&on_a),
        Ok(InDialog::Request {
            method: Method::Invite,
            cseq: 1,
            target_refresh: true
        })
    );
    let ok = wire(
        &caller.respond(setup.now, &on_a, 200, "OK", Some(sdp("alice2"))),
        "",
    );
    setup.call.handle_from_a(setup.now, ok.clone());
    let to_b = responses_to_b(&drain(&mut setup.call)).pop().unwrap();
    assert_eq!(to_b.status(), Some(200));
    assert_eq!(to_b.body(), sdp("alice2").content);
    assert_eq!(header(&to_b, "Contact").as_deref(), Some(B_CONTACT));
    assert!(setup.callee.receive_response(&to_b).is_ok());
    let ack = setup.callee.ack_for_2xx(&to_b, None).unwrap();
    setup.call.handle_from_b(setup.now, wire(&ack, "ack-b"));
    let ack_a = requests_to_a(&drain(&mut setup.call)).pop().unwrap();
    let ack_a = wire(&ack_a, "ack-a");
    assert_eq!(ack_a.method(), Some(&Method::Ack));
    assert_eq!(
        caller.receive_request(&ack_a),
        Ok(InDialog::Ack { cseq: 1 })
    );
    // The caller's 2xx retransmission gets the same ACK.
    setup.call.handle_from_a(setup.now, ok);
    assert_eq!(requests_to_a(&drain(&mut setup.call)).len(), 1);
}

#[test]
fn update_info_and_options_cross_and_their_answers_come_back() {
    let mut setup = setup();
    let mut caller = setup.answered();
    for (method, body) in [
        (Method::Update, Some(sdp("alice3"))),
        (
            Method::Info,
            Some(Body::new("application/dtmf-relay", "Signal=5\r\n")),
        ),
        (Method::Options, None),
    ] {
        let request = wire(&caller.request(method.clone(), body.clone()).unwrap(), "r");
        setup.call.handle_from_a(setup.now, request.clone());
        let on_b = wire(&requests_to_b(&drain(&mut setup.call)).pop().unwrap(), "rb");
        assert_eq!(on_b.method(), Some(&method));
        assert_eq!(on_b.call_id().unwrap(), &setup.call.b_call_id()[..]);
        assert_eq!(
            body.map(|body| body.content),
            Some(on_b.body()).filter(|b| !b.is_empty())
        );
        setup.callee.receive_request(&on_b).unwrap();
        let answer = setup.callee.respond(setup.now, &on_b, 200, "Fine", None);
        setup.call.handle_from_b(setup.now, wire(&answer, ""));
        let back = responses_to_a(&drain(&mut setup.call)).pop().unwrap();
        assert_eq!(back.status(), Some(200));
        assert_eq!(back.reason(), Some(&b"Fine"[..]));
        assert_eq!(back.cseq().unwrap(), request.cseq().unwrap());
        caller.receive_response(&back).unwrap();
    }
}

#[test]
fn methods_and_requirements_that_are_not_relayed_are_refused() {
    let mut setup = setup();
    let mut caller = setup.answered();
    let refer = wire(&caller.request(Method::Refer, None).unwrap(), "refer");
    setup.call.handle_from_a(setup.now, refer);
    let answer = responses_to_a(&drain(&mut setup.call)).pop().unwrap();
    assert_eq!(answer.status(), Some(405));
    assert_eq!(
        header(&answer, "Allow").as_deref(),
        Some("INVITE, ACK, CANCEL, BYE, UPDATE, INFO, OPTIONS")
    );
    let mut info = caller.request(Method::Info, None).unwrap();
    info.add_header(HeaderName::Require, "foo");
    setup.call.handle_from_a(setup.now, wire(&info, "info"));
    let answer = responses_to_a(&drain(&mut setup.call)).pop().unwrap();
    assert_eq!(answer.status(), Some(420));
    assert_eq!(header(&answer, "Unsupported").as_deref(), Some("foo"));
}

#[test]
fn a_reinvite_meeting_one_in_flight_on_the_other_leg_gets_491() {
    let mut setup = setup();
    let mut caller = setup.answered();
    // The callee's re-INVITE is on its way to the caller …
    let reinvite = setup
        .callee
        .request(Method::Invite, Some(sdp("bob2")))
        .unwrap();
    setup.call.handle_from_b(setup.now, wire(&reinvite, "b"));
    drain(&mut setup.call);
    // … when the caller's arrives: the A dialog sees glare.
    let crossing = caller.request(Method::Invite, Some(sdp("alice2"))).unwrap();
    setup.call.handle_from_a(setup.now, wire(&crossing, "a"));
    let answer = responses_to_a(&drain(&mut setup.call)).pop().unwrap();
    assert_eq!(answer.status(), Some(491));
    assert_eq!(answer.cseq().unwrap().method, Method::Invite);
}

#[test]
fn a_cancelled_reinvite_is_cancelled_on_the_other_leg() {
    let mut setup = setup();
    let mut caller = setup.answered();
    let reinvite = wire(
        &caller.request(Method::Invite, Some(sdp("a2"))).unwrap(),
        "ri",
    );
    setup.call.handle_from_a(setup.now, reinvite.clone());
    let on_b = wire(
        &requests_to_b(&drain(&mut setup.call)).pop().unwrap(),
        "rib",
    );
    setup.callee.receive_request(&on_b).unwrap();
    setup.call.handle_from_a(
        setup.now,
        wire(&sip_core::transaction::make_cancel(&reinvite), ""),
    );
    let actions = drain(&mut setup.call);
    let cseq = on_b.cseq().unwrap().number;
    assert!(
        actions
            .iter()
            .any(|action| matches!(action, Action::CancelB { cseq: c } if *c == cseq))
    );
    assert_eq!(responses_to_a(&actions)[0].status(), Some(200));
    let terminated = setup
        .callee
        .respond(setup.now, &on_b, 487, "Request Terminated", None);
    setup.call.handle_from_b(setup.now, wire(&terminated, ""));
    let answer = responses_to_a(&drain(&mut setup.call)).pop().unwrap();
    assert_eq!(
        (answer.status(), answer.cseq().unwrap().method),
        (Some(487), Method::Invite)
    );
    assert!(setup.call.end_reason().is_none(), "the call goes on");
}

#[test]
fn bye_from_the_caller_ends_both_legs() {
    let mut setup = setup();
    let mut caller = setup.answered();
    let bye = wire(&caller.request(Method::Bye, None).unwrap(), "bye");
    setup.call.handle_from_a(setup.now, bye);
    let actions = drain(&mut setup.call);
    assert_eq!(responses_to_a(&actions)[0].status(), Some(200));
    let bye_b = wire(&requests_to_b(&actions)[0], "byeb");
    assert_eq!(bye_b.method(), Some(&Method::Bye));
    assert_eq!(ended(&actions), [EndReason::Bye(Leg::A)]);
    assert_eq!(
        setup.callee.receive_request(&bye_b),
        Ok(InDialog::Bye { cseq: 2 })
    );
    let ok = setup.callee.respond(setup.now, &bye_b, 200, "OK", None);
    setup.call.handle_from_b(setup.now, wire(&ok, ""));
    assert!(drain(&mut setup.call).is_empty());
    assert!(setup.call.is_finished());
}

#[test]
fn bye_from_the_callee_before_the_callers_ack_waits_for_it() {
    let mut setup = setup();
    setup.callee_answers(200, Some(sdp("bob")));
    let ok = responses_to_a(&drain(&mut setup.call)).pop().unwrap();
    // The callee hangs up at once (it has no ACK yet either; it may not, but it does).
    let bye = setup.callee.request(Method::Bye, None);
    let bye = match bye {
        Ok(bye) => bye,
        Err(_) => {
            setup.callee.give_up_ack();
            setup.callee.request(Method::Bye, None).unwrap()
        }
    };
    setup.call.handle_from_b(setup.now, wire(&bye, "bye"));
    let actions = drain(&mut setup.call);
    assert_eq!(responses_to_b(&actions)[0].status(), Some(200));
    assert!(
        requests_to_a(&actions).is_empty(),
        "no BYE before the caller's ACK"
    );
    assert_eq!(ended(&actions), [EndReason::Bye(Leg::B)]);
    assert!(!setup.call.is_finished());
    let mut caller = Dialog::from_uac_response(&setup.a_invite, &ok).unwrap();
    let ack = wire(&caller.ack_for_2xx(&ok, None).unwrap(), "ack");
    setup.call.handle_from_a(setup.now, ack);
    let actions = drain(&mut setup.call);
    let methods: Vec<Method> = requests_to_a(&actions)
        .iter()
        .map(|r| r.method().unwrap().clone())
        .collect();
    assert_eq!(methods, [Method::Bye]);
    // The callee still gets its ACK.
    assert_eq!(requests_to_b(&actions).len(), 1);
    assert!(setup.call.is_finished());
}

#[test]
fn a_dialog_ending_error_on_one_leg_ends_the_call() {
    let mut setup = setup();
    let mut caller = setup.answered();
    let info = wire(&caller.request(Method::Info, None).unwrap(), "info");
    setup.call.handle_from_a(setup.now, info);
    let on_b = wire(&requests_to_b(&drain(&mut setup.call)).pop().unwrap(), "ib");
    let gone = make_response(&on_b, 481, "Call/Transaction Does Not Exist", None);
    setup.call.handle_from_b(setup.now, wire(&gone, ""));
    let actions = drain(&mut setup.call);
    assert_eq!(responses_to_a(&actions)[0].status(), Some(481));
    assert_eq!(
        requests_to_a(&actions)[0].method(),
        Some(&Method::Bye),
        "the caller is hung up"
    );
    assert!(requests_to_b(&actions).is_empty(), "the B dialog is gone");
    assert_eq!(
        ended(&actions),
        [EndReason::LegFailed {
            leg: Leg::B,
            status: 481
        }]
    );
}

#[test]
fn requests_in_unknown_dialogs_get_481() {
    let mut setup = setup();
    let mut caller = setup.answered();
    let mut stray = caller.request(Method::Info, None).unwrap();
    stray.replace_header(HeaderName::CallId, "someone-else");
    setup.call.handle_from_a(setup.now, wire(&stray, "s"));
    let answer = responses_to_a(&drain(&mut setup.call)).pop().unwrap();
    assert_eq!(answer.status(), Some(481));
}

// ----- timers -----

#[test]
fn the_call_length_limit_byes_both_legs_at_once() {
    let mut config = config();
    config.max_duration = Some(Duration::from_secs(60));
    let mut setup = setup_with(caller_invite("", true), &config);
    let _caller = setup.answered();
    let limit = setup.now + Duration::from_secs(60);
    assert_eq!(setup.call.poll_timeout(), Some(limit));
    setup.call.handle_timeout(limit - Duration::from_millis(1));
    assert!(drain(&mut setup.call).is_empty());
    setup.call.handle_timeout(limit);
    let actions = drain(&mut setup.call);
    assert_eq!(requests_to_a(&actions)[0].method(), Some(&Method::Bye));
    assert_eq!(requests_to_b(&actions)[0].method(), Some(&Method::Bye));
    assert_eq!(ended(&actions), [EndReason::MaxDuration]);
    assert_eq!(setup.call.poll_timeout(), None);
    assert!(setup.call.is_finished());
}

#[test]
fn no_ack_from_the_caller_ends_both_legs_after_64_t1() {
    let mut setup = setup();
    setup.callee_answers(200, Some(sdp("bob")));
    drain(&mut setup.call);
    let mut last = setup.now;
    while let Some(at) = setup.call.poll_timeout() {
        setup.call.handle_timeout(at);
        last = at;
        let actions = drain(&mut setup.call);
        if !ended(&actions).is_empty() {
            assert_eq!(ended(&actions), [EndReason::AckTimeout(Leg::A)]);
            let to_b: Vec<Method> = requests_to_b(&actions)
                .iter()
                .map(|r| r.method().unwrap().clone())
                .collect();
            assert_eq!(to_b, [Method::Ack, Method::Bye]);
            assert_eq!(requests_to_a(&actions)[0].method(), Some(&Method::Bye));
        }
    }
    assert_eq!(
        last - setup.now,
        TimerConfig::default().transaction_timeout()
    );
    assert!(setup.call.is_finished());
}

#[test]
fn every_message_the_core_builds_parses_and_validates() {
    // The wire helper validates; this walks a whole call and checks each action's message.
    let mut setup = setup();
    let mut caller = setup.answered();
    let bye = wire(&caller.request(Method::Bye, None).unwrap(), "bye");
    setup.call.handle_from_a(setup.now, bye);
    for action in drain(&mut setup.call) {
        let message: Option<&Message> = match &action {
            Action::SendToA(m) | Action::SendToB(m) | Action::RespondA(m) | Action::RespondB(m) => {
                Some(m)
            }
            _ => None,
        };
        if let Some(message) = message {
            wire(message, "v");
        }
    }
}
