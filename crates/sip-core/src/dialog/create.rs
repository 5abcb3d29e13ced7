//! The dialog state (RFC 3261 §12) and its creation from either side of a dialog-forming
//! request (§12.1.1 UAS, §12.1.2 UAC).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use sip_message::{Message, Method};

use super::outgoing::ResponseOutcome;
use super::route::RouteSet;
use super::session::InviteSession;
use super::{
    DialogError, DialogEvent, DialogId, DialogState, Party, Role, TerminationReason, carries_sdp,
    contact_uri, cseq_of,
};
use crate::proxy_rules::is_dialog_forming;
use crate::transaction::TimerConfig;

/// One dialog at one UA: identity, state, sequence numbers, the parties, the remote target,
/// the route set and the invite usage's session state (RFC 3261 §12).
#[derive(Debug, Clone)]
pub struct Dialog {
    pub(super) id: DialogId,
    pub(super) state: DialogState,
    pub(super) role: Role,
    /// The dialog-forming request's method and CSeq number.
    pub(super) creator: Method,
    pub(super) creator_cseq: u32,
    /// Empty (`None`) at the UAS until it sends its first request.
    pub(super) local_seq: Option<u32>,
    /// Empty at the UAC until the peer sends its first request.
    pub(super) remote_seq: Option<u32>,
    pub(super) local: Party,
    pub(super) remote: Party,
    pub(super) remote_target: Bytes,
    pub(super) route_set: RouteSet,
    pub(super) secure: bool,
    pub(super) local_contact: Bytes,
    pub(super) session: InviteSession,
    pub(super) timers: TimerConfig,
    pub(super) events: VecDeque<DialogEvent>,
}

/// The parts every dialog-forming request must have.
struct Creating {
    method: Method,
    cseq: u32,
    call_id: Bytes,
    from_tag: Bytes,
    from: Party,
    to: Party,
    secure: bool,
}

impl Creating {
    fn of(request: &Message) -> Result<Creating, DialogError> {
        let method = request
            .method()
            .ok_or(DialogError::WrongMessageKind("request"))?
            .clone();
        if !is_dialog_forming(&method) {
            return Err(DialogError::NotDialogForming(method));
        }
        let to = request.to().map_err(|_| DialogError::Missing("a To"))?;
        if to.tag().is_some() {
            return Err(DialogError::AlreadyInDialog);
        }
        let from = request.from().map_err(|_| DialogError::Missing("a From"))?;
        let from_tag = from.tag().ok_or(DialogError::Missing("a From tag"))?;
        let call_id = request
            .call_id()
            .map_err(|_| DialogError::Missing("a Call-ID"))?;
        let (cseq, cseq_method) = cseq_of(request)?;
        if cseq_method != method {
            return Err(DialogError::Missing("a CSeq naming the request's method"));
        }
        // §12.1.1/§12.1.2: secure when the request went over TLS to a SIPS Request-URI; a SIPS
        // URI requires TLS on every hop (§19.1), so the scheme tells.
        let secure = request
            .request_uri()
            .and_then(Result::ok)
            .is_some_and(|uri| matches!(uri.scheme, sip_message::Scheme::Sips));
        Ok(Creating {
            method,
            cseq,
            call_id: Bytes::copy_from_slice(call_id),
            from_tag: Bytes::copy_from_slice(from_tag),
            from: Party::of(&from),
            to: Party::of(&to),
            secure,
        })
    }
}

impl Dialog {
    /// The dialog a response with a To tag to our dialog-forming request creates at the UAC
    /// (§12.1.2): early for 101–199, confirmed for 2xx. Route set from the response's
    /// Record-Route in reverse, remote target from its Contact (a 1xx without Contact keeps the
    /// Request-URI until a later response brings one), local sequence number the request's
    /// CSeq, our Contact the request's.
    ///
    /// # Errors
    /// [`DialogError`] when the request cannot form dialogs, the response is not 101–299 or
    /// lacks a To tag, or a header the dialog needs is missing.
    pub fn from_uac_response(
        request_sent: &Message,
        response: &Message,
    ) -> Result<Dialog, DialogError> {
        Dialog::from_uac_response_with_outcome(request_sent, response).map(|(dialog, _)| dialog)
    }

