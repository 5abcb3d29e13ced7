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
//!
//! One node holds a million bindings, so the cache is compact (see [`Registry`]): one boxed
//! record per address-of-record in a hash table that stores only a pointer per slot, the
//! strings of a binding packed into one allocation, and the values thousands of bindings share
//! (domains, User-Agents) interned. Lookups hand out plain [`Binding`]s.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use sip_message::{Scheme, Unescaped, Uri};
use smallvec::SmallVec;
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
    bindings: RwLock<Registry>,
    database_statements: Arc<AtomicU64>,
    committer: mpsc::UnboundedSender<CommitRequest>,
}

/// The bindings in memory. A slot of the table is one pointer: with a million
/// addresses-of-record the table has two million slots (it stays at most 7/8 full), and a
/// pointer per slot keeps the empty ones cheap. The key is not stored apart from the record:
/// slots are found by a hash of the user and domain and compared against the record.
#[derive(Debug, Default)]
struct Registry {
    table: HashTable<Box<Registered>>,
    hasher: RandomState,
    /// Interned domains and User-Agents; values no binding uses any more go at each purge.
    shared: HashSet<Arc<str>>,
}

/// The bindings of one address-of-record, highest q first (most have exactly one).
#[derive(Debug)]
struct Registered {
    user: Box<str>,
    domain: Arc<str>,
    bindings: SmallVec<[StoredBinding; 1]>,
}

/// A [`Binding`] as kept in memory: 64 bytes plus one allocation for its own strings.
#[derive(Debug)]
struct StoredBinding {
    strings: PackedStrings,
    user_agent: Option<Arc<str>>,
    expires_at_unix: u64,
    updated_at_unix: u64,
    cseq: u32,
    reg_id: Option<u32>,
    q: u16,
}

/// The strings of one binding in one allocation: contact, Call-ID, `received`, instance, then
/// the Path entries. Each is its LEB128 byte length and its bytes; an optional value stores
/// length + 1 (0: absent), and the Path its entry count first.
#[derive(Debug)]
struct PackedStrings(Box<[u8]>);

/// The parts of [`PackedStrings`], borrowed.
#[derive(Debug)]
struct UnpackedStrings<'a> {
    contact: &'a str,
    call_id: &'a str,
    received: Option<&'a str>,
    instance: Option<&'a str>,
    path: Vec<&'a str>,
}

fn length_size(mut length: usize) -> usize {
    let mut size = 1;
    while length >= 0x80 {
        length >>= 7;
        size += 1;
    }
    size
}

fn push_length(bytes: &mut Vec<u8>, mut length: usize) {
    while length >= 0x80 {
        bytes.push((length as u8 & 0x7f) | 0x80);
        length >>= 7;
    }
    bytes.push(length as u8);
}

impl PackedStrings {
    fn pack(
        contact: &str,
        call_id: &str,
        received: Option<&str>,
        instance: Option<&str>,
        path: &[String],
    ) -> Self {
        let optional_size =
            |text: Option<&str>| text.map_or(1, |text| length_size(text.len() + 1) + text.len());
        let size = length_size(contact.len())
            + contact.len()
            + length_size(call_id.len())
            + call_id.len()
            + optional_size(received)
            + optional_size(instance)
            + length_size(path.len())
            + path
                .iter()
                .map(|entry| length_size(entry.len()) + entry.len())
                .sum::<usize>();
        let mut bytes = Vec::with_capacity(size);
        for text in [contact, call_id] {
            push_length(&mut bytes, text.len());
            bytes.extend_from_slice(text.as_bytes());
        }
        for text in [received, instance] {
            match text {
                None => push_length(&mut bytes, 0),
                Some(text) => {
                    push_length(&mut bytes, text.len() + 1);
                    bytes.extend_from_slice(text.as_bytes());
                }
            }
        }
        push_length(&mut bytes, path.len());
        for entry in path {
            push_length(&mut bytes, entry.len());
            bytes.extend_from_slice(entry.as_bytes());
        }
        Self(bytes.into_boxed_slice())
    }

    fn reader(&self) -> PackedReader<'_> {
        PackedReader { rest: &self.0 }
    }

    /// The contact alone (the first part: no need to read the rest).
    fn contact(&self) -> &str {
        self.reader().text()
    }

    fn unpack(&self) -> UnpackedStrings<'_> {
        let mut reader = self.reader();
        let contact = reader.text();
        let call_id = reader.text();
        let received = reader.optional_text();
        let instance = reader.optional_text();
        let entries = reader.length();
        let path = (0..entries).map(|_| reader.text()).collect();
        UnpackedStrings {
            contact,
            call_id,
            received,
            instance,
            path,
        }
    }
}

