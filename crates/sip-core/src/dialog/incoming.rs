//! The peer's side of the dialog: the requests it sends us (RFC 3261 §12.2.2, §14.2, §15.1.2;
//! RFC 3262 §4 PRACK; RFC 3311 §5.2 UPDATE) and the responses we send back (§12.1.1, §13.3.1.4).

use std::time::Instant;

use bytes::Bytes;
use sip_message::{HeaderName, Message, MessageBuilder, Method};

use super::{
    Body, Dialog, DialogError, DialogId, DialogState, Rejection, Role, TerminationReason,
    carries_sdp, contact_uri, cseq_of,
};
use crate::proxy_rules::is_target_refresh;

/// What a request the peer sent in the dialog is, once [`Dialog::receive_request`] accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InDialog {
    /// A request for the caller to answer (re-INVITE, UPDATE, INFO, OPTIONS, …) with
    /// [`Dialog::respond`].
    Request {
        /// Its method.
        method: Method,
        /// Its CSeq number.
        cseq: u32,
        /// Whether a 2xx to it replaces the remote target with its Contact (§12.2.2).
        target_refresh: bool,
    },
    /// A BYE: the dialog has ended (§15.1.2). Answer it 200, and requests of the dialog still
    /// unanswered 487.
    Bye {
        /// Its CSeq number.
        cseq: u32,
    },
    /// A PRACK for our reliable provisional response with `rseq` (RFC 3262 §4): the response's
    /// retransmissions stop. Answer it 200.
    Prack {
        /// Its CSeq number.
        cseq: u32,
        /// The RSeq it acknowledges.
        rseq: u32,
    },
    /// The ACK for our 2xx to the INVITE with CSeq `cseq`: the 2xx retransmissions stop.
    Ack {
        /// The INVITE's CSeq number.
        cseq: u32,
    },
    /// An ACK for no 2xx waiting for one (a retransmission): drop it.
    StrayAck,
}

impl Dialog {
    /// Checks a request the peer sent in this dialog and updates the dialog (§12.2.2): the
    /// remote sequence number rises to its CSeq, a BYE ends the dialog, an ACK or PRACK stops
    /// the matching retransmission, an INVITE counts as in progress until [`Dialog::respond`]
    /// sends its final response.
    ///
    /// # Errors
    /// The [`Rejection`] to answer with: 481 when the request names another dialog or this one
    /// has ended (or a PRACK matches no reliable provisional response), 500 when its CSeq is
    /// lower than the remote sequence number, 491 when its INVITE or offer collides with ours,
    /// 500 with Retry-After when it overlaps the peer's own unanswered INVITE or offer. A
    /// rejected ACK is dropped, never answered.
    pub fn receive_request(&mut self, request: &Message) -> Result<InDialog, Rejection> {
        let method = request.method().ok_or(Rejection::NO_DIALOG)?;
        if DialogId::of_received_request(request).as_ref() != Some(&self.id) {
            return Err(Rejection::NO_DIALOG);
        }
        let (cseq, _) = cseq_of(request).map_err(|_| Rejection::OUT_OF_ORDER)?;
        let has_sdp = carries_sdp(request);
        match method {
            // The ACK carries its INVITE's CSeq, which the remote sequence number already counts.
            Method::Ack => {
                return Ok(if self.session.ack_received(cseq, has_sdp) {
                    InDialog::Ack { cseq }
                } else {
                    InDialog::StrayAck
                });
            }
            // A CANCEL matches its request in the transaction layer (§9.2) and shares its CSeq.
            Method::Cancel => {
                return Ok(InDialog::Request {
                    method: Method::Cancel,
                    cseq,
                    target_refresh: false,
                });
            }
            _ => {}
        }
        if self.state == DialogState::Terminated {
            return Err(Rejection::NO_DIALOG);
        }
        if self.remote_seq.is_some_and(|remote| cseq < remote) {
            return Err(Rejection::OUT_OF_ORDER);
        }
        self.remote_seq = Some(cseq);
        if let Some(rejection) = self.session.check_received(method, has_sdp) {
            return Err(rejection);
        }
        match method {
            Method::Bye => {
                self.terminate(TerminationReason::ByeReceived);
                Ok(InDialog::Bye { cseq })
            }
            Method::Prack => {
                let (rseq, invite_cseq) = rack_of(request).ok_or(Rejection::NO_DIALOG)?;
                if !self.session.prack_received(rseq, invite_cseq) {
                    return Err(Rejection::NO_DIALOG);
                }
                if has_sdp {
                    self.session.sdp(false, true, cseq, true);
                }
                Ok(InDialog::Prack { cseq, rseq })
            }
            _ => {
                if *method == Method::Invite {
                    self.session.invite_received(cseq);
                    if has_sdp {
                        self.session.invite_sdp(false, cseq, false, true);
                    }
                } else if has_sdp && *method == Method::Update {
                    self.session.sdp(false, true, cseq, true);
                }
                Ok(InDialog::Request {
                    method: method.clone(),
                    cseq,
                    target_refresh: is_target_refresh(method),
                })
            }
        }
    }

