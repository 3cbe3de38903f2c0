//! The row cache: decoded rows of windows that can no longer change, kept so that repeated
//! wide queries (seven days of hourly windows for a hundred series) cost a merge instead of
//! a QuestDB read and the decoding of every state.
//!
//! A window stops changing once the aggregators' correction horizon has passed its end
//! (later data goes to `rtdash.late.<tenant>`), so rows are cached by chunks of
//! [`CHUNK_WINDOWS`] stored windows that end before that point (see `super::rows`), and
//! only when every row in them is final. Entries are bounded by bytes (least recently used
//! first out) and by age (`query.row_cache_max_age_secs`: how long a replay or recompute of
//! old windows can stay unseen). Hits, misses, evictions and bytes are metrics.

use super::derive::WindowRow;
use crate::metrics as names;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Stored windows per cached chunk: 64 minutes of 1-minute windows, 64 hours of the hourly
/// tier, 64 days of the daily tier.
pub const CHUNK_WINDOWS: i64 = 64;

/// Which rows a chunk holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    /// Table read.
    pub table: String,
    /// Tenant.
    pub tenant: String,
    /// Metric.
    pub metric: String,
    /// Dimension set.
    pub dim_set: String,
    /// The series selection: `=<series>` or `~<filter JSON>`.
    pub selector: String,
    /// Whether states were read.
    pub with_state: bool,
    /// Chunk start.
    pub start: i64,
    /// Chunk length.
    pub len_ms: i64,
}

/// Rows of one range, decoded.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The rows, in QuestDB's order.
    pub rows: Vec<WindowRow>,
    /// Approximate bytes held.
    pub bytes: usize,
}

impl Chunk {
    /// A chunk of `rows`, measured.
    pub fn new(rows: Vec<WindowRow>) -> Self {
        let bytes =
            std::mem::size_of::<Self>() + rows.iter().map(WindowRow::heap_bytes).sum::<usize>();
        Self { rows, bytes }
    }
}

struct Entry {
    tick: u64,
    chunk: Arc<Chunk>,
    stored: Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<ChunkKey, Entry>,
    /// Use order: tick -> key.
    order: BTreeMap<u64, ChunkKey>,
    tick: u64,
    bytes: usize,
}

impl Inner {
    fn remove(&mut self, key: &ChunkKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.order.remove(&entry.tick);
            self.bytes -= entry.chunk.bytes;
        }
    }
}

/// The cache.
pub struct RowCache {
    budget: usize,
    max_age: Duration,
    inner: Mutex<Inner>,
    hits: metrics::Counter,
    misses: metrics::Counter,
    evictions: metrics::Counter,
    bytes: metrics::Gauge,
}

impl std::fmt::Debug for RowCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowCache")
            .field("budget", &self.budget)
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl RowCache {
    /// A cache of at most `budget` bytes whose entries serve for `max_age`.
    pub fn new(budget: usize, max_age: Duration) -> Self {
        Self {
            budget,
            max_age,
            inner: Mutex::new(Inner::default()),
            hits: metrics::counter!(names::ROW_CACHE_HITS),
            misses: metrics::counter!(names::ROW_CACHE_MISSES),
            evictions: metrics::counter!(names::ROW_CACHE_EVICTIONS),
            bytes: metrics::gauge!(names::ROW_CACHE_BYTES),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.inner
            .lock()
            .map(|inner| inner.bytes)
            .unwrap_or_default()
    }

    /// The chunk of `key`, if cached and not too old (counted as a hit or a miss).
    pub fn get(&self, key: &ChunkKey) -> Option<Arc<Chunk>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = inner
            .entries
            .get(key)
            .map(|entry| entry.stored.elapsed() < self.max_age);
        match fresh {
            Some(true) => {
                inner.tick += 1;
                let tick = inner.tick;
                let entry = inner.entries.get_mut(key).expect("present");
                let old = std::mem::replace(&mut entry.tick, tick);
                let chunk = entry.chunk.clone();
                inner.order.remove(&old);
                inner.order.insert(tick, key.clone());
                self.hits.increment(1);
                Some(chunk)
            }
            Some(false) => {
                inner.remove(key);
                self.bytes.set(inner.bytes as f64);
                self.misses.increment(1);
                None
            }
            None => {
                self.misses.increment(1);
                None
            }
        }
    }

    /// Keeps `chunk` under `key`, evicting the least recently used beyond the budget; a
    /// chunk larger than a quarter of the budget is not kept.
    pub fn insert(&self, key: ChunkKey, chunk: Arc<Chunk>) {
        if chunk.bytes > self.budget / 4 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.remove(&key);
        while inner.bytes + chunk.bytes > self.budget {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some(entry) = inner.entries.remove(&oldest) {
                inner.bytes -= entry.chunk.bytes;
                self.evictions.increment(1);
            }
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.bytes += chunk.bytes;
        inner.order.insert(tick, key.clone());
        inner.entries.insert(
            key,
            Entry {
                tick,
                chunk,
                stored: Instant::now(),
            },
        );
        self.bytes.set(inner.bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(start: i64) -> ChunkKey {
        ChunkKey {
            table: "t".into(),
            tenant: "a".into(),
            metric: "m".into(),
            dim_set: String::new(),
            selector: "={}".into(),
            with_state: false,
            start,
            len_ms: 60_000,
        }
    }

    fn chunk(bytes: usize) -> Arc<Chunk> {
        Arc::new(Chunk {
            rows: Vec::new(),
            bytes,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn least_recently_used_go_first_and_old_entries_expire() {
        let cache = RowCache::new(1_000, Duration::from_secs(60));
        cache.insert(key(1), chunk(200));
        cache.insert(key(2), chunk(200));
        cache.insert(key(3), chunk(200));
        assert!(cache.get(&key(1)).is_some(), "1 is now the most recent");
        cache.insert(key(4), chunk(200));
        cache.insert(key(5), chunk(250));
        assert_eq!(cache.bytes(), 850);
        assert!(
            cache.get(&key(2)).is_none(),
            "2 was the least recently used"
        );
        for kept in [1, 3, 4, 5] {
            assert!(cache.get(&key(kept)).is_some(), "{kept}");
        }
        cache.insert(key(6), chunk(251));
        assert_eq!(cache.bytes(), 850, "too large for a quarter of the budget");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(cache.get(&key(1)).is_none(), "expired");
        assert_eq!(cache.bytes(), 650);
    }
}
