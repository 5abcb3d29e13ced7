//! Rules every proxying element applies, stateless (the LB) or stateful (the proxy): the loop
//! detection hash of RFC 3261 §16.6 step 8, and which methods form dialogs or refresh their
//! targets.

use std::hash::{DefaultHasher, Hash, Hasher};

use sip_message::{HeaderName, Message, Method};

/// Whether the To tag enters the [`loop_hash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToTag {
    /// Hashed, as RFC 3261 §16.3 step 4 lists it: what a stateful proxy uses, whose ACKs of
    /// non-2xx answers never travel further than its own client transaction.
    Hashed,
    /// Left out, as a stateless proxy must: the ACK of a non-2xx final response carries a
    /// To tag its INVITE lacked, yet must get the INVITE's branch so the next hop's INVITE
    /// server transaction matches it (§16.11, §17.2.3).
    Ignored,
}

/// The loop-detection hash (RFC 3261 §16.6 step 8) a proxy puts into its branch after the
/// unique part: Request-URI as received, From tag, To tag (per [`ToTag`]), Call-ID, CSeq
/// number (not the method, so the ACK and CANCEL of an INVITE share it) and every Route
/// value. A request that comes back through the proxy with a Via of ours carrying the same
/// hash went round a loop (§16.3 step 4); one whose Request-URI changed is a spiral.
///
/// The top Via is left out, as a request coming back round a loop always arrives from a
/// different hop. Deterministic (SipHash with fixed keys) within one build, so a
/// retransmission always gets the same value.
pub fn loop_hash(request: &Message, to_tag: ToTag) -> u64 {
    let mut hasher = DefaultHasher::new();
    request.request_uri_bytes().hash(&mut hasher);
    request
        .from()
        .ok()
        .and_then(|from| from.tag())
        .hash(&mut hasher);
    if to_tag == ToTag::Hashed {
        request.to().ok().and_then(|to| to.tag()).hash(&mut hasher);
    }
    request.call_id().ok().hash(&mut hasher);
    request
        .cseq()
        .ok()
        .map(|cseq| cseq.number)
        .hash(&mut hasher);
    for route in request.header_values(&HeaderName::Route) {
        route.hash(&mut hasher);
    }
    hasher.finish()
}

/// Methods whose out-of-dialog request can create a dialog (RFC 3261 §12.1 INVITE, RFC 6665
/// SUBSCRIBE and NOTIFY, RFC 3515 REFER): a proxy that must see the dialog's later requests
/// record-routes them (§16.6 step 4).
pub fn is_dialog_forming(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Subscribe | Method::Refer | Method::Notify
    )
}

