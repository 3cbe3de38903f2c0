//! `gateway`: the rtdash REST API, live streams and web UI.
#![forbid(unsafe_code)]

use clap::Parser;
use gateway::config::GatewayConfig;
use rtdash_runtime::telemetry::LogFormat;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// rtdash gateway: REST API, Server-Sent Events and the web UI.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file (keys of the `[gateway]` settings at top level).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log format (overrides `telemetry.log_format`).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut config: GatewayConfig =
        match rtdash_runtime::config::load("gateway", args.config.as_deref()) {
            Ok(config) => config,
            Err(err) => {
                eprintln!("gateway: {err}");
                std::process::exit(rtdash_runtime::EXIT_CONFIG);
            }
        };
    if let Some(format) = args.log_format {
        config.telemetry.log_format = format;
    }
    rtdash_runtime::telemetry::init(&config.telemetry);
    let shutdown = CancellationToken::new();
    rtdash_runtime::shutdown::cancel_on_signal(shutdown.clone());
    if let Err(err) = gateway::run(config, shutdown).await {
        tracing::error!(error = %err, "gateway failed");
        eprintln!("gateway: {err}");
        std::process::exit(rtdash_runtime::EXIT_FAILURE);
    }
}
