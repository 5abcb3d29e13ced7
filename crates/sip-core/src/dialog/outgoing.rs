//! Our side of the dialog: the requests we send (RFC 3261 §12.2.1.1, §13.2.2.4, §15.1.1;
//! RFC 3262 §4 PRACK) and what the responses to them do (§12.2.1.2, §13.2.2.4, §14.1,
//! RFC 5057 §5.1).

use bytes::Bytes;
use sip_message::{HeaderName, Message, MessageBuilder, Method};

use super::failure::ends_dialog;
use super::{
    Body, Dialog, DialogError, DialogId, DialogState, Role, TerminationReason, carries_sdp,
    contact_uri, cseq_of,
};
use crate::dialog::route::RouteSet;
use crate::proxy_rules::is_target_refresh;

/// What a response to one of our requests meant; see [`Dialog::receive_response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseOutcome {
    /// A provisional response; nothing to do.
    Provisional,
    /// A new reliable provisional response (RFC 3262): acknowledge it with [`Dialog::prack`].
    ReliableProvisional {
        /// Its RSeq.
        rseq: u32,
    },
    /// A reliable provisional response seen before or out of order: ignore it (RFC 3262 §4).
    Ignored,
    /// A 2xx. For an INVITE, send [`Dialog::ack_for_2xx`] now (§13.2.2.4).
    Success,
    /// A 2xx to an INVITE that was already answered (the peer did not get our ACK): send the
    /// ACK again.
    SuccessRetransmission,
    /// A 2xx from another fork of our INVITE after one was accepted ([`super::DialogSet`] only):
    /// ACK it, then end it with a BYE (§13.2.2.4).
    AdditionalFork,
    /// 491 to our re-INVITE or UPDATE: the peer's collided with it. Call
    /// [`Dialog::schedule_glare_retry`] (§14.1, RFC 3311 §5.1).
    RequestPending,
    /// Any other final failure; `terminated` when it ended the dialog (the dialog-forming
    /// request was rejected, or RFC 5057 says so).
    Failure {
        /// The status code.
        status: u16,
        /// Whether the dialog is now terminated.
        terminated: bool,
    },
}

impl Dialog {
    /// A new request in the dialog (§12.2.1.1): Request-URI and Route from the remote target
    /// and route set, From with our tag, To with the peer's, the Call-ID, CSeq one above the
    /// last (1 when we have sent none), Max-Forwards 70, our Contact in target refresh requests,
    /// and `body`. No Via: the caller adds its own. A BYE ends the dialog as it is built
    /// (§15.1.1); an INVITE counts as in progress until its final response.
    ///
    /// # Errors
    /// [`DialogError`] for ACK, PRACK, CANCEL (built elsewhere), a terminated dialog, a
    /// re-INVITE in an early dialog or while another INVITE is in progress (§14.1), an offer
    /// while one is outstanding, a BYE from the callee before its 2xx was acknowledged (§15),
    /// or an exhausted CSeq.
    pub fn request(&mut self, method: Method, body: Option<Body>) -> Result<Message, DialogError> {
        if matches!(method, Method::Ack | Method::Prack | Method::Cancel) {
            return Err(DialogError::DedicatedBuilder(method));
        }
        self.check_can_send(&method)?;
        let has_sdp = body.as_ref().is_some_and(Body::is_sdp);
        self.session.check_sending(&method, has_sdp)?;
        let cseq = self.next_local_seq()?;
        let request = self.build(&method, cseq, &method, body.as_ref(), None);
        self.local_seq = Some(cseq);
        match method {
            Method::Invite => {
                self.session.invite_sent(cseq);
                if has_sdp {
                    self.session.invite_sdp(true, cseq, true, true);
                }
            }
            Method::Update if has_sdp => self.session.sdp(true, true, cseq, true),
            Method::Bye => self.terminate(TerminationReason::ByeSent),
            _ => {}
        }
        Ok(request)
    }

