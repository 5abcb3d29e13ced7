//! `/api/{subscriber,domain,customer,peeringserver}preferences/{id}` and the matching
//! `*preferencedefs` collections.
//!
//! An item is one flat object keyed by preference name holding only the values that are set,
//! plus `id` and the owner id (`subscriber_id`, `domain_id`, `customer_id`, `peering_id`).

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};
use store::prelude::*;
use store::{PreferenceDefinition, PreferenceLevel, PreferenceType};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store_error;
use crate::AppState;
use crate::hal;
use crate::problem::{ApiError, ApiResult};

/// A preference item: `id`, the owner id and one member per set preference.
#[derive(Debug, Serialize)]
pub struct PreferencesView {
    /// Owner id (same as the URL id).
    pub id: i64,
    /// HAL links.
    #[serde(rename = "_links")]
    pub links: Value,
}

/// Body of PUT: preference name → value (`boolean`, integer, string, or array of strings).
#[derive(Debug)]
pub struct PreferencesInput;

fn free_form_object(with_id: bool) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let mut builder = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(true)));
    if with_id {
        builder = builder
            .property("id", ObjectBuilder::new().schema_type(Type::Integer))
            .required("id");
    }
    builder.into()
}

impl utoipa::PartialSchema for PreferencesView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        free_form_object(true)
    }
}

impl ToSchema for PreferencesView {}

impl utoipa::PartialSchema for PreferencesInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        free_form_object(false)
    }
}

impl ToSchema for PreferencesInput {}

/// One preference definition.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreferenceDefinitionView {
    /// `boolean`, `int`, `string` or `enum`.
    pub data_type: String,
    /// 1 for scalars, 0 (unbounded) for lists.
    pub max_occur: u32,
    /// Never set through the API.
    pub read_only: bool,
    /// Short name.
    pub label: String,
    /// What it does.
    pub description: String,
    /// Group name.
    pub preference_group: String,
    /// Allowed values of an enum.
    pub enum_values: Vec<EnumValueView>,
}

/// One allowed enum value.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnumValueView {
    /// Display label.
    pub label: String,
    /// The value.
    pub value: String,
    /// Whether it is the default.
    pub default_val: bool,
}

/// All definitions keyed by name.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct PreferenceDefinitionsView(pub BTreeMap<String, PreferenceDefinitionView>);

fn definition_view(definition: PreferenceDefinition) -> PreferenceDefinitionView {
    let default = definition
        .default_value
        .as_ref()
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (data_type, max_occur) = match definition.data_type {
        PreferenceType::Boolean => ("boolean", 1),
        PreferenceType::Int => ("int", 1),
        PreferenceType::String => ("string", 1),
        PreferenceType::Enum => ("enum", 1),
        PreferenceType::List => ("string", 0),
    };
    PreferenceDefinitionView {
        data_type: data_type.to_owned(),
        max_occur,
        read_only: false,
        label: definition.name.clone(),
        description: definition.description,
        preference_group: String::new(),
        enum_values: definition
            .enum_values
            .into_iter()
            .map(|value| EnumValueView {
                label: value.clone(),
                default_val: default.as_deref() == Some(value.as_str()),
                value,
            })
            .collect(),
    }
}

/// Which owner a preference resource belongs to.
#[derive(Debug, Clone, Copy)]
struct Owner {
    level: PreferenceLevel,
    /// `subscriberpreferences` etc.
    collection: &'static str,
    /// `subscriber_id` etc.
    id_member: &'static str,
    /// Owner collection for the link.
    owner_collection: &'static str,
}

const SUBSCRIBER: Owner = Owner {
    level: PreferenceLevel::Subscriber,
    collection: "subscriberpreferences",
    id_member: "subscriber_id",
    owner_collection: "subscribers",
};
const DOMAIN: Owner = Owner {
    level: PreferenceLevel::Domain,
    collection: "domainpreferences",
    id_member: "domain_id",
    owner_collection: "domains",
};
const CUSTOMER: Owner = Owner {
    level: PreferenceLevel::Customer,
    collection: "customerpreferences",
    id_member: "customer_id",
    owner_collection: "customers",
};
const PEER: Owner = Owner {
    level: PreferenceLevel::Peer,
    collection: "peeringserverpreferences",
    id_member: "peering_id",
    owner_collection: "peeringservers",
};

