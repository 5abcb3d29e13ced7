//! The core's promise, as properties: whatever headers a leg's messages carry, nothing that
//! names that leg — Call-ID, tags, Via branches, Contact and Record-Route hosts, internal
//! `X-Voxide-*` headers, credentials, headers outside the allow-list — appears in what the
//! core builds for the other leg.

mod support;

use std::time::Instant;

use b2bua::{Action, Call, Outbound};
use bytes::Bytes;
use proptest::prelude::*;
use sip_core::dialog::Dialog;
use sip_message::{HeaderName, Message, Method};
use support::*;

/// Header names the generator draws from, and whether the default policy lets them cross.
const NAMES: &[(&str, bool)] = &[
    ("X-Voxide-Source", false),
    ("x-voxide-route-to", false),
    ("X-VOXIDE-Peer", false),
    ("Record-Route", false),
    ("Route", false),
    ("Authorization", false),
    ("Proxy-Authorization", false),
    ("WWW-Authenticate", false),
    ("Path", false),
    ("User-Agent", false),
    ("Server", false),
    ("Warning", false),
    ("P-Asserted-Identity", false),
    ("P-Preferred-Identity", false),
    ("Organization", false),
    ("Call-Info", false),
    ("X-Custom", false),
    ("P-Charging-Vector", false),
    ("Subject", true),
    ("Priority", true),
];

/// A value no other part of a message contains by chance.
fn secret() -> impl Strategy<Value = String> {
    "[a-z0-9]{12}".prop_map(|random| format!("sec{random}"))
}

fn headers() -> impl Strategy<Value = Vec<(usize, String)>> {
    proptest::collection::vec((0..NAMES.len(), secret()), 0..12)
}

/// The value as a header line of `name` may carry it (name-addr headers need a URI).
fn header_value(name: &str, value: &str) -> String {
    match name {
        "Record-Route" | "Route" | "Path" | "P-Asserted-Identity" | "P-Preferred-Identity" => {
            format!("<sip:{value}.internal;lr>")
        }
        "Authorization" | "Proxy-Authorization" | "WWW-Authenticate" => {
            format!("Digest username=\"{value}\", realm=\"r\"")
        }
        "Warning" => format!("399 {value} \"x\""),
        "Call-Info" => format!("<http://{value}.internal/>;purpose=info"),
        _ => value.to_owned(),
    }
}

#[derive(Debug, Clone)]
struct Party {
    call_id: String,
    tag: String,
    branches: Vec<String>,
    contact_host: String,
    record_route_hosts: Vec<String>,
    extra: Vec<(usize, String)>,
}

fn party() -> impl Strategy<Value = Party> {
    (
        secret(),
        secret(),
        proptest::collection::vec(secret(), 1..4),
        secret(),
        proptest::collection::vec(secret(), 0..3),
        headers(),
    )
        .prop_map(
            |(call_id, tag, branches, contact_host, record_route_hosts, extra)| Party {
                call_id,
                tag,
                branches,
                contact_host,
                record_route_hosts,
                extra,
            },
        )
}

impl Party {
    /// What may not appear on the other side.
    fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![
            self.call_id.clone(),
            self.tag.clone(),
            self.contact_host.clone(),
        ];
        secrets.extend(
            self.branches
                .iter()
                .map(|branch| format!("z9hG4bK{branch}")),
        );
        secrets.extend(self.record_route_hosts.iter().cloned());
        for (index, value) in &self.extra {
            if !NAMES[*index].1 {
                secrets.push(value.clone());
            }
        }
        secrets
    }

    fn extra_lines(&self) -> String {
        let mut lines = String::new();
        for host in &self.record_route_hosts {
            lines.push_str(&format!("Record-Route: <sip:{host}.internal;lr>\r\n"));
        }
        for (index, value) in &self.extra {
            let name = NAMES[*index].0;
            lines.push_str(&format!("{name}: {}\r\n", header_value(name, value)));
        }
        lines
    }

    fn add_extra(&self, message: &mut Message) {
        for host in &self.record_route_hosts {
            message.add_header(HeaderName::RecordRoute, format!("<sip:{host}.internal;lr>"));
        }
        for (index, value) in &self.extra {
            let name = NAMES[*index].0;
            message.add_header(
                HeaderName::from_bytes(name.as_bytes()),
                header_value(name, value),
            );
        }
    }

    fn invite(&self) -> Message {
        let mut text = String::from("INVITE sip:+43123456@voxide.example SIP/2.0\r\n");
        for (index, branch) in self.branches.iter().enumerate() {
            text.push_str(&format!(
                "Via: SIP/2.0/UDP 10.0.{index}.1:5060;branch=z9hG4bK{branch}\r\n"
            ));
        }
        let body = String::from_utf8(sdp("alice").content.to_vec()).unwrap();
        text.push_str(&format!(
            "Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@voxide.example>;tag={tag}\r\n\
To: <sip:+43123456@voxide.example>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:alice@{host}.internal:5060>\r\n\
{extra}Content-Type: application/sdp\r\n\
Content-Length: {length}\r\n\r\n{body}",
            tag = self.tag,
            call_id = self.call_id,
            host = self.contact_host,
            extra = self.extra_lines(),
            length = body.len(),
        ));
        Message::parse(Bytes::from(text)).expect("generated INVITE parses")
    }
}

