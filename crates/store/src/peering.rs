//! Peering: groups of upstream servers (carriers) and the rules that select a group for a call.

use serde::{Deserialize, Serialize};

use crate::customer::check_text;
use crate::error::{ConstraintKind, StoreError, StoreResult, constraint_kind};
use crate::paging::{Page, Paged, like_pattern};
use crate::rewrite::compile_pattern;
use crate::{InsertedId, Store, on_pool, text_enum};

text_enum! {
    /// SIP transport towards a peering server (ngcp codes 1/2/3, see [`Transport::ngcp_code`]).
    Transport, "transport" {
        /// UDP (RFC 3261 §18).
        Udp = "udp",
        /// TCP.
        Tcp = "tcp",
        /// TLS (RFC 3261 §26.2).
        Tls = "tls",
    }
}

impl Transport {
    /// The ngcp-panel integer for this transport (`1` UDP, `2` TCP, `3` TLS).
    pub fn ngcp_code(self) -> u8 {
        match self {
            Transport::Udp => 1,
            Transport::Tcp => 2,
            Transport::Tls => 3,
        }
    }

    /// The transport for an ngcp-panel integer.
    pub fn from_ngcp_code(code: u8) -> StoreResult<Transport> {
        match code {
            1 => Ok(Transport::Udp),
            2 => Ok(Transport::Tcp),
            3 => Ok(Transport::Tls),
            other => Err(StoreError::invalid(
                "transport",
                format!("{other} is not 1 (UDP), 2 (TCP) or 3 (TLS)"),
            )),
        }
    }
}

/// A peering group (`/api/peeringgroups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PeeringGroup {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// 1 (highest) to 9.
    pub priority: i64,
    /// Free text.
    pub description: Option<String>,
}

/// Input for creating or replacing a peering group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPeeringGroup {
    /// Unique name.
    pub name: String,
    /// 1–9, default 1.
    #[serde(default = "default_one")]
    pub priority: i64,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A peering server (`/api/peeringservers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PeeringServer {
    /// Row id.
    pub id: i64,
    /// Owning group.
    pub group_id: i64,
    /// Unique name.
    pub name: String,
    /// IPv4 or IPv6 address to send to.
    pub ip: String,
    /// Host name for the Request-URI, if different from `ip`.
    pub host: Option<String>,
    /// Port (default 5060).
    #[sqlx(try_from = "i64")]
    pub port: u16,
    /// Transport.
    #[sqlx(try_from = "String")]
    pub transport: Transport,
    /// Load-sharing weight 1–127.
    pub weight: i64,
    /// Send OPTIONS pings.
    pub probe: bool,
    /// Disabled servers get no calls.
    pub enabled: bool,
}

/// Input for creating or replacing a peering server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPeeringServer {
    /// Owning group.
    pub group_id: i64,
    /// Unique name.
    pub name: String,
    /// IPv4 or IPv6 address.
    pub ip: String,
    /// Host name for the Request-URI.
    #[serde(default)]
    pub host: Option<String>,
    /// Default 5060.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Default UDP.
    #[serde(default = "default_transport")]
    pub transport: Transport,
    /// 1–127, default 1.
    #[serde(default = "default_one")]
    pub weight: i64,
    /// Default false.
    #[serde(default)]
    pub probe: bool,
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// An outbound peering rule (`/api/peeringrules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PeeringRule {
    /// Row id.
    pub id: i64,
    /// Group the rule selects.
    pub group_id: i64,
    /// Callee number prefix (≤16 digits, empty = any).
    pub callee_prefix: String,
    /// Regex on the caller URI.
    pub caller_pattern: Option<String>,
    /// Regex on the callee URI.
    pub callee_pattern: Option<String>,
    /// Free text.
    pub description: String,
    /// Disabled rules are skipped.
    pub enabled: bool,
    /// Stop looking at lower-priority groups once this rule matched.
    pub stopper: bool,
}

/// Input for creating or replacing a peering rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPeeringRule {
    /// Group the rule selects.
    pub group_id: i64,
    /// Callee prefix.
    #[serde(default)]
    pub callee_prefix: String,
    /// Caller regex.
    #[serde(default)]
    pub caller_pattern: Option<String>,
    /// Callee regex.
    #[serde(default)]
    pub callee_pattern: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Default false.
    #[serde(default)]
    pub stopper: bool,
}

