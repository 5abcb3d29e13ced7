//! Call detail records (`cdr`) and the mediation bookkeeping around them: the acc rows a CDR was
//! made from move to `acc_archive`, unreadable groups to `acc_trash`, in the same transaction as
//! the CDR insert, so a crash at any point leaves each call either wholly pending or wholly
//! mediated. The export marker (`export_status`, `exported_at_ms`) lets `voxide cdr export`
//! hand each CDR out once.
//!
//! Times are milliseconds since the Unix epoch (UTC) throughout.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::acc::clip;
use crate::{AccRecord, Page, Paged, Store, StoreError, StoreResult, on_pool, text_enum};

text_enum!(
    /// How a call ended (`call_status` of ngcp's CDRs).
    CallStatus, "call_status" {
        /// Answered (2xx).
        Ok = "ok",
        /// 486 Busy Here.
        Busy = "busy",
        /// 480 Temporarily Unavailable.
        NoAnswer = "noanswer",
        /// 487 Request Terminated (the caller cancelled).
        Cancel = "cancel",
        /// 404 Not Found.
        Offline = "offline",
        /// 408 Request Timeout.
        Timeout = "timeout",
        /// Any other final code.
        Other = "other",
        /// Answered, but no BYE came within the mediator's maximum call age.
        Failed = "failed",
    }
);

text_enum!(
    /// What kind of leg a CDR describes (`call_type`).
    CallType, "call_type" {
        /// A plain call.
        Call = "call",
        /// Unconditional call forward.
        Cfu = "cfu",
        /// Call forward on busy.
        Cfb = "cfb",
        /// Call forward on timeout (no answer in time).
        Cft = "cft",
        /// Call forward when not available (offline).
        Cfna = "cfna",
        /// Call forward on SMS.
        Cfs = "cfs",
        /// Call forward on response.
        Cfr = "cfr",
        /// Call forward on overflow.
        Cfo = "cfo",
    }
);

text_enum!(
    /// Whether a CDR has been exported (`export_status`).
    ExportStatus, "export_status" {
        /// Not exported yet.
        Unexported = "unexported",
        /// Written to an export file.
        Ok = "ok",
        /// The export failed (kept for the ngcp shape; voxide's exporter never sets it).
        Failed = "failed",
    }
);

/// A CDR to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCdr {
    /// Id of the INVITE acc row this CDR was made from (unique).
    pub acc_id: i64,
    pub call_id: String,
    pub call_type: CallType,
    pub call_status: CallStatus,
    /// The final SIP status code of the INVITE.
    pub call_code: u16,
    /// When the call was set up (voxide records only the final response: equals `start_time_ms`).
    pub init_time_ms: i64,
    /// Answer time (or the final response time of an unanswered call).
    pub start_time_ms: i64,
    /// BYE time − answer time; 0 for unanswered and failed calls.
    pub duration_ms: i64,
    pub source: CdrLeg,
    pub destination: CdrLeg,
    /// Caller-side only: the calling line identity.
    pub source_cli: String,
    /// Caller-side only: the address the INVITE came from.
    pub source_ip: String,
    /// Callee-side only: the user part as the caller dialed it.
    pub destination_user_dialed: String,
    /// Callee-side only: the Request-URI user as it came in.
    pub destination_user_in: String,
    /// Callee-side only: the Request-URI host as it came in.
    pub destination_domain_in: String,
}

/// The subscriber-related fields of one side of a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrLeg {
    /// Subscriber UUID when this side is one of ours.
    pub user_id: Option<String>,
    /// Subscriber row id.
    pub subscriber_id: Option<i64>,
    /// The subscriber's customer.
    pub customer_id: Option<i64>,
    /// User part (the subscriber's username when known).
    pub user: String,
    /// Domain.
    pub domain: String,
}

