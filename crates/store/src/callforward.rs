//! Call forwarding: destination, time and source sets wired to forward types by mappings, plus
//! the "simple" per-subscriber view of `/api/callforwards`.

use serde::{Deserialize, Serialize};

use crate::customer::check_text;
use crate::error::{ConstraintKind, StoreError, StoreResult, constraint_kind};
use crate::paging::{Page, Paged};
use crate::preference::{PreferenceLevel, PreferenceRepository};
use crate::rewrite::compile_pattern;
use crate::{InsertedId, Store, on_pool, text_enum};

text_enum! {
    /// When a forward fires.
    CallForwardType, "type" {
        /// Unconditional.
        Cfu = "cfu",
        /// On busy (486/600).
        Cfb = "cfb",
        /// On no answer within the ring timeout.
        Cft = "cft",
        /// When the subscriber is not registered / not reachable.
        Cfna = "cfna",
    }
}

text_enum! {
    /// How a source set filters callers.
    #[derive(Default)]
    SourceMode, "mode" {
        /// Forward only calls from the listed sources.
        #[default]
        Whitelist = "whitelist",
        /// Forward all calls except those from the listed sources.
        Blacklist = "blacklist",
    }
}

/// One forward target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Destination {
    /// A number, a SIP URI or a keyword such as `voicebox`.
    pub destination: String,
    /// Seconds to ring this target before the next one (default 300).
    #[serde(default = "default_timeout")]
    pub timeout: i64,
    /// Lower is tried first (default 1).
    #[serde(default = "default_priority")]
    pub priority: i64,
}

fn default_timeout() -> i64 {
    300
}

fn default_priority() -> i64 {
    1
}

/// A destination set (`/api/cfdestinationsets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationSet {
    /// Row id.
    pub id: i64,
    /// Owner.
    pub subscriber_id: i64,
    /// Name.
    pub name: String,
    /// Targets ordered by priority.
    pub destinations: Vec<Destination>,
}

/// Input for creating or replacing a destination set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDestinationSet {
    /// Owner.
    pub subscriber_id: i64,
    /// Name.
    pub name: String,
    /// Targets.
    #[serde(default)]
    pub destinations: Vec<Destination>,
}

/// One period of a time set; each field is a value or an `a-b` range, `None` = any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TimePeriod {
    /// 1990–3000 (ranges may not wrap).
    #[serde(default)]
    pub year: Option<String>,
    /// 1–12.
    #[serde(default)]
    pub month: Option<String>,
    /// Day of month 1–31.
    #[serde(default)]
    pub mday: Option<String>,
    /// Day of week 1–7, 1 = Sunday.
    #[serde(default)]
    pub wday: Option<String>,
    /// 0–23.
    #[serde(default)]
    pub hour: Option<String>,
    /// 0–59.
    #[serde(default)]
    pub minute: Option<String>,
}

/// A time set (`/api/cftimesets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSet {
    /// Row id.
    pub id: i64,
    /// Owner.
    pub subscriber_id: i64,
    /// Name.
    pub name: String,
    /// Periods; the set matches when any period matches.
    pub times: Vec<TimePeriod>,
}

/// Input for creating or replacing a time set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTimeSet {
    /// Owner.
    pub subscriber_id: i64,
    /// Name.
    pub name: String,
    /// Periods.
    #[serde(default)]
    pub times: Vec<TimePeriod>,
}

/// One caller pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Source {
    /// Number pattern (`*` wildcards) or a regex when the set says so.
    pub source: String,
}

/// A source set (`/api/cfsourcesets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSet {
    /// Row id.
    pub id: i64,
    /// Owner.
    pub subscriber_id: i64,
    /// Name.
    pub name: String,
    /// Whitelist or blacklist.
    pub mode: SourceMode,
    /// Sources are regular expressions.
    pub is_regex: bool,
    /// Sources.
    pub sources: Vec<Source>,
}

/// Input for creating or replacing a source set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSourceSet {
    /// Owner.
    pub subscriber_id: i64,
    /// Name.
    pub name: String,
    /// Default whitelist.
    #[serde(default)]
    pub mode: SourceMode,
    /// Default false.
    #[serde(default)]
    pub is_regex: bool,
    /// Sources.
    #[serde(default)]
    pub sources: Vec<Source>,
}

/// Filters for the set lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CfSetFilter {
    /// Owner.
    pub subscriber_id: Option<i64>,
    /// Exact name.
    pub name: Option<String>,
}

/// One mapping entry (`/api/cfmappings` item list member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct CfMapping {
    /// Where to forward.
    #[serde(rename = "destinationset_id")]
    pub destination_set_id: i64,
    /// When (None = always).
    #[serde(rename = "timeset_id", default)]
    pub time_set_id: Option<i64>,
    /// For which callers (None = all).
    #[serde(rename = "sourceset_id", default)]
    pub source_set_id: Option<i64>,
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_true() -> bool {
    true
}

