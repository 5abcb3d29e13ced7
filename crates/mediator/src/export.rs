//! CDR export (`voxide cdr export`): CSV files in the layout of docs/cdr-export.md.
//!
//! A file is `#voxide-cdr,<version>,<count>` on the first line, `<count>` CSV rows (RFC 4180
//! quoting, `\n` line ends), and `#md5,<hex>` as the last line: the MD5 of the body bytes, i.e.
//! of the rows with their line ends, which is what `md5sum` prints for the body alone.
//!
//! Exactly once: a file is written under a temporary name, fsynced, renamed into place and the
//! directory fsynced before its rows are marked exported. A run that dies earlier marks
//! nothing, so the next run exports those rows again (the file name depends only on the first
//! and last CDR id, so a rewrite of the same rows replaces the file).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use store::{Cdr, CdrRepository, Store, StoreError};

/// Version of the file layout, the second field of the header line.
pub const FORMAT_VERSION: u32 = 1;
/// Most rows in one file (as C5's exporter).
pub const MAX_ROWS_PER_FILE: u32 = 5000;

/// The columns of a row, in order.
pub const COLUMNS: &[&str] = &[
    "id",
    "call_id",
    "call_type",
    "call_status",
    "call_code",
    "init_time",
    "start_time",
    "duration",
    "source_user_id",
    "source_subscriber_id",
    "source_customer_id",
    "source_user",
    "source_domain",
    "source_cli",
    "source_ip",
    "destination_user_id",
    "destination_subscriber_id",
    "destination_customer_id",
    "destination_user",
    "destination_domain",
    "destination_user_dialed",
    "destination_user_in",
    "destination_domain_in",
];

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading or marking CDRs failed.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// The files, in the order written.
    pub files: Vec<PathBuf>,
    /// CDRs exported.
    pub rows: u64,
}

pub use store::cdr::{format_time_ms, parse_time};

/// Seconds with millisecond precision, e.g. `5.432`.
pub fn format_duration_ms(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    format!("{sign}{}.{:03}", ms / 1000, ms % 1000)
}

/// One CSV field: quoted when it holds a separator, quote or line break (RFC 4180).
fn push_field(line: &mut String, value: &str) {
    if value.contains([',', '"', '\r', '\n']) {
        line.push('"');
        line.push_str(&value.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(value);
    }
}

fn optional<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(T::to_string).unwrap_or_default()
}

/// The CSV row of one CDR, with its `\n`.
pub fn row(cdr: &Cdr) -> String {
    let fields = [
        cdr.id.to_string(),
        cdr.call_id.clone(),
        cdr.call_type.to_string(),
        cdr.call_status.to_string(),
        cdr.call_code.to_string(),
        format_time_ms(cdr.init_time_ms),
        format_time_ms(cdr.start_time_ms),
        format_duration_ms(cdr.duration_ms),
        optional(&cdr.source_user_id),
        optional(&cdr.source_subscriber_id),
        optional(&cdr.source_customer_id),
        cdr.source_user.clone(),
        cdr.source_domain.clone(),
        cdr.source_cli.clone(),
        cdr.source_ip.clone(),
        optional(&cdr.destination_user_id),
        optional(&cdr.destination_subscriber_id),
        optional(&cdr.destination_customer_id),
        cdr.destination_user.clone(),
        cdr.destination_domain.clone(),
        cdr.destination_user_dialed.clone(),
        cdr.destination_user_in.clone(),
        cdr.destination_domain_in.clone(),
    ];
    let mut line = String::with_capacity(256);
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            line.push(',');
        }
        push_field(&mut line, field);
    }
    line.push('\n');
    line
}

/// The whole file for `cdrs`: header, body, MD5 footer.
pub fn render(cdrs: &[Cdr]) -> Vec<u8> {
    let body: String = cdrs.iter().map(row).collect();
    let digest = Md5::digest(body.as_bytes());
    let mut file = String::with_capacity(body.len() + 64);
    let _ = writeln!(file, "#voxide-cdr,{FORMAT_VERSION},{}", cdrs.len());
    file.push_str(&body);
    let _ = writeln!(file, "#md5,{}", hex::encode(digest));
    file.into_bytes()
}

