//! Self-fencing: a [`Fence`] per owned partition, and the watchdog that trips it when the
//! lease is about to expire without a renewal.

use crate::metrics as m;
use rtdash_shared::time::{now_millis, UnixMillis};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Tells a worker whether it may still act as the partition's owner.
#[derive(Clone, Debug)]
pub struct Fence {
    token: CancellationToken,
    valid_until: Arc<AtomicI64>,
}

impl Fence {
    pub(super) fn new(valid_until: UnixMillis) -> Self {
        Self {
            token: CancellationToken::new(),
            valid_until: Arc::new(AtomicI64::new(valid_until)),
        }
    }

    /// A fence that never expires (replay, tests).
    pub fn unbounded() -> Self {
        Self::new(i64::MAX)
    }

    /// Whether the lease is still certainly ours.
    pub fn is_valid(&self) -> bool {
        !self.token.is_cancelled() && now_millis() < self.valid_until.load(Ordering::SeqCst)
    }

    /// Resolves when the partition is lost.
    pub async fn lost(&self) {
        self.token.cancelled().await;
    }

    /// The token cancelled on loss.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub(super) fn extend(&self, valid_until: UnixMillis) {
        self.valid_until.store(valid_until, Ordering::SeqCst);
    }

    pub(super) fn trip(&self) {
        self.token.cancel();
    }
}

/// Trips fences whose lease is about to expire without renewal (every 100 ms).
pub(super) fn spawn_watchdog(
    fences: Arc<Mutex<Vec<(u32, Fence)>>>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let Ok(list) = fences.lock() else { continue };
            for (partition, fence) in list.iter() {
                if !fence.token().is_cancelled() && !fence.is_valid() {
                    tracing::warn!(
                        partition,
                        "lease not renewed in time; fencing the partition"
                    );
                    metrics::counter!(m::PARTITIONS_FENCED).increment(1);
                    fence.trip();
                }
            }
        }
    })
}
