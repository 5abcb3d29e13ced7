//! Nonce-count replay protection (RFC 7616 §3.4 "nc", §5.5 replay attacks).
//!
//! Per nonce it keeps the highest nonce-count seen and a 64-wide sliding window of the
//! counts just below it, like the IPsec anti-replay window (RFC 4303 §3.4.3): clients
//! may send several requests at once and UDP may reorder them.

use std::collections::{BTreeSet, HashMap};

use super::nonce::NonceIdentity;

/// How many counts below the highest one are remembered.
const WINDOW_WIDTH: u32 = 64;

/// The answer for one nonce-count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCountCheck {
    /// First use of this count for this nonce; now recorded.
    Accepted,
    /// Already used, or too far below the highest count to tell.
    Replayed {
        /// The count received.
        nonce_count: u32,
        /// The highest count seen for the nonce.
        highest_seen: u32,
    },
    /// The nonce is not tracked and may have been evicted under memory pressure, so a
    /// replay cannot be ruled out: ask for a fresh nonce (`stale=true`).
    Forgotten,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    highest: u32,
    /// Bit `i` set: count `highest - i` was seen.
    seen: u64,
}

/// Bounded per-nonce record of the nonce-counts used.
///
/// Memory: at most `capacity` nonces. When full, expired nonces go first, then the
/// oldest; every nonce issued at or before an evicted one is from then on
/// [`NonceCountCheck::Forgotten`], so eviction can never let a replay through.
#[derive(Debug, Clone)]
pub struct NonceCountTracker {
    capacity: usize,
    lifetime_seconds: u64,
    windows: HashMap<NonceIdentity, Window>,
    /// The same keys ordered by issue time, for expiry and eviction.
    by_issue_time: BTreeSet<NonceIdentity>,
    /// Issue time of the newest nonce evicted before it expired.
    evicted_through: Option<u64>,
}

impl NonceCountTracker {
    /// A tracker for at most `capacity` nonces (at least one) that live
    /// `lifetime_seconds`.
    pub fn new(capacity: usize, lifetime_seconds: u64) -> Self {
        Self {
            capacity: capacity.max(1),
            lifetime_seconds,
            windows: HashMap::new(),
            by_issue_time: BTreeSet::new(),
            evicted_through: None,
        }
    }

    /// Number of nonces tracked now.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Records `nonce_count` for an authentic nonce, at `now` (Unix seconds).
    /// A count of zero is never valid (counting starts at 1, RFC 7616 §3.4).
    pub fn check_and_record(
        &mut self,
        nonce: NonceIdentity,
        nonce_count: u32,
        now: u64,
    ) -> NonceCountCheck {
        if nonce_count == 0 {
            return NonceCountCheck::Replayed {
                nonce_count,
                highest_seen: 0,
            };
        }
        self.remove_expired(now);
        if let Some(window) = self.windows.get_mut(&nonce) {
            return Self::slide(window, nonce_count);
        }
        if self
            .evicted_through
            .is_some_and(|evicted| nonce.issued_at <= evicted)
        {
            return NonceCountCheck::Forgotten;
        }
        if self.windows.len() >= self.capacity
            && self
                .by_issue_time
                .first()
                .is_some_and(|oldest| nonce.issued_at <= oldest.issued_at)
        {
            // Evicting a newer nonce to track an older one would forget both.
            return NonceCountCheck::Forgotten;
        }
        while self.windows.len() >= self.capacity {
            let Some(oldest) = self.by_issue_time.pop_first() else {
                break;
            };
            self.windows.remove(&oldest);
            self.evicted_through = Some(
                self.evicted_through
                    .map_or(oldest.issued_at, |evicted| evicted.max(oldest.issued_at)),
            );
        }
        self.windows.insert(
            nonce,
            Window {
                highest: nonce_count,
                seen: 1,
            },
        );
        self.by_issue_time.insert(nonce);
        NonceCountCheck::Accepted
    }

    /// Drops nonces past their lifetime: the nonce check rejects them before they get
    /// here, so their windows are no longer needed.
    pub fn remove_expired(&mut self, now: u64) {
        while let Some(oldest) = self.by_issue_time.first().copied() {
            if now <= oldest.issued_at.saturating_add(self.lifetime_seconds) {
                break;
            }
            self.by_issue_time.pop_first();
            self.windows.remove(&oldest);
        }
    }

