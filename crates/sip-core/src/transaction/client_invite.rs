//! The client INVITE transaction (RFC 3261 §17.1.1 as updated by RFC 6026 §8.4, Figure 5).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::Message;

use super::timer::TimerSet;
use super::{
    Event, Outputs, Reliability, Timer, TimerConfig, TransactionError, Transmit,
    make_ack_for_non_2xx, response_status,
};

/// States of the client INVITE transaction (RFC 3261 Figure 5, RFC 6026 Figure 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientInviteState {
    /// INVITE sent, no response yet; Timer A retransmits over unreliable transport.
    Calling,
    /// A provisional response arrived; no more retransmissions.
    Proceeding,
    /// A 300–699 response arrived and was acknowledged; Timer D absorbs its retransmissions.
    Completed,
    /// A 2xx arrived (RFC 6026 §8.4); Timer M keeps the transaction so that further 2xx reach
    /// the transaction user.
    Accepted,
    /// Done.
    Terminated,
}

/// The client INVITE transaction: sends the INVITE, retransmits it on Timer A, gives up on
/// Timer B, acknowledges non-2xx final responses itself, and passes every 2xx to the transaction
/// user (RFC 3261 §17.1.1, RFC 6026 §8.4).
#[derive(Debug)]
pub struct ClientInviteTransaction {
    state: ClientInviteState,
    // Boxed: the parsed request is over a kilobyte; inline it would size every entry of the
    // layer's transaction table, whatever its kind. `None`, and `request_bytes` empty, once a
    // final response arrived: nothing is retransmitted or built from them after that, and the
    // transaction may live on for 64·T1.
    request: Option<Box<Message>>,
    request_bytes: Bytes,
    ack_bytes: Option<Bytes>,
    destination: SocketAddr,
    reliability: Reliability,
    config: TimerConfig,
    retransmit_interval: Duration,
    timers: TimerSet,
    outputs: Outputs,
}

impl ClientInviteTransaction {
    /// Starts the transaction: queues the INVITE, starts Timer A (unreliable transport only) and
    /// Timer B (RFC 3261 §17.1.1.2).
    pub fn new(
        now: Instant,
        request: Message,
        destination: SocketAddr,
        reliability: Reliability,
        config: TimerConfig,
    ) -> Self {
        let request_bytes = request.to_bytes();
        let mut transaction = Self {
            state: ClientInviteState::Calling,
            request: Some(Box::new(request)),
            request_bytes: request_bytes.clone(),
            ack_bytes: None,
            destination,
            reliability,
            config,
            retransmit_interval: config.first_retransmit_interval(),
            timers: TimerSet::default(),
            outputs: Outputs::default(),
        };
        transaction.outputs.transmit(destination, request_bytes);
        if !reliability.is_reliable() {
            transaction
                .timers
                .start_after(Timer::A, now, config.first_retransmit_interval());
        }
        transaction
            .timers
            .start_after(Timer::B, now, config.transaction_timeout());
        transaction
    }

    /// The current state.
    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// The INVITE this transaction sends, until a final response arrived (then the transaction
    /// no longer keeps it).
    pub fn request(&self) -> Option<&Message> {
        self.request.as_deref()
    }

    /// The transport the INVITE goes over.
    pub fn reliability(&self) -> Reliability {
        self.reliability
    }

    /// Where the INVITE goes.
    pub fn destination(&self) -> SocketAddr {
        self.destination
    }

