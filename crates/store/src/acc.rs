//! Accounting records (`acc`): what the proxy saw of each call, for the mediator to turn into
//! CDRs. One row per INVITE with its final response (a started call, or a failed one) and one
//! per BYE answered 2xx (a stopped call), matched later by Call-ID and tags.

use serde::{Deserialize, Serialize};

use crate::{Store, StoreResult, on_pool};

/// Column widths of the MariaDB schema; longer values are cut (at a character boundary) so an
/// odd header never makes an accounting write fail.
const METHOD_WIDTH: usize = 16;
const TAG_WIDTH: usize = 128;
const CALL_ID_WIDTH: usize = 255;
const REASON_WIDTH: usize = 128;
const UUID_WIDTH: usize = 36;
const SOURCE_IP_WIDTH: usize = 64;
const DESTINATION_WIDTH: usize = 255;
const CALL_TYPE_WIDTH: usize = 16;

/// One accounting record to write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccRecord {
    /// `INVITE` (call start or failure) or `BYE` (call stop).
    pub method: String,
    /// From tag of the request (the caller's dialog tag).
    pub from_tag: String,
    /// To tag of the final response (empty when the request failed before any callee answered).
    pub to_tag: String,
    /// Call-ID of the request.
    pub call_id: String,
    /// Status code of the final response (RFC 3261 §21).
    pub sip_code: u16,
    /// Reason phrase of the final response.
    pub sip_reason: String,
    /// UUID of the calling subscriber, when the caller is one of ours.
    pub source_user_id: Option<String>,
    /// UUID of the called subscriber, when the callee is one of ours.
    pub destination_user_id: Option<String>,
    /// Address the request really came from (the phone, not the load balancer).
    pub source_ip: String,
    /// User part of the called URI.
    pub destination_user: String,
    /// Host part of the called URI.
    pub destination_domain: String,
    /// When the final response was sent, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// User part of the From URI as the caller sent it.
    pub source_user: String,
    /// Host part of the From URI.
    pub source_domain: String,
    /// Calling line identity: the P-Asserted-Identity user, else the From user.
    pub source_cli: String,
    /// `call`, or the call-forward kind (`cfu`, `cfb`, `cft`, `cfna`); empty means `call`.
    pub call_type: String,
}

/// A stored accounting record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AccRecord {
    /// Row id, increasing in insertion order.
    pub id: i64,
    pub method: String,
    pub from_tag: String,
    pub to_tag: String,
    #[sqlx(rename = "callid")]
    pub call_id: String,
    pub sip_code: i64,
    pub sip_reason: String,
    pub source_user_id: Option<String>,
    pub destination_user_id: Option<String>,
    pub source_ip: String,
    pub destination_user: String,
    pub destination_domain: String,
    pub time_ms: i64,
    pub source_user: String,
    pub source_domain: String,
    pub source_cli: String,
    pub call_type: String,
}

