//! RFC 9457 problem documents: the one error shape every API failure is answered with.
//!
//! ngcp-panel clients read `code` and `message`; RFC 9457 clients read `type`, `title`, `status`
//! and `detail`. Both sets are always present, plus `field` naming the offending input key.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of every error body (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// RFC 9457 §3.1 problem details object, extended with ngcp's `code`/`message`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// RFC 9457 §3.1.1: URI reference naming the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// RFC 9457 §3.1.3: short summary of the problem type.
    pub title: String,
    /// RFC 9457 §3.1.2: the HTTP status code.
    pub status: u16,
    /// RFC 9457 §3.1.4: explanation specific to this occurrence.
    pub detail: String,
    /// The input key (JSON Pointer-like dotted path) that caused the problem, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// ngcp-panel compatibility: same as `status`.
    pub code: u16,
    /// ngcp-panel compatibility: same as `detail`.
    pub message: String,
}

/// An API failure that renders as a problem document.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    detail: String,
    field: Option<String>,
    retry_after_seconds: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            detail: detail.into(),
            field: None,
            retry_after_seconds: None,
        }
    }

    /// Attach the name of the offending input field.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the request itself is malformed (syntax, encoding, query or path).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 401: missing or wrong credentials.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required: send HTTP Basic credentials of an administrator.",
        )
    }

    /// 404: no such item or path.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 405: the path exists but not with this method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "This method is not allowed on this resource.",
        )
    }

    /// 409: the write conflicts with existing data (duplicate key).
    pub fn conflict(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail).with_field(field)
    }

    /// 413: body above the size limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("The request body exceeds the limit of {limit} bytes."),
        )
    }

    /// 415: body media type is not the one accepted.
    pub fn unsupported_media_type(found: &str, accepted: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("Unsupported media type '{found}', accepting {accepted} only."),
        )
    }

    /// 422: well-formed but semantically invalid input.
    pub fn unprocessable(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            detail,
        )
        .with_field(field)
    }

    /// 422 without a single field to blame (e.g. a JSON Patch pointer problem).
    pub fn unprocessable_entity(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            detail,
        )
    }

    /// 429: too many failed logins from this source address.
    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            format!(
                "Too many failed logins from this address; retry after {retry_after_seconds} seconds."
            ),
        );
        error.retry_after_seconds = Some(retry_after_seconds);
        error
    }

    /// 500: a server-side failure. The detail given to the client is generic on purpose; the
    /// cause is logged instead, so database errors are never echoed.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "provisioning API internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error",
        )
    }

    /// 503: the database is not reachable right now.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "provisioning API storage unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The provisioning database is not available.",
        )
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem document this error renders as.
    pub fn problem(&self) -> Problem {
        Problem {
            problem_type: format!("urn:voxide:problem:{}", self.slug),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            field: self.field.clone(),
            code: self.status.as_u16(),
            message: self.detail.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.detail)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"api_admin_http\", charset=\"UTF-8\""),
            );
        }
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Handler result type.
pub type ApiResult<T> = Result<T, ApiError>;
