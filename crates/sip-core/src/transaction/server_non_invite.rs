//! The server non-INVITE transaction (RFC 3261 §17.2.2, Figure 8).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::Message;

use super::timer::TimerSet;
use super::{
    Event, Outputs, Reliability, Timer, TimerConfig, TransactionError, Transmit, response_status,
};

/// States of the server non-INVITE transaction (RFC 3261 Figure 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerNonInviteState {
    /// Request passed to the TU, nothing sent yet; retransmissions are absorbed silently.
    Trying,
    /// A provisional response was sent; retransmissions get it again.
    Proceeding,
    /// A final response was sent; retransmissions get it again until Timer J fires.
    Completed,
    /// Done.
    Terminated,
}

impl ServerNonInviteState {
    fn name(self) -> &'static str {
        match self {
            Self::Trying => "Trying",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Terminated => "Terminated",
        }
    }
}

/// The server non-INVITE transaction: absorbs request retransmissions, answering each with the
/// last response sent (RFC 3261 §17.2.2).
///
/// It keeps the request only until the final response: in Completed a retransmission needs
/// nothing but the response bytes, and Timer J keeps the transaction for 64·T1, so holding the
/// parsed request (and through it the whole datagram) that long would multiply the memory of a
/// busy server.
#[derive(Debug)]
pub struct ServerNonInviteTransaction {
    state: ServerNonInviteState,
    /// `None` once the final response was sent.
    request: Option<Box<Message>>,
    source: SocketAddr,
    reliability: Reliability,
    /// How long Completed lasts over unreliable transport: 64·T1 unless overridden.
    timer_j: Duration,
    last_response: Option<Bytes>,
    timers: TimerSet,
    outputs: Outputs,
}

impl ServerNonInviteTransaction {
    /// Creates the transaction for a request that arrived from `source` (RFC 3261 §17.2.2).
    pub fn new(
        _now: Instant,
        request: Message,
        source: SocketAddr,
        reliability: Reliability,
        config: TimerConfig,
    ) -> Self {
        Self {
            state: ServerNonInviteState::Trying,
            request: Some(Box::new(request)),
            source,
            reliability,
            timer_j: config.transaction_timeout(),
            last_response: None,
            timers: TimerSet::default(),
            outputs: Outputs::default(),
        }
    }

    /// Overrides Timer J, the time a Completed transaction over unreliable transport waits for
    /// request retransmissions (RFC 3261 §17.2.2: 64·T1, the default). A shorter wait keeps less
    /// state on a busy server; a retransmission arriving after it creates a new transaction.
    pub fn with_timer_j(mut self, wait: Duration) -> Self {
        self.timer_j = wait;
        self
    }

    /// The current state.
    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// The request that created the transaction, until the final response was sent (then the
    /// transaction no longer keeps it).
    pub fn request(&self) -> Option<&Message> {
        self.request.as_deref()
    }

    /// Where the request came from and responses go.
    pub fn source(&self) -> SocketAddr {
        self.source
    }

    /// Feeds a retransmission of the request (RFC 3261 §17.2.2).
    pub fn handle_message(
        &mut self,
        _now: Instant,
        request: Message,
    ) -> Result<(), TransactionError> {
        if !request.is_request() {
            return Err(TransactionError::WrongMessageKind {
                expected: "request",
            });
        }
        match self.state {
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed => {
                if let Some(response) = &self.last_response {
                    self.outputs.transmit(self.source, response.clone());
                }
            }
            ServerNonInviteState::Trying | ServerNonInviteState::Terminated => {}
        }
        Ok(())
    }

    /// Sends a response from the TU (RFC 3261 §17.2.2). A second final response, or any response
    /// after the final one, is refused.
    pub fn send_response(
        &mut self,
        now: Instant,
        response: Message,
    ) -> Result<(), TransactionError> {
        let status = response_status(&response)?;
        match self.state {
            ServerNonInviteState::Trying | ServerNonInviteState::Proceeding => {
                let bytes = response.to_bytes();
                self.outputs.transmit(self.source, bytes.clone());
                self.last_response = Some(bytes);
                if status < 200 {
                    self.state = ServerNonInviteState::Proceeding;
                } else {
                    self.state = ServerNonInviteState::Completed;
                    self.request = None;
                    if self.reliability.is_reliable() {
                        self.terminate();
                    } else {
                        self.timers.start_after(Timer::J, now, self.timer_j);
                    }
                }
                Ok(())
            }
            state => Err(TransactionError::ResponseNotAllowed {
                status,
                state: state.name(),
            }),
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            if timer == Timer::J && self.state == ServerNonInviteState::Completed {
                self.terminate();
            }
        }
    }

