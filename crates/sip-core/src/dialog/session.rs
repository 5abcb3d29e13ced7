//! The invite usage of a dialog: which INVITE transactions are in progress (RFC 3261 §14), where
//! the offer/answer exchange stands (RFC 3264 §4 as carried by RFC 3261 §13.2.1, RFC 3262 §5 and
//! RFC 3311 §5), reliable provisional responses (RFC 3262), the UAS core's 2xx retransmission
//! (§13.3.1.4) and the §14.1 glare back-off.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sip_message::{Message, Method};

use super::{DialogError, DialogEvent, Rejection};
use crate::transaction::TimerConfig;

/// Where the offer/answer exchange of the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferState {
    /// No offer outstanding: the next SDP body is an offer.
    Idle,
    /// We sent an offer and wait for the answer.
    LocalOffer,
    /// The peer sent an offer we have not answered yet.
    RemoteOffer,
}

/// What carried an outstanding offer, so that its failure withdraws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    /// A request with this CSeq number: a non-2xx final response to it rejects the offer.
    Request(u32),
    /// A 2xx or reliable 1xx to the INVITE with this CSeq number: its ACK or PRACK answers.
    Response(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offer {
    local: bool,
    carrier: Carrier,
}

/// A response the UAS core sends again until it is acknowledged.
#[derive(Debug, Clone)]
struct Retransmission {
    // Boxed: a parsed message is over a kilobyte, and most dialogs retransmit nothing.
    response: Box<Message>,
    cseq: u32,
    interval: Duration,
    next_at: Instant,
    give_up_at: Instant,
    /// 2xx intervals stop doubling at T2 (§13.3.1.4); reliable 1xx intervals do not
    /// (RFC 3262 §3).
    cap: Option<Duration>,
}

impl Retransmission {
    fn deadline(&self) -> Instant {
        self.next_at.min(self.give_up_at)
    }
}

/// The session state of a dialog's invite usage. Read through [`super::Dialog::invite_session`];
/// changed by the dialog as requests and responses go by.
#[derive(Debug, Clone, Default)]
pub struct InviteSession {
    /// CSeq of our INVITE without a final response yet.
    client_invite: Option<u32>,
    /// CSeq of our INVITE that got a 2xx (its retransmissions need the ACK again).
    answered_invite: Option<u32>,
    /// CSeq of the peer's INVITE we have not answered finally yet.
    server_invite: Option<u32>,
    /// CSeq of the peer's INVITE whose 2xx still waits for its ACK.
    awaiting_ack: Option<u32>,
    offer: Option<Offer>,
    /// RSeq of our next reliable provisional response in the current server INVITE.
    next_rseq: Option<u32>,
    /// RSeq and INVITE CSeq of our reliable provisional response without PRACK.
    unacked_reliable: Option<(u32, u32)>,
    /// RSeq of the last in-order reliable provisional response we received.
    last_rseq_received: Option<u32>,
    /// RSeq and INVITE CSeq of the reliable provisional response a PRACK is owed for.
    prack_owed: Option<(u32, u32)>,
    success_retransmission: Option<Retransmission>,
    provisional_retransmission: Option<Retransmission>,
    /// The method that got 491 and waits for [`super::Dialog::schedule_glare_retry`].
    glare_pending: Option<Method>,
    glare_retry: Option<(Instant, Method)>,
    /// The INVITE transaction (ours?, CSeq) that already carried SDP: a later body in a
    /// response to it repeats the answer and offers nothing.
    invite_sdp: Option<(bool, u32)>,
}

/// The §14.1 back-off T before a re-INVITE that got 491 is sent again, from a caller-drawn
/// `random`: 2.1–4 s if we own the Call-ID (we sent the dialog-forming request), 0–2 s
/// otherwise, in units of 10 ms. RFC 3311 §5.1 applies the same to UPDATE.
pub fn glare_retry_delay(call_id_owner: bool, random: u32) -> Duration {
    let tens_of_ms = if call_id_owner {
        210 + random % 191
    } else {
        random % 201
    };
    Duration::from_millis(u64::from(tens_of_ms) * 10)
}

impl InviteSession {
    /// Whether an INVITE is in progress in either direction, or our 2xx still waits for its
    /// ACK: no new INVITE may start (§14.1).
    pub fn invite_in_progress(&self) -> bool {
        self.client_invite.is_some() || self.server_invite.is_some() || self.awaiting_ack.is_some()
    }

    /// CSeq of our INVITE still waiting for a final response.
    pub fn client_invite(&self) -> Option<u32> {
        self.client_invite
    }

    /// CSeq of the peer's INVITE we have not answered finally.
    pub fn server_invite(&self) -> Option<u32> {
        self.server_invite
    }

    /// CSeq of the peer's INVITE whose 2xx waits for the ACK.
    pub fn awaiting_ack(&self) -> Option<u32> {
        self.awaiting_ack
    }

    /// The offer/answer state.
    pub fn offer_state(&self) -> OfferState {
        match self.offer {
            None => OfferState::Idle,
            Some(Offer { local: true, .. }) => OfferState::LocalOffer,
            Some(Offer { local: false, .. }) => OfferState::RemoteOffer,
        }
    }

    /// RSeq of our reliable provisional response still waiting for its PRACK.
    pub fn unacknowledged_rseq(&self) -> Option<u32> {
        self.unacked_reliable.map(|(rseq, _)| rseq)
    }

    /// When the glare back-off ends, and the method to send again then.
    pub fn glare_retry(&self) -> Option<(Instant, &Method)> {
        self.glare_retry.as_ref().map(|(at, method)| (*at, method))
    }

    /// The method that got 491 and has no retry scheduled yet.
    pub fn glare_pending(&self) -> Option<&Method> {
        self.glare_pending.as_ref()
    }

    // ----- glare and overlap checks -----

    /// §14.2 and RFC 3311 §5.2 for a request the peer sent: INVITE while ours is in progress, or
    /// an offer while ours is outstanding, is glare (491); INVITE while theirs is unanswered, or
    /// an offer while theirs is unanswered, overlaps (500 with Retry-After).
    pub(super) fn check_received(&self, method: &Method, has_sdp: bool) -> Option<Rejection> {
        if *method == Method::Invite {
            if self.client_invite.is_some() {
                return Some(Rejection::GLARE);
            }
            if self.server_invite.is_some() {
                return Some(Rejection::OVERLAP);
            }
        }
        if has_sdp && matches!(method, Method::Invite | Method::Update) {
            match self.offer {
                Some(Offer { local: true, .. }) => return Some(Rejection::GLARE),
                Some(Offer { local: false, .. }) => return Some(Rejection::OVERLAP),
                None => {}
            }
        }
        None
    }

    /// The same rules for a request we want to send.
    pub(super) fn check_sending(&self, method: &Method, has_sdp: bool) -> Result<(), DialogError> {
        if *method == Method::Invite && self.invite_in_progress() {
            return Err(DialogError::InviteInProgress);
        }
        if has_sdp {
            let blocked = match (method, self.offer) {
                (_, None) => false,
                // A PRACK may answer the offer of a reliable provisional response.
                (Method::Prack, Some(offer)) => offer.local,
                (Method::Invite | Method::Update, Some(_)) => true,
                _ => false,
            };
            if blocked {
                return Err(DialogError::OfferPending);
            }
        }
        Ok(())
    }

    // ----- offer/answer -----

    /// An SDP body went out (`local`) or came in. The first one is an offer (where `may_offer`:
    /// not in an ACK, nor in a response to anything but INVITE); one from the other side
    /// answers it.
    pub(super) fn sdp(
        &mut self,
        local: bool,
        carrier_is_request: bool,
        cseq: u32,
        may_offer: bool,
    ) {
        match self.offer {
            Some(offer) if offer.local != local => self.offer = None,
            Some(_) => {}
            None if may_offer => {
                let carrier = if carrier_is_request {
                    Carrier::Request(cseq)
                } else {
                    Carrier::Response(cseq)
                };
                self.offer = Some(Offer { local, carrier });
            }
            None => {}
        }
    }

    /// SDP in an INVITE (`in_request`) or in a response to it, sent (`local`) or received. Only
    /// the first body of an INVITE transaction may offer: a 2xx that repeats the answer a
    /// reliable 1xx gave is no new offer (RFC 3261 §13.2.1, RFC 3262 §5).
    pub(super) fn invite_sdp(
        &mut self,
        our_invite: bool,
        cseq: u32,
        local: bool,
        in_request: bool,
    ) {
        let first = self.invite_sdp != Some((our_invite, cseq));
        self.invite_sdp = Some((our_invite, cseq));
        self.sdp(local, in_request, cseq, first);
    }

    /// A non-2xx final response to the request with CSeq `cseq`, ours when `local`: an offer
    /// it carried is rejected (RFC 3261 §14.1, RFC 3311 §5.1). The two directions number
    /// their requests apart, hence `local`.
    pub(super) fn request_failed(&mut self, local: bool, cseq: u32) {
        if self.offer
            == Some(Offer {
                local,
                carrier: Carrier::Request(cseq),
            })
        {
            self.offer = None;
        }
    }

    /// The ACK of INVITE `cseq` came without an answer to the offer our 2xx made: the exchange
    /// failed (§13.3.1.4 says to end the session); the state goes back to idle.
    fn ack_without_answer(&mut self, cseq: u32) {
        if matches!(self.offer, Some(Offer { carrier: Carrier::Response(carried), local: true }) if carried == cseq)
        {
            self.offer = None;
        }
    }

    // ----- INVITE transactions -----

    pub(super) fn invite_sent(&mut self, cseq: u32) {
        self.client_invite = Some(cseq);
        self.last_rseq_received = None;
        self.prack_owed = None;
        self.glare_pending = None;
        self.glare_retry = None;
    }

    /// A final response to our INVITE `cseq`. `false` when it is not the pending one (a
    /// retransmission, or another fork's).
    pub(super) fn invite_answered(&mut self, cseq: u32, status: u16) -> bool {
        if self.client_invite != Some(cseq) {
            return false;
        }
        self.client_invite = None;
        self.prack_owed = None;
        if (200..300).contains(&status) {
            self.answered_invite = Some(cseq);
        }
        true
    }

    /// Whether `cseq` is our INVITE that already got its 2xx.
    pub(super) fn is_answered_invite(&self, cseq: u32) -> bool {
        self.answered_invite == Some(cseq)
    }

    pub(super) fn invite_received(&mut self, cseq: u32) {
        self.server_invite = Some(cseq);
        self.next_rseq = None;
        self.unacked_reliable = None;
        self.provisional_retransmission = None;
    }

    /// We sent the final response to the peer's INVITE `cseq`; a 2xx is retransmitted until
    /// the ACK (T1 doubling up to T2, for 64·T1, §13.3.1.4).
    pub(super) fn invite_final_sent(
        &mut self,
        now: Instant,
        cseq: u32,
        response: &Message,
        timers: &TimerConfig,
    ) {
        if self.server_invite == Some(cseq) {
            self.server_invite = None;
        }
        self.unacked_reliable = None;
        self.provisional_retransmission = None;
        if response
            .status()
            .is_some_and(|status| (200..300).contains(&status))
        {
            self.awaiting_ack = Some(cseq);
            self.success_retransmission =
                Retransmission::start(now, cseq, response, timers, Some(timers.t2));
        }
    }

    /// An ACK for INVITE `cseq` arrived; `false` when no 2xx of ours waits for it.
    pub(super) fn ack_received(&mut self, cseq: u32, has_sdp: bool) -> bool {
        if self.awaiting_ack != Some(cseq) {
            return false;
        }
        self.awaiting_ack = None;
        self.success_retransmission = None;
        if has_sdp {
            self.sdp(false, true, cseq, false);
        } else {
            self.ack_without_answer(cseq);
        }
        true
    }

    // ----- reliable provisional responses (RFC 3262) -----

    /// The RSeq for our next reliable provisional response to INVITE `cseq`: the first is
    /// 1 + `random` mod (2^31 − 1), so in 1..2^31 (RFC 3262 §3), then one more each time.
    pub(super) fn reliable_provisional_rseq(&self, random: u32) -> Result<u32, DialogError> {
        if self.unacked_reliable.is_some() {
            return Err(DialogError::ReliableProvisionalPending);
        }
        Ok(self.next_rseq.unwrap_or(1 + random % ((1 << 31) - 1)))
    }

    pub(super) fn reliable_provisional_sent(
        &mut self,
        now: Instant,
        rseq: u32,
        cseq: u32,
        response: &Message,
        timers: &TimerConfig,
    ) {
        self.next_rseq = Some(rseq.wrapping_add(1).max(1));
        self.unacked_reliable = Some((rseq, cseq));
        self.provisional_retransmission = Retransmission::start(now, cseq, response, timers, None);
    }

    /// A PRACK with RAck `rseq cseq INVITE`; `false` when it matches no unacknowledged reliable
    /// provisional response (the PRACK then gets 481, RFC 3262 §4).
    pub(super) fn prack_received(&mut self, rseq: u32, cseq: u32) -> bool {
        if self.unacked_reliable != Some((rseq, cseq)) {
            return false;
        }
        self.unacked_reliable = None;
        self.provisional_retransmission = None;
        true
    }

    /// A reliable provisional response to our INVITE `cseq` with `rseq`: `true` when it is the
    /// next in order and needs a PRACK; retransmissions and out-of-order ones are ignored
    /// (RFC 3262 §4).
    pub(super) fn reliable_provisional_received(&mut self, rseq: u32, cseq: u32) -> bool {
        let in_order = self
            .last_rseq_received
            .is_none_or(|last| rseq == last.wrapping_add(1));
        if in_order {
            self.last_rseq_received = Some(rseq);
            self.prack_owed = Some((rseq, cseq));
        }
        in_order
    }

    /// Takes the PRACK owed for `rseq`/`cseq`, if that is the one owed.
    pub(super) fn take_prack_owed(&mut self, rseq: u32, cseq: u32) -> bool {
        if self.prack_owed == Some((rseq, cseq)) {
            self.prack_owed = None;
            true
        } else {
            false
        }
    }

    // ----- glare back-off -----

    pub(super) fn request_pending(&mut self, method: Method) {
        self.glare_pending = Some(method);
    }

    pub(super) fn schedule_glare_retry(
        &mut self,
        now: Instant,
        random: u32,
        call_id_owner: bool,
    ) -> Result<Instant, DialogError> {
        let method = self.glare_pending.take().ok_or(DialogError::NoGlare)?;
        let delay = glare_retry_delay(call_id_owner, random);
        let at = now.checked_add(delay).unwrap_or(now);
        self.glare_retry = Some((at, method));
        Ok(at)
    }

    // ----- timers -----

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.success_retransmission
                .as_ref()
                .map(Retransmission::deadline),
            self.provisional_retransmission
                .as_ref()
                .map(Retransmission::deadline),
            self.glare_retry.as_ref().map(|(at, _)| *at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn handle_timeout(&mut self, now: Instant, events: &mut VecDeque<DialogEvent>) {
        if let Some(retransmission) = &mut self.success_retransmission {
            match retransmission.fire(now) {
                Fired::Nothing => {}
                Fired::Retransmit(response) => events.push_back(DialogEvent::Retransmit(response)),
                Fired::GaveUp(cseq) => {
                    self.success_retransmission = None;
                    self.awaiting_ack = None;
                    events.push_back(DialogEvent::AckTimeout { cseq });
                }
            }
        }
        if let Some(retransmission) = &mut self.provisional_retransmission {
            match retransmission.fire(now) {
                Fired::Nothing => {}
                Fired::Retransmit(response) => events.push_back(DialogEvent::Retransmit(response)),
                Fired::GaveUp(cseq) => {
                    self.provisional_retransmission = None;
                    self.unacked_reliable = None;
                    events.push_back(DialogEvent::PrackTimeout { cseq });
                }
            }
        }
        if self.glare_retry.as_ref().is_some_and(|(at, _)| *at <= now)
            && let Some((_, method)) = self.glare_retry.take()
        {
            events.push_back(DialogEvent::RetryDue(method));
        }
    }

    /// The dialog ended: nothing more is retransmitted or retried.
    pub(super) fn stop(&mut self) {
        self.success_retransmission = None;
        self.provisional_retransmission = None;
        self.glare_pending = None;
        self.glare_retry = None;
    }
}

enum Fired {
    Nothing,
    Retransmit(Box<Message>),
    GaveUp(u32),
}

impl Retransmission {
    fn start(
        now: Instant,
        cseq: u32,
        response: &Message,
        timers: &TimerConfig,
        cap: Option<Duration>,
    ) -> Option<Retransmission> {
        let interval = timers.first_retransmit_interval();
        Some(Retransmission {
            response: Box::new(response.clone()),
            cseq,
            interval,
            next_at: now.checked_add(interval)?,
            give_up_at: now.checked_add(timers.transaction_timeout())?,
            cap,
        })
    }

    fn fire(&mut self, now: Instant) -> Fired {
        if now >= self.give_up_at {
            return Fired::GaveUp(self.cseq);
        }
        if now < self.next_at {
            return Fired::Nothing;
        }
        let doubled = self.interval.saturating_mul(2);
        self.interval = self
            .cap
            .map_or(doubled, |cap| doubled.min(cap.max(self.interval)));
        self.next_at = now.checked_add(self.interval).unwrap_or(self.give_up_at);
        Fired::Retransmit(self.response.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glare_delays_stay_in_the_section_14_1_windows() {
        let owner: Vec<Duration> = [0, 1, 190, 191, u32::MAX]
            .into_iter()
            .map(|random| glare_retry_delay(true, random))
            .collect();
        assert_eq!(owner[0], Duration::from_millis(2100));
        assert_eq!(owner[1], Duration::from_millis(2110));
        assert_eq!(owner[2], Duration::from_millis(4000));
        assert_eq!(owner[3], Duration::from_millis(2100));
        let other: Vec<Duration> = [0, 200, 201]
            .into_iter()
            .map(|random| glare_retry_delay(false, random))
            .collect();
        assert_eq!(
            other,
            [Duration::ZERO, Duration::from_millis(2000), Duration::ZERO]
        );
        for random in (0..5000).step_by(7) {
            let owned = glare_retry_delay(true, random);
            assert!(owned >= Duration::from_millis(2100) && owned <= Duration::from_secs(4));
            assert_eq!(owned.as_millis() % 10, 0);
            let not_owned = glare_retry_delay(false, random);
            assert!(not_owned <= Duration::from_secs(2));
        }
    }

    #[test]
    fn an_answer_clears_the_offer_and_a_rejection_withdraws_it() {
        let mut session = InviteSession::default();
        session.sdp(true, true, 5, true);
        assert_eq!(session.offer_state(), OfferState::LocalOffer);
        assert_eq!(
            session.check_received(&Method::Update, true),
            Some(Rejection::GLARE)
        );
        assert_eq!(session.check_received(&Method::Update, false), None);
        session.request_failed(true, 4);
        assert_eq!(session.offer_state(), OfferState::LocalOffer);
        session.request_failed(false, 5);
        assert_eq!(
            session.offer_state(),
            OfferState::LocalOffer,
            "the peer's 5 is another"
        );
        session.request_failed(true, 5);
        assert_eq!(session.offer_state(), OfferState::Idle);

        session.sdp(false, true, 6, true);
        assert_eq!(session.offer_state(), OfferState::RemoteOffer);
        assert_eq!(
            session.check_received(&Method::Invite, true),
            Some(Rejection::OVERLAP)
        );
        assert_eq!(
            session.check_sending(&Method::Update, true),
            Err(DialogError::OfferPending)
        );
        session.sdp(true, false, 6, true);
        assert_eq!(session.offer_state(), OfferState::Idle);
        // An ACK never offers.
        session.sdp(false, true, 7, false);
        assert_eq!(session.offer_state(), OfferState::Idle);
    }

    #[test]
    fn the_2xx_is_retransmitted_doubling_to_t2_until_64_t1() {
        let base = Instant::now();
        let timers = TimerConfig::default();
        let mut session = InviteSession::default();
        session.invite_received(1);
        let ok = crate::dialog::test_support::parse(
            "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1
From: <sip:a@example.com>;tag=1
To: <sip:b@example.com>;tag=2
Call-ID: c
CSeq: 1 INVITE
Content-Length: 0

",
        );
        session.invite_final_sent(base, 1, &ok, &timers);
        assert!(session.invite_in_progress());
        let mut events = VecDeque::new();
        let mut sent = Vec::new();
        while let Some(at) = session.poll_timeout() {
            session.handle_timeout(at, &mut events);
            while let Some(event) = events.pop_front() {
                match event {
                    DialogEvent::Retransmit(_) => sent.push((at - base).as_millis()),
                    DialogEvent::AckTimeout { cseq } => {
                        assert_eq!(cseq, 1);
                        assert_eq!(at - base, Duration::from_secs(32));
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(
            sent,
            [
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert!(!session.invite_in_progress());
    }

    #[test]
    fn an_ack_stops_the_retransmission() {
        let base = Instant::now();
        let mut session = InviteSession::default();
        session.invite_received(9);
        let ok = crate::dialog::test_support::parse(
            "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1
From: <sip:a@example.com>;tag=1
To: <sip:b@example.com>;tag=2
Call-ID: c
CSeq: 9 INVITE
Content-Length: 0

",
        );
        session.invite_final_sent(base, 9, &ok, &TimerConfig::default());
        assert!(!session.ack_received(8, false));
        assert!(session.ack_received(9, false));
        assert_eq!(session.poll_timeout(), None);
        assert!(!session.ack_received(9, false), "a second ACK is stray");
    }

    #[test]
    fn reliable_provisionals_are_taken_in_order_only() {
        let mut session = InviteSession::default();
        session.invite_sent(3);
        assert!(session.reliable_provisional_received(77, 3));
        assert!(
            !session.reliable_provisional_received(77, 3),
            "retransmission"
        );
        assert!(
            !session.reliable_provisional_received(79, 3),
            "out of order"
        );
        assert!(session.reliable_provisional_received(78, 3));
        assert!(!session.take_prack_owed(77, 3));
        assert!(session.take_prack_owed(78, 3));
        assert!(!session.take_prack_owed(78, 3));
    }

    #[test]
    fn the_first_rseq_is_below_2_pow_31_and_then_counts_up() {
        let session = InviteSession::default();
        assert_eq!(session.reliable_provisional_rseq(0).unwrap(), 1);
        assert_eq!(
            session.reliable_provisional_rseq(u32::MAX).unwrap(),
            1 + u32::MAX % ((1 << 31) - 1)
        );
        assert!(session.reliable_provisional_rseq(u32::MAX).unwrap() < (1 << 31));
    }
}