/// The file name for a batch: `voxide-cdr-<first id>-<last id>.csv`, ids zero-padded so the
/// names sort in export order.
pub fn file_name(cdrs: &[Cdr]) -> String {
    let first = cdrs.first().map_or(0, |cdr| cdr.id);
    let last = cdrs.last().map_or(0, |cdr| cdr.id);
    format!("voxide-cdr-{first:012}-{last:012}.csv")
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `directory/name` durably: temporary file, fsync, rename, fsync of the
/// directory.
fn write_durably(directory: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, ExportError> {
    let target = directory.join(name);
    let temporary = directory.join(format!(".{name}.tmp"));
    {
        let mut file = std::fs::File::create(&temporary).map_err(io_error(&temporary))?;
        file.write_all(bytes).map_err(io_error(&temporary))?;
        file.sync_all().map_err(io_error(&temporary))?;
    }
    std::fs::rename(&temporary, &target).map_err(io_error(&target))?;
    std::fs::File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error(directory))?;
    Ok(target)
}

/// Exports every unexported CDR that started at or after `since_ms` into `directory` (created
/// if missing), at most [`MAX_ROWS_PER_FILE`] rows per file, and marks them exported. A second
/// run right after finds nothing and writes no file.
pub async fn export(
    store: &Store,
    since_ms: i64,
    directory: &Path,
) -> Result<ExportReport, ExportError> {
    std::fs::create_dir_all(directory).map_err(io_error(directory))?;
    let mut report = ExportReport::default();
    loop {
        let cdrs = store.unexported_cdrs(since_ms, MAX_ROWS_PER_FILE).await?;
        if cdrs.is_empty() {
            break;
        }
        let bytes = render(&cdrs);
        let name = file_name(&cdrs);
        let directory = directory.to_owned();
        let path = tokio::task::spawn_blocking(move || write_durably(&directory, &name, &bytes))
            .await
            .map_err(|error| ExportError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(error),
            })??;
        let ids: Vec<i64> = cdrs.iter().map(|cdr| cdr.id).collect();
        store
            .mark_cdrs_exported(&ids, crate::runner::unix_time_ms())
            .await?;
        report.rows += ids.len() as u64;
        report.files.push(path);
        if cdrs.len() < MAX_ROWS_PER_FILE as usize {
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{CallStatus, CallType, ExportStatus};

    fn cdr(id: i64, call_id: &str) -> Cdr {
        Cdr {
            id,
            acc_id: id,
            call_id: call_id.to_owned(),
            call_type: CallType::Call,
            call_status: CallStatus::Ok,
            call_code: 200,
            init_time_ms: 1_764_000_000_123,
            start_time_ms: 1_764_000_000_123,
            duration_ms: 5_432,
            source_user_id: None,
            source_subscriber_id: Some(4),
            source_customer_id: Some(2),
            source_user: "alice".to_owned(),
            source_domain: "voxide.test".to_owned(),
            source_cli: "431100000".to_owned(),
            source_ip: "127.0.0.1".to_owned(),
            destination_user_id: None,
            destination_subscriber_id: None,
            destination_customer_id: None,
            destination_user: "bob".to_owned(),
            destination_domain: "voxide.test".to_owned(),
            destination_user_dialed: "bob".to_owned(),
            destination_user_in: "bob".to_owned(),
            destination_domain_in: "voxide.test".to_owned(),
            rating_status: "unrated".to_owned(),
            export_status: ExportStatus::Unexported,
            exported_at_ms: None,
            mediated_at_ms: 1_764_000_001_000,
        }
    }

    #[test]
    fn times_and_durations_keep_milliseconds() {
        assert_eq!(format_time_ms(1_764_000_000_123), "2025-11-24 16:00:00.123");
        assert_eq!(format_duration_ms(5_432), "5.432");
        assert_eq!(format_duration_ms(7), "0.007");
        assert_eq!(format_duration_ms(0), "0.000");
    }

    #[test]
    fn command_line_times_parse_as_utc() {
        assert_eq!(parse_time("2025-11-24").unwrap(), 1_763_942_400_000);
        assert_eq!(
            parse_time("2025-11-24 16:00:00.123").unwrap(),
            1_764_000_000_123
        );
        assert_eq!(
            parse_time("2025-11-24T16:00:00").unwrap(),
            1_764_000_000_000
        );
        assert_eq!(
            parse_time("2025-11-24T17:00:00+01:00").unwrap(),
            1_764_000_000_000
        );
        let error = parse_time("yesterday").unwrap_err();
        assert!(error.contains("'yesterday'"), "{error}");
    }

    #[test]
    fn fields_with_separators_or_quotes_are_quoted() {
        let line = row(&cdr(1, "a,b\"c"));
        assert!(line.starts_with("1,\"a,b\"\"c\",call,ok,200,"), "{line}");
        assert!(line.ends_with(",bob,voxide.test\n"), "{line}");
        assert_eq!(
            line.matches(',').count(),
            COLUMNS.len() - 1 + 1,
            "one comma inside the quoted call id: {line}"
        );
    }

    #[test]
    fn a_file_has_header_count_body_and_md5_of_the_body() {
        let cdrs = [cdr(1, "x"), cdr(2, "y"), cdr(3, "z")];
        let text = String::from_utf8(render(&cdrs)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#voxide-cdr,1,3");
        assert_eq!(lines.len(), 5);
        let body: String = cdrs.iter().map(row).collect();
        let footer = format!("#md5,{}", hex::encode(Md5::digest(body.as_bytes())));
        assert_eq!(lines[4], footer);
        assert!(text.ends_with('\n'));
        assert_eq!(file_name(&cdrs), "voxide-cdr-000000000001-000000000003.csv");
    }

    #[test]
    fn an_empty_file_still_has_header_and_footer() {
        let text = String::from_utf8(render(&[])).unwrap();
        assert_eq!(
            text,
            "#voxide-cdr,1,0\n#md5,d41d8cd98f00b204e9800998ecf8427e\n"
        );
    }
}
