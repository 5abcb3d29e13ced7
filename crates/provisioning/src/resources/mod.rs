//! The REST resources, their routes and the OpenAPI document built from them.

/// Declares the HAL page type of a collection: `total_count`, `_links` and
/// `_embedded["ngcp:<name>"]` as an array of the item view.
macro_rules! hal_collection {
    ($collection:ident, $embedded:ident, $item:ty, $relation:literal) => {
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

pub mod customers;
pub mod domains;

use axum::Json;
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
        .split_for_parts();
    declare_common_responses(&mut openapi);
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
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
                        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                        document,
                    )
                }
            }),
        )
        .merge(api)
}

/// Collections that answer `/api/<name>` with a redirect to `/api/<name>/`.
const COLLECTIONS: &[&str] = &["domains", "customers"];

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
            ("400", "Malformed request (syntax, encoding, query or path)."),
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
            statuses.push(("422", "Invalid field value, unknown field or missing field."));
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

/// The `200` JSON document: used by the typed views to name the schema in the document.
pub(crate) fn json_ok<T: serde::Serialize>(value: T) -> Json<T> {
    Json(value)
}
