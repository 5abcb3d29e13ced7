//! Rewrite rule sets: ordered regex substitutions that normalise caller and callee numbers on
//! the way in and out (the ngcp dialplan, Kamailio `dialplan` module semantics).

use serde::{Deserialize, Serialize};

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
    /// Replacement; `\1`…`\9` refer to capture groups.
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
    /// Replacement.
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
    /// Creates a rule after checking the pattern compiles.
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
    /// Applies the enabled rules of one list (set × direction × field) in priority order; each
    /// matching rule rewrites the number and the next rule sees the result (`applyrewrites`).
    fn apply_rewrite_rules(
        &self,
        set_id: i64,
        direction: RewriteDirection,
        field: RewriteField,
        number: &str,
    ) -> impl Future<Output = StoreResult<String>> + Send;
}

/// Compiles a match pattern, naming the field on failure.
pub(crate) fn compile_pattern(field: &str, pattern: &str) -> StoreResult<regex::Regex> {
    if pattern.is_empty() || pattern.len() > 255 {
        return Err(StoreError::invalid(field, "must be 1 to 255 characters"));
    }
    regex::Regex::new(pattern)
        .map_err(|e| StoreError::invalid(field, format!("not a valid regular expression: {e}")))
}

/// Turns the ngcp/PCRE replacement syntax (`\1`) into the `regex` crate's (`${1}`), escaping
/// literal `$` so it is not read as a group reference.
pub(crate) fn translate_replacement(replace: &str) -> String {
    let mut out = String::with_capacity(replace.len() + 8);
    let mut chars = replace.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str("${");
                    out.push(d);
                    out.push('}');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            other => out.push(other),
        }
    }
    out
}

fn check_rule(new: &NewRewriteRule) -> StoreResult<()> {
    compile_pattern("match_pattern", &new.match_pattern)?;
    check_text("replace_pattern", &new.replace_pattern, 0, 255)?;
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
    ) -> StoreResult<String> {
        self.get_rewrite_rule_set(set_id).await?;
        let rules = on_pool!(self, pool => {
            sqlx::query_as::<_, RewriteRule>(concat!(
                rule_select!(),
                "WHERE set_id = ? AND direction = ? AND field = ? AND enabled = 1 \
                 ORDER BY priority, id"
            ))
            .bind(set_id)
            .bind(direction.as_str())
            .bind(field.as_str())
            .fetch_all(pool)
            .await?
        });
        let mut current = number.to_owned();
        for rule in rules {
            let pattern = compile_pattern("match_pattern", &rule.match_pattern)?;
            let replacement = translate_replacement(&rule.replace_pattern);
            if pattern.is_match(&current) {
                current = pattern.replace(&current, replacement.as_str()).into_owned();
            }
        }
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_syntax_is_translated() {
        assert_eq!(translate_replacement(r"43\1"), "43${1}");
        assert_eq!(translate_replacement(r"$x\\"), "$$x\\");
        let re = compile_pattern("match_pattern", "^0([1-9][0-9]+)$").unwrap();
        assert_eq!(
            re.replace("01234", translate_replacement(r"43\1").as_str()),
            "431234"
        );
    }

    #[test]
    fn bad_regex_names_the_field() {
        let err = compile_pattern("match_pattern", "^(unclosed").unwrap_err();
        assert!(matches!(err, StoreError::Invalid { field, .. } if field == "match_pattern"));
    }
}
