//! `preference get|set|unset` on subscribers, domains and customers, with values typed by the
//! API's preference definitions (`<level>preferencedefs`).

use std::io::Write;

use serde_json::{Map, Value, json};

use super::{find_subscriber, id_of, pointer_token, resolve_id};
use crate::args::{PreferenceCommand, PreferenceTarget};
use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::{OutputMode, cell_text, write_done, write_json};

/// A resolved preference owner.
struct Owner {
    /// `subscriber`, `domain`, `customer` or `peeringserver`: the API names are
    /// `<level>preferences`.
    level: &'static str,
    id: u64,
    /// How to name the owner in messages.
    label: String,
}

/// Members of a preferences object that are not preferences.
const BOOKKEEPING: [&str; 6] = [
    "id",
    "subscriber_id",
    "domain_id",
    "customer_id",
    "peering_id",
    "_links",
];

async fn resolve_owner(client: &ApiClient, target: &PreferenceTarget) -> Result<Owner, CliError> {
    if let Some(subscriber) = &target.subscriber {
        let item = find_subscriber(client, subscriber).await?;
        return Ok(Owner {
            level: "subscriber",
            id: id_of(&item)?,
            label: format!("subscriber {subscriber}"),
        });
    }
    if let Some(domain) = &target.domain {
        let id = resolve_id(client, "domains", "domain", "domain", domain).await?;
        return Ok(Owner {
            level: "domain",
            id,
            label: format!("domain {domain}"),
        });
    }
    if let Some(server) = &target.peer_server {
        let id = resolve_id(client, "peeringservers", "peering server", "name", server).await?;
        return Ok(Owner {
            level: "peeringserver",
            id,
            label: format!("peering server {server}"),
        });
    }
    if let Some(customer) = target.customer {
        return Ok(Owner {
            level: "customer",
            id: customer,
            label: format!("customer {customer}"),
        });
    }
    // clap's group makes one target required.
    Err(CliError::argument(
        "--subscriber",
        "give --subscriber, --domain, --customer or --peer-server",
    ))
}

pub(super) async fn run(
    client: &ApiClient,
    command: &PreferenceCommand,
    mode: OutputMode,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        PreferenceCommand::Get { target, name } => {
            let owner = resolve_owner(client, target).await?;
            let current = client
                .get(&format!("{}preferences/{}", owner.level, owner.id), &[])
                .await?;
            let preferences = preferences_of(&current);
            let shown: Map<String, Value> = match name {
                Some(name) => [(
                    name.clone(),
                    preferences.get(name).cloned().unwrap_or(Value::Null),
                )]
                .into_iter()
                .collect(),
                None => preferences,
            };
            match mode {
                OutputMode::Json => write_json(out, &Value::Object(shown)),
                OutputMode::Table => write_preference_table(out, &shown),
            }
        }
        PreferenceCommand::Set {
            target,
            name,
            values,
        } => {
            let owner = resolve_owner(client, target).await?;
            let definitions = definitions(client, owner.level).await?;
            let definition = match &definitions {
                Some(all) => Some(all.get(name).ok_or_else(|| {
                    CliError::argument(
                        "preference",
                        format!("unknown {} preference '{name}'", owner.level),
                    )
                })?),
                None => None,
            };
            let value = typed_value(name, definition, values)?;
            client
                .patch(
                    &format!("{}preferences/{}", owner.level, owner.id),
                    &json!([{"op": "add", "path": format!("/{}", pointer_token(name)), "value": value}]),
                )
                .await?;
            write_done(
                out,
                mode,
                &format!("set {name} = {} on {}", cell_text(&value), owner.label),
                &json!({ name.as_str(): value }),
            )
        }
        PreferenceCommand::Unset { target, name } => {
            let owner = resolve_owner(client, target).await?;
            let path = format!("{}preferences/{}", owner.level, owner.id);
            let current = client.get(&path, &[]).await?;
            let was_set = preferences_of(&current).contains_key(name);
            if was_set {
                client
                    .patch(
                        &path,
                        &json!([{"op": "remove", "path": format!("/{}", pointer_token(name))}]),
                    )
                    .await?;
            }
            let message = if was_set {
                format!("removed {name} from {}", owner.label)
            } else {
                format!("{name} was not set on {}", owner.label)
            };
            write_done(out, mode, &message, &json!({ name.as_str(): Value::Null }))
        }
    }
}

