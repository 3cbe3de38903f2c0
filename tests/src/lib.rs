//! rtdash's integration-test harness: the real servers and services on free loopback ports,
//! and the clients, workloads and exact models the tests in `tests/tests/` share.
//!
//! Servers and services (synchronous: std threads and processes, so they work from plain and
//! from `#[tokio::test]` tests alike; from async code start and stop them with [`blocking`] or
//! `tokio::task::block_in_place`):
//!
//! - [`NatsServer::start`] gives each test its own server (cheap: ~0.1 s); it can be stopped
//!   and restarted on the same port and store for fault tests. [`cluster`]: a 3-node
//!   JetStream cluster and edge sites (leaf nodes).
//! - [`QuestDb::shared`] gives a test binary one QuestDB started on first use (a JVM costs
//!   ~3 s and a few hundred MB); tests isolate themselves with [`unique_name`] tables.
//!   [`QuestDb::start`] gives a private instance that can be stopped and restarted.
//! - [`aggregator`], [`service`], [`stack`], [`fault`]: rtdash's own binaries, alone or as
//!   the whole pipeline, with fault-injection scenarios; [`chaos`]: the chaos soak (everything
//!   killed and paused under load, checked against an exact oracle).
//! - [`in_process`]: the gateway and the edge agent started as libraries, in the test process.
//!
//! Every process is [`supervised`]: started from one [`supervised::Launch`], restartable on the
//! same ports and store. Child processes cannot outlive the test binary: each runs in its own
//! process group, is killed on drop, and on Linux gets `SIGKILL` when the test process dies
//! (`PR_SET_PDEATHSIG`), even when that process is itself killed with `SIGKILL`
//! ([`process`]).
//!
//! The server binaries come from `RTDASH_NATS_SERVER`, `RTDASH_QUESTDB_JAR` and `RTDASH_JAVA`,
//! or else from where `./deploy/install.sh` puts them (`${RTDASH_CACHE:-~/.cache/rtdash}`,
//! versions from `deploy/versions.env`); server configs are rendered from the templates in
//! `deploy/`.
//!
//! What the tests share beyond the servers (async, tokio):
//!
//! - credentials: [`auth`] (the operator key every service is given and the default clients
//!   send; tenant keys of a role);
//! - talking to the services: [`client`] (HTTP answering `(status, JSON)`), [`sse`] (the live
//!   dashboard streams), [`jetstream`] (publish with retries, read a stream back),
//!   [`topology`] (the hub's and an edge site's streams), [`events`] (event JSON);
//! - what they send: [`rng`] (seeded `SmallRng`, the seed printed), [`workload`] and
//!   [`fake_agent`] (partials for the core aggregator), [`alerts`] and [`webhook`] (alert
//!   rules, a driver, a receiver);
//! - what they expect: [`model`] (the exact-count oracle), [`table`] (the windows table,
//!   written and read back), [`time`] (clock and RFC 3339);
//! - per-component environments: [`aggregator_env`], [`gateway_env`].

pub mod aggregator;
pub mod aggregator_env;
pub mod alerts;
pub mod auth;
pub mod chaos;
pub mod client;
pub mod cluster;
mod deploy;
pub mod events;
pub mod fake_agent;
pub mod fault;
pub mod gateway_env;
mod http;
pub mod in_process;
pub mod jetstream;
pub mod lockdown;
pub mod model;
pub mod nats;
pub mod ports;
pub mod process;
pub mod prometheus;
pub mod pyclients;
pub mod questdb;
pub mod rng;
pub mod service;
pub mod sse;
pub mod stack;
pub mod supervised;
pub mod table;
pub mod time;
pub mod topology;
mod wait;
pub mod webhook;
pub mod workload;

use std::sync::atomic::{AtomicU64, Ordering};

pub use nats::{NatsOptions, NatsServer};
pub use questdb::QuestDb;
pub use wait::{blocking, eventually, until};

/// A name unique within this test process (and across concurrent test processes), usable as a
/// QuestDB table, NATS stream or durable consumer name: `<prefix>_<pid>_<n>`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The environment variable `name` parsed, or `default` when it is unset or does not parse
/// (the knobs of long and measuring tests, e.g. `RTDASH_BENCH_RUNS`).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
