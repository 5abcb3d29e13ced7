//! `/api/subscribers/`: SIP subscribers with their primary and alias numbers.
//!
//! Passwords are write-only: the store keeps HA1 values and an argon2 hash, and no view here
//! has a field that could carry either back.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::prelude::*;
use store::{
    AliasNumber, E164Number, NewSubscriber, Number, Subscriber, SubscriberFilter, SubscriberStatus,
    SubscriberUpdate,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store_error;
use crate::AppState;
use crate::extract::{ItemId, JsonBody, JsonPatchBody, QueryParams, from_document};
use crate::hal::{self, Paging};
use crate::problem::{ApiError, ApiResult};

const COLLECTION: &str = "subscribers";
/// Longest free-text value accepted (display name, e-mail, external id, passwords).
const MAX_TEXT: usize = 255;

/// Subscriber status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatusValue {
    /// May register and call.
    Active,
    /// Calls blocked.
    Locked,
    /// Out of service.
    Terminated,
}

impl From<SubscriberStatusValue> for SubscriberStatus {
    fn from(value: SubscriberStatusValue) -> Self {
        match value {
            SubscriberStatusValue::Active => SubscriberStatus::Active,
            SubscriberStatusValue::Locked => SubscriberStatus::Locked,
            SubscriberStatusValue::Terminated => SubscriberStatus::Terminated,
        }
    }
}

impl From<SubscriberStatus> for SubscriberStatusValue {
    fn from(value: SubscriberStatus) -> Self {
        match value {
            SubscriberStatus::Active => SubscriberStatusValue::Active,
            SubscriberStatus::Locked => SubscriberStatusValue::Locked,
            SubscriberStatus::Terminated => SubscriberStatusValue::Terminated,
        }
    }
}

/// A number inside a subscriber view.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NumberPart {
    /// Country code.
    pub cc: String,
    /// Area code.
    pub ac: String,
    /// Subscriber number.
    pub sn: String,
    /// Device id rather than a dialable number.
    pub is_devid: bool,
    /// Id of the number in `/api/numbers/`.
    pub number_id: i64,
}

impl From<Number> for NumberPart {
    fn from(number: Number) -> Self {
        Self {
            cc: number.cc,
            ac: number.ac,
            sn: number.sn,
            is_devid: number.is_devid,
            number_id: number.id,
        }
    }
}

/// A subscriber as the API shows it (never with a password or HA1).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriberView {
    /// Row id.
    pub id: i64,
    /// Stable UUID.
    pub uuid: String,
    /// Owning customer.
    pub customer_id: i64,
    /// Domain id.
    pub domain_id: i64,
    /// Domain name.
    pub domain: String,
    /// SIP user part.
    pub username: String,
    /// Web/API login.
    pub webusername: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Contact e-mail.
    pub email: Option<String>,
    /// Operator's own reference.
    pub external_id: Option<String>,
    /// Status.
    pub status: SubscriberStatusValue,
    /// Subscriber-admin role.
    pub administrative: bool,
    /// Primary number.
    pub primary_number: Option<NumberPart>,
    /// Alias numbers.
    pub alias_numbers: Vec<NumberPart>,
    /// HAL links.
    #[serde(rename = "_links")]
    #[schema(value_type = Object)]
    pub links: Value,
}

impl From<Subscriber> for SubscriberView {
    fn from(subscriber: Subscriber) -> Self {
        let id = subscriber.id;
        Self {
            links: hal::item_links(
                COLLECTION,
                id,
                &[
                    (
                        "subscriberpreferences",
                        format!("/api/subscriberpreferences/{id}"),
                    ),
                    ("callforwards", format!("/api/callforwards/{id}")),
                    (
                        "customers",
                        format!("/api/customers/{}", subscriber.customer_id),
                    ),
                    ("domains", format!("/api/domains/{}", subscriber.domain_id)),
                ],
            ),
            id,
            uuid: subscriber.uuid,
            customer_id: subscriber.customer_id,
            domain_id: subscriber.domain_id,
            domain: subscriber.domain,
            username: subscriber.username,
            webusername: subscriber.webusername,
            display_name: subscriber.display_name,
            email: subscriber.email,
            external_id: subscriber.external_id,
            status: subscriber.status.into(),
            administrative: subscriber.administrative,
            primary_number: subscriber.primary_number.map(NumberPart::from),
            alias_numbers: subscriber
                .alias_numbers
                .into_iter()
                .map(NumberPart::from)
                .collect(),
        }
    }
}