/// A stored CDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Cdr {
    pub id: i64,
    pub acc_id: i64,
    pub call_id: String,
    #[sqlx(try_from = "String")]
    pub call_type: CallType,
    #[sqlx(try_from = "String")]
    pub call_status: CallStatus,
    pub call_code: i64,
    pub init_time_ms: i64,
    pub start_time_ms: i64,
    pub duration_ms: i64,
    pub source_user_id: Option<String>,
    pub source_subscriber_id: Option<i64>,
    pub source_customer_id: Option<i64>,
    pub source_user: String,
    pub source_domain: String,
    pub source_cli: String,
    pub source_ip: String,
    pub destination_user_id: Option<String>,
    pub destination_subscriber_id: Option<i64>,
    pub destination_customer_id: Option<i64>,
    pub destination_user: String,
    pub destination_domain: String,
    pub destination_user_dialed: String,
    pub destination_user_in: String,
    pub destination_domain_in: String,
    pub rating_status: String,
    #[sqlx(try_from = "String")]
    pub export_status: ExportStatus,
    pub exported_at_ms: Option<i64>,
    pub mediated_at_ms: i64,
}

/// Filters of the CDR list (`/api/calls`); all optional and combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdrFilter {
    /// Calls out of or into this subscriber.
    pub subscriber_id: Option<i64>,
    /// Calls with this customer on either side.
    pub customer_id: Option<i64>,
    pub call_status: Option<CallStatus>,
    pub call_id: Option<String>,
    /// Start time at or after (ms).
    pub start_ge_ms: Option<i64>,
    /// Start time at or before (ms).
    pub start_le_ms: Option<i64>,
}

/// What the mediator decided for one group of acc rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediationOutcome {
    /// The group became these CDRs; `acc_ids` move to `acc_archive`.
    Cdrs {
        acc_ids: Vec<i64>,
        cdrs: Vec<NewCdr>,
    },
    /// The group cannot be mediated; `acc_ids` move to `acc_trash` with `reason`.
    Trash { acc_ids: Vec<i64>, reason: String },
}

/// What one [`CdrRepository::commit_mediation`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediationCommit {
    pub cdrs: u64,
    pub archived: u64,
    pub trashed: u64,
}

/// A subscriber as the mediator needs it to fill a CDR leg.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SubscriberRef {
    pub uuid: String,
    pub id: i64,
    pub customer_id: i64,
    pub username: String,
    pub domain: String,
    /// E.164 form of the primary number, if any.
    pub primary_number: Option<String>,
}

/// A row of `acc_trash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TrashedAcc {
    /// Id the row had in `acc`.
    pub id: i64,
    #[sqlx(rename = "callid")]
    pub call_id: String,
    pub method: String,
    pub sip_code: i64,
    pub reason: String,
    pub trashed_at_ms: i64,
}

/// Row counts of the mediation tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MediationCounts {
    /// Rows still waiting in `acc`.
    pub pending: u64,
    pub archived: u64,
    pub trashed: u64,
    pub cdrs: u64,
    pub unexported: u64,
}

/// Width of `acc_trash.reason` in the MariaDB schema.
const REASON_WIDTH: usize = 512;

