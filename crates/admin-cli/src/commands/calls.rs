//! `calls list|show`: call detail records (`/api/calls`), read-only.

use std::io::Write;

use serde_json::Value;

use super::{find_subscriber, id_of};
use crate::args::CallsCommand;
use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::{Column, OutputMode, column, write_item, write_json, write_list};

const CALL_COLUMNS: [Column; 8] = [
    column("ID", "/id"),
    column("START", "/start_time"),
    column("DURATION", "/duration"),
    column("STATUS", "/call_status"),
    column("CODE", "/call_code"),
    column("TYPE", "/call_type"),
    column("FROM", "/source_cli"),
    column("TO", "/destination_user_dialed"),
];

pub(super) async fn run(
    client: &ApiClient,
    command: &CallsCommand,
    mode: OutputMode,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        CallsCommand::List {
            subscriber,
            customer,
            status,
            since,
            until,
            page,
            rows,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(subscriber) = subscriber {
                let item = find_subscriber(client, subscriber).await?;
                query.push(("subscriber_id", id_of(&item)?.to_string()));
            }
            if let Some(customer) = customer {
                query.push(("customer_id", customer.to_string()));
            }
            if let Some(status) = status {
                query.push(("call_status", status.clone()));
            }
            if let Some(since) = since {
                query.push(("start_ge", since.clone()));
            }
            if let Some(until) = until {
                query.push(("start_le", until.clone()));
            }
            query.push(("page", page.to_string()));
            query.push(("rows", rows.to_string()));
            let body = client.get("calls/", &query).await?;
            let items = match body.pointer("/_embedded/ngcp:calls") {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            };
            if mode == OutputMode::Json {
                return write_json(out, &Value::Array(items));
            }
            write_list(out, mode, &CALL_COLUMNS, &items)?;
            let total = body.get("total_count").and_then(Value::as_u64).unwrap_or(0);
            writeln!(out, "page {page}: {} of {total} calls", items.len())?;
            Ok(())
        }
        CallsCommand::Show { id } => {
            let item = client.get(&format!("calls/{id}"), &[]).await?;
            write_item(out, mode, &item)
        }
    }
}
