//! Typed preferences: definitions seeded by migration, values per level, validation and the
//! effective value a call uses (subscriber over customer over domain over default).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ConstraintKind, StoreError, StoreResult, constraint_kind};
use crate::{Store, on_pool, text_enum};

text_enum! {
    /// Value type of a preference (`data_type` in the `*preferencedefs` resources).
    PreferenceType, "data_type" {
        /// JSON `true`/`false` (0/1 accepted on input).
        Boolean = "boolean",
        /// JSON integer, optionally bounded by `min_value`/`max_value`.
        Int = "int",
        /// JSON string of at most 128 characters.
        String = "string",
        /// JSON string out of `enum_values`.
        Enum = "enum",
        /// JSON array of strings (ngcp `max_occur` ≠ 1).
        List = "list",
    }
}

text_enum! {
    /// Where a preference value can be set.
    PreferenceLevel, "level" {
        /// Per domain (`/api/domainpreferences`).
        Domain = "domain",
        /// Per customer (`/api/customerpreferences`).
        Customer = "customer",
        /// Per subscriber (`/api/subscriberpreferences`).
        Subscriber = "subscriber",
        /// Per peering server (`/api/peeringserverpreferences`).
        Peer = "peer",
    }
}

text_enum! {
    /// Which level supplied an effective value.
    PreferenceSource, "source" {
        /// Set on the subscriber.
        Subscriber = "subscriber",
        /// Set on the subscriber's customer.
        Customer = "customer",
        /// Set on the subscriber's domain.
        Domain = "domain",
        /// The definition's default.
        Default = "default",
    }
}

/// Longest scalar string value (ngcp answers 422 above 128 characters).
const MAX_SCALAR_CHARS: usize = 128;
/// Most entries a list preference may hold.
const MAX_LIST_ENTRIES: usize = 1000;
/// List preferences whose entries are IP networks (`address` or `address/prefix`).
const IP_NETWORK_LISTS: &[&str] = &["allowed_ips", "man_allowed_ips"];

/// One preference definition (`/api/*preferencedefs` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferenceDefinition {
    /// Row id.
    pub id: i64,
    /// Preference name, e.g. `concurrent_max`.
    pub name: String,
    /// Value type.
    pub data_type: PreferenceType,
    /// What the preference does.
    pub description: String,
    /// Value when no level sets one (`None` = unset, e.g. "no limit").
    pub default_value: Option<Value>,
    /// Allowed values of an `enum` preference.
    pub enum_values: Vec<String>,
    /// Smallest allowed `int`.
    pub min_value: Option<i64>,
    /// Largest allowed `int`.
    pub max_value: Option<i64>,
    /// Settable per domain.
    pub domain_pref: bool,
    /// Settable per customer.
    pub customer_pref: bool,
    /// Settable per subscriber.
    pub subscriber_pref: bool,
    /// Settable per peering server.
    pub peer_pref: bool,
}

/// The value a subscriber's call uses and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectivePreference {
    /// Preference name.
    pub name: String,
    /// The value.
    pub value: Value,
    /// Which level supplied it.
    pub source: PreferenceSource,
}

impl PreferenceDefinition {
    /// Whether a value may be set at `level`.
    pub fn allows(&self, level: PreferenceLevel) -> bool {
        match level {
            PreferenceLevel::Domain => self.domain_pref,
            PreferenceLevel::Customer => self.customer_pref,
            PreferenceLevel::Subscriber => self.subscriber_pref,
            PreferenceLevel::Peer => self.peer_pref,
        }
    }

