//! Domains, customers, subscribers and their numbers.

use std::io::Write;

use serde_json::{Value, json};

use super::{find_subscriber, id_of, resolve_id, subscriber_address};
use crate::args::{AliasCommand, CustomerCommand, DomainCommand, NumberCommand, SubscriberCommand};
use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::{
    Column, OutputMode, column, number_column, numbers_column, write_done, write_item, write_list,
};

const DOMAIN_COLUMNS: [Column; 2] = [column("ID", "/id"), column("DOMAIN", "/domain")];

const CUSTOMER_COLUMNS: [Column; 4] = [
    column("ID", "/id"),
    column("NAME", "/name"),
    column("STATUS", "/status"),
    column("EXTERNAL ID", "/external_id"),
];

const SUBSCRIBER_COLUMNS: [Column; 8] = [
    column("ID", "/id"),
    column("USERNAME", "/username"),
    column("DOMAIN", "/domain"),
    number_column("NUMBER", "/primary_number"),
    numbers_column("ALIASES", "/alias_numbers"),
    column("CUSTOMER", "/customer_id"),
    column("STATUS", "/status"),
    column("DISPLAY NAME", "/display_name"),
];

const NUMBER_COLUMNS: [Column; 5] = [
    column("ID", "/id"),
    // The empty pointer is the whole item, which carries cc/ac/sn itself.
    number_column("NUMBER", ""),
    column("PRIMARY", "/is_primary"),
    column("DEVID", "/is_devid"),
    column("SUBSCRIBER", "/subscriber_id"),
];

pub(super) async fn domain(
    client: &ApiClient,
    command: &DomainCommand,
    mode: OutputMode,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        DomainCommand::Add { domain } => {
            let created = client
                .create("domains", &json!({ "domain": domain }))
                .await?;
            let id = id_of(&created)?;
            write_done(
                out,
                mode,
                &format!("created domain {id} ({domain})"),
                &created,
            )
        }
        DomainCommand::List { filter } => {
            let filters: Vec<(&str, String)> =
                filter.iter().map(|f| ("domain", f.clone())).collect();
            let items = client.list("domains", &filters).await?;
            write_list(out, mode, &DOMAIN_COLUMNS, &items)
        }
        DomainCommand::Rm { domain } => {
            let id = resolve_id(client, "domains", "domain", "domain", domain).await?;
            client.delete(&format!("domains/{id}")).await?;
            write_done(
                out,
                mode,
                &format!("deleted domain {id} ({domain})"),
                &json!({"id": id, "deleted": true}),
            )
        }
    }
}

pub(super) async fn customer(
    client: &ApiClient,
    command: &CustomerCommand,
    mode: OutputMode,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        CustomerCommand::Add {
            name,
            external_id,
            status,
        } => {
            let mut body = json!({"name": name, "status": status.api_name()});
            insert_some(
                &mut body,
                "external_id",
                external_id.clone().map(Value::from),
            );
            let created = client.create("customers", &body).await?;
            let id = id_of(&created)?;
            write_done(
                out,
                mode,
                &format!("created customer {id} ({name})"),
                &created,
            )
        }
        CustomerCommand::List => {
            let items = client.list("customers", &[]).await?;
            write_list(out, mode, &CUSTOMER_COLUMNS, &items)
        }
        CustomerCommand::Rm { id } => {
            client.delete(&format!("customers/{id}")).await?;
            write_done(
                out,
                mode,
                &format!("deleted customer {id}"),
                &json!({"id": id, "deleted": true}),
            )
        }
    }
}

pub(super) async fn subscriber(
    client: &ApiClient,
    command: &SubscriberCommand,
    mode: OutputMode,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        SubscriberCommand::Add {
            domain,
            username,
            password,
            customer,
            cc,
            ac,
            sn,
            display_name,
            webusername,
            webpassword,
            email,
            external_id,
        } => {
            let mut body = json!({
                "customer_id": customer,
                "domain": domain,
                "username": username,
                "password": password,
            });
            if let (Some(cc), Some(sn)) = (cc, sn) {
                body["primary_number"] =
                    json!({"cc": cc, "ac": ac.clone().unwrap_or_default(), "sn": sn});
            }
            insert_some(
                &mut body,
                "display_name",
                display_name.clone().map(Value::from),
            );
            insert_some(
                &mut body,
                "webusername",
                webusername.clone().map(Value::from),
            );
            insert_some(
                &mut body,
                "webpassword",
                webpassword.clone().map(Value::from),
            );
            insert_some(&mut body, "email", email.clone().map(Value::from));
            insert_some(
                &mut body,
                "external_id",
                external_id.clone().map(Value::from),
            );
            let created = client.create("subscribers", &body).await?;
            let id = id_of(&created)?;
            write_done(
                out,
                mode,
                &format!("created subscriber {id} ({username}@{domain})"),
                &created,
            )
        }
        SubscriberCommand::List {
            domain,
            customer,
            username,
        } => {
            let mut filters = Vec::new();
            if let Some(domain) = domain {
                filters.push(("domain", domain.clone()));
            }
            if let Some(customer) = customer {
                filters.push(("customer_id", customer.to_string()));
            }
            if let Some(username) = username {
                filters.push(("username", username.clone()));
            }
            let items = client.list("subscribers", &filters).await?;
            write_list(out, mode, &SUBSCRIBER_COLUMNS, &items)
        }
        SubscriberCommand::Show { subscriber } => {
            let item = find_subscriber(client, subscriber).await?;
            write_item(out, mode, &item)
        }
        SubscriberCommand::Passwd {
            subscriber,
            new_password,
        } => {
            let item = find_subscriber(client, subscriber).await?;
            let id = id_of(&item)?;
            // `add` sets the member whether or not the GET representation shows it
            // (RFC 6902 §4.1); passwords are not always echoed back.
            client
                .patch(
                    &format!("subscribers/{id}"),
                    &json!([{"op": "add", "path": "/password", "value": new_password}]),
                )
                .await?;
            write_done(
                out,
                mode,
                &format!("changed the SIP password of {}", subscriber_address(&item)),
                &json!({"id": id, "password_changed": true}),
            )
        }
        SubscriberCommand::Rm { subscriber } => {
            let item = find_subscriber(client, subscriber).await?;
            let id = id_of(&item)?;
            client.delete(&format!("subscribers/{id}")).await?;
            write_done(
                out,
                mode,
                &format!("deleted subscriber {id} ({})", subscriber_address(&item)),
                &json!({"id": id, "deleted": true}),
            )
        }
    }
}

