//! The allocator's own figures (jemalloc `stats.allocated` and `stats.resident`), refreshed
//! by a background thread; see [the module docs](super) for when the budget counts them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the allocator's statistics are refreshed.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// The allocator's figures, refreshed by a background thread.
#[derive(Debug, Default)]
pub struct AllocatorStats {
    allocated: AtomicU64,
    resident: AtomicU64,
}

impl AllocatorStats {
    /// Bytes in live allocations at the last refresh.
    pub fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Bytes in pages the allocator holds resident at the last refresh (close to the RSS).
    pub fn resident(&self) -> u64 {
        self.resident.load(Ordering::Relaxed)
    }

    /// When jemalloc is the process's global allocator: its statistics, refreshed every
    /// [`REFRESH_INTERVAL`] by a thread that stops when `stop` is cancelled. `None` otherwise
    /// (built without the `jemalloc` feature, or another global allocator).
    pub fn start(stop: CancellationToken) -> Option<Arc<Self>> {
        if !imp::serves_this_process() {
            return None;
        }
        let stats = Arc::new(Self::default());
        stats.refresh();
        let refreshed = Arc::clone(&stats);
        let spawned = std::thread::Builder::new()
            .name("edge-agent-memory".to_owned())
            .spawn(move || {
                while !stop.is_cancelled() {
                    std::thread::sleep(REFRESH_INTERVAL);
                    refreshed.refresh();
                }
            });
        match spawned {
            Ok(_) => Some(stats),
            Err(err) => {
                tracing::warn!(error = %err, "cannot start the allocator statistics thread; the memory budget uses estimates");
                None
            }
        }
    }

    /// Fixed figures, for tests of the budget.
    #[cfg(test)]
    pub(crate) fn fixed(allocated: u64) -> Arc<Self> {
        Arc::new(Self {
            allocated: AtomicU64::new(allocated),
            resident: AtomicU64::new(allocated),
        })
    }

    fn refresh(&self) {
        if let Some((allocated, resident)) = imp::read() {
            self.allocated.store(allocated, Ordering::Relaxed);
            self.resident.store(resident, Ordering::Relaxed);
        }
    }
}

#[cfg(feature = "jemalloc")]
mod imp {
    use tikv_jemalloc_ctl::{epoch, stats};

    /// `(allocated, resident)` after advancing the statistics epoch.
    pub fn read() -> Option<(u64, u64)> {
        epoch::advance().ok()?;
        let allocated = stats::allocated::read().ok()?;
        let resident = stats::resident::read().ok()?;
        Some((allocated as u64, resident as u64))
    }

    /// Whether an allocation by the global allocator shows in jemalloc's statistics.
    pub fn serves_this_process() -> bool {
        const PROBE: usize = 8 << 20;
        let Some((before, _)) = read() else {
            return false;
        };
        let probe: Vec<u8> = Vec::with_capacity(PROBE);
        let probe = std::hint::black_box(probe);
        let after = read().map_or(0, |(allocated, _)| allocated);
        drop(probe);
        after >= before + (PROBE as u64) / 2
    }
}

#[cfg(not(feature = "jemalloc"))]
mod imp {
    pub fn read() -> Option<(u64, u64)> {
        None
    }

    pub fn serves_this_process() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_under_test_runs_on_estimates() {
        // The test binary's global allocator is the system one: jemalloc's statistics would
        // not see the process's allocations, so they must not be used.
        let stop = CancellationToken::new();
        assert!(AllocatorStats::start(stop.clone()).is_none());
        stop.cancel();
    }
}
