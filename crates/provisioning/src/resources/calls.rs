//! `/api/calls/`: call detail records made by the mediator (read-only), in ngcp-panel's shape.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use store::cdr::{format_time_ms, parse_time};
use store::{CallStatus, Cdr, CdrFilter, CdrRepository};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store_error;
use crate::AppState;
use crate::extract::{ItemId, QueryParams};
use crate::hal::{self, Paging};
use crate::problem::{ApiError, ApiResult};

const COLLECTION: &str = "calls";

/// One CDR as the API shows it. Times are UTC, `YYYY-MM-DD HH:MM:SS.mmm`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallView {
    /// Row id.
    pub id: i64,
    /// SIP Call-ID of the call.
    pub call_id: String,
    /// `call`, `cfu`, `cfb`, `cft`, `cfna`, `cfs`, `cfr` or `cfo`.
    pub call_type: String,
    /// `ok`, `busy`, `noanswer`, `cancel`, `offline`, `timeout`, `other` or `failed`.
    pub call_status: String,
    /// Final SIP status code of the INVITE (a string, as ngcp).
    pub call_code: String,
    /// When the call was set up.
    pub init_time: String,
    /// Answer time (final response time of an unanswered call).
    pub start_time: String,
    /// Seconds, millisecond precision; 0 for unanswered calls.
    pub duration: f64,
    /// Calling subscriber's UUID.
    pub source_user_id: Option<String>,
    /// Calling subscriber's id.
    pub source_subscriber_id: Option<i64>,
    /// Calling subscriber's customer.
    pub source_customer_id: Option<i64>,
    /// Caller user part.
    pub source_user: String,
    /// Caller domain.
    pub source_domain: String,
    /// Calling line identity.
    pub source_cli: String,
    /// Address the call came from.
    pub source_ip: String,
    /// Called subscriber's UUID.
    pub destination_user_id: Option<String>,
    /// Called subscriber's id.
    pub destination_subscriber_id: Option<i64>,
    /// Called subscriber's customer.
    pub destination_customer_id: Option<i64>,
    /// Callee user part.
    pub destination_user: String,
    /// Callee domain.
    pub destination_domain: String,
    /// The number or user as dialed.
    pub destination_user_dialed: String,
    /// Request-URI user as it came in.
    pub destination_user_in: String,
    /// Request-URI host as it came in.
    pub destination_domain_in: String,
    /// `unrated` (rating is not done yet).
    pub rating_status: String,
    /// `unexported` or `ok`.
    pub export_status: String,
    /// When `voxide cdr export` wrote it.
    pub exported_at: Option<String>,
    /// HAL links.
    #[serde(rename = "_links")]
    #[schema(value_type = Object)]
    pub links: serde_json::Value,
}

impl From<Cdr> for CallView {
    fn from(cdr: Cdr) -> Self {
        let mut relations = Vec::new();
        for subscriber in [cdr.source_subscriber_id, cdr.destination_subscriber_id]
            .into_iter()
            .flatten()
        {
            relations.push(("subscribers", format!("/api/subscribers/{subscriber}")));
        }
        Self {
            links: hal::item_links(COLLECTION, cdr.id, &relations),
            id: cdr.id,
            call_id: cdr.call_id,
            call_type: cdr.call_type.to_string(),
            call_status: cdr.call_status.to_string(),
            call_code: cdr.call_code.to_string(),
            init_time: format_time_ms(cdr.init_time_ms),
            start_time: format_time_ms(cdr.start_time_ms),
            duration: cdr.duration_ms as f64 / 1000.0,
            source_user_id: cdr.source_user_id,
            source_subscriber_id: cdr.source_subscriber_id,
            source_customer_id: cdr.source_customer_id,
            source_user: cdr.source_user,
            source_domain: cdr.source_domain,
            source_cli: cdr.source_cli,
            source_ip: cdr.source_ip,
            destination_user_id: cdr.destination_user_id,
            destination_subscriber_id: cdr.destination_subscriber_id,
            destination_customer_id: cdr.destination_customer_id,
            destination_user: cdr.destination_user,
            destination_domain: cdr.destination_domain,
            destination_user_dialed: cdr.destination_user_dialed,
            destination_user_in: cdr.destination_user_in,
            destination_domain_in: cdr.destination_domain_in,
            rating_status: cdr.rating_status,
            export_status: cdr.export_status.to_string(),
            exported_at: cdr.exported_at_ms.map(format_time_ms),
        }
    }
}

