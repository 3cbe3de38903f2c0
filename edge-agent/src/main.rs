//! `edge-agent`: load the configuration, start telemetry, run the agent until SIGINT/SIGTERM.
//!
//! Exit codes: 0 after a clean shutdown; 64 for a configuration problem (one line naming the
//! key or file); 1 when a dependency is unreachable or the listen address is taken (one line
//! naming it).

use clap::Parser;
use edge_agent::AgentConfig;
use rtdash_runtime::telemetry::LogFormat;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// jemalloc: less fragmentation under many small allocations than glibc's malloc, and a
/// precise figure of the bytes allocated, which the memory budget counts (see
/// `edge_agent::memory`).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (its `malloc_conf` symbol; `_RJEM_MALLOC_CONF` in the environment
/// overrides them). Freed pages go back to the system within about a second, purged by
/// jemalloc's background thread, instead of staying resident for 10 s: the RSS then follows
/// the allocated bytes the memory budget counts (after a burst of 1,000,000 new series, RSS
/// fell to ~60 MiB instead of staying at ~270 MiB).
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 43] = b"background_thread:true,dirty_decay_ms:1000\0";

/// rtdash edge agent: HTTP event ingest, validation and dead letters, windowed
/// pre-aggregation, and JetStream publishing with a spool.
///
/// Every setting can also be given as an environment variable: RTDASH_EDGE_AGENT__<KEY>
/// (nested keys joined by `__`, e.g. RTDASH_EDGE_AGENT__INGEST__MAX_BODY_BYTES), and the
/// shared RTDASH_NATS__URL, RTDASH_STREAMS__PARTITIONS, RTDASH_TELEMETRY__LOG_FORMAT.
#[derive(Debug, Parser)]
#[command(name = "edge-agent", version, about, long_about)]
struct Cli {
    /// TOML configuration file (defaults apply to whatever it leaves out).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format (overrides `telemetry.log_format`).
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config: AgentConfig =
        match rtdash_runtime::config::load("edge-agent", cli.config.as_deref()) {
            Ok(config) => config,
            Err(err) => {
                eprintln!("edge-agent: {err}");
                return ExitCode::from(rtdash_runtime::EXIT_CONFIG as u8);
            }
        };
    if let Some(format) = cli.log_format {
        config.telemetry.log_format = format;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("edge-agent")
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("edge-agent: cannot start the async runtime: {err}");
            return ExitCode::from(rtdash_runtime::EXIT_FAILURE as u8);
        }
    };
    let code = runtime.block_on(async move {
        if let Err(err) = rtdash_runtime::telemetry::init("edge-agent", &config.telemetry) {
            eprintln!("edge-agent: {err}");
            return rtdash_runtime::EXIT_CONFIG;
        }
        let shutdown = CancellationToken::new();
        rtdash_runtime::shutdown::cancel_on_signal(shutdown.clone());
        match edge_agent::run(config, shutdown).await {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("edge-agent: {err}");
                err.exit_code()
            }
        }
    });
    rtdash_runtime::telemetry::shutdown();
    ExitCode::from(code as u8)
}
