//! Inside the dialogs: requests of one leg re-originated on the other through that leg's
//! dialog (re-INVITE, UPDATE, INFO, OPTIONS), their answers mapped back to the pending server
//! transaction, ACKs relayed for relayed 2xx, BYE ending both legs, and the teardown every
//! end of call shares.

use std::time::Instant;

use bytes::Bytes;
use sip_core::dialog::{
    DialogError, DialogId, DialogState, InDialog, ResponseOutcome, is_in_dialog,
};
use sip_core::transaction::make_response;
use sip_message::{HeaderName, Message, Method};

use super::filter::{self, allow_value, body_of, mapped_status, unsupported_requirements};
use super::initial::B_INVITE_CSEQ;
use super::{Answer, Call, EndReason, Leg, Relayed};

impl Call {
    /// A request from `leg`.
    pub(super) fn request_from(&mut self, now: Instant, leg: Leg, request: Message) {
        let Some(method) = request.method().cloned() else {
            return;
        };
        if method == Method::Cancel {
            self.cancel_from(now, leg, &request);
            return;
        }
        if !is_in_dialog(&request) {
            // The shell hands a call only its own messages; a new request is none of them.
            tracing::debug!(%method, ?leg, "request outside the call's dialogs");
            if method != Method::Ack {
                let response = make_response(&request, 481, filter::default_reason(481), None);
                self.respond_raw(leg, response);
            }
            return;
        }
        let received = match leg {
            Leg::A => self.a.receive_request(&request).map(|what| (None, what)),
            Leg::B => self
                .b
                .receive_request(&request)
                .map(|(id, what)| (Some(id), what)),
        };
        let (id, what) = match received {
            Ok(received) => received,
            Err(rejection) => {
                if method != Method::Ack {
                    let response = rejection.response(&request, self.random.next_u32());
                    self.respond_raw(leg, response);
                }
                return;
            }
        };
        if leg == Leg::B && id != self.b_current {
            // A fork that was not chosen: it may end itself, nothing else.
            match what {
                InDialog::Bye { .. } => {
                    self.respond(now, leg, &request, Answer::plain(200));
                }
                InDialog::Ack { .. } | InDialog::StrayAck => {}
                _ => self.respond(now, leg, &request, Answer::plain(481)),
            }
            return;
        }
        match what {
            InDialog::Ack { cseq } => self.ack_from(leg, cseq, &request),
            InDialog::StrayAck => {}
            InDialog::Bye { .. } => {
                self.respond(now, leg, &request, Answer::plain(200));
                self.teardown(now, EndReason::Bye(leg), Some(leg));
            }
            InDialog::Prack { .. } => self.respond(now, leg, &request, Answer::plain(200)),
            InDialog::Request { method, .. } => self.relay_request(now, leg, request, method),
        }
    }

    /// Re-originates `request` from `origin` on the other leg, through that leg's dialog.
    fn relay_request(&mut self, now: Instant, origin: Leg, request: Message, method: Method) {
        if !self.config.headers.relays(&method) {
            let mut answer = Answer::plain(405);
            answer
                .extra
                .push((HeaderName::Allow, allow_value(&self.config.headers)));
            self.respond(now, origin, &request, answer);
            return;
        }
        let unsupported = unsupported_requirements(&request, &self.config.headers);
        if !unsupported.is_empty() {
            let mut answer = Answer::plain(420);
            answer.extra.push((
                HeaderName::Unsupported,
                Bytes::from(unsupported.join(&b", "[..])),
            ));
            self.respond(now, origin, &request, answer);
            return;
        }
        let target = origin.other();
        let built = match self.dialog_mut(target) {
            Some(dialog) => dialog.request(method.clone(), body_of(&request)),
            None => Err(DialogError::UnknownDialog),
        };
        let mut sent = match built {
            Ok(sent) => sent,
            Err(error) => {
                let answer = self.refusal(&error);
                self.respond(now, origin, &request, answer);
                return;
            }
        };
        filter::copy_headers(&request, &mut sent, &self.config.headers);
        let Ok(cseq) = sent.cseq().map(|cseq| cseq.number) else {
            return;
        };
        self.next_relay += 1;
        self.relayed.insert(
            self.next_relay,
            Relayed {
                origin,
                request,
                cseq,
                method,
            },
        );
        self.send(target, sent);
    }