/// A call's status, as the `call_status` filter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallStatusValue {
    /// Answered (200).
    Ok,
    /// 486.
    Busy,
    /// 480.
    Noanswer,
    /// 487.
    Cancel,
    /// 404.
    Offline,
    /// 408.
    Timeout,
    /// Any other final code.
    Other,
    /// Answered, but its BYE never came.
    Failed,
}

impl From<CallStatusValue> for CallStatus {
    fn from(value: CallStatusValue) -> Self {
        match value {
            CallStatusValue::Ok => CallStatus::Ok,
            CallStatusValue::Busy => CallStatus::Busy,
            CallStatusValue::Noanswer => CallStatus::NoAnswer,
            CallStatusValue::Cancel => CallStatus::Cancel,
            CallStatusValue::Offline => CallStatus::Offline,
            CallStatusValue::Timeout => CallStatus::Timeout,
            CallStatusValue::Other => CallStatus::Other,
            CallStatusValue::Failed => CallStatus::Failed,
        }
    }
}

/// Query parameters of `GET /api/calls/`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CallQuery {
    /// Page number (from 1).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// Items per page (1–1000).
    #[param(minimum = 1, maximum = 1000)]
    pub rows: Option<u32>,
    /// Calls out of or into this subscriber.
    pub subscriber_id: Option<i64>,
    /// Calls with this customer on either side.
    pub customer_id: Option<i64>,
    /// Calls that ended with this status.
    pub call_status: Option<CallStatusValue>,
    /// Exact SIP Call-ID.
    pub call_id: Option<String>,
    /// Start time at or after: RFC 3339 (`2026-11-25T10:00:00Z`; `2026-11-25` and
    /// `2026-11-25 10:00:00`, taken as UTC, are accepted too).
    #[param(format = DateTime)]
    pub start_ge: Option<String>,
    /// Start time at or before, same formats.
    #[param(format = DateTime)]
    pub start_le: Option<String>,
}

hal_collection!(CallCollection, CallEmbedded, CallView, "ngcp:calls");

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_calls))
        .routes(routes!(get_call))
}

fn time_filter(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            parse_time(text).map_err(|reason| {
                ApiError::bad_request(format!("Invalid '{field}': {reason}.")).with_field(field)
            })
        })
        .transpose()
}

/// List calls (CDRs), newest start time first.
#[utoipa::path(get, path = "/api/calls/", tag = "calls", params(CallQuery),
    responses((status = 200, description = "A page of calls", body = CallCollection, content_type = "application/hal+json")))]
async fn list_calls(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<CallQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let paging = Paging::from_query(query.page, query.rows)?;
    let call_status = query.call_status.map(CallStatus::from);
    let filter = CdrFilter {
        subscriber_id: query.subscriber_id,
        customer_id: query.customer_id,
        call_status,
        call_id: query.call_id,
        start_ge_ms: time_filter("start_ge", query.start_ge.as_deref())?,
        start_le_ms: time_filter("start_le", query.start_le.as_deref())?,
    };
    let page = state
        .store
        .list_cdrs(&filter, paging.store_page())
        .await
        .map_err(store_error)?;
    let items: Vec<CallView> = page.items.into_iter().map(CallView::from).collect();
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

/// One call.
#[utoipa::path(get, path = "/api/calls/{id}", tag = "calls",
    params(("id" = i64, Path, minimum = 1, description = "Call id")),
    responses((status = 200, description = "The call", body = CallView, content_type = "application/hal+json")))]
async fn get_call(State(state): State<AppState>, ItemId(id): ItemId) -> ApiResult<Response> {
    let cdr = state.store.get_cdr(id).await.map_err(store_error)?;
    Ok(hal::hal_response(&CallView::from(cdr)))
}

#[cfg(test)]
mod status_filter_tests {
    use super::*;

    #[test]
    fn every_store_status_is_a_filter_value_and_back() {
        for status in CallStatus::ALL {
            let value: CallStatusValue =
                serde_json::from_value(serde_json::json!(status.as_str())).expect("a filter value");
            assert_eq!(CallStatus::from(value), *status);
        }
        assert!(serde_json::from_value::<CallStatusValue>(serde_json::json!("")).is_err());
    }
}
