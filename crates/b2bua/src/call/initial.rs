//! The call's set-up: the caller's INVITE checked, the B leg's INVITE built anew, the B leg's
//! answers to it relayed to the caller (forks, early media, the 2xx and its ACK), and the
//! caller's CANCEL.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use sip_core::dialog::{Dialog, DialogId, DialogSet, ResponseOutcome, is_in_dialog};
use sip_core::transaction::make_response;
use sip_message::{HeaderName, Message, MessageBuilder, Method, NameAddr, Uri};

use super::filter::{body_of, crossing_headers, mapped_status, unsupported_requirements};
use super::{
    AckRelay, Action, Answer, Call, EndReason, Leg, LegConfig, Outbound, Rejection, SplitMix64,
};

/// The CSeq number of our B leg INVITE (RFC 3261 §8.1.1.5 allows any below 2^31).
pub(super) const B_INVITE_CSEQ: u32 = 1;

/// Max-Forwards of the B leg INVITE when the caller's has none (RFC 3261 §8.1.1.6).
const DEFAULT_MAX_FORWARDS: u32 = 70;

impl Call {
    /// Takes the caller's INVITE (as the transaction layer passed it up) and builds the B
    /// leg's INVITE anew: Request-URI `outbound.request_uri`; From with the caller's display
    /// name and URI (or `outbound.from`) and a new tag; To with the caller's To URI (or
    /// `outbound.to`) and no tag; a new Call-ID; CSeq 1; Max-Forwards one below the caller's
    /// (70 without one); our B leg Contact; the crossing headers ([`super::HeaderPolicy`]);
    /// User-Agent from the configuration; the caller's body. No Via: the shell adds it.
    ///
    /// `random` seeds the call's tags, Call-ID and Retry-After values: draw it from a
    /// cryptographic generator.
    ///
    /// # Errors
    /// The [`Rejection`] to answer the caller with: 483 when Max-Forwards is 0, 420 (with the
    /// option tags) when Require names one the core does not pass, 400 for a request that is
    /// no INVITE or lacks what a dialog needs (From tag, Call-ID, CSeq, Contact), 481 for an
    /// INVITE with a To tag (a re-INVITE of a dialog we do not know), 500 when `outbound`
    /// does not parse.
    pub fn new(
        now: Instant,
        invite: &Message,
        outbound: &Outbound,
        config: &LegConfig,
        random: u64,
    ) -> Result<(Call, Message), Rejection> {
        if invite.method() != Some(&Method::Invite) {
            return Err(Rejection::new(400));
        }
        if is_in_dialog(invite) {
            return Err(Rejection::new(481));
        }
        let max_forwards = match invite.max_forwards() {
            Ok(Some(0)) => return Err(Rejection::new(483)),
            Ok(Some(hops)) => hops - 1,
            Ok(None) => DEFAULT_MAX_FORWARDS,
            Err(_) => return Err(Rejection::new(400)),
        };
        let unsupported = unsupported_requirements(invite, &config.headers);
        if !unsupported.is_empty() {
            return Err(Rejection {
                unsupported,
                ..Rejection::new(420)
            });
        }
        let mut random = SplitMix64(random);
        let a_tag = random.token();
        let b_tag = random.token();
        let b_call_id = Bytes::from(format!("{:016x}{:016x}", random.next(), random.next()));
        let a = Dialog::from_uas_request(invite, a_tag, config.a_contact.clone())
            .map_err(|_| Rejection::new(400))?
            .with_timers(config.timers);
        let a_invite_cseq = invite.cseq().map_err(|_| Rejection::new(400))?.number;
        let parties = Parties::of(invite, outbound).ok_or(Rejection::new(500))?;
        let mut builder = MessageBuilder::request(Method::Invite, outbound.request_uri.clone())
            .header(HeaderName::MaxForwards, max_forwards.to_string())
            .header(HeaderName::From, parties.from(&b_tag))
            .header(HeaderName::To, parties.to)
            .header(HeaderName::CallId, b_call_id.clone())
            .header(HeaderName::CSeq, format!("{B_INVITE_CSEQ} INVITE"))
            .header(HeaderName::Contact, config.b_contact.clone());
        for (name, value) in crossing_headers(invite, &config.headers) {
            builder = builder.header(name, value);
        }
        if let Some(agent) = &config.user_agent {
            builder = builder.header(HeaderName::UserAgent, agent.clone());
        }
        if let Some(body) = body_of(invite) {
            builder = builder.body(body.content_type, body.content);
        }
        let b_invite = builder.build();
        let call = Call {
            config: config.clone(),
            random,
            started_at: now,
            a,
            a_invite: invite.clone(),
            a_invite_cseq,
            a_invite_answered: false,
            b: DialogSet::new(),
            b_invite: b_invite.clone(),
            b_call_id,
            b_invite_answered: false,
            b_cancelled: false,
            b_current: None,
            answered_at: None,
            deadline: None,
            relayed: BTreeMap::new(),
            next_relay: 0,
            own: Vec::new(),
            acks: [None, None],
            last_2xx: [None, None],
            bye_after_ack: [false, false],
            ended: None,
            actions: VecDeque::new(),
        };
        Ok((call, b_invite))
    }

