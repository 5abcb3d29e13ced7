//! The polling loop: read pending acc groups, decide each with [`crate::decide`], commit the
//! outcomes. All the exactly-once work is the store's single transaction per batch; a crash
//! anywhere leaves a group either untouched in `acc` or fully mediated.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use store::{CdrRepository, MediationOutcome, Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::core::{Decision, decide};

/// Settings of the mediator (`[mediator]` in the configuration file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediatorConfig {
    /// Pause between passes.
    pub poll_interval: Duration,
    /// How long an answered call may go without a BYE before it is closed as `failed`.
    pub max_call_age: Duration,
    /// Call-IDs read and committed per transaction.
    pub batch_size: u32,
}

impl Default for MediatorConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            max_call_age: Duration::from_secs(4 * 3600),
            batch_size: 200,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Call-IDs looked at.
    pub groups: u64,
    /// Calls still up, left for a later pass.
    pub waiting: u64,
    /// CDRs written.
    pub cdrs: u64,
    /// acc rows moved to the archive.
    pub archived: u64,
    /// acc rows moved to the trash.
    pub trashed: u64,
    /// Groups whose commit failed; they stay pending and are retried next pass.
    pub failed: u64,
}

/// Milliseconds since the Unix epoch.
pub fn unix_time_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Runs one pass over every pending group. Database errors while reading end the pass with
/// the error; a batch whose commit fails is retried group by group so one bad group cannot
/// hold the others back.
pub async fn run_pass(store: &Store, config: &MediatorConfig) -> Result<PassStats, StoreError> {
    let mut stats = PassStats::default();
    let batch_size = config.batch_size.max(1);
    let max_age_ms = millis(config.max_call_age);
    let mut cursor = 0;
    loop {
        let groups = store.pending_acc_groups(cursor, batch_size).await?;
        let Some(&(_, last_first_id)) = groups.last() else {
            break;
        };
        cursor = last_first_id;
        let mut rows_per_group = Vec::with_capacity(groups.len());
        for (call_id, _) in &groups {
            rows_per_group.push(store.acc_group(call_id).await?);
        }
        let uuids: Vec<String> = rows_per_group
            .iter()
            .flatten()
            .flat_map(|row| [&row.source_user_id, &row.destination_user_id])
            .flatten()
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let subscribers = store.subscriber_refs(&uuids).await?;
        let now_ms = unix_time_ms();
        let mut outcomes = Vec::with_capacity(groups.len());
        for rows in &rows_per_group {
            stats.groups += 1;
            if rows.is_empty() {
                // Mediated by someone else between the two reads.
                continue;
            }
            match decide(rows, &subscribers, now_ms, max_age_ms) {
                Decision::Wait => stats.waiting += 1,
                Decision::Mediate(outcome) => {
                    if let MediationOutcome::Trash { reason, .. } = &outcome {
                        tracing::warn!(call_id = %rows[0].call_id, %reason, "mediator: acc group trashed");
                    }
                    outcomes.push(outcome);
                }
            }
        }
        commit(store, &outcomes, now_ms, &mut stats).await;
        if groups.len() < batch_size as usize {
            break;
        }
    }
    Ok(stats)
}

async fn commit(store: &Store, outcomes: &[MediationOutcome], now_ms: i64, stats: &mut PassStats) {
    let mut add = |written: store::MediationCommit| {
        stats.cdrs += written.cdrs;
        stats.archived += written.archived;
        stats.trashed += written.trashed;
    };
    match store.commit_mediation(outcomes, now_ms).await {
        Ok(written) => add(written),
        Err(error) => {
            tracing::warn!(%error, groups = outcomes.len(), "mediator: batch commit failed; committing group by group");
            for outcome in outcomes {
                match store
                    .commit_mediation(std::slice::from_ref(outcome), now_ms)
                    .await
                {
                    Ok(written) => add(written),
                    Err(error) => {
                        stats.failed += 1;
                        tracing::error!(%error, ?outcome, "mediator: group not mediated; retrying next pass");
                    }
                }
            }
        }
    }
}

/// A running mediator loop.
#[derive(Debug)]
pub struct MediatorHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MediatorHandle {
    /// Stops after the pass in progress (a pass is never cut in the middle of a commit).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the polling loop: a pass at once, then one every `poll_interval`.
pub fn spawn(store: Store, config: MediatorConfig) -> MediatorHandle {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            match run_pass(&store, &config).await {
                Ok(stats) if stats.cdrs > 0 || stats.trashed > 0 || stats.failed > 0 => {
                    tracing::info!(
                        cdrs = stats.cdrs,
                        archived = stats.archived,
                        trashed = stats.trashed,
                        waiting = stats.waiting,
                        failed = stats.failed,
                        "mediator: pass done"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "mediator: pass failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(config.poll_interval) => {}
                _ = stopped.changed() => return,
            }
        }
    });
    MediatorHandle { stop, task }
}