    /// The PRACK for `reliable_response`, a reliable provisional response that
    /// [`Dialog::receive_response`] reported as [`ResponseOutcome::ReliableProvisional`]
    /// (RFC 3262 §7.2): a new CSeq and `RAck: <RSeq> <CSeq number> INVITE`. `body` may answer an
    /// offer the response made, or make a new offer.
    ///
    /// # Errors
    /// [`DialogError::NotReliableProvisional`] when no PRACK is owed for that response;
    /// [`DialogError::OfferPending`] when `body` offers while our offer is outstanding.
    pub fn prack(
        &mut self,
        reliable_response: &Message,
        body: Option<Body>,
    ) -> Result<Message, DialogError> {
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        self.check_id(DialogId::of_received_response(reliable_response))?;
        let (invite_cseq, method) = cseq_of(reliable_response)?;
        let rseq = rseq_of(reliable_response).ok_or(DialogError::NotReliableProvisional)?;
        if method != Method::Invite {
            return Err(DialogError::NotInvite);
        }
        let has_sdp = body.as_ref().is_some_and(Body::is_sdp);
        self.session.check_sending(&Method::Prack, has_sdp)?;
        let cseq = self.next_local_seq()?;
        if !self.session.take_prack_owed(rseq, invite_cseq) {
            return Err(DialogError::NotReliableProvisional);
        }
        let rack = Bytes::from(format!("{rseq} {invite_cseq} INVITE"));
        let request = self.build(
            &Method::Prack,
            cseq,
            &Method::Prack,
            body.as_ref(),
            Some((HeaderName::RAck, rack)),
        );
        self.local_seq = Some(cseq);
        if has_sdp {
            self.session.sdp(true, true, cseq, true);
        }
        Ok(request)
    }

    /// The ACK for a 2xx to our INVITE (§13.2.2.4): built like any request of the dialog but
    /// with the INVITE's CSeq number and method ACK. `body` answers an offer the 2xx made. Also
    /// for a terminated dialog: every 2xx is acknowledged, even one we will BYE.
    ///
    /// # Errors
    /// [`DialogError::NotInvite`] unless `response` is a 2xx to an INVITE of this dialog.
    pub fn ack_for_2xx(
        &mut self,
        response: &Message,
        body: Option<Body>,
    ) -> Result<Message, DialogError> {
        self.check_id(DialogId::of_received_response(response))?;
        let (cseq, method) = cseq_of(response)?;
        if method != Method::Invite
            || !response
                .status()
                .is_some_and(|status| (200..300).contains(&status))
        {
            return Err(DialogError::NotInvite);
        }
        if body.as_ref().is_some_and(Body::is_sdp) {
            self.session.sdp(true, true, cseq, false);
        }
        Ok(self.build(&Method::Ack, cseq, &Method::Ack, body.as_ref(), None))
    }

    /// Learns from a response to a request we sent in this dialog (or to the request that
    /// formed it): a 1xx or 2xx to the forming request updates the remote target, a 2xx
    /// confirms the dialog and recomputes the route set (§13.2.2.4), a 2xx to a target refresh
    /// replaces the remote target (§12.2.1.2), 491 starts the glare rules (§14.1), a non-2xx
    /// final answer to the forming request ends the early dialog (§12.3), and the RFC 5057
    /// error responses end the dialog.
    ///
    /// # Errors
    /// [`DialogError::OtherDialog`] when the response's Call-ID and tags name another dialog;
    /// [`DialogError`] for a request or a response without CSeq.
    pub fn receive_response(&mut self, response: &Message) -> Result<ResponseOutcome, DialogError> {
        let status = response
            .status()
            .ok_or(DialogError::WrongMessageKind("response"))?;
        self.check_id(DialogId::of_received_response(response))?;
        let (cseq, method) = cseq_of(response)?;
        let forming = self.role == Role::Uac
            && self.state == DialogState::Early
            && cseq == self.creator_cseq
            && method == self.creator;
        Ok(match status {
            100..=199 if method == Method::Invite => {
                if forming && let Some(target) = contact_uri(response) {
                    self.remote_target = target;
                }
                self.reliable_provisional(cseq, response)
            }
            100..=199 => ResponseOutcome::Provisional,
            200..=299 => self.success(cseq, &method, forming, response),
            _ => self.failure(status, cseq, &method, forming),
        })
    }

    fn reliable_provisional(&mut self, cseq: u32, response: &Message) -> ResponseOutcome {
        let Some(rseq) = rseq_of(response) else {
            return ResponseOutcome::Provisional;
        };
        if self.session.client_invite() != Some(cseq)
            || !self.session.reliable_provisional_received(rseq, cseq)
        {
            return ResponseOutcome::Ignored;
        }
        if carries_sdp(response) {
            self.session.invite_sdp(true, cseq, false, false);
        }
        ResponseOutcome::ReliableProvisional { rseq }
    }