    /// A response to our B leg INVITE (every fork's).
    pub(super) fn initial_response(&mut self, now: Instant, response: Message) {
        let Some(status) = response.status() else {
            return;
        };
        let routed = match self.b.receive_response(&self.b_invite, &response) {
            Ok(routed) => routed,
            Err(error) => {
                tracing::debug!(%error, status, "B leg response fits no dialog");
                None
            }
        };
        match status {
            100 => {}
            101..=199 => {
                if let Some(routed) = &routed {
                    if !self.b_invite_answered {
                        self.b_current = Some(routed.id.clone());
                    }
                    if let ResponseOutcome::ReliableProvisional { .. } = routed.outcome {
                        self.prack(Leg::B, &response);
                    }
                }
                if !self.a_invite_answered {
                    let invite = self.a_invite.clone();
                    self.respond(now, Leg::A, &invite, Answer::relayed(&response, status));
                }
            }
            200..=299 => {
                let Some(routed) = routed else {
                    // A 2xx without To tag or Contact forms no dialog we could ACK or BYE.
                    if !self.b_invite_answered {
                        self.b_invite_answered = true;
                        self.reject_a(now, None, status, 502);
                    }
                    return;
                };
                match routed.outcome {
                    ResponseOutcome::Success => self.answered(now, routed.id, response),
                    ResponseOutcome::SuccessRetransmission => {
                        self.retransmitted_2xx(Leg::B, &response);
                    }
                    ResponseOutcome::AdditionalFork => self.take_back(Leg::B, &response),
                    _ => {}
                }
            }
            _ => {
                if !self.b_invite_answered {
                    self.b_invite_answered = true;
                    self.reject_a(now, Some(&response), status, mapped_status(status));
                }
            }
        }
    }

    /// The first 2xx to our B leg INVITE: relayed to the caller, whose ACK the core waits for
    /// to acknowledge it; or, when the caller is gone already, acknowledged and ended.
    fn answered(&mut self, now: Instant, id: DialogId, response: Message) {
        self.b_invite_answered = true;
        self.b_current = Some(id.clone());
        if self.a_invite_answered {
            self.take_back(Leg::B, &response);
            return;
        }
        self.answered_at = Some(now);
        self.deadline = self
            .config
            .max_duration
            .and_then(|limit| now.checked_add(limit));
        self.acks[Leg::A.index()] = Some(AckRelay {
            ack_cseq: self.a_invite_cseq,
            dialog: Some(id),
            response: response.clone(),
            sent: None,
        });
        let status = response.status().unwrap_or(200);
        let invite = self.a_invite.clone();
        self.a_invite_answered = true;
        self.respond(now, Leg::A, &invite, Answer::relayed(&response, status));
    }

    /// The caller's INVITE fails with `sent` because the B leg's failed with `received`
    /// (`response`, whose reason phrase and crossing headers go along when there is one).
    fn reject_a(&mut self, now: Instant, response: Option<&Message>, received: u16, sent: u16) {
        if self.a_invite_answered {
            return;
        }
        self.a_invite_answered = true;
        let invite = self.a_invite.clone();
        let answer = match response {
            Some(response) => Answer::relayed(response, sent),
            None => Answer::plain(sent),
        };
        self.respond(now, Leg::A, &invite, answer);
        self.end(EndReason::Rejected { received, sent });
    }

