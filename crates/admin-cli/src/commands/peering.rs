//! Peering groups, servers and outbound rules; rewrite rule sets and rules.

use std::io::Write;

use serde_json::{Value, json};

use super::{id_of, resolve_id};
use crate::args::{
    PeerCommand, PeerGroupCommand, PeerRuleCommand, PeerServerCommand, RewriteCommand,
    RewriteRuleCommand, RewriteSetCommand,
};
use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::{Column, OutputMode, column, write_done, write_list};

const GROUP_COLUMNS: [Column; 4] = [
    column("ID", "/id"),
    column("NAME", "/name"),
    column("PRIORITY", "/priority"),
    column("DESCRIPTION", "/description"),
];

const SERVER_COLUMNS: [Column; 9] = [
    column("ID", "/id"),
    column("GROUP", "/group_id"),
    column("NAME", "/name"),
    column("IP", "/ip"),
    column("HOST", "/host"),
    column("PORT", "/port"),
    column("TRANSPORT", "/transport"),
    column("WEIGHT", "/weight"),
    column("ENABLED", "/enabled"),
];

const RULE_COLUMNS: [Column; 8] = [
    column("ID", "/id"),
    column("GROUP", "/group_id"),
    column("CALLEE PREFIX", "/callee_prefix"),
    column("CALLEE PATTERN", "/callee_pattern"),
    column("CALLER PATTERN", "/caller_pattern"),
    column("STOPPER", "/stopper"),
    column("ENABLED", "/enabled"),
    column("DESCRIPTION", "/description"),
];

const REWRITE_SET_COLUMNS: [Column; 3] = [
    column("ID", "/id"),
    column("NAME", "/name"),
    column("DESCRIPTION", "/description"),
];

const REWRITE_RULE_COLUMNS: [Column; 8] = [
    column("ID", "/id"),
    column("DIRECTION", "/direction"),
    column("FIELD", "/field"),
    column("PRIORITY", "/priority"),
    column("MATCH", "/match_pattern"),
    column("REPLACE", "/replace_pattern"),
    column("ENABLED", "/enabled"),
    column("DESCRIPTION", "/description"),
];

/// DELETE one item and confirm it.
async fn delete(
    client: &ApiClient,
    out: &mut dyn Write,
    mode: OutputMode,
    collection: &str,
    kind: &str,
    id: u64,
    given: &str,
) -> Result<(), CliError> {
    client.delete(&format!("{collection}/{id}")).await?;
    let message = if given == id.to_string() {
        format!("deleted {kind} {id}")
    } else {
        format!("deleted {kind} {id} ({given})")
    };
    write_done(out, mode, &message, &json!({"id": id, "deleted": true}))
}

async fn group_id(client: &ApiClient, group: &str) -> Result<u64, CliError> {
    resolve_id(client, "peeringgroups", "peering group", "name", group).await
}

/// Adds `key: value` to a JSON object when the value is given.
fn insert_some(body: &mut Value, key: &str, value: Option<&String>) {
    if let (Some(value), Some(object)) = (value, body.as_object_mut()) {
        object.insert(key.to_owned(), Value::from(value.as_str()));
    }
}

pub(super) async fn peer(
    client: &ApiClient,
    command: &PeerCommand,
    mode: OutputMode,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        PeerCommand::Group(PeerGroupCommand::Add {
            name,
            priority,
            description,
        }) => {
            let mut body = json!({"name": name, "priority": priority});
            insert_some(&mut body, "description", description.as_ref());
            let created = client.create("peeringgroups", &body).await?;
            let id = id_of(&created)?;
            write_done(
                out,
                mode,
                &format!("created peering group {id} ({name})"),
                &created,
            )
        }
        PeerCommand::Group(PeerGroupCommand::List) => {
            let items = client.list("peeringgroups", &[]).await?;
            write_list(out, mode, &GROUP_COLUMNS, &items)
        }
        PeerCommand::Group(PeerGroupCommand::Rm { group }) => {
            let id = group_id(client, group).await?;
            delete(
                client,
                out,
                mode,
                "peeringgroups",
                "peering group",
                id,
                group,
            )
            .await
        }
        PeerCommand::Server(PeerServerCommand::Rm { server }) => {
            let id = resolve_id(client, "peeringservers", "peering server", "name", server).await?;
            delete(
                client,
                out,
                mode,
                "peeringservers",
                "peering server",
                id,
                server,
            )
            .await
        }
        PeerCommand::Rule(PeerRuleCommand::Rm { id }) => {
            delete(
                client,
                out,
                mode,
                "peeringrules",
                "peering rule",
                *id,
                &id.to_string(),
            )
            .await
        }
        PeerCommand::Server(PeerServerCommand::Add {
            group,
            name,
            ip,
            host,
            port,
            transport,
            weight,
            probe,
            disabled,
        }) => {
            let group_id = group_id(client, group).await?;
            let mut body = json!({
                "group_id": group_id,
                "name": name,
                "ip": ip.to_string(),
                "port": port,
                "transport": transport.api_name(),
                "weight": weight,
                "probe": probe,
                "enabled": !disabled,
            });
            insert_some(&mut body, "host", host.as_ref());
            let created = client.create("peeringservers", &body).await?;
            let id = id_of(&created)?;
            write_done(
                out,
                mode,
                &format!("created peering server {id} ({name}, {ip}:{port}) in group {group}"),
                &created,
            )
        }
        PeerCommand::Server(PeerServerCommand::List { group }) => {
            let filters = match group {
                Some(group) => vec![("group_id", group_id(client, group).await?.to_string())],
                None => Vec::new(),
            };
            let items = client.list("peeringservers", &filters).await?;
            write_list(out, mode, &SERVER_COLUMNS, &items)
        }
        PeerCommand::Rule(PeerRuleCommand::Add {
            group,
            callee_prefix,
            callee_pattern,
            caller_pattern,
            description,
            stopper,
            disabled,
        }) => {
            let group_id = group_id(client, group).await?;
            let mut body = json!({
                "group_id": group_id,
                "callee_prefix": callee_prefix.clone().unwrap_or_default(),
                "stopper": stopper,
                "enabled": !disabled,
            });
            insert_some(&mut body, "callee_pattern", callee_pattern.as_ref());
            insert_some(&mut body, "caller_pattern", caller_pattern.as_ref());
            insert_some(&mut body, "description", description.as_ref());
            let created = client.create("peeringrules", &body).await?;
            let id = id_of(&created)?;
            write_done(
                out,
                mode,
                &format!("created peering rule {id} in group {group}"),
                &created,
            )
        }
        PeerCommand::Rule(PeerRuleCommand::List { group }) => {
            let filters = match group {
                Some(group) => vec![("group_id", group_id(client, group).await?.to_string())],
                None => Vec::new(),
            };
            let items = client.list("peeringrules", &filters).await?;
            write_list(out, mode, &RULE_COLUMNS, &items)
        }
    }
}