fn preferences_of(object: &Value) -> Map<String, Value> {
    object
        .as_object()
        .map(|all| {
            all.iter()
                .filter(|(key, _)| !BOOKKEEPING.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn write_preference_table(out: &mut dyn Write, shown: &Map<String, Value>) -> Result<(), CliError> {
    if shown.is_empty() {
        writeln!(out, "(no preferences set)")?;
        return Ok(());
    }
    let width = shown
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max("PREFERENCE".len());
    writeln!(out, "{:<width$}  VALUE", "PREFERENCE")?;
    for (name, value) in shown {
        let text = if value.is_null() {
            "(not set)".to_owned()
        } else {
            cell_text(value)
        };
        writeln!(out, "{name:<width$}  {text}")?;
    }
    Ok(())
}

/// The preference definitions of a level, or `None` when the server does not publish them
/// (then values are guessed from their text).
async fn definitions(
    client: &ApiClient,
    level: &str,
) -> Result<Option<Map<String, Value>>, CliError> {
    match client.get(&format!("{level}preferencedefs/"), &[]).await {
        Ok(Value::Object(all)) => Ok(Some(all)),
        Ok(_) | Err(CliError::Api { status: 404, .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Converts the command-line text(s) to the JSON the API expects for this preference:
/// by `data_type` (boolean, int, string, enum) and `max_occur` (1 = scalar, else array).
pub(crate) fn typed_value(
    name: &str,
    definition: Option<&Value>,
    values: &[String],
) -> Result<Value, CliError> {
    let Some(definition) = definition else {
        return Ok(guessed_value(values));
    };
    let data_type = definition
        .get("data_type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let max_occur = definition
        .get("max_occur")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    if definition.get("read_only").and_then(Value::as_bool) == Some(true) {
        return Err(CliError::argument(
            "preference",
            format!("'{name}' is read-only"),
        ));
    }
    let scalars = values
        .iter()
        .map(|text| typed_scalar(name, data_type, definition, text))
        .collect::<Result<Vec<_>, _>>()?;
    if max_occur == 1 {
        let mut scalars = scalars.into_iter();
        match (scalars.next(), scalars.next()) {
            (Some(only), None) => Ok(only),
            _ => Err(CliError::argument(
                "value",
                format!("preference '{name}' takes exactly one value"),
            )),
        }
    } else {
        if max_occur > 1 && scalars.len() as u64 > max_occur {
            return Err(CliError::argument(
                "value",
                format!("preference '{name}' takes at most {max_occur} values"),
            ));
        }
        Ok(Value::Array(scalars))
    }
}

fn typed_scalar(
    name: &str,
    data_type: &str,
    definition: &Value,
    text: &str,
) -> Result<Value, CliError> {
    match data_type {
        "boolean" => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "off" | "0" => Ok(Value::Bool(false)),
            _ => Err(CliError::argument(
                "value",
                format!("'{text}' is not a boolean (true/false) for preference '{name}'"),
            )),
        },
        "int" => text.parse::<i64>().map(Value::from).map_err(|_| {
            CliError::argument(
                "value",
                format!("'{text}' is not an integer for preference '{name}'"),
            )
        }),
        "enum" => {
            let allowed: Vec<&str> = definition
                .get("enum_values")
                .and_then(Value::as_array)
                .map(|values| {
                    values
                        .iter()
                        .filter_map(|v| v.get("value").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            if allowed.is_empty() || allowed.contains(&text) {
                Ok(Value::from(text))
            } else {
                Err(CliError::argument(
                    "value",
                    format!(
                        "'{text}' is not one of {} for preference '{name}'",
                        allowed.join(", ")
                    ),
                ))
            }
        }
        _ => Ok(Value::from(text)),
    }
}

/// Without definitions: `true`/`false` and integers become JSON booleans and numbers, anything
/// else a string; several values make an array.
fn guessed_value(values: &[String]) -> Value {
    let guess = |text: &String| match text.as_str() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => text
            .parse::<i64>()
            .ok()
            .filter(|n| n.to_string() == *text)
            .map_or_else(|| Value::from(text.as_str()), Value::from),
    };
    match values {
        [one] => guess(one),
        many => Value::Array(many.iter().map(guess).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn values_follow_the_definition_type() {
        let boolean = json!({"data_type": "boolean", "max_occur": 1});
        assert_eq!(
            typed_value("clir", Some(&boolean), &strings(&["yes"])).ok(),
            Some(json!(true))
        );
        assert_eq!(
            typed_value("clir", Some(&boolean), &strings(&["0"])).ok(),
            Some(json!(false))
        );
        let error =
            typed_value("clir", Some(&boolean), &strings(&["maybe"])).expect_err("not bool");
        assert_eq!(
            error.to_string(),
            "value: 'maybe' is not a boolean (true/false) for preference 'clir'"
        );

        let int = json!({"data_type": "int", "max_occur": 1});
        assert_eq!(
            typed_value("concurrent_max", Some(&int), &strings(&["5"])).ok(),
            Some(json!(5))
        );
        assert!(typed_value("concurrent_max", Some(&int), &strings(&["five"])).is_err());

        // A number-looking string preference stays a string (cli = "431234").
        let string = json!({"data_type": "string", "max_occur": 1});
        assert_eq!(
            typed_value("cli", Some(&string), &strings(&["431234"])).ok(),
            Some(json!("431234"))
        );
    }

    #[test]
    fn enums_are_checked_against_their_values() {
        let definition = json!({"data_type": "enum", "max_occur": 1, "enum_values": [
            {"label": "use default", "value": null, "default_val": true},
            {"label": "strict", "value": "strict", "default_val": false},
            {"label": "loose", "value": "loose", "default_val": false}
        ]});
        assert_eq!(
            typed_value("mode", Some(&definition), &strings(&["loose"])).ok(),
            Some(json!("loose"))
        );
        let error =
            typed_value("mode", Some(&definition), &strings(&["lax"])).expect_err("not in enum");
        assert!(error.to_string().contains("strict, loose"), "{error}");
    }

    #[test]
    fn list_preferences_become_arrays_and_scalars_take_one_value() {
        let list = json!({"data_type": "string", "max_occur": 0});
        assert_eq!(
            typed_value(
                "allowed_ips",
                Some(&list),
                &strings(&["192.0.2.0/24", "198.51.100.7"])
            )
            .ok(),
            Some(json!(["192.0.2.0/24", "198.51.100.7"]))
        );
        assert_eq!(
            typed_value("allowed_ips", Some(&list), &strings(&["192.0.2.0/24"])).ok(),
            Some(json!(["192.0.2.0/24"]))
        );
        let scalar = json!({"data_type": "string", "max_occur": 1});
        let error =
            typed_value("cli", Some(&scalar), &strings(&["1", "2"])).expect_err("two values");
        assert!(error.to_string().contains("exactly one"), "{error}");
    }

    #[test]
    fn read_only_preferences_are_refused() {
        let definition = json!({"data_type": "string", "max_occur": 1, "read_only": true});
        assert!(typed_value("lock", Some(&definition), &strings(&["1"])).is_err());
    }

    #[test]
    fn without_definitions_values_are_guessed() {
        assert_eq!(
            typed_value("x", None, &strings(&["true"])).ok(),
            Some(json!(true))
        );
        assert_eq!(
            typed_value("x", None, &strings(&["42"])).ok(),
            Some(json!(42))
        );
        assert_eq!(
            typed_value("x", None, &strings(&["0042"])).ok(),
            Some(json!("0042"))
        );
        assert_eq!(
            typed_value("x", None, &strings(&["a", "1"])).ok(),
            Some(json!(["a", 1]))
        );
    }

    #[test]
    fn bookkeeping_members_are_not_preferences() {
        let object =
            json!({"id": 4, "subscriber_id": 4, "_links": {}, "cli": "4311", "clir": true});
        let preferences = preferences_of(&object);
        assert_eq!(preferences.keys().collect::<Vec<_>>(), ["cli", "clir"]);
        let mut out = Vec::new();
        write_preference_table(&mut out, &preferences).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "PREFERENCE  VALUE\ncli         4311\nclir        true\n"
        );
    }
}