    /// What to answer when the other leg's dialog cannot take a request now.
    fn refusal(&mut self, error: &DialogError) -> Answer<'static> {
        match error {
            // The other leg has an INVITE or an offer in flight: to the originator this is
            // glare, and it backs off (RFC 3261 §14.1, RFC 3311 §5.1).
            DialogError::InviteInProgress | DialogError::OfferPending => Answer::plain(491),
            DialogError::Terminated => Answer::plain(481),
            // No dialog on the other leg yet, or a re-INVITE before it is confirmed: try later.
            _ => {
                let mut answer = Answer::plain(500);
                let seconds = self.random.next_u32() % 11;
                answer
                    .extra
                    .push((HeaderName::RetryAfter, Bytes::from(seconds.to_string())));
                answer
            }
        }
    }

    /// A response from `leg`.
    pub(super) fn response_from(&mut self, now: Instant, leg: Leg, response: Message) {
        let Ok((cseq, method)) = response.cseq().map(|cseq| (cseq.number, cseq.method)) else {
            return;
        };
        if leg == Leg::B
            && method == Method::Invite
            && cseq == B_INVITE_CSEQ
            && response.call_id().ok() == Some(&self.b_call_id[..])
        {
            self.initial_response(now, response);
            return;
        }
        let relayed = self
            .relayed
            .iter()
            .find(|(_, relayed)| {
                relayed.origin == leg.other() && relayed.cseq == cseq && relayed.method == method
            })
            .map(|(id, _)| *id);
        let outcome = self.feed_response(leg, &response);
        if let Some(id) = relayed {
            self.relayed_response(now, leg, id, outcome, response);
            return;
        }
        let final_response = response.status().is_some_and(|status| status >= 200);
        if let Some(index) = self
            .own
            .iter()
            .position(|own| own.leg == leg && own.cseq == cseq && own.method == method)
        {
            if final_response {
                self.own.swap_remove(index);
            }
            return;
        }
        // A retransmitted 2xx to an INVITE of ours already answered: acknowledge it again.
        if matches!(
            outcome,
            Some(ResponseOutcome::Success | ResponseOutcome::SuccessRetransmission)
        ) && method == Method::Invite
        {
            self.retransmitted_2xx(leg, &response);
        }
    }

    /// Lets the dialog of `leg` that `response` names learn from it.
    fn feed_response(&mut self, leg: Leg, response: &Message) -> Option<ResponseOutcome> {
        let id = DialogId::of_received_response(response);
        let dialog = self.dialog_of(leg, id)?;
        match dialog.receive_response(response) {
            Ok(outcome) => Some(outcome),
            Err(error) => {
                tracing::debug!(%error, ?leg, "response fits no dialog of the call");
                None
            }
        }
    }

    /// The other leg's response to a request we relayed: provisional responses to an INVITE
    /// go back as they come, the final one answers the originator's request; a 2xx to an
    /// INVITE waits for the originator's ACK; a response that ended the other leg's dialog
    /// ends the call.
    fn relayed_response(
        &mut self,
        now: Instant,
        leg: Leg,
        id: u64,
        outcome: Option<ResponseOutcome>,
        response: Message,
    ) {
        let Some(status) = response.status() else {
            return;
        };
        if status < 200 {
            let Some(relayed) = self.relayed.get(&id) else {
                return;
            };
            if status == 100 || relayed.method != Method::Invite {
                return;
            }
            let (origin, request) = (relayed.origin, relayed.request.clone());
            if let Some(ResponseOutcome::ReliableProvisional { .. }) = outcome {
                self.prack(leg, &response);
            }
            self.respond(now, origin, &request, Answer::relayed(&response, status));
            return;
        }
        let Some(relayed) = self.relayed.remove(&id) else {
            return;
        };
        let sent = mapped_status(status);
        if (200..300).contains(&status) && relayed.method == Method::Invite {
            let ack_cseq = relayed.request.cseq().map_or(0, |cseq| cseq.number);
            self.acks[relayed.origin.index()] = Some(super::AckRelay {
                ack_cseq,
                dialog: DialogId::of_received_response(&response),
                response: response.clone(),
                sent: None,
            });
        }
        self.respond(
            now,
            relayed.origin,
            &relayed.request,
            Answer::relayed(&response, sent),
        );
        if let Some(ResponseOutcome::Failure {
            terminated: true, ..
        }) = outcome
        {
            self.teardown(now, EndReason::LegFailed { leg, status }, Some(leg));
        }
    }

    /// An ACK from `leg` for our 2xx to its INVITE `cseq`: the other leg's 2xx we relayed is
    /// acknowledged now, with the ACK's body (the answer to an offer the 2xx made); a BYE that
    /// waited for this ACK goes out.
    fn ack_from(&mut self, leg: Leg, cseq: u32, ack: &Message) {
        let index = leg.index();
        if let Some(mut relay) = self.acks[index].take() {
            if relay.ack_cseq == cseq && relay.sent.is_none() {
                let other = leg.other();
                let built = self
                    .dialog_of(other, relay.dialog.clone())
                    .map(|dialog| dialog.ack_for_2xx(&relay.response, body_of(ack)));
                if let Some(Ok(mut ours)) = built {
                    if let Some(agent) = &self.config.user_agent {
                        ours.add_header(HeaderName::UserAgent, agent.clone());
                    }
                    relay.sent = Some(ours.clone());
                    self.actions.push_back(super::Action::send(other, ours));
                }
            }
            self.acks[index] = Some(relay);
        }
        if self.bye_after_ack[index] {
            self.bye_after_ack[index] = false;
            self.hang_up(leg, false);
        }
    }

    /// A 2xx from `leg` that was answered before: our ACK again once we sent one; nothing
    /// while the relayed 2xx still waits for the other leg's ACK (that leg's own 2xx
    /// retransmissions run meanwhile); a fresh ACK for a 2xx nobody waits for.
    pub(super) fn retransmitted_2xx(&mut self, leg: Leg, response: &Message) {
        let cseq = response.cseq().map_or(0, |cseq| cseq.number);
        let dialog = DialogId::of_received_response(response);
        if let Some(relay) = &self.acks[leg.other().index()]
            && relay.response.cseq().is_ok_and(|c| c.number == cseq)
            && (leg == Leg::A || relay.dialog == dialog)
        {
            if let Some(ack) = relay.sent.clone() {
                self.actions.push_back(super::Action::send(leg, ack));
            }
            return;
        }
        if let Some(Ok(ack)) = self
            .dialog_of(leg, dialog)
            .map(|dialog| dialog.ack_for_2xx(response, None))
        {
            self.send(leg, ack);
        }
    }

    /// A 2xx nobody will take: acknowledged, then ended with a BYE (RFC 3261 §13.2.2.4).
    pub(super) fn take_back(&mut self, leg: Leg, response: &Message) {
        let id = DialogId::of_received_response(response);
        let Some(dialog) = self.dialog_of(leg, id) else {
            return;
        };
        let ack = dialog.ack_for_2xx(response, None);
        let bye = dialog.request(Method::Bye, None);
        if let Ok(ack) = ack {
            self.send(leg, ack);
        }
        if let Ok(bye) = bye {
            self.send_own(leg, bye);
        }
    }

    /// The PRACK for a reliable provisional response from `leg` (RFC 3262): sent by the core,
    /// which relays the response itself unreliably.
    pub(super) fn prack(&mut self, leg: Leg, response: &Message) {
        let id = DialogId::of_received_response(response);
        if let Some(Ok(prack)) = self
            .dialog_of(leg, id)
            .map(|dialog| dialog.prack(response, None))
        {
            self.send_own(leg, prack);
        }
    }

    /// Ends the call for `reason`: unanswered relayed requests get 487 (RFC 3261 §15.1.2), an
    /// unanswered caller INVITE gets its final response, and every leg but `except` (the one
    /// that sent BYE) is hung up.
    pub(super) fn teardown(&mut self, now: Instant, reason: EndReason, except: Option<Leg>) {
        self.end(reason);
        for (_, relayed) in std::mem::take(&mut self.relayed) {
            self.respond(now, relayed.origin, &relayed.request, Answer::plain(487));
        }
        if !self.a_invite_answered {
            self.a_invite_answered = true;
            let status = match reason {
                EndReason::Bye(Leg::A) | EndReason::Cancelled => 487,
                EndReason::Bye(Leg::B) => 480,
                _ => 500,
            };
            let invite = self.a_invite.clone();
            self.respond(now, Leg::A, &invite, Answer::plain(status));
        }
        let force = !matches!(reason, EndReason::Bye(_));
        for leg in [Leg::A, Leg::B] {
            if Some(leg) != except {
                self.hang_up(leg, force);
            }
        }
    }

    /// Sends a BYE on `leg` if its dialog is up; cancels the B leg INVITE if still
    /// unanswered. A 2xx we owe an ACK is acknowledged first. Where the peer's ACK is still
    /// due (RFC 3261 §15: no BYE before it), the BYE waits for it unless `force`, which gives
    /// the ACK up.
    pub(super) fn hang_up(&mut self, leg: Leg, force: bool) {
        self.bye_after_ack[leg.index()] = false;
        if leg == Leg::B && !self.b_invite_answered {
            if !self.b_cancelled {
                self.b_cancelled = true;
                self.actions
                    .push_back(super::Action::cancel(Leg::B, B_INVITE_CSEQ));
            }
            return;
        }
        // The other leg's relayed 2xx still waiting for this leg's ACK: acknowledge it now.
        let waiting = self.acks[leg.other().index()]
            .as_ref()
            .is_some_and(|relay| relay.sent.is_none());
        if waiting && let Some(relay) = self.acks[leg.other().index()].take() {
            let ack = self
                .dialog_of(leg, relay.dialog.clone())
                .map(|dialog| dialog.ack_for_2xx(&relay.response, None));
            if let Some(Ok(ack)) = ack {
                self.send(leg, ack);
            }
        }
        let Some(dialog) = self.dialog_mut(leg) else {
            return;
        };
        if dialog.state() != DialogState::Confirmed {
            return;
        }
        let bye = match dialog.request(Method::Bye, None) {
            Err(DialogError::NotAllowed { .. }) if force => {
                dialog.give_up_ack();
                dialog.request(Method::Bye, None)
            }
            Err(DialogError::NotAllowed { .. }) => {
                self.bye_after_ack[leg.index()] = true;
                return;
            }
            other => other,
        };
        if let Ok(bye) = bye {
            self.send_own(leg, bye);
        }
    }
}