    pub(super) fn from_uac_response_with_outcome(
        request: &Message,
        response: &Message,
    ) -> Result<(Dialog, ResponseOutcome), DialogError> {
        let creating = Creating::of(request)?;
        let status = response
            .status()
            .ok_or(DialogError::WrongMessageKind("response"))?;
        if !(101..300).contains(&status) {
            return Err(DialogError::NotDialogCreating(status));
        }
        let to = response.to().map_err(|_| DialogError::Missing("a To"))?;
        let remote_tag = to.tag().ok_or(DialogError::Missing("a To tag"))?;
        if response.call_id().ok() != Some(&creating.call_id[..])
            || response.from().ok().and_then(|from| from.tag()) != Some(&creating.from_tag[..])
            || cseq_of(response)? != (creating.cseq, creating.method.clone())
        {
            return Err(DialogError::OtherDialog);
        }
        let local_contact = request
            .header(&sip_message::HeaderName::Contact)
            .map(Bytes::copy_from_slice)
            .ok_or(DialogError::Missing("a Contact in the request"))?;
        let remote_target = match contact_uri(response) {
            Some(uri) => uri,
            None if status < 200 => {
                Bytes::copy_from_slice(request.request_uri_bytes().unwrap_or_default())
            }
            None => return Err(DialogError::Missing("a Contact in the 2xx")),
        };
        let mut session = InviteSession::default();
        if creating.method == Method::Invite {
            session.invite_sent(creating.cseq);
            if carries_sdp(request) {
                session.invite_sdp(true, creating.cseq, true, true);
            }
        }
        let mut dialog = Dialog {
            id: DialogId {
                call_id: creating.call_id,
                local_tag: creating.from_tag,
                remote_tag: Bytes::copy_from_slice(remote_tag),
            },
            state: DialogState::Early,
            role: Role::Uac,
            creator: creating.method,
            creator_cseq: creating.cseq,
            local_seq: Some(creating.cseq),
            remote_seq: None,
            local: creating.from,
            remote: creating.to,
            remote_target,
            route_set: RouteSet::from_record_route(response, true)?,
            secure: creating.secure,
            local_contact,
            session,
            timers: TimerConfig::default(),
            events: VecDeque::new(),
        };
        let outcome = dialog.receive_response(response)?;
        Ok((dialog, outcome))
    }

    /// The dialog we create at the UAS by answering `request` (§12.1.1), early until our final
    /// response: route set the request's Record-Route in order, remote target its Contact,
    /// remote sequence number its CSeq, `local_tag` the To tag our responses add and
    /// `local_contact` (a Contact value such as `<sip:b2bua@192.0.2.7:5080>`) our Contact.
    ///
    /// # Errors
    /// [`DialogError`] when the request cannot form dialogs, already has a To tag, or lacks a
    /// header the dialog needs (From tag, Call-ID, CSeq, Contact).
    pub fn from_uas_request(
        request_received: &Message,
        local_tag: impl Into<Bytes>,
        local_contact: impl Into<Bytes>,
    ) -> Result<Dialog, DialogError> {
        let request = request_received;
        let creating = Creating::of(request)?;
        let remote_target =
            contact_uri(request).ok_or(DialogError::Missing("a Contact in the request"))?;
        let mut session = InviteSession::default();
        if creating.method == Method::Invite {
            session.invite_received(creating.cseq);
            if carries_sdp(request) {
                session.invite_sdp(false, creating.cseq, false, true);
            }
        }
        Ok(Dialog {
            id: DialogId {
                call_id: creating.call_id,
                local_tag: local_tag.into(),
                remote_tag: creating.from_tag,
            },
            state: DialogState::Early,
            role: Role::Uas,
            creator: creating.method,
            creator_cseq: creating.cseq,
            local_seq: None,
            remote_seq: Some(creating.cseq),
            local: creating.to,
            remote: creating.from,
            remote_target,
            route_set: RouteSet::from_record_route(request, false)?,
            secure: creating.secure,
            local_contact: local_contact.into(),
            session,
            timers: TimerConfig::default(),
            events: VecDeque::new(),
        })
    }