pub(super) async fn rewrite(
    client: &ApiClient,
    command: &RewriteCommand,
    mode: OutputMode,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        RewriteCommand::Set(RewriteSetCommand::Add { name, description }) => {
            let mut body = json!({ "name": name });
            insert_some(&mut body, "description", description.as_ref());
            let created = client.create("rewriterulesets", &body).await?;
            let id = id_of(&created)?;
            write_done(
                out,
                mode,
                &format!("created rewrite rule set {id} ({name})"),
                &created,
            )
        }
        RewriteCommand::Set(RewriteSetCommand::List) => {
            let items = client.list("rewriterulesets", &[]).await?;
            write_list(out, mode, &REWRITE_SET_COLUMNS, &items)
        }
        RewriteCommand::Set(RewriteSetCommand::Rm { set }) => {
            let id = resolve_id(client, "rewriterulesets", "rewrite rule set", "name", set).await?;
            delete(
                client,
                out,
                mode,
                "rewriterulesets",
                "rewrite rule set",
                id,
                set,
            )
            .await
        }
        RewriteCommand::Rule(RewriteRuleCommand::Rm { id }) => {
            delete(
                client,
                out,
                mode,
                "rewriterules",
                "rewrite rule",
                *id,
                &id.to_string(),
            )
            .await
        }
        RewriteCommand::Rule(RewriteRuleCommand::Add {
            set,
            match_pattern,
            replace_pattern,
            description,
            direction,
            field,
            priority,
            disabled,
        }) => {
            let set_id =
                resolve_id(client, "rewriterulesets", "rewrite rule set", "name", set).await?;
            let body = json!({
                "set_id": set_id,
                "match_pattern": match_pattern,
                "replace_pattern": replace_pattern,
                "description": description,
                "direction": direction.api_name(),
                "field": field.api_name(),
                "priority": priority,
                "enabled": !disabled,
            });
            let created = client.create("rewriterules", &body).await?;
            let id = id_of(&created)?;
            write_done(
                out,
                mode,
                &format!(
                    "created rewrite rule {id} in set {set}: {} {} {match_pattern} -> {replace_pattern}",
                    direction.api_name(),
                    field.api_name()
                ),
                &created,
            )
        }
        RewriteCommand::Apply {
            subscriber,
            number,
            list,
        } => {
            let found = super::find_subscriber(client, subscriber).await?;
            let id = id_of(&found)?;
            let answer = client
                .post(
                    "applyrewrites/",
                    &json!({"subscriber_id": id, "direction": list.api_name(), "number": number}),
                )
                .await?;
            let result = answer.get("result").and_then(Value::as_str).unwrap_or("");
            let rule = match answer.get("rule_id").and_then(Value::as_i64) {
                Some(rule) => format!("rule {rule}"),
                None => "no rule matched".to_owned(),
            };
            write_done(
                out,
                mode,
                &format!(
                    "{number} -> {result} ({} for {subscriber}, {rule})",
                    list.api_name()
                ),
                &answer,
            )
        }
        RewriteCommand::Rule(RewriteRuleCommand::List { set }) => {
            let set_id =
                resolve_id(client, "rewriterulesets", "rewrite rule set", "name", set).await?;
            let items = client
                .list("rewriterules", &[("set_id", set_id.to_string())])
                .await?;
            write_list(out, mode, &REWRITE_RULE_COLUMNS, &items)
        }
    }
}