fn assert_hidden(message: &Message, secrets: &[String]) -> Result<(), TestCaseError> {
    let printed = text(message);
    for secret in secrets {
        prop_assert!(
            !printed.contains(secret.as_str()),
            "{} leaked:\n{}",
            secret,
            printed
        );
    }
    prop_assert!(
        !printed.to_ascii_lowercase().contains("x-voxide-"),
        "internal header crossed:\n{}",
        printed
    );
    Ok(())
}

fn messages_to(leg: b2bua::Leg, actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|action| match (leg, action) {
            (b2bua::Leg::A, Action::SendToA(m) | Action::RespondA(m))
            | (b2bua::Leg::B, Action::SendToB(m) | Action::RespondB(m)) => Some(wire(m, "shell")),
            _ => None,
        })
        .collect()
}

proptest! {
    /// Nothing of the caller's leg reaches the B leg INVITE.
    #[test]
    fn the_b_invite_carries_nothing_of_the_a_leg(caller in party(), seed in any::<u64>()) {
        let invite = caller.invite();
        let (_, b_invite) = Call::new(Instant::now(), &invite, &Outbound::new(TARGET), &config(), seed)
            .expect("the core takes the INVITE");
        let b_invite = wire(&b_invite, "shell");
        assert_hidden(&b_invite, &caller.secrets())?;
        // What the policy lets cross does cross.
        for (index, value) in &caller.extra {
            if NAMES[*index].1 {
                prop_assert!(text(&b_invite).contains(value.as_str()));
            }
        }
    }

    /// Nothing of the callee's leg reaches the caller: not in the provisional and final
    /// responses relayed to it, nor in a request the callee sends inside the dialog.
    #[test]
    fn nothing_of_the_b_leg_reaches_the_a_leg(
        caller in party(),
        callee in party(),
        early_status in 180u16..190,
        final_status in prop_oneof![Just(200u16), Just(486), Just(503), Just(404), Just(302)],
        seed in any::<u64>(),
    ) {
        let now = Instant::now();
        let invite = caller.invite();
        let (mut call, b_invite) = Call::new(now, &invite, &Outbound::new(TARGET), &config(), seed)
            .expect("the core takes the INVITE");
        let mut b_invite = b_invite;
        b_invite.push_via(format!("SIP/2.0/UDP 10.0.0.7:5080;branch=z9hG4bK{}", callee.branches[0]));
        let b_invite = wire(&b_invite, "unused");
        let contact = format!("<sip:bob@{}.internal:5060>", callee.contact_host);
        let mut bob = Dialog::from_uas_request(&b_invite, callee.tag.clone(), contact).unwrap();
        let mut secrets = callee.secrets();
        secrets.push(String::from_utf8_lossy(call.b_call_id()).into_owned());
        secrets.push(String::from_utf8_lossy(b_invite.from().unwrap().tag().unwrap()).into_owned());

        let mut early = bob.respond(now, &b_invite, early_status, "Early", Some(sdp("bob")));
        callee.add_extra(&mut early);
        call.handle_from_b(now, wire(&early, ""));
        let mut last = bob.respond(now, &b_invite, final_status, "Final", Some(sdp("bob")));
        callee.add_extra(&mut last);
        call.handle_from_b(now, wire(&last, ""));
        let actions: Vec<Action> = std::iter::from_fn(|| call.poll_action()).collect();
        let to_a = messages_to(b2bua::Leg::A, &actions);
        prop_assert_eq!(to_a.len(), 2);
        for message in &to_a {
            assert_hidden(message, &secrets)?;
        }
        if final_status != 200 {
            return Ok(());
        }
        // The caller acknowledges; then the callee sends INFO with the same headers.
        let mut alice = Dialog::from_uac_response(&invite, &to_a[1]).unwrap();
        let ack = alice.ack_for_2xx(&to_a[1], None).unwrap();
        call.handle_from_a(now, wire(&ack, "ack"));
        let ack_to_b = messages_to(b2bua::Leg::B, &std::iter::from_fn(|| call.poll_action()).collect::<Vec<_>>());
        prop_assert_eq!(ack_to_b.len(), 1);
        assert_hidden(&ack_to_b[0], &caller.secrets())?;
        bob.receive_request(&ack_to_b[0]).unwrap();
        let mut info = bob.request(Method::Info, None).unwrap();
        callee.add_extra(&mut info);
        call.handle_from_b(now, wire(&info, "info"));
        let actions: Vec<Action> = std::iter::from_fn(|| call.poll_action()).collect();
        let to_a = messages_to(b2bua::Leg::A, &actions);
        prop_assert_eq!(to_a.len(), 1);
        assert_hidden(&to_a[0], &secrets)?;
        // And the caller's answer to it carries nothing of the caller back to the callee.
        alice.receive_request(&to_a[0]).unwrap();
        let mut answer = alice.respond(now, &to_a[0], 200, "OK", None);
        caller.add_extra(&mut answer);
        call.handle_from_a(now, wire(&answer, ""));
        let actions: Vec<Action> = std::iter::from_fn(|| call.poll_action()).collect();
        let to_b = messages_to(b2bua::Leg::B, &actions);
        prop_assert_eq!(to_b.len(), 1);
        prop_assert_eq!(to_b[0].status(), Some(200));
        assert_hidden(&to_b[0], &caller.secrets())?;
    }
}
