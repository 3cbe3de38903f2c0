//! `core-aggregator`: `run` (the default), `setup`, `replay`, `recompute`
//! ([`rtdash_runtime::bootstrap`]). Exit codes: 0 done, 1 a dependency unreachable or a
//! runtime failure, 64 a configuration or usage problem.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use core_aggregator::recompute::RecomputeArgs;
use core_aggregator::replay::ReplayArgs;
use core_aggregator::{Config, Error};
use rtdash_runtime::bootstrap::{self, Failure, Service};
use rtdash_shared::time::UnixMillis;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

// jemalloc: closing a minute's windows allocates and frees millions of small strings and
// vectors at once, where glibc's malloc took about a quarter of the aggregator's CPU.
rtdash_runtime::jemalloc_global_allocator!();

/// rtdash core aggregator: merges edge partials from JetStream into QuestDB windows.
///
/// Environment variables RTDASH_CORE_AGGREGATOR__<KEY> and the shared RTDASH_NATS__*,
/// RTDASH_QUESTDB__*... override the configuration file.
#[derive(Debug, Parser)]
#[command(name = "core-aggregator", version, about)]
struct Cli {
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
        #[arg(long, value_parser = rfc3339)]
        from: UnixMillis,
        /// End of the range (exclusive), RFC 3339.
        #[arg(long, value_parser = rfc3339)]
        to: UnixMillis,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Rebuild the windows starting in [--from, --to) from the raw-event archive RTDASH_EVENTS
    /// with the current metric definitions, and rewrite them.
    Recompute {
        /// First window start, RFC 3339.
        #[arg(long, value_parser = rfc3339)]
        from: UnixMillis,
        /// End of the range (exclusive), RFC 3339.
        #[arg(long, value_parser = rfc3339)]
        to: UnixMillis,
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

/// A time flag: RFC 3339, as Unix milliseconds (a usage error, exit 64, otherwise).
fn rfc3339(text: &str) -> Result<UnixMillis, String> {
    rtdash_shared::time::parse_rfc3339(text)
        .ok_or_else(|| "not an RFC 3339 time such as 2024-01-15T14:00:00Z".to_owned())
}

fn main() -> ExitCode {
    let service = Service {
        name: "core-aggregator",
        version: env!("CARGO_PKG_VERSION"),
        telemetry: |config: &mut Config| &mut config.telemetry,
    };
    bootstrap::run(service, |cli: Cli, config, shutdown| async move {
        run(cli.command.unwrap_or(Command::Run), config, shutdown)
            .await
            .map_err(|err| {
                if err.is_usage() {
                    Failure::usage(err)
                } else {
                    Failure::runtime(err)
                }
            })
    })
}

async fn run(command: Command, config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    match command {
        Command::Run => core_aggregator::run(config, shutdown).await,
        Command::Setup => {
            core_aggregator::setup(&config).await?;
            eprintln!("core-aggregator: topology and table ready");
            Ok(())
        }
        Command::Replay { from, to, tenant } => {
            let args = ReplayArgs { from, to, tenant };
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
                from,
                to,
                tenant,
                metric,
                metrics_file,
            };
            core_aggregator::recompute::recompute(config, args, shutdown)
                .await
                .map(|_| ())
        }
    }
}
