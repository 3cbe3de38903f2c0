//! Service harness for rtdash's integration tests: real `nats-server` (JetStream) and QuestDB
//! processes on free loopback ports, in temporary directories.
//!
//! - [`NatsServer::start`] gives each test its own server (cheap: ~0.1 s); it can be stopped
//!   and restarted on the same port and store for fault tests.
//! - [`QuestDb::shared`] gives a test binary one QuestDB started on first use (a JVM costs
//!   ~3 s and a few hundred MB); tests isolate themselves with [`unique_name`] tables.
//!   [`QuestDb::start`] gives a private instance that can be stopped and restarted.
//!
//! The binaries come from `RTDASH_NATS_SERVER`, `RTDASH_QUESTDB_JAR` and `RTDASH_JAVA`, or else
//! from where `./deploy/install.sh` puts them (`${RTDASH_CACHE:-~/.cache/rtdash}`, versions from
//! `deploy/versions.env`); server configs are rendered from the templates in `deploy/`.
//!
//! The harness is synchronous (std threads and processes), so it works from plain and from
//! `#[tokio::test]` tests alike. Child processes cannot outlive the test binary: each runs in its
//! own process group, is killed on drop, and on Linux gets `SIGKILL` when the test process dies
//! (`PR_SET_PDEATHSIG`), even when that process is itself killed with `SIGKILL`.

pub mod aggregator;
mod deploy;
mod http;
pub mod nats;
pub mod ports;
pub mod process;
pub mod questdb;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use nats::{NatsOptions, NatsServer};
pub use questdb::QuestDb;

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

/// Polls `probe` every 50 ms until it returns `Ok(Some(_))`, for at most `timeout`.
/// `Ok(None)` and `Err(_)` both mean "not yet"; on timeout the error names `what` and carries
/// the last error seen.
pub fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => None,
            Err(err) => Some(err),
        };
        if Instant::now() >= deadline {
            return Err(match last {
                Some(err) => err.context(format!("{what}: not reached within {timeout:?}")),
                None => anyhow::anyhow!("{what}: not reached within {timeout:?}"),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
pub mod cluster;
pub mod fault;
pub mod stack;
