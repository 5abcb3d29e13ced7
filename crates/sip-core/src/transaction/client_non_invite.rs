//! The client non-INVITE transaction (RFC 3261 §17.1.2, Figure 6).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::Message;

use super::timer::TimerSet;
use super::{
    Event, Outputs, Reliability, Timer, TimerConfig, TransactionError, Transmit, response_status,
};

/// States of the client non-INVITE transaction (RFC 3261 Figure 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientNonInviteState {
    /// Request sent, no response yet; Timer E doubles up to T2.
    Trying,
    /// A provisional response arrived; Timer E keeps firing every T2.
    Proceeding,
    /// A final response arrived; Timer K absorbs its retransmissions.
    Completed,
    /// Done.
    Terminated,
}

/// The client non-INVITE transaction: sends the request, retransmits it on Timer E, gives up on
/// Timer F (RFC 3261 §17.1.2).
#[derive(Debug)]
pub struct ClientNonInviteTransaction {
    state: ClientNonInviteState,
    // Boxed: the parsed request is over a kilobyte; inline it would size every entry of the
    // layer's transaction table, whatever its kind. `None`, and `request_bytes` empty, once a
    // final response arrived: nothing is retransmitted or built from them after that, and the
    // transaction may live on for 64·T1.
    request: Option<Box<Message>>,
    request_bytes: Bytes,
    destination: SocketAddr,
    reliability: Reliability,
    config: TimerConfig,
    retransmit_interval: Duration,
    timers: TimerSet,
    outputs: Outputs,
    started: bool,
}

impl ClientNonInviteTransaction {
    /// Starts the transaction: queues the request and starts Timers E (unreliable transport
    /// only) and F (RFC 3261 §17.1.2.2).
    pub fn new(
        now: Instant,
        request: Message,
        destination: SocketAddr,
        reliability: Reliability,
        config: TimerConfig,
    ) -> Self {
        let mut transaction = Self::new_deferred(request, destination, reliability, config);
        transaction.start(now);
        transaction
    }

    /// Builds the transaction without sending yet; [`Self::start`] sends. Used for a CANCEL that
    /// must wait for a provisional response to its INVITE (RFC 3261 §9.1).
    pub fn new_deferred(
        request: Message,
        destination: SocketAddr,
        reliability: Reliability,
        config: TimerConfig,
    ) -> Self {
        let request_bytes = request.to_bytes();
        Self {
            state: ClientNonInviteState::Trying,
            request: Some(Box::new(request)),
            request_bytes,
            destination,
            reliability,
            config,
            retransmit_interval: config.first_retransmit_interval(),
            timers: TimerSet::default(),
            outputs: Outputs::default(),
            started: false,
        }
    }

    /// Sends the request and starts the timers; does nothing when already started.
    pub fn start(&mut self, now: Instant) {
        if self.started || self.state != ClientNonInviteState::Trying {
            return;
        }
        self.started = true;
        self.outputs
            .transmit(self.destination, self.request_bytes.clone());
        if !self.reliability.is_reliable() {
            self.timers
                .start_after(Timer::E, now, self.config.first_retransmit_interval());
        }
        self.timers
            .start_after(Timer::F, now, self.config.transaction_timeout());
    }

    /// Whether the request was sent.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Ends a transaction that was never started, without telling the peer anything.
    pub fn abandon(&mut self) {
        if !self.started && self.state != ClientNonInviteState::Terminated {
            self.terminate();
        }
    }

    /// The current state.
    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    /// The request this transaction sends, until a final response arrived (then the
    /// transaction no longer keeps it).
    pub fn request(&self) -> Option<&Message> {
        self.request.as_deref()
    }

