//! `/api/rewriterulesets/`, `/api/rewriterules/` and `/api/applyrewrites/`: number normalisation rules.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::ApiError;

/// Reject text longer than `max` characters with a 422 naming `field`.
pub(crate) fn check_max_chars(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::unprocessable(
            field,
            format!(
                "Validation failed. field='{field}', errors='must be at most {max} characters'"
            ),
        ));
    }
    Ok(())
}

/// Whether a rule applies to calls entering or leaving the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DirectionValue {
    /// Inbound normalisation.
    In,
    /// Outbound denormalisation.
    Out,
}

impl From<DirectionValue> for store::RewriteDirection {
    fn from(value: DirectionValue) -> Self {
        match value {
            DirectionValue::In => store::RewriteDirection::In,
            DirectionValue::Out => store::RewriteDirection::Out,
        }
    }
}

impl From<store::RewriteDirection> for DirectionValue {
    fn from(value: store::RewriteDirection) -> Self {
        match value {
            store::RewriteDirection::In => DirectionValue::In,
            store::RewriteDirection::Out => DirectionValue::Out,
        }
    }
}

/// Which party's number a rule rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldValue {
    /// The calling party.
    Caller,
    /// The called party.
    Callee,
}

impl From<FieldValue> for store::RewriteField {
    fn from(value: FieldValue) -> Self {
        match value {
            FieldValue::Caller => store::RewriteField::Caller,
            FieldValue::Callee => store::RewriteField::Callee,
        }
    }
}

impl From<store::RewriteField> for FieldValue {
    fn from(value: store::RewriteField) -> Self {
        match value {
            store::RewriteField::Caller => FieldValue::Caller,
            store::RewriteField::Callee => FieldValue::Callee,
        }
    }
}

/// Rule sets.
pub mod rule_sets {
    use serde::{Deserialize, Serialize};
    use store::prelude::*;
    use store::{NewRewriteRuleSet, RewriteRuleSet, RewriteRuleSetFilter};
    use utoipa::{IntoParams, ToSchema};

    use super::check_max_chars;
    use crate::hal;
    use crate::problem::ApiError;
    use crate::resources::ListQuery;

    /// A rule set as the API shows it.
    #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
    pub struct RewriteRuleSetView {
        /// Row id.
        pub id: i64,
        /// Unique name, referenced by the `rewrite_rule_set` preference.
        pub name: String,
        /// Free text.
        pub description: Option<String>,
        /// HAL links.
        #[serde(rename = "_links")]
        #[schema(value_type = Object)]
        pub links: serde_json::Value,
    }

    impl From<RewriteRuleSet> for RewriteRuleSetView {
        fn from(set: RewriteRuleSet) -> Self {
            Self {
                links: hal::item_links(
                    "rewriterulesets",
                    set.id,
                    &[(
                        "rewriterules",
                        format!("/api/rewriterules/?set_id={}", set.id),
                    )],
                ),
                id: set.id,
                name: set.name,
                description: set.description,
            }
        }
    }

    /// Body of POST and PUT.
    #[derive(Debug, Clone, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RewriteRuleSetInput {
        /// Unique name (1–64 characters).
        #[schema(min_length = 1, max_length = 64)]
        pub name: String,
        /// Free text (≤255 characters).
        #[serde(default)]
        #[schema(max_length = 255)]
        pub description: Option<String>,
    }

    impl RewriteRuleSetInput {
        fn into_new(self) -> Result<NewRewriteRuleSet, ApiError> {
            check_max_chars("name", &self.name, 64)?;
            if let Some(description) = &self.description {
                check_max_chars("description", description, 255)?;
            }
            Ok(NewRewriteRuleSet {
                name: self.name,
                description: self.description,
            })
        }
    }

    /// Query parameters of the collection.
    #[derive(Debug, Clone, Deserialize, IntoParams)]
    #[into_params(parameter_in = Query)]
    #[serde(deny_unknown_fields)]
    pub struct RewriteRuleSetQuery {
        /// Page number (from 1).
        #[param(minimum = 1, maximum = 1000000)]
        pub page: Option<u32>,
        /// Items per page (1–1000).
        #[param(minimum = 1, maximum = 1000)]
        pub rows: Option<u32>,
        /// Pattern on the name.
        pub name: Option<String>,
    }

    impl ListQuery for RewriteRuleSetQuery {
        type Filter = RewriteRuleSetFilter;
        fn paging(&self) -> (Option<u32>, Option<u32>) {
            (self.page, self.rows)
        }
        fn filter(self) -> RewriteRuleSetFilter {
            RewriteRuleSetFilter { name: self.name }
        }
    }

    hal_collection!(
        RewriteRuleSetCollection,
        RewriteRuleSetEmbedded,
        RewriteRuleSetView,
        "ngcp:rewriterulesets"
    );

    crud_handlers!(
        collection = "rewriterulesets",
        tag = "rewriterulesets",
        collection_path = "/api/rewriterulesets/",
        item_path = "/api/rewriterulesets/{id}",
        view = RewriteRuleSetView,
        page = RewriteRuleSetCollection,
        input = RewriteRuleSetInput,
        query = RewriteRuleSetQuery,
        store = (
            list_rewrite_rule_sets,
            create_rewrite_rule_set,
            get_rewrite_rule_set,
            update_rewrite_rule_set,
            delete_rewrite_rule_set
        ),
        handlers = (
            list_rule_sets,
            create_rule_set,
            get_rule_set,
            replace_rule_set,
            patch_rule_set,
            delete_rule_set
        )
    );
}

