//! The server INVITE transaction (RFC 3261 §17.2.1 as updated by RFC 6026 §8.5–8.7, Figure 7).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::{Message, Method};

use super::timer::TimerSet;
use super::{
    Event, Outputs, Reliability, Timer, TimerConfig, TransactionError, Transmit, make_response,
    response_status,
};

/// States of the server INVITE transaction (RFC 6026 Figure 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerInviteState {
    /// INVITE passed to the TU; provisional responses may be sent.
    Proceeding,
    /// A 300–699 response was sent; Timer G retransmits it until the ACK arrives or Timer H fires.
    Completed,
    /// The ACK arrived; Timer I absorbs ACK retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026 §8.6); the TU retransmits it, ACKs go to the TU, Timer L ends it.
    Accepted,
    /// Done.
    Terminated,
}

impl ServerInviteState {
    fn name(self) -> &'static str {
        match self {
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Confirmed => "Confirmed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

/// The server INVITE transaction: answers INVITE retransmissions with the last response,
/// retransmits non-2xx final responses on Timer G until the ACK, and — RFC 6026 — stays in
/// Accepted after a 2xx so that INVITE retransmissions are absorbed and ACKs reach the TU.
///
/// It keeps the INVITE only while Proceeding, where the TU may still need it to build its final
/// response; afterwards retransmissions need only the response bytes, and CANCEL and ACK are
/// matched by the layer's keys.
#[derive(Debug)]
pub struct ServerInviteTransaction {
    state: ServerInviteState,
    /// `None` once the final response was sent.
    request: Option<Box<Message>>,
    source: SocketAddr,
    reliability: Reliability,
    config: TimerConfig,
    last_response: Option<Bytes>,
    retransmit_interval: Duration,
    timers: TimerSet,
    outputs: Outputs,
}

impl ServerInviteTransaction {
    /// Creates the transaction for an INVITE from `source`. With `send_trying` it answers 100
    /// Trying at once, as RFC 3261 §17.2.1 asks unless the TU answers within 200 ms.
    pub fn new(
        _now: Instant,
        request: Message,
        source: SocketAddr,
        reliability: Reliability,
        config: TimerConfig,
        send_trying: bool,
    ) -> Self {
        let trying = send_trying.then(|| make_response(&request, 100, "Trying", None).to_bytes());
        let mut transaction = Self {
            state: ServerInviteState::Proceeding,
            request: Some(Box::new(request)),
            source,
            reliability,
            config,
            last_response: None,
            retransmit_interval: config.first_retransmit_interval(),
            timers: TimerSet::default(),
            outputs: Outputs::default(),
        };
        if let Some(trying) = trying {
            transaction.outputs.transmit(source, trying.clone());
            transaction.last_response = Some(trying);
        }
        transaction
    }

    /// The current state.
    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// The INVITE that created the transaction, while Proceeding (after the final response the
    /// transaction no longer keeps it).
    pub fn request(&self) -> Option<&Message> {
        self.request.as_deref()
    }

    /// Where the INVITE came from and responses go.
    pub fn source(&self) -> SocketAddr {
        self.source
    }

    /// Feeds an INVITE retransmission or an ACK that matched this transaction (RFC 3261
    /// §17.2.1, RFC 6026 §8.7).
    pub fn handle_message(
        &mut self,
        now: Instant,
        request: Message,
    ) -> Result<(), TransactionError> {
        let Some(method) = request.method() else {
            return Err(TransactionError::WrongMessageKind {
                expected: "request",
            });
        };
        if *method == Method::Ack {
            match self.state {
                ServerInviteState::Completed => {
                    self.timers.stop(Timer::G);
                    self.timers.stop(Timer::H);
                    self.state = ServerInviteState::Confirmed;
                    if self.reliability.is_reliable() {
                        self.terminate();
                    } else {
                        self.timers.start_after(Timer::I, now, self.config.t4);
                    }
                }
                ServerInviteState::Accepted => self.outputs.event(Event::Acknowledged(request)),
                // An ACK before any final response, or an ACK retransmission in Confirmed.
                _ => {}
            }
        } else {
            match self.state {
                ServerInviteState::Proceeding | ServerInviteState::Completed => {
                    if let Some(response) = &self.last_response {
                        self.outputs.transmit(self.source, response.clone());
                    }
                }
                // RFC 6026 §8.7: INVITE retransmissions in Accepted are absorbed; the TU
                // retransmits the 2xx on its own schedule.
                _ => {}
            }
        }
        Ok(())
    }

    /// Sends a response from the TU (RFC 3261 §17.2.1, RFC 6026 §8.6).
    pub fn send_response(
        &mut self,
        now: Instant,
        response: Message,
    ) -> Result<(), TransactionError> {
        let status = response_status(&response)?;
        match (self.state, status) {
            (ServerInviteState::Proceeding, 100..=199) => {
                let bytes = response.to_bytes();
                self.outputs.transmit(self.source, bytes.clone());
                self.last_response = Some(bytes);
            }
            (ServerInviteState::Proceeding, 200..=299) => {
                let bytes = response.to_bytes();
                self.outputs.transmit(self.source, bytes.clone());
                self.last_response = Some(bytes);
                self.state = ServerInviteState::Accepted;
                self.request = None;
                self.timers
                    .start_after(Timer::L, now, self.config.transaction_timeout());
            }
            (ServerInviteState::Proceeding, _) => {
                let bytes = response.to_bytes();
                self.outputs.transmit(self.source, bytes.clone());
                self.last_response = Some(bytes);
                self.state = ServerInviteState::Completed;
                self.request = None;
                if !self.reliability.is_reliable() {
                    self.timers
                        .start_after(Timer::G, now, self.config.first_retransmit_interval());
                }
                self.timers
                    .start_after(Timer::H, now, self.config.transaction_timeout());
            }
            // RFC 6026 §8.6: the TU retransmits its 2xx (and 2xx of other forks) through the
            // transaction while it is Accepted.
            (ServerInviteState::Accepted, 200..=299) => {
                let bytes = response.to_bytes();
                self.outputs.transmit(self.source, bytes.clone());
                self.last_response = Some(bytes);
            }
            (state, status) => {
                return Err(TransactionError::ResponseNotAllowed {
                    status,
                    state: state.name(),
                });
            }
        }
        Ok(())
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match (timer, self.state) {
                (Timer::G, ServerInviteState::Completed) => {
                    if let Some(response) = &self.last_response {
                        self.outputs.transmit(self.source, response.clone());
                    }
                    self.retransmit_interval = self.config.doubled_capped(self.retransmit_interval);
                    self.timers
                        .start_after(Timer::G, now, self.retransmit_interval);
                }
                (Timer::H, ServerInviteState::Completed) => {
                    self.outputs.event(Event::Timeout(Timer::H));
                    self.terminate();
                }
                (Timer::I, ServerInviteState::Confirmed)
                | (Timer::L, ServerInviteState::Accepted) => self.terminate(),
                _ => {}
            }
        }
    }

    /// The transport could not send a response (RFC 3261 §17.2.4, RFC 6026 Figure 7).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        match self.state {
            ServerInviteState::Proceeding | ServerInviteState::Completed => {
                self.outputs.event(Event::TransportError);
                self.terminate();
            }
            // RFC 6026 Figure 7: Accepted informs the TU and stays, so later 2xx can still go.
            ServerInviteState::Accepted => self.outputs.event(Event::TransportError),
            ServerInviteState::Confirmed | ServerInviteState::Terminated => {}
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outputs.poll_transmit()
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.outputs.poll_event()
    }