/// A primary number as entered.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrimaryNumberInput {
    /// Country code, 1–4 digits, not 0.
    #[schema(max_length = 4)]
    pub cc: String,
    /// Area code, 0–7 digits.
    #[serde(default)]
    #[schema(max_length = 7)]
    pub ac: String,
    /// Subscriber number, 1–31 digits.
    #[schema(max_length = 31)]
    pub sn: String,
}

/// An alias number as entered.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasNumberInput {
    /// Country code, 1–4 digits, not 0.
    #[schema(max_length = 4)]
    pub cc: String,
    /// Area code, 0–7 digits.
    #[serde(default)]
    #[schema(max_length = 7)]
    pub ac: String,
    /// Subscriber number, 1–31 digits.
    #[schema(max_length = 31)]
    pub sn: String,
    /// Device id rather than a dialable number.
    #[serde(default)]
    pub is_devid: bool,
}

/// Body of POST and PUT. Give the domain by `domain` (name) or `domain_id`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberInput {
    /// Owning customer (cannot change later).
    pub customer_id: i64,
    /// Domain name (alternative to `domain_id`).
    #[serde(default)]
    #[schema(max_length = 127)]
    pub domain: Option<String>,
    /// Domain id (alternative to `domain`).
    #[serde(default)]
    pub domain_id: Option<i64>,
    /// SIP user part: `A-Z a-z 0-9 + = , ; _ . ~ ' ( ) ! * -`, no leading, trailing or doubled dot.
    #[schema(min_length = 1, max_length = 127)]
    pub username: String,
    /// SIP digest secret. Required by POST; PUT/PATCH keep the stored one when omitted.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub password: Option<String>,
    /// Web/API login.
    #[serde(default)]
    #[schema(max_length = 127)]
    pub webusername: Option<String>,
    /// Web/API password.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub webpassword: Option<String>,
    /// Display name (≤128).
    #[serde(default)]
    #[schema(max_length = 128)]
    pub display_name: Option<String>,
    /// Contact e-mail.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub email: Option<String>,
    /// Operator's own reference.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub external_id: Option<String>,
    /// Status (default `active`).
    #[serde(default)]
    pub status: Option<SubscriberStatusValue>,
    /// Subscriber-admin role (default false).
    #[serde(default)]
    pub administrative: bool,
    /// Primary number.
    #[serde(default)]
    pub primary_number: Option<PrimaryNumberInput>,
    /// Alias numbers; the stored list becomes exactly this.
    #[serde(default)]
    pub alias_numbers: Vec<AliasNumberInput>,
}

fn check_length(field: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(text) if text.chars().count() > max => Err(ApiError::unprocessable(
            field,
            format!(
                "Validation failed. field='{field}', errors='must be at most {max} characters'"
            ),
        )),
        _ => Ok(()),
    }
}

/// The fields both POST and PUT hand to the store, after the API-side checks.
struct Checked {
    domain_id: i64,
    primary_number: Option<E164Number>,
    alias_numbers: Vec<AliasNumber>,
    status: SubscriberStatus,
}

async fn check_input(state: &AppState, input: &SubscriberInput) -> Result<Checked, ApiError> {
    check_length("password", input.password.as_deref(), MAX_TEXT)?;
    check_length("webpassword", input.webpassword.as_deref(), MAX_TEXT)?;
    check_length("webusername", input.webusername.as_deref(), 127)?;
    check_length("display_name", input.display_name.as_deref(), 128)?;
    check_length("email", input.email.as_deref(), MAX_TEXT)?;
    check_length("external_id", input.external_id.as_deref(), MAX_TEXT)?;
    let domain_id = match (&input.domain, input.domain_id) {
        (_, Some(domain_id)) => {
            let domain = state
                .store
                .get_domain(domain_id)
                .await
                .map_err(|error| match error {
                    store::StoreError::NotFound { .. } => ApiError::unprocessable(
                        "domain_id",
                        format!("Invalid 'domain_id', doesn't exist: {domain_id}"),
                    ),
                    other => store_error(other),
                })?;
            if let Some(name) = &input.domain
                && !name.eq_ignore_ascii_case(&domain.domain)
            {
                return Err(ApiError::unprocessable(
                    "domain",
                    "'domain' and 'domain_id' name different domains.",
                ));
            }
            domain_id
        }
        (Some(name), None) => {
            check_length("domain", Some(name), 127)?;
            state
                .store
                .find_domain_by_name(name)
                .await
                .map_err(store_error)?
                .ok_or_else(|| {
                    ApiError::unprocessable("domain", "Invalid 'domain', doesn't exist.")
                })?
                .id
        }
        (None, None) => {
            return Err(ApiError::unprocessable(
                "domain",
                "Missing required field 'domain' (or 'domain_id').",
            ));
        }
    };
    Ok(Checked {
        domain_id,
        primary_number: input
            .primary_number
            .as_ref()
            .map(|number| E164Number::new(&number.cc, &number.ac, &number.sn)),
        alias_numbers: input
            .alias_numbers
            .iter()
            .map(|alias| AliasNumber {
                cc: alias.cc.clone(),
                ac: alias.ac.clone(),
                sn: alias.sn.clone(),
                is_devid: alias.is_devid,
            })
            .collect(),
        status: input.status.map(Into::into).unwrap_or_default(),
    })
}

