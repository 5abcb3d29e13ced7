//! `/api/numbers/`: every subscriber number; PUT/PATCH move an alias to another subscriber.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use store::prelude::*;
use store::{Number, NumberFilter, NumberUpdate};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store_error;
use crate::AppState;
use crate::extract::{ItemId, JsonBody, JsonPatchBody, QueryParams, from_document};
use crate::hal::{self, Paging};
use crate::problem::{ApiError, ApiResult};

const COLLECTION: &str = "numbers";

/// A number as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NumberView {
    /// Row id.
    pub id: i64,
    /// Country code.
    pub cc: String,
    /// Area code.
    pub ac: String,
    /// Subscriber number.
    pub sn: String,
    /// True for a subscriber's primary number.
    pub is_primary: bool,
    /// Device id rather than a dialable number.
    pub is_devid: bool,
    /// Owning subscriber.
    pub subscriber_id: i64,
    /// HAL links.
    #[serde(rename = "_links")]
    #[schema(value_type = Object)]
    pub links: serde_json::Value,
}

impl From<Number> for NumberView {
    fn from(number: Number) -> Self {
        Self {
            links: hal::item_links(
                COLLECTION,
                number.id,
                &[(
                    "subscribers",
                    format!("/api/subscribers/{}", number.subscriber_id),
                )],
            ),
            id: number.id,
            cc: number.cc,
            ac: number.ac,
            sn: number.sn,
            is_primary: number.is_primary,
            is_devid: number.is_devid,
            subscriber_id: number.subscriber_id,
        }
    }
}

/// Body of PUT: `subscriber_id` and `is_devid` may change; `cc`, `ac`, `sn` and `is_primary`
/// may be repeated unchanged (as in a GET representation) but not changed here.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberInput {
    /// New owner (a primary number cannot move).
    pub subscriber_id: i64,
    /// Device id flag (default false).
    #[serde(default)]
    pub is_devid: bool,
    /// Must equal the stored value.
    #[serde(default)]
    #[schema(max_length = 4)]
    pub cc: Option<String>,
    /// Must equal the stored value.
    #[serde(default)]
    #[schema(max_length = 7)]
    pub ac: Option<String>,
    /// Must equal the stored value.
    #[serde(default)]
    #[schema(max_length = 31)]
    pub sn: Option<String>,
    /// Must equal the stored value.
    #[serde(default)]
    pub is_primary: Option<bool>,
}

/// Number kind filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NumberType {
    /// Primary numbers only.
    Primary,
    /// Alias numbers only.
    Alias,
}

/// Query parameters of `GET /api/numbers/`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NumberQuery {
    /// Page number (from 1).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// Items per page (1–1000).
    #[param(minimum = 1, maximum = 1000)]
    pub rows: Option<u32>,
    /// Owning subscriber.
    pub subscriber_id: Option<i64>,
    /// Customer of the owning subscriber.
    pub customer_id: Option<i64>,
    /// Exact country code.
    pub cc: Option<String>,
    /// Exact area code.
    pub ac: Option<String>,
    /// Exact subscriber number.
    pub sn: Option<String>,
    /// `primary` or `alias`.
    #[serde(rename = "type")]
    #[param(inline, rename = "type")]
    pub number_type: Option<NumberType>,
}

hal_collection!(NumberCollection, NumberEmbedded, NumberView, "ngcp:numbers");

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_numbers))
        .routes(routes!(get_number, replace_number, patch_number))
}

/// List numbers.
#[utoipa::path(get, path = "/api/numbers/", tag = "numbers", params(NumberQuery),
    responses((status = 200, description = "A page of numbers", body = NumberCollection, content_type = "application/hal+json")))]
