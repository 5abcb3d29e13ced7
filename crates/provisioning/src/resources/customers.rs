//! `/api/customers/`: the contracts subscribers belong to.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use store::prelude::*;
use store::{Customer, CustomerFilter, CustomerStatus, NewCustomer};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store_error;
use crate::AppState;
use crate::extract::{ItemId, JsonBody, JsonPatchBody, QueryParams, from_document};
use crate::hal::{self, Paging};
use crate::problem::{ApiError, ApiResult};

const COLLECTION: &str = "customers";

/// Customer life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CustomerStatusValue {
    /// In service.
    Active,
    /// Created, not yet active.
    Pending,
    /// Calls blocked.
    Locked,
    /// Ended.
    Terminated,
}

impl From<CustomerStatusValue> for CustomerStatus {
    fn from(value: CustomerStatusValue) -> Self {
        match value {
            CustomerStatusValue::Active => CustomerStatus::Active,
            CustomerStatusValue::Pending => CustomerStatus::Pending,
            CustomerStatusValue::Locked => CustomerStatus::Locked,
            CustomerStatusValue::Terminated => CustomerStatus::Terminated,
        }
    }
}

impl From<CustomerStatus> for CustomerStatusValue {
    fn from(value: CustomerStatus) -> Self {
        match value {
            CustomerStatus::Active => CustomerStatusValue::Active,
            CustomerStatus::Pending => CustomerStatusValue::Pending,
            CustomerStatus::Locked => CustomerStatusValue::Locked,
            CustomerStatus::Terminated => CustomerStatusValue::Terminated,
        }
    }
}

/// A customer as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CustomerView {
    /// Row id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Life-cycle status.
    pub status: CustomerStatusValue,
    /// Operator's own reference.
    pub external_id: Option<String>,
    /// HAL links.
    #[serde(rename = "_links")]
    #[schema(value_type = Object)]
    pub links: serde_json::Value,
}

impl From<Customer> for CustomerView {
    fn from(customer: Customer) -> Self {
        Self {
            links: hal::item_links(
                COLLECTION,
                customer.id,
                &[(
                    "customerpreferences",
                    format!("/api/customerpreferences/{}", customer.id),
                )],
            ),
            id: customer.id,
            name: customer.name,
            status: customer.status.into(),
            external_id: customer.external_id,
        }
    }
}

/// Body of POST and PUT.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// Display name (1–255 characters).
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// Defaults to `active`.
    #[serde(default)]
    pub status: Option<CustomerStatusValue>,
    /// Operator's own reference (≤255 characters).
    #[serde(default)]
    #[schema(max_length = 255)]
    pub external_id: Option<String>,
}

impl From<CustomerInput> for NewCustomer {
    fn from(input: CustomerInput) -> Self {
        NewCustomer {
            name: input.name,
            status: input.status.map(Into::into).unwrap_or_default(),
            external_id: input.external_id,
        }
    }
}

/// Query parameters of `GET /api/customers/`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CustomerQuery {
    /// Page number (from 1).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// Items per page (1–1000).
    #[param(minimum = 1, maximum = 1000)]
    pub rows: Option<u32>,
    /// Exact status.
    #[param(inline)]
    pub status: Option<CustomerStatusValue>,
    /// Pattern on `external_id`.
    pub external_id: Option<String>,
    /// Pattern on `name`.
    pub name: Option<String>,
}

hal_collection!(
    CustomerCollection,
    CustomerEmbedded,
    CustomerView,
    "ngcp:customers"
);

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_customers, create_customer))
        .routes(routes!(
            get_customer,
            replace_customer,
            patch_customer,
            delete_customer
        ))
}

/// List customers.
#[utoipa::path(get, path = "/api/customers/", tag = "customers", params(CustomerQuery),
    responses((status = 200, description = "A page of customers", body = CustomerCollection, content_type = "application/hal+json")))]