/// Query parameters of `GET /api/subscribers/`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SubscriberQuery {
    /// Page number (from 1).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// Items per page (1–1000).
    #[param(minimum = 1, maximum = 1000)]
    pub rows: Option<u32>,
    /// Pattern on `username` (`*` any run, `?` one character).
    pub username: Option<String>,
    /// Exact web login.
    pub webusername: Option<String>,
    /// Exact domain name.
    pub domain: Option<String>,
    /// Exact customer id.
    pub customer_id: Option<i64>,
    /// Exact status.
    #[param(inline)]
    pub status: Option<SubscriberStatusValue>,
    /// Exact external id.
    pub external_id: Option<String>,
    /// Any of the subscriber's numbers (E.164 digits).
    pub number: Option<String>,
    /// The primary number (E.164 digits).
    pub primary_number: Option<String>,
    /// One of the alias numbers (E.164 digits).
    pub alias: Option<String>,
    /// Pattern on `display_name`.
    pub display_name: Option<String>,
}

hal_collection!(
    SubscriberCollection,
    SubscriberEmbedded,
    SubscriberView,
    "ngcp:subscribers"
);

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_subscribers, create_subscriber))
        .routes(routes!(
            get_subscriber,
            replace_subscriber,
            patch_subscriber,
            delete_subscriber
        ))
}

/// List subscribers.
#[utoipa::path(get, path = "/api/subscribers/", tag = "subscribers", params(SubscriberQuery),
    responses((status = 200, description = "A page of subscribers", body = SubscriberCollection, content_type = "application/hal+json")))]
async fn list_subscribers(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<SubscriberQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let paging = Paging::from_query(query.page, query.rows)?;
    let filter = SubscriberFilter {
        username: query.username,
        webusername: query.webusername,
        domain: query.domain,
        domain_id: None,
        customer_id: query.customer_id,
        status: query.status.map(Into::into),
        external_id: query.external_id,
        number: query.number,
        primary_number: query.primary_number,
        alias: query.alias,
        display_name: query.display_name,
    };
    let page = state
        .store
        .list_subscribers(&filter, paging.store_page())
        .await
        .map_err(store_error)?;
    let items: Vec<SubscriberView> = page.items.into_iter().map(SubscriberView::from).collect();
    let body = hal::collection_body(
        COLLECTION,
        raw.as_deref(),
        paging,
        page.total_count,
        &items,
        |item| item.id,
    )?;
    Ok(hal::hal_response(&body))
}

/// Create a subscriber.
#[utoipa::path(post, path = "/api/subscribers/", tag = "subscribers",
    request_body(content = SubscriberInput, content_type = "application/json"),
    responses((status = 201, description = "Created; `Location` names the new item",
        headers(("Location" = String, description = "URI of the new subscriber")))))]
async fn create_subscriber(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<SubscriberInput>,
) -> ApiResult<Response> {
    let checked = check_input(&state, &input).await?;
    let Some(password) = input.password else {
        return Err(ApiError::unprocessable(
            "password",
            "Missing required field 'password'.",
        ));
    };
    let new = NewSubscriber {
        customer_id: input.customer_id,
        domain_id: checked.domain_id,
        username: input.username,
        password,
        webusername: input.webusername,
        webpassword: input.webpassword,
        display_name: input.display_name,
        email: input.email,
        external_id: input.external_id,
        status: checked.status,
        administrative: input.administrative,
        primary_number: checked.primary_number,
        alias_numbers: checked.alias_numbers,
    };
    let subscriber = state
        .store
        .create_subscriber(&new)
        .await
        .map_err(store_error)?;
    Ok(hal::created(COLLECTION, subscriber.id))
}