    /// Uses `timers` (T1, T2) for the 2xx and reliable 1xx retransmissions instead of the
    /// RFC 3261 defaults.
    #[must_use]
    pub fn with_timers(mut self, timers: TimerConfig) -> Dialog {
        self.timers = timers;
        self
    }

    /// The dialog's identity at this UA.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Early, confirmed or terminated.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// Which side created the dialog.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether we generated the Call-ID (we were the UAC of the dialog-forming request), which
    /// picks the longer §14.1 glare back-off.
    pub fn is_call_id_owner(&self) -> bool {
        self.role == Role::Uac
    }

    /// The method of the request that created the dialog.
    pub fn creating_method(&self) -> &Method {
        &self.creator
    }

    /// The CSeq number of the last request we sent in the dialog (`None` at a UAS that has sent
    /// none yet).
    pub fn local_seq(&self) -> Option<u32> {
        self.local_seq
    }

    /// The highest CSeq number the peer used (`None` at a UAC before the peer's first request).
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// Our URI (From of our requests).
    pub fn local_uri(&self) -> &Bytes {
        &self.local.uri
    }

    /// The peer's URI (To of our requests).
    pub fn remote_uri(&self) -> &Bytes {
        &self.remote.uri
    }

    /// Where our requests go: the peer's Contact URI, refreshed by target refresh requests.
    pub fn remote_target(&self) -> &Bytes {
        &self.remote_target
    }

    /// The route set, next hop first, each value as received in Record-Route.
    pub fn route_set(&self) -> &[Bytes] {
        self.route_set.entries()
    }

    /// The URI our requests are sent to (§8.1.2): the first route, else the remote target.
    pub fn next_hop(&self) -> Bytes {
        self.route_set.next_hop(&self.remote_target)
    }

    /// Whether the dialog was formed over SIPS (§12.1.1, §12.1.2).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Our Contact value, sent in target refresh requests and dialog-forming responses.
    pub fn local_contact(&self) -> &Bytes {
        &self.local_contact
    }

    /// Changes our Contact; the next target refresh request carries it to the peer.
    pub fn set_local_contact(&mut self, contact: impl Into<Bytes>) {
        self.local_contact = contact.into();
    }

    /// The invite usage's session state: INVITEs in progress, offer/answer, glare back-off.
    pub fn invite_session(&self) -> &InviteSession {
        &self.session
    }

    /// When [`Dialog::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    /// Fires the timers due at `now`: 2xx and reliable 1xx retransmissions and their give-up,
    /// and the glare back-off. What follows comes out of [`Dialog::poll_event`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now, &mut self.events);
    }

    /// The next thing the caller must act on.
    pub fn poll_event(&mut self) -> Option<DialogEvent> {
        self.events.pop_front()
    }

    /// Schedules the resend of the request that got 491 (§14.1; RFC 3311 §5.1 for UPDATE) at
    /// `now` plus [`super::glare_retry_delay`] of `random`; [`DialogEvent::RetryDue`] comes then.
    ///
    /// # Errors
    /// [`DialogError::NoGlare`] when no 491 is waiting for a retry.
    pub fn schedule_glare_retry(
        &mut self,
        now: Instant,
        random: u32,
    ) -> Result<Instant, DialogError> {
        let owner = self.is_call_id_owner();
        self.session.schedule_glare_retry(now, random, owner)
    }

    /// The peer never acknowledged our 2xx (or the caller gave up on it): forget the wait so a
    /// BYE may go out (§13.3.1.4, §15). [`DialogEvent::AckTimeout`] does this by itself.
    pub fn give_up_ack(&mut self) {
        if let Some(cseq) = self.session.awaiting_ack() {
            self.session.ack_received(cseq, false);
        }
    }

    pub(super) fn terminate(&mut self, reason: TerminationReason) {
        if self.state == DialogState::Terminated {
            return;
        }
        self.state = DialogState::Terminated;
        self.session.stop();
        self.events.push_back(DialogEvent::Terminated(reason));
    }

    /// Whether `id` is this dialog's.
    pub(super) fn check_id(&self, id: Option<DialogId>) -> Result<(), DialogError> {
        if id.as_ref() == Some(&self.id) {
            Ok(())
        } else {
            Err(DialogError::OtherDialog)
        }
    }
}
