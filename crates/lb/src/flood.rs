//! Flood banning in the manner of Kamailio's pike + `htable ipban`: requests are counted per
//! source IP over a sampling window; a source over the limit is banned for a while and its
//! packets are dropped silently. Sans-IO: the caller passes the clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Limits of the flood guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimit {
    /// Requests one source may send per window (pike's `reqs_density_per_unit`).
    pub requests_per_window: u32,
    /// The sampling window (pike's `sampling_time_unit`).
    pub window: Duration,
    /// How long a source over the limit is dropped (C5's `ipban` autoexpire).
    pub ban: Duration,
    /// Never ban loopback sources: the node's own components and local tools (Kamailio's
    /// default config exempts `src_ip==myself` likewise).
    pub exempt_loopback: bool,
    /// Most sources tracked at once; a flood from spoofed addresses cannot grow memory past it.
    pub max_sources: usize,
}

impl Default for FloodLimit {
    fn default() -> Self {
        FloodLimit {
            requests_per_window: 60,
            window: Duration::from_secs(2),
            ban: Duration::from_secs(300),
            exempt_loopback: true,
            max_sources: 100_000,
        }
    }
}

/// What the guard says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// The source just went over the limit and is banned from now on (log this once).
    BannedNow,
    /// The source is banned.
    Banned,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    window_start: Instant,
    requests: u32,
    banned_until: Option<Instant>,
}

/// Request counters and bans per source IP.
#[derive(Debug)]
pub struct FloodGuard {
    limit: FloodLimit,
    sources: HashMap<IpAddr, Source>,
}

impl FloodGuard {
    pub fn new(limit: FloodLimit) -> FloodGuard {
        FloodGuard {
            limit,
            sources: HashMap::new(),
        }
    }

    /// Counts one request from `source` at `now`.
    pub fn check(&mut self, source: IpAddr, now: Instant) -> Verdict {
        let source = source.to_canonical();
        if self.limit.exempt_loopback && source.is_loopback() {
            return Verdict::Admit;
        }
        if !self.sources.contains_key(&source) && self.sources.len() >= self.limit.max_sources {
            self.forget_idle(now);
        }
        let limit = self.limit;
        let entry = self.sources.entry(source).or_insert(Source {
            window_start: now,
            requests: 0,
            banned_until: None,
        });
        if let Some(until) = entry.banned_until {
            if now < until {
                return Verdict::Banned;
            }
            entry.banned_until = None;
            entry.window_start = now;
            entry.requests = 0;
        }
        if now.duration_since(entry.window_start) >= limit.window {
            entry.window_start = now;
            entry.requests = 0;
        }
        entry.requests += 1;
        if entry.requests > limit.requests_per_window {
            entry.banned_until = Some(now + limit.ban);
            return Verdict::BannedNow;
        }
        Verdict::Admit
    }

    /// Drops sources that are neither banned nor inside their window; if that frees
    /// nothing (every entry is live), the oldest windows go.
    fn forget_idle(&mut self, now: Instant) {
        let window = self.limit.window;
        self.sources.retain(|_, source| match source.banned_until {
            Some(until) => now < until,
            None => now.duration_since(source.window_start) < window,
        });
        if self.sources.len() >= self.limit.max_sources {
            // Keep bans; forget the unbanned counters, which only delays a ban by a window.
            self.sources
                .retain(|_, source| source.banned_until.is_some());
        }
        if self.sources.len() >= self.limit.max_sources {
            self.sources.clear();
        }
    }

    /// Number of sources tracked.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> FloodLimit {
        FloodLimit {
            requests_per_window: 3,
            window: Duration::from_secs(2),
            ban: Duration::from_secs(300),
            exempt_loopback: true,
            max_sources: 4,
        }
    }

    #[test]
    fn source_over_the_limit_is_banned_until_the_ban_expires() {
        let mut guard = FloodGuard::new(limit());
        let attacker: IpAddr = "198.51.100.1".parse().unwrap();
        let neighbour: IpAddr = "198.51.100.2".parse().unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(guard.check(attacker, start), Verdict::Admit);
        }
        assert_eq!(guard.check(attacker, start), Verdict::BannedNow);
        assert_eq!(
            guard.check(attacker, start + Duration::from_secs(299)),
            Verdict::Banned
        );
        assert_eq!(guard.check(neighbour, start), Verdict::Admit);
        assert_eq!(
            guard.check(attacker, start + Duration::from_secs(300)),
            Verdict::Admit
        );
    }

    #[test]
    fn the_count_restarts_every_window() {
        let mut guard = FloodGuard::new(limit());
        let phone: IpAddr = "203.0.113.5".parse().unwrap();
        let start = Instant::now();
        for second in 0..20 {
            let now = start + Duration::from_secs(second);
            assert_eq!(guard.check(phone, now), Verdict::Admit, "second {second}");
        }
    }

    #[test]
    fn loopback_is_exempt_and_memory_is_bounded() {
        let mut guard = FloodGuard::new(limit());
        let start = Instant::now();
        for _ in 0..100 {
            assert_eq!(
                guard.check("127.0.0.1".parse().unwrap(), start),
                Verdict::Admit
            );
        }
        let banned: IpAddr = "198.51.100.9".parse().unwrap();
        for _ in 0..4 {
            guard.check(banned, start);
        }
        for host in 0..=255u8 {
            guard.check(IpAddr::from([192, 0, 2, host]), start);
            assert!(guard.tracked() <= 4);
        }
        // A full table forgets counters before bans.
        assert_eq!(guard.check(banned, start), Verdict::Banned);
    }
}
