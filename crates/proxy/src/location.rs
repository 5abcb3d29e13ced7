//! The location service (RFC 3261 §10.3, §16.5): which contacts an address-of-record is
//! registered at, and through which Path (RFC 3327) each is reached.
//!
//! [`Location`] is an in-memory write-through cache over the store's `location` table: lookups
//! for calls never touch the database, and every change is committed to the database first and
//! only then applied in memory, so a binding the registrar answered 200 OK for survives a
//! `kill -9`. At start the cache is filled from the table ([`Location::load`]).
//!
//! Writes go through a group commit: concurrent REGISTERs hand their changes to one committer
//! task, which writes everything queued in one transaction of multi-row statements and then
//! answers each caller. Under load a registration costs a fraction of a database round trip
//! instead of one; every caller still waits for its own commit.
//!
//! The cache belongs to one proxy node; when several proxies share one database, each sees the
//! bindings it registered plus those present when it started.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sip_message::{Scheme, Unescaped, Uri};
use store::{LocationKey, LocationRecord, LocationRepository, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// An address-of-record in canonical form: the user part with escapes decoded (user parts
/// compare case-sensitively, RFC 3261 §19.1.4) and the domain in lower case, no port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressOfRecord {
    /// User part, unescaped.
    pub user: String,
    /// Domain, lower case.
    pub domain: String,
}

impl AddressOfRecord {
    /// Builds a normalized address-of-record from its parts.
    pub fn new(user: impl Into<String>, domain: impl AsRef<str>) -> Self {
        Self {
            user: user.into(),
            domain: domain.as_ref().trim().to_ascii_lowercase(),
        }
    }

    /// The address-of-record a SIP or SIPS URI names (To of a REGISTER, Request-URI of a call).
    pub fn from_uri(uri: &Uri<'_>) -> Result<Self, LocationError> {
        if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) {
            return Err(LocationError::InvalidAddressOfRecord(
                "not a sip: or sips: URI",
            ));
        }
        let user = uri
            .user
            .filter(|user| !user.is_empty())
            .ok_or(LocationError::InvalidAddressOfRecord("no user part"))?;
        let user = String::from_utf8(Unescaped::new(user).collect())
            .map_err(|_| LocationError::InvalidAddressOfRecord("user part is not UTF-8"))?;
        // IPv6 hosts in brackets, canonical, as the store names such a domain.
        let domain = uri
            .host
            .domain_name()
            .ok_or(LocationError::InvalidAddressOfRecord("host is not UTF-8"))?;
        if domain.is_empty() {
            return Err(LocationError::InvalidAddressOfRecord("no host"));
        }
        Ok(Self::new(user, domain))
    }
}

impl std::fmt::Display for AddressOfRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "sip:{}@{}", self.user, self.domain)
    }
}

/// One registered contact of an address-of-record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI as registered (inside the angle brackets, no header parameters).
    pub contact: String,
    /// `q` times 1000 (RFC 3261 §20.10); 1000 when the contact gave none.
    pub q: u16,
    /// When the binding lapses, Unix seconds.
    pub expires_at_unix: u64,
    /// Path header values (RFC 3327), topmost first: the route set towards this contact.
    pub path: Vec<String>,
    /// `sip:IP:PORT` the REGISTER came from when it differs from the contact (NAT).
    pub received: Option<String>,
    /// Call-ID of the REGISTER that last wrote the binding.
    pub call_id: String,
    /// CSeq number of that REGISTER.
    pub cseq: u32,
    /// User-Agent of that REGISTER.
    pub user_agent: Option<String>,
    /// `+sip.instance` (RFC 5626 §4.1), as received.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626 §4.2).
    pub reg_id: Option<u32>,
    /// When the binding was last written, Unix seconds (newer sorts first among equal q).
    pub updated_at_unix: u64,
}

impl Binding {
    /// Seconds left at `now_unix` (0 once lapsed).
    pub fn remaining_seconds(&self, now_unix: u64) -> u64 {
        self.expires_at_unix.saturating_sub(now_unix)
    }

    fn is_live(&self, now_unix: u64) -> bool {
        self.expires_at_unix > now_unix
    }

    fn from_record(record: LocationRecord) -> (AddressOfRecord, Binding) {
        let aor = AddressOfRecord::new(record.username, &record.domain);
        let binding = Binding {
            contact: record.contact,
            q: record.q,
            expires_at_unix: record.expires_at,
            path: record.path,
            received: record.received,
            call_id: record.call_id,
            cseq: record.cseq,
            user_agent: record.user_agent,
            instance: record.instance,
            reg_id: record.reg_id,
            updated_at_unix: record.updated_at,
        };
        (aor, binding)
    }