/// All mappings of a subscriber (`/api/cfmappings/{subscriber_id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CfMappings {
    /// Unconditional.
    #[serde(default)]
    pub cfu: Vec<CfMapping>,
    /// Busy.
    #[serde(default)]
    pub cfb: Vec<CfMapping>,
    /// Timeout.
    #[serde(default)]
    pub cft: Vec<CfMapping>,
    /// Not available.
    #[serde(default)]
    pub cfna: Vec<CfMapping>,
    /// Seconds before cft fires (the subscriber preference `ringtimeout`).
    #[serde(default)]
    pub cft_ringtimeout: Option<i64>,
}

impl CfMappings {
    fn of_type(&self, kind: CallForwardType) -> &Vec<CfMapping> {
        match kind {
            CallForwardType::Cfu => &self.cfu,
            CallForwardType::Cfb => &self.cfb,
            CallForwardType::Cft => &self.cft,
            CallForwardType::Cfna => &self.cfna,
        }
    }

    fn of_type_mut(&mut self, kind: CallForwardType) -> &mut Vec<CfMapping> {
        match kind {
            CallForwardType::Cfu => &mut self.cfu,
            CallForwardType::Cfb => &mut self.cfb,
            CallForwardType::Cft => &mut self.cft,
            CallForwardType::Cfna => &mut self.cfna,
        }
    }
}

/// One forward type in the simple view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleCallForward {
    /// Targets.
    #[serde(default)]
    pub destinations: Vec<Destination>,
    /// Periods (empty = always).
    #[serde(default)]
    pub times: Vec<TimePeriod>,
    /// Caller patterns (empty = all callers).
    #[serde(default)]
    pub sources: Vec<Source>,
    /// Whitelist or blacklist.
    #[serde(default)]
    pub sources_mode: SourceMode,
    /// Sources are regexes.
    #[serde(default)]
    pub sources_is_regex: bool,
}

/// The simple per-subscriber view (`/api/callforwards/{subscriber_id}`); `None` = unset (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallForwards {
    /// Unconditional.
    #[serde(default)]
    pub cfu: Option<SimpleCallForward>,
    /// Busy.
    #[serde(default)]
    pub cfb: Option<SimpleCallForward>,
    /// Timeout.
    #[serde(default)]
    pub cft: Option<SimpleCallForward>,
    /// Not available.
    #[serde(default)]
    pub cfna: Option<SimpleCallForward>,
    /// Seconds before cft fires.
    #[serde(default)]
    pub cft_ringtimeout: Option<i64>,
}

impl CallForwards {
    /// The entry of one type.
    pub fn get(&self, kind: CallForwardType) -> Option<&SimpleCallForward> {
        match kind {
            CallForwardType::Cfu => self.cfu.as_ref(),
            CallForwardType::Cfb => self.cfb.as_ref(),
            CallForwardType::Cft => self.cft.as_ref(),
            CallForwardType::Cfna => self.cfna.as_ref(),
        }
    }

    fn slot(&mut self, kind: CallForwardType) -> &mut Option<SimpleCallForward> {
        match kind {
            CallForwardType::Cfu => &mut self.cfu,
            CallForwardType::Cfb => &mut self.cfb,
            CallForwardType::Cft => &mut self.cft,
            CallForwardType::Cfna => &mut self.cfna,
        }
    }
}