/// The `acc` table.
pub trait AccRepository {
    /// Writes records in one transaction (the proxy's writer batches what queued up).
    fn insert_acc_records(
        &self,
        records: &[NewAccRecord],
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Every record of one call, in insertion order.
    fn list_acc_records_by_call_id(
        &self,
        call_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<AccRecord>>> + Send;
}

/// `value` cut to at most `width` bytes without splitting a character.
pub(crate) fn clip(value: &str, width: usize) -> &str {
    if value.len() <= width {
        return value;
    }
    let mut end = width;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

const INSERT_ACC: &str = "INSERT INTO acc (method, from_tag, to_tag, callid, sip_code, \
     sip_reason, source_user_id, destination_user_id, source_ip, destination_user, \
     destination_domain, time_ms, source_user, source_domain, source_cli, call_type) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

impl AccRepository for Store {
    async fn insert_acc_records(&self, records: &[NewAccRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        on_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            for record in records {
                sqlx::query(INSERT_ACC)
                    .bind(clip(&record.method, METHOD_WIDTH))
                    .bind(clip(&record.from_tag, TAG_WIDTH))
                    .bind(clip(&record.to_tag, TAG_WIDTH))
                    .bind(clip(&record.call_id, CALL_ID_WIDTH))
                    .bind(i64::from(record.sip_code))
                    .bind(clip(&record.sip_reason, REASON_WIDTH))
                    .bind(record.source_user_id.as_deref().map(|id| clip(id, UUID_WIDTH)))
                    .bind(record.destination_user_id.as_deref().map(|id| clip(id, UUID_WIDTH)))
                    .bind(clip(&record.source_ip, SOURCE_IP_WIDTH))
                    .bind(clip(&record.destination_user, DESTINATION_WIDTH))
                    .bind(clip(&record.destination_domain, DESTINATION_WIDTH))
                    .bind(record.time_ms)
                    .bind(clip(&record.source_user, DESTINATION_WIDTH))
                    .bind(clip(&record.source_domain, DESTINATION_WIDTH))
                    .bind(clip(&record.source_cli, DESTINATION_WIDTH))
                    .bind(match record.call_type.as_str() {
                        "" => "call",
                        other => clip(other, CALL_TYPE_WIDTH),
                    })
                    .execute(&mut *transaction)
                    .await?;
            }
            transaction.commit().await?;
        });
        Ok(())
    }

    async fn list_acc_records_by_call_id(&self, call_id: &str) -> StoreResult<Vec<AccRecord>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, AccRecord>(
                "SELECT id, method, from_tag, to_tag, callid, sip_code, \
                 sip_reason, source_user_id, destination_user_id, source_ip, destination_user, \
                 destination_domain, time_ms, source_user, source_domain, source_cli, call_type \
                 FROM acc WHERE callid = ? ORDER BY id",
            )
            .bind(call_id)
            .fetch_all(pool)
            .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(call_id: &str, method: &str, code: u16) -> NewAccRecord {
        NewAccRecord {
            method: method.to_owned(),
            from_tag: "f1".to_owned(),
            to_tag: "t1".to_owned(),
            call_id: call_id.to_owned(),
            sip_code: code,
            sip_reason: "OK".to_owned(),
            source_user_id: Some("6f1c0c0e-0000-4000-8000-000000000001".to_owned()),
            destination_user_id: None,
            source_ip: "192.0.2.7".to_owned(),
            destination_user: "bob".to_owned(),
            destination_domain: "example.org".to_owned(),
            time_ms: 1_764_000_000_123,
            source_user: "alice".to_owned(),
            source_domain: "example.org".to_owned(),
            source_cli: "431234".to_owned(),
            call_type: String::new(),
        }
    }

    #[test]
    fn clip_keeps_short_values_and_cuts_at_character_boundaries() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc");
        // "é" is two bytes: cutting inside it steps back.
        assert_eq!(clip("aé", 2), "a");
    }

    #[tokio::test]
    async fn records_round_trip_in_order_on_sqlite() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let long_reason = "x".repeat(300);
        let mut failed = record("call-1", "INVITE", 486);
        failed.sip_reason = long_reason;
        failed.to_tag = String::new();
        store
            .insert_acc_records(&[
                record("call-1", "INVITE", 200),
                record("call-1", "BYE", 200),
                record("call-2", "INVITE", 200),
                failed,
            ])
            .await
            .unwrap();
        let rows = store.list_acc_records_by_call_id("call-1").await.unwrap();
        let summary: Vec<_> = rows
            .iter()
            .map(|row| (row.method.as_str(), row.sip_code))
            .collect();
        assert_eq!(summary, [("INVITE", 200), ("BYE", 200), ("INVITE", 486)]);
        assert_eq!(rows[2].sip_reason.len(), REASON_WIDTH);
        assert_eq!(rows[2].to_tag, "");
        assert_eq!(rows[0].time_ms, 1_764_000_000_123);
        assert_eq!(rows[0].destination_user_id, None);
        assert_eq!(
            rows[0].call_type, "call",
            "an empty call type is stored as `call`"
        );
        assert_eq!(
            (rows[0].source_user.as_str(), rows[0].source_cli.as_str()),
            ("alice", "431234")
        );
        assert_eq!(
            rows[0].source_user_id.as_deref(),
            Some("6f1c0c0e-0000-4000-8000-000000000001")
        );
        assert!(
            store
                .list_acc_records_by_call_id("unknown")
                .await
                .unwrap()
                .is_empty()
        );
    }
}
