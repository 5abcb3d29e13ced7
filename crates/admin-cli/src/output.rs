//! Rendering of API objects: plain column tables for people, the raw JSON for scripts.

use std::io::Write;

use comfy_table::{Table, presets};
use serde_json::Value;

use crate::error::CliError;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Aligned columns without borders (easy to read and to `grep`/`awk`).
    Table,
    /// The API's JSON, pretty-printed, one document per command.
    Json,
}

/// How a cell's value is rendered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CellKind {
    /// [`cell_text`] of the value.
    Plain,
    /// A `{cc, ac, sn}` object shown as its digits.
    Number,
    /// An array of `{cc, ac, sn}` objects shown as digits separated by commas.
    Numbers,
}

/// One table column: its header and the JSON Pointer (RFC 6901) of the value in each item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub header: &'static str,
    pub pointer: &'static str,
    pub kind: CellKind,
}

pub(crate) const fn column(header: &'static str, pointer: &'static str) -> Column {
    Column {
        header,
        pointer,
        kind: CellKind::Plain,
    }
}

pub(crate) const fn number_column(header: &'static str, pointer: &'static str) -> Column {
    Column {
        header,
        pointer,
        kind: CellKind::Number,
    }
}

pub(crate) const fn numbers_column(header: &'static str, pointer: &'static str) -> Column {
    Column {
        header,
        pointer,
        kind: CellKind::Numbers,
    }
}

fn new_table() -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.force_no_tty();
    table
}