/// 404 unless the owner exists.
async fn ensure_owner(state: &AppState, owner: Owner, id: i64) -> Result<(), ApiError> {
    let result = match owner.level {
        PreferenceLevel::Subscriber => state.store.get_subscriber(id).await.map(drop),
        PreferenceLevel::Domain => state.store.get_domain(id).await.map(drop),
        PreferenceLevel::Customer => state.store.get_customer(id).await.map(drop),
        PreferenceLevel::Peer => state.store.get_peering_server(id).await.map(drop),
    };
    result.map_err(store_error)
}

fn representation(owner: Owner, id: i64, values: BTreeMap<String, Value>) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), Value::from(id));
    map.insert(owner.id_member.into(), Value::from(id));
    for (name, value) in values {
        map.insert(name, value);
    }
    map.insert(
        "_links".into(),
        hal::item_links(
            owner.collection,
            id,
            &[(
                owner.owner_collection,
                format!("/api/{}/{id}", owner.owner_collection),
            )],
        ),
    );
    Value::Object(map)
}

async fn read(state: &AppState, owner: Owner, id: i64) -> Result<Value, ApiError> {
    ensure_owner(state, owner, id).await?;
    let values = state
        .store
        .get_preferences(owner.level, id)
        .await
        .map_err(store_error)?;
    Ok(representation(owner, id, values))
}

/// Strip `id`, the owner id and `_links` (allowed only when they match) and return the values.
fn values_of(owner: Owner, id: i64, document: Value) -> Result<BTreeMap<String, Value>, ApiError> {
    let Value::Object(mut map) = document else {
        return Err(ApiError::unprocessable_entity(
            "The preferences must be a JSON object keyed by preference name.",
        ));
    };
    map.remove("_links");
    for member in ["id", owner.id_member] {
        if let Some(value) = map.remove(member)
            && value.as_i64() != Some(id)
        {
            return Err(ApiError::unprocessable(
                member,
                format!("Field '{member}' is read-only and must equal the id in the URI."),
            ));
        }
    }
    Ok(map.into_iter().collect())
}

async fn replace(
    state: &AppState,
    owner: Owner,
    id: i64,
    values: BTreeMap<String, Value>,
) -> Result<Value, ApiError> {
    ensure_owner(state, owner, id).await?;
    let stored = state
        .store
        .replace_preferences(owner.level, id, &values)
        .await
        .map_err(store_error)?;
    Ok(representation(owner, id, stored))
}

async fn put_preferences(
    state: &AppState,
    owner: Owner,
    id: i64,
    headers: &HeaderMap,
    document: Value,
) -> ApiResult<Response> {
    let values = values_of(owner, id, document)?;
    let view = replace(state, owner, id, values).await?;
    Ok(hal::updated(headers, &view))
}

async fn patch_preferences(
    state: &AppState,
    owner: Owner,
    id: i64,
    headers: &HeaderMap,
    patch: json_patch::Patch,
) -> ApiResult<Response> {
    let current = read(state, owner, id).await?;
    let document = hal::apply_patch(current, &patch, &[])?;
    let values = values_of(owner, id, document)?;
    let view = replace(state, owner, id, values).await?;
    Ok(hal::updated(headers, &view))
}

async fn definitions(state: &AppState, level: PreferenceLevel) -> ApiResult<Response> {
    let definitions = state
        .store
        .list_preference_definitions(Some(level))
        .await
        .map_err(store_error)?;
    let view: BTreeMap<String, PreferenceDefinitionView> = definitions
        .into_iter()
        .map(|definition| (definition.name.clone(), definition_view(definition)))
        .collect();
    Ok(hal::hal_response(&view))
}