    /// Where the request goes.
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
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding => {
                if status < 200 {
                    self.state = ClientNonInviteState::Proceeding;
                    self.outputs.event(Event::Response(response));
                } else {
                    self.timers.stop_all();
                    self.state = ClientNonInviteState::Completed;
                    self.release_request();
                    self.outputs.event(Event::Response(response));
                    if self.reliability.is_reliable() {
                        self.terminate();
                    } else {
                        self.timers.start_after(Timer::K, now, self.config.t4);
                    }
                }
            }
            // §17.1.2.2: retransmitted responses are absorbed in Completed.
            ClientNonInviteState::Completed | ClientNonInviteState::Terminated => {}
        }
        Ok(())
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match (timer, self.state) {
                (Timer::E, ClientNonInviteState::Trying | ClientNonInviteState::Proceeding) => {
                    self.outputs
                        .transmit(self.destination, self.request_bytes.clone());
                    // §17.1.2.2: doubling up to T2 while Trying, T2 flat once Proceeding.
                    self.retransmit_interval = if self.state == ClientNonInviteState::Trying {
                        self.config.doubled_capped(self.retransmit_interval)
                    } else {
                        self.config.t2_retransmit_interval()
                    };
                    self.timers
                        .start_after(Timer::E, now, self.retransmit_interval);
                }
                (Timer::F, ClientNonInviteState::Trying | ClientNonInviteState::Proceeding) => {
                    self.outputs.event(Event::Timeout(Timer::F));
                    self.terminate();
                }
                (Timer::K, ClientNonInviteState::Completed) => self.terminate(),
                _ => {}
            }
        }
    }

    /// The transport could not send for this transaction (RFC 3261 §17.1.4).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if matches!(
            self.state,
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding
        ) {
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

    fn release_request(&mut self) {
        self.request = None;
        self.request_bytes = Bytes::new();
    }

    fn terminate(&mut self) {
        self.release_request();
        self.timers.stop_all();
        self.state = ClientNonInviteState::Terminated;
        self.outputs.event(Event::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::*;

    fn options() -> Message {
        request("OPTIONS", "z9hG4bKoptions1")
    }

    fn trying(reliability: Reliability) -> (Instant, ClientNonInviteTransaction) {
        let base = start();
        let mut transaction = ClientNonInviteTransaction::new(
            base,
            options(),
            peer(),
            reliability,
            TimerConfig::default(),
        );
        assert_eq!(drain_transmits(&mut transaction).len(), 1);
        (base, transaction)
    }

    #[test]
    fn trying_retransmits_on_timer_e_capped_at_t2_then_times_out_on_timer_f() {
        let (base, mut transaction) = trying(Reliability::Unreliable);
        let sent = run_until(&mut transaction, base, base + Duration::from_secs(40));
        // 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, …, 31.5 s.
        let expected = doubling_schedule(
            ms(500),
            Some(Duration::from_secs(4)),
            Duration::from_secs(32),
        );
        assert_eq!(sent, expected);
        assert_eq!(expected[4], Duration::from_millis(11_500));
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::Timeout(Timer::F), Event::Terminated]
        ));
        assert_eq!(transaction.state(), ClientNonInviteState::Terminated);
    }

    #[test]
    fn proceeding_retransmits_every_t2() {
        let (base, mut transaction) = trying(Reliability::Unreliable);
        transaction
            .handle_message(base + ms(100), response(&options(), 100))
            .unwrap();
        assert_eq!(transaction.state(), ClientNonInviteState::Proceeding);
        let sent = run_until(&mut transaction, base, base + Duration::from_secs(10));
        // The first E (armed while Trying) still fires at 0.5 s; from then on T2.
        assert_eq!(sent, [ms(500), ms(4_500), ms(8_500)]);
    }

    #[test]
    fn final_response_completes_and_timer_k_absorbs_retransmissions() {
        let (base, mut transaction) = trying(Reliability::Unreliable);
        transaction
            .handle_message(base + ms(100), response(&options(), 200))
            .unwrap();
        assert_eq!(transaction.state(), ClientNonInviteState::Completed);
        assert!(matches!(transaction.poll_event(), Some(Event::Response(_))));
        assert_eq!(
            transaction.poll_timeout(),
            Some(base + ms(100) + Duration::from_secs(5))
        );
        transaction
            .handle_message(base + ms(200), response(&options(), 200))
            .unwrap();
        assert!(
            transaction.poll_event().is_none(),
            "retransmission absorbed"
        );
        assert!(run_until(&mut transaction, base, base + Duration::from_secs(6)).is_empty());
        assert_eq!(transaction.state(), ClientNonInviteState::Terminated);
        assert!(matches!(transaction.poll_event(), Some(Event::Terminated)));
    }

    #[test]
    fn reliable_transport_has_no_timer_e_and_no_timer_k() {
        let (base, mut transaction) = trying(Reliability::Reliable);
        assert_eq!(
            transaction.poll_timeout(),
            Some(base + Duration::from_secs(32))
        );
        transaction
            .handle_message(base, response(&options(), 404))
            .unwrap();
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::Response(_), Event::Terminated]
        ));
    }

    #[test]
    fn deferred_transaction_sends_only_when_started() {
        let base = start();
        let mut transaction = ClientNonInviteTransaction::new_deferred(
            options(),
            peer(),
            Reliability::Unreliable,
            TimerConfig::default(),
        );
        assert!(transaction.poll_transmit().is_none());
        assert_eq!(transaction.poll_timeout(), None);
        transaction.start(base);
        assert!(transaction.is_started());
        assert_eq!(drain_transmits(&mut transaction).len(), 1);
        transaction.start(base);
        assert!(
            transaction.poll_transmit().is_none(),
            "starting twice sends once"
        );
        transaction.abandon();
        assert_eq!(
            transaction.state(),
            ClientNonInviteState::Trying,
            "a started one is not abandoned"
        );
    }

    #[test]
    fn abandoning_an_unsent_transaction_terminates_it() {
        let mut transaction = ClientNonInviteTransaction::new_deferred(
            options(),
            peer(),
            Reliability::Unreliable,
            TimerConfig::default(),
        );
        transaction.abandon();
        assert_eq!(transaction.state(), ClientNonInviteState::Terminated);
        assert!(matches!(transaction.poll_event(), Some(Event::Terminated)));
    }

    #[test]
    fn transport_error_terminates() {
        let (base, mut transaction) = trying(Reliability::Unreliable);
        transaction.handle_transport_error(base);
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::TransportError, Event::Terminated]
        ));
    }

    #[test]
    fn proceeding_to_completed_or_to_timer_f() {
        let (base, mut transaction) = trying(Reliability::Unreliable);
        transaction
            .handle_message(base, response(&options(), 180))
            .unwrap();
        transaction
            .handle_message(base + ms(10), response(&options(), 486))
            .unwrap();
        assert_eq!(transaction.state(), ClientNonInviteState::Completed);
        let codes: Vec<_> = drain_events(&mut transaction)
            .into_iter()
            .filter_map(|event| match event {
                Event::Response(response) => response.status(),
                _ => None,
            })
            .collect();
        assert_eq!(codes, [180, 486]);

        let (base, mut transaction) = trying(Reliability::Unreliable);
        transaction
            .handle_message(base, response(&options(), 100))
            .unwrap();
        drain_events(&mut transaction);
        run_until(&mut transaction, base, base + Duration::from_secs(32));
        let events = drain_events(&mut transaction);
        assert!(matches!(
            events[..],
            [Event::Timeout(Timer::F), Event::Terminated]
        ));
    }
}
