//! The REST resources, their routes and the OpenAPI document built from them.

/// Declares the HAL page type of a collection: `total_count`, `_links` and
/// `_embedded["ngcp:<name>"]` as an array of the item view.
macro_rules! hal_collection {
    ($collection:ident, $embedded:ident, $item:ty, $relation:tt) => {
        /// One page of the collection.
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        pub struct $collection {
            /// Items matching the filter over all pages.
            pub total_count: u64,
            /// Navigation and item links.
            #[serde(rename = "_links")]
            #[schema(value_type = Object)]
            pub links: serde_json::Value,
            /// The page's items.
            #[serde(rename = "_embedded")]
            pub embedded: $embedded,
        }

        /// `_embedded` of a page.
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        pub struct $embedded {
            /// The items (always an array).
            #[serde(rename = $relation)]
            pub items: Vec<$item>,
        }
    };
}

/// Filters of a collection query plus its paging values.
pub(crate) trait ListQuery {
    /// The store's filter type.
    type Filter;
    /// `page` and `rows` as sent.
    fn paging(&self) -> (Option<u32>, Option<u32>);
    /// The store filter.
    fn filter(self) -> Self::Filter;
}

/// Generates the six handlers (list, create, get, put, patch, delete) of a plain resource whose
/// input converts into the store's `New*` type and whose view converts from the store model.
macro_rules! crud_handlers {
    (collection = $collection:literal, tag = $tag:literal,
     collection_path = $collection_path:literal, item_path = $item_path:literal,
     view = $view:ty, page = $page:ty, input = $input:ty, query = $query:ty,
     store = ($list:ident, $create:ident, $get:ident, $update:ident, $delete:ident),
     handlers = ($h_list:ident, $h_create:ident, $h_get:ident, $h_put:ident, $h_patch:ident, $h_delete:ident)) => {
        pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<crate::AppState> {
            utoipa_axum::router::OpenApiRouter::new()
                .routes(utoipa_axum::routes!($h_list, $h_create))
                .routes(utoipa_axum::routes!($h_get, $h_put, $h_patch, $h_delete))
        }

        /// List the collection.
        #[utoipa::path(get, path = $collection_path, tag = $tag, params($query),
            responses((status = 200, description = "A page of items", body = $page, content_type = "application/hal+json")))]
        async fn $h_list(
            axum::extract::State(state): axum::extract::State<crate::AppState>,
            crate::extract::QueryParams(query): crate::extract::QueryParams<$query>,
            axum::extract::RawQuery(raw): axum::extract::RawQuery,
        ) -> crate::problem::ApiResult<axum::response::Response> {
            let (page, rows) = crate::resources::ListQuery::paging(&query);
            let paging = crate::hal::Paging::from_query(page, rows)?;
            let filter = crate::resources::ListQuery::filter(query);
            let page = state.store.$list(&filter, paging.store_page()).await.map_err(crate::resources::store_error)?;
            let items: Vec<$view> = page.items.into_iter().map(<$view>::from).collect();
            let body = crate::hal::collection_body($collection, raw.as_deref(), paging, page.total_count, &items, |item| item.id)?;
            Ok(crate::hal::hal_response(&body))
        }

        /// Create an item.
        #[utoipa::path(post, path = $collection_path, tag = $tag,
            request_body(content = $input, content_type = "application/json"),
            responses((status = 201, description = "Created; `Location` names the new item",
                headers(("Location" = String, description = "URI of the new item")))))]
        async fn $h_create(
            axum::extract::State(state): axum::extract::State<crate::AppState>,
            crate::extract::JsonBody(input): crate::extract::JsonBody<$input>,
        ) -> crate::problem::ApiResult<axum::response::Response> {
            let new = input.into_new()?;
            let created = state.store.$create(&new).await.map_err(crate::resources::store_error)?;
            Ok(crate::hal::created($collection, created.id))
        }

        /// One item.
        #[utoipa::path(get, path = $item_path, tag = $tag,
            params(("id" = i64, Path, minimum = 1, description = "Item id")),
            responses((status = 200, description = "The item", body = $view, content_type = "application/hal+json")))]
        async fn $h_get(
            axum::extract::State(state): axum::extract::State<crate::AppState>,
            crate::extract::ItemId(id): crate::extract::ItemId,
        ) -> crate::problem::ApiResult<axum::response::Response> {
            let item = state.store.$get(id).await.map_err(crate::resources::store_error)?;
            Ok(crate::hal::hal_response(&<$view>::from(item)))
        }

        /// Replace an item.
        #[utoipa::path(put, path = $item_path, tag = $tag,
            params(("id" = i64, Path, minimum = 1, description = "Item id")),
            request_body(content = $input, content_type = "application/json"),
            responses((status = 204, description = "Replaced"),
                (status = 200, description = "Replaced (with `Prefer: return=representation`)", body = $view, content_type = "application/hal+json")))]
        async fn $h_put(
            axum::extract::State(state): axum::extract::State<crate::AppState>,
            crate::extract::ItemId(id): crate::extract::ItemId,
            headers: axum::http::HeaderMap,
            crate::extract::JsonBody(input): crate::extract::JsonBody<$input>,
        ) -> crate::problem::ApiResult<axum::response::Response> {
            state.store.$get(id).await.map_err(crate::resources::store_error)?;
            let new = input.into_new()?;
            let item = state.store.$update(id, &new).await.map_err(crate::resources::store_error)?;
            Ok(crate::hal::updated(&headers, &<$view>::from(item)))
        }

        /// Change an item with an RFC 6902 JSON Patch applied to its GET representation.
        #[utoipa::path(patch, path = $item_path, tag = $tag,
            params(("id" = i64, Path, minimum = 1, description = "Item id")),
            request_body(content = Vec<crate::extract::PatchOperation>, content_type = "application/json-patch+json"),
            responses((status = 204, description = "Changed"),
                (status = 200, description = "Changed (with `Prefer: return=representation`)", body = $view, content_type = "application/hal+json")))]
        async fn $h_patch(
            axum::extract::State(state): axum::extract::State<crate::AppState>,
            crate::extract::ItemId(id): crate::extract::ItemId,
            headers: axum::http::HeaderMap,
            crate::extract::JsonPatchBody(patch): crate::extract::JsonPatchBody,
        ) -> crate::problem::ApiResult<axum::response::Response> {
            let current = state.store.$get(id).await.map_err(crate::resources::store_error)?;
            let representation = serde_json::to_value(<$view>::from(current)).map_err(crate::problem::ApiError::internal)?;
            let document = crate::hal::apply_patch(representation, &patch, &["id"])?;
            let input: $input = crate::extract::from_document(document)?;
            let new = input.into_new()?;
            let item = state.store.$update(id, &new).await.map_err(crate::resources::store_error)?;
            Ok(crate::hal::updated(&headers, &<$view>::from(item)))
        }

        /// Delete an item.
        #[utoipa::path(delete, path = $item_path, tag = $tag,
            params(("id" = i64, Path, minimum = 1, description = "Item id")),
            responses((status = 204, description = "Deleted")))]
        async fn $h_delete(
            axum::extract::State(state): axum::extract::State<crate::AppState>,
            crate::extract::ItemId(id): crate::extract::ItemId,
        ) -> crate::problem::ApiResult<axum::http::StatusCode> {
            state.store.$delete(id).await.map_err(crate::resources::store_error)?;
            Ok(axum::http::StatusCode::NO_CONTENT)
        }
    };
}

