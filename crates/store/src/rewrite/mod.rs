//! Rewrite rule sets: ordered regex substitutions that normalise caller and callee numbers on
//! the way in and out (the ngcp dialplan, Kamailio `dialplan` module semantics).
//!
//! This module stores sets and rules; the engine (`rewrite/engine.rs`, pure, no I/O) applies
//! them: the first matching rule by priority wins, `\1` groups, `${caller_cc}`-style variables
//! (the full syntax and semantics are on [`CompiledRuleSet`]). The proxy loads a set with
//! [`RewriteRuleRepository::compiled_rewrite_rule_set`] and calls [`CompiledRuleSet::apply`];
//! `applyrewrites` dry runs go through [`RewriteRuleRepository::apply_rewrite_rules`], which uses
//! the same engine.

use serde::{Deserialize, Serialize};

mod engine;

use engine::Replacement;
pub use engine::{CompiledRuleSet, RewriteVariables, Rewritten, SkippedRule};

use crate::customer::check_text;
use crate::error::{ConstraintKind, StoreError, StoreResult, constraint_kind, map_write_error};
use crate::paging::{Page, Paged, like_pattern};
use crate::{InsertedId, Store, on_pool, text_enum};

text_enum! {
    /// Whether a rule applies to calls entering or leaving the platform.
    RewriteDirection, "direction" {
        /// Inbound normalisation (to E.164).
        In = "in",
        /// Outbound denormalisation (to the peer's or device's format).
        Out = "out",
    }
}

text_enum! {
    /// Which party's number a rule rewrites.
    RewriteField, "field" {
        /// The calling party.
        Caller = "caller",
        /// The called party.
        Callee = "callee",
    }
}

/// A rule set (`/api/rewriterulesets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RewriteRuleSet {
    /// Row id.
    pub id: i64,
    /// Unique name, referenced by the `rewrite_rule_set` preference.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
}

/// Input for creating or replacing a rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRewriteRuleSet {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A rule (`/api/rewriterules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RewriteRule {
    /// Row id.
    pub id: i64,
    /// Owning set.
    pub set_id: i64,
    /// Regular expression the number must match.
    pub match_pattern: String,
    /// Replacement; `\1`…`\9` refer to capture groups, `${caller_cc}` … to variables (the full
    /// syntax and matching semantics are on [`CompiledRuleSet`]).
    pub replace_pattern: String,
    /// Free text.
    pub description: String,
    /// In or out.
    #[sqlx(try_from = "String")]
    pub direction: RewriteDirection,
    /// Caller or callee.
    #[sqlx(try_from = "String")]
    pub field: RewriteField,
    /// Lower runs first.
    pub priority: i64,
    /// Disabled rules are kept but skipped.
    pub enabled: bool,
}

/// Input for creating or replacing a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRewriteRule {
    /// Owning set.
    pub set_id: i64,
    /// Regular expression (must compile).
    pub match_pattern: String,
    /// Replacement (`\1` groups, `${caller_cc}` variables); may only refer to groups the
    /// pattern has.
    pub replace_pattern: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// In or out.
    pub direction: RewriteDirection,
    /// Caller or callee.
    pub field: RewriteField,
    /// Lower runs first (default 50).
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_priority() -> i64 {
    50
}

fn default_true() -> bool {
    true
}

/// Filters for [`RewriteRuleRepository::list_rewrite_rule_sets`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteRuleSetFilter {
    /// ngcp pattern on the name.
    pub name: Option<String>,
}

/// Filters for [`RewriteRuleRepository::list_rewrite_rules`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteRuleFilter {
    /// Owning set.
    pub set_id: Option<i64>,
    /// Direction.
    pub direction: Option<RewriteDirection>,
    /// Field.
    pub field: Option<RewriteField>,
}

