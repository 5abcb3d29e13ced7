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
    request: Message,
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
            request,
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
            transaction.timers.start(Timer::A, now + config.first_retransmit_interval());
        }
        transaction
            .timers
            .start(Timer::B, now + config.transaction_timeout());
        transaction
    }

    /// The current state.
    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// The INVITE this transaction sends.
    pub fn request(&self) -> &Message {
        &self.request
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
    pub fn handle_message(&mut self, now: Instant, response: Message) -> Result<(), TransactionError> {
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
                    self.state = ClientInviteState::Accepted;
                    self.timers
                        .start(Timer::M, now + self.config.transaction_timeout());
                    self.outputs.event(Event::Response(response));
                }
                _ => {
                    self.timers.stop_all();
                    let ack = make_ack_for_non_2xx(&self.request, &response).to_bytes();
                    self.outputs.transmit(self.destination, ack.clone());
                    self.ack_bytes = Some(ack);
                    self.state = ClientInviteState::Completed;
                    self.outputs.event(Event::Response(response));
                    if self.reliability.is_reliable() {
                        self.terminate();
                    } else {
                        self.timers.start(Timer::D, now + self.config.timer_d());
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
                    self.timers.start(Timer::A, now + self.retransmit_interval);
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
                .start(Timer::B, now + self.config.transaction_timeout());
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

    fn terminate(&mut self) {
        self.timers.stop_all();
        self.state = ClientInviteState::Terminated;
        self.outputs.event(Event::Terminated);
    }
}
