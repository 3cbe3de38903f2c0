//! Service harness for rtdash's integration tests: real `nats-server` (JetStream) and QuestDB
//! processes on free loopback ports, in temporary directories, and rtdash's own binaries.
//!
//! - [`NatsServer::start`] gives each test its own server (cheap: ~0.1 s); it can be stopped
//!   and restarted on the same port and store for fault tests. [`cluster`]: a 3-node
//!   JetStream cluster and edge sites (leaf nodes).
//! - [`QuestDb::shared`] gives a test binary one QuestDB started on first use (a JVM costs
//!   ~3 s and a few hundred MB); tests isolate themselves with [`unique_name`] tables.
//!   [`QuestDb::start`] gives a private instance that can be stopped and restarted.
//! - [`aggregator`], [`service`], [`stack`], [`fault`]: rtdash's own binaries, alone or as
//!   the whole pipeline, with fault-injection scenarios.
//!
//! Every process is [`supervised`]: started from one [`supervised::Launch`], restartable on the
//! same ports and store. Child processes cannot outlive the test binary: each runs in its own
//! process group, is killed on drop, and on Linux gets `SIGKILL` when the test process dies
//! (`PR_SET_PDEATHSIG`), even when that process is itself killed with `SIGKILL`
//! ([`process`]).
//!
//! The binaries come from `RTDASH_NATS_SERVER`, `RTDASH_QUESTDB_JAR` and `RTDASH_JAVA`, or else
//! from where `./deploy/install.sh` puts them (`${RTDASH_CACHE:-~/.cache/rtdash}`, versions from
//! `deploy/versions.env`); server configs are rendered from the templates in `deploy/`.
//!
//! The harness is synchronous (std threads and processes), so it works from plain and from
//! `#[tokio::test]` tests alike.

pub mod aggregator;
pub mod cluster;
mod deploy;
pub mod fault;
mod http;
pub mod nats;
pub mod ports;
pub mod process;
pub mod prometheus;
pub mod questdb;
pub mod service;
pub mod stack;
pub mod supervised;
pub mod table;
pub mod time;
mod wait;

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