/// Call forwarding aggregate.
pub trait CallForwardRepository {
    /// Creates a destination set with its destinations.
    fn create_destination_set(
        &self,
        new: &NewDestinationSet,
    ) -> impl Future<Output = StoreResult<DestinationSet>> + Send;
    /// One destination set.
    fn get_destination_set(
        &self,
        id: i64,
    ) -> impl Future<Output = StoreResult<DestinationSet>> + Send;
    /// A page of destination sets ordered by id.
    fn list_destination_sets(
        &self,
        filter: &CfSetFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<DestinationSet>>> + Send;
    /// Replaces a destination set (owner cannot change).
    fn update_destination_set(
        &self,
        id: i64,
        new: &NewDestinationSet,
    ) -> impl Future<Output = StoreResult<DestinationSet>> + Send;
    /// Deletes a destination set; `InUse` while a mapping uses it.
    fn delete_destination_set(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;

    /// Creates a time set.
    fn create_time_set(
        &self,
        new: &NewTimeSet,
    ) -> impl Future<Output = StoreResult<TimeSet>> + Send;
    /// One time set.
    fn get_time_set(&self, id: i64) -> impl Future<Output = StoreResult<TimeSet>> + Send;
    /// A page of time sets ordered by id.
    fn list_time_sets(
        &self,
        filter: &CfSetFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<TimeSet>>> + Send;
    /// Replaces a time set.
    fn update_time_set(
        &self,
        id: i64,
        new: &NewTimeSet,
    ) -> impl Future<Output = StoreResult<TimeSet>> + Send;
    /// Deletes a time set; `InUse` while a mapping uses it.
    fn delete_time_set(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;

    /// Creates a source set.
    fn create_source_set(
        &self,
        new: &NewSourceSet,
    ) -> impl Future<Output = StoreResult<SourceSet>> + Send;
    /// One source set.
    fn get_source_set(&self, id: i64) -> impl Future<Output = StoreResult<SourceSet>> + Send;
    /// A page of source sets ordered by id.
    fn list_source_sets(
        &self,
        filter: &CfSetFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<SourceSet>>> + Send;
    /// Replaces a source set.
    fn update_source_set(
        &self,
        id: i64,
        new: &NewSourceSet,
    ) -> impl Future<Output = StoreResult<SourceSet>> + Send;
    /// Deletes a source set; `InUse` while a mapping uses it.
    fn delete_source_set(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;

    /// All mappings of a subscriber.
    fn get_cf_mappings(
        &self,
        subscriber_id: i64,
    ) -> impl Future<Output = StoreResult<CfMappings>> + Send;
    /// Replaces all mappings of a subscriber; every referenced set must belong to it.
    fn replace_cf_mappings(
        &self,
        subscriber_id: i64,
        mappings: &CfMappings,
    ) -> impl Future<Output = StoreResult<CfMappings>> + Send;

    /// The simple view; `Invalid` ("Not a simple cf") when a type has several mappings.
    fn get_call_forwards(
        &self,
        subscriber_id: i64,
    ) -> impl Future<Output = StoreResult<CallForwards>> + Send;
    /// Replaces the simple view: omitted or empty types are removed; sets are named
    /// `quickset_<type>` (PUT semantics).
    fn replace_call_forwards(
        &self,
        subscriber_id: i64,
        forwards: &CallForwards,
    ) -> impl Future<Output = StoreResult<CallForwards>> + Send;
    /// Removes every forward of a subscriber.
    fn delete_call_forwards(
        &self,
        subscriber_id: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

fn check_set_name(name: &str) -> StoreResult<()> {
    check_text("name", name, 1, 255)
}

fn check_destinations(destinations: &[Destination]) -> StoreResult<()> {
    for destination in destinations {
        check_text("destination", &destination.destination, 1, 255)?;
        if !(1..=86_400).contains(&destination.timeout) {
            return Err(StoreError::invalid("timeout", "must be 1 to 86400 seconds"));
        }
        if !(i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&destination.priority) {
            return Err(StoreError::invalid("priority", "out of range"));
        }
    }
    Ok(())
}

fn check_period_field(
    field: &'static str,
    value: &Option<String>,
    min: u32,
    max: u32,
    may_wrap: bool,
) -> StoreResult<()> {
    let Some(text) = value else {
        return Ok(());
    };
    let parse = |part: &str| -> StoreResult<u32> {
        part.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                StoreError::invalid(
                    field,
                    format!("'{text}' is not a value or range in {min}-{max}"),
                )
            })
    };
    match text.split_once('-') {
        Some((from, to)) => {
            let (from, to) = (parse(from)?, parse(to)?);
            if !may_wrap && from > to {
                return Err(StoreError::invalid(
                    field,
                    format!("range '{text}' may not wrap"),
                ));
            }
        }
        None => {
            parse(text)?;
        }
    }
    Ok(())
}

fn check_periods(times: &[TimePeriod]) -> StoreResult<()> {
    for period in times {
        check_period_field("year", &period.year, 1990, 3000, false)?;
        check_period_field("month", &period.month, 1, 12, true)?;
        check_period_field("mday", &period.mday, 1, 31, true)?;
        check_period_field("wday", &period.wday, 1, 7, true)?;
        check_period_field("hour", &period.hour, 0, 23, true)?;
        check_period_field("minute", &period.minute, 0, 59, true)?;
    }
    Ok(())
}

fn check_sources(sources: &[Source], is_regex: bool) -> StoreResult<()> {
    for source in sources {
        check_text("source", &source.source, 1, 255)?;
        if is_regex {
            compile_pattern("source", &source.source)?;
        }
    }
    Ok(())
}

fn set_write_error(error: sqlx::Error, subscriber_id: i64) -> StoreError {
    match constraint_kind(&error) {
        ConstraintKind::ForeignKey => StoreError::invalid(
            "subscriber_id",
            format!("Invalid 'subscriber_id', doesn't exist: {subscriber_id}"),
        ),
        _ => StoreError::Database(error),
    }
}

macro_rules! insert_destinations {
    ($tx:ident, $set_id:expr, $list:expr) => {
        for destination in $list {
            sqlx::query(
                "INSERT INTO cf_destinations (destination_set_id, destination, timeout, priority) \
                 VALUES (?, ?, ?, ?)",
            )
            .bind($set_id)
            .bind(&destination.destination)
            .bind(destination.timeout)
            .bind(destination.priority)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

macro_rules! insert_periods {
    ($tx:ident, $set_id:expr, $list:expr) => {
        for period in $list {
            sqlx::query(
                "INSERT INTO cf_periods (time_set_id, year, month, mday, wday, hour, minute) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind($set_id)
            .bind(&period.year)
            .bind(&period.month)
            .bind(&period.mday)
            .bind(&period.wday)
            .bind(&period.hour)
            .bind(&period.minute)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

macro_rules! insert_sources {
    ($tx:ident, $set_id:expr, $list:expr) => {
        for source in $list {
            sqlx::query("INSERT INTO cf_sources (source_set_id, source) VALUES (?, ?)")
                .bind($set_id)
                .bind(&source.source)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

impl Store {
    async fn destinations_of(&self, set_id: i64) -> StoreResult<Vec<Destination>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, Destination>(
                "SELECT destination, timeout, priority FROM cf_destinations \
                 WHERE destination_set_id = ? ORDER BY priority, id",
            )
            .bind(set_id)
            .fetch_all(pool)
            .await?
        }))
    }

    async fn periods_of(&self, set_id: i64) -> StoreResult<Vec<TimePeriod>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, TimePeriod>(
                "SELECT year, month, mday, wday, hour, minute FROM cf_periods \
                 WHERE time_set_id = ? ORDER BY id",
            )
            .bind(set_id)
            .fetch_all(pool)
            .await?
        }))
    }

    async fn sources_of(&self, set_id: i64) -> StoreResult<Vec<Source>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, Source>(
                "SELECT source FROM cf_sources WHERE source_set_id = ? ORDER BY id",
            )
            .bind(set_id)
            .fetch_all(pool)
            .await?
        }))
    }

    async fn require_subscriber(&self, subscriber_id: i64) -> StoreResult<()> {
        let found: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM subscribers WHERE id = ?")
                .bind(subscriber_id)
                .fetch_optional(pool)
                .await?
        });
        found
            .map(|_| ())
            .ok_or_else(|| StoreError::not_found("subscriber", subscriber_id))
    }

    /// Fails with `InUse` when a mapping references the set through `column`.
    async fn ensure_set_unused(
        &self,
        count_sql: &'static str,
        entity: &'static str,
        id: i64,
    ) -> StoreResult<()> {
        let uses: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(count_sql).bind(id).fetch_one(pool).await?
        });
        if uses > 0 {
            return Err(StoreError::InUse {
                entity,
                key: id.to_string(),
            });
        }
        Ok(())
    }

