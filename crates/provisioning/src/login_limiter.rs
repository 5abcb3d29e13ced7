//! Per-source-address throttling of failed logins (security.md A3: throttle brute force).
//!
//! Hand-written rather than `governor` because its keyed store grows without bound; this table
//! has a fixed capacity and evicts the stalest entry when full.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failures within `window` block an address, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimit {
    /// Failures allowed inside one window; the next request is refused.
    pub max_failures: u32,
    /// Length of the counting window and of the block that follows.
    pub window: Duration,
    /// Most addresses tracked at once (bounds memory).
    pub capacity: usize,
}

impl Default for LoginLimit {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(60),
            capacity: 16_384,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct FailureRecord {
    window_start: Instant,
    failures: u32,
}

/// Failed-login counters keyed by source address.
#[derive(Debug)]
pub struct LoginLimiter {
    limit: LoginLimit,
    records: Mutex<HashMap<IpAddr, FailureRecord>>,
}

impl LoginLimiter {
    /// An empty limiter.
    pub fn new(limit: LoginLimit) -> Self {
        Self {
            limit,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, FailureRecord>> {
        // A poisoned lock only means another request panicked mid-update of plain counters;
        // the data is still usable.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Some(seconds)` to wait when `address` is currently blocked.
    pub fn blocked_for(&self, address: IpAddr, now: Instant) -> Option<u64> {
        let records = self.lock();
        let record = records.get(&address)?;
        let elapsed = now.saturating_duration_since(record.window_start);
        if record.failures >= self.limit.max_failures && elapsed < self.limit.window {
            let remaining = self.limit.window - elapsed;
            Some(remaining.as_secs().max(1))
        } else {
            None
        }
    }

    /// Count one failed login from `address`.
    pub fn record_failure(&self, address: IpAddr, now: Instant) {
        let window = self.limit.window;
        let mut records = self.lock();
        if !records.contains_key(&address) && records.len() >= self.limit.capacity {
            records.retain(|_, record| now.saturating_duration_since(record.window_start) < window);
            if records.len() >= self.limit.capacity
                && let Some(stalest) = records
                    .iter()
                    .min_by_key(|(_, record)| record.window_start)
                    .map(|(address, _)| *address)
            {
                records.remove(&stalest);
            }
        }
        let record = records.entry(address).or_insert(FailureRecord {
            window_start: now,
            failures: 0,
        });
        if now.saturating_duration_since(record.window_start) >= window {
            *record = FailureRecord {
                window_start: now,
                failures: 0,
            };
        }
        record.failures = record.failures.saturating_add(1);
    }

    /// Forget the failures of `address` after a successful login.
    pub fn record_success(&self, address: IpAddr) {
        self.lock().remove(&address);
    }

    /// Addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn blocks_after_max_failures_and_releases_after_window() {
        let limiter = LoginLimiter::new(LoginLimit {
            max_failures: 3,
            window: Duration::from_secs(60),
            capacity: 10,
        });
        let start = Instant::now();
        for _ in 0..2 {
            limiter.record_failure(address(1), start);
        }
        assert_eq!(limiter.blocked_for(address(1), start), None);
        limiter.record_failure(address(1), start);
        assert_eq!(limiter.blocked_for(address(1), start), Some(60));
        assert_eq!(
            limiter.blocked_for(address(1), start + Duration::from_secs(45)),
            Some(15)
        );
        assert_eq!(limiter.blocked_for(address(2), start), None);
        assert_eq!(
            limiter.blocked_for(address(1), start + Duration::from_secs(61)),
            None
        );
    }

    #[test]
    fn success_clears_the_counter() {
        let limiter = LoginLimiter::new(LoginLimit::default());
        let now = Instant::now();
        limiter.record_failure(address(1), now);
        limiter.record_success(address(1));
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn memory_stays_bounded_under_many_sources() {
        let limiter = LoginLimiter::new(LoginLimit {
            max_failures: 5,
            window: Duration::from_secs(60),
            capacity: 100,
        });
        let now = Instant::now();
        for index in 0..10_000u32 {
            limiter.record_failure(IpAddr::from(index.to_be_bytes()), now);
        }
        assert!(limiter.tracked() <= 100);
    }
}