/// Reads [`PackedStrings`] front to back. Only [`PackedStrings::pack`] writes them, so every
/// part is there and is UTF-8; should that ever not hold, the reader yields empty parts rather
/// than panic.
#[derive(Debug)]
struct PackedReader<'a> {
    rest: &'a [u8],
}

impl<'a> PackedReader<'a> {
    fn length(&mut self) -> usize {
        let mut length = 0usize;
        let mut shift = 0;
        while let Some((&byte, rest)) = self.rest.split_first() {
            self.rest = rest;
            if shift < usize::BITS {
                length |= usize::from(byte & 0x7f) << shift;
            }
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        length
    }

    fn take(&mut self, length: usize) -> &'a str {
        let (part, rest) = self.rest.split_at(length.min(self.rest.len()));
        self.rest = rest;
        std::str::from_utf8(part).unwrap_or_default()
    }

    fn text(&mut self) -> &'a str {
        let length = self.length();
        self.take(length)
    }

    fn optional_text(&mut self) -> Option<&'a str> {
        match self.length() {
            0 => None,
            length => Some(self.take(length - 1)),
        }
    }
}

impl StoredBinding {
    fn is_live(&self, now_unix: u64) -> bool {
        self.expires_at_unix > now_unix
    }

    fn to_binding(&self) -> Binding {
        let strings = self.strings.unpack();
        Binding {
            contact: strings.contact.to_owned(),
            q: self.q,
            expires_at_unix: self.expires_at_unix,
            path: strings.path.into_iter().map(str::to_owned).collect(),
            received: strings.received.map(str::to_owned),
            call_id: strings.call_id.to_owned(),
            cseq: self.cseq,
            user_agent: self.user_agent.as_deref().map(str::to_owned),
            instance: strings.instance.map(str::to_owned),
            reg_id: self.reg_id,
            updated_at_unix: self.updated_at_unix,
        }
    }
}

/// The interned copy of `text`, added when new.
fn intern(shared: &mut HashSet<Arc<str>>, text: &str) -> Arc<str> {
    if let Some(existing) = shared.get(text) {
        return Arc::clone(existing);
    }
    let interned: Arc<str> = Arc::from(text);
    shared.insert(Arc::clone(&interned));
    interned
}

/// Highest q first, then the most recently written, then by contact for a stable order
/// (RFC 3261 §16.6 tries higher q first).
fn sort_bindings(bindings: &mut [StoredBinding]) {
    bindings.sort_by(|left, right| {
        right
            .q
            .cmp(&left.q)
            .then(right.updated_at_unix.cmp(&left.updated_at_unix))
            .then_with(|| left.strings.contact().cmp(right.strings.contact()))
    });
}

impl Registry {
    fn hash(&self, user: &str, domain: &str) -> u64 {
        self.hasher.hash_one((user, domain))
    }

    fn get(&self, aor: &AddressOfRecord) -> Option<&Registered> {
        let hash = self.hash(&aor.user, &aor.domain);
        self.table
            .find(hash, |registered| registered.is(aor))
            .map(|registered| &**registered)
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn store(&mut self, binding: &Binding) -> StoredBinding {
        StoredBinding {
            strings: PackedStrings::pack(
                &binding.contact,
                &binding.call_id,
                binding.received.as_deref(),
                binding.instance.as_deref(),
                &binding.path,
            ),
            user_agent: binding
                .user_agent
                .as_deref()
                .map(|user_agent| intern(&mut self.shared, user_agent)),
            expires_at_unix: binding.expires_at_unix,
            updated_at_unix: binding.updated_at_unix,
            cseq: binding.cseq,
            reg_id: binding.reg_id,
            q: binding.q,
        }
    }

    /// Replaces the bindings named by `removals` and by the contacts of `upserts` with
    /// `upserts`; an address-of-record left with none goes.
    fn change(&mut self, aor: &AddressOfRecord, upserts: &[Binding], removals: &[String]) {
        let mut added: SmallVec<[StoredBinding; 1]> =
            upserts.iter().map(|binding| self.store(binding)).collect();
        let hash = self.hash(&aor.user, &aor.domain);
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |registered| registered.is(aor),
            |registered| hasher.hash_one((&*registered.user, &*registered.domain)),
        );
        match entry {
            Entry::Occupied(mut occupied) => {
                let bindings = &mut occupied.get_mut().bindings;
                bindings.retain(|binding| {
                    let contact = binding.strings.contact();
                    !removals.iter().any(|removal| removal == contact)
                        && !upserts.iter().any(|upsert| upsert.contact == contact)
                });
                bindings.extend(added);
                if bindings.is_empty() {
                    occupied.remove();
                } else {
                    sort_bindings(bindings);
                    bindings.shrink_to_fit();
                }
            }
            Entry::Vacant(vacant) => {
                if added.is_empty() {
                    return;
                }
                sort_bindings(&mut added);
                vacant.insert(Box::new(Registered {
                    user: aor.user.as_str().into(),
                    domain: intern(&mut self.shared, &aor.domain),
                    bindings: added,
                }));
            }
        }
    }