fn default_one() -> i64 {
    1
}

fn default_true() -> bool {
    true
}

fn default_port() -> u16 {
    5060
}

fn default_transport() -> Transport {
    Transport::Udp
}

/// Filters for [`PeeringRepository::list_peering_groups`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeeringGroupFilter {
    /// ngcp pattern on the name.
    pub name: Option<String>,
}

/// Filters for [`PeeringRepository::list_peering_servers`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeeringServerFilter {
    /// Owning group.
    pub group_id: Option<i64>,
    /// ngcp pattern on the name.
    pub name: Option<String>,
    /// Exact IP.
    pub ip: Option<String>,
    /// Enabled flag.
    pub enabled: Option<bool>,
}

/// Filters for [`PeeringRepository::list_peering_rules`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeeringRuleFilter {
    /// Group.
    pub group_id: Option<i64>,
    /// Enabled flag.
    pub enabled: Option<bool>,
}

/// Peering aggregate.
pub trait PeeringRepository {
    /// Creates a group; `Conflict { field: "name" }` on a duplicate name.
    fn create_peering_group(
        &self,
        new: &NewPeeringGroup,
    ) -> impl Future<Output = StoreResult<PeeringGroup>> + Send;
    /// One group.
    fn get_peering_group(&self, id: i64) -> impl Future<Output = StoreResult<PeeringGroup>> + Send;
    /// A page of groups ordered by priority, id.
    fn list_peering_groups(
        &self,
        filter: &PeeringGroupFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<PeeringGroup>>> + Send;
    /// Replaces a group.
    fn update_peering_group(
        &self,
        id: i64,
        new: &NewPeeringGroup,
    ) -> impl Future<Output = StoreResult<PeeringGroup>> + Send;
    /// Deletes a group with its servers and rules.
    fn delete_peering_group(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;

    /// Creates a server; `Invalid { group_id }` for an unknown group.
    fn create_peering_server(
        &self,
        new: &NewPeeringServer,
    ) -> impl Future<Output = StoreResult<PeeringServer>> + Send;
    /// One server.
    fn get_peering_server(
        &self,
        id: i64,
    ) -> impl Future<Output = StoreResult<PeeringServer>> + Send;
    /// A page of servers ordered by id.
    fn list_peering_servers(
        &self,
        filter: &PeeringServerFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<PeeringServer>>> + Send;
    /// Replaces a server.
    fn update_peering_server(
        &self,
        id: i64,
        new: &NewPeeringServer,
    ) -> impl Future<Output = StoreResult<PeeringServer>> + Send;
    /// Deletes a server with its preferences.
    fn delete_peering_server(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;

    /// Creates a rule; `Conflict` for an identical rule in the same group.
    fn create_peering_rule(
        &self,
        new: &NewPeeringRule,
    ) -> impl Future<Output = StoreResult<PeeringRule>> + Send;
    /// One rule.
    fn get_peering_rule(&self, id: i64) -> impl Future<Output = StoreResult<PeeringRule>> + Send;
    /// A page of rules ordered by id.
    fn list_peering_rules(
        &self,
        filter: &PeeringRuleFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<PeeringRule>>> + Send;
    /// Replaces a rule.
    fn update_peering_rule(
        &self,
        id: i64,
        new: &NewPeeringRule,
    ) -> impl Future<Output = StoreResult<PeeringRule>> + Send;
    /// Deletes a rule.
    fn delete_peering_rule(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;
}

fn check_group(new: &NewPeeringGroup) -> StoreResult<()> {
    check_text("name", &new.name, 1, 127)?;
    if !(1..=9).contains(&new.priority) {
        return Err(StoreError::invalid("priority", "must be 1 to 9"));
    }
    if let Some(description) = &new.description {
        check_text("description", description, 0, 255)?;
    }
    Ok(())
}

fn check_server(new: &NewPeeringServer) -> StoreResult<()> {
    check_text("name", &new.name, 1, 127)?;
    if new.ip.parse::<std::net::IpAddr>().is_err() {
        return Err(StoreError::invalid("ip", "must be an IPv4 or IPv6 address"));
    }
    if let Some(host) = &new.host {
        crate::domain::normalize_domain(host)
            .map_err(|_| StoreError::invalid("host", "must be a host name or IP address"))?;
    }
    if new.port == 0 {
        return Err(StoreError::invalid("port", "must be 1 to 65535"));
    }
    if !(1..=127).contains(&new.weight) {
        return Err(StoreError::invalid("weight", "must be 1 to 127"));
    }
    Ok(())
}

fn check_rule(new: &NewPeeringRule) -> StoreResult<()> {
    if new.callee_prefix.len() > 16 {
        return Err(StoreError::invalid(
            "callee_prefix",
            "at most 16 characters",
        ));
    }
    check_text("callee_prefix", &new.callee_prefix, 0, 16)?;
    if let Some(pattern) = new.caller_pattern.as_deref().filter(|p| !p.is_empty()) {
        compile_pattern("caller_pattern", pattern)?;
    }
    if let Some(pattern) = new.callee_pattern.as_deref().filter(|p| !p.is_empty()) {
        compile_pattern("callee_pattern", pattern)?;
    }
    check_text("description", &new.description, 0, 255)?;
    Ok(())
}

fn group_fk_error(
    error: sqlx::Error,
    group_id: i64,
    unique_field: &'static str,
    value: &str,
) -> StoreError {
    match constraint_kind(&error) {
        ConstraintKind::ForeignKey => StoreError::invalid(
            "group_id",
            format!("Invalid 'group_id', doesn't exist: {group_id}"),
        ),
        ConstraintKind::Unique => StoreError::Conflict {
            field: unique_field,
            value: value.to_owned(),
        },
        ConstraintKind::Other => StoreError::Database(error),
    }
}

macro_rules! server_select {
    () => {
        "SELECT id, group_id, name, ip, host, port, transport, weight, probe, enabled FROM peering_servers "
    };
}

macro_rules! rule_select {
    () => {
        "SELECT id, group_id, callee_prefix, NULLIF(caller_pattern, '') AS caller_pattern, \
         NULLIF(callee_pattern, '') AS callee_pattern, description, enabled, stopper \
         FROM peering_rules "
    };
}

impl Store {
    pub(crate) async fn delete_by_id(
        &self,
        sql: &'static str,
        entity: &'static str,
        id: i64,
    ) -> StoreResult<()> {
        let affected = on_pool!(self, pool => {
            sqlx::query(sql).bind(id).execute(pool).await?.rows_affected()
        });
        if affected == 0 {
            return Err(StoreError::not_found(entity, id));
        }
        Ok(())
    }
}

impl PeeringRepository for Store {
    async fn create_peering_group(&self, new: &NewPeeringGroup) -> StoreResult<PeeringGroup> {
        check_group(new)?;
        let id = on_pool!(self, pool => {
            sqlx::query("INSERT INTO peering_groups (name, priority, description) VALUES (?, ?, ?)")
                .bind(&new.name)
                .bind(new.priority)
                .bind(&new.description)
                .execute(pool)
                .await
                .map_err(|e| group_fk_error(e, 0, "name", &new.name))?
                .inserted_id()
        });
        Ok(PeeringGroup {
            id,
            name: new.name.clone(),
            priority: new.priority,
            description: new.description.clone(),
        })
    }

    async fn get_peering_group(&self, id: i64) -> StoreResult<PeeringGroup> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, PeeringGroup>(
                "SELECT id, name, priority, description FROM peering_groups WHERE id = ?",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
        .ok_or_else(|| StoreError::not_found("peering group", id))
    }

    async fn list_peering_groups(
        &self,
        filter: &PeeringGroupFilter,
        page: Page,
    ) -> StoreResult<Paged<PeeringGroup>> {
        let (limit, offset) = page.limit_offset()?;
        let name = filter.name.as_deref().map(like_pattern);
        on_pool!(self, pool => {
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM peering_groups WHERE (? IS NULL OR name LIKE ? ESCAPE '!')",
            )
            .bind(&name)
            .bind(&name)
            .fetch_one(pool)
            .await?;
            let items = sqlx::query_as::<_, PeeringGroup>(
                "SELECT id, name, priority, description FROM peering_groups \
                 WHERE (? IS NULL OR name LIKE ? ESCAPE '!') ORDER BY priority, id LIMIT ? OFFSET ?",
            )
            .bind(&name)
            .bind(&name)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            Ok(Paged { items, total_count: total.max(0) as u64 })
        })
    }

    async fn update_peering_group(
        &self,
        id: i64,
        new: &NewPeeringGroup,
    ) -> StoreResult<PeeringGroup> {
        check_group(new)?;
        self.get_peering_group(id).await?;
        on_pool!(self, pool => {
            sqlx::query("UPDATE peering_groups SET name = ?, priority = ?, description = ? WHERE id = ?")
                .bind(&new.name)
                .bind(new.priority)
                .bind(&new.description)
                .bind(id)
                .execute(pool)
                .await
                .map_err(|e| group_fk_error(e, 0, "name", &new.name))?;
        });
        self.get_peering_group(id).await
    }

    async fn delete_peering_group(&self, id: i64) -> StoreResult<()> {
        self.delete_by_id(
            "DELETE FROM peering_groups WHERE id = ?",
            "peering group",
            id,
        )
        .await
    }

    async fn create_peering_server(&self, new: &NewPeeringServer) -> StoreResult<PeeringServer> {
        check_server(new)?;
        let id = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO peering_servers (group_id, name, ip, host, port, transport, weight, \
                 probe, enabled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(new.group_id)
            .bind(&new.name)
            .bind(&new.ip)
            .bind(&new.host)
            .bind(i64::from(new.port))
            .bind(new.transport.as_str())
            .bind(new.weight)
            .bind(new.probe)
            .bind(new.enabled)
            .execute(pool)
            .await
            .map_err(|e| group_fk_error(e, new.group_id, "name", &new.name))?
            .inserted_id()
        });
        self.get_peering_server(id).await
    }

    async fn get_peering_server(&self, id: i64) -> StoreResult<PeeringServer> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, PeeringServer>(concat!(server_select!(), "WHERE id = ?"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or_else(|| StoreError::not_found("peering server", id))
    }

    async fn list_peering_servers(
        &self,
        filter: &PeeringServerFilter,
        page: Page,
    ) -> StoreResult<Paged<PeeringServer>> {
        let (limit, offset) = page.limit_offset()?;
        let name = filter.name.as_deref().map(like_pattern);
        on_pool!(self, pool => {
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM peering_servers WHERE (? IS NULL OR group_id = ?) \
                 AND (? IS NULL OR name LIKE ? ESCAPE '!') AND (? IS NULL OR ip = ?) \
                 AND (? IS NULL OR enabled = ?)",
            )
            .bind(filter.group_id).bind(filter.group_id)
            .bind(&name).bind(&name)
            .bind(&filter.ip).bind(&filter.ip)
            .bind(filter.enabled).bind(filter.enabled)
            .fetch_one(pool)
            .await?;
            let items = sqlx::query_as::<_, PeeringServer>(concat!(
                server_select!(),
                "WHERE (? IS NULL OR group_id = ?) AND (? IS NULL OR name LIKE ? ESCAPE '!') \
                 AND (? IS NULL OR ip = ?) AND (? IS NULL OR enabled = ?) \
                 ORDER BY id LIMIT ? OFFSET ?"
            ))
            .bind(filter.group_id).bind(filter.group_id)
            .bind(&name).bind(&name)
            .bind(&filter.ip).bind(&filter.ip)
            .bind(filter.enabled).bind(filter.enabled)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            Ok(Paged { items, total_count: total.max(0) as u64 })
        })
    }

    async fn update_peering_server(
        &self,
        id: i64,
        new: &NewPeeringServer,
    ) -> StoreResult<PeeringServer> {
        check_server(new)?;
        self.get_peering_server(id).await?;
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE peering_servers SET group_id = ?, name = ?, ip = ?, host = ?, port = ?, \
                 transport = ?, weight = ?, probe = ?, enabled = ? WHERE id = ?",
            )
            .bind(new.group_id)
            .bind(&new.name)
            .bind(&new.ip)
            .bind(&new.host)
            .bind(i64::from(new.port))
            .bind(new.transport.as_str())
            .bind(new.weight)
            .bind(new.probe)
            .bind(new.enabled)
            .bind(id)
            .execute(pool)
            .await
            .map_err(|e| group_fk_error(e, new.group_id, "name", &new.name))?;
        });
        self.get_peering_server(id).await
    }

    async fn delete_peering_server(&self, id: i64) -> StoreResult<()> {
        self.delete_by_id(
            "DELETE FROM peering_servers WHERE id = ?",
            "peering server",
            id,
        )
        .await
    }

    async fn create_peering_rule(&self, new: &NewPeeringRule) -> StoreResult<PeeringRule> {
        check_rule(new)?;
        let id = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO peering_rules (group_id, callee_prefix, caller_pattern, callee_pattern, \
                 description, enabled, stopper) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(new.group_id)
            .bind(&new.callee_prefix)
            // '' rather than NULL so the unique index also catches duplicates without patterns.
            .bind(new.caller_pattern.as_deref().unwrap_or(""))
            .bind(new.callee_pattern.as_deref().unwrap_or(""))
            .bind(&new.description)
            .bind(new.enabled)
            .bind(new.stopper)
            .execute(pool)
            .await
            .map_err(|e| group_fk_error(e, new.group_id, "peering_rule", &new.callee_prefix))?
            .inserted_id()
        });
        self.get_peering_rule(id).await
    }

    async fn get_peering_rule(&self, id: i64) -> StoreResult<PeeringRule> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, PeeringRule>(concat!(rule_select!(), "WHERE id = ?"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or_else(|| StoreError::not_found("peering rule", id))
    }

    async fn list_peering_rules(
        &self,
        filter: &PeeringRuleFilter,
        page: Page,
    ) -> StoreResult<Paged<PeeringRule>> {
        let (limit, offset) = page.limit_offset()?;
        on_pool!(self, pool => {
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM peering_rules WHERE (? IS NULL OR group_id = ?) \
                 AND (? IS NULL OR enabled = ?)",
            )
            .bind(filter.group_id).bind(filter.group_id)
            .bind(filter.enabled).bind(filter.enabled)
            .fetch_one(pool)
            .await?;
            let items = sqlx::query_as::<_, PeeringRule>(concat!(
                rule_select!(),
                "WHERE (? IS NULL OR group_id = ?) AND (? IS NULL OR enabled = ?) \
                 ORDER BY id LIMIT ? OFFSET ?"
            ))
            .bind(filter.group_id).bind(filter.group_id)
            .bind(filter.enabled).bind(filter.enabled)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            Ok(Paged { items, total_count: total.max(0) as u64 })
        })
    }

    async fn update_peering_rule(&self, id: i64, new: &NewPeeringRule) -> StoreResult<PeeringRule> {
        check_rule(new)?;
        self.get_peering_rule(id).await?;
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE peering_rules SET group_id = ?, callee_prefix = ?, caller_pattern = ?, \
                 callee_pattern = ?, description = ?, enabled = ?, stopper = ? WHERE id = ?",
            )
            .bind(new.group_id)
            .bind(&new.callee_prefix)
            // '' rather than NULL so the unique index also catches duplicates without patterns.
            .bind(new.caller_pattern.as_deref().unwrap_or(""))
            .bind(new.callee_pattern.as_deref().unwrap_or(""))
            .bind(&new.description)
            .bind(new.enabled)
            .bind(new.stopper)
            .bind(id)
            .execute(pool)
            .await
            .map_err(|e| group_fk_error(e, new.group_id, "peering_rule", &new.callee_prefix))?;
        });
        self.get_peering_rule(id).await
    }

    async fn delete_peering_rule(&self, id: i64) -> StoreResult<()> {
        self.delete_by_id("DELETE FROM peering_rules WHERE id = ?", "peering rule", id)
            .await
    }
}