    /// Feeds a response that matched this transaction (RFC 3261 §17.1.3).
    pub fn handle_message(
        &mut self,
        now: Instant,
        response: Message,
    ) -> Result<(), TransactionError> {
        let status = response_status(&response)?;
        match self.state {
            ClientInviteState::Calling | ClientInviteState::Proceeding => match status {
                100..=199 => {
                    // §17.1.1.2: no retransmissions once the server answered; Timer B only
                    // guards the Calling state.
                    self.timers.stop(Timer::A);
                    self.timers.stop(Timer::B);
                    self.state = ClientInviteState::Proceeding;
                    self.outputs.event(Event::Response(response));
                }
                200..=299 => {
                    self.timers.stop_all();
                    self.release_request();
                    self.state = ClientInviteState::Accepted;
                    self.timers
                        .start_after(Timer::M, now, self.config.transaction_timeout());
                    self.outputs.event(Event::Response(response));
                }
                _ => {
                    self.timers.stop_all();
                    if let Some(request) = &self.request {
                        let ack = make_ack_for_non_2xx(request, &response).to_bytes();
                        self.outputs.transmit(self.destination, ack.clone());
                        self.ack_bytes = Some(ack);
                    }
                    self.release_request();
                    self.state = ClientInviteState::Completed;
                    self.outputs.event(Event::Response(response));
                    if self.reliability.is_reliable() {
                        self.terminate();
                    } else {
                        self.timers
                            .start_after(Timer::D, now, self.config.timer_d());
                    }
                }
            },
            ClientInviteState::Completed => {
                // §17.1.1.2: a retransmitted final response is acknowledged again, not passed up.
                if status >= 300
                    && let Some(ack) = &self.ack_bytes
                {
                    self.outputs.transmit(self.destination, ack.clone());
                }
            }
            ClientInviteState::Accepted => {
                // RFC 6026 §8.4: every 2xx (retransmission or another fork) goes to the TU.
                if (200..=299).contains(&status) {
                    self.outputs.event(Event::Response(response));
                }
            }
            ClientInviteState::Terminated => {}
        }
        Ok(())
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match (timer, self.state) {
                (Timer::A, ClientInviteState::Calling) => {
                    // §17.1.1.2: each retransmission doubles the interval (no T2 cap for INVITE).
                    self.outputs
                        .transmit(self.destination, self.request_bytes.clone());
                    self.retransmit_interval = self.retransmit_interval.saturating_mul(2);
                    self.timers
                        .start_after(Timer::A, now, self.retransmit_interval);
                }
                (Timer::B, ClientInviteState::Calling | ClientInviteState::Proceeding) => {
                    self.outputs.event(Event::Timeout(Timer::B));
                    self.terminate();
                }
                (Timer::D, ClientInviteState::Completed)
                | (Timer::M, ClientInviteState::Accepted) => self.terminate(),
                _ => {}
            }
        }
    }

    /// Tells the transaction that a CANCEL for it went out. RFC 3261 §9.1: without a final
    /// response 64·T1 after the CANCEL, the INVITE counts as cancelled; Timer B is reused for
    /// that wait and reports [`Event::Timeout`] as in Calling.
    pub fn cancel_sent(&mut self, now: Instant) {
        if matches!(
            self.state,
            ClientInviteState::Calling | ClientInviteState::Proceeding
        ) {
            self.timers
                .start_after(Timer::B, now, self.config.transaction_timeout());
        }
    }

    /// The transport could not send for this transaction (RFC 3261 §17.1.4).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        match self.state {
            ClientInviteState::Terminated => {}
            // RFC 6026: the ACK for a 2xx is the TU's, so the error is only reported.
            ClientInviteState::Accepted => self.outputs.event(Event::TransportError),
            _ => {
                self.outputs.event(Event::TransportError);
                self.terminate();
            }
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

    fn release_request(&mut self) {
        self.request = None;
        self.request_bytes = Bytes::new();
    }

    fn terminate(&mut self) {
        self.timers.stop_all();
        self.release_request();
        self.state = ClientInviteState::Terminated;
        self.outputs.event(Event::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::*;
    use sip_message::Method;

    fn calling(reliability: Reliability) -> (Instant, ClientInviteTransaction) {
        let base = start();
        let mut transaction = ClientInviteTransaction::new(
            base,
            invite(),
            peer(),
            reliability,
            TimerConfig::default(),
        );
        let sent = drain_transmits(&mut transaction);
        assert_eq!(sent.len(), 1, "the INVITE goes out at once");
        assert_eq!(sent[0].destination, peer());
        assert_eq!(sent[0].payload, invite().to_bytes());
        (base, transaction)
    }

    fn is_response(event: &Event, code: u16) -> bool {
        matches!(event, Event::Response(response) if response.status() == Some(code))
    }

    #[test]
    fn calling_retransmits_on_timer_a_then_times_out_on_timer_b() {
        let (base, mut transaction) = calling(Reliability::Unreliable);
        assert_eq!(transaction.state(), ClientInviteState::Calling);
        assert_eq!(transaction.poll_timeout(), Some(base + ms(500)));
        let sent = run_until(&mut transaction, base, base + Duration::from_secs(40));
        // Timer A doubles without a T2 cap: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
        assert_eq!(
            sent,
            doubling_schedule(ms(500), None, Duration::from_secs(32))
        );
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::Timeout(Timer::B), Event::Terminated]
        ));
        assert_eq!(transaction.state(), ClientInviteState::Terminated);
        assert_eq!(transaction.poll_timeout(), None);
    }

    #[test]
    fn reliable_transport_has_no_timer_a() {
        let (base, mut transaction) = calling(Reliability::Reliable);
        assert_eq!(
            transaction.poll_timeout(),
            Some(base + Duration::from_secs(32))
        );
        let sent = run_until(&mut transaction, base, base + Duration::from_secs(40));
        assert!(sent.is_empty());
        assert_eq!(transaction.state(), ClientInviteState::Terminated);
    }

    #[test]
    fn provisional_response_moves_to_proceeding_and_stops_retransmission() {
        let (base, mut transaction) = calling(Reliability::Unreliable);
        transaction
            .handle_message(base + ms(100), response(&invite(), 180))
            .unwrap();
        assert_eq!(transaction.state(), ClientInviteState::Proceeding);
        assert!(is_response(&transaction.poll_event().unwrap(), 180));
        assert_eq!(transaction.poll_timeout(), None);
        transaction
            .handle_message(base + ms(200), response(&invite(), 183))
            .unwrap();
        assert_eq!(transaction.state(), ClientInviteState::Proceeding);
        assert!(is_response(&transaction.poll_event().unwrap(), 183));
    }

    #[test]
    fn non_2xx_final_response_is_acknowledged_and_completes() {
        let (base, mut transaction) = calling(Reliability::Unreliable);
        let busy = response(&invite(), 486);
        transaction
            .handle_message(base + ms(100), busy.clone())
            .unwrap();
        assert_eq!(transaction.state(), ClientInviteState::Completed);
        let sent = drain_transmits(&mut transaction);
        assert_eq!(sent.len(), 1);
        let ack = Message::parse(sent[0].payload.clone()).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.cseq().unwrap().number, 314159);
        assert_eq!(ack.cseq().unwrap().method, Method::Ack);
        assert_eq!(ack.to().unwrap().tag(), Some(&b"a6c85cf"[..]));
        let events = drain_events(&mut transaction);
        assert_eq!(events.len(), 1);
        assert!(is_response(&events[0], 486));
        // Timer D: 32 s over UDP.
        assert_eq!(
            transaction.poll_timeout(),
            Some(base + ms(100) + Duration::from_secs(32))
        );
        // A retransmitted final response is acknowledged again and not passed up.
        transaction.handle_message(base + ms(600), busy).unwrap();
        assert_eq!(
            drain_transmits(&mut transaction)[0].payload,
            sent[0].payload
        );
        assert!(transaction.poll_event().is_none());
        transaction.handle_timeout(base + ms(100) + Duration::from_secs(32));
        assert_eq!(transaction.state(), ClientInviteState::Terminated);
        assert!(matches!(transaction.poll_event(), Some(Event::Terminated)));
    }

    #[test]
    fn non_2xx_final_over_reliable_transport_terminates_at_once() {
        let (base, mut transaction) = calling(Reliability::Reliable);
        transaction
            .handle_message(base, response(&invite(), 603))
            .unwrap();
        assert_eq!(drain_transmits(&mut transaction).len(), 1, "the ACK");
        let events = drain_events(&mut transaction);
        assert!(is_response(&events[0], 603));
        assert!(matches!(events[1], Event::Terminated));
        assert_eq!(transaction.state(), ClientInviteState::Terminated);
    }

    #[test]
    fn success_moves_to_accepted_and_passes_every_2xx_up() {
        let (base, mut transaction) = calling(Reliability::Unreliable);
        transaction
            .handle_message(base + ms(50), response(&invite(), 180))
            .unwrap();
        transaction
            .handle_message(base + ms(100), response(&invite(), 200))
            .unwrap();
        assert_eq!(transaction.state(), ClientInviteState::Accepted);
        assert!(
            drain_transmits(&mut transaction).is_empty(),
            "the ACK for 2xx is the TU's"
        );
        // Timer M = 64·T1.
        assert_eq!(
            transaction.poll_timeout(),
            Some(base + ms(100) + Duration::from_secs(32))
        );
        transaction
            .handle_message(base + ms(600), response(&invite(), 200))
            .unwrap();
        transaction
            .handle_message(base + ms(700), response(&invite(), 180))
            .unwrap();
        transaction
            .handle_message(base + ms(800), response(&invite(), 486))
            .unwrap();
        let events = drain_events(&mut transaction);
        let codes: Vec<_> = events
            .iter()
            .map(|event| match event {
                Event::Response(response) => response.status(),
                _ => None,
            })
            .collect();
        assert_eq!(codes, [Some(180), Some(200), Some(200)]);
        transaction.handle_timeout(base + ms(100) + Duration::from_secs(32));
        assert_eq!(transaction.state(), ClientInviteState::Terminated);
    }

    #[test]
    fn transport_error_in_calling_terminates() {
        let (base, mut transaction) = calling(Reliability::Unreliable);
        transaction.handle_transport_error(base);
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::TransportError, Event::Terminated]
        ));
        assert_eq!(transaction.poll_timeout(), None);
    }

    #[test]
    fn transport_error_in_accepted_is_reported_only() {
        let (base, mut transaction) = calling(Reliability::Unreliable);
        transaction
            .handle_message(base, response(&invite(), 200))
            .unwrap();
        drain_events(&mut transaction);
        transaction.handle_transport_error(base);
        assert!(matches!(
            transaction.poll_event(),
            Some(Event::TransportError)
        ));
        assert_eq!(transaction.state(), ClientInviteState::Accepted);
    }

    #[test]
    fn cancel_in_proceeding_bounds_the_wait_for_a_final_response() {
        let (base, mut transaction) = calling(Reliability::Unreliable);
        transaction
            .handle_message(base, response(&invite(), 180))
            .unwrap();
        drain_events(&mut transaction);
        transaction.cancel_sent(base + Duration::from_secs(5));
        assert_eq!(
            transaction.poll_timeout(),
            Some(base + Duration::from_secs(37))
        );
        transaction.handle_timeout(base + Duration::from_secs(37));
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::Timeout(Timer::B), Event::Terminated]
        ));
    }

    #[test]
    fn a_request_is_refused_as_input() {
        let (base, mut transaction) = calling(Reliability::Unreliable);
        let error = transaction.handle_message(base, invite()).unwrap_err();
        assert_eq!(
            error,
            TransactionError::WrongMessageKind {
                expected: "response"
            }
        );
        assert_eq!(transaction.state(), ClientInviteState::Calling);
    }

    #[test]
    fn proceeding_to_completed_and_a_transport_error_there() {
        let (base, mut transaction) = calling(Reliability::Unreliable);
        transaction
            .handle_message(base, response(&invite(), 183))
            .unwrap();
        transaction
            .handle_message(base + ms(10), response(&invite(), 404))
            .unwrap();
        assert_eq!(transaction.state(), ClientInviteState::Completed);
        assert_eq!(drain_transmits(&mut transaction).len(), 1, "the ACK");
        drain_events(&mut transaction);
        transaction.handle_transport_error(base + ms(20));
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::TransportError, Event::Terminated]
        ));
    }
}