    fn to_record(&self, aor: &AddressOfRecord) -> LocationRecord {
        LocationRecord {
            domain: aor.domain.clone(),
            username: aor.user.clone(),
            contact: self.contact.clone(),
            q: self.q,
            expires_at: self.expires_at_unix,
            path: self.path.clone(),
            received: self.received.clone(),
            call_id: self.call_id.clone(),
            cseq: self.cseq,
            user_agent: self.user_agent.clone(),
            instance: self.instance.clone(),
            reg_id: self.reg_id,
            updated_at: self.updated_at_unix,
        }
    }
}

/// Why a location operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    /// The URI cannot be an address-of-record.
    #[error("invalid address-of-record: {0}")]
    InvalidAddressOfRecord(&'static str),
    /// The database refused or failed; the cache was left unchanged.
    #[error("location database: {0}")]
    Store(#[from] StoreError),
}

/// Changes to the bindings of one address-of-record, applied together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindingChanges {
    /// Bindings to insert or replace (matched by contact).
    pub upserts: Vec<Binding>,
    /// Contacts whose bindings go.
    pub removals: Vec<String>,
}

impl BindingChanges {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removals.is_empty()
    }
}

/// The location service: a write-through cache over the `location` table.
#[derive(Debug)]
pub struct Location {
    store: Store,
    bindings: RwLock<HashMap<AddressOfRecord, Vec<Binding>>>,
    database_statements: Arc<AtomicU64>,
    committer: mpsc::UnboundedSender<CommitRequest>,
}

