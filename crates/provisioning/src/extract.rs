//! Request extractors whose every rejection is a problem document.
//!
//! axum's own `Json`, `Path` and `Query` rejections answer with plain text and sometimes 5xx-like
//! shapes; these wrappers check media type, size, encoding and shape themselves so that a client
//! always gets a typed 4xx problem naming what was wrong.

use axum::body::Body;
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
    let bytes = read_limited(request.into_body(), declared_length).await?;
    parse_json_document(&bytes)
}

/// Bodies up to this size are read and thrown away before answering 413, so that a client
/// still sending gets the problem document instead of a reset connection.
const DRAIN_LIMIT_BYTES: usize = 16 * 1024 * 1024;

async fn read_limited(body: Body, declared_length: Option<u64>) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    let mut too_large = declared_length.is_some_and(|length| length > BODY_LIMIT_BYTES as u64);
    if declared_length.is_some_and(|length| length > DRAIN_LIMIT_BYTES as u64) {
        return Err(ApiError::payload_too_large(BODY_LIMIT_BYTES));
    }
    while let Some(frame) = body.frame().await {
        // A broken connection means nobody reads the answer; treat it like the end.
        let Ok(frame) = frame else { break };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > BODY_LIMIT_BYTES {
            too_large = true;
            bytes = Vec::new();
        }
        if seen > DRAIN_LIMIT_BYTES {
            break;
        }
        if !too_large {
            bytes.extend_from_slice(data);
        }
    }
    if too_large {
        return Err(ApiError::payload_too_large(BODY_LIMIT_BYTES));
    }
    Ok(bytes)
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
        // For unknown fields the path already ends at the key; for missing ones it names the
        // enclosing object.
        let field = match (named, path.as_str()) {
            (Some(name), "." | "") => name,
            (Some(name), path) if path == name || path.ends_with(&format!(".{name}")) => {
                path.to_owned()
            }
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
        let serde_json::Value::Array(mut operations) = document else {
            return Err(ApiError::bad_request("Body for PATCH must be an array."));
        };
        // RFC 6902 §4: members not defined for the operation MUST be ignored.
        for operation in &mut operations {
            if let serde_json::Value::Object(members) = operation {
                members.retain(|key, _| matches!(key.as_str(), "op" | "path" | "value" | "from"));
            }
        }
        let document = serde_json::Value::Array(operations);
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
                let text = rejection.body_text();
                let error = ApiError::bad_request(format!("Invalid query string: {text}"));
                // axum names the parameter at fault ("…: call_status: unknown variant …").
                let field = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .and_then(|rest| rest.split_once(": "))
                    .map(|(path, _)| path)
                    .filter(|path| {
                        !path.is_empty()
                            && path
                                .bytes()
                                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
                    });
                match field {
                    Some(field) => error.with_field(field.to_owned()),
                    None => error,
                }
            })
    }
}

/// One RFC 6902 §4 operation, as documented in the OpenAPI description (the body itself is
/// parsed by `json_patch`).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOperation {
    /// RFC 6902 §4.1: add or replace a member, or insert into an array (`-` appends).
    Add {
        /// JSON Pointer (RFC 6901) of the target.
        #[schema(pattern = "^(/([^/~]|~[01])*)*$")]
        path: String,
        /// The value to add.
        value: serde_json::Value,
    },
    /// RFC 6902 §4.2: remove the target.
    Remove {
        /// JSON Pointer of the target.
        #[schema(pattern = "^(/([^/~]|~[01])*)*$")]
        path: String,
    },
    /// RFC 6902 §4.3: replace the existing target.
    Replace {
        /// JSON Pointer of the target.
        #[schema(pattern = "^(/([^/~]|~[01])*)*$")]
        path: String,
        /// The new value.
        value: serde_json::Value,
    },
    /// RFC 6902 §4.4: move a value.
    Move {
        /// JSON Pointer of the source.
        #[schema(pattern = "^(/([^/~]|~[01])*)*$")]
        from: String,
        /// JSON Pointer of the target.
        #[schema(pattern = "^(/([^/~]|~[01])*)*$")]
        path: String,
    },
    /// RFC 6902 §4.5: copy a value.
    Copy {
        /// JSON Pointer of the source.
        #[schema(pattern = "^(/([^/~]|~[01])*)*$")]
        from: String,
        /// JSON Pointer of the target.
        #[schema(pattern = "^(/([^/~]|~[01])*)*$")]
        path: String,
    },
    /// RFC 6902 §4.6: fail the whole patch unless the target equals `value`.
    Test {
        /// JSON Pointer of the target.
        #[schema(pattern = "^(/([^/~]|~[01])*)*$")]
        path: String,
        /// The expected value.
        value: serde_json::Value,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        cc: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        count: u8,
        #[serde(default)]
        inner: Option<Inner>,
    }

    fn field_of(document: serde_json::Value) -> Option<String> {
        from_document::<Outer>(document)
            .expect_err("invalid")
            .problem()
            .field
    }

    #[test]
    fn deserialisation_errors_name_the_field() {
        assert_eq!(field_of(json!({"count": 1})).as_deref(), Some("name"));
        assert_eq!(
            field_of(json!({"name": "a", "count": 1, "extra": true})).as_deref(),
            Some("extra")
        );
        assert_eq!(
            field_of(json!({"name": "a", "count": 300})).as_deref(),
            Some("count")
        );
        assert_eq!(
            field_of(json!({"name": "a", "count": 1, "inner": {"cc": "1", "x": 1}})).as_deref(),
            Some("inner.x")
        );
        assert_eq!(
            field_of(json!({"name": "a", "count": 1, "inner": {}})).as_deref(),
            Some("inner.cc")
        );
    }

    #[test]
    fn bodies_that_are_not_json_are_bad_requests() {
        for body in [&b""[..], b"  ", b"{\"a\": \xff}", b"{", b"nul"] {
            let error = parse_json_document(body).expect_err("rejected");
            assert_eq!(error.status().as_u16(), 400, "{body:?}");
        }
        assert_eq!(
            parse_json_document(b"{\"a\": 1}").expect("valid"),
            json!({"a": 1})
        );
    }
}