async fn list_numbers(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<NumberQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let paging = Paging::from_query(query.page, query.rows)?;
    let filter = NumberFilter {
        subscriber_id: query.subscriber_id,
        customer_id: query.customer_id,
        cc: query.cc,
        ac: query.ac,
        sn: query.sn,
        is_primary: query.number_type.map(|kind| kind == NumberType::Primary),
    };
    let page = state
        .store
        .list_numbers(&filter, paging.store_page())
        .await
        .map_err(store_error)?;
    let items: Vec<NumberView> = page.items.into_iter().map(NumberView::from).collect();
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

/// One number.
#[utoipa::path(get, path = "/api/numbers/{id}", tag = "numbers",
    params(("id" = i64, Path, minimum = 1, description = "Number id")),
    responses((status = 200, description = "The number", body = NumberView, content_type = "application/hal+json")))]
async fn get_number(State(state): State<AppState>, ItemId(id): ItemId) -> ApiResult<Response> {
    let number = state.store.get_number(id).await.map_err(store_error)?;
    Ok(hal::hal_response(&NumberView::from(number)))
}

async fn store_update(
    state: &AppState,
    id: i64,
    input: NumberInput,
) -> Result<NumberView, ApiError> {
    let current = state.store.get_number(id).await.map_err(store_error)?;
    let unchanged = [
        ("cc", input.cc.as_deref().is_none_or(|cc| cc == current.cc)),
        ("ac", input.ac.as_deref().is_none_or(|ac| ac == current.ac)),
        ("sn", input.sn.as_deref().is_none_or(|sn| sn == current.sn)),
        (
            "is_primary",
            input
                .is_primary
                .is_none_or(|primary| primary == current.is_primary),
        ),
    ];
    if let Some((field, _)) = unchanged.iter().find(|(_, same)| !same) {
        return Err(ApiError::unprocessable(
            *field,
            format!(
                "Field '{field}' is not allowed to be updated via this API endpoint, use /api/subscribers/{} instead.",
                current.subscriber_id
            ),
        ));
    }
    state
        .store
        .update_number(
            id,
            &NumberUpdate {
                subscriber_id: input.subscriber_id,
                is_devid: input.is_devid,
            },
        )
        .await
        .map(NumberView::from)
        .map_err(store_error)
}

/// Move a number to another subscriber or set its device-id flag.
#[utoipa::path(put, path = "/api/numbers/{id}", tag = "numbers",
    params(("id" = i64, Path, minimum = 1, description = "Number id")),
    request_body(content = NumberInput, content_type = "application/json"),
    responses((status = 204, description = "Replaced"),
        (status = 200, description = "Replaced (with `Prefer: return=representation`)", body = NumberView, content_type = "application/hal+json")))]
async fn replace_number(
    State(state): State<AppState>,
    ItemId(id): ItemId,
    headers: HeaderMap,
    JsonBody(input): JsonBody<NumberInput>,
) -> ApiResult<Response> {
    let view = store_update(&state, id, input).await?;
    Ok(hal::updated(&headers, &view))
}

/// Change a number with an RFC 6902 JSON Patch applied to its GET representation.
#[utoipa::path(patch, path = "/api/numbers/{id}", tag = "numbers",
    params(("id" = i64, Path, minimum = 1, description = "Number id")),
    request_body(content = Vec<crate::extract::PatchOperation>, content_type = "application/json-patch+json"),
    responses((status = 204, description = "Changed"),
        (status = 200, description = "Changed (with `Prefer: return=representation`)", body = NumberView, content_type = "application/hal+json")))]
async fn patch_number(
    State(state): State<AppState>,
    ItemId(id): ItemId,
    headers: HeaderMap,
    JsonPatchBody(patch): JsonPatchBody,
) -> ApiResult<Response> {
    let current = state.store.get_number(id).await.map_err(store_error)?;
    let representation =
        serde_json::to_value(NumberView::from(current)).map_err(ApiError::internal)?;
    let document = hal::apply_patch(representation, &patch, &["id"])?;
    let view = store_update(&state, id, from_document(document)?).await?;
    Ok(hal::updated(&headers, &view))
}
