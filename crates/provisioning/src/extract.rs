//! Request extractors whose every rejection is a problem document.
//!
//! axum's own `Json`, `Path` and `Query` rejections answer with plain text and sometimes 5xx-like
//! shapes; these wrappers check media type, size, encoding and shape themselves so that a client
//! always gets a typed 4xx problem naming what was wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// Largest accepted request body. Provisioning documents are small; anything above this is a
/// mistake or an attack.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// `application/json` for POST and PUT.
pub const JSON: &str = "application/json";
/// RFC 6902 §1 media type for PATCH.
pub const JSON_PATCH: &str = "application/json-patch+json";

/// A JSON request body (`application/json`) deserialised into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// An RFC 6902 JSON Patch body (`application/json-patch+json`).
#[derive(Debug)]
pub struct JsonPatchBody(pub json_patch::Patch);

/// A numeric item id from the path (`/api/<name>/{id}`).
#[derive(Debug, Clone, Copy)]
pub struct ItemId(pub i64);

/// Query parameters deserialised into `T`; a bad value is a 400 naming the parameter.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

fn media_type(parts_content_type: Option<&header::HeaderValue>) -> Option<String> {
    let value = parts_content_type?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

async fn read_body(request: Request, accepted: &str) -> Result<serde_json::Value, ApiError> {
    let found = media_type(request.headers().get(header::CONTENT_TYPE));
    match found.as_deref() {
        Some(found) if found == accepted => {}
        Some(found) => return Err(ApiError::unsupported_media_type(found, accepted)),
        None => return Err(ApiError::unsupported_media_type("none", accepted)),
    }
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > BODY_LIMIT_BYTES as u64) {
        return Err(ApiError::payload_too_large(BODY_LIMIT_BYTES));
    }
    // The only failure of a limited read we can act on is the limit; a broken connection means
    // nobody reads the answer anyway.
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), BODY_LIMIT_BYTES)
        .await
        .map_err(|_| ApiError::payload_too_large(BODY_LIMIT_BYTES))?;
    parse_json_document(&bytes)
}

/// Parse a body as UTF-8 JSON, answering 400 for empty, non-UTF-8 or malformed input.
pub fn parse_json_document(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("The request body is empty."));
    }
    // RFC 8259 §8.1: JSON exchanged between systems must be UTF-8.
    let text = std::str::from_utf8(bytes).map_err(|error| {
        ApiError::bad_request(format!(
            "The request body is not valid UTF-8 (invalid byte at offset {}).",
            error.valid_up_to()
        ))
    })?;
    serde_json::from_str(text).map_err(|error| {
        ApiError::bad_request(format!(
            "The entity is not a well-formed 'application/json' document: {error}"
        ))
    })
}

/// Deserialise a parsed document into `T`, naming the offending field on failure (422).
pub fn from_document<T: DeserializeOwned>(document: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(document).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|prefix| inner.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        let field = match (named, path.as_str()) {
            (Some(name), "." | "") => name,
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, path) => path.to_owned(),
        };
        let detail = if inner.starts_with("unknown field") {
            format!("Unknown or read-only field '{field}'.")
        } else if inner.starts_with("missing field") {
            format!("Missing required field '{field}'.")
        } else {
            format!("Invalid value for field '{field}': {inner}.")
        };
        ApiError::unprocessable(field, detail)
    })
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let document = read_body(request, JSON).await?;
        from_document(document).map(JsonBody)
    }
}

impl<S> FromRequest<S> for JsonPatchBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let document = read_body(request, JSON_PATCH).await?;
        if !document.is_array() {
            return Err(ApiError::bad_request("Body for PATCH must be an array."));
        }
        serde_path_to_error::deserialize(document)
            .map(JsonPatchBody)
            .map_err(|error| {
                let path = error.path().to_string();
                ApiError::bad_request(format!(
                    "Invalid PATCH operation at {path}: {}",
                    error.into_inner()
                ))
                .with_field(path)
            })
    }
}

impl<S> FromRequestParts<S> for ItemId
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::bad_request("Invalid id in request URI").with_field("id"))?;
        match raw.parse::<i64>() {
            Ok(id) if id >= 1 => Ok(ItemId(id)),
            _ => Err(ApiError::bad_request("Invalid id in request URI").with_field("id")),
        }
    }
}

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| {
                ApiError::bad_request(format!("Invalid query string: {}", rejection.body_text()))
            })
    }
}