    /// Checks `value` against the type, range, enum values and level; returns the normalised value
    /// (0/1 become booleans). Errors are `Invalid { field: <preference name> }`.
    pub fn validate(&self, level: PreferenceLevel, value: &Value) -> StoreResult<Value> {
        let invalid = |reason: String| StoreError::invalid(&self.name, reason);
        if !self.allows(level) {
            return Err(invalid(format!(
                "preference '{}' cannot be set per {level}",
                self.name
            )));
        }
        match self.data_type {
            PreferenceType::Boolean => match value {
                Value::Bool(b) => Ok(Value::Bool(*b)),
                Value::Number(n) if n.as_i64() == Some(0) => Ok(Value::Bool(false)),
                Value::Number(n) if n.as_i64() == Some(1) => Ok(Value::Bool(true)),
                _ => Err(invalid(format!("expected a boolean, got {value}"))),
            },
            PreferenceType::Int => {
                let Some(number) = value.as_i64() else {
                    return Err(invalid(format!("expected an integer, got {value}")));
                };
                if let Some(min) = self.min_value.filter(|min| number < *min) {
                    return Err(invalid(format!("{number} is below the minimum {min}")));
                }
                if let Some(max) = self.max_value.filter(|max| number > *max) {
                    return Err(invalid(format!("{number} is above the maximum {max}")));
                }
                Ok(Value::from(number))
            }
            PreferenceType::String => {
                let text = value
                    .as_str()
                    .ok_or_else(|| invalid(format!("expected a string, got {value}")))?;
                self.check_scalar_text(text)?;
                Ok(Value::from(text))
            }
            PreferenceType::Enum => {
                let text = value
                    .as_str()
                    .ok_or_else(|| invalid(format!("expected a string, got {value}")))?;
                if !self.enum_values.iter().any(|allowed| allowed == text) {
                    return Err(invalid(format!(
                        "Invalid enum value in preference '{}': '{text}' is not one of {}",
                        self.name,
                        self.enum_values.join(", ")
                    )));
                }
                Ok(Value::from(text))
            }
            PreferenceType::List => {
                let Some(items) = value.as_array() else {
                    return Err(invalid(format!(
                        "Invalid data type for preference '{}', expected ARRAY",
                        self.name
                    )));
                };
                if items.len() > MAX_LIST_ENTRIES {
                    return Err(invalid(format!("at most {MAX_LIST_ENTRIES} entries")));
                }
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let text = item.as_str().ok_or_else(|| {
                        invalid(format!("list entries must be strings, got {item}"))
                    })?;
                    self.check_scalar_text(text)?;
                    if IP_NETWORK_LISTS.contains(&self.name.as_str()) && !is_ip_network(text) {
                        return Err(invalid(format!("'{text}' is not an IP address or network")));
                    }
                    out.push(Value::from(text));
                }
                Ok(Value::Array(out))
            }
        }
    }

    fn check_scalar_text(&self, text: &str) -> StoreResult<()> {
        if text.chars().count() > MAX_SCALAR_CHARS {
            return Err(StoreError::invalid(
                &self.name,
                format!("longer than {MAX_SCALAR_CHARS} characters"),
            ));
        }
        if text.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                &self.name,
                "must not contain control characters",
            ));
        }
        Ok(())
    }
}

/// `address` or `address/prefix` with a prefix that fits the address family.
fn is_ip_network(text: &str) -> bool {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let Ok(address) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    match prefix {
        None => true,
        Some(prefix) => prefix.parse::<u8>().is_ok_and(|p| p <= max) && !prefix.starts_with('+'),
    }
}

#[derive(sqlx::FromRow)]
struct DefinitionRow {
    id: i64,
    name: String,
    data_type: String,
    description: String,
    default_value: Option<String>,
    enum_values: Option<String>,
    min_value: Option<i64>,
    max_value: Option<i64>,
    domain_pref: bool,
    customer_pref: bool,
    subscriber_pref: bool,
    peer_pref: bool,
}

impl DefinitionRow {
    fn into_definition(self) -> StoreResult<PreferenceDefinition> {
        // These columns are written only by migrations; a parse failure is a schema bug.
        let corrupt = |what: &str| {
            StoreError::Database(sqlx::Error::Decode(
                format!("preference definition '{}': bad {what}", self.name).into(),
            ))
        };
        let default_value = match &self.default_value {
            Some(text) => Some(serde_json::from_str(text).map_err(|_| corrupt("default_value"))?),
            None => None,
        };
        let enum_values = match &self.enum_values {
            Some(text) => serde_json::from_str(text).map_err(|_| corrupt("enum_values"))?,
            None => Vec::new(),
        };
        let data_type = self.data_type.parse().map_err(|_| corrupt("data_type"))?;
        Ok(PreferenceDefinition {
            id: self.id,
            name: self.name,
            data_type,
            description: self.description,
            default_value,
            enum_values,
            min_value: self.min_value,
            max_value: self.max_value,
            domain_pref: self.domain_pref,
            customer_pref: self.customer_pref,
            subscriber_pref: self.subscriber_pref,
            peer_pref: self.peer_pref,
        })
    }
}

macro_rules! definition_select {
    () => {
        "SELECT id, name, data_type, description, default_value, enum_values, min_value, max_value, \
         domain_pref, customer_pref, subscriber_pref, peer_pref FROM preference_definitions "
    };
}

/// The static SQL for one level's value table.
struct LevelSql {
    owner: &'static str,
    select_all: &'static str,
    select_one: &'static str,
    delete_one: &'static str,
    delete_all: &'static str,
    insert: &'static str,
}

