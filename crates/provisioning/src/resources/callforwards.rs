//! `/api/callforwards/{subscriber_id}`: the simple call-forward view (cfu, cfb, cft, cfna).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use store::prelude::*;
use store::{CallForwards, Destination, SimpleCallForward, Source, SourceMode, TimePeriod};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rewrite::check_max_chars;
use super::store_error;
use crate::AppState;
use crate::extract::{ItemId, JsonBody, JsonPatchBody, from_document};
use crate::hal;
use crate::problem::{ApiError, ApiResult};

/// How a source list filters callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourcesMode {
    /// Forward only calls from the listed sources.
    #[default]
    Whitelist,
    /// Forward all calls except those from the listed sources.
    Blacklist,
}

/// One forward target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationValue {
    /// A number, a SIP URI or a keyword such as `voicebox` (≤255 characters).
    #[schema(min_length = 1, max_length = 255)]
    pub destination: String,
    /// Seconds to ring before the next target (default 300).
    #[serde(default = "default_timeout")]
    #[schema(minimum = 0, maximum = 86400)]
    pub timeout: i64,
    /// Lower is tried first (default 1).
    #[serde(default = "default_priority")]
    pub priority: i64,
}

fn default_timeout() -> i64 {
    300
}

fn default_priority() -> i64 {
    1
}

/// One period (tmrec values or `a-b` ranges; absent = any).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeValue {
    /// Year or range, 1990–3000.
    #[serde(default)]
    #[schema(max_length = 16)]
    pub year: Option<String>,
    /// Month or range, 1–12.
    #[serde(default)]
    #[schema(max_length = 16)]
    pub month: Option<String>,
    /// Day of month or range, 1–31.
    #[serde(default)]
    #[schema(max_length = 16)]
    pub mday: Option<String>,
    /// Day of week or range, 1–7 (1 = Sunday).
    #[serde(default)]
    #[schema(max_length = 16)]
    pub wday: Option<String>,
    /// Hour or range, 0–23.
    #[serde(default)]
    #[schema(max_length = 16)]
    pub hour: Option<String>,
    /// Minute or range, 0–59.
    #[serde(default)]
    #[schema(max_length = 16)]
    pub minute: Option<String>,
}

/// One caller pattern.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceValue {
    /// Number pattern or regex (≤255 characters).
    #[schema(min_length = 1, max_length = 255)]
    pub source: String,
}

/// One forward type. All members empty = not set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallForwardValue {
    /// Targets; an empty list removes this forward.
    #[serde(default)]
    pub destinations: Vec<DestinationValue>,
    /// Periods (empty = always).
    #[serde(default)]
    pub times: Vec<TimeValue>,
    /// Caller patterns (empty = all callers).
    #[serde(default)]
    pub sources: Vec<SourceValue>,
    /// Whitelist or blacklist (default whitelist).
    #[serde(default)]
    pub sources_mode: SourcesMode,
    /// Sources are regexes (default false).
    #[serde(default)]
    pub sources_is_regex: bool,
    /// Only in `cft`: seconds of ringing before the forward fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400)]
    pub ringtimeout: Option<i64>,
}

/// The four forward types of one subscriber.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallForwardsView {
    /// The subscriber id (same as the URL id).
    pub id: i64,
    /// The subscriber id.
    pub subscriber_id: i64,
    /// Unconditional.
    pub cfu: CallForwardValue,
    /// On busy.
    pub cfb: CallForwardValue,
    /// On ring timeout.
    pub cft: CallForwardValue,
    /// When not available.
    pub cfna: CallForwardValue,
    /// HAL links.
    #[serde(rename = "_links")]
    #[schema(value_type = Object)]
    pub links: serde_json::Value,
}

/// Body of PUT: omitted or empty types are removed.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallForwardsInput {
    /// Unconditional.
    #[serde(default)]
    pub cfu: CallForwardValue,
    /// On busy.
    #[serde(default)]
    pub cfb: CallForwardValue,
    /// On ring timeout.
    #[serde(default)]
    pub cft: CallForwardValue,
    /// When not available.
    #[serde(default)]
    pub cfna: CallForwardValue,
}

