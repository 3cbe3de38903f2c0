//! The hook alert evaluation plugs into: every base window version published live (throttled
//! provisional values; every close and every correction) is handed to a [`WindowObserver`].
//! Rollup tier versions (an hour, a day of a metric) are not: rules are about a metric's own
//! windows.

use rtdash_shared::messages::WindowUpdate;

/// Receives window changes with their statistics, revision and `final` flag.
///
/// Called on the partition worker's task for every window version published live: open
/// windows at most once per `live.throttle_ms` per window (always ending with the latest
/// value), closes (`is_final`, revision 0) and corrections (revision + 1) without
/// throttling. Implementations must return quickly: hand the update to a bounded channel of
/// their own, and choose what to do when it is full.
pub trait WindowObserver: Send + Sync + 'static {
    /// One window version.
    fn window_changed(&self, partition: u32, update: &WindowUpdate);

    /// Whether [`window_changed`](Self::window_changed) wants versions of `(tenant, metric)`
    /// (final ones, or also provisional ones): the caller builds the [`WindowUpdate`] only
    /// then. By default, all.
    fn wants(&self, _tenant: &str, _metric: &str, _is_final: bool) -> bool {
        true
    }

    /// This process took `partition` over under ownership `epoch` and restored its state;
    /// every window of the checkpoint follows through [`window_changed`](Self::window_changed).
    fn partition_started(&self, _partition: u32, _epoch: u64) {}

    /// This process stopped owning `partition` (released, fenced, or failed); no window of
    /// that epoch follows.
    fn partition_stopped(&self, _partition: u32, _epoch: u64) {}
}

/// The observer used until alert evaluation exists: does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl WindowObserver for NoObserver {
    fn window_changed(&self, _partition: u32, _update: &WindowUpdate) {}

    fn wants(&self, _tenant: &str, _metric: &str, _is_final: bool) -> bool {
        false
    }
}
