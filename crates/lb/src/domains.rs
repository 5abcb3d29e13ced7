//! Served domains that follow the provisioning database at once.
//!
//! The LB keeps the served domains in memory (re-read every `domain_refresh_seconds`), so a
//! domain created through the API would be refused as relaying until the next read. Instead,
//! an out-of-dialog request for a domain the list lacks waits for one lookup of that domain
//! ([`crate::forward::Action::LookUpDomain`]): found, the domain joins the list and the request
//! goes on; not found, the domain is remembered as unknown for [`NEGATIVE_TTL`] so a flood of
//! requests for it costs one lookup a second, not one each.
//!
//! [`UnknownDomains`] is the bookkeeping without I/O: which lookups are running, who waits for
//! them, which domains were found unknown and when. Bounded everywhere: a sender inventing
//! domains cannot make it grow or start more than [`MAX_LOOKUPS`] lookups at once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The answer of a [`DomainLookupFn`].
pub type DomainAnswer = Pin<Box<dyn Future<Output = Result<bool, String>> + Send>>;

/// Asks the provisioning database whether a domain (lower case) is served; `Err` carries
/// what went wrong (the request is then refused as if the domain were unknown).
#[derive(Clone)]
pub struct DomainLookupFn(Arc<dyn Fn(String) -> DomainAnswer + Send + Sync>);

impl DomainLookupFn {
    /// Wraps the function that asks.
    pub fn new(lookup: impl Fn(String) -> DomainAnswer + Send + Sync + 'static) -> Self {
        Self(Arc::new(lookup))
    }

    /// Asks about `domain`.
    pub fn look_up(&self, domain: String) -> DomainAnswer {
        (self.0)(domain)
    }
}

impl std::fmt::Debug for DomainLookupFn {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("DomainLookupFn")
    }
}

/// How long a domain found unknown is refused without asking again (ARCHITECTURE.md
/// invariant 7: a change through the API is seen within one second).
pub const NEGATIVE_TTL: Duration = Duration::from_secs(1);
/// Most lookups running at once; requests for further unknown domains are refused.
pub const MAX_LOOKUPS: usize = 64;
/// Most requests waiting for one lookup; later ones are refused.
pub const MAX_WAITING_PER_DOMAIN: usize = 64;
/// Most domains remembered as unknown.
pub const MAX_NEGATIVE: usize = 10_000;

/// What to do with a request for an unknown domain.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<T> {
    /// Start a lookup of the domain; the request waits for it.
    LookUp,
    /// A lookup of the domain is running; the request waits for it.
    Queued,
    /// Refuse the request now (known unknown, or too much waiting).
    Refuse(T),
}

/// Running lookups and recently unknown domains. `T` is what waits (a request and its flow).
#[derive(Debug)]
pub struct UnknownDomains<T> {
    waiting: HashMap<String, Vec<T>>,
    unknown_since: HashMap<String, Instant>,
}

impl<T> Default for UnknownDomains<T> {
    fn default() -> Self {
        Self {
            waiting: HashMap::new(),
            unknown_since: HashMap::new(),
        }
    }
}

impl<T> UnknownDomains<T> {
    /// Admits `item`, a request for `domain` (lower case), at `now`.
    pub fn admit(&mut self, domain: &str, item: T, now: Instant) -> Admission<T> {
        if let Some(since) = self.unknown_since.get(domain) {
            if now.saturating_duration_since(*since) < NEGATIVE_TTL {
                return Admission::Refuse(item);
            }
            self.unknown_since.remove(domain);
        }
        if let Some(waiting) = self.waiting.get_mut(domain) {
            if waiting.len() >= MAX_WAITING_PER_DOMAIN {
                return Admission::Refuse(item);
            }
            waiting.push(item);
            return Admission::Queued;
        }
        if self.waiting.len() >= MAX_LOOKUPS {
            return Admission::Refuse(item);
        }
        self.waiting.insert(domain.to_owned(), vec![item]);
        Admission::LookUp
    }

    /// The lookup of `domain` ended at `now`: returns the requests that waited for it, in
    /// arrival order. An unknown domain is remembered for [`NEGATIVE_TTL`].
    pub fn resolved(&mut self, domain: &str, served: bool, now: Instant) -> Vec<T> {
        if !served {
            if self.unknown_since.len() >= MAX_NEGATIVE {
                self.unknown_since
                    .retain(|_, since| now.saturating_duration_since(*since) < NEGATIVE_TTL);
                if self.unknown_since.len() >= MAX_NEGATIVE {
                    self.unknown_since.clear();
                }
            }
            self.unknown_since.insert(domain.to_owned(), now);
        }
        self.waiting.remove(domain).unwrap_or_default()
    }

    /// How many lookups are running.
    pub fn lookups(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lookup_per_domain_and_everyone_waiting_gets_the_answer() {
        let mut domains = UnknownDomains::default();
        let now = Instant::now();
        assert_eq!(domains.admit("new.example", 1, now), Admission::LookUp);
        assert_eq!(domains.admit("new.example", 2, now), Admission::Queued);
        assert_eq!(domains.admit("other.example", 3, now), Admission::LookUp);
        assert_eq!(domains.lookups(), 2);
        assert_eq!(domains.resolved("new.example", true, now), vec![1, 2]);
        // Found: nothing remembered, the next request asks again (the caller has added it).
        assert_eq!(domains.admit("new.example", 4, now), Admission::LookUp);
    }

    #[test]
    fn an_unknown_domain_is_refused_without_asking_for_one_second_only() {
        let mut domains = UnknownDomains::default();
        let start = Instant::now();
        assert_eq!(domains.admit("gone.example", 1, start), Admission::LookUp);
        assert_eq!(domains.resolved("gone.example", false, start), vec![1]);
        let soon = start + Duration::from_millis(999);
        assert_eq!(domains.admit("gone.example", 2, soon), Admission::Refuse(2));
        let later = start + NEGATIVE_TTL;
        assert_eq!(domains.admit("gone.example", 3, later), Admission::LookUp);
    }

    #[test]
    fn waiting_and_lookups_are_bounded() {
        let mut domains = UnknownDomains::default();
        let now = Instant::now();
        for index in 0..MAX_LOOKUPS {
            assert_eq!(
                domains.admit(&format!("d{index}.example"), index, now),
                Admission::LookUp
            );
        }
        assert_eq!(
            domains.admit("one-too-many.example", 0, now),
            Admission::Refuse(0)
        );
        for index in 1..MAX_WAITING_PER_DOMAIN {
            assert_eq!(domains.admit("d0.example", index, now), Admission::Queued);
        }
        assert_eq!(
            domains.admit("d0.example", 999, now),
            Admission::Refuse(999)
        );
        for index in 0..MAX_NEGATIVE + 10 {
            domains.resolved(&format!("n{index}.example"), false, now);
        }
        assert!(domains.unknown_since.len() <= MAX_NEGATIVE);
    }
}
