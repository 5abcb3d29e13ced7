//! `/api/domains/`: SIP domains (GET POST; item GET DELETE — no PUT/PATCH, as in ngcp).

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use store::prelude::*;
use store::{Domain, DomainFilter, NewDomain};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store_error;
use crate::AppState;
use crate::extract::{ItemId, JsonBody, QueryParams};
use crate::hal::{self, Paging};
use crate::problem::ApiResult;

const COLLECTION: &str = "domains";

/// A domain as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DomainView {
    /// Row id.
    pub id: i64,
    /// Host name or IP literal, lower-case.
    pub domain: String,
    /// HAL links.
    #[serde(rename = "_links")]
    #[schema(value_type = Object)]
    pub links: serde_json::Value,
}

impl From<Domain> for DomainView {
    fn from(domain: Domain) -> Self {
        Self {
            links: hal::item_links(
                COLLECTION,
                domain.id,
                &[(
                    "domainpreferences",
                    format!("/api/domainpreferences/{}", domain.id),
                )],
            ),
            id: domain.id,
            domain: domain.domain,
        }
    }
}

/// Body of `POST /api/domains/`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    /// Host name, IPv4 literal or bracketed IPv6 literal (≤127 characters).
    #[schema(max_length = 127)]
    pub domain: String,
}

/// Query parameters of `GET /api/domains/`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DomainQuery {
    /// Page number (from 1).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// Items per page (1–1000).
    #[param(minimum = 1, maximum = 1000)]
    pub rows: Option<u32>,
    /// Pattern on the domain name (`*` any run, `?` one character).
    pub domain: Option<String>,
}

hal_collection!(DomainCollection, DomainEmbedded, DomainView, "ngcp:domains");

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_domains, create_domain))
        .routes(routes!(get_domain, delete_domain))
}

/// List domains.
#[utoipa::path(get, path = "/api/domains/", tag = "domains", params(DomainQuery),
    responses((status = 200, description = "A page of domains", body = DomainCollection, content_type = "application/hal+json")))]
async fn list_domains(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<DomainQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let paging = Paging::from_query(query.page, query.rows)?;
    let filter = DomainFilter {
        domain: query.domain,
    };
    let page = state
        .store
        .list_domains(&filter, paging.store_page())
        .await
        .map_err(store_error)?;
    let items: Vec<DomainView> = page.items.into_iter().map(DomainView::from).collect();
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

/// Create a domain.
#[utoipa::path(post, path = "/api/domains/", tag = "domains",
    request_body(content = DomainInput, content_type = "application/json"),
    responses((status = 201, description = "Created; `Location` names the new item",
        headers(("Location" = String, description = "URI of the new domain")))))]
async fn create_domain(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<DomainInput>,
) -> ApiResult<Response> {
    let domain = state
        .store
        .create_domain(&NewDomain {
            domain: input.domain,
        })
        .await
        .map_err(store_error)?;
    Ok(hal::created(COLLECTION, domain.id))
}

/// One domain.
#[utoipa::path(get, path = "/api/domains/{id}", tag = "domains",
    params(("id" = i64, Path, minimum = 1, description = "Domain id")),
    responses((status = 200, description = "The domain", body = DomainView, content_type = "application/hal+json")))]
async fn get_domain(State(state): State<AppState>, ItemId(id): ItemId) -> ApiResult<Response> {
    let domain = state.store.get_domain(id).await.map_err(store_error)?;
    Ok(hal::hal_response(&DomainView::from(domain)))
}

/// Delete a domain with its subscribers and domain preferences.
#[utoipa::path(delete, path = "/api/domains/{id}", tag = "domains",
    params(("id" = i64, Path, minimum = 1, description = "Domain id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_domain(
    State(state): State<AppState>,
    ItemId(id): ItemId,
) -> ApiResult<axum::http::StatusCode> {
    state.store.delete_domain(id).await.map_err(store_error)?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
