//! `core-aggregator`: `run` (the default), `setup`, `replay`, `recompute`. Exit codes: 0 done, 1 a
//! dependency unreachable or a runtime failure, 64 a configuration or usage problem.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use core_aggregator::recompute::RecomputeArgs;
use core_aggregator::replay::ReplayArgs;
use core_aggregator::{Config, Error};
use rtdash_runtime::{EXIT_CONFIG, EXIT_FAILURE};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// jemalloc: closing a minute's windows allocates and frees millions of small strings and
/// vectors at once, where glibc's malloc took about a quarter of the aggregator's CPU.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// rtdash core aggregator: merges edge partials from JetStream into QuestDB windows.
#[derive(Debug, Parser)]
#[command(name = "core-aggregator", version, about)]
struct Cli {
    /// TOML configuration file (environment variables `RTDASH_CORE_AGGREGATOR__*` and
    /// `RTDASH_NATS__*`, `RTDASH_QUESTDB__*`... override it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume partitions and write windows until SIGINT/SIGTERM (the default).
    Run,
    /// Create or update the streams, buckets and QuestDB table, then exit.
    Setup,
    /// Rebuild the windows starting in [--from, --to) from RTDASH_PARTIALS and rewrite them.
    Replay {
        /// First window start, RFC 3339 (e.g. 2024-01-15T14:00:00Z).
        #[arg(long)]
        from: String,
        /// End of the range (exclusive), RFC 3339.
        #[arg(long)]
        to: String,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Rebuild the windows starting in [--from, --to) from the raw-event archive RTDASH_EVENTS
    /// with the current metric definitions, and rewrite them.
    Recompute {
        /// First window start, RFC 3339.
        #[arg(long)]
        from: String,
        /// End of the range (exclusive), RFC 3339.
        #[arg(long)]
        to: String,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this metric.
        #[arg(long)]
        metric: Option<String>,
        /// The metric definitions file the edge agents load, if any (the config bucket's
        /// definitions are always read).
        #[arg(long)]
        metrics_file: Option<PathBuf>,
    },
}

fn parse_time(flag: &str, text: &str) -> Result<i64, Error> {
    rtdash_shared::time::parse_rfc3339(text).ok_or_else(|| {
        Error::Usage(format!(
            "{flag} {text:?} is not an RFC 3339 time such as 2024-01-15T14:00:00Z"
        ))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config: Config =
        match rtdash_runtime::config::load("core-aggregator", cli.config.as_deref()) {
            Ok(config) => config,
            Err(err) => {
                eprintln!("core-aggregator: {err}");
                return ExitCode::from(EXIT_CONFIG as u8);
            }
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("core-aggregator: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE as u8);
        }
    };
    let result = runtime.block_on(async move {
        // Inside the runtime: the trace exporter's HTTP client is set up here.
        rtdash_runtime::telemetry::init("core-aggregator", &config.telemetry)
            .map_err(|err| Error::Usage(err.to_string()))?;
        let shutdown = CancellationToken::new();
        rtdash_runtime::shutdown::cancel_on_signal(shutdown.clone());
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => core_aggregator::run(config, shutdown).await,
            Command::Setup => {
                core_aggregator::setup(&config).await?;
                eprintln!("core-aggregator: topology and table ready");
                Ok(())
            }
            Command::Replay { from, to, tenant } => {
                let args = ReplayArgs {
                    from: parse_time("--from", &from)?,
                    to: parse_time("--to", &to)?,
                    tenant,
                };
                core_aggregator::replay::replay(config, args, shutdown)
                    .await
                    .map(|_| ())
            }
            Command::Recompute {
                from,
                to,
                tenant,
                metric,
                metrics_file,
            } => {
                let args = RecomputeArgs {
                    from: parse_time("--from", &from)?,
                    to: parse_time("--to", &to)?,
                    tenant,
                    metric,
                    metrics_file,
                };
                core_aggregator::recompute::recompute(config, args, shutdown)
                    .await
                    .map(|_| ())
            }
        }
    });
    rtdash_runtime::telemetry::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("core-aggregator: {err}");
            let code = match err {
                Error::Usage(_) => EXIT_CONFIG,
                _ => EXIT_FAILURE,
            };
            ExitCode::from(code as u8)
        }
    }
}