fn to_view_entry(entry: Option<SimpleCallForward>, ringtimeout: Option<i64>) -> CallForwardValue {
    let Some(entry) = entry else {
        return CallForwardValue {
            ringtimeout,
            ..CallForwardValue::default()
        };
    };
    CallForwardValue {
        destinations: entry
            .destinations
            .into_iter()
            .map(|destination| DestinationValue {
                destination: destination.destination,
                timeout: destination.timeout,
                priority: destination.priority,
            })
            .collect(),
        times: entry
            .times
            .into_iter()
            .map(|time| TimeValue {
                year: time.year,
                month: time.month,
                mday: time.mday,
                wday: time.wday,
                hour: time.hour,
                minute: time.minute,
            })
            .collect(),
        sources: entry
            .sources
            .into_iter()
            .map(|source| SourceValue {
                source: source.source,
            })
            .collect(),
        sources_mode: match entry.sources_mode {
            SourceMode::Whitelist => SourcesMode::Whitelist,
            SourceMode::Blacklist => SourcesMode::Blacklist,
        },
        sources_is_regex: entry.sources_is_regex,
        ringtimeout,
    }
}

fn view(subscriber_id: i64, forwards: CallForwards) -> CallForwardsView {
    CallForwardsView {
        links: hal::item_links(
            "callforwards",
            subscriber_id,
            &[("subscribers", format!("/api/subscribers/{subscriber_id}"))],
        ),
        id: subscriber_id,
        subscriber_id,
        cfu: to_view_entry(forwards.cfu, None),
        cfb: to_view_entry(forwards.cfb, None),
        cft: to_view_entry(forwards.cft, forwards.cft_ringtimeout),
        cfna: to_view_entry(forwards.cfna, None),
    }
}

fn to_store_entry(
    kind: &str,
    value: CallForwardValue,
) -> Result<Option<SimpleCallForward>, ApiError> {
    if value.ringtimeout.is_some() && kind != "cft" {
        return Err(ApiError::unprocessable(
            format!("{kind}.ringtimeout"),
            "'ringtimeout' applies to cft only.",
        ));
    }
    if value.destinations.is_empty() {
        return Ok(None);
    }
    let mut destinations = Vec::with_capacity(value.destinations.len());
    for destination in value.destinations {
        check_max_chars(
            &format!("{kind}.destinations.destination"),
            &destination.destination,
            255,
        )?;
        destinations.push(Destination {
            destination: destination.destination,
            timeout: destination.timeout,
            priority: destination.priority,
        });
    }
    let mut sources = Vec::with_capacity(value.sources.len());
    for source in value.sources {
        check_max_chars(&format!("{kind}.sources.source"), &source.source, 255)?;
        sources.push(Source {
            source: source.source,
        });
    }
    let mut times = Vec::with_capacity(value.times.len());
    for time in value.times {
        for (name, part) in [
            ("year", &time.year),
            ("month", &time.month),
            ("mday", &time.mday),
            ("wday", &time.wday),
            ("hour", &time.hour),
            ("minute", &time.minute),
        ] {
            if let Some(part) = part {
                check_max_chars(&format!("{kind}.times.{name}"), part, 16)?;
            }
        }
        times.push(TimePeriod {
            year: time.year,
            month: time.month,
            mday: time.mday,
            wday: time.wday,
            hour: time.hour,
            minute: time.minute,
        });
    }
    Ok(Some(SimpleCallForward {
        destinations,
        times,
        sources,
        sources_mode: match value.sources_mode {
            SourcesMode::Whitelist => SourceMode::Whitelist,
            SourcesMode::Blacklist => SourceMode::Blacklist,
        },
        sources_is_regex: value.sources_is_regex,
    }))
}

