//! `callforward show|set|clear` through the simple `callforwards` view.

use std::io::Write;

use serde_json::{Value, json};

use super::{find_subscriber, id_of, subscriber_address};
use crate::args::{CallForwardCommand, CallForwardType};
use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::{OutputMode, write_json};

pub(super) async fn run(
    client: &ApiClient,
    command: &CallForwardCommand,
    mode: OutputMode,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        CallForwardCommand::Show { subscriber } => {
            let item = find_subscriber(client, subscriber).await?;
            let forwards = client
                .get(&format!("callforwards/{}", id_of(&item)?), &[])
                .await?;
            write_forwards(out, mode, &forwards)
        }
        CallForwardCommand::Set {
            subscriber,
            kind,
            destinations,
            timeout,
            ringtimeout,
        } => {
            if ringtimeout.is_some() && *kind != CallForwardType::Cft {
                return Err(CliError::argument(
                    "--ringtimeout",
                    "only applies to cft (call forward on no answer)",
                ));
            }
            let item = find_subscriber(client, subscriber).await?;
            let path = format!("callforwards/{}", id_of(&item)?);
            let value = forward_value(destinations, *timeout, *ringtimeout);
            client
                .patch(
                    &path,
                    &json!([{"op": "replace", "path": format!("/{}", kind.api_name()), "value": value}]),
                )
                .await?;
            let forwards = client.get(&path, &[]).await?;
            if mode == OutputMode::Table {
                writeln!(
                    out,
                    "set {} of {}",
                    kind.api_name(),
                    subscriber_address(&item)
                )?;
            }
            write_forwards(out, mode, &forwards)
        }
        CallForwardCommand::Clear { subscriber, kind } => {
            let item = find_subscriber(client, subscriber).await?;
            let path = format!("callforwards/{}", id_of(&item)?);
            let address = subscriber_address(&item);
            match kind {
                Some(kind) => {
                    client
                        .patch(
                            &path,
                            &json!([{"op": "replace", "path": format!("/{}", kind.api_name()), "value": {}}]),
                        )
                        .await?;
                }
                None => client.delete(&path).await?,
            }
            let forwards = client.get(&path, &[]).await?;
            if mode == OutputMode::Table {
                let what = kind.map_or("all call forwards", CallForwardType::api_name);
                writeln!(out, "cleared {what} of {address}")?;
            }
            write_forwards(out, mode, &forwards)
        }
    }
}

/// One call forward type as the API takes it: destinations hunted in the order given
/// (priority 1, 2, …), always active, from any caller.
pub(crate) fn forward_value(
    destinations: &[String],
    timeout: u32,
    ringtimeout: Option<u32>,
) -> Value {
    let destinations: Vec<Value> = destinations
        .iter()
        .zip(1u32..)
        .map(|(destination, priority)| {
            json!({"destination": destination, "timeout": timeout, "priority": priority})
        })
        .collect();
    let mut value = json!({"destinations": destinations, "times": [], "sources": []});
    if let Some(ringtimeout) = ringtimeout {
        value["ringtimeout"] = json!(ringtimeout);
    }
    value
}

/// A TYPE / DESTINATIONS table (or the raw object in JSON mode).
fn write_forwards(out: &mut dyn Write, mode: OutputMode, forwards: &Value) -> Result<(), CliError> {
    if mode == OutputMode::Json {
        return write_json(out, forwards);
    }
    writeln!(out, "TYPE  DESTINATIONS")?;
    for kind in CallForwardType::ALL {
        writeln!(
            out,
            "{:<4}  {}",
            kind.api_name(),
            describe(forwards.get(kind.api_name()))
        )?;
    }
    Ok(())
}

/// `4311 (20s), voicebox (300s)`, plus the ring time for cft; `-` when unset.
fn describe(forward: Option<&Value>) -> String {
    let Some(destinations) = forward
        .and_then(|f| f.get("destinations"))
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
    else {
        return "-".to_owned();
    };
    let mut sorted: Vec<&Value> = destinations.iter().collect();
    sorted.sort_by_key(|d| d.get("priority").and_then(Value::as_i64).unwrap_or(0));
    let mut text = sorted
        .iter()
        .map(|d| {
            let target = d
                .get("simple_destination")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .or_else(|| d.get("destination").and_then(Value::as_str))
                .unwrap_or("?");
            match d.get("timeout").and_then(Value::as_u64) {
                Some(timeout) => format!("{target} ({timeout}s)"),
                None => target.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(ring) = forward
        .and_then(|f| f.get("ringtimeout"))
        .and_then(Value::as_u64)
    {
        text.push_str(&format!("; rings {ring}s first"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_value_orders_destinations_by_priority() {
        let value = forward_value(&["4311".into(), "voicebox".into()], 20, Some(15));
        assert_eq!(
            value,
            json!({
                "destinations": [
                    {"destination": "4311", "timeout": 20, "priority": 1},
                    {"destination": "voicebox", "timeout": 20, "priority": 2}
                ],
                "times": [], "sources": [], "ringtimeout": 15
            })
        );
        assert!(
            forward_value(&["1".into()], 300, None)
                .get("ringtimeout")
                .is_none()
        );
    }

    #[test]
    fn table_shows_each_type_in_priority_order() {
        let forwards = json!({
            "cfu": {},
            "cfb": {"destinations": [{"destination": "voicebox", "timeout": 300, "priority": 1}]},
            "cft": {"destinations": [
                {"destination": "sip:b@example.org", "simple_destination": "b", "timeout": 10, "priority": 2},
                {"destination": "4311", "timeout": 20, "priority": 1}
            ], "ringtimeout": 15},
        });
        let mut out = Vec::new();
        write_forwards(&mut out, OutputMode::Table, &forwards).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "TYPE  DESTINATIONS\n\
             cfu   -\n\
             cfb   voicebox (300s)\n\
             cft   4311 (20s), b (10s); rings 15s first\n\
             cfna  -\n"
        );
    }
}
