//! Minimal state of confirmed dialogs, so the proxy itself can end a call (send BYE to both
//! phones) when the media relay reports that its media stopped — what Kamailio's `dialog`
//! module does with `dlg_end_dlg`. Sans I/O: built from the INVITE and its 2xx as the proxy saw
//! them, updated from in-dialog requests, and it writes BYE requests for the caller to send.
//!
//! The route set towards each party comes from the 2xx's Record-Route (RFC 3261 §12.1): the
//! entries after this proxy's own lead to the callee (in order), the entries before it lead
//! back to the caller (reversed). The remote targets are the Contacts of the INVITE and the 2xx,
//! refreshed by re-INVITE and UPDATE (RFC 3261 §12.2, RFC 3311). Each side's CSeq is the highest
//! seen in its requests; a BYE on its behalf takes the next number.

use bytes::Bytes;
use sip_message::{HeaderName, Message, MessageBuilder, Method, NameAddr, Uri};

/// One end of the dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogParty {
    /// The party's dialog tag.
    pub tag: String,
    /// The party's own identity with its tag (the caller's From, the callee's To value).
    pub address: String,
    /// Where requests to the party go (its Contact URI).
    pub target: String,
    /// Route values from this proxy towards the party, next hop first.
    pub route_set: Vec<String>,
    /// Highest CSeq number in the party's requests.
    pub cseq: u32,
}

/// Which end of the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Caller,
    Callee,
}

/// A confirmed dialog as this proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub call_id: String,
    pub caller: DialogParty,
    pub callee: DialogParty,
}

