//! HAL (`application/hal+json`) envelopes and `page`/`rows` paging as ngcp-panel shapes them.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::problem::ApiError;

/// Media type of every successful JSON response.
pub const HAL_JSON: &str = "application/hal+json";
/// ngcp API profile URI advertised in `_links.profile`.
pub const NGCP_PROFILE: &str = "http://purl.org/sipwise/ngcp-api/";
/// Largest page size accepted.
pub const MAX_ROWS: u32 = 1000;
/// Largest page number accepted (keeps `page * rows` far from any integer limit).
pub const MAX_PAGE: u32 = 1_000_000;

/// Validated paging parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based page number.
    pub page: u32,
    /// Items per page.
    pub rows: u32,
}

impl Paging {
    /// From the optional query values; 0 or above [`MAX_ROWS`] is a 400 like ngcp.
    pub fn from_query(page: Option<u32>, rows: Option<u32>) -> Result<Self, ApiError> {
        let page = page.unwrap_or(1);
        let rows = rows.unwrap_or(10);
        if page == 0 || page > MAX_PAGE {
            return Err(
                ApiError::bad_request(format!("'page' must be between 1 and {MAX_PAGE}."))
                    .with_field("page"),
            );
        }
        if rows == 0 || rows > MAX_ROWS {
            return Err(
                ApiError::bad_request(format!("'rows' must be between 1 and {MAX_ROWS}."))
                    .with_field("rows"),
            );
        }
        Ok(Self { page, rows })
    }

    /// The store's page type.
    pub fn store_page(self) -> store::Page {
        store::Page::new(self.page, self.rows)
    }
}

/// The query string without `page`/`rows`, so navigation links repeat the filters.
fn other_params(raw_query: Option<&str>) -> Vec<&str> {
    raw_query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("page=") && !pair.starts_with("rows="))
        .collect()
}

fn page_href(collection: &str, raw_query: Option<&str>, page: u32, rows: u32) -> String {
    let mut params = other_params(raw_query);
    let page_param = format!("page={page}");
    let rows_param = format!("rows={rows}");
    params.insert(0, &rows_param);
    params.insert(0, &page_param);
    format!("/api/{collection}/?{}", params.join("&"))
}

/// `_links` of an item: self, collection, profile and curies plus resource relations.
pub fn item_links(collection: &str, id: i64, relations: &[(&str, String)]) -> Value {
    let mut links = json!({
        "self": {"href": format!("/api/{collection}/{id}")},
        "collection": {"href": format!("/api/{collection}/")},
        "profile": {"href": NGCP_PROFILE},
        "curies": {"name": "ngcp", "href": "http://purl.org/sipwise/ngcp-api/#rel-{rel}", "templated": true},
    });
    if let Some(map) = links.as_object_mut() {
        for (relation, href) in relations {
            map.insert(format!("ngcp:{relation}"), json!({ "href": href }));
        }
    }
    links
}

/// A collection page as HAL: `total_count`, `_links` with navigation and item hrefs, and
/// `_embedded["ngcp:<collection>"]` (always an array — voxide departs from ngcp on purpose).
pub fn collection_body<T: Serialize>(
    collection: &str,
    raw_query: Option<&str>,
    paging: Paging,
    total_count: u64,
    items: &[T],
    item_id: impl Fn(&T) -> i64,
) -> Result<Value, ApiError> {
    let relation = format!("ngcp:{collection}");
    let mut links = serde_json::Map::new();
    links.insert(
        "self".into(),
        json!({"href": page_href(collection, raw_query, paging.page, paging.rows)}),
    );
    if paging.page > 1 {
        links.insert(
            "prev".into(),
            json!({"href": page_href(collection, raw_query, paging.page - 1, paging.rows)}),
        );
    }
    if total_count > u64::from(paging.page) * u64::from(paging.rows) {
        links.insert(
            "next".into(),
            json!({"href": page_href(collection, raw_query, paging.page + 1, paging.rows)}),
        );
    }
    links.insert(
        "curies".into(),
        json!({"name": "ngcp", "href": "http://purl.org/sipwise/ngcp-api/#rel-{rel}", "templated": true}),
    );
    links.insert("profile".into(), json!({"href": NGCP_PROFILE}));
    links.insert(
        relation.clone(),
        Value::Array(
            items
                .iter()
                .map(|item| json!({"href": format!("/api/{collection}/{}", item_id(item))}))
                .collect(),
        ),
    );
    let embedded = serde_json::to_value(items).map_err(ApiError::internal)?;
    Ok(json!({
        "total_count": total_count,
        "_links": links,
        "_embedded": { relation: embedded },
    }))
}