/// Generates the GET/PUT/PATCH item handlers and the defs handler of one preference level.
macro_rules! preference_handlers {
    ($owner:expr, $tag:literal, $item_path:literal, $defs_path:literal,
     $get:ident, $put:ident, $patch:ident, $defs:ident) => {
        /// The preferences set on this owner.
        #[utoipa::path(get, path = $item_path, tag = $tag,
            params(("id" = i64, Path, minimum = 1, description = "Owner id")),
            responses((status = 200, description = "Preferences that are set", body = PreferencesView, content_type = "application/hal+json")))]
        async fn $get(
            axum::extract::State(state): axum::extract::State<AppState>,
            crate::extract::ItemId(id): crate::extract::ItemId,
        ) -> ApiResult<Response> {
            Ok(hal::hal_response(&read(&state, $owner, id).await?))
        }

        /// Replace all preferences of this owner; members left out are deleted.
        #[utoipa::path(put, path = $item_path, tag = $tag,
            params(("id" = i64, Path, minimum = 1, description = "Owner id")),
            request_body(content = PreferencesInput, content_type = "application/json"),
            responses((status = 204, description = "Replaced"),
                (status = 200, description = "Replaced (with `Prefer: return=representation`)", body = PreferencesView, content_type = "application/hal+json")))]
        async fn $put(
            axum::extract::State(state): axum::extract::State<AppState>,
            crate::extract::ItemId(id): crate::extract::ItemId,
            headers: HeaderMap,
            crate::extract::JsonBody(document): crate::extract::JsonBody<Value>,
        ) -> ApiResult<Response> {
            put_preferences(&state, $owner, id, &headers, document).await
        }

        /// Change preferences with an RFC 6902 JSON Patch (`add` sets, `remove` deletes).
        #[utoipa::path(patch, path = $item_path, tag = $tag,
            params(("id" = i64, Path, minimum = 1, description = "Owner id")),
            request_body(content = Vec<crate::extract::PatchOperation>, content_type = "application/json-patch+json"),
            responses((status = 204, description = "Changed"),
                (status = 200, description = "Changed (with `Prefer: return=representation`)", body = PreferencesView, content_type = "application/hal+json")))]
        async fn $patch(
            axum::extract::State(state): axum::extract::State<AppState>,
            crate::extract::ItemId(id): crate::extract::ItemId,
            headers: HeaderMap,
            crate::extract::JsonPatchBody(patch): crate::extract::JsonPatchBody,
        ) -> ApiResult<Response> {
            patch_preferences(&state, $owner, id, &headers, patch).await
        }

        /// Preference definitions settable at this level, keyed by name.
        #[utoipa::path(get, path = $defs_path, tag = $tag,
            responses((status = 200, description = "Definitions keyed by name", body = PreferenceDefinitionsView, content_type = "application/hal+json")))]
        async fn $defs(
            axum::extract::State(state): axum::extract::State<AppState>,
        ) -> ApiResult<Response> {
            definitions(&state, $owner.level).await
        }
    };
}

preference_handlers!(
    SUBSCRIBER,
    "subscriberpreferences",
    "/api/subscriberpreferences/{id}",
    "/api/subscriberpreferencedefs/",
    get_subscriber_preferences,
    put_subscriber_preferences,
    patch_subscriber_preferences,
    subscriber_preference_definitions
);
preference_handlers!(
    DOMAIN,
    "domainpreferences",
    "/api/domainpreferences/{id}",
    "/api/domainpreferencedefs/",
    get_domain_preferences,
    put_domain_preferences,
    patch_domain_preferences,
    domain_preference_definitions
);
preference_handlers!(
    CUSTOMER,
    "customerpreferences",
    "/api/customerpreferences/{id}",
    "/api/customerpreferencedefs/",
    get_customer_preferences,
    put_customer_preferences,
    patch_customer_preferences,
    customer_preference_definitions
);
preference_handlers!(
    PEER,
    "peeringserverpreferences",
    "/api/peeringserverpreferences/{id}",
    "/api/peeringserverpreferencedefs/",
    get_peer_preferences,
    put_peer_preferences,
    patch_peer_preferences,
    peer_preference_definitions
);

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            get_subscriber_preferences,
            put_subscriber_preferences,
            patch_subscriber_preferences
        ))
        .routes(routes!(subscriber_preference_definitions))
        .routes(routes!(
            get_domain_preferences,
            put_domain_preferences,
            patch_domain_preferences
        ))
        .routes(routes!(domain_preference_definitions))
        .routes(routes!(
            get_customer_preferences,
            put_customer_preferences,
            patch_customer_preferences
        ))
        .routes(routes!(customer_preference_definitions))
        .routes(routes!(
            get_peer_preferences,
            put_peer_preferences,
            patch_peer_preferences
        ))
        .routes(routes!(peer_preference_definitions))
}
