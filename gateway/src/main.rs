//! `gateway`: the rtdash REST API, live streams and web UI.
#![deny(unsafe_code)]

use clap::Parser;
use gateway::config::GatewayConfig;
use rtdash_runtime::telemetry::LogFormat;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// jemalloc: thousands of long-lived connections interleave small allocations with short-lived
/// ones (snapshot JSON, events); glibc's malloc kept that memory fragmented and resident after
/// the viewers left, jemalloc gives it back to the system.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (its `malloc_conf` symbol; `_RJEM_MALLOC_CONF` in the environment
/// overrides them): a background thread purges freed pages about a second after they were
/// freed (straight to the system, `muzzy_decay_ms:0`), so the resident memory follows the
/// number of viewers down as well as up.
#[allow(non_upper_case_globals, unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// Publishes jemalloc's figures every 5 s: `rtdash_gateway_heap_allocated_bytes` (bytes the
/// program holds) and `rtdash_gateway_heap_resident_bytes` (pages the allocator keeps).
fn spawn_heap_gauges() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            if tikv_jemalloc_ctl::epoch::advance().is_err() {
                continue;
            }
            if let Ok(bytes) = tikv_jemalloc_ctl::stats::allocated::read() {
                metrics::gauge!("rtdash_gateway_heap_allocated_bytes").set(bytes as f64);
            }
            if let Ok(bytes) = tikv_jemalloc_ctl::stats::resident::read() {
                metrics::gauge!("rtdash_gateway_heap_resident_bytes").set(bytes as f64);
            }
        }
    });
}

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
    if let Err(err) = rtdash_runtime::telemetry::init("gateway", &config.telemetry) {
        eprintln!("gateway: {err}");
        std::process::exit(rtdash_runtime::EXIT_CONFIG);
    }
    spawn_heap_gauges();
    let shutdown = CancellationToken::new();
    rtdash_runtime::shutdown::cancel_on_signal(shutdown.clone());
    let result = gateway::run(config, shutdown).await;
    rtdash_runtime::telemetry::shutdown();
    if let Err(err) = result {
        tracing::error!(error = %err, "gateway failed");
        eprintln!("gateway: {err}");
        std::process::exit(rtdash_runtime::EXIT_FAILURE);
    }
}
