//! Tumbling windows aligned to the Unix epoch, and watermarks.
//!
//! A window `[start, start + size)` holds the events whose `occurred_at` falls inside it. A
//! *watermark* `W` is a promise: "no more data with event time below `W` is expected, except
//! late data". A partition's watermark is the minimum over the watermarks of its active
//! sources ([`WatermarkTracker`]); a window closes once the watermark has passed its end plus
//! the allowed lateness.

use crate::time::UnixMillis;
use std::collections::HashMap;

/// Start of the window of size `size_ms` containing `at` (floor, also for times before 1970).
pub fn window_start(at: UnixMillis, size_ms: i64) -> UnixMillis {
    at.div_euclid(size_ms) * size_ms
}

/// One tumbling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Inclusive start.
    pub start: UnixMillis,
    /// Size in milliseconds.
    pub size_ms: i64,
}

impl Window {
    /// The window of size `size_ms` containing `at`.
    pub fn containing(at: UnixMillis, size_ms: i64) -> Self {
        Self {
            start: window_start(at, size_ms),
            size_ms,
        }
    }

    /// Exclusive end.
    pub fn end(&self) -> UnixMillis {
        self.start + self.size_ms
    }

    /// Whether a watermark of `watermark` closes the window, given `allowed_lateness_ms`.
    pub fn is_closed_by(&self, watermark: UnixMillis, allowed_lateness_ms: i64) -> bool {
        watermark >= self.end() + allowed_lateness_ms
    }
}

/// Tracks the watermarks of several sources (edge agents) and yields their minimum over the
/// sources heard from within `idle_timeout_ms`, so that one silent agent cannot hold every
/// window open forever.
#[derive(Clone, Debug, Default)]
pub struct WatermarkTracker {
    sources: HashMap<String, SourceMark>,
    idle_timeout_ms: i64,
    floor: Option<UnixMillis>,
}

#[derive(Clone, Copy, Debug)]
struct SourceMark {
    watermark: UnixMillis,
    last_seen: UnixMillis,
}

impl WatermarkTracker {
    /// A tracker that drops sources silent for longer than `idle_timeout_ms`.
    pub fn new(idle_timeout_ms: i64) -> Self {
        Self {
            sources: HashMap::new(),
            idle_timeout_ms,
            floor: None,
        }
    }

    /// Records a source's watermark as of `seen_at`. A source's watermark never goes back.
    pub fn observe(&mut self, source: &str, watermark: UnixMillis, seen_at: UnixMillis) {
        match self.sources.get_mut(source) {
            Some(mark) => {
                mark.watermark = mark.watermark.max(watermark);
                mark.last_seen = mark.last_seen.max(seen_at);
            }
            None => {
                self.sources.insert(
                    source.to_owned(),
                    SourceMark {
                        watermark,
                        last_seen: seen_at,
                    },
                );
            }
        }
    }

    /// The watermark as of `now`: the minimum over sources seen within the idle timeout.
    /// Never goes back once reported (a returning slow source makes its data late, it does
    /// not reopen windows). `None` before any source was heard from.
    pub fn current(&mut self, now: UnixMillis) -> Option<UnixMillis> {
        let active_min = self
            .sources
            .values()
            .filter(|mark| now - mark.last_seen <= self.idle_timeout_ms)
            .map(|mark| mark.watermark)
            .min();
        let candidate = match active_min {
            Some(min) => Some(min),
            // Every source idle: the newest promise any of them made still holds.
            None => self.sources.values().map(|mark| mark.watermark).max(),
        };
        self.floor = match (self.floor, candidate) {
            (Some(floor), Some(candidate)) => Some(floor.max(candidate)),
            (floor, candidate) => floor.or(candidate),
        };
        self.floor
    }

    /// Forgets sources not heard from since `before` (housekeeping).
    pub fn forget_older_than(&mut self, before: UnixMillis) {
        self.sources.retain(|_, mark| mark.last_seen >= before);
    }

    /// Number of sources known.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// Restores the floor (from a checkpoint).
    pub fn restore_floor(&mut self, floor: Option<UnixMillis>) {
        self.floor = floor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_epoch() {
        assert_eq!(window_start(125_000, 60_000), 120_000);
        assert_eq!(window_start(120_000, 60_000), 120_000);
        assert_eq!(window_start(-1, 60_000), -60_000);
        let w = Window::containing(1_705_327_532_000, 60_000);
        assert_eq!(w.start, 1_705_327_500_000);
        assert_eq!(w.end(), 1_705_327_560_000);
        assert!(!w.is_closed_by(w.end() + 29_999, 30_000));
        assert!(w.is_closed_by(w.end() + 30_000, 30_000));
    }

    #[test]
    fn watermark_is_the_minimum_of_active_sources() {
        let mut tracker = WatermarkTracker::new(10_000);
        assert_eq!(tracker.current(0), None);
        tracker.observe("a", 1_000, 1_000);
        tracker.observe("b", 500, 1_000);
        assert_eq!(tracker.current(1_000), Some(500));
        tracker.observe("a", 3_000, 3_000);
        assert_eq!(tracker.current(3_000), Some(500));
        // b goes silent: after the idle timeout it no longer holds the watermark back.
        tracker.observe("a", 20_000, 20_000);
        assert_eq!(tracker.current(20_000), Some(20_000));
        // b returns with an old watermark: the reported watermark does not go back.
        tracker.observe("b", 700, 21_000);
        assert_eq!(tracker.current(21_000), Some(20_000));
        // a source's own watermark never regresses
        tracker.observe("a", 10, 22_000);
        tracker.observe("b", 30_000, 22_000);
        assert_eq!(tracker.current(22_000), Some(20_000));
    }

    #[test]
    fn all_sources_idle_keeps_the_newest_promise() {
        let mut tracker = WatermarkTracker::new(1_000);
        tracker.observe("a", 5_000, 0);
        tracker.observe("b", 7_000, 0);
        assert_eq!(tracker.current(100_000), Some(7_000));
    }
}