pub(super) async fn number(
    client: &ApiClient,
    command: &NumberCommand,
    mode: OutputMode,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let command = match command {
        NumberCommand::Alias(command) => command,
        NumberCommand::List { subscriber } => {
            let filters = match subscriber {
                Some(subscriber) => {
                    let item = find_subscriber(client, subscriber).await?;
                    vec![("subscriber_id", id_of(&item)?.to_string())]
                }
                None => Vec::new(),
            };
            let items = client.list("numbers", &filters).await?;
            return write_list(out, mode, &NUMBER_COLUMNS, &items);
        }
    };
    let (subscriber, wanted, devid, adding) = match command {
        AliasCommand::Add {
            subscriber,
            cc,
            ac,
            sn,
            devid,
        } => (subscriber, (cc, ac, sn), *devid, true),
        AliasCommand::Rm {
            subscriber,
            cc,
            ac,
            sn,
        } => (subscriber, (cc, ac, sn), false, false),
    };
    let wanted = NumberParts {
        cc: wanted.0.clone(),
        ac: wanted.1.clone().unwrap_or_default(),
        sn: wanted.2.clone(),
    };
    let item = find_subscriber(client, subscriber).await?;
    let id = id_of(&item)?;
    let address = subscriber_address(&item);
    let current = alias_numbers(&item);
    let position = current.iter().position(|(parts, _)| *parts == wanted);
    let updated: Vec<(NumberParts, bool)> = if adding {
        if position.is_some() {
            return Err(CliError::argument(
                "number",
                format!("{} is already an alias of {address}", wanted.digits()),
            ));
        }
        current
            .into_iter()
            .chain([(wanted.clone(), devid)])
            .collect()
    } else {
        let Some(position) = position else {
            return Err(CliError::argument(
                "number",
                format!("{} is not an alias of {address}", wanted.digits()),
            ));
        };
        let mut list = current;
        list.remove(position);
        list
    };
    // Only the writable members go back: the API rejects read-only ones like number_id.
    let value: Vec<Value> = updated
        .iter()
        .map(|(parts, devid)| json!({"cc": parts.cc, "ac": parts.ac, "sn": parts.sn, "is_devid": devid}))
        .collect();
    client
        .patch(
            &format!("subscribers/{id}"),
            &json!([{"op": "add", "path": "/alias_numbers", "value": value}]),
        )
        .await?;
    let after = client.get(&format!("subscribers/{id}"), &[]).await?;
    let verb = if adding {
        "added alias"
    } else {
        "removed alias"
    };
    let preposition = if adding { "to" } else { "from" };
    write_done(
        out,
        mode,
        &format!("{verb} {} {preposition} {address}", wanted.digits()),
        &after,
    )
}

/// The `{cc, ac, sn}` of a number, compared as text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NumberParts {
    cc: String,
    ac: String,
    sn: String,
}

impl NumberParts {
    fn digits(&self) -> String {
        format!("{}{}{}", self.cc, self.ac, self.sn)
    }
}

/// A subscriber's alias numbers with their `is_devid` flags.
fn alias_numbers(subscriber: &Value) -> Vec<(NumberParts, bool)> {
    let text = |number: &Value, name: &str| match number.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    subscriber
        .get("alias_numbers")
        .and_then(Value::as_array)
        .map(|numbers| {
            numbers
                .iter()
                .map(|n| {
                    let parts = NumberParts {
                        cc: text(n, "cc"),
                        ac: text(n, "ac"),
                        sn: text(n, "sn"),
                    };
                    let devid = n.get("is_devid").and_then(Value::as_bool).unwrap_or(false);
                    (parts, devid)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn insert_some(body: &mut Value, key: &str, value: Option<Value>) {
    if let (Some(value), Some(object)) = (value, body.as_object_mut()) {
        object.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_numbers_read_strings_numbers_and_missing_area_codes() {
        let subscriber = json!({"alias_numbers": [
            {"cc": "43", "ac": "1", "sn": "99", "is_devid": true, "number_id": 4},
            {"cc": 49, "sn": "301"}
        ]});
        let numbers = alias_numbers(&subscriber);
        assert_eq!(numbers.len(), 2);
        assert_eq!(numbers[0].0.digits(), "43199");
        assert!(numbers[0].1);
        assert_eq!(
            numbers[1].0,
            NumberParts {
                cc: "49".into(),
                ac: String::new(),
                sn: "301".into()
            }
        );
        assert!(!numbers[1].1);
        assert!(alias_numbers(&json!({})).is_empty());
    }
}
