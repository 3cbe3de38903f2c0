//! `gateway`: the rtdash REST API, live streams and web UI ([`rtdash_runtime::bootstrap`]).
//! Exit codes: 0 after a clean shutdown, 64 a configuration or usage problem, 1 a dependency
//! unreachable or the listen address taken.
#![deny(unsafe_code)]

use clap::Parser;
use gateway::config::GatewayConfig;
use rtdash_runtime::bootstrap::{self, Failure, Service};
use std::process::ExitCode;

// jemalloc: thousands of long-lived connections interleave small allocations with short-lived
// ones (snapshot JSON, events); glibc's malloc kept that memory fragmented and resident after
// the viewers left, jemalloc gives it back to the system.
//
// Its options: a background thread purges freed pages about a second after they were freed
// (straight to the system, `muzzy_decay_ms:0`), so the resident memory follows the number of
// viewers down as well as up.
rtdash_runtime::jemalloc_global_allocator!(
    malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"
);

/// rtdash gateway: REST API, Server-Sent Events and the web UI.
///
/// Environment variables RTDASH_GATEWAY__<KEY> and the shared RTDASH_NATS__*,
/// RTDASH_QUESTDB__*... override the configuration file.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Cli {}

fn main() -> ExitCode {
    let service = Service {
        name: "gateway",
        version: env!("CARGO_PKG_VERSION"),
        telemetry: |config: &mut GatewayConfig| &mut config.telemetry,
    };
    bootstrap::run(service, |_: Cli, config, shutdown| async move {
        // The gauges run as long as the gateway does, and stop with it.
        tokio::select! {
            result = gateway::run(config, shutdown) => result.map_err(Failure::runtime),
            never = heap::publish_gauges() => match never {},
        }
    })
}

/// jemalloc's figures as gauges.
#[cfg(feature = "jemalloc")]
mod heap {
    use gateway::metrics::{HEAP_ALLOCATED, HEAP_RESIDENT};
    use std::convert::Infallible;

    /// Publishes the figures every 5 s, until dropped (`gateway::metrics::describe` describes
    /// them).
    pub async fn publish_gauges() -> Infallible {
        let allocated = metrics::gauge!(HEAP_ALLOCATED);
        let resident = metrics::gauge!(HEAP_RESIDENT);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            if tikv_jemalloc_ctl::epoch::advance().is_err() {
                continue;
            }
            if let Ok(bytes) = tikv_jemalloc_ctl::stats::allocated::read() {
                allocated.set(bytes as f64);
            }
            if let Ok(bytes) = tikv_jemalloc_ctl::stats::resident::read() {
                resident.set(bytes as f64);
            }
        }
    }
}

/// Without jemalloc there are no figures to publish.
#[cfg(not(feature = "jemalloc"))]
mod heap {
    use std::convert::Infallible;

    /// Never returns.
    pub async fn publish_gauges() -> Infallible {
        std::future::pending().await
    }
}