/// Why a dialog could not be built from an INVITE and its 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("the INVITE or its 2xx lacks {0}")]
    Missing(&'static str),
    #[error("this proxy's Record-Route is not in the 2xx")]
    NotRecordRouted,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The URI of the first Contact (angle brackets and header parameters gone).
fn contact_uri(message: &Message) -> Option<String> {
    let contact = message.contacts().next()?.ok()?;
    Some(text(contact.address()?.uri.raw))
}

impl Dialog {
    /// The dialog an initial INVITE (as received, before this proxy's own Record-Route) and
    /// its 2xx (as received from downstream) create. `is_own` tells this proxy's Record-Route
    /// URI apart.
    ///
    /// # Errors
    /// [`DialogError`] when a header the dialog needs is missing or malformed, or the 2xx does
    /// not carry this proxy's Record-Route.
    pub fn confirmed(
        invite: &Message,
        response: &Message,
        is_own: impl Fn(&Uri<'_>) -> bool,
    ) -> Result<Dialog, DialogError> {
        let call_id = text(
            invite
                .call_id()
                .map_err(|_| DialogError::Missing("Call-ID"))?,
        );
        let from = invite.from().map_err(|_| DialogError::Missing("From"))?;
        let to = response.to().map_err(|_| DialogError::Missing("To"))?;
        let caller_tag = from.tag().ok_or(DialogError::Missing("a From tag"))?;
        let callee_tag = to.tag().ok_or(DialogError::Missing("a To tag"))?;
        let cseq = invite
            .cseq()
            .map_err(|_| DialogError::Missing("CSeq"))?
            .number;
        let caller_target = contact_uri(invite).ok_or(DialogError::Missing("a caller Contact"))?;
        let callee_target =
            contact_uri(response).ok_or(DialogError::Missing("a callee Contact"))?;
        let record_route: Vec<NameAddr<'_>> = response
            .record_routes()
            .collect::<Result<_, _>>()
            .map_err(|_| DialogError::Missing("a valid Record-Route"))?;
        let own = record_route
            .iter()
            .position(|entry| is_own(&entry.uri))
            .ok_or(DialogError::NotRecordRouted)?;
        // A proxy that changes transport records twice; skip every entry of ours.
        let own_end = own
            + record_route[own..]
                .iter()
                .take_while(|entry| is_own(&entry.uri))
                .count();
        let towards_caller = record_route[..own]
            .iter()
            .rev()
            .map(|entry| text(entry.raw))
            .collect();
        let towards_callee = record_route[own_end..]
            .iter()
            .map(|entry| text(entry.raw))
            .collect();
        Ok(Dialog {
            call_id,
            caller: DialogParty {
                tag: text(caller_tag),
                address: text(from.raw),
                target: caller_target,
                route_set: towards_caller,
                cseq,
            },
            callee: DialogParty {
                tag: text(callee_tag),
                address: text(to.raw),
                target: callee_target,
                route_set: towards_callee,
                cseq: 0,
            },
        })
    }

    /// The party with dialog tag `tag`.
    #[must_use]
    pub fn side_of(&self, tag: &[u8]) -> Option<Side> {
        if self.caller.tag.as_bytes() == tag {
            Some(Side::Caller)
        } else if self.callee.tag.as_bytes() == tag {
            Some(Side::Callee)
        } else {
            None
        }
    }

    fn party_mut(&mut self, side: Side) -> &mut DialogParty {
        match side {
            Side::Caller => &mut self.caller,
            Side::Callee => &mut self.callee,
        }
    }

    /// Learns from an in-dialog request: its sender's CSeq and, for a target refresh
    /// (re-INVITE, UPDATE), the sender's new Contact. Requests of other dialogs are ignored.
    pub fn observe_request(&mut self, request: &Message) {
        let Some(side) = request
            .from()
            .ok()
            .and_then(|from| from.tag())
            .and_then(|tag| self.side_of(tag))
        else {
            return;
        };
        let cseq = request.cseq().ok().map(|cseq| cseq.number);
        let refresh = matches!(request.method(), Some(Method::Invite | Method::Update));
        let contact = refresh.then(|| contact_uri(request)).flatten();
        let party = self.party_mut(side);
        if let Some(cseq) = cseq {
            party.cseq = party.cseq.max(cseq);
        }
        if let Some(contact) = contact {
            party.target = contact;
        }
    }

    /// A BYE to `towards`, sent on behalf of the other party (its tag in From, its next CSeq),
    /// without a Via (the transaction layer's user adds its own). Returns the request and the
    /// URI of its next hop: the first route, else the target.
    pub fn bye(&mut self, towards: Side, reason: &str) -> (Message, String) {
        let (sender, recipient) = match towards {
            Side::Callee => (&mut self.caller, &self.callee),
            Side::Caller => (&mut self.callee, &self.caller),
        };
        sender.cseq = sender.cseq.saturating_add(1);
        let mut builder = MessageBuilder::request(Method::Bye, recipient.target.clone());
        for route in &recipient.route_set {
            builder = builder.header(HeaderName::Route, route.clone());
        }
        let builder = builder
            .header(HeaderName::MaxForwards, "70")
            .header(HeaderName::From, sender.address.clone())
            .header(HeaderName::To, recipient.address.clone())
            .header(HeaderName::CallId, self.call_id.clone())
            .header(HeaderName::CSeq, format!("{} BYE", sender.cseq))
            .header(
                HeaderName::from_static("Reason"),
                Bytes::from(format!("SIP;cause=200;text=\"{reason}\"")),
            );
        let next_hop = recipient
            .route_set
            .first()
            .map(|route| strip_name_addr(route).to_owned())
            .unwrap_or_else(|| recipient.target.clone());
        (builder.build(), next_hop)
    }
}

/// `<sip:…;lr>;params` → `sip:…;lr`.
fn strip_name_addr(value: &str) -> &str {
    let value = value.trim();
    match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "127.0.0.1:5062";

    fn is_own(uri: &Uri<'_>) -> bool {
        uri.host.as_bytes() == b"127.0.0.1" && uri.port == Some(5062)
    }

    fn parse(text: &str) -> Message {
        Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap()
    }

    fn invite() -> Message {
        parse(
            "INVITE sip:bob@example.org SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:5064;branch=z9hG4bKlb\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa\n\
             Record-Route: <sip:127.0.0.1:5064;lr>\n\
             Record-Route: <sip:203.0.113.1:5060;lr>\n\
             From: \"Alice\" <sip:alice@example.org>;tag=caller-tag\n\
             To: <sip:bob@example.org>\n\
             Call-ID: call-1\n\
             CSeq: 7 INVITE\n\
             Contact: <sip:alice@192.0.2.10:5060;alias=192.0.2.10~5060~1>\n\
             Max-Forwards: 69\n\
             Content-Length: 0\n\n",
        )
    }

    fn ok() -> Message {
        parse(&format!(
            "SIP/2.0 200 OK\n\
             Via: SIP/2.0/UDP 127.0.0.1:5064;branch=z9hG4bKlb\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa\n\
             Record-Route: <sip:127.0.0.1:5064;lr;vxf=ab>, <sip:203.0.113.1:5060;lr>\n\
             Record-Route: <sip:{OWN};lr>\n\
             Record-Route: <sip:127.0.0.1:5064;lr>,<sip:203.0.113.1:5060;lr>\n\
             From: \"Alice\" <sip:alice@example.org>;tag=caller-tag\n\
             To: <sip:bob@example.org>;tag=callee-tag\n\
             Call-ID: call-1\n\
             CSeq: 7 INVITE\n\
             Contact: <sip:bob@198.51.100.4:5070>\n\
             Content-Length: 0\n\n"
        ))
    }

    #[test]
    fn a_2xx_confirms_the_dialog_with_a_route_set_each_way() {
        let dialog = Dialog::confirmed(&invite(), &ok(), is_own).unwrap();
        assert_eq!(dialog.call_id, "call-1");
        assert_eq!(dialog.caller.tag, "caller-tag");
        assert_eq!(dialog.callee.tag, "callee-tag");
        assert_eq!(
            dialog.caller.target,
            "sip:alice@192.0.2.10:5060;alias=192.0.2.10~5060~1"
        );
        assert_eq!(dialog.callee.target, "sip:bob@198.51.100.4:5070");
        // Towards the caller: the entries before ours, nearest first.
        assert_eq!(
            dialog.caller.route_set,
            [
                "<sip:203.0.113.1:5060;lr>",
                "<sip:127.0.0.1:5064;lr;vxf=ab>"
            ]
        );
        assert_eq!(
            dialog.callee.route_set,
            ["<sip:127.0.0.1:5064;lr>", "<sip:203.0.113.1:5060;lr>"]
        );
        assert_eq!((dialog.caller.cseq, dialog.callee.cseq), (7, 0));
    }

    #[test]
    fn a_2xx_without_our_record_route_or_tag_is_refused() {
        let mut response = ok();
        response.remove_header(&HeaderName::RecordRoute);
        let response = Message::parse(response.to_bytes()).unwrap();
        assert_eq!(
            Dialog::confirmed(&invite(), &response, is_own),
            Err(DialogError::NotRecordRouted)
        );
        let untagged = parse(
            "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5064;branch=z9hG4bKlb\n\
             From: <sip:alice@example.org>;tag=caller-tag\nTo: <sip:bob@example.org>\n\
             Call-ID: call-1\nCSeq: 7 INVITE\nContact: <sip:bob@198.51.100.4>\n\
             Content-Length: 0\n\n",
        );
        assert_eq!(
            Dialog::confirmed(&invite(), &untagged, is_own),
            Err(DialogError::Missing("a To tag"))
        );
    }

    #[test]
    fn byes_go_both_ways_on_behalf_of_the_other_party() {
        let mut dialog = Dialog::confirmed(&invite(), &ok(), is_own).unwrap();
        let (to_callee, hop) = dialog.bye(Side::Callee, "Media Timeout");
        assert_eq!(hop, "sip:127.0.0.1:5064;lr");
        let to_callee = Message::parse(to_callee.to_bytes()).unwrap();
        assert_eq!(to_callee.method(), Some(&Method::Bye));
        assert_eq!(
            to_callee.request_uri_bytes(),
            Some(&b"sip:bob@198.51.100.4:5070"[..])
        );
        assert_eq!(to_callee.from().unwrap().tag(), Some(&b"caller-tag"[..]));
        assert_eq!(to_callee.to().unwrap().tag(), Some(&b"callee-tag"[..]));
        let cseq = to_callee.cseq().unwrap();
        assert_eq!((cseq.number, cseq.method), (8, Method::Bye));
        assert_eq!(to_callee.routes().count(), 2);
        assert_eq!(to_callee.call_id().unwrap(), b"call-1");

        let (to_caller, hop) = dialog.bye(Side::Caller, "Media Timeout");
        assert_eq!(hop, "sip:203.0.113.1:5060;lr");
        let to_caller = Message::parse(to_caller.to_bytes()).unwrap();
        assert_eq!(
            to_caller.request_uri_bytes(),
            Some(&b"sip:alice@192.0.2.10:5060;alias=192.0.2.10~5060~1"[..])
        );
        assert_eq!(to_caller.from().unwrap().tag(), Some(&b"callee-tag"[..]));
        assert_eq!(to_caller.to().unwrap().tag(), Some(&b"caller-tag"[..]));
        assert_eq!(to_caller.cseq().unwrap().number, 1);
        let routes: Vec<String> = to_caller
            .routes()
            .map(|route| text(route.unwrap().raw))
            .collect();
        assert_eq!(dialog.caller.route_set, routes);
    }

    #[test]
    fn in_dialog_requests_move_cseq_and_refresh_targets() {
        let mut dialog = Dialog::confirmed(&invite(), &ok(), is_own).unwrap();
        // A re-INVITE from the callee with a new Contact.
        dialog.observe_request(&parse(
            "INVITE sip:alice@192.0.2.10 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK9\n\
             From: <sip:bob@example.org>;tag=callee-tag\n\
             To: <sip:alice@example.org>;tag=caller-tag\nCall-ID: call-1\n\
             CSeq: 42 INVITE\nContact: <sip:bob@198.51.100.9:5080>\nContent-Length: 0\n\n",
        ));
        assert_eq!(dialog.callee.cseq, 42);
        assert_eq!(dialog.callee.target, "sip:bob@198.51.100.9:5080");
        // An INFO from the caller moves its CSeq but is no target refresh.
        dialog.observe_request(&parse(
            "INFO sip:bob@198.51.100.9 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK8\n\
             From: <sip:alice@example.org>;tag=caller-tag\n\
             To: <sip:bob@example.org>;tag=callee-tag\nCall-ID: call-1\n\
             CSeq: 9 INFO\nContact: <sip:alice@10.9.9.9>\nContent-Length: 0\n\n",
        ));
        assert_eq!(dialog.caller.cseq, 9);
        assert!(dialog.caller.target.starts_with("sip:alice@192.0.2.10"));
        // A stranger's request changes nothing.
        let before = dialog.clone();
        dialog.observe_request(&parse(
            "INFO sip:bob@198.51.100.9 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK7\n\
             From: <sip:mallory@example.org>;tag=other\nTo: <sip:bob@example.org>;tag=x\n\
             Call-ID: call-1\nCSeq: 999 INFO\nContent-Length: 0\n\n",
        ));
        assert_eq!(dialog, before);
        let (bye, _) = dialog.bye(Side::Caller, "Media Timeout");
        assert_eq!(bye.cseq().unwrap().number, 43);
        assert_eq!(
            bye.request_uri_bytes(),
            Some(&b"sip:alice@192.0.2.10:5060;alias=192.0.2.10~5060~1"[..])
        );
    }
}