    fn terminate(&mut self) {
        self.timers.stop_all();
        self.request = None;
        self.state = ServerInviteState::Terminated;
        self.outputs.event(Event::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::*;

    fn ack() -> Message {
        request("ACK", "z9hG4bK776asdhds")
    }

    fn created(reliability: Reliability) -> (Instant, ServerInviteTransaction) {
        let base = start();
        let mut transaction = ServerInviteTransaction::new(
            base,
            invite(),
            peer(),
            reliability,
            TimerConfig::default(),
            true,
        );
        let sent = drain_transmits(&mut transaction);
        assert_eq!(sent.len(), 1);
        let trying = Message::parse(sent[0].payload.clone()).unwrap();
        assert_eq!(trying.status(), Some(100));
        (base, transaction)
    }

    #[test]
    fn sends_100_trying_and_repeats_it_for_retransmissions() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        assert_eq!(transaction.state(), ServerInviteState::Proceeding);
        transaction
            .handle_message(base + ms(500), invite())
            .unwrap();
        let sent = drain_transmits(&mut transaction);
        assert_eq!(
            Message::parse(sent[0].payload.clone()).unwrap().status(),
            Some(100)
        );
        transaction
            .send_response(base + ms(600), response(&invite(), 180))
            .unwrap();
        drain_transmits(&mut transaction);
        transaction
            .handle_message(base + ms(700), invite())
            .unwrap();
        let sent = drain_transmits(&mut transaction);
        assert_eq!(
            Message::parse(sent[0].payload.clone()).unwrap().status(),
            Some(180)
        );
    }

    #[test]
    fn without_automatic_trying_nothing_is_sent_first() {
        let base = start();
        let mut transaction = ServerInviteTransaction::new(
            base,
            invite(),
            peer(),
            Reliability::Unreliable,
            TimerConfig::default(),
            false,
        );
        assert!(transaction.poll_transmit().is_none());
        transaction.handle_message(base, invite()).unwrap();
        assert!(transaction.poll_transmit().is_none());
    }

    #[test]
    fn non_2xx_final_is_retransmitted_on_timer_g_until_timer_h() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        transaction
            .send_response(base, response(&invite(), 486))
            .unwrap();
        assert_eq!(transaction.state(), ServerInviteState::Completed);
        assert_eq!(drain_transmits(&mut transaction).len(), 1);
        let sent = run_until(&mut transaction, base, base + Duration::from_secs(40));
        let expected = doubling_schedule(
            ms(500),
            Some(Duration::from_secs(4)),
            Duration::from_secs(32),
        );
        assert_eq!(sent, expected);
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::Timeout(Timer::H), Event::Terminated]
        ));
    }

    #[test]
    fn ack_confirms_and_timer_i_absorbs_ack_retransmissions() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        transaction
            .send_response(base, response(&invite(), 404))
            .unwrap();
        drain_transmits(&mut transaction);
        assert!(
            transaction.request().is_none(),
            "dropped with the final response"
        );
        transaction.handle_message(base + ms(100), ack()).unwrap();
        assert_eq!(transaction.state(), ServerInviteState::Confirmed);
        assert_eq!(
            transaction.poll_timeout(),
            Some(base + ms(100) + Duration::from_secs(5))
        );
        transaction.handle_message(base + ms(200), ack()).unwrap();
        transaction
            .handle_message(base + ms(300), invite())
            .unwrap();
        assert!(transaction.poll_transmit().is_none());
        assert!(
            transaction.poll_event().is_none(),
            "the ACK for a non-2xx stays in the transaction"
        );
        transaction.handle_timeout(base + ms(100) + Duration::from_secs(5));
        assert_eq!(transaction.state(), ServerInviteState::Terminated);
    }

    #[test]
    fn completed_answers_invite_retransmissions_with_the_final_response() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        let busy = response(&invite(), 486);
        transaction.send_response(base, busy.clone()).unwrap();
        drain_transmits(&mut transaction);
        transaction
            .handle_message(base + ms(100), invite())
            .unwrap();
        assert_eq!(
            drain_transmits(&mut transaction)[0].payload,
            busy.to_bytes()
        );
    }

    #[test]
    fn reliable_transport_has_no_timer_g_and_no_timer_i() {
        let (base, mut transaction) = created(Reliability::Reliable);
        transaction
            .send_response(base, response(&invite(), 486))
            .unwrap();
        drain_transmits(&mut transaction);
        assert_eq!(
            transaction.poll_timeout(),
            Some(base + Duration::from_secs(32))
        );
        transaction.handle_message(base + ms(100), ack()).unwrap();
        assert_eq!(transaction.state(), ServerInviteState::Terminated);
    }

    #[test]
    fn accepted_absorbs_invites_passes_acks_up_and_sends_tu_retransmissions() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        let ok = response(&invite(), 200);
        assert!(transaction.request().is_some(), "kept while Proceeding");
        transaction.send_response(base, ok.clone()).unwrap();
        assert_eq!(transaction.state(), ServerInviteState::Accepted);
        assert!(
            transaction.request().is_none(),
            "dropped with the final response"
        );
        assert_eq!(drain_transmits(&mut transaction).len(), 1);
        // Timer L = 64·T1; no Timer G for a 2xx.
        assert_eq!(
            transaction.poll_timeout(),
            Some(base + Duration::from_secs(32))
        );
        transaction
            .handle_message(base + ms(500), invite())
            .unwrap();
        assert!(
            transaction.poll_transmit().is_none(),
            "INVITE retransmission absorbed"
        );
        transaction
            .send_response(base + ms(500), ok.clone())
            .unwrap();
        assert_eq!(drain_transmits(&mut transaction)[0].payload, ok.to_bytes());
        transaction.handle_message(base + ms(600), ack()).unwrap();
        assert!(matches!(
            transaction.poll_event(),
            Some(Event::Acknowledged(_))
        ));
        let error = transaction
            .send_response(base, response(&invite(), 486))
            .unwrap_err();
        assert!(matches!(
            error,
            TransactionError::ResponseNotAllowed {
                state: "Accepted",
                ..
            }
        ));
        transaction.handle_timeout(base + Duration::from_secs(32));
        assert_eq!(transaction.state(), ServerInviteState::Terminated);
    }

    #[test]
    fn transport_errors_follow_rfc_6026_figure_7() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        transaction
            .send_response(base, response(&invite(), 200))
            .unwrap();
        transaction.handle_transport_error(base);
        assert!(matches!(
            transaction.poll_event(),
            Some(Event::TransportError)
        ));
        assert_eq!(transaction.state(), ServerInviteState::Accepted);

        let (base, mut transaction) = created(Reliability::Unreliable);
        transaction
            .send_response(base, response(&invite(), 500))
            .unwrap();
        transaction.handle_transport_error(base);
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::TransportError, Event::Terminated]
        ));
    }

    #[test]
    fn provisional_after_final_is_refused() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        transaction
            .send_response(base, response(&invite(), 486))
            .unwrap();
        let error = transaction
            .send_response(base, response(&invite(), 180))
            .unwrap_err();
        assert_eq!(
            error,
            TransactionError::ResponseNotAllowed {
                status: 180,
                state: "Completed"
            }
        );
    }

    #[test]
    fn transport_error_in_proceeding_terminates() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        transaction.handle_transport_error(base);
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::TransportError, Event::Terminated]
        ));
        assert_eq!(transaction.state(), ServerInviteState::Terminated);
    }
}
