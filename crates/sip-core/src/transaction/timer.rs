//! Transaction timers and their values (RFC 3261 §17, Table 4 in Appendix A; RFC 6026 §8.4).

use std::time::{Duration, Instant};

/// Floor for retransmit intervals; see [`TimerConfig::first_retransmit_interval`].
const MINIMUM_RETRANSMIT_INTERVAL: Duration = Duration::from_millis(1);

/// The transaction timers, named as in RFC 3261 Appendix A (A–K) and RFC 6026 §8.4 (L, M).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE request retransmit interval, unreliable transport only (RFC 3261 §17.1.1.2).
    A,
    /// INVITE transaction timeout (RFC 3261 §17.1.1.2).
    B,
    /// Proxy INVITE transaction timeout (RFC 3261 §16.6 step 11); run by the proxy core, not by a
    /// transaction, and listed only so the names match the RFC table.
    C,
    /// Wait time for response retransmits in client INVITE Completed (RFC 3261 §17.1.1.2).
    D,
    /// Non-INVITE request retransmit interval, unreliable transport only (RFC 3261 §17.1.2.2).
    E,
    /// Non-INVITE transaction timeout (RFC 3261 §17.1.2.2).
    F,
    /// INVITE response retransmit interval (RFC 3261 §17.2.1).
    G,
    /// Wait time for ACK receipt (RFC 3261 §17.2.1).
    H,
    /// Wait time for ACK retransmits in server INVITE Confirmed (RFC 3261 §17.2.1).
    I,
    /// Wait time for non-INVITE request retransmits (RFC 3261 §17.2.2).
    J,
    /// Wait time for response retransmits in client non-INVITE Completed (RFC 3261 §17.1.2.2).
    K,
    /// Wait time for accepted INVITE request retransmits in server Accepted (RFC 6026 §8.7).
    L,
    /// Wait time for 2xx retransmissions in client INVITE Accepted (RFC 6026 §8.4).
    M,
}

/// The base timer values T1, T2 and T4 (RFC 3261 §17.1.1.1 and Table 4). Every transaction timer
/// is derived from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses; default 4 s.
    pub t2: Duration,
    /// Maximum duration a message will remain in the network; default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: Timers B, F, H, J (unreliable), L and M.
    pub fn transaction_timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D: at least 32 s over unreliable transport (RFC 3261 §17.1.1.2); 64·T1 when T1 was
    /// raised so that the wait still covers the server's whole retransmit window.
    pub fn timer_d(&self) -> Duration {
        self.transaction_timeout().max(Duration::from_secs(32))
    }

    /// The first retransmit interval (Timers A, E, G start at T1). Never below 1 ms, so that a
    /// zero T1 cannot make a retransmit timer fire forever at the same instant.
    pub fn first_retransmit_interval(&self) -> Duration {
        self.t1.max(MINIMUM_RETRANSMIT_INTERVAL)
    }

    /// The next retransmit interval after `current`, doubled and capped at T2 (Timers E and G,
    /// RFC 3261 §17.1.2.2 and §17.2.1); never below 1 ms.
    pub fn doubled_capped(&self, current: Duration) -> Duration {
        current
            .saturating_mul(2)
            .min(self.t2)
            .max(MINIMUM_RETRANSMIT_INTERVAL)
    }

    /// The flat interval of Timer E in Proceeding: T2, never below 1 ms (RFC 3261 §17.1.2.2).
    pub fn t2_retransmit_interval(&self) -> Duration {
        self.t2.max(MINIMUM_RETRANSMIT_INTERVAL)
    }
}

/// Whether the transport under a transaction retransmits by itself. Over a reliable transport
/// (TCP, TLS, SCTP, WebSocket) Timers A, E and G are not used and D, I, J, K are zero
/// (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// UDP: the transaction retransmits.
    Unreliable,
    /// TCP, TLS, SCTP, WebSocket: the transport retransmits.
    Reliable,
}

impl Reliability {
    /// True for TCP/TLS/SCTP/WebSocket.
    pub fn is_reliable(self) -> bool {
        matches!(self, Reliability::Reliable)
    }
}

/// The few timers one transaction runs at once (never more than three), kept inline.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerSet {
    slots: [Option<(Timer, Instant)>; 3],
}