/// Rewrite rules aggregate.
pub trait RewriteRuleRepository {
    /// Creates a set; `Conflict { field: "name" }` when the name exists.
    fn create_rewrite_rule_set(
        &self,
        new: &NewRewriteRuleSet,
    ) -> impl Future<Output = StoreResult<RewriteRuleSet>> + Send;
    /// One set by id.
    fn get_rewrite_rule_set(
        &self,
        id: i64,
    ) -> impl Future<Output = StoreResult<RewriteRuleSet>> + Send;
    /// One set by name.
    fn find_rewrite_rule_set(
        &self,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<RewriteRuleSet>>> + Send;
    /// A page of sets ordered by id.
    fn list_rewrite_rule_sets(
        &self,
        filter: &RewriteRuleSetFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<RewriteRuleSet>>> + Send;
    /// Replaces name and description.
    fn update_rewrite_rule_set(
        &self,
        id: i64,
        new: &NewRewriteRuleSet,
    ) -> impl Future<Output = StoreResult<RewriteRuleSet>> + Send;
    /// Deletes a set and its rules.
    fn delete_rewrite_rule_set(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;
    /// Creates a rule after checking the pattern compiles and the replacement refers only to
    /// groups the pattern has.
    fn create_rewrite_rule(
        &self,
        new: &NewRewriteRule,
    ) -> impl Future<Output = StoreResult<RewriteRule>> + Send;
    /// One rule by id.
    fn get_rewrite_rule(&self, id: i64) -> impl Future<Output = StoreResult<RewriteRule>> + Send;
    /// A page of rules ordered by set, direction, field, priority, id.
    fn list_rewrite_rules(
        &self,
        filter: &RewriteRuleFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<RewriteRule>>> + Send;
    /// Replaces a rule.
    fn update_rewrite_rule(
        &self,
        id: i64,
        new: &NewRewriteRule,
    ) -> impl Future<Output = StoreResult<RewriteRule>> + Send;
    /// Deletes a rule.
    fn delete_rewrite_rule(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;
    /// Applies one list (set × direction × field) to `number` with [`CompiledRuleSet`]: the enabled
    /// rules are tried in priority order (then id) and the **first** matching rule alone gives the
    /// result (Kamailio `dp_translate`; no chaining); no match returns the number unchanged with
    /// `rule_id: None`. Stored rules that no longer compile are skipped (and logged). This is
    /// the `applyrewrites` dry run; `NotFound` when the set does not exist.
    fn apply_rewrite_rules(
        &self,
        set_id: i64,
        direction: RewriteDirection,
        field: RewriteField,
        number: &str,
        variables: &RewriteVariables,
    ) -> impl Future<Output = StoreResult<Rewritten>> + Send;
    /// Loads and compiles all four lists of a set in one query, for callers that apply them
    /// many times (the proxy). Unusable stored rules are left out, listed in
    /// [`CompiledRuleSet::skipped`] and logged. `NotFound` when the set does not exist.
    fn compiled_rewrite_rule_set(
        &self,
        set_id: i64,
    ) -> impl Future<Output = StoreResult<CompiledRuleSet>> + Send;
    /// The `${caller_*}` variables from the primary number of subscriber `caller` and the
    /// `${callee_*}` ones from that of `callee`; a party that is `None` or has no primary number
    /// leaves its variables unset (they expand to the empty string). `NotFound` when a given
    /// subscriber does not exist.
    fn rewrite_variables(
        &self,
        caller: Option<i64>,
        callee: Option<i64>,
    ) -> impl Future<Output = StoreResult<RewriteVariables>> + Send;
    /// The compiled set a subscriber's calls use: its effective `rewrite_rule_set` preference
    /// (subscriber over customer over domain). `None` when no level sets one or the name
    /// matches no set (logged).
    fn subscriber_rewrite_rule_set(
        &self,
        subscriber_id: i64,
    ) -> impl Future<Output = StoreResult<Option<CompiledRuleSet>>> + Send;
    /// `applyrewrites` in ngcp's shape (`subscriber_id`, `direction` such as `callee_in`,
    /// `number`): the set is the subscriber's effective `rewrite_rule_set` preference (subscriber
    /// over customer over domain), and both the `${caller_*}` and the `${callee_*}` variables come
    /// from that subscriber's primary number (ngcp-panel's `apply_rewrite` uses the one subscriber
    /// for both). No set → the number unchanged, `rule_id: None`. `NotFound` for an unknown
    /// subscriber.
    fn apply_subscriber_rewrite_rules(
        &self,
        subscriber_id: i64,
        direction: RewriteDirection,
        field: RewriteField,
        number: &str,
    ) -> impl Future<Output = StoreResult<Rewritten>> + Send;
}

/// Compiles a match pattern, naming the field on failure.
pub(crate) fn compile_pattern(field: &str, pattern: &str) -> StoreResult<regex::Regex> {
    if pattern.is_empty() || pattern.len() > 255 {
        return Err(StoreError::invalid(field, "must be 1 to 255 characters"));
    }
    regex::Regex::new(pattern)
        .map_err(|e| StoreError::invalid(field, format!("not a valid regular expression: {e}")))
}

fn check_rule(new: &NewRewriteRule) -> StoreResult<()> {
    let pattern = compile_pattern("match_pattern", &new.match_pattern)?;
    check_text("replace_pattern", &new.replace_pattern, 0, 255)?;
    Replacement::parse(&new.replace_pattern)
        .check_groups(pattern.captures_len())
        .map_err(|reason| StoreError::invalid("replace_pattern", reason))?;
    check_text("description", &new.description, 0, 255)?;
    Ok(())
}

fn check_set(new: &NewRewriteRuleSet) -> StoreResult<()> {
    check_text("name", &new.name, 1, 255)?;
    if let Some(description) = &new.description {
        check_text("description", description, 0, 255)?;
    }
    Ok(())
}

macro_rules! rule_select {
    () => {
        "SELECT id, set_id, match_pattern, replace_pattern, description, direction, field, \
         priority, enabled FROM rewrite_rules "
    };
}

fn rule_write_error(error: sqlx::Error, set_id: i64) -> StoreError {
    match constraint_kind(&error) {
        ConstraintKind::ForeignKey => StoreError::invalid(
            "set_id",
            format!("Invalid 'set_id', doesn't exist: {set_id}"),
        ),
        _ => StoreError::Database(error),
    }
}

impl RewriteRuleRepository for Store {
    async fn create_rewrite_rule_set(
        &self,
        new: &NewRewriteRuleSet,
    ) -> StoreResult<RewriteRuleSet> {
        check_set(new)?;
        let id = on_pool!(self, pool => {
            sqlx::query("INSERT INTO rewrite_rule_sets (name, description) VALUES (?, ?)")
                .bind(&new.name)
                .bind(&new.description)
                .execute(pool)
                .await
                .map_err(|e| map_write_error(e, "name", &new.name, "name"))?
                .inserted_id()
        });
        Ok(RewriteRuleSet {
            id,
            name: new.name.clone(),
            description: new.description.clone(),
        })
    }

    async fn get_rewrite_rule_set(&self, id: i64) -> StoreResult<RewriteRuleSet> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, RewriteRuleSet>(
                "SELECT id, name, description FROM rewrite_rule_sets WHERE id = ?",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
        .ok_or_else(|| StoreError::not_found("rewrite rule set", id))
    }

    async fn find_rewrite_rule_set(&self, name: &str) -> StoreResult<Option<RewriteRuleSet>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RewriteRuleSet>(
                "SELECT id, name, description FROM rewrite_rule_sets WHERE name = ?",
            )
            .bind(name)
            .fetch_optional(pool)
            .await?
        }))
    }

    async fn list_rewrite_rule_sets(
        &self,
        filter: &RewriteRuleSetFilter,
        page: Page,
    ) -> StoreResult<Paged<RewriteRuleSet>> {
        let (limit, offset) = page.limit_offset()?;
        let name = filter.name.as_deref().map(like_pattern);
        on_pool!(self, pool => {
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM rewrite_rule_sets WHERE (? IS NULL OR name LIKE ? ESCAPE '!')",
            )
            .bind(&name)
            .bind(&name)
            .fetch_one(pool)
            .await?;
            let items = sqlx::query_as::<_, RewriteRuleSet>(
                "SELECT id, name, description FROM rewrite_rule_sets \
                 WHERE (? IS NULL OR name LIKE ? ESCAPE '!') ORDER BY id LIMIT ? OFFSET ?",
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

    async fn update_rewrite_rule_set(
        &self,
        id: i64,
        new: &NewRewriteRuleSet,
    ) -> StoreResult<RewriteRuleSet> {
        check_set(new)?;
        self.get_rewrite_rule_set(id).await?;
        on_pool!(self, pool => {
            sqlx::query("UPDATE rewrite_rule_sets SET name = ?, description = ? WHERE id = ?")
                .bind(&new.name)
                .bind(&new.description)
                .bind(id)
                .execute(pool)
                .await
                .map_err(|e| map_write_error(e, "name", &new.name, "name"))?;
        });
        self.get_rewrite_rule_set(id).await
    }

    async fn delete_rewrite_rule_set(&self, id: i64) -> StoreResult<()> {
        let affected = on_pool!(self, pool => {
            sqlx::query("DELETE FROM rewrite_rule_sets WHERE id = ?")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if affected == 0 {
            return Err(StoreError::not_found("rewrite rule set", id));
        }
        Ok(())
    }

    async fn create_rewrite_rule(&self, new: &NewRewriteRule) -> StoreResult<RewriteRule> {
        check_rule(new)?;
        let id = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO rewrite_rules (set_id, match_pattern, replace_pattern, description, \
                 direction, field, priority, enabled) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(new.set_id)
            .bind(&new.match_pattern)
            .bind(&new.replace_pattern)
            .bind(&new.description)
            .bind(new.direction.as_str())
            .bind(new.field.as_str())
            .bind(new.priority)
            .bind(new.enabled)
            .execute(pool)
            .await
            .map_err(|e| rule_write_error(e, new.set_id))?
            .inserted_id()
        });
        self.get_rewrite_rule(id).await
    }

    async fn get_rewrite_rule(&self, id: i64) -> StoreResult<RewriteRule> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, RewriteRule>(concat!(rule_select!(), "WHERE id = ?"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or_else(|| StoreError::not_found("rewrite rule", id))
    }

    async fn list_rewrite_rules(
        &self,
        filter: &RewriteRuleFilter,
        page: Page,
    ) -> StoreResult<Paged<RewriteRule>> {
        let (limit, offset) = page.limit_offset()?;
        let direction = filter.direction.map(RewriteDirection::as_str);
        let field = filter.field.map(RewriteField::as_str);
        on_pool!(self, pool => {
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM rewrite_rules WHERE (? IS NULL OR set_id = ?) \
                 AND (? IS NULL OR direction = ?) AND (? IS NULL OR field = ?)",
            )
            .bind(filter.set_id).bind(filter.set_id)
            .bind(direction).bind(direction)
            .bind(field).bind(field)
            .fetch_one(pool)
            .await?;
            let items = sqlx::query_as::<_, RewriteRule>(concat!(
                rule_select!(),
                "WHERE (? IS NULL OR set_id = ?) AND (? IS NULL OR direction = ?) \
                 AND (? IS NULL OR field = ?) \
                 ORDER BY set_id, direction, field, priority, id LIMIT ? OFFSET ?"
            ))
            .bind(filter.set_id).bind(filter.set_id)
            .bind(direction).bind(direction)
            .bind(field).bind(field)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            Ok(Paged { items, total_count: total.max(0) as u64 })
        })
    }

    async fn update_rewrite_rule(&self, id: i64, new: &NewRewriteRule) -> StoreResult<RewriteRule> {
        check_rule(new)?;
        self.get_rewrite_rule(id).await?;
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE rewrite_rules SET set_id = ?, match_pattern = ?, replace_pattern = ?, \
                 description = ?, direction = ?, field = ?, priority = ?, enabled = ? WHERE id = ?",
            )
            .bind(new.set_id)
            .bind(&new.match_pattern)
            .bind(&new.replace_pattern)
            .bind(&new.description)
            .bind(new.direction.as_str())
            .bind(new.field.as_str())
            .bind(new.priority)
            .bind(new.enabled)
            .bind(id)
            .execute(pool)
            .await
            .map_err(|e| rule_write_error(e, new.set_id))?;
        });
        self.get_rewrite_rule(id).await
    }

    async fn delete_rewrite_rule(&self, id: i64) -> StoreResult<()> {
        let affected = on_pool!(self, pool => {
            sqlx::query("DELETE FROM rewrite_rules WHERE id = ?")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if affected == 0 {
            return Err(StoreError::not_found("rewrite rule", id));
        }
        Ok(())
    }

    async fn apply_rewrite_rules(
        &self,
        set_id: i64,
        direction: RewriteDirection,
        field: RewriteField,
        number: &str,
        variables: &RewriteVariables,
    ) -> StoreResult<Rewritten> {
        let compiled = self.compiled_rewrite_rule_set(set_id).await?;
        Ok(compiled.apply(direction, field, number, variables))
    }

    async fn compiled_rewrite_rule_set(&self, set_id: i64) -> StoreResult<CompiledRuleSet> {
        self.get_rewrite_rule_set(set_id).await?;
        let rules = on_pool!(self, pool => {
            sqlx::query_as::<_, RewriteRule>(concat!(
                rule_select!(),
                "WHERE set_id = ? AND enabled = 1 ORDER BY priority, id"
            ))
            .bind(set_id)
            .fetch_all(pool)
            .await?
        });
        Ok(compile_logged(set_id, &rules))
    }

    async fn rewrite_variables(
        &self,
        caller: Option<i64>,
        callee: Option<i64>,
    ) -> StoreResult<RewriteVariables> {
        use crate::SubscriberRepository;
        let mut variables = RewriteVariables::default();
        if let Some(id) = caller
            && let Some(number) = self.get_subscriber(id).await?.primary_number
        {
            variables = variables.with_caller(&number);
        }
        if let Some(id) = callee
            && let Some(number) = self.get_subscriber(id).await?.primary_number
        {
            variables = variables.with_callee(&number);
        }
        Ok(variables)
    }

    async fn subscriber_rewrite_rule_set(
        &self,
        subscriber_id: i64,
    ) -> StoreResult<Option<CompiledRuleSet>> {
        use crate::PreferenceRepository;
        let Some(preference) = self
            .effective_preference(subscriber_id, "rewrite_rule_set")
            .await?
        else {
            return Ok(None);
        };
        let Some(name) = preference.value.as_str() else {
            return Ok(None);
        };
        let Some(set) = self.find_rewrite_rule_set(name).await? else {
            tracing::warn!(rule_set = name, "rewrite_rule_set names no rule set");
            return Ok(None);
        };
        self.compiled_rewrite_rule_set(set.id).await.map(Some)
    }

    async fn apply_subscriber_rewrite_rules(
        &self,
        subscriber_id: i64,
        direction: RewriteDirection,
        field: RewriteField,
        number: &str,
    ) -> StoreResult<Rewritten> {
        let variables = self
            .rewrite_variables(Some(subscriber_id), Some(subscriber_id))
            .await?;
        Ok(
            match self.subscriber_rewrite_rule_set(subscriber_id).await? {
                Some(set) => set.apply(direction, field, number, &variables),
                None => Rewritten {
                    number: number.to_owned(),
                    rule_id: None,
                },
            },
        )
    }
}

/// Compiles stored rules, logging the ones the engine has to leave out.
fn compile_logged(set_id: i64, rules: &[RewriteRule]) -> CompiledRuleSet {
    let compiled = CompiledRuleSet::new(rules);
    for skipped in compiled.skipped() {
        tracing::warn!(
            set_id,
            rule_id = skipped.id,
            reason = %skipped.reason,
            "rewrite rule skipped"
        );
    }
    compiled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_rule(match_pattern: &str, replace_pattern: &str) -> NewRewriteRule {
        NewRewriteRule {
            set_id: 1,
            match_pattern: match_pattern.into(),
            replace_pattern: replace_pattern.into(),
            description: String::new(),
            direction: RewriteDirection::In,
            field: RewriteField::Callee,
            priority: 50,
            enabled: true,
        }
    }

    #[test]
    fn stored_rules_apply_through_the_engine() {
        let rule = RewriteRule {
            id: 1,
            set_id: 1,
            match_pattern: "^0([1-9][0-9]+)$".into(),
            replace_pattern: r"${caller_cc}\1$x\\".into(),
            description: String::new(),
            direction: RewriteDirection::In,
            field: RewriteField::Callee,
            priority: 50,
            enabled: true,
        };
        let variables = RewriteVariables {
            caller_cc: Some("43".into()),
            ..RewriteVariables::default()
        };
        let out = CompiledRuleSet::new(&[rule]).apply(
            RewriteDirection::In,
            RewriteField::Callee,
            "01234",
            &variables,
        );
        assert_eq!(out.number, r"431234$x\");
        assert_eq!(out.rule_id, Some(1));
    }

    #[test]
    fn bad_regex_names_the_field() {
        let err = compile_pattern("match_pattern", "^(unclosed").unwrap_err();
        assert!(matches!(err, StoreError::Invalid { field, .. } if field == "match_pattern"));
    }

    #[test]
    fn a_rule_may_only_refer_to_groups_its_pattern_has() {
        assert!(check_rule(&new_rule("^0([1-9])([0-9]*)$", r"43\1\2")).is_ok());
        assert!(check_rule(&new_rule("^0", r"43\0")).is_ok());
        assert!(check_rule(&new_rule("^0", "${caller_cc}$1")).is_ok());
        let err = check_rule(&new_rule("^0([1-9])$", r"\2")).unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid { field, reason }
                if field == "replace_pattern" && reason.contains("\\2")),
            "{err:?}"
        );
        let err = check_rule(&new_rule("^0$", r"\1")).unwrap_err();
        assert!(matches!(err, StoreError::Invalid { field, .. } if field == "replace_pattern"));
    }
}
