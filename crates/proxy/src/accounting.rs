//! Accounting: the `acc` records of calls (an INVITE with its final response, a BYE with its
//! 2xx), written to the store by a writer task so that a slow database never stalls call
//! handling.
//!
//! The router hands records to an [`AccountingSender`], which only pushes onto a bounded queue.
//! When the queue is full the record is dropped, counted in [`AccountingStats::dropped`] and
//! logged: losing a record is bad, but blocking every call behind a stuck database is worse.
//! The writer drains what has queued up and writes it in one database transaction (a group
//! commit); a failed write is retried once after a pause, then counted as failed and logged.
//!
//! Durable records ([`AccountingSender::record_durable`]): the answer of an answered call and
//! of its BYE must not reach the caller before their rows are on disk, or a `kill -9` right
//! after loses the CDR. Such a record carries a notifier the writer fires after its batch
//! committed; the router holds the 2xx until then. Calls still do not wait one by one: every
//! record queued meanwhile shares the same transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use store::{AccRepository, NewAccRecord, Store};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// Most records written in one database transaction.
const MAX_BATCH: usize = 256;
/// Pause before the one retry of a failed write.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Counters of the accounting writer.
#[derive(Debug, Default)]
pub struct AccountingStats {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Woken after every batch, for [`AccountingStats::drained`].
    batch_done: Notify,
}

impl AccountingStats {
    /// Records accepted into the queue.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    /// Records committed to the database.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Records refused because the queue was full (or the writer had stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records lost because the database refused them twice.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits until every record queued so far has been written (or has failed), so that a row
    /// missing from the database now is a row that was never queued: what a check for the
    /// absence of a record waits for, instead of a pause.
    pub async fn drained(&self) {
        loop {
            let batch_done = self.batch_done.notified();
            tokio::pin!(batch_done);
            // Registered before the check, so a batch finishing in between still wakes us.
            batch_done.as_mut().enable();
            if self.written() + self.failed() >= self.queued() {
                return;
            }
            batch_done.await;
        }
    }
}

/// The router's side of the queue: cheap to clone, never waits.
#[derive(Debug, Clone)]
pub struct AccountingSender {
    queue: mpsc::Sender<Queued>,
    stats: Arc<AccountingStats>,
}

/// A queued record and, for a durable one, who waits for its commit.
#[derive(Debug)]
struct Queued {
    record: NewAccRecord,
    committed: Option<oneshot::Sender<bool>>,
}

impl AccountingSender {
    /// Queues `record`; when the queue is full it is counted and logged as dropped.
    pub fn record(&self, record: NewAccRecord) {
        self.enqueue(record, None);
    }

    /// Queues `record` and returns what resolves once it is committed: `true` when it is on
    /// disk, `false` when it was dropped or the write failed.
    pub fn record_durable(&self, record: NewAccRecord) -> oneshot::Receiver<bool> {
        let (committed, receiver) = oneshot::channel();
        self.enqueue(record, Some(committed));
        receiver
    }

    fn enqueue(&self, record: NewAccRecord, committed: Option<oneshot::Sender<bool>>) {
        let queued = Queued { record, committed };
        // Counted before it can be written, so `drained` never takes it for done.
        self.stats.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(error) = self.queue.try_send(queued) {
            self.stats.queued.fetch_sub(1, Ordering::AcqRel);
            self.stats.batch_done.notify_waiters();
            let Queued { record, committed } = match error {
                mpsc::error::TrySendError::Full(queued)
                | mpsc::error::TrySendError::Closed(queued) => queued,
            };
            if let Some(committed) = committed {
                let _ = committed.send(false);
            }
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                call_id = %record.call_id,
                method = %record.method,
                code = record.sip_code,
                "accounting queue full: record dropped"
            );
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<AccountingStats> {
        &self.stats
    }
}

/// Starts the writer task over `store` with a queue of `capacity` records. The task ends once
/// every sender is dropped and the queue is drained.
pub fn spawn_writer(store: Store, capacity: usize) -> (AccountingSender, JoinHandle<()>) {
    let (queue, mut receiver) = mpsc::channel::<Queued>(capacity.max(1));
    let stats = Arc::new(AccountingStats::default());
    let writer_stats = Arc::clone(&stats);
    let task = tokio::spawn(async move {
        let mut queued = Vec::with_capacity(MAX_BATCH);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut waiting = Vec::new();
        while receiver.recv_many(&mut queued, MAX_BATCH).await > 0 {
            for Queued { record, committed } in queued.drain(..) {
                batch.push(record);
                waiting.extend(committed);
            }
            let mut result = store.insert_acc_records(&batch).await;
            if result.is_err() {
                tokio::time::sleep(RETRY_PAUSE).await;
                result = store.insert_acc_records(&batch).await;
            }
            let count = batch.len() as u64;
            let on_disk = result.is_ok();
            for committed in waiting.drain(..) {
                let _ = committed.send(on_disk);
            }
            match result {
                Ok(()) => {
                    writer_stats.written.fetch_add(count, Ordering::Relaxed);
                }
                Err(error) => {
                    writer_stats.failed.fetch_add(count, Ordering::Relaxed);
                    tracing::error!(%error, records = count, "accounting write failed: records lost");
                }
            }
            batch.clear();
            writer_stats.batch_done.notify_waiters();
        }
    });
    (AccountingSender { queue, stats }, task)
}

/// Milliseconds since the Unix epoch, the `time_ms` of a record.
pub fn unix_time_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::AccRepository;