/// Writes `text` as the table's lines with the left padding and trailing blanks trimmed.
fn write_trimmed(out: &mut dyn Write, table: &Table) -> Result<(), CliError> {
    for line in table.lines() {
        let line = line.trim_end();
        let line = line.strip_prefix(' ').unwrap_or(line);
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Writes a list of items: a table with the given columns, or the JSON array.
pub(crate) fn write_list(
    out: &mut dyn Write,
    mode: OutputMode,
    columns: &[Column],
    items: &[Value],
) -> Result<(), CliError> {
    if mode == OutputMode::Json {
        return write_json(out, &Value::Array(items.to_vec()));
    }
    if items.is_empty() {
        writeln!(out, "(none)")?;
        return Ok(());
    }
    let mut table = new_table();
    table.set_header(columns.iter().map(|c| c.header).collect::<Vec<_>>());
    for item in items {
        table.add_row(
            columns
                .iter()
                .map(|c| render_cell(item.pointer(c.pointer), c.kind))
                .collect::<Vec<_>>(),
        );
    }
    write_trimmed(out, &table)
}

/// Writes one item: a two-column FIELD/VALUE table (HAL `_links` left out), or its JSON.
pub(crate) fn write_item(
    out: &mut dyn Write,
    mode: OutputMode,
    item: &Value,
) -> Result<(), CliError> {
    if mode == OutputMode::Json {
        return write_json(out, item);
    }
    let Some(object) = item.as_object() else {
        writeln!(out, "{}", cell_text(item))?;
        return Ok(());
    };
    let mut table = new_table();
    table.set_header(vec!["FIELD", "VALUE"]);
    for (key, value) in object {
        if key.starts_with('_') {
            continue;
        }
        let kind = match key.as_str() {
            "primary_number" => CellKind::Number,
            "alias_numbers" => CellKind::Numbers,
            _ => CellKind::Plain,
        };
        table.add_row(vec![key.clone(), render_cell(Some(value), kind)]);
    }
    write_trimmed(out, &table)
}

/// Writes a one-line confirmation in table mode, or the affected item as JSON.
pub(crate) fn write_done(
    out: &mut dyn Write,
    mode: OutputMode,
    message: &str,
    item: &Value,
) -> Result<(), CliError> {
    match mode {
        OutputMode::Json => write_json(out, item),
        OutputMode::Table => {
            writeln!(out, "{message}")?;
            Ok(())
        }
    }
}

pub(crate) fn write_json(out: &mut dyn Write, value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    writeln!(out, "{text}")?;
    Ok(())
}

fn render_cell(value: Option<&Value>, kind: CellKind) -> String {
    let Some(value) = value else {
        return String::new();
    };
    match kind {
        CellKind::Plain => cell_text(value),
        CellKind::Number => number_text(value).unwrap_or_else(|| cell_text(value)),
        CellKind::Numbers => match value.as_array() {
            Some(numbers) => numbers
                .iter()
                .map(|n| number_text(n).unwrap_or_else(|| cell_text(n)))
                .collect::<Vec<_>>()
                .join(","),
            None => cell_text(value),
        },
    }
}

/// A number object `{cc, ac, sn}` as the digits of the full number (E.164 without `+`).
pub(crate) fn number_text(value: &Value) -> Option<String> {
    let part = |name: &str| match value.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let cc = part("cc")?;
    let sn = part("sn")?;
    Some(format!("{cc}{}{sn}", part("ac").unwrap_or_default()))
}

/// A scalar as text; lists of scalars joined by commas; anything else as compact JSON.
pub(crate) fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => {
            items.iter().map(cell_text).collect::<Vec<_>>().join(",")
        }
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const COLUMNS: [Column; 3] = [
        column("ID", "/id"),
        column("DOMAIN", "/domain"),
        number_column("NUMBER", "/primary_number"),
    ];

    fn render(f: impl FnOnce(&mut Vec<u8>) -> Result<(), CliError>) -> String {
        let mut out = Vec::new();
        f(&mut out).expect("writes");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn list_table_aligns_columns_under_headers() {
        let items = [
            json!({"id": 1, "domain": "a.example", "primary_number": {"cc": "43", "ac": "1", "sn": "2345"}}),
            json!({"id": 22, "domain": "long-name.example", "primary_number": null}),
        ];
        let text = render(|out| write_list(out, OutputMode::Table, &COLUMNS, &items));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("ID"), "{text}");
        let domain_column = lines[0].find("DOMAIN").expect("header");
        assert_eq!(lines[1].find("a.example"), Some(domain_column), "{text}");
        assert_eq!(
            lines[2].find("long-name.example"),
            Some(domain_column),
            "{text}"
        );
        assert!(lines[1].ends_with("4312345"), "{text}");
        assert_eq!(lines[2].trim_end(), lines[2]);
    }

    #[test]
    fn empty_list_says_none_and_json_mode_prints_an_array() {
        assert_eq!(
            render(|out| write_list(out, OutputMode::Table, &COLUMNS, &[])),
            "(none)\n"
        );
        let items = [json!({"id": 1})];
        let text = render(|out| write_list(out, OutputMode::Json, &COLUMNS, &items));
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed, json!([{"id": 1}]));
    }

    #[test]
    fn item_table_skips_hal_links_and_formats_numbers() {
        let item = json!({
            "id": 7, "username": "alice", "_links": {"self": {"href": "/api/subscribers/7"}},
            "primary_number": {"cc": "43", "ac": "1", "sn": "234567", "number_id": 3},
            "alias_numbers": [{"cc": "43", "ac": "1", "sn": "1"}, {"cc": "43", "ac": "1", "sn": "2"}],
            "status": "active"
        });
        let text = render(|out| write_item(out, OutputMode::Table, &item));
        assert!(!text.contains("_links"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("username") && l.ends_with("alice")),
            "{text}"
        );
        assert!(text.lines().any(|l| l.ends_with("431234567")), "{text}");
        assert!(text.lines().any(|l| l.ends_with("4311,4312")), "{text}");
    }

    #[test]
    fn done_message_or_json() {
        let item = json!({"id": 3});
        assert_eq!(
            render(|out| write_done(out, OutputMode::Table, "created domain 3", &item)),
            "created domain 3\n"
        );
        let text = render(|out| write_done(out, OutputMode::Json, "created domain 3", &item));
        assert_eq!(serde_json::from_str::<Value>(&text).expect("json"), item);
    }

    #[test]
    fn cell_text_of_each_json_kind() {
        assert_eq!(cell_text(&Value::Null), "");
        assert_eq!(cell_text(&json!("x")), "x");
        assert_eq!(cell_text(&json!(true)), "true");
        assert_eq!(cell_text(&json!(12)), "12");
        assert_eq!(cell_text(&json!(["a", "b"])), "a,b");
        assert_eq!(cell_text(&json!({"k": 1})), r#"{"k":1}"#);
        assert_eq!(
            number_text(&json!({"cc": "49", "sn": "301234"})).as_deref(),
            Some("49301234")
        );
        assert_eq!(number_text(&json!({"cc": "49"})), None);
    }
}