    fn success(
        &mut self,
        cseq: u32,
        method: &Method,
        forming: bool,
        response: &Message,
    ) -> ResponseOutcome {
        if *method == Method::Invite && !self.session.invite_answered(cseq, 200) {
            return ResponseOutcome::SuccessRetransmission;
        }
        if forming {
            self.state = DialogState::Confirmed;
            // §13.2.2.4: the route set is recomputed from the 2xx.
            if let Ok(routes) = RouteSet::from_record_route(response, true) {
                self.route_set = routes;
            }
        }
        if (forming || is_target_refresh(method))
            && let Some(target) = contact_uri(response)
        {
            self.remote_target = target;
        }
        if carries_sdp(response) {
            if *method == Method::Invite {
                self.session.invite_sdp(true, cseq, false, false);
            } else {
                self.session.sdp(false, false, cseq, false);
            }
        }
        ResponseOutcome::Success
    }

    fn failure(
        &mut self,
        status: u16,
        cseq: u32,
        method: &Method,
        forming: bool,
    ) -> ResponseOutcome {
        if *method == Method::Invite {
            self.session.invite_answered(cseq, status);
        }
        self.session.request_failed(true, cseq);
        if forming {
            self.terminate(TerminationReason::Rejected(status));
        } else if status == 491 && matches!(method, Method::Invite | Method::Update) {
            self.session.request_pending(method.clone());
            return ResponseOutcome::RequestPending;
        } else if *method != Method::Bye && ends_dialog(status, method, &self.creator) {
            self.terminate(TerminationReason::ErrorResponse(status));
        }
        ResponseOutcome::Failure {
            status,
            terminated: self.state == DialogState::Terminated,
        }
    }

    fn check_can_send(&self, method: &Method) -> Result<(), DialogError> {
        let not_allowed = |why| {
            Err(DialogError::NotAllowed {
                method: method.clone(),
                why,
            })
        };
        match (self.state, method) {
            (DialogState::Terminated, _) => Err(DialogError::Terminated),
            (DialogState::Early, Method::Invite) => {
                not_allowed("no re-INVITE before the dialog is confirmed")
            }
            (DialogState::Early, Method::Bye) if self.role == Role::Uas => {
                not_allowed("the callee may not send BYE in an early dialog (RFC 3261 §15)")
            }
            (DialogState::Confirmed, Method::Bye)
                if self.role == Role::Uas
                    && self.session.awaiting_ack() == Some(self.creator_cseq) =>
            {
                not_allowed("the callee waits for the ACK of its 2xx before BYE (RFC 3261 §15)")
            }
            _ => Ok(()),
        }
    }

    fn next_local_seq(&self) -> Result<u32, DialogError> {
        match self.local_seq {
            // §12.2.1.1: an empty local sequence number starts anywhere below 2^31 (§8.1.1.5).
            None => Ok(1),
            Some(last) => last.checked_add(1).ok_or(DialogError::SequenceExhausted),
        }
    }

    /// Writes a request of the dialog with CSeq `cseq cseq_method`.
    fn build(
        &self,
        method: &Method,
        cseq: u32,
        cseq_method: &Method,
        body: Option<&Body>,
        extra: Option<(HeaderName, Bytes)>,
    ) -> Message {
        let destination = self.route_set.destination(&self.remote_target);
        let mut builder = MessageBuilder::request(method.clone(), destination.request_uri);
        for route in destination.routes {
            builder = builder.header(HeaderName::Route, route);
        }
        builder = builder
            .header(HeaderName::MaxForwards, "70")
            .header(
                HeaderName::From,
                self.local.header_value(&self.id.local_tag),
            )
            .header(
                HeaderName::To,
                self.remote.header_value(&self.id.remote_tag),
            )
            .header(HeaderName::CallId, self.id.call_id.clone())
            .header(HeaderName::CSeq, format!("{cseq} {cseq_method}"));
        if is_target_refresh(method) {
            builder = builder.header(HeaderName::Contact, self.local_contact.clone());
        }
        if let Some((name, value)) = extra {
            builder = builder.header(name, value);
        }
        if let Some(body) = body {
            builder = builder.body(body.content_type.clone(), body.content.clone());
        }
        builder.build()
    }
}

/// The RSeq of a reliable provisional response: `Require: 100rel` and a numeric RSeq
/// (RFC 3262 §7.1).
pub(super) fn rseq_of(response: &Message) -> Option<u32> {
    if !response
        .require()
        .any(|tag| tag.eq_ignore_ascii_case(b"100rel"))
    {
        return None;
    }
    std::str::from_utf8(response.header(&HeaderName::RSeq)?)
        .ok()?
        .trim()
        .parse()
        .ok()
}