    fn record(call_id: &str, code: u16) -> NewAccRecord {
        NewAccRecord {
            method: "INVITE".to_owned(),
            from_tag: "a".to_owned(),
            to_tag: "b".to_owned(),
            call_id: call_id.to_owned(),
            sip_code: code,
            sip_reason: "Busy Here".to_owned(),
            source_user_id: None,
            destination_user_id: None,
            source_ip: "127.0.0.1".to_owned(),
            destination_user: "bob".to_owned(),
            destination_domain: "example.org".to_owned(),
            time_ms: unix_time_ms(),
            ..NewAccRecord::default()
        }
    }

    #[tokio::test]
    async fn writer_commits_queued_records_and_counts_them() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let (sender, task) = spawn_writer(store.clone(), 16);
        let stats = Arc::clone(sender.stats());
        for _ in 0..3 {
            sender.record(record("acc-writer-1", 486));
        }
        drop(sender);
        task.await.unwrap();
        assert_eq!(stats.written(), 3);
        assert_eq!(stats.dropped(), 0);
        let rows = store
            .list_acc_records_by_call_id("acc-writer-1")
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|row| row.sip_code == 486));
    }

    #[tokio::test]
    async fn a_durable_record_resolves_once_it_is_in_the_database() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let (sender, _task) = spawn_writer(store.clone(), 16);
        sender.record(record("acc-durable", 486));
        let committed = sender.record_durable(record("acc-durable", 200));
        assert!(committed.await.unwrap(), "committed");
        // Resolved only after the commit: both rows (one batch or two) are readable now.
        let rows = store
            .list_acc_records_by_call_id("acc-durable")
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
    }

    #[tokio::test]
    async fn drained_waits_until_every_queued_record_is_in_the_database() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        // Two slots: the third record finds the queue full (the writer has not run yet) and
        // is never queued, so nothing waits for it.
        let (sender, _task) = spawn_writer(store.clone(), 2);
        for code in [486, 487, 603] {
            sender.record(record("acc-drained", code));
        }
        assert_eq!(sender.stats().queued(), 2);
        assert_eq!(sender.stats().written(), 0, "the writer has not run yet");
        sender.stats().drained().await;
        assert_eq!(sender.stats().written(), 2);
        let rows = store
            .list_acc_records_by_call_id("acc-drained")
            .await
            .unwrap();
        let codes: Vec<i64> = rows.iter().map(|row| row.sip_code).collect();
        assert_eq!(codes, [486, 487]);
    }

    #[tokio::test]
    async fn a_durable_record_that_cannot_be_queued_resolves_false() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let (sender, _task) = spawn_writer(store, 1);
        sender.record(record("acc-durable-full", 200));
        let refused = sender.record_durable(record("acc-durable-full", 200));
        assert!(!refused.await.unwrap(), "the queue was full");
        assert_eq!(sender.stats().dropped(), 1);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        // A current-thread runtime: the writer cannot run until this test yields, so the
        // second and third records find the one-slot queue full.
        let (sender, task) = spawn_writer(store, 1);
        sender.record(record("acc-full", 200));
        sender.record(record("acc-full", 200));
        sender.record(record("acc-full", 200));
        assert_eq!(sender.stats().dropped(), 2);
        let stats = Arc::clone(sender.stats());
        drop(sender);
        task.await.unwrap();
        assert_eq!(stats.written(), 1);
    }
}
