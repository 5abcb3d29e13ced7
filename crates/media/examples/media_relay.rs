//! Runs the relay alone, for the shared benchmark driver (`bench/rtp/rtp_ladder.py`) or manual
//! tests with `rtpengine-ng-client`, until Ctrl-C or SIGTERM.
//!
//! `cargo run --release -p media --example media_relay -- --ng 127.0.0.1:2223 --ip 127.0.0.1
//!  --port-min 12000 --port-max 32767 [--simple | --batched] [--no-kernel] [--coalesce-us N] [--timeout SECS]
//!  [--delete-delay SECS]`

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use media::{IoMode, MediaConfig, MediaRelay};

fn parse_args() -> Result<MediaConfig, String> {
    let mut config = MediaConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--ng" => {
                config.ng_address = value()?
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("--ng: {e}"))?;
            }
            "--ip" => {
                let ip: IpAddr = value()?.parse().map_err(|e| format!("--ip: {e}"))?;
                config.media_bind_address = ip;
                config.advertised_address = ip;
            }
            "--port-min" => {
                config.port_min = value()?.parse().map_err(|e| format!("--port-min: {e}"))?
            }
            "--port-max" => {
                config.port_max = value()?.parse().map_err(|e| format!("--port-max: {e}"))?
            }
            "--timeout" => {
                config.media_timeout =
                    Duration::from_secs(value()?.parse().map_err(|e| format!("--timeout: {e}"))?);
            }
            "--delete-delay" => {
                config.delete_delay = Duration::from_secs(
                    value()?
                        .parse()
                        .map_err(|e| format!("--delete-delay: {e}"))?,
                );
            }
            "--simple" => config.io_mode = IoMode::Simple,
            "--batched" => config.io_mode = IoMode::Batched,
            "--no-kernel" => config.kernel_forwarding = false,
            "--coalesce-us" => {
                config.poll_coalesce = Duration::from_micros(
                    value()?
                        .parse()
                        .map_err(|e| format!("--coalesce-us: {e}"))?,
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(config)
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("media_relay: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("media_relay: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let relay = match MediaRelay::start(config).await {
            Ok(relay) => relay,
            Err(error) => {
                eprintln!("media_relay: {error}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!("media_relay: ng on {}", relay.ng_addr());
        let _ = tokio::signal::ctrl_c().await;
        relay.shutdown().await;
        ExitCode::SUCCESS
    })
}
