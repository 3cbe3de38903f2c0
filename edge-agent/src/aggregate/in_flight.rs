//! The receive times of the requests being processed: the flusher holds the watermark back
//! to the oldest (see [the module docs](super)).

use rtdash_shared::time::UnixMillis;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Receive times of the requests being processed, for the watermark.
#[derive(Debug, Default)]
pub struct InFlightRequests {
    inner: Mutex<BTreeMap<(UnixMillis, u64), ()>>,
    next: AtomicU64,
}

/// Removes its request from [`InFlightRequests`] when dropped.
#[derive(Debug)]
pub struct InFlightGuard<'a> {
    owner: &'a InFlightRequests,
    key: (UnixMillis, u64),
}

impl InFlightRequests {
    /// Registers a request received at `received_at`.
    pub fn enter(&self, received_at: UnixMillis) -> InFlightGuard<'_> {
        let key = (received_at, self.next.fetch_add(1, Ordering::Relaxed));
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, ());
        InFlightGuard { owner: self, key }
    }

    /// The receive time of the oldest request in progress.
    pub fn oldest(&self) -> Option<UnixMillis> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .next()
            .map(|(at, _)| *at)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.owner
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}