/// A `200` HAL response.
pub fn hal_response(body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(HAL_JSON))],
            bytes,
        )
            .into_response(),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

/// `201 Created` with `Location` and an empty body (ngcp behaviour for POST).
pub fn created(collection: &str, id: i64) -> Response {
    let location = format!("/api/{collection}/{id}");
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// True when the client sent `Prefer: return=representation` (RFC 7240 §4.2).
pub fn wants_representation(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| {
            preference
                .trim()
                .eq_ignore_ascii_case("return=representation")
        })
}

/// The answer to a successful PUT or PATCH: `204` by default, `200` with the item when the
/// client asked for the representation.
pub fn updated(headers: &HeaderMap, item: &impl Serialize) -> Response {
    if wants_representation(headers) {
        let mut response = hal_response(item);
        response.headers_mut().insert(
            "preference-applied",
            HeaderValue::from_static("return=representation"),
        );
        response
    } else {
        let mut response = StatusCode::NO_CONTENT.into_response();
        response.headers_mut().insert(
            "preference-applied",
            HeaderValue::from_static("return=minimal"),
        );
        response
    }
}

/// Apply an RFC 6902 patch to an item's GET representation and return the document to
/// validate like a PUT body. `_links` and `read_only` members are removed again; changing a
/// read-only member is a 422 naming it.
pub fn apply_patch(
    representation: Value,
    patch: &json_patch::Patch,
    read_only: &[&str],
) -> Result<Value, ApiError> {
    let mut document = representation.clone();
    json_patch::patch(&mut document, patch).map_err(|error| {
        ApiError::unprocessable_entity(format!("The entity could not be processed: {error}"))
    })?;
    let Value::Object(ref mut map) = document else {
        return Err(ApiError::unprocessable_entity(
            "The entity could not be processed: the patch replaced the whole document.",
        ));
    };
    map.remove("_links");
    for key in read_only {
        let before = representation.get(*key);
        let after = map.remove(*key);
        if after.as_ref() != before {
            return Err(ApiError::unprocessable(
                *key,
                format!("Field '{key}' is read-only."),
            ));
        }
    }
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn navigation_links_keep_filters_and_follow_counts() {
        let paging = Paging::from_query(Some(2), Some(2)).expect("valid");
        let body = collection_body(
            "domains",
            Some("page=2&rows=2&domain=a*"),
            paging,
            5,
            &[json!({"id": 3}), json!({"id": 4})],
            |item| item["id"].as_i64().unwrap_or_default(),
        )
        .expect("body");
        assert_eq!(
            body["_links"]["next"]["href"],
            "/api/domains/?page=3&rows=2&domain=a*"
        );
        assert_eq!(
            body["_links"]["prev"]["href"],
            "/api/domains/?page=1&rows=2&domain=a*"
        );
        assert_eq!(
            body["_embedded"]["ngcp:domains"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(body["_links"]["ngcp:domains"][1]["href"], "/api/domains/4");
    }

    #[test]
    fn zero_page_or_rows_is_rejected() {
        assert!(Paging::from_query(Some(0), None).is_err());
        assert!(Paging::from_query(None, Some(0)).is_err());
        assert!(Paging::from_query(None, Some(MAX_ROWS + 1)).is_err());
    }

    #[test]
    fn patch_of_read_only_member_is_named() {
        let representation = json!({"id": 1, "name": "x", "_links": {}});
        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "replace", "path": "/id", "value": 2}]))
                .expect("patch");
        let error = apply_patch(representation, &patch, &["id"]).expect_err("read-only");
        assert_eq!(error.problem().field.as_deref(), Some("id"));
    }
}