async fn list_customers(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<CustomerQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let paging = Paging::from_query(query.page, query.rows)?;
    let filter = CustomerFilter {
        status: query.status.map(Into::into),
        external_id: query.external_id,
        name: query.name,
    };
    let page = state
        .store
        .list_customers(&filter, paging.store_page())
        .await
        .map_err(store_error)?;
    let items: Vec<CustomerView> = page.items.into_iter().map(CustomerView::from).collect();
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

/// Create a customer.
#[utoipa::path(post, path = "/api/customers/", tag = "customers",
    request_body(content = CustomerInput, content_type = "application/json"),
    responses((status = 201, description = "Created; `Location` names the new item",
        headers(("Location" = String, description = "URI of the new customer")))))]
async fn create_customer(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<CustomerInput>,
) -> ApiResult<Response> {
    let customer = state
        .store
        .create_customer(&input.into())
        .await
        .map_err(store_error)?;
    Ok(hal::created(COLLECTION, customer.id))
}

/// One customer.
#[utoipa::path(get, path = "/api/customers/{id}", tag = "customers",
    params(("id" = i64, Path, minimum = 1, description = "Customer id")),
    responses((status = 200, description = "The customer", body = CustomerView, content_type = "application/hal+json")))]
async fn get_customer(State(state): State<AppState>, ItemId(id): ItemId) -> ApiResult<Response> {
    let customer = state.store.get_customer(id).await.map_err(store_error)?;
    Ok(hal::hal_response(&CustomerView::from(customer)))
}

async fn store_update(
    state: &AppState,
    id: i64,
    input: CustomerInput,
) -> Result<CustomerView, ApiError> {
    state
        .store
        .update_customer(id, &input.into())
        .await
        .map(CustomerView::from)
        .map_err(store_error)
}

/// Replace a customer.
#[utoipa::path(put, path = "/api/customers/{id}", tag = "customers",
    params(("id" = i64, Path, minimum = 1, description = "Customer id")),
    request_body(content = CustomerInput, content_type = "application/json"),
    responses((status = 204, description = "Replaced"),
        (status = 200, description = "Replaced (with `Prefer: return=representation`)", body = CustomerView, content_type = "application/hal+json")))]
async fn replace_customer(
    State(state): State<AppState>,
    ItemId(id): ItemId,
    headers: HeaderMap,
    JsonBody(input): JsonBody<CustomerInput>,
) -> ApiResult<Response> {
    let view = store_update(&state, id, input).await?;
    Ok(hal::updated(&headers, &view))
}

/// Change a customer with an RFC 6902 JSON Patch applied to its GET representation.
#[utoipa::path(patch, path = "/api/customers/{id}", tag = "customers",
    params(("id" = i64, Path, minimum = 1, description = "Customer id")),
    request_body(content = Vec<crate::extract::PatchOperation>, content_type = "application/json-patch+json"),
    responses((status = 204, description = "Changed"),
        (status = 200, description = "Changed (with `Prefer: return=representation`)", body = CustomerView, content_type = "application/hal+json")))]
async fn patch_customer(
    State(state): State<AppState>,
    ItemId(id): ItemId,
    headers: HeaderMap,
    JsonPatchBody(patch): JsonPatchBody,
) -> ApiResult<Response> {
    let current = state.store.get_customer(id).await.map_err(store_error)?;
    let representation =
        serde_json::to_value(CustomerView::from(current)).map_err(ApiError::internal)?;
    let document = hal::apply_patch(representation, &patch, &["id"])?;
    let view = store_update(&state, id, from_document(document)?).await?;
    Ok(hal::updated(&headers, &view))
}

/// Delete a customer that has no subscribers.
#[utoipa::path(delete, path = "/api/customers/{id}", tag = "customers",
    params(("id" = i64, Path, minimum = 1, description = "Customer id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_customer(
    State(state): State<AppState>,
    ItemId(id): ItemId,
) -> ApiResult<StatusCode> {
    state.store.delete_customer(id).await.map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}