    /// Checks that a set exists and belongs to `subscriber_id`.
    async fn check_set_owner(
        &self,
        owner_sql: &'static str,
        field: &'static str,
        set_id: i64,
        subscriber_id: i64,
    ) -> StoreResult<()> {
        let owner: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar(owner_sql).bind(set_id).fetch_optional(pool).await?
        });
        if owner != Some(subscriber_id) {
            return Err(StoreError::invalid(
                field,
                format!("Invalid '{field}', no such set of subscriber {subscriber_id}: {set_id}"),
            ));
        }
        Ok(())
    }
}

/// (type, destination_set_id, time_set_id, source_set_id, enabled) of a mapping row.
type MappingRow = (String, i64, Option<i64>, Option<i64>, bool);

/// (id, subscriber_id, name) of a set row.
type SetRow = (i64, i64, String);

impl CallForwardRepository for Store {
    async fn create_destination_set(&self, new: &NewDestinationSet) -> StoreResult<DestinationSet> {
        check_set_name(&new.name)?;
        check_destinations(&new.destinations)?;
        let id = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let id = sqlx::query("INSERT INTO cf_destination_sets (subscriber_id, name) VALUES (?, ?)")
                .bind(new.subscriber_id)
                .bind(&new.name)
                .execute(&mut *tx)
                .await
                .map_err(|e| set_write_error(e, new.subscriber_id))?
                .inserted_id();
            insert_destinations!(tx, id, &new.destinations);
            tx.commit().await?;
            id
        });
        self.get_destination_set(id).await
    }

    async fn get_destination_set(&self, id: i64) -> StoreResult<DestinationSet> {
        let row: SetRow = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, subscriber_id, name FROM cf_destination_sets WHERE id = ?")
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or_else(|| StoreError::not_found("destination set", id))?;
        Ok(DestinationSet {
            id: row.0,
            subscriber_id: row.1,
            name: row.2,
            destinations: self.destinations_of(id).await?,
        })
    }

    async fn list_destination_sets(
        &self,
        filter: &CfSetFilter,
        page: Page,
    ) -> StoreResult<Paged<DestinationSet>> {
        let (limit, offset) = page.limit_offset()?;
        let (total, rows): (i64, Vec<SetRow>) = on_pool!(self, pool => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM cf_destination_sets WHERE (? IS NULL OR subscriber_id = ?) \
                 AND (? IS NULL OR name = ?)",
            )
            .bind(filter.subscriber_id).bind(filter.subscriber_id)
            .bind(&filter.name).bind(&filter.name)
            .fetch_one(pool)
            .await?;
            let rows = sqlx::query_as(
                "SELECT id, subscriber_id, name FROM cf_destination_sets \
                 WHERE (? IS NULL OR subscriber_id = ?) AND (? IS NULL OR name = ?) \
                 ORDER BY id LIMIT ? OFFSET ?",
            )
            .bind(filter.subscriber_id).bind(filter.subscriber_id)
            .bind(&filter.name).bind(&filter.name)
            .bind(limit).bind(offset)
            .fetch_all(pool)
            .await?;
            (total, rows)
        });
        let mut items = Vec::with_capacity(rows.len());
        for (id, subscriber_id, name) in rows {
            let destinations = self.destinations_of(id).await?;
            items.push(DestinationSet {
                id,
                subscriber_id,
                name,
                destinations,
            });
        }
        Ok(Paged {
            items,
            total_count: total.max(0) as u64,
        })
    }

    async fn update_destination_set(
        &self,
        id: i64,
        new: &NewDestinationSet,
    ) -> StoreResult<DestinationSet> {
        check_set_name(&new.name)?;
        check_destinations(&new.destinations)?;
        let existing = self.get_destination_set(id).await?;
        if existing.subscriber_id != new.subscriber_id {
            return Err(StoreError::invalid(
                "subscriber_id",
                "subscriber_id can't be changed",
            ));
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE cf_destination_sets SET name = ? WHERE id = ?")
                .bind(&new.name)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM cf_destinations WHERE destination_set_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_destinations!(tx, id, &new.destinations);
            tx.commit().await?;
        });
        self.get_destination_set(id).await
    }

    async fn delete_destination_set(&self, id: i64) -> StoreResult<()> {
        self.get_destination_set(id).await?;
        self.ensure_set_unused(
            "SELECT COUNT(*) FROM cf_mappings WHERE destination_set_id = ?",
            "destination set",
            id,
        )
        .await?;
        self.delete_by_id(
            "DELETE FROM cf_destination_sets WHERE id = ?",
            "destination set",
            id,
        )
        .await
    }

    async fn create_time_set(&self, new: &NewTimeSet) -> StoreResult<TimeSet> {
        check_set_name(&new.name)?;
        check_periods(&new.times)?;
        let id = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let id = sqlx::query("INSERT INTO cf_time_sets (subscriber_id, name) VALUES (?, ?)")
                .bind(new.subscriber_id)
                .bind(&new.name)
                .execute(&mut *tx)
                .await
                .map_err(|e| set_write_error(e, new.subscriber_id))?
                .inserted_id();
            insert_periods!(tx, id, &new.times);
            tx.commit().await?;
            id
        });
        self.get_time_set(id).await
    }

    async fn get_time_set(&self, id: i64) -> StoreResult<TimeSet> {
        let row: SetRow = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, subscriber_id, name FROM cf_time_sets WHERE id = ?")
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or_else(|| StoreError::not_found("time set", id))?;
        Ok(TimeSet {
            id: row.0,
            subscriber_id: row.1,
            name: row.2,
            times: self.periods_of(id).await?,
        })
    }

    async fn list_time_sets(
        &self,
        filter: &CfSetFilter,
        page: Page,
    ) -> StoreResult<Paged<TimeSet>> {
        let (limit, offset) = page.limit_offset()?;
        let (total, rows): (i64, Vec<SetRow>) = on_pool!(self, pool => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM cf_time_sets WHERE (? IS NULL OR subscriber_id = ?) \
                 AND (? IS NULL OR name = ?)",
            )
            .bind(filter.subscriber_id).bind(filter.subscriber_id)
            .bind(&filter.name).bind(&filter.name)
            .fetch_one(pool)
            .await?;
            let rows = sqlx::query_as(
                "SELECT id, subscriber_id, name FROM cf_time_sets \
                 WHERE (? IS NULL OR subscriber_id = ?) AND (? IS NULL OR name = ?) \
                 ORDER BY id LIMIT ? OFFSET ?",
            )
            .bind(filter.subscriber_id).bind(filter.subscriber_id)
            .bind(&filter.name).bind(&filter.name)
            .bind(limit).bind(offset)
            .fetch_all(pool)
            .await?;
            (total, rows)
        });
        let mut items = Vec::with_capacity(rows.len());
        for (id, subscriber_id, name) in rows {
            let times = self.periods_of(id).await?;
            items.push(TimeSet {
                id,
                subscriber_id,
                name,
                times,
            });
        }
        Ok(Paged {
            items,
            total_count: total.max(0) as u64,
        })
    }

    async fn update_time_set(&self, id: i64, new: &NewTimeSet) -> StoreResult<TimeSet> {
        check_set_name(&new.name)?;
        check_periods(&new.times)?;
        let existing = self.get_time_set(id).await?;
        if existing.subscriber_id != new.subscriber_id {
            return Err(StoreError::invalid(
                "subscriber_id",
                "subscriber_id can't be changed",
            ));
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE cf_time_sets SET name = ? WHERE id = ?")
                .bind(&new.name)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM cf_periods WHERE time_set_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_periods!(tx, id, &new.times);
            tx.commit().await?;
        });
        self.get_time_set(id).await
    }

    async fn delete_time_set(&self, id: i64) -> StoreResult<()> {
        self.get_time_set(id).await?;
        self.ensure_set_unused(
            "SELECT COUNT(*) FROM cf_mappings WHERE time_set_id = ?",
            "time set",
            id,
        )
        .await?;
        self.delete_by_id("DELETE FROM cf_time_sets WHERE id = ?", "time set", id)
            .await
    }

    async fn create_source_set(&self, new: &NewSourceSet) -> StoreResult<SourceSet> {
        check_set_name(&new.name)?;
        check_sources(&new.sources, new.is_regex)?;
        let id = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let id = sqlx::query(
                "INSERT INTO cf_source_sets (subscriber_id, name, mode, is_regex) VALUES (?, ?, ?, ?)",
            )
            .bind(new.subscriber_id)
            .bind(&new.name)
            .bind(new.mode.as_str())
            .bind(new.is_regex)
            .execute(&mut *tx)
            .await
            .map_err(|e| set_write_error(e, new.subscriber_id))?
            .inserted_id();
            insert_sources!(tx, id, &new.sources);
            tx.commit().await?;
            id
        });
        self.get_source_set(id).await
    }

    async fn get_source_set(&self, id: i64) -> StoreResult<SourceSet> {
        let row: (i64, i64, String, String, bool) = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, subscriber_id, name, mode, is_regex FROM cf_source_sets WHERE id = ?",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
        .ok_or_else(|| StoreError::not_found("source set", id))?;
        Ok(SourceSet {
            id: row.0,
            subscriber_id: row.1,
            name: row.2,
            mode: row.3.parse()?,
            is_regex: row.4,
            sources: self.sources_of(id).await?,
        })
    }

    async fn list_source_sets(
        &self,
        filter: &CfSetFilter,
        page: Page,
    ) -> StoreResult<Paged<SourceSet>> {
        let (limit, offset) = page.limit_offset()?;
        let (total, ids): (i64, Vec<i64>) = on_pool!(self, pool => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM cf_source_sets WHERE (? IS NULL OR subscriber_id = ?) \
                 AND (? IS NULL OR name = ?)",
            )
            .bind(filter.subscriber_id).bind(filter.subscriber_id)
            .bind(&filter.name).bind(&filter.name)
            .fetch_one(pool)
            .await?;
            let ids = sqlx::query_scalar(
                "SELECT id FROM cf_source_sets \
                 WHERE (? IS NULL OR subscriber_id = ?) AND (? IS NULL OR name = ?) \
                 ORDER BY id LIMIT ? OFFSET ?",
            )
            .bind(filter.subscriber_id).bind(filter.subscriber_id)
            .bind(&filter.name).bind(&filter.name)
            .bind(limit).bind(offset)
            .fetch_all(pool)
            .await?;
            (total, ids)
        });
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            items.push(self.get_source_set(id).await?);
        }
        Ok(Paged {
            items,
            total_count: total.max(0) as u64,
        })
    }

    async fn update_source_set(&self, id: i64, new: &NewSourceSet) -> StoreResult<SourceSet> {
        check_set_name(&new.name)?;
        check_sources(&new.sources, new.is_regex)?;
        let existing = self.get_source_set(id).await?;
        if existing.subscriber_id != new.subscriber_id {
            return Err(StoreError::invalid(
                "subscriber_id",
                "subscriber_id can't be changed",
            ));
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE cf_source_sets SET name = ?, mode = ?, is_regex = ? WHERE id = ?")
                .bind(&new.name)
                .bind(new.mode.as_str())
                .bind(new.is_regex)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM cf_sources WHERE source_set_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_sources!(tx, id, &new.sources);
            tx.commit().await?;
        });
        self.get_source_set(id).await
    }

    async fn delete_source_set(&self, id: i64) -> StoreResult<()> {
        self.get_source_set(id).await?;
        self.ensure_set_unused(
            "SELECT COUNT(*) FROM cf_mappings WHERE source_set_id = ?",
            "source set",
            id,
        )
        .await?;
        self.delete_by_id("DELETE FROM cf_source_sets WHERE id = ?", "source set", id)
            .await
    }

    async fn get_cf_mappings(&self, subscriber_id: i64) -> StoreResult<CfMappings> {
        self.require_subscriber(subscriber_id).await?;
        let rows: Vec<MappingRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT type, destination_set_id, time_set_id, source_set_id, enabled \
                 FROM cf_mappings WHERE subscriber_id = ? ORDER BY id",
            )
            .bind(subscriber_id)
            .fetch_all(pool)
            .await?
        });
        let mut mappings = CfMappings::default();
        for (kind, destination_set_id, time_set_id, source_set_id, enabled) in rows {
            let kind: CallForwardType = kind.parse()?;
            mappings.of_type_mut(kind).push(CfMapping {
                destination_set_id,
                time_set_id,
                source_set_id,
                enabled,
            });
        }
        mappings.cft_ringtimeout = self
            .get_preference(PreferenceLevel::Subscriber, subscriber_id, "ringtimeout")
            .await?
            .and_then(|value| value.as_i64());
        Ok(mappings)
    }

    async fn replace_cf_mappings(
        &self,
        subscriber_id: i64,
        mappings: &CfMappings,
    ) -> StoreResult<CfMappings> {
        self.require_subscriber(subscriber_id).await?;
        for kind in CallForwardType::ALL {
            for mapping in mappings.of_type(*kind) {
                self.check_set_owner(
                    "SELECT subscriber_id FROM cf_destination_sets WHERE id = ?",
                    "destinationset_id",
                    mapping.destination_set_id,
                    subscriber_id,
                )
                .await?;
                if let Some(time_set_id) = mapping.time_set_id {
                    self.check_set_owner(
                        "SELECT subscriber_id FROM cf_time_sets WHERE id = ?",
                        "timeset_id",
                        time_set_id,
                        subscriber_id,
                    )
                    .await?;
                }
                if let Some(source_set_id) = mapping.source_set_id {
                    self.check_set_owner(
                        "SELECT subscriber_id FROM cf_source_sets WHERE id = ?",
                        "sourceset_id",
                        source_set_id,
                        subscriber_id,
                    )
                    .await?;
                }
            }
        }
        if let Some(seconds) = mappings.cft_ringtimeout {
            // Validate before any write so a bad value leaves the mappings untouched.
            self.get_preference_definition("ringtimeout")
                .await?
                .validate(
                    PreferenceLevel::Subscriber,
                    &serde_json::Value::from(seconds),
                )?;
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM cf_mappings WHERE subscriber_id = ?")
                .bind(subscriber_id)
                .execute(&mut *tx)
                .await?;
            for kind in CallForwardType::ALL {
                for mapping in mappings.of_type(*kind) {
                    sqlx::query(
                        "INSERT INTO cf_mappings (subscriber_id, type, destination_set_id, \
                         time_set_id, source_set_id, enabled) VALUES (?, ?, ?, ?, ?, ?)",
                    )
                    .bind(subscriber_id)
                    .bind(kind.as_str())
                    .bind(mapping.destination_set_id)
                    .bind(mapping.time_set_id)
                    .bind(mapping.source_set_id)
                    .bind(mapping.enabled)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        });
        if let Some(seconds) = mappings.cft_ringtimeout {
            self.set_preference(
                PreferenceLevel::Subscriber,
                subscriber_id,
                "ringtimeout",
                &serde_json::Value::from(seconds),
            )
            .await?;
        }
        self.get_cf_mappings(subscriber_id).await
    }

    async fn get_call_forwards(&self, subscriber_id: i64) -> StoreResult<CallForwards> {
        let mappings = self.get_cf_mappings(subscriber_id).await?;
        let mut forwards = CallForwards {
            cft_ringtimeout: mappings.cft_ringtimeout,
            ..CallForwards::default()
        };
        for kind in CallForwardType::ALL {
            let list = mappings.of_type(*kind);
            let mapping = match list.as_slice() {
                [] => continue,
                [one] => one,
                _ => {
                    return Err(StoreError::invalid(
                        kind.as_str(),
                        format!("Not a simple cf. Multiple {kind}-s configured."),
                    ));
                }
            };
            let mut simple = SimpleCallForward {
                destinations: self.destinations_of(mapping.destination_set_id).await?,
                ..SimpleCallForward::default()
            };
            if let Some(time_set_id) = mapping.time_set_id {
                simple.times = self.periods_of(time_set_id).await?;
            }
            if let Some(source_set_id) = mapping.source_set_id {
                let set = self.get_source_set(source_set_id).await?;
                simple.sources = set.sources;
                simple.sources_mode = set.mode;
                simple.sources_is_regex = set.is_regex;
            }
            *forwards.slot(*kind) = Some(simple);
        }
        Ok(forwards)
    }

    async fn replace_call_forwards(
        &self,
        subscriber_id: i64,
        forwards: &CallForwards,
    ) -> StoreResult<CallForwards> {
        self.require_subscriber(subscriber_id).await?;
        for kind in CallForwardType::ALL {
            if let Some(simple) = forwards.get(*kind) {
                check_destinations(&simple.destinations)?;
                check_periods(&simple.times)?;
                check_sources(&simple.sources, simple.sources_is_regex)?;
            }
        }
        if let Some(seconds) = forwards.cft_ringtimeout {
            self.get_preference_definition("ringtimeout")
                .await?
                .validate(
                    PreferenceLevel::Subscriber,
                    &serde_json::Value::from(seconds),
                )?;
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM cf_mappings WHERE subscriber_id = ?")
                .bind(subscriber_id)
                .execute(&mut *tx)
                .await?;
            for sql in [
                "DELETE FROM cf_destination_sets WHERE subscriber_id = ? AND name LIKE 'quickset!_%' ESCAPE '!'",
                "DELETE FROM cf_time_sets WHERE subscriber_id = ? AND name LIKE 'quickset!_%' ESCAPE '!'",
                "DELETE FROM cf_source_sets WHERE subscriber_id = ? AND name LIKE 'quickset!_%' ESCAPE '!'",
            ] {
                sqlx::query(sql).bind(subscriber_id).execute(&mut *tx).await?;
            }
            for kind in CallForwardType::ALL {
                let Some(simple) = forwards.get(*kind) else { continue };
                if simple.destinations.is_empty() {
                    continue;
                }
                let name = format!("quickset_{kind}");
                let destination_set_id = sqlx::query(
                    "INSERT INTO cf_destination_sets (subscriber_id, name) VALUES (?, ?)",
                )
                .bind(subscriber_id)
                .bind(&name)
                .execute(&mut *tx)
                .await?
                .inserted_id();
                insert_destinations!(tx, destination_set_id, &simple.destinations);
                let mut time_set_id = None;
                if !simple.times.is_empty() {
                    let id = sqlx::query("INSERT INTO cf_time_sets (subscriber_id, name) VALUES (?, ?)")
                        .bind(subscriber_id)
                        .bind(&name)
                        .execute(&mut *tx)
                        .await?
                        .inserted_id();
                    insert_periods!(tx, id, &simple.times);
                    time_set_id = Some(id);
                }
                let mut source_set_id = None;
                if !simple.sources.is_empty() {
                    let id = sqlx::query(
                        "INSERT INTO cf_source_sets (subscriber_id, name, mode, is_regex) VALUES (?, ?, ?, ?)",
                    )
                    .bind(subscriber_id)
                    .bind(&name)
                    .bind(simple.sources_mode.as_str())
                    .bind(simple.sources_is_regex)
                    .execute(&mut *tx)
                    .await?
                    .inserted_id();
                    insert_sources!(tx, id, &simple.sources);
                    source_set_id = Some(id);
                }
                sqlx::query(
                    "INSERT INTO cf_mappings (subscriber_id, type, destination_set_id, time_set_id, \
                     source_set_id, enabled) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(subscriber_id)
                .bind(kind.as_str())
                .bind(destination_set_id)
                .bind(time_set_id)
                .bind(source_set_id)
                .bind(true)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        if let Some(seconds) = forwards.cft_ringtimeout {
            self.set_preference(
                PreferenceLevel::Subscriber,
                subscriber_id,
                "ringtimeout",
                &serde_json::Value::from(seconds),
            )
            .await?;
        }
        self.get_call_forwards(subscriber_id).await
    }

    async fn delete_call_forwards(&self, subscriber_id: i64) -> StoreResult<()> {
        self.replace_call_forwards(subscriber_id, &CallForwards::default())
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_range_checked() {
        let ok = TimePeriod {
            year: Some("2024-2025".into()),
            month: Some("11-2".into()),
            wday: Some("2-6".into()),
            hour: Some("8-17".into()),
            ..TimePeriod::default()
        };
        check_periods(&[ok]).unwrap();
        for (field, bad) in [
            (
                "year",
                TimePeriod {
                    year: Some("2025-2024".into()),
                    ..Default::default()
                },
            ),
            (
                "month",
                TimePeriod {
                    month: Some("13".into()),
                    ..Default::default()
                },
            ),
            (
                "wday",
                TimePeriod {
                    wday: Some("0".into()),
                    ..Default::default()
                },
            ),
            (
                "hour",
                TimePeriod {
                    hour: Some("x".into()),
                    ..Default::default()
                },
            ),
            (
                "minute",
                TimePeriod {
                    minute: Some("60".into()),
                    ..Default::default()
                },
            ),
        ] {
            let err = check_periods(&[bad]).unwrap_err();
            assert!(matches!(err, StoreError::Invalid { field: f, .. } if f == field));
        }
    }

    #[test]
    fn destination_timeout_must_be_positive() {
        let bad = Destination {
            destination: "4312345".into(),
            timeout: 0,
            priority: 1,
        };
        assert!(check_destinations(&[bad]).is_err());
    }
}