/// One caller's changes waiting for the group commit.
#[derive(Debug)]
struct CommitRequest {
    upserts: Vec<LocationRecord>,
    deletes: Vec<LocationKey>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Most rows one group commit writes; more waiting requests go into the next one.
const MAX_ROWS_PER_COMMIT: usize = 1_000;

/// Writes queued changes in batches until every sender is gone.
async fn run_committer(
    store: Store,
    statements: Arc<AtomicU64>,
    mut requests: mpsc::UnboundedReceiver<CommitRequest>,
) {
    let mut batch: Vec<CommitRequest> = Vec::new();
    while let Some(first) = requests.recv().await {
        let mut rows = first.upserts.len() + first.deletes.len();
        batch.push(first);
        while rows < MAX_ROWS_PER_COMMIT {
            match requests.try_recv() {
                Ok(request) => {
                    rows += request.upserts.len() + request.deletes.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        if batch.len() > 1 {
            let upserts: Vec<LocationRecord> = batch
                .iter()
                .flat_map(|request| request.upserts.iter().cloned())
                .collect();
            let deletes: Vec<LocationKey> = batch
                .iter()
                .flat_map(|request| request.deletes.iter().cloned())
                .collect();
            if let Ok(count) = store.apply_location_changes(&upserts, &deletes).await {
                statements.fetch_add(count as u64, Ordering::Relaxed);
                for request in batch.drain(..) {
                    let _ = request.done.send(Ok(()));
                }
                continue;
            }
        }
        // A lone request, or a batch the database refused: each request on its own, so one bad
        // row does not fail its neighbours and every caller gets its own verdict.
        for request in batch.drain(..) {
            let result = store
                .apply_location_changes(&request.upserts, &request.deletes)
                .await;
            finish(&statements, request.done, result);
        }
    }
}

fn finish(
    statements: &AtomicU64,
    done: oneshot::Sender<Result<(), StoreError>>,
    result: Result<usize, StoreError>,
) {
    let result = result.map(|count| {
        statements.fetch_add(count as u64, Ordering::Relaxed);
    });
    let _ = done.send(result);
}

/// The current Unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Highest q first, then the most recently written, then by contact for a stable order
/// (RFC 3261 §16.6 tries higher q first).
fn sort_bindings(bindings: &mut [Binding]) {
    bindings.sort_by(|left, right| {
        right
            .q
            .cmp(&left.q)
            .then(right.updated_at_unix.cmp(&left.updated_at_unix))
            .then(left.contact.cmp(&right.contact))
    });
}

impl Location {
    /// Loads every binding still live at `now_unix` from the database.
    pub async fn load(store: Store, now_unix: u64) -> Result<Self, LocationError> {
        let records = store.list_live_locations(now_unix).await?;
        let mut bindings: HashMap<AddressOfRecord, Vec<Binding>> = HashMap::new();
        for record in records {
            let (aor, binding) = Binding::from_record(record);
            bindings.entry(aor).or_default().push(binding);
        }
        for list in bindings.values_mut() {
            sort_bindings(list);
        }
        let database_statements = Arc::new(AtomicU64::new(1));
        let (committer, requests) = mpsc::unbounded_channel();
        tokio::spawn(run_committer(
            store.clone(),
            Arc::clone(&database_statements),
            requests,
        ));
        Ok(Self {
            store,
            bindings: RwLock::new(bindings),
            database_statements,
            committer,
        })
    }

    /// The live bindings of `aor` now, highest q first.
    pub async fn lookup(&self, aor: &AddressOfRecord) -> Result<Vec<Binding>, LocationError> {
        Ok(self.lookup_at(aor, unix_now()))
    }

    /// The bindings of `aor` live at `now_unix`, highest q first (from memory only).
    pub fn lookup_at(&self, aor: &AddressOfRecord, now_unix: u64) -> Vec<Binding> {
        let bindings = self
            .bindings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bindings
            .get(aor)
            .map(|list| {
                list.iter()
                    .filter(|binding| binding.is_live(now_unix))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of addresses-of-record with at least one binding in memory (lapsed included
    /// until the next purge).
    pub fn address_of_record_count(&self) -> usize {
        self.bindings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// SQL statements this location service has sent to the database (the start-up load
    /// counts as one): lets tests and operators see that a refresh costs one write.
    pub fn database_statements(&self) -> u64 {
        self.database_statements.load(Ordering::Relaxed)
    }

    /// Commits `changes` to the database, then to memory. On a database error nothing changes.
    /// Callers serialize changes per address-of-record (the registrar holds a lock).
    pub async fn apply(
        &self,
        aor: &AddressOfRecord,
        changes: &BindingChanges,
    ) -> Result<(), LocationError> {
        if changes.is_empty() {
            return Ok(());
        }
        let upserts: Vec<LocationRecord> = changes
            .upserts
            .iter()
            .map(|binding| binding.to_record(aor))
            .collect();
        let deletes: Vec<LocationKey> = changes
            .removals
            .iter()
            .map(|contact| LocationKey {
                domain: aor.domain.clone(),
                username: aor.user.clone(),
                contact: contact.clone(),
            })
            .collect();
        let (done, committed) = oneshot::channel();
        self.committer
            .send(CommitRequest {
                upserts,
                deletes,
                done,
            })
            .map_err(|_| StoreError::invalid("location", "the location committer has stopped"))?;
        committed
            .await
            .map_err(|_| StoreError::invalid("location", "the location committer has stopped"))??;

        let mut bindings = self
            .bindings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = bindings.entry(aor.clone()).or_default();
        list.retain(|binding| {
            !changes.removals.contains(&binding.contact)
                && !changes
                    .upserts
                    .iter()
                    .any(|upsert| upsert.contact == binding.contact)
        });
        list.extend(changes.upserts.iter().cloned());
        sort_bindings(list);
        if list.is_empty() {
            bindings.remove(aor);
        }
        Ok(())
    }

    /// Removes every binding of `aor` (database first).
    pub async fn remove_all(&self, aor: &AddressOfRecord) -> Result<u64, LocationError> {
        let removed = self
            .store
            .delete_locations_of(&aor.user, &aor.domain)
            .await?;
        self.database_statements.fetch_add(1, Ordering::Relaxed);
        self.bindings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(aor);
        Ok(removed)
    }

    /// Deletes bindings lapsed at `now_unix` from the database and from memory; returns how
    /// many rows the database dropped.
    pub async fn purge_expired(&self, now_unix: u64) -> Result<u64, LocationError> {
        let removed = self.store.purge_expired_locations(now_unix).await?;
        self.database_statements.fetch_add(1, Ordering::Relaxed);
        let mut bindings = self
            .bindings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bindings.retain(|_, list| {
            list.retain(|binding| binding.is_live(now_unix));
            !list.is_empty()
        });
        Ok(removed)
    }

    /// Runs [`Location::purge_expired`] every `interval` until the returned task is aborted.
    /// A failed purge is logged and retried at the next tick (lookups ignore lapsed bindings
    /// anyway).
    pub fn spawn_purger(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let location = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(error) = location.purge_expired(unix_now()).await {
                    tracing::warn!(%error, "purging lapsed registrations failed");
                }
            }
        })
    }
}