    fn remove(&mut self, aor: &AddressOfRecord) {
        let hash = self.hash(&aor.user, &aor.domain);
        if let Ok(occupied) = self.table.find_entry(hash, |registered| registered.is(aor)) {
            occupied.remove();
        }
    }

    /// Drops bindings lapsed at `now_unix`, then interned values nothing uses, then table
    /// space far beyond what is left.
    fn purge(&mut self, now_unix: u64) {
        self.table.retain(|registered| {
            registered
                .bindings
                .retain(|binding| binding.is_live(now_unix));
            registered.bindings.shrink_to_fit();
            !registered.bindings.is_empty()
        });
        if self.table.capacity() / 4 > self.table.len() {
            let hasher = &self.hasher;
            self.table.shrink_to_fit(|registered| {
                hasher.hash_one((&*registered.user, &*registered.domain))
            });
        }
        self.shared.retain(|value| Arc::strong_count(value) > 1);
        if self.shared.capacity() / 4 > self.shared.len() {
            self.shared.shrink_to_fit();
        }
    }
}

impl Registered {
    fn is(&self, aor: &AddressOfRecord) -> bool {
        *self.user == *aor.user && *self.domain == *aor.domain
    }
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

/// Rows read from the database per statement while loading: a page is a few MB however many
/// bindings the table holds.
const LOAD_PAGE_ROWS: usize = 10_000;

impl Location {
    /// Loads every binding still live at `now_unix` from the database, page by page.
    pub async fn load(store: Store, now_unix: u64) -> Result<Self, LocationError> {
        let mut registry = Registry::default();
        let mut after: Option<LocationKey> = None;
        loop {
            let page = store
                .live_locations_page(now_unix, after.as_ref(), LOAD_PAGE_ROWS)
                .await?;
            let complete = page.len() < LOAD_PAGE_ROWS;
            after = page.last().map(|last| LocationKey {
                domain: last.domain.clone(),
                username: last.username.clone(),
                contact: last.contact.clone(),
            });
            for record in page {
                let (aor, binding) = Binding::from_record(record);
                registry.change(&aor, std::slice::from_ref(&binding), &[]);
            }
            if complete {
                break;
            }
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
            bindings: RwLock::new(registry),
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
            .map(|registered| {
                registered
                    .bindings
                    .iter()
                    .filter(|binding| binding.is_live(now_unix))
                    .map(StoredBinding::to_binding)
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

        self.bindings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .change(aor, &changes.upserts, &changes.removals);
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
        self.bindings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .purge(now_unix);
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn binding(contact: &str, q: u16, updated_at_unix: u64) -> Binding {
        Binding {
            contact: contact.to_owned(),
            q,
            expires_at_unix: 2_000,
            path: vec!["<sip:192.0.2.1:5060;lr>".to_owned()],
            received: Some("sip:198.51.100.7:40000".to_owned()),
            call_id: "call@phone".to_owned(),
            cseq: 7,
            user_agent: Some("phone/1.0".to_owned()),
            instance: None,
            reg_id: None,
            updated_at_unix,
        }
    }

    proptest! {
        /// Whatever the strings (empty, long enough for multi-byte lengths, any characters),
        /// unpacking gives back exactly what was packed.
        #[test]
        fn packed_strings_round_trip(
            contact in ".{0,300}",
            call_id in ".{0,200}",
            received in proptest::option::of(".{0,150}"),
            instance in proptest::option::of(".{0,130}"),
            path in proptest::collection::vec(".{0,200}", 0..4),
        ) {
            let packed = PackedStrings::pack(
                &contact,
                &call_id,
                received.as_deref(),
                instance.as_deref(),
                &path,
            );
            let unpacked = packed.unpack();
            prop_assert_eq!(unpacked.contact, contact.as_str());
            prop_assert_eq!(packed.contact(), contact.as_str());
            prop_assert_eq!(unpacked.call_id, call_id.as_str());
            prop_assert_eq!(unpacked.received, received.as_deref());
            prop_assert_eq!(unpacked.instance, instance.as_deref());
            prop_assert_eq!(unpacked.path, path.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }

    #[test]
    fn records_stay_small() {
        // A million of each: every byte here is a megabyte of RSS.
        assert_eq!(std::mem::size_of::<StoredBinding>(), 64);
        assert_eq!(std::mem::size_of::<Registered>(), 104);
    }

    #[test]
    fn packing_takes_exactly_the_bytes_it_needs() {
        let long = "x".repeat(200);
        let packed = PackedStrings::pack("sip:a@192.0.2.1", &long, None, Some(""), &[]);
        // 1 + 15, 2 + 200 (a two-byte length), 1 (absent), 1 (present, empty), 1 (no path).
        assert_eq!(packed.0.len(), 16 + 202 + 1 + 1 + 1);
    }

    #[test]
    fn the_registry_keeps_bindings_sorted_and_shares_repeated_values() {
        let mut registry = Registry::default();
        let alice = AddressOfRecord::new("alice", "example.org");
        let bob = AddressOfRecord::new("bob", "Example.ORG");
        registry.change(
            &alice,
            &[
                binding("sip:a@192.0.2.2", 500, 10),
                binding("sip:a@192.0.2.1", 900, 10),
            ],
            &[],
        );
        registry.change(&bob, &[binding("sip:b@192.0.2.3", 1000, 10)], &[]);
        assert_eq!(registry.len(), 2);
        let stored = registry.get(&alice).expect("alice");
        let contacts: Vec<String> = stored
            .bindings
            .iter()
            .map(|binding| binding.to_binding().contact)
            .collect();
        assert_eq!(contacts, ["sip:a@192.0.2.1", "sip:a@192.0.2.2"]);
        assert_eq!(
            stored.bindings[0].to_binding(),
            binding("sip:a@192.0.2.1", 900, 10)
        );
        // One copy of the domain and of the User-Agent for all three bindings.
        assert_eq!(registry.shared.len(), 2);
        let bob_stored = registry.get(&bob).expect("bob");
        assert!(Arc::ptr_eq(&stored.domain, &bob_stored.domain));

        // A refresh replaces by contact; removing the last binding drops the record.
        registry.change(
            &alice,
            &[binding("sip:a@192.0.2.2", 1000, 20)],
            &["sip:a@192.0.2.1".to_owned()],
        );
        let contacts: Vec<(String, u16)> = registry
            .get(&alice)
            .expect("alice")
            .bindings
            .iter()
            .map(|binding| (binding.to_binding().contact, binding.q))
            .collect();
        assert_eq!(contacts, [("sip:a@192.0.2.2".to_owned(), 1000)]);
        registry.change(&alice, &[], &["sip:a@192.0.2.2".to_owned()]);
        assert!(registry.get(&alice).is_none());
        registry.remove(&bob);
        assert_eq!(registry.len(), 0);
        // Interned values nothing uses go at the next purge.
        registry.purge(0);
        assert!(registry.shared.is_empty());
    }

    #[test]
    fn purging_drops_lapsed_bindings_only() {
        let mut registry = Registry::default();
        let alice = AddressOfRecord::new("alice", "example.org");
        let mut lapsing = binding("sip:a@192.0.2.1", 1000, 10);
        lapsing.expires_at_unix = 100;
        registry.change(
            &alice,
            &[lapsing, binding("sip:a@192.0.2.2", 1000, 10)],
            &[],
        );
        registry.purge(100);
        let left: Vec<String> = registry
            .get(&alice)
            .expect("alice")
            .bindings
            .iter()
            .map(|binding| binding.to_binding().contact)
            .collect();
        assert_eq!(left, ["sip:a@192.0.2.2"]);
        registry.purge(2_000);
        assert_eq!(registry.len(), 0);
        assert!(registry.shared.is_empty());
    }
}
