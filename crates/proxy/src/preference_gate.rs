//! "Does any level set this preference at all?", asked of the database at most once per
//! interval. While no domain, customer or subscriber sets a preference, the per-request lookup of
//! it is skipped, so a node that does not use a feature pays nothing for it per request; once
//! one is set through the API it counts within the interval (at most one second by default,
//! ARCHITECTURE.md invariant 7).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use store::Store;

/// The cached answer for one preference name.
#[derive(Debug)]
pub struct PreferenceGate {
    name: &'static str,
    recheck: Duration,
    /// When the database was last asked, and its answer.
    known: Mutex<Option<(Instant, bool)>>,
}

impl PreferenceGate {
    /// A gate for preference `name`, trusting an answer for `recheck`.
    pub fn new(name: &'static str, recheck: Duration) -> Self {
        Self {
            name,
            recheck,
            known: Mutex::new(None),
        }
    }

    /// Whether some level sets the preference (`true` while the database cannot answer, so
    /// callers fall back to the per-request lookup, which reports its own errors).
    pub async fn any_set(&self, store: &Store) -> bool {
        let now = Instant::now();
        if let Some((checked, set)) = *self.known.lock().unwrap_or_else(PoisonError::into_inner)
            && now.duration_since(checked) < self.recheck
        {
            return set;
        }
        let set = match store.any_preference_set(self.name).await {
            Ok(set) => set,
            Err(error) => {
                tracing::error!(%error, preference = self.name, "preference check failed");
                return true;
            }
        };
        *self.known.lock().unwrap_or_else(PoisonError::into_inner) = Some((now, set));
        set
    }
}