impl TimerSet {
    /// Starts `timer` to fire at `deadline`, replacing a previous run of the same timer.
    pub(crate) fn start(&mut self, timer: Timer, deadline: Instant) {
        self.stop(timer);
        if let Some(slot) = self.slots.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some((timer, deadline));
        } else {
            // Each state machine uses at most three timers at once; a fourth is a logic error in
            // this module, so keep the earliest three instead of panicking.
            let latest = self
                .slots
                .iter_mut()
                .max_by_key(|slot| slot.map(|(_, at)| at))
                .expect("three slots");
            if latest.is_some_and(|(_, at)| at > deadline) {
                *latest = Some((timer, deadline));
            }
        }
    }

    /// Starts `timer` to fire `delay` after `now`. A delay so long that the deadline cannot be
    /// represented (a misconfigured T1) means the timer never fires, rather than a panic.
    pub(crate) fn start_after(&mut self, timer: Timer, now: Instant, delay: Duration) {
        match now.checked_add(delay) {
            Some(deadline) => self.start(timer, deadline),
            None => self.stop(timer),
        }
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        for slot in &mut self.slots {
            if slot.is_some_and(|(running, _)| running == timer) {
                *slot = None;
            }
        }
    }

    pub(crate) fn stop_all(&mut self) {
        self.slots = [None; 3];
    }

    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|&(_, at)| at).min()
    }

    /// Removes and returns the earliest timer due at `now`, if any.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let slot = self
            .slots
            .iter_mut()
            .filter(|slot| slot.is_some_and(|(_, at)| at <= now))
            .min_by_key(|slot| slot.map(|(_, at)| at))?;
        slot.take().map(|(timer, _)| timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_rfc_values() {
        let config = TimerConfig::default();
        assert_eq!(config.t1, Duration::from_millis(500));
        assert_eq!(config.t2, Duration::from_secs(4));
        assert_eq!(config.t4, Duration::from_secs(5));
        assert_eq!(config.transaction_timeout(), Duration::from_secs(32));
        assert_eq!(config.timer_d(), Duration::from_secs(32));
    }

    #[test]
    fn timer_d_is_at_least_32_seconds() {
        let config = TimerConfig {
            t1: Duration::from_millis(100),
            ..TimerConfig::default()
        };
        assert_eq!(config.timer_d(), Duration::from_secs(32));
    }

    #[test]
    fn doubling_caps_at_t2() {
        let config = TimerConfig::default();
        assert_eq!(
            config.doubled_capped(Duration::from_secs(1)),
            Duration::from_secs(2)
        );
        assert_eq!(
            config.doubled_capped(Duration::from_secs(2)),
            Duration::from_secs(4)
        );
        assert_eq!(
            config.doubled_capped(Duration::from_secs(4)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn timer_set_fires_in_deadline_order() {
        let base = Instant::now();
        let mut timers = TimerSet::default();
        timers.start(Timer::B, base + Duration::from_secs(32));
        timers.start(Timer::A, base + Duration::from_millis(500));
        assert_eq!(timers.earliest(), Some(base + Duration::from_millis(500)));
        assert_eq!(timers.pop_expired(base), None);
        let late = base + Duration::from_secs(40);
        assert_eq!(timers.pop_expired(late), Some(Timer::A));
        assert_eq!(timers.pop_expired(late), Some(Timer::B));
        assert_eq!(timers.pop_expired(late), None);
        assert_eq!(timers.earliest(), None);
    }

    #[test]
    fn an_unrepresentable_deadline_never_fires() {
        let base = Instant::now();
        let mut timers = TimerSet::default();
        timers.start_after(Timer::B, base, Duration::MAX);
        assert_eq!(timers.earliest(), None);
        let huge = TimerConfig {
            t1: Duration::MAX,
            ..TimerConfig::default()
        };
        assert_eq!(huge.transaction_timeout(), Duration::MAX);
    }

    #[test]
    fn restarting_a_timer_replaces_it() {
        let base = Instant::now();
        let mut timers = TimerSet::default();
        timers.start(Timer::E, base + Duration::from_millis(500));
        timers.start(Timer::E, base + Duration::from_secs(1));
        assert_eq!(timers.earliest(), Some(base + Duration::from_secs(1)));
        timers.stop(Timer::E);
        assert_eq!(timers.earliest(), None);
    }
}