    fn slide(window: &mut Window, nonce_count: u32) -> NonceCountCheck {
        if nonce_count > window.highest {
            let shift = nonce_count - window.highest;
            window.seen = if shift >= WINDOW_WIDTH {
                0
            } else {
                window.seen << shift
            };
            window.seen |= 1;
            window.highest = nonce_count;
            return NonceCountCheck::Accepted;
        }
        let distance = window.highest - nonce_count;
        let replayed = NonceCountCheck::Replayed {
            nonce_count,
            highest_seen: window.highest,
        };
        if distance >= WINDOW_WIDTH {
            return replayed;
        }
        let bit = 1u64 << distance;
        if window.seen & bit != 0 {
            return replayed;
        }
        window.seen |= bit;
        NonceCountCheck::Accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(issued_at: u64, tag: u8) -> NonceIdentity {
        NonceIdentity {
            issued_at,
            tag: [tag; 16],
        }
    }

    fn replayed(nonce_count: u32, highest_seen: u32) -> NonceCountCheck {
        NonceCountCheck::Replayed {
            nonce_count,
            highest_seen,
        }
    }

    #[test]
    fn each_count_is_accepted_once_even_out_of_order() {
        let mut tracker = NonceCountTracker::new(10, 300);
        let first = nonce(100, 1);
        assert_eq!(
            tracker.check_and_record(first, 1, 100),
            NonceCountCheck::Accepted
        );
        assert_eq!(tracker.check_and_record(first, 1, 100), replayed(1, 1));
        assert_eq!(
            tracker.check_and_record(first, 3, 100),
            NonceCountCheck::Accepted
        );
        assert_eq!(
            tracker.check_and_record(first, 2, 100),
            NonceCountCheck::Accepted
        );
        assert_eq!(tracker.check_and_record(first, 2, 100), replayed(2, 3));
        assert_eq!(tracker.check_and_record(first, 0, 100), replayed(0, 0));
        // Another nonce has its own counts.
        assert_eq!(
            tracker.check_and_record(nonce(100, 2), 1, 100),
            NonceCountCheck::Accepted
        );
    }

    #[test]
    fn counts_below_the_window_are_refused() {
        let mut tracker = NonceCountTracker::new(10, 300);
        let first = nonce(100, 1);
        assert_eq!(
            tracker.check_and_record(first, 100, 100),
            NonceCountCheck::Accepted
        );
        assert_eq!(
            tracker.check_and_record(first, 37, 100),
            NonceCountCheck::Accepted
        );
        assert_eq!(tracker.check_and_record(first, 36, 100), replayed(36, 100));
        // A jump wider than the window forgets everything below.
        assert_eq!(
            tracker.check_and_record(first, 1_000, 100),
            NonceCountCheck::Accepted
        );
        assert_eq!(
            tracker.check_and_record(first, 999, 100),
            NonceCountCheck::Accepted
        );
        assert_eq!(
            tracker.check_and_record(first, 100, 100),
            replayed(100, 1_000)
        );
    }

    #[test]
    fn expired_nonces_are_dropped() {
        let mut tracker = NonceCountTracker::new(10, 300);
        tracker.check_and_record(nonce(100, 1), 1, 100);
        tracker.check_and_record(nonce(200, 2), 1, 200);
        assert_eq!(tracker.len(), 2);
        tracker.remove_expired(401);
        assert_eq!(tracker.len(), 1);
        tracker.remove_expired(501);
        assert!(tracker.is_empty());
    }

    #[test]
    fn memory_stays_bounded_and_eviction_never_reopens_a_replay() {
        let mut tracker = NonceCountTracker::new(2, 300);
        let oldest = nonce(100, 1);
        assert_eq!(
            tracker.check_and_record(oldest, 1, 150),
            NonceCountCheck::Accepted
        );
        assert_eq!(
            tracker.check_and_record(nonce(110, 2), 1, 150),
            NonceCountCheck::Accepted
        );
        assert_eq!(
            tracker.check_and_record(nonce(120, 3), 1, 150),
            NonceCountCheck::Accepted
        );
        assert_eq!(tracker.len(), 2);
        // The evicted nonce's first request replayed: not accepted again.
        assert_eq!(
            tracker.check_and_record(oldest, 1, 150),
            NonceCountCheck::Forgotten
        );
        // Nor an untracked nonce issued before the eviction point.
        assert_eq!(
            tracker.check_and_record(nonce(90, 4), 1, 150),
            NonceCountCheck::Forgotten
        );
        // Newer nonces still work, and tracked ones keep their windows.
        assert_eq!(
            tracker.check_and_record(nonce(130, 5), 1, 150),
            NonceCountCheck::Accepted
        );
        assert_eq!(
            tracker.check_and_record(nonce(130, 5), 1, 150),
            replayed(1, 1)
        );
        assert_eq!(tracker.len(), 2);
    }
}