/// Methods whose Contact becomes (or replaces) the remote target of a dialog (RFC 3261
/// §12.2.1.2 re-INVITE, RFC 3311 UPDATE, RFC 6665 SUBSCRIBE and NOTIFY, RFC 3515 REFER): the
/// requests and responses whose Contact a NAT-traversing element rewrites.
pub fn is_target_refresh(method: &Method) -> bool {
    is_dialog_forming(method) || matches!(method, Method::Update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    /// The fields of a request the tests vary.
    #[derive(Debug, Clone)]
    struct Fields {
        request_uri: String,
        from_tag: String,
        to_tag: Option<String>,
        call_id: String,
        cseq: u32,
        method: &'static str,
        routes: Vec<String>,
        branch: String,
        max_forwards: u8,
        body: String,
    }

    fn fields() -> Fields {
        Fields {
            request_uri: "sip:bob@example.com".to_owned(),
            from_tag: "a1".to_owned(),
            to_tag: None,
            call_id: "call-1".to_owned(),
            cseq: 1,
            method: "INVITE",
            routes: Vec::new(),
            branch: "z9hG4bK1".to_owned(),
            max_forwards: 70,
            body: String::new(),
        }
    }

    fn message(fields: &Fields) -> Message {
        let mut text = format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
             Max-Forwards: {hops}\r\n\
             From: <sip:alice@example.com>;tag={from}\r\n",
            method = fields.method,
            uri = fields.request_uri,
            branch = fields.branch,
            hops = fields.max_forwards,
            from = fields.from_tag,
        );
        match &fields.to_tag {
            Some(tag) => text.push_str(&format!("To: <sip:bob@example.com>;tag={tag}\r\n")),
            None => text.push_str("To: <sip:bob@example.com>\r\n"),
        }
        for route in &fields.routes {
            text.push_str(&format!("Route: <{route};lr>\r\n"));
        }
        text.push_str(&format!(
            "Call-ID: {}\r\nCSeq: {} {}\r\nContent-Length: {}\r\n\r\n{}",
            fields.call_id,
            fields.cseq,
            fields.method,
            fields.body.len(),
            fields.body
        ));
        Message::parse(Bytes::from(text)).unwrap()
    }

    fn both(fields: &Fields) -> [u64; 2] {
        let message = message(fields);
        [
            loop_hash(&message, ToTag::Hashed),
            loop_hash(&message, ToTag::Ignored),
        ]
    }

    #[test]
    fn the_ack_of_a_rejection_shares_the_invite_hash_only_without_the_to_tag() {
        let invite = fields();
        let ack = Fields {
            method: "ACK",
            to_tag: Some("b7".to_owned()),
            ..invite.clone()
        };
        let [invite_hashed, invite_ignored] = both(&invite);
        let [ack_hashed, ack_ignored] = both(&ack);
        assert_eq!(invite_ignored, ack_ignored);
        assert_ne!(invite_hashed, ack_hashed);
        let cancel = Fields {
            method: "CANCEL",
            ..invite.clone()
        };
        assert_eq!(both(&cancel), both(&invite));
    }

    #[test]
    fn a_retransmission_hashes_the_same() {
        let first = message(&fields());
        let again = message(&fields());
        for to_tag in [ToTag::Hashed, ToTag::Ignored] {
            assert_eq!(loop_hash(&first, to_tag), loop_hash(&again, to_tag));
        }
    }

    #[test]
    fn dialog_forming_methods_are_target_refreshes_and_update_only_refreshes() {
        let forming = [
            Method::Invite,
            Method::Subscribe,
            Method::Refer,
            Method::Notify,
        ];
        for method in &forming {
            assert!(is_dialog_forming(method), "{method:?}");
            assert!(is_target_refresh(method), "{method:?}");
        }
        assert!(!is_dialog_forming(&Method::Update));
        assert!(is_target_refresh(&Method::Update));
        for method in [
            Method::Ack,
            Method::Bye,
            Method::Cancel,
            Method::Register,
            Method::Options,
            Method::Info,
            Method::Prack,
            Method::Message,
            Method::Publish,
            Method::Extension(Bytes::from_static(b"FOO")),
        ] {
            assert!(!is_dialog_forming(&method), "{method:?}");
            assert!(!is_target_refresh(&method), "{method:?}");
        }
    }

    fn token() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9]{1,12}"
    }

    proptest! {
        /// What only changes hop by hop (Via, Max-Forwards) or never identifies the request
        /// (body) leaves the hash alone: a retransmission or the same request relayed again
        /// gets the same value.
        #[test]
        fn hop_by_hop_fields_do_not_change_the_hash(
            branch in token(),
            max_forwards in 0_u8..=70,
            body in "[a-z ]{0,40}",
        ) {
            let base = fields();
            let relayed = Fields { branch: format!("z9hG4bK{branch}"), max_forwards, body, ..base.clone() };
            prop_assert_eq!(both(&base), both(&relayed));
        }

        /// Each field that identifies the request changes both hashes.
        #[test]
        fn identifying_fields_change_the_hash(
            user in token(),
            from_tag in token(),
            call_id in token(),
            cseq in 2_u32..(1 << 31),
            route in token(),
        ) {
            let base = fields();
            let base_hash = both(&base);
            let changed = [
                Fields { request_uri: format!("sip:{user}x@example.com"), ..base.clone() },
                Fields { from_tag: format!("{from_tag}x"), ..base.clone() },
                Fields { call_id: format!("{call_id}x"), ..base.clone() },
                Fields { cseq, ..base.clone() },
                Fields { routes: vec![format!("sip:{route}.example.net")], ..base.clone() },
            ];
            for fields in &changed {
                let hash = both(fields);
                prop_assert_ne!(hash[0], base_hash[0], "{:?}", fields);
                prop_assert_ne!(hash[1], base_hash[1], "{:?}", fields);
            }
        }

        /// The To tag changes the stateful hash and never the stateless one.
        #[test]
        fn the_to_tag_counts_only_when_hashed(tag in token()) {
            let base = fields();
            let tagged = Fields { to_tag: Some(tag), ..base.clone() };
            let [base_hashed, base_ignored] = both(&base);
            let [tagged_hashed, tagged_ignored] = both(&tagged);
            prop_assert_ne!(base_hashed, tagged_hashed);
            prop_assert_eq!(base_ignored, tagged_ignored);
        }
    }
}