macro_rules! level_sql {
    ($table:literal, $owner:literal, $entity:literal) => {
        LevelSql {
            owner: $entity,
            select_all: concat!(
                "SELECT d.name, v.value FROM ",
                $table,
                " v JOIN preference_definitions d ",
                "ON d.id = v.preference_id WHERE v.",
                $owner,
                " = ? ORDER BY d.name"
            ),
            select_one: concat!(
                "SELECT v.value FROM ",
                $table,
                " v JOIN preference_definitions d ",
                "ON d.id = v.preference_id WHERE v.",
                $owner,
                " = ? AND d.name = ?"
            ),
            delete_one: concat!(
                "DELETE FROM ",
                $table,
                " WHERE ",
                $owner,
                " = ? AND preference_id = ?"
            ),
            delete_all: concat!("DELETE FROM ", $table, " WHERE ", $owner, " = ?"),
            insert: concat!(
                "INSERT INTO ",
                $table,
                " (",
                $owner,
                ", preference_id, value) VALUES (?, ?, ?)"
            ),
        }
    };
}

fn level_sql(level: PreferenceLevel) -> LevelSql {
    match level {
        PreferenceLevel::Domain => level_sql!("domain_preferences", "domain_id", "domain"),
        PreferenceLevel::Customer => level_sql!("customer_preferences", "customer_id", "customer"),
        PreferenceLevel::Subscriber => {
            level_sql!("subscriber_preferences", "subscriber_id", "subscriber")
        }
        PreferenceLevel::Peer => {
            level_sql!("peer_preferences", "peering_server_id", "peering server")
        }
    }
}

fn decode_value(name: &str, text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|_| {
        StoreError::Database(sqlx::Error::Decode(
            format!("stored value of preference '{name}' is not JSON").into(),
        ))
    })
}