/// The CDR and mediation tables.
pub trait CdrRepository {
    /// Call-IDs with rows in `acc`, ordered by their first row id, starting after the group
    /// whose first row id is `after_first_id`: `(call_id, first_id)`. Paging by first id lets a
    /// pass walk every group even when many calls are still up.
    fn pending_acc_groups(
        &self,
        after_first_id: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<(String, i64)>>> + Send;
    /// Every `acc` row of one call, ordered by time and id.
    fn acc_group(&self, call_id: &str) -> impl Future<Output = StoreResult<Vec<AccRecord>>> + Send;
    /// Subscribers by UUID (unknown UUIDs are left out).
    fn subscriber_refs(
        &self,
        uuids: &[String],
    ) -> impl Future<Output = StoreResult<HashMap<String, SubscriberRef>>> + Send;
    /// Writes the CDRs and moves the acc rows of every outcome in ONE transaction. Fails (and
    /// writes nothing) when any acc row named is no longer in `acc`, i.e. another mediator got
    /// there first.
    fn commit_mediation(
        &self,
        outcomes: &[MediationOutcome],
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<MediationCommit>> + Send;
    /// A page of CDRs matching `filter`, newest start time first.
    fn list_cdrs(
        &self,
        filter: &CdrFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<Cdr>>> + Send;
    /// One CDR.
    fn get_cdr(&self, id: i64) -> impl Future<Output = StoreResult<Cdr>> + Send;
    /// Up to `limit` not-yet-exported CDRs that started at or after `since_ms`, by id.
    fn unexported_cdrs(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Cdr>>> + Send;
    /// Marks CDRs exported (only those still unexported); returns how many changed.
    fn mark_cdrs_exported(
        &self,
        ids: &[i64],
        at_ms: i64,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// The rows of `acc_trash`, by id.
    fn list_acc_trash(&self) -> impl Future<Output = StoreResult<Vec<TrashedAcc>>> + Send;
    /// Row counts of acc, acc_archive, acc_trash and cdr.
    fn mediation_counts(&self) -> impl Future<Output = StoreResult<MediationCounts>> + Send;
}

const SELECT_ACC_GROUP: &str = "SELECT id, method, from_tag, to_tag, callid, sip_code, \
     sip_reason, source_user_id, destination_user_id, source_ip, destination_user, \
     destination_domain, time_ms, source_user, source_domain, source_cli, call_type \
     FROM acc WHERE callid = ? ORDER BY time_ms, id";

const ARCHIVE_ROW: &str = "INSERT INTO acc_archive (id, method, from_tag, to_tag, callid, \
     sip_code, sip_reason, source_user_id, destination_user_id, source_ip, destination_user, \
     destination_domain, time_ms, source_user, source_domain, source_cli, call_type, \
     archived_at_ms) SELECT id, method, from_tag, to_tag, callid, sip_code, sip_reason, \
     source_user_id, destination_user_id, source_ip, destination_user, destination_domain, \
     time_ms, source_user, source_domain, source_cli, call_type, ? FROM acc WHERE id = ?";

const TRASH_ROW: &str = "INSERT INTO acc_trash (id, method, from_tag, to_tag, callid, \
     sip_code, sip_reason, source_user_id, destination_user_id, source_ip, destination_user, \
     destination_domain, time_ms, source_user, source_domain, source_cli, call_type, reason, \
     trashed_at_ms) SELECT id, method, from_tag, to_tag, callid, sip_code, sip_reason, \
     source_user_id, destination_user_id, source_ip, destination_user, destination_domain, \
     time_ms, source_user, source_domain, source_cli, call_type, ?, ? FROM acc WHERE id = ?";

const INSERT_CDR: &str = "INSERT INTO cdr (acc_id, call_id, call_type, call_status, call_code, \
     init_time_ms, start_time_ms, duration_ms, source_user_id, source_subscriber_id, \
     source_customer_id, source_user, source_domain, source_cli, source_ip, destination_user_id, \
     destination_subscriber_id, destination_customer_id, destination_user, destination_domain, \
     destination_user_dialed, destination_user_in, destination_domain_in, mediated_at_ms) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

macro_rules! cdr_select {
    () => {
        "SELECT id, acc_id, call_id, call_type, call_status, call_code, init_time_ms, \
         start_time_ms, duration_ms, source_user_id, source_subscriber_id, source_customer_id, \
         source_user, source_domain, source_cli, source_ip, destination_user_id, \
         destination_subscriber_id, destination_customer_id, destination_user, \
         destination_domain, destination_user_dialed, destination_user_in, \
         destination_domain_in, rating_status, export_status, exported_at_ms, mediated_at_ms \
         FROM cdr "
    };
}

macro_rules! cdr_where {
    () => {
        "WHERE (? IS NULL OR source_subscriber_id = ? OR destination_subscriber_id = ?) \
         AND (? IS NULL OR source_customer_id = ? OR destination_customer_id = ?) \
         AND (? IS NULL OR call_status = ?) AND (? IS NULL OR call_id = ?) \
         AND (? IS NULL OR start_time_ms >= ?) AND (? IS NULL OR start_time_ms <= ?) "
    };
}

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC.
pub fn format_time_ms(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => ms.to_string(),
    }
}

/// Parses a UTC time given on the command line into milliseconds since the epoch: a date
/// (`2026-11-25`, midnight), a date and time (`2026-11-25 10:00:00` or with `T`, optional
/// fraction) or RFC 3339 with an offset.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(time) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.and_utc().timestamp_millis());
        }
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(midnight) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc().timestamp_millis());
    }
    Err(format!(
        "'{text}' is not a time like 2026-11-25, 2026-11-25 10:00:00 or 2026-11-25T10:00:00Z"
    ))
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl CdrRepository for Store {
    async fn pending_acc_groups(
        &self,
        after_first_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<(String, i64)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT callid, MIN(id) AS first_id FROM acc GROUP BY callid \
                 HAVING MIN(id) > ? ORDER BY first_id LIMIT ?",
            )
            .bind(after_first_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }))
    }

    async fn acc_group(&self, call_id: &str) -> StoreResult<Vec<AccRecord>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, AccRecord>(SELECT_ACC_GROUP)
                .bind(call_id)
                .fetch_all(pool)
                .await?
        }))
    }

    async fn subscriber_refs(
        &self,
        uuids: &[String],
    ) -> StoreResult<HashMap<String, SubscriberRef>> {
        let mut found = HashMap::with_capacity(uuids.len());
        for uuid in uuids {
            if found.contains_key(uuid) {
                continue;
            }
            let row = on_pool!(self, pool => {
                sqlx::query_as::<_, SubscriberRef>(
                    "SELECT s.uuid, s.id, s.customer_id, s.username, d.domain, \
                     n.e164 AS primary_number FROM subscribers s \
                     JOIN domains d ON d.id = s.domain_id \
                     LEFT JOIN numbers n ON n.subscriber_id = s.id AND n.is_primary = ? \
                     WHERE s.uuid = ?",
                )
                .bind(true)
                .bind(uuid)
                .fetch_optional(pool)
                .await?
            });
            if let Some(row) = row {
                found.insert(uuid.clone(), row);
            }
        }
        Ok(found)
    }

    async fn commit_mediation(
        &self,
        outcomes: &[MediationOutcome],
        now_ms: i64,
    ) -> StoreResult<MediationCommit> {
        let mut written = MediationCommit::default();
        if outcomes.is_empty() {
            return Ok(written);
        }
        on_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            for outcome in outcomes {
                let acc_ids = match outcome {
                    MediationOutcome::Cdrs { acc_ids, cdrs } => {
                        for cdr in cdrs {
                            sqlx::query(INSERT_CDR)
                                .bind(cdr.acc_id)
                                .bind(&cdr.call_id)
                                .bind(cdr.call_type.as_str())
                                .bind(cdr.call_status.as_str())
                                .bind(i64::from(cdr.call_code))
                                .bind(cdr.init_time_ms)
                                .bind(cdr.start_time_ms)
                                .bind(cdr.duration_ms)
                                .bind(&cdr.source.user_id)
                                .bind(cdr.source.subscriber_id)
                                .bind(cdr.source.customer_id)
                                .bind(&cdr.source.user)
                                .bind(&cdr.source.domain)
                                .bind(&cdr.source_cli)
                                .bind(&cdr.source_ip)
                                .bind(&cdr.destination.user_id)
                                .bind(cdr.destination.subscriber_id)
                                .bind(cdr.destination.customer_id)
                                .bind(&cdr.destination.user)
                                .bind(&cdr.destination.domain)
                                .bind(&cdr.destination_user_dialed)
                                .bind(&cdr.destination_user_in)
                                .bind(&cdr.destination_domain_in)
                                .bind(now_ms)
                                .execute(&mut *transaction)
                                .await
                                .map_err(|error| match error {
                                    sqlx::Error::Database(ref database)
                                        if database.is_unique_violation() =>
                                    {
                                        StoreError::Conflict {
                                            field: "acc_id",
                                            value: cdr.acc_id.to_string(),
                                        }
                                    }
                                    other => StoreError::Database(other),
                                })?;
                            written.cdrs += 1;
                        }
                        for &id in acc_ids {
                            sqlx::query(ARCHIVE_ROW)
                                .bind(now_ms)
                                .bind(id)
                                .execute(&mut *transaction)
                                .await?;
                        }
                        written.archived += acc_ids.len() as u64;
                        acc_ids
                    }
                    MediationOutcome::Trash { acc_ids, reason } => {
                        for &id in acc_ids {
                            sqlx::query(TRASH_ROW)
                                .bind(clip(reason, REASON_WIDTH))
                                .bind(now_ms)
                                .bind(id)
                                .execute(&mut *transaction)
                                .await?;
                        }
                        written.trashed += acc_ids.len() as u64;
                        acc_ids
                    }
                };
                for &id in acc_ids {
                    let deleted = sqlx::query("DELETE FROM acc WHERE id = ?")
                        .bind(id)
                        .execute(&mut *transaction)
                        .await?
                        .rows_affected();
                    if deleted != 1 {
                        // Gone since it was read: another mediator took it. Dropping the
                        // transaction rolls back everything this call wrote.
                        return Err(StoreError::not_found("acc row", id));
                    }
                }
            }
            transaction.commit().await?;
        });
        Ok(written)
    }

    async fn list_cdrs(&self, filter: &CdrFilter, page: Page) -> StoreResult<Paged<Cdr>> {
        let (limit, offset) = page.limit_offset()?;
        let status = filter.call_status.map(CallStatus::as_str);
        on_pool!(self, pool => {
            let total: i64 = sqlx::query_scalar(concat!("SELECT COUNT(*) FROM cdr ", cdr_where!()))
                .bind(filter.subscriber_id).bind(filter.subscriber_id).bind(filter.subscriber_id)
                .bind(filter.customer_id).bind(filter.customer_id).bind(filter.customer_id)
                .bind(status).bind(status)
                .bind(&filter.call_id).bind(&filter.call_id)
                .bind(filter.start_ge_ms).bind(filter.start_ge_ms)
                .bind(filter.start_le_ms).bind(filter.start_le_ms)
                .fetch_one(pool)
                .await?;
            let items = sqlx::query_as::<_, Cdr>(concat!(
                cdr_select!(),
                cdr_where!(),
                "ORDER BY start_time_ms DESC, id DESC LIMIT ? OFFSET ?"
            ))
            .bind(filter.subscriber_id).bind(filter.subscriber_id).bind(filter.subscriber_id)
            .bind(filter.customer_id).bind(filter.customer_id).bind(filter.customer_id)
            .bind(status).bind(status)
            .bind(&filter.call_id).bind(&filter.call_id)
            .bind(filter.start_ge_ms).bind(filter.start_ge_ms)
            .bind(filter.start_le_ms).bind(filter.start_le_ms)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            Ok(Paged { items, total_count: count(total) })
        })
    }

    async fn get_cdr(&self, id: i64) -> StoreResult<Cdr> {
        let row = on_pool!(self, pool => {
            sqlx::query_as::<_, Cdr>(concat!(cdr_select!(), "WHERE id = ?"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| StoreError::not_found("call", id))
    }

    async fn unexported_cdrs(&self, since_ms: i64, limit: u32) -> StoreResult<Vec<Cdr>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, Cdr>(concat!(
                cdr_select!(),
                "WHERE export_status = 'unexported' AND start_time_ms >= ? ORDER BY id LIMIT ?"
            ))
            .bind(since_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }))
    }

    async fn mark_cdrs_exported(&self, ids: &[i64], at_ms: i64) -> StoreResult<u64> {
        let mut changed = 0;
        on_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            for &id in ids {
                changed += sqlx::query(
                    "UPDATE cdr SET export_status = 'ok', exported_at_ms = ? \
                     WHERE id = ? AND export_status = 'unexported'",
                )
                .bind(at_ms)
                .bind(id)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            }
            transaction.commit().await?;
        });
        Ok(changed)
    }

    async fn list_acc_trash(&self) -> StoreResult<Vec<TrashedAcc>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, TrashedAcc>(
                "SELECT id, callid, method, sip_code, reason, trashed_at_ms FROM acc_trash \
                 ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    async fn mediation_counts(&self) -> StoreResult<MediationCounts> {
        let (pending, archived, trashed, cdrs, unexported) = on_pool!(self, pool => {
            sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(
                "SELECT (SELECT COUNT(*) FROM acc), (SELECT COUNT(*) FROM acc_archive), \
                 (SELECT COUNT(*) FROM acc_trash), (SELECT COUNT(*) FROM cdr), \
                 (SELECT COUNT(*) FROM cdr WHERE export_status = 'unexported')",
            )
            .fetch_one(pool)
            .await?
        });
        Ok(MediationCounts {
            pending: count(pending),
            archived: count(archived),
            trashed: count(trashed),
            cdrs: count(cdrs),
            unexported: count(unexported),
        })
    }
}