/// Rules.
pub mod rules {
    use serde::{Deserialize, Serialize};
    use store::prelude::*;
    use store::{NewRewriteRule, RewriteRule, RewriteRuleFilter};
    use utoipa::{IntoParams, ToSchema};

    use super::{DirectionValue, FieldValue, check_max_chars};
    use crate::hal;
    use crate::problem::ApiError;
    use crate::resources::ListQuery;

    /// A rule as the API shows it.
    #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
    pub struct RewriteRuleView {
        /// Row id.
        pub id: i64,
        /// Owning set.
        pub set_id: i64,
        /// Regular expression the number must match.
        pub match_pattern: String,
        /// Replacement (`\1` groups, `${caller_cc}` variables).
        pub replace_pattern: String,
        /// Free text.
        pub description: String,
        /// `in` or `out`.
        pub direction: DirectionValue,
        /// `caller` or `callee`.
        pub field: FieldValue,
        /// Lower runs first.
        pub priority: i64,
        /// Disabled rules are skipped.
        pub enabled: bool,
        /// HAL links.
        #[serde(rename = "_links")]
        #[schema(value_type = Object)]
        pub links: serde_json::Value,
    }

    impl From<RewriteRule> for RewriteRuleView {
        fn from(rule: RewriteRule) -> Self {
            Self {
                links: hal::item_links(
                    "rewriterules",
                    rule.id,
                    &[(
                        "rewriterulesets",
                        format!("/api/rewriterulesets/{}", rule.set_id),
                    )],
                ),
                id: rule.id,
                set_id: rule.set_id,
                match_pattern: rule.match_pattern,
                replace_pattern: rule.replace_pattern,
                description: rule.description,
                direction: rule.direction.into(),
                field: rule.field.into(),
                priority: rule.priority,
                enabled: rule.enabled,
            }
        }
    }

    fn default_priority() -> i64 {
        50
    }

    fn default_true() -> bool {
        true
    }

    /// Body of POST and PUT.
    #[derive(Debug, Clone, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RewriteRuleInput {
        /// Owning set.
        pub set_id: i64,
        /// Regular expression (≤255 characters).
        #[schema(max_length = 255)]
        pub match_pattern: String,
        /// Replacement (≤255 characters).
        #[schema(max_length = 255)]
        pub replace_pattern: String,
        /// Free text (≤255 characters).
        #[schema(max_length = 255)]
        pub description: String,
        /// `in` or `out`.
        pub direction: DirectionValue,
        /// `caller` or `callee`.
        pub field: FieldValue,
        /// Lower runs first (default 50).
        #[serde(default = "default_priority")]
        pub priority: i64,
        /// Default true.
        #[serde(default = "default_true")]
        pub enabled: bool,
    }

    impl RewriteRuleInput {
        fn into_new(self) -> Result<NewRewriteRule, ApiError> {
            check_max_chars("match_pattern", &self.match_pattern, 255)?;
            check_max_chars("replace_pattern", &self.replace_pattern, 255)?;
            check_max_chars("description", &self.description, 255)?;
            Ok(NewRewriteRule {
                set_id: self.set_id,
                match_pattern: self.match_pattern,
                replace_pattern: self.replace_pattern,
                description: self.description,
                direction: self.direction.into(),
                field: self.field.into(),
                priority: self.priority,
                enabled: self.enabled,
            })
        }
    }

    /// Query parameters of the collection.
    #[derive(Debug, Clone, Deserialize, IntoParams)]
    #[into_params(parameter_in = Query)]
    #[serde(deny_unknown_fields)]
    pub struct RewriteRuleQuery {
        /// Page number (from 1).
        #[param(minimum = 1, maximum = 1000000)]
        pub page: Option<u32>,
        /// Items per page (1–1000).
        #[param(minimum = 1, maximum = 1000)]
        pub rows: Option<u32>,
        /// Owning set.
        pub set_id: Option<i64>,
        /// `in` or `out`.
        #[param(inline)]
        pub direction: Option<DirectionValue>,
        /// `caller` or `callee`.
        #[param(inline)]
        pub field: Option<FieldValue>,
    }

    impl ListQuery for RewriteRuleQuery {
        type Filter = RewriteRuleFilter;
        fn paging(&self) -> (Option<u32>, Option<u32>) {
            (self.page, self.rows)
        }
        fn filter(self) -> RewriteRuleFilter {
            RewriteRuleFilter {
                set_id: self.set_id,
                direction: self.direction.map(Into::into),
                field: self.field.map(Into::into),
            }
        }
    }

    hal_collection!(
        RewriteRuleCollection,
        RewriteRuleEmbedded,
        RewriteRuleView,
        "ngcp:rewriterules"
    );

    crud_handlers!(
        collection = "rewriterules",
        tag = "rewriterules",
        collection_path = "/api/rewriterules/",
        item_path = "/api/rewriterules/{id}",
        view = RewriteRuleView,
        page = RewriteRuleCollection,
        input = RewriteRuleInput,
        query = RewriteRuleQuery,
        store = (
            list_rewrite_rules,
            create_rewrite_rule,
            get_rewrite_rule,
            update_rewrite_rule,
            delete_rewrite_rule
        ),
        handlers = (
            list_rules,
            create_rule,
            get_rule,
            replace_rule,
            patch_rule,
            delete_rule
        )
    );
}