fn to_store(input: CallForwardsInput) -> Result<CallForwards, ApiError> {
    let cft_ringtimeout = input.cft.ringtimeout;
    let mut cft = input.cft;
    cft.ringtimeout = None;
    Ok(CallForwards {
        cfu: to_store_entry("cfu", input.cfu)?,
        cfb: to_store_entry("cfb", input.cfb)?,
        cft: to_store_entry("cft", cft)?,
        cfna: to_store_entry("cfna", input.cfna)?,
        cft_ringtimeout,
    })
}

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(
        get_call_forwards,
        replace_call_forwards,
        patch_call_forwards,
        delete_call_forwards
    ))
}

async fn read(state: &AppState, id: i64) -> Result<CallForwardsView, ApiError> {
    state.store.get_subscriber(id).await.map_err(store_error)?;
    let forwards = state
        .store
        .get_call_forwards(id)
        .await
        .map_err(store_error)?;
    Ok(view(id, forwards))
}

async fn replace(
    state: &AppState,
    id: i64,
    input: CallForwardsInput,
) -> Result<CallForwardsView, ApiError> {
    state.store.get_subscriber(id).await.map_err(store_error)?;
    let forwards = to_store(input)?;
    let stored = state
        .store
        .replace_call_forwards(id, &forwards)
        .await
        .map_err(store_error)?;
    Ok(view(id, stored))
}

/// The subscriber's call forwards.
#[utoipa::path(get, path = "/api/callforwards/{id}", tag = "callforwards",
    params(("id" = i64, Path, minimum = 1, description = "Subscriber id")),
    responses((status = 200, description = "The call forwards", body = CallForwardsView, content_type = "application/hal+json")))]
async fn get_call_forwards(
    State(state): State<AppState>,
    ItemId(id): ItemId,
) -> ApiResult<Response> {
    Ok(hal::hal_response(&read(&state, id).await?))
}

/// Replace all call forwards of the subscriber.
#[utoipa::path(put, path = "/api/callforwards/{id}", tag = "callforwards",
    params(("id" = i64, Path, minimum = 1, description = "Subscriber id")),
    request_body(content = CallForwardsInput, content_type = "application/json"),
    responses((status = 204, description = "Replaced"),
        (status = 200, description = "Replaced (with `Prefer: return=representation`)", body = CallForwardsView, content_type = "application/hal+json")))]
async fn replace_call_forwards(
    State(state): State<AppState>,
    ItemId(id): ItemId,
    headers: HeaderMap,
    JsonBody(input): JsonBody<CallForwardsInput>,
) -> ApiResult<Response> {
    let view = replace(&state, id, input).await?;
    Ok(hal::updated(&headers, &view))
}

/// Change call forwards with an RFC 6902 JSON Patch applied to the GET representation.
#[utoipa::path(patch, path = "/api/callforwards/{id}", tag = "callforwards",
    params(("id" = i64, Path, minimum = 1, description = "Subscriber id")),
    request_body(content = Vec<crate::extract::PatchOperation>, content_type = "application/json-patch+json"),
    responses((status = 204, description = "Changed"),
        (status = 200, description = "Changed (with `Prefer: return=representation`)", body = CallForwardsView, content_type = "application/hal+json")))]
async fn patch_call_forwards(
    State(state): State<AppState>,
    ItemId(id): ItemId,
    headers: HeaderMap,
    JsonPatchBody(patch): JsonPatchBody,
) -> ApiResult<Response> {
    let current = read(&state, id).await?;
    let representation = serde_json::to_value(current).map_err(ApiError::internal)?;
    let document = hal::apply_patch(representation, &patch, &["id", "subscriber_id"])?;
    let view = replace(&state, id, from_document(document)?).await?;
    Ok(hal::updated(&headers, &view))
}

/// Remove every call forward of the subscriber.
#[utoipa::path(delete, path = "/api/callforwards/{id}", tag = "callforwards",
    params(("id" = i64, Path, minimum = 1, description = "Subscriber id")),
    responses((status = 204, description = "Removed")))]
async fn delete_call_forwards(
    State(state): State<AppState>,
    ItemId(id): ItemId,
) -> ApiResult<StatusCode> {
    state.store.get_subscriber(id).await.map_err(store_error)?;
    state
        .store
        .delete_call_forwards(id)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}