    /// Our response to `request` (the dialog-forming request or one that
    /// [`Dialog::receive_request`] accepted), recorded in the dialog: Via, From, To, Call-ID and
    /// CSeq copied, our tag added to a To without one, the request's Record-Route copied into a
    /// 101–299 answer to the forming request (§12.1.1), our Contact in 101–299 answers to
    /// dialog-forming and target refresh requests, and `body`.
    ///
    /// A 2xx to the forming INVITE confirms the dialog, a 300–699 ends it (§12.3); a 2xx to a
    /// target refresh takes the request's Contact as the new remote target; a 2xx to an INVITE
    /// is retransmitted (as [`super::DialogEvent::Retransmit`]) until the ACK (§13.3.1.4).
    pub fn respond(
        &mut self,
        now: Instant,
        request: &Message,
        status: u16,
        reason: &str,
        body: Option<Body>,
    ) -> Message {
        let response = self.build_response(request, status, reason, body.as_ref(), &[]);
        self.response_sent(now, request, &response, body.as_ref());
        response
    }

    /// A reliable provisional response (RFC 3262 §3) to the INVITE `request`:
    /// `Require: 100rel` and an RSeq, the first one 1 + `random` mod (2^31 − 1), then counting
    /// up. It is retransmitted (T1 doubling) until its PRACK arrives, and
    /// [`super::DialogEvent::PrackTimeout`] reports 64·T1 without one.
    ///
    /// # Errors
    /// [`DialogError::NotInvite`] unless `request` is the peer's INVITE still unanswered and
    /// `status` is 101–199; [`DialogError::ReliableProvisionalPending`] while the previous one
    /// has no PRACK.
    pub fn respond_reliably(
        &mut self,
        now: Instant,
        request: &Message,
        status: u16,
        reason: &str,
        body: Option<Body>,
        random: u32,
    ) -> Result<Message, DialogError> {
        let (cseq, method) = cseq_of(request)?;
        if method != Method::Invite
            || !(101..200).contains(&status)
            || self.session.server_invite() != Some(cseq)
        {
            return Err(DialogError::NotInvite);
        }
        let rseq = self.session.reliable_provisional_rseq(random)?;
        let extra = [
            (HeaderName::Require, Bytes::from_static(b"100rel")),
            (HeaderName::RSeq, Bytes::from(rseq.to_string())),
        ];
        let response = self.build_response(request, status, reason, body.as_ref(), &extra);
        self.session
            .reliable_provisional_sent(now, rseq, cseq, &response, &self.timers);
        if body.as_ref().is_some_and(Body::is_sdp) {
            self.session.invite_sdp(false, cseq, true, false);
        }
        Ok(response)
    }

    fn build_response(
        &self,
        request: &Message,
        status: u16,
        reason: &str,
        body: Option<&Body>,
        extra: &[(HeaderName, Bytes)],
    ) -> Message {
        let forming = self.is_forming_request(request);
        let mut builder =
            MessageBuilder::response_to(request, status, Bytes::copy_from_slice(reason.as_bytes()));
        if status > 100 {
            builder = builder.to_tag(self.id.local_tag.clone());
        }
        let creates = (101..300).contains(&status);
        if creates && forming {
            for route in request.header_values(&HeaderName::RecordRoute) {
                builder = builder.header(HeaderName::RecordRoute, Bytes::copy_from_slice(route));
            }
        }
        if creates && request.method().is_some_and(is_target_refresh) {
            builder = builder.header(HeaderName::Contact, self.local_contact.clone());
        }
        for (name, value) in extra {
            builder = builder.header(name.clone(), value.clone());
        }
        if let Some(body) = body {
            builder = builder.body(body.content_type.clone(), body.content.clone());
        }
        builder.build()
    }

    /// Whether `request` is the one that formed this dialog at the UAS.
    fn is_forming_request(&self, request: &Message) -> bool {
        self.role == Role::Uas
            && request.to().is_ok_and(|to| to.tag().is_none())
            && cseq_of(request)
                .is_ok_and(|(cseq, method)| cseq == self.creator_cseq && method == self.creator)
    }

    fn response_sent(
        &mut self,
        now: Instant,
        request: &Message,
        response: &Message,
        body: Option<&Body>,
    ) {
        let Some(status) = response.status() else {
            return;
        };
        let Ok((cseq, method)) = cseq_of(request) else {
            return;
        };
        let forming = self.is_forming_request(request);
        let success = (200..300).contains(&status);
        if status >= 200 && method == Method::Invite {
            self.session
                .invite_final_sent(now, cseq, response, &self.timers);
        }
        if success {
            if forming && self.state == DialogState::Early {
                self.state = DialogState::Confirmed;
            }
            if is_target_refresh(&method)
                && let Some(target) = contact_uri(request)
            {
                self.remote_target = target;
            }
            if body.is_some_and(Body::is_sdp) {
                if method == Method::Invite {
                    self.session.invite_sdp(false, cseq, true, false);
                } else {
                    self.session.sdp(true, false, cseq, false);
                }
            }
        } else if status >= 300 {
            self.session.request_failed(false, cseq);
            if forming {
                self.terminate(TerminationReason::Rejected(status));
            }
        }
    }
}

/// `RAck: <RSeq> <CSeq number> <method>` (RFC 3262 §7.2), for an INVITE.
fn rack_of(request: &Message) -> Option<(u32, u32)> {
    let value = std::str::from_utf8(request.header(&HeaderName::RAck)?).ok()?;
    let mut parts = value.split_ascii_whitespace();
    let rseq = parts.next()?.parse().ok()?;
    let cseq = parts.next()?.parse().ok()?;
    (parts.next()? == "INVITE" && parts.next().is_none()).then_some((rseq, cseq))
}
