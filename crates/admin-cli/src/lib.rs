//! `voxide admin …`: the operator CLI for the provisioning REST API (ngcp-panel shapes).
//!
//! The binary mounts [`AdminArgs`] as the `admin` subcommand and calls [`main_with`] (or [`run`]
//! when it wants the typed error). Output goes to the writers it is given, so tests capture it.
//!
//! Connection settings come from flags, then `VOXIDE_API_*` environment variables, then the
//! `[admin]` table of a TOML `--config` file; see [`settings`].

// The workspace's `reqwest-ring` entry is reqwest without a bundled crypto provider (we hand it a
// ring-backed rustls config); the alias keeps the familiar paths.
extern crate reqwest_ring as reqwest;

use std::io::Write;
use std::process::ExitCode;

mod args;
mod client;
mod commands;
mod error;
mod output;
pub mod settings;

pub use args::{
    AdminArgs, AdminCli, AdminCommand, AliasCommand, CallForwardCommand, CallForwardType,
    CustomerCommand, CustomerStatus, DomainCommand, NumberCommand, PeerCommand, PeerGroupCommand,
    PeerRuleCommand, PeerServerCommand, PreferenceCommand, PreferenceTarget, RewriteCommand,
    RewriteDirection, RewriteField, RewriteRuleCommand, RewriteSetCommand, SubscriberCommand,
    SubscriberRef, Transport,
};
pub use client::ApiClient;
pub use error::CliError;
pub use output::OutputMode;
pub use settings::{ConnectionArgs, Settings};

/// Runs one `voxide admin` command with settings taken from the flags, the process environment
/// and the config file. Results go to `stdout`; warnings (e.g. `--insecure`) go to `stderr`.
///
/// # Errors
/// Any [`CliError`]; print it with [`report`] or use [`main_with`].
pub async fn run(
    args: AdminArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<(), CliError> {
    let settings = Settings::resolve(&args.connection, &|key| std::env::var(key).ok())?;
    run_with_settings(&args, &settings, stdout, stderr).await
}

/// Runs one command against already resolved connection settings.
///
/// # Errors
/// Any [`CliError`].
pub async fn run_with_settings(
    args: &AdminArgs,
    settings: &Settings,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<(), CliError> {
    let client = ApiClient::new(settings, stderr)?;
    let mode = if args.json {
        OutputMode::Json
    } else {
        OutputMode::Table
    };
    commands::execute(&client, &args.command, mode, stdout).await?;
    stdout.flush()?;
    Ok(())
}

/// Writes `error: <message>` for `error` to `stderr` and returns its exit code.
pub fn report(error: &CliError, stderr: &mut dyn Write) -> ExitCode {
    // Nothing better can be done if stderr itself is gone; the exit code still tells.
    let _ = writeln!(stderr, "error: {error}");
    error.exit_code()
}

/// [`run`], then [`report`] on failure: what the binary's `admin` subcommand calls.
pub async fn main_with(
    args: AdminArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> ExitCode {
    match run(args, stdout, stderr).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error, stderr),
    }
}