    /// The caller's CANCEL (§9.2): 200 to it; for the initial INVITE still unanswered, 487 to
    /// the INVITE at once and a CANCEL for the B leg; for a re-INVITE being relayed, a CANCEL
    /// on the other leg, whose final answer is then relayed.
    pub(super) fn cancel_from(&mut self, now: Instant, leg: Leg, cancel: &Message) {
        let Ok(cseq) = cancel.cseq().map(|cseq| cseq.number) else {
            return;
        };
        let tag = self.a.id().local_tag.clone();
        let to_tag = (leg == Leg::A && !is_in_dialog(cancel)).then_some(&tag[..]);
        let ok = make_response(cancel, 200, "OK", to_tag);
        self.respond_raw(leg, ok);
        if leg == Leg::A && !is_in_dialog(cancel) {
            if cseq == self.a_invite_cseq && !self.a_invite_answered {
                self.a_invite_answered = true;
                let invite = self.a_invite.clone();
                self.respond(now, Leg::A, &invite, Answer::plain(487));
                self.hang_up(Leg::B, true);
                self.end(EndReason::Cancelled);
            }
            return;
        }
        let relayed = self.relayed.values().find(|relayed| {
            relayed.origin == leg
                && relayed.request.method() == Some(&Method::Invite)
                && relayed.request.cseq().is_ok_and(|c| c.number == cseq)
        });
        if let Some(relayed) = relayed {
            let action = Action::cancel(leg.other(), relayed.cseq);
            self.actions.push_back(action);
        }
    }
}

/// From and To of the B leg INVITE, without tags.
struct Parties {
    from: Bytes,
    to: Bytes,
}

impl Parties {
    fn of(invite: &Message, outbound: &Outbound) -> Option<Parties> {
        Uri::parse(&outbound.request_uri).ok()?;
        let from = match &outbound.from {
            Some(from) => checked_name_addr(from, &HeaderName::From)?,
            None => {
                let from = invite.from().ok()?;
                name_addr(from.display_name, from.uri.raw)
            }
        };
        let to = match &outbound.to {
            Some(to) => checked_name_addr(to, &HeaderName::To)?,
            None => name_addr(None, invite.to().ok()?.uri.raw),
        };
        Some(Parties { from, to })
    }

    fn from(&self, tag: &[u8]) -> Bytes {
        let mut value = Vec::with_capacity(self.from.len() + tag.len() + 5);
        value.extend_from_slice(&self.from);
        value.extend_from_slice(b";tag=");
        value.extend_from_slice(tag);
        Bytes::from(value)
    }
}

/// `"Name" <uri>` or `<uri>`.
fn name_addr(display_name: Option<&[u8]>, uri: &[u8]) -> Bytes {
    let mut value = Vec::with_capacity(uri.len() + 34);
    if let Some(name) = display_name {
        value.extend_from_slice(name);
        value.push(b' ');
    }
    value.push(b'<');
    value.extend_from_slice(uri);
    value.push(b'>');
    Bytes::from(value)
}

/// A configured From/To: it must parse and carry no tag.
fn checked_name_addr(value: &Bytes, header: &HeaderName) -> Option<Bytes> {
    let address = NameAddr::parse(value, header).ok()?;
    if address.tag().is_some() {
        return None;
    }
    Some(name_addr(address.display_name, address.uri.raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_parties_must_parse_without_tag() {
        let ok = Bytes::from_static(b"\"Anonymous\" <sip:anonymous@anonymous.invalid>");
        assert_eq!(
            checked_name_addr(&ok, &HeaderName::From),
            Some(Bytes::from_static(
                b"\"Anonymous\" <sip:anonymous@anonymous.invalid>"
            ))
        );
        let plain = Bytes::from_static(b"sip:+4312345@carrier.example");
        assert_eq!(
            checked_name_addr(&plain, &HeaderName::To),
            Some(Bytes::from_static(b"<sip:+4312345@carrier.example>"))
        );
        let tagged = Bytes::from_static(b"<sip:a@example.com>;tag=1");
        assert_eq!(checked_name_addr(&tagged, &HeaderName::From), None);
        assert_eq!(checked_name_addr(&Bytes::new(), &HeaderName::From), None);
    }

    #[test]
    fn tokens_differ_and_repeat_per_seed() {
        let mut one = SplitMix64(7);
        let mut again = SplitMix64(7);
        let first = one.token();
        assert_eq!(first.len(), 16);
        assert_ne!(first, one.token());
        assert_eq!(first, again.token());
    }
}
