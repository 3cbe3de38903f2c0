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
use super::fold::Fold;
use super::plan::QueryPlan;
use crate::metrics as names;
use rtdash_shared::sketch::SketchSpec;
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
    /// Approximate bytes held by the rows.
    pub bytes: usize,
    /// Folds of the rows for the plans that read them, most recent last (at most
    /// [`FOLDS_PER_CHUNK`]).
    folds: Mutex<Vec<(FoldKey, Arc<Fold>)>>,
}

/// Folds kept per chunk: plans reading the same rows differ by their grouping and the sketch
/// parts of their stat (percentiles, distinct counts, neither).
pub const FOLDS_PER_CHUNK: usize = 4;

/// What a fold of a chunk's rows depends on besides the rows (the chunk's key fixes the
/// selection).
#[derive(Clone, Debug, PartialEq, Eq)]
struct FoldKey {
    group_by: Vec<String>,
    parts: Option<SketchSpec>,
}

impl Chunk {
    /// A chunk of `rows`, measured.
    pub fn new(rows: Vec<WindowRow>) -> Self {
        let bytes =
            std::mem::size_of::<Self>() + rows.iter().map(WindowRow::heap_bytes).sum::<usize>();
        Self {
            rows,
            bytes,
            folds: Mutex::default(),
        }
    }

    /// The fold of the rows for `plan` (whose selection must be the chunk's), kept with the
    /// chunk; the bytes it added when it was made now (the oldest fold beyond
    /// [`FOLDS_PER_CHUNK`] is dropped).
    pub fn fold(&self, plan: &QueryPlan) -> (Arc<Fold>, Option<usize>) {
        let key = FoldKey {
            group_by: plan.group_by.clone(),
            parts: plan.state_parts(),
        };
        if let Some((_, fold)) = self
            .folds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(k, _)| *k == key)
        {
            return (fold.clone(), None);
        }
        // Folded outside the lock: two requests racing on the same fold both compute it, the
        // first one's is kept.
        let fold = Arc::new(Fold::of_rows(plan, &self.rows));
        let bytes = fold.heap_bytes();
        let mut folds = self.folds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, kept)) = folds.iter().find(|(k, _)| *k == key) {
            return (kept.clone(), None);
        }
        if folds.len() >= FOLDS_PER_CHUNK {
            folds.remove(0);
        }
        folds.push((key, fold.clone()));
        (fold, Some(bytes))
    }
}

struct Entry {
    tick: u64,
    chunk: Arc<Chunk>,
    stored: Instant,
    /// The chunk's rows and the folds reported by [`RowCache::grow`].
    bytes: usize,
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
            self.bytes -= entry.bytes;
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

    /// Drops every chunk of `metric` of `tenant` (its past windows were rewritten), in
    /// every table.
    pub fn forget_metric(&self, tenant: &str, metric: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<ChunkKey> = inner
            .entries
            .keys()
            .filter(|key| key.tenant == tenant && key.metric == metric)
            .cloned()
            .collect();
        for key in &keys {
            inner.remove(key);
        }
        self.bytes.set(inner.bytes as f64);
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
                inner.bytes -= entry.bytes;
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
                bytes: chunk.bytes,
                chunk,
                stored: Instant::now(),
            },
        );
        self.bytes.set(inner.bytes as f64);
    }

    /// Counts `extra` bytes more for the entry of `key` (a fold kept with its chunk; nothing
    /// when it is no longer cached), evicting the least recently used others beyond the
    /// budget.
    pub fn grow(&self, key: &ChunkKey, extra: usize) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = inner.entries.get_mut(key) else {
            return;
        };
        entry.bytes += extra;
        let tick = entry.tick;
        inner.bytes += extra;
        while inner.bytes > self.budget {
            let Some(oldest) = inner.order.keys().copied().find(|t| *t != tick) else {
                break;
            };
            if let Some(victim) = inner.order.remove(&oldest) {
                if let Some(entry) = inner.entries.remove(&victim) {
                    inner.bytes -= entry.bytes;
                    self.evictions.increment(1);
                }
            }
        }
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
            bytes,
            ..Chunk::default()
        })
    }

    /// A fold kept with a chunk counts against the budget: others go, least recently used
    /// first, never the chunk that grew.
    #[tokio::test(start_paused = true)]
    async fn a_growing_chunk_evicts_others() {
        let cache = RowCache::new(1_000, Duration::from_secs(60));
        cache.insert(key(1), chunk(200));
        cache.insert(key(2), chunk(200));
        cache.insert(key(3), chunk(200));
        cache.grow(&key(1), 500);
        assert_eq!(cache.bytes(), 900, "2 went, 1 and 3 stay");
        assert!(cache.get(&key(2)).is_none());
        cache.grow(&key(1), 400);
        assert_eq!(
            cache.bytes(),
            1_100,
            "alone, it may exceed the budget until it goes"
        );
        assert!(cache.get(&key(3)).is_none());
        assert!(cache.get(&key(1)).is_some());
        cache.grow(&key(9), 100);
        assert_eq!(
            cache.bytes(),
            1_100,
            "a chunk no longer cached adds nothing"
        );
        cache.insert(key(4), chunk(100));
        assert_eq!(cache.bytes(), 100, "the grown entry leaves as a whole");
    }

    #[tokio::test]
    async fn forgetting_a_metric_drops_its_chunks_only() {
        let cache = RowCache::new(1 << 20, Duration::from_secs(60));
        let mut other = key(0);
        other.metric = "other".to_owned();
        cache.insert(key(0), chunk(100));
        cache.insert(key(64), chunk(100));
        cache.insert(other.clone(), chunk(100));
        cache.forget_metric("a", "m");
        assert!(cache.get(&key(0)).is_none());
        assert!(cache.get(&key(64)).is_none());
        assert!(cache.get(&other).is_some());
        assert_eq!(cache.bytes(), 100);
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
