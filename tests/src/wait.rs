//! Waiting: polling a condition until a deadline (from plain and from async tests), and
//! running the synchronous harness from an async test.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

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
                None => anyhow!("{what}: not reached within {timeout:?}"),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `probe` every 100 ms, without blocking the runtime, until it is true; fails naming
/// `what` after `timeout`.
pub async fn until(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !probe() {
        if Instant::now() >= deadline {
            bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Runs the blocking `work` (a harness start or stop) on tokio's blocking pool, so an async
/// test's runtime keeps serving meanwhile.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| anyhow!("blocking task: {err}"))?
}