/// `POST /api/applyrewrites/`: what a number becomes through a subscriber's rewrite rules (a dry
/// run of what the proxy does on a call), in ngcp-panel's shape.
pub mod apply {
    use axum::Json;
    use axum::extract::State;
    use serde::{Deserialize, Serialize};
    use store::prelude::*;
    use store::{RewriteDirection, RewriteField};
    use utoipa::ToSchema;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;

    use super::check_max_chars;
    use crate::AppState;
    use crate::extract::JsonBody;
    use crate::problem::ApiResult;
    use crate::resources::store_error;

    /// Which of the four rule lists runs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ApplyDirection {
        /// Caller number on the way in (normalisation).
        CallerIn,
        /// Callee number on the way in.
        CalleeIn,
        /// Caller number on the way out (the destination's format).
        CallerOut,
        /// Callee number on the way out.
        CalleeOut,
    }

    impl ApplyDirection {
        fn split(self) -> (RewriteDirection, RewriteField) {
            match self {
                ApplyDirection::CallerIn => (RewriteDirection::In, RewriteField::Caller),
                ApplyDirection::CalleeIn => (RewriteDirection::In, RewriteField::Callee),
                ApplyDirection::CallerOut => (RewriteDirection::Out, RewriteField::Caller),
                ApplyDirection::CalleeOut => (RewriteDirection::Out, RewriteField::Callee),
            }
        }
    }

    /// Body of the request.
    #[derive(Debug, Clone, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ApplyRewritesInput {
        /// The subscriber whose effective `rewrite_rule_set` applies; its primary number fills
        /// the `${caller_cc}`-style variables.
        #[schema(minimum = 1)]
        pub subscriber_id: i64,
        /// `caller_in`, `callee_in`, `caller_out` or `callee_out`.
        pub direction: ApplyDirection,
        /// The number to rewrite (≤255 characters).
        #[schema(max_length = 255)]
        pub number: String,
    }

    /// The answer.
    #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
    pub struct ApplyRewritesResult {
        /// The number after the first matching rule (unchanged when none matched).
        pub result: String,
        /// The rule that matched, if any.
        pub rule_id: Option<i64>,
    }

    #[utoipa::path(post, path = "/api/applyrewrites/", tag = "rewriterules",
        request_body = ApplyRewritesInput,
        responses((status = 200, description = "The rewritten number", body = ApplyRewritesResult)))]
    async fn apply_rewrites(
        State(state): State<AppState>,
        JsonBody(input): JsonBody<ApplyRewritesInput>,
    ) -> ApiResult<Json<ApplyRewritesResult>> {
        check_max_chars("number", &input.number, 255)?;
        let (direction, field) = input.direction.split();
        let rewritten = state
            .store
            .apply_subscriber_rewrite_rules(input.subscriber_id, direction, field, &input.number)
            .await
            .map_err(store_error)?;
        Ok(Json(ApplyRewritesResult {
            result: rewritten.number,
            rule_id: rewritten.rule_id,
        }))
    }

    pub(crate) fn routes() -> OpenApiRouter<AppState> {
        OpenApiRouter::new().routes(routes!(apply_rewrites))
    }
}