pub mod callforwards;
pub mod calls;
pub mod customers;
pub mod domains;
pub mod numbers;
pub mod peering;
pub mod preferences;
pub mod rewrite;
pub mod subscribers;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use store::StoreError;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response as ApiResponse, ResponseBuilder};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::problem::{ApiError, PROBLEM_JSON, Problem};

/// Map a store failure to the problem the client gets.
pub fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound { entity, key } => {
            ApiError::not_found(format!("Entity '{entity}' with id '{key}' not found."))
        }
        StoreError::Conflict { field, value } => {
            ApiError::conflict(field, format!("{field} '{value}' already exists."))
        }
        StoreError::Invalid { field, reason } => {
            let detail = format!("Validation failed. field='{field}', errors='{reason}'");
            ApiError::unprocessable(field, detail)
        }
        StoreError::InUse { entity, key } => ApiError::conflict(
            "id",
            format!("{entity} '{key}' is still in use and cannot be deleted."),
        ),
        StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => {
            ApiError::unavailable(error)
        }
        other => ApiError::internal(other),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "voxide provisioning API",
        description = "ngcp-panel compatible provisioning REST API. Errors are RFC 9457 problem documents.",
        version = "1"
    ),
    components(schemas(Problem)),
    security(("basic" = [])),
)]
struct ApiDoc;