/// One subscriber.
#[utoipa::path(get, path = "/api/subscribers/{id}", tag = "subscribers",
    params(("id" = i64, Path, minimum = 1, description = "Subscriber id")),
    responses((status = 200, description = "The subscriber", body = SubscriberView, content_type = "application/hal+json")))]
async fn get_subscriber(State(state): State<AppState>, ItemId(id): ItemId) -> ApiResult<Response> {
    let subscriber = state.store.get_subscriber(id).await.map_err(store_error)?;
    Ok(hal::hal_response(&SubscriberView::from(subscriber)))
}

async fn store_update(
    state: &AppState,
    id: i64,
    input: SubscriberInput,
) -> Result<SubscriberView, ApiError> {
    // 404 before validation, so a missing item is reported as such.
    state.store.get_subscriber(id).await.map_err(store_error)?;
    let checked = check_input(state, &input).await?;
    let update = SubscriberUpdate {
        customer_id: input.customer_id,
        domain_id: checked.domain_id,
        username: input.username,
        password: input.password,
        webusername: input.webusername,
        webpassword: input.webpassword,
        display_name: input.display_name,
        email: input.email,
        external_id: input.external_id,
        status: checked.status,
        administrative: input.administrative,
        primary_number: checked.primary_number,
        alias_numbers: checked.alias_numbers,
    };
    state
        .store
        .update_subscriber(id, &update)
        .await
        .map(SubscriberView::from)
        .map_err(store_error)
}

/// Replace a subscriber (omitted passwords are kept).
#[utoipa::path(put, path = "/api/subscribers/{id}", tag = "subscribers",
    params(("id" = i64, Path, minimum = 1, description = "Subscriber id")),
    request_body(content = SubscriberInput, content_type = "application/json"),
    responses((status = 204, description = "Replaced"),
        (status = 200, description = "Replaced (with `Prefer: return=representation`)", body = SubscriberView, content_type = "application/hal+json")))]
async fn replace_subscriber(
    State(state): State<AppState>,
    ItemId(id): ItemId,
    headers: HeaderMap,
    JsonBody(input): JsonBody<SubscriberInput>,
) -> ApiResult<Response> {
    let view = store_update(&state, id, input).await?;
    Ok(hal::updated(&headers, &view))
}

/// Change a subscriber with an RFC 6902 JSON Patch applied to its GET representation.
#[utoipa::path(patch, path = "/api/subscribers/{id}", tag = "subscribers",
    params(("id" = i64, Path, minimum = 1, description = "Subscriber id")),
    request_body(content = Vec<crate::extract::PatchOperation>, content_type = "application/json-patch+json"),
    responses((status = 204, description = "Changed"),
        (status = 200, description = "Changed (with `Prefer: return=representation`)", body = SubscriberView, content_type = "application/hal+json")))]
async fn patch_subscriber(
    State(state): State<AppState>,
    ItemId(id): ItemId,
    headers: HeaderMap,
    JsonPatchBody(patch): JsonPatchBody,
) -> ApiResult<Response> {
    let current = state.store.get_subscriber(id).await.map_err(store_error)?;
    let representation =
        serde_json::to_value(SubscriberView::from(current)).map_err(ApiError::internal)?;
    let mut document = hal::apply_patch(representation.clone(), &patch, &["id", "uuid"])?;
    if let Value::Object(map) = &mut document {
        // The view carries the domain twice; keep whichever the patch changed.
        if map.get("domain") != representation.get("domain") {
            map.remove("domain_id");
        } else {
            map.remove("domain");
        }
        // `number_id` is read-only output inside the number objects.
        if let Some(Value::Object(primary)) = map.get_mut("primary_number") {
            primary.remove("number_id");
            primary.remove("is_devid");
        }
        if let Some(Value::Array(aliases)) = map.get_mut("alias_numbers") {
            for alias in aliases.iter_mut() {
                if let Value::Object(alias) = alias {
                    alias.remove("number_id");
                }
            }
        }
    }
    let view = store_update(&state, id, from_document(document)?).await?;
    Ok(hal::updated(&headers, &view))
}

/// Delete a subscriber with its numbers, preferences and call forwards.
#[utoipa::path(delete, path = "/api/subscribers/{id}", tag = "subscribers",
    params(("id" = i64, Path, minimum = 1, description = "Subscriber id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_subscriber(
    State(state): State<AppState>,
    ItemId(id): ItemId,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_subscriber(id)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}
