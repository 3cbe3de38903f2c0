//! `edge-agent`: load the configuration, start telemetry, run the agent until SIGINT/SIGTERM
//! ([`rtdash_runtime::bootstrap`]).
//!
//! Exit codes: 0 after a clean shutdown; 64 for a configuration or usage problem (one line
//! naming the key, file or flag); 1 when a dependency is unreachable or the listen address is
//! taken (one line naming it).
#![deny(unsafe_code)]

use clap::Parser;
use edge_agent::AgentConfig;
use rtdash_runtime::bootstrap::{self, Failure, Service};
use std::process::ExitCode;

// jemalloc: less fragmentation under many small allocations than glibc's malloc, and a
// precise figure of the bytes allocated, which the memory budget counts (see
// `edge_agent::memory`).
//
// Its options: freed pages go back to the system within about a second, purged by
// jemalloc's background thread, instead of staying resident for 10 s: the RSS then follows
// the allocated bytes the memory budget counts (after a burst of 1,000,000 new series, RSS
// fell to ~60 MiB instead of staying at ~270 MiB).
rtdash_runtime::jemalloc_global_allocator!(
    malloc_conf = "background_thread:true,dirty_decay_ms:1000"
);

/// rtdash edge agent: HTTP event ingest, validation and dead letters, windowed
/// pre-aggregation, and JetStream publishing with a spool.
///
/// Every setting can also be given as an environment variable: RTDASH_EDGE_AGENT__<KEY>
/// (nested keys joined by `__`, e.g. RTDASH_EDGE_AGENT__INGEST__MAX_BODY_BYTES), and the
/// shared RTDASH_NATS__URL, RTDASH_STREAMS__PARTITIONS, RTDASH_TELEMETRY__LOG_FORMAT.
#[derive(Debug, Parser)]
#[command(name = "edge-agent", version, about, long_about)]
struct Cli {}

fn main() -> ExitCode {
    let service = Service {
        name: "edge-agent",
        version: env!("CARGO_PKG_VERSION"),
        telemetry: |config: &mut AgentConfig| &mut config.telemetry,
    };
    bootstrap::run(service, |_: Cli, config, shutdown| async move {
        edge_agent::run(config, shutdown)
            .await
            .map_err(|err| Failure::new(err.exit_code(), err))
    })
}