/// Preferences aggregate.
pub trait PreferenceRepository {
    /// All definitions (those settable at `level` if given), ordered by name.
    fn list_preference_definitions(
        &self,
        level: Option<PreferenceLevel>,
    ) -> impl Future<Output = StoreResult<Vec<PreferenceDefinition>>> + Send;
    /// One definition; `Invalid { field: name }` for an unknown name.
    fn get_preference_definition(
        &self,
        name: &str,
    ) -> impl Future<Output = StoreResult<PreferenceDefinition>> + Send;
    /// The values set on one owner (no defaults filled in), keyed by name.
    fn get_preferences(
        &self,
        level: PreferenceLevel,
        owner_id: i64,
    ) -> impl Future<Output = StoreResult<BTreeMap<String, Value>>> + Send;
    /// One value set on one owner.
    fn get_preference(
        &self,
        level: PreferenceLevel,
        owner_id: i64,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<Value>>> + Send;
    /// Validates and stores one value; returns the normalised value.
    fn set_preference(
        &self,
        level: PreferenceLevel,
        owner_id: i64,
        name: &str,
        value: &Value,
    ) -> impl Future<Output = StoreResult<Value>> + Send;
    /// Removes one value; `true` if it was set.
    fn delete_preference(
        &self,
        level: PreferenceLevel,
        owner_id: i64,
        name: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Replaces all values of one owner (PUT): every value is validated first, then the old set is
    /// deleted and the new one written in one transaction.
    fn replace_preferences(
        &self,
        level: PreferenceLevel,
        owner_id: i64,
        values: &BTreeMap<String, Value>,
    ) -> impl Future<Output = StoreResult<BTreeMap<String, Value>>> + Send;
    /// The value a subscriber's calls use: subscriber over customer over domain over default.
    /// `None` when nothing is set and the definition has no default.
    fn effective_preference(
        &self,
        subscriber_id: i64,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<EffectivePreference>>> + Send;
}

impl Store {
    /// Checks value against its definition plus the checks that need the database.
    async fn validate_preference(
        &self,
        definition: &PreferenceDefinition,
        level: PreferenceLevel,
        value: &Value,
    ) -> StoreResult<Value> {
        let value = definition.validate(level, value)?;
        if definition.name == "rewrite_rule_set" {
            use crate::RewriteRuleRepository;
            let name = value.as_str().unwrap_or_default();
            if self.find_rewrite_rule_set(name).await?.is_none() {
                return Err(StoreError::invalid(
                    "rewrite_rule_set",
                    format!("Unknown rewrite_rule_set '{name}'"),
                ));
            }
        }
        Ok(value)
    }

    fn owner_write_error(error: sqlx::Error, sql: &LevelSql, owner_id: i64) -> StoreError {
        match constraint_kind(&error) {
            ConstraintKind::ForeignKey => StoreError::NotFound {
                entity: sql.owner,
                key: owner_id.to_string(),
            },
            _ => StoreError::Database(error),
        }
    }
}

impl PreferenceRepository for Store {
    async fn list_preference_definitions(
        &self,
        level: Option<PreferenceLevel>,
    ) -> StoreResult<Vec<PreferenceDefinition>> {
        let rows = on_pool!(self, pool => {
            sqlx::query_as::<_, DefinitionRow>(concat!(definition_select!(), "ORDER BY name"))
                .fetch_all(pool)
                .await?
        });
        let mut definitions = Vec::with_capacity(rows.len());
        for row in rows {
            let definition = row.into_definition()?;
            if level.is_none_or(|level| definition.allows(level)) {
                definitions.push(definition);
            }
        }
        Ok(definitions)
    }

    async fn get_preference_definition(&self, name: &str) -> StoreResult<PreferenceDefinition> {
        let row = on_pool!(self, pool => {
            sqlx::query_as::<_, DefinitionRow>(concat!(definition_select!(), "WHERE name = ?"))
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some(row) => row.into_definition(),
            None => Err(StoreError::invalid(
                name,
                format!("unknown preference '{name}'"),
            )),
        }
    }

    async fn get_preferences(
        &self,
        level: PreferenceLevel,
        owner_id: i64,
    ) -> StoreResult<BTreeMap<String, Value>> {
        let sql = level_sql(level);
        let rows: Vec<(String, String)> = on_pool!(self, pool => {
            sqlx::query_as(sql.select_all).bind(owner_id).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(name, text)| {
                let value = decode_value(&name, &text)?;
                Ok((name, value))
            })
            .collect()
    }

    async fn get_preference(
        &self,
        level: PreferenceLevel,
        owner_id: i64,
        name: &str,
    ) -> StoreResult<Option<Value>> {
        let sql = level_sql(level);
        let text: Option<String> = on_pool!(self, pool => {
            sqlx::query_scalar(sql.select_one)
                .bind(owner_id)
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        text.map(|text| decode_value(name, &text)).transpose()
    }

    async fn set_preference(
        &self,
        level: PreferenceLevel,
        owner_id: i64,
        name: &str,
        value: &Value,
    ) -> StoreResult<Value> {
        let definition = self.get_preference_definition(name).await?;
        let value = self.validate_preference(&definition, level, value).await?;
        let text = value.to_string();
        let sql = level_sql(level);
        on_pool!(self, pool => {
            // Delete-then-insert instead of an upsert: the two dialects spell upserts differently.
            let mut tx = pool.begin().await?;
            sqlx::query(sql.delete_one)
                .bind(owner_id)
                .bind(definition.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql.insert)
                .bind(owner_id)
                .bind(definition.id)
                .bind(&text)
                .execute(&mut *tx)
                .await
                .map_err(|e| Store::owner_write_error(e, &sql, owner_id))?;
            tx.commit().await?;
        });
        Ok(value)
    }

    async fn delete_preference(
        &self,
        level: PreferenceLevel,
        owner_id: i64,
        name: &str,
    ) -> StoreResult<bool> {
        let definition = self.get_preference_definition(name).await?;
        let sql = level_sql(level);
        let affected = on_pool!(self, pool => {
            sqlx::query(sql.delete_one)
                .bind(owner_id)
                .bind(definition.id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    async fn replace_preferences(
        &self,
        level: PreferenceLevel,
        owner_id: i64,
        values: &BTreeMap<String, Value>,
    ) -> StoreResult<BTreeMap<String, Value>> {
        let mut validated = Vec::with_capacity(values.len());
        let mut result = BTreeMap::new();
        for (name, value) in values {
            let definition = self.get_preference_definition(name).await?;
            let value = self.validate_preference(&definition, level, value).await?;
            validated.push((definition.id, value.to_string()));
            result.insert(name.clone(), value);
        }
        let sql = level_sql(level);
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(sql.delete_all).bind(owner_id).execute(&mut *tx).await?;
            for (preference_id, text) in &validated {
                sqlx::query(sql.insert)
                    .bind(owner_id)
                    .bind(*preference_id)
                    .bind(text)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| Store::owner_write_error(e, &sql, owner_id))?;
            }
            tx.commit().await?;
        });
        Ok(result)
    }

    async fn effective_preference(
        &self,
        subscriber_id: i64,
        name: &str,
    ) -> StoreResult<Option<EffectivePreference>> {
        let definition = self.get_preference_definition(name).await?;
        // One round trip for the three levels: the lowest level_rank that has a value wins
        // (`rank` would be a reserved word in MySQL 8).
        let found: Option<(String, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT value, source FROM ( \
                   SELECT v.value AS value, 'subscriber' AS source, 1 AS level_rank \
                     FROM subscriber_preferences v \
                     WHERE v.subscriber_id = ? AND v.preference_id = ? \
                   UNION ALL \
                   SELECT v.value, 'customer', 2 FROM customer_preferences v \
                     JOIN subscribers s ON s.customer_id = v.customer_id \
                     WHERE s.id = ? AND v.preference_id = ? \
                   UNION ALL \
                   SELECT v.value, 'domain', 3 FROM domain_preferences v \
                     JOIN subscribers s ON s.domain_id = v.domain_id \
                     WHERE s.id = ? AND v.preference_id = ? \
                 ) levels ORDER BY level_rank LIMIT 1",
            )
            .bind(subscriber_id)
            .bind(definition.id)
            .bind(subscriber_id)
            .bind(definition.id)
            .bind(subscriber_id)
            .bind(definition.id)
            .fetch_optional(pool)
            .await?
        });
        if let Some((text, source)) = found {
            return Ok(Some(EffectivePreference {
                value: decode_value(name, &text)?,
                name: definition.name,
                source: source.parse().map_err(|_| {
                    StoreError::Database(sqlx::Error::Decode("bad preference source".into()))
                })?,
            }));
        }
        let exists: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM subscribers WHERE id = ?")
                .bind(subscriber_id)
                .fetch_optional(pool)
                .await?
        });
        if exists.is_none() {
            return Err(StoreError::not_found("subscriber", subscriber_id));
        }
        Ok(definition.default_value.map(|value| EffectivePreference {
            name: definition.name,
            value,
            source: PreferenceSource::Default,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition(data_type: PreferenceType) -> PreferenceDefinition {
        PreferenceDefinition {
            id: 1,
            name: "p".into(),
            data_type,
            description: String::new(),
            default_value: None,
            enum_values: vec!["no".into(), "yes".into()],
            min_value: Some(0),
            max_value: Some(5),
            domain_pref: true,
            customer_pref: false,
            subscriber_pref: true,
            peer_pref: false,
        }
    }

    #[test]
    fn values_are_checked_against_the_type() {
        let boolean = definition(PreferenceType::Boolean);
        assert_eq!(
            boolean
                .validate(PreferenceLevel::Domain, &json!(1))
                .unwrap(),
            json!(true)
        );
        assert!(
            boolean
                .validate(PreferenceLevel::Domain, &json!("yes"))
                .is_err()
        );

        let int = definition(PreferenceType::Int);
        assert_eq!(
            int.validate(PreferenceLevel::Domain, &json!(4)).unwrap(),
            json!(4)
        );
        assert!(int.validate(PreferenceLevel::Domain, &json!(6)).is_err());
        assert!(int.validate(PreferenceLevel::Domain, &json!(-1)).is_err());
        assert!(int.validate(PreferenceLevel::Domain, &json!(1.5)).is_err());

        let enumeration = definition(PreferenceType::Enum);
        assert!(
            enumeration
                .validate(PreferenceLevel::Domain, &json!("yes"))
                .is_ok()
        );
        assert!(
            enumeration
                .validate(PreferenceLevel::Domain, &json!("maybe"))
                .is_err()
        );

        let list = definition(PreferenceType::List);
        assert!(
            list.validate(PreferenceLevel::Domain, &json!(["a", "b"]))
                .is_ok()
        );
        assert!(list.validate(PreferenceLevel::Domain, &json!("a")).is_err());
        assert!(list.validate(PreferenceLevel::Domain, &json!([1])).is_err());

        let string = definition(PreferenceType::String);
        assert!(
            string
                .validate(PreferenceLevel::Domain, &json!("x".repeat(129)))
                .is_err()
        );
    }

    #[test]
    fn level_is_checked_and_error_names_the_preference() {
        let int = definition(PreferenceType::Int);
        let err = int
            .validate(PreferenceLevel::Customer, &json!(1))
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { field, .. } if field == "p"));
    }

    #[test]
    fn ip_networks() {
        for good in ["192.0.2.1", "192.0.2.0/24", "2001:db8::/32", "::1"] {
            assert!(is_ip_network(good), "{good}");
        }
        for bad in [
            "192.0.2.0/33",
            "example.org",
            "1.2.3.4/",
            "::1/129",
            "1.2.3.4/+8",
        ] {
            assert!(!is_ip_network(bad), "{bad}");
        }
    }
}