/// All API routes with authentication, plus the public `/api/openapi.json`.
pub fn router(state: AppState) -> Router {
    let (api, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(domains::routes())
        .merge(customers::routes())
        .merge(subscribers::routes())
        .merge(numbers::routes())
        .merge(preferences::routes())
        .merge(callforwards::routes())
        .merge(calls::routes())
        .merge(peering::groups::routes())
        .merge(peering::servers::routes())
        .merge(peering::rules::routes())
        .merge(rewrite::rule_sets::routes())
        .merge(rewrite::rules::routes())
        .merge(rewrite::apply::routes())
        .split_for_parts();
    declare_common_responses(&mut openapi);
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "basic",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
    );
    let document = openapi.to_json().unwrap_or_else(|_| "{}".to_owned());

    let mut api = api;
    for collection in COLLECTIONS {
        api = api.route(&format!("/api/{collection}"), get(redirect_to_slash));
    }
    let api = api
        .fallback(path_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_admin,
        ))
        .with_state(state);
    Router::new()
        .route(
            "/api/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        document,
                    )
                }
            }),
        )
        .merge(api)
}

/// Collections that answer `/api/<name>` with a redirect to `/api/<name>/`.
const COLLECTIONS: &[&str] = &[
    "domains",
    "customers",
    "subscribers",
    "numbers",
    "rewriterulesets",
    "rewriterules",
    "applyrewrites",
    "peeringgroups",
    "peeringservers",
    "peeringrules",
    "calls",
];

async fn redirect_to_slash(uri: Uri) -> Response {
    let target = match uri.query() {
        Some(query) => format!("{}/?{query}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(value) = HeaderValue::from_str(&target) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn path_not_found() -> ApiError {
    ApiError::not_found("Path not found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

fn problem_response(description: &str) -> RefOr<ApiResponse> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

/// Every operation can fail with these problems; declaring them here keeps the document
/// truthful without repeating them on each handler.
fn declare_common_responses(openapi: &mut utoipa::openapi::OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let has_id = path.contains('{');
        declare_on_item(item, has_id);
    }
}

fn declare_on_item(item: &mut PathItem, has_id: bool) {
    let operations: [(&str, &mut Option<Operation>); 5] = [
        ("get", &mut item.get),
        ("post", &mut item.post),
        ("put", &mut item.put),
        ("patch", &mut item.patch),
        ("delete", &mut item.delete),
    ];
    for (method, operation) in operations {
        let Some(operation) = operation.as_mut() else {
            continue;
        };
        let mut statuses = vec![
            (
                "400",
                "Malformed request (syntax, encoding, query or path).",
            ),
            ("401", "Missing or wrong credentials."),
            ("405", "Method not allowed on this path."),
            ("429", "Too many failed logins from this address."),
            ("503", "The provisioning database is not available."),
        ];
        if has_id {
            statuses.push(("404", "No such item."));
        }
        if matches!(method, "post" | "put" | "patch") {
            statuses.push(("404", "No such item."));
            statuses.push(("409", "Conflicts with existing data (duplicate)."));
            statuses.push(("413", "Body larger than the limit."));
            statuses.push(("415", "Unsupported media type."));
            statuses.push((
                "422",
                "Invalid field value, unknown field or missing field.",
            ));
        }
        if method == "delete" {
            statuses.push(("409", "Still in use."));
        }
        for (status, description) in statuses {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| problem_response(description));
        }
    }
}
