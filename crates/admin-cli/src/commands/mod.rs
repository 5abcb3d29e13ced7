//! One handler per command; each turns its arguments into API requests and writes the result.

use std::io::Write;

use serde_json::Value;

use crate::args::{AdminCommand, SubscriberRef};
use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::OutputMode;

mod callforward;
mod calls;
mod peering;
mod preference;
mod tenancy;

pub(crate) async fn execute(
    client: &ApiClient,
    command: &AdminCommand,
    mode: OutputMode,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        AdminCommand::Domain(command) => tenancy::domain(client, command, mode, out).await,
        AdminCommand::Customer(command) => tenancy::customer(client, command, mode, out).await,
        AdminCommand::Subscriber(command) => tenancy::subscriber(client, command, mode, out).await,
        AdminCommand::Number(command) => tenancy::number(client, command, mode, out).await,
        AdminCommand::Preference(command) => preference::run(client, command, mode, out).await,
        AdminCommand::CallForward(command) => callforward::run(client, command, mode, out).await,
        AdminCommand::Peer(command) => peering::peer(client, command, mode, out).await,
        AdminCommand::Rewrite(command) => peering::rewrite(client, command, mode, out).await,
        AdminCommand::Calls(command) => calls::run(client, command, mode, out).await,
    }
}

/// The `id` member of an API object.
pub(crate) fn id_of(item: &Value) -> Result<u64, CliError> {
    item.get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| CliError::Protocol {
            url: "API".into(),
            detail: format!("object without a numeric id: {item}"),
        })
}

/// Finds the id of an object in `collection` given either its numeric id or the value of its
/// unique name member (`name_field`), using the collection's filter of the same name.
pub(crate) async fn resolve_id(
    client: &ApiClient,
    collection: &str,
    kind: &'static str,
    name_field: &'static str,
    name_or_id: &str,
) -> Result<u64, CliError> {
    if let Ok(id) = name_or_id.parse::<u64>() {
        return Ok(id);
    }
    let items = client
        .list(collection, &[(name_field, name_or_id.to_owned())])
        .await?;
    items
        .iter()
        .find(|item| {
            item.get(name_field)
                .and_then(Value::as_str)
                .is_some_and(|name| name.eq_ignore_ascii_case(name_or_id))
        })
        .map(id_of)
        .transpose()?
        .ok_or_else(|| CliError::NotFound {
            kind,
            key: name_or_id.to_owned(),
        })
}

/// Fetches a subscriber by id or `username@domain`.
pub(crate) async fn find_subscriber(
    client: &ApiClient,
    subscriber: &SubscriberRef,
) -> Result<Value, CliError> {
    match subscriber {
        SubscriberRef::Id(id) => client.get(&format!("subscribers/{id}"), &[]).await,
        SubscriberRef::Address { username, domain } => {
            let items = client
                .list(
                    "subscribers",
                    &[("username", username.clone()), ("domain", domain.clone())],
                )
                .await?;
            items
                .into_iter()
                .find(|item| {
                    let field = |name: &str| item.get(name).and_then(Value::as_str);
                    field("username") == Some(username.as_str())
                        && field("domain").is_some_and(|d| d.eq_ignore_ascii_case(domain))
                })
                .ok_or_else(|| CliError::NotFound {
                    kind: "subscriber",
                    key: subscriber.to_string(),
                })
        }
    }
}

/// Escapes a member name for use as a JSON Pointer token (RFC 6901 §4).
pub(crate) fn pointer_token(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// `username@domain` of a subscriber object, for messages.
pub(crate) fn subscriber_address(item: &Value) -> String {
    let field = |name: &str| item.get(name).and_then(Value::as_str).unwrap_or("?");
    format!("{}@{}", field("username"), field("domain"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pointer_tokens_escape_tilde_and_slash() {
        assert_eq!(pointer_token("cli"), "cli");
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
    }

    #[test]
    fn id_and_address_of_objects() {
        assert_eq!(id_of(&json!({"id": 5})).ok(), Some(5));
        assert!(id_of(&json!({"id": "x"})).is_err());
        assert_eq!(
            subscriber_address(&json!({"username": "alice", "domain": "example.org"})),
            "alice@example.org"
        );
    }
}