    /// The transport could not send a response (RFC 3261 §17.2.4).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.state != ServerNonInviteState::Terminated {
            self.outputs.event(Event::TransportError);
            self.terminate();
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
        self.state = ServerNonInviteState::Terminated;
        self.outputs.event(Event::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::*;

    fn register() -> Message {
        request("REGISTER", "z9hG4bKregister1")
    }

    fn created(reliability: Reliability) -> (Instant, ServerNonInviteTransaction) {
        let base = start();
        let transaction = ServerNonInviteTransaction::new(
            base,
            register(),
            peer(),
            reliability,
            TimerConfig::default(),
        );
        (base, transaction)
    }

    #[test]
    fn trying_absorbs_retransmissions_silently() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        assert_eq!(transaction.state(), ServerNonInviteState::Trying);
        transaction
            .handle_message(base + ms(500), register())
            .unwrap();
        assert!(transaction.poll_transmit().is_none());
        assert!(transaction.poll_event().is_none());
        assert_eq!(transaction.poll_timeout(), None);
    }

    #[test]
    fn proceeding_answers_retransmissions_with_the_provisional_response() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        let trying = response(&register(), 100);
        transaction.send_response(base, trying.clone()).unwrap();
        assert_eq!(transaction.state(), ServerNonInviteState::Proceeding);
        assert_eq!(
            drain_transmits(&mut transaction)[0].payload,
            trying.to_bytes()
        );
        transaction
            .handle_message(base + ms(500), register())
            .unwrap();
        let again = drain_transmits(&mut transaction);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].payload, trying.to_bytes());
        assert_eq!(again[0].destination, peer());
    }

    #[test]
    fn completed_answers_retransmissions_until_timer_j() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        let ok = response(&register(), 200);
        assert!(transaction.request().is_some());
        transaction.send_response(base, ok.clone()).unwrap();
        assert_eq!(transaction.state(), ServerNonInviteState::Completed);
        assert!(
            transaction.request().is_none(),
            "Completed keeps only the response bytes"
        );
        drain_transmits(&mut transaction);
        assert_eq!(
            transaction.poll_timeout(),
            Some(base + Duration::from_secs(32))
        );
        transaction
            .handle_message(base + ms(500), register())
            .unwrap();
        assert_eq!(drain_transmits(&mut transaction)[0].payload, ok.to_bytes());
        transaction.handle_timeout(base + Duration::from_secs(32));
        assert_eq!(transaction.state(), ServerNonInviteState::Terminated);
        assert!(matches!(transaction.poll_event(), Some(Event::Terminated)));
    }

    #[test]
    fn timer_j_can_be_shortened() {
        let base = start();
        let mut transaction = ServerNonInviteTransaction::new(
            base,
            register(),
            peer(),
            Reliability::Unreliable,
            TimerConfig::default(),
        )
        .with_timer_j(Duration::from_secs(5));
        let ok = response(&register(), 200);
        transaction.send_response(base, ok.clone()).unwrap();
        drain_transmits(&mut transaction);
        assert_eq!(
            transaction.poll_timeout(),
            Some(base + Duration::from_secs(5))
        );
        transaction
            .handle_message(base + Duration::from_secs(4), register())
            .unwrap();
        assert_eq!(drain_transmits(&mut transaction)[0].payload, ok.to_bytes());
        transaction.handle_timeout(base + Duration::from_secs(5));
        assert_eq!(transaction.state(), ServerNonInviteState::Terminated);
    }

    #[test]
    fn a_second_final_response_is_refused() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        transaction
            .send_response(base, response(&register(), 200))
            .unwrap();
        let error = transaction
            .send_response(base, response(&register(), 500))
            .unwrap_err();
        assert_eq!(
            error,
            TransactionError::ResponseNotAllowed {
                status: 500,
                state: "Completed"
            }
        );
        let error = transaction
            .send_response(base, response(&register(), 180))
            .unwrap_err();
        assert!(matches!(
            error,
            TransactionError::ResponseNotAllowed { status: 180, .. }
        ));
    }

    #[test]
    fn reliable_transport_terminates_on_the_final_response() {
        let (base, mut transaction) = created(Reliability::Reliable);
        transaction
            .send_response(base, response(&register(), 401))
            .unwrap();
        assert_eq!(transaction.state(), ServerNonInviteState::Terminated);
        assert_eq!(drain_transmits(&mut transaction).len(), 1);
    }

    #[test]
    fn transport_error_terminates() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        transaction
            .send_response(base, response(&register(), 100))
            .unwrap();
        transaction.handle_transport_error(base);
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::TransportError, Event::Terminated]
        ));
    }

    #[test]
    fn a_response_is_refused_as_input() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        let error = transaction
            .handle_message(base, response(&register(), 200))
            .unwrap_err();
        assert_eq!(
            error,
            TransactionError::WrongMessageKind {
                expected: "request"
            }
        );
    }

    #[test]
    fn proceeding_to_completed() {
        let (base, mut transaction) = created(Reliability::Unreliable);
        transaction
            .send_response(base, response(&register(), 100))
            .unwrap();
        transaction
            .send_response(base, response(&register(), 183))
            .unwrap();
        assert_eq!(transaction.state(), ServerNonInviteState::Proceeding);
        transaction
            .send_response(base, response(&register(), 200))
            .unwrap();
        assert_eq!(transaction.state(), ServerNonInviteState::Completed);
        assert_eq!(drain_transmits(&mut transaction).len(), 3);
        transaction.handle_transport_error(base);
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::TransportError, Event::Terminated]
        ));
    }
}
