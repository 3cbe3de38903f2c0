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
    /// chunk, and by how many bytes that changed what the chunk holds (for
    /// [`RowCache::grow`]): 0 when the fold was kept already, else its bytes less those of
    /// the oldest fold, dropped beyond [`FOLDS_PER_CHUNK`].
    pub fn fold(&self, plan: &QueryPlan) -> (Arc<Fold>, isize) {
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
            return (fold.clone(), 0);
        }
        // Folded outside the lock: two requests racing on the same fold both compute it, the
        // first one's is kept.
        let fold = Arc::new(Fold::of_rows(plan, &self.rows));
        let bytes = fold.heap_bytes();
        let mut folds = self.folds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, kept)) = folds.iter().find(|(k, _)| *k == key) {
            return (kept.clone(), 0);
        }
        let dropped = if folds.len() >= FOLDS_PER_CHUNK {
            folds.remove(0).1.heap_bytes()
        } else {
            0
        };
        folds.push((key, fold.clone()));
        (fold, signed(bytes) - signed(dropped))
    }
}

/// `bytes` as a change of a byte count.
fn signed(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

struct Entry {
    tick: u64,
    chunk: Arc<Chunk>,
    stored: Instant,
    /// The chunk's rows and its folds, as reported by [`RowCache::grow`].
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

    /// Counts `delta` bytes more (or fewer) for the entry of `key` holding `chunk` (a fold
    /// kept with the chunk, less one it dropped, see [`Chunk::fold`]; nothing when the chunk
    /// is no longer cached there), evicting the least recently used others beyond the budget.
    pub fn grow(&self, key: &ChunkKey, chunk: &Chunk, delta: isize) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = inner
            .entries
            .get_mut(key)
            .filter(|entry| std::ptr::eq(Arc::as_ptr(&entry.chunk), chunk))
        else {
            return;
        };
        let before = entry.bytes;
        entry.bytes = entry.bytes.saturating_add_signed(delta);
        let after = entry.bytes;
        let tick = entry.tick;
        inner.bytes = inner.bytes - before + after;
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
    use crate::fixtures::{amount, filter, sketched};
    use crate::query::plan::{plan, Ask, WindowAsk};
    use crate::query::tiers::Tiers;
    use rtdash_shared::stat::Stat;

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
        let grown = chunk(200);
        cache.insert(key(1), grown.clone());
        cache.insert(key(2), chunk(200));
        cache.insert(key(3), chunk(200));
        cache.grow(&key(1), &grown, 500);
        assert_eq!(cache.bytes(), 900, "2 went, 1 and 3 stay");
        assert!(cache.get(&key(2)).is_none());
        cache.grow(&key(1), &grown, 400);
        assert_eq!(
            cache.bytes(),
            1_100,
            "alone, it may exceed the budget until it goes"
        );
        assert!(cache.get(&key(3)).is_none());
        assert!(cache.get(&key(1)).is_some());
        cache.grow(&key(9), &grown, 100);
        assert_eq!(
            cache.bytes(),
            1_100,
            "a chunk no longer cached adds nothing"
        );
        cache.grow(&key(1), &grown, -300);
        assert_eq!(cache.bytes(), 800, "a dropped fold is counted out");
        let replaced = chunk(100);
        cache.insert(key(1), replaced.clone());
        cache.grow(&key(1), &grown, -700);
        assert_eq!(
            cache.bytes(),
            100,
            "the replaced chunk's drops count no more"
        );
        cache.grow(&key(1), &replaced, -1_000);
        assert_eq!(cache.bytes(), 0, "never below nothing");
        cache.insert(key(4), chunk(100));
        assert_eq!(cache.bytes(), 100, "the grown entry leaves as a whole");
    }

    /// The bytes counted for a chunk are its rows' and its kept folds': a fold dropped
    /// beyond [`FOLDS_PER_CHUNK`] is no longer counted.
    #[tokio::test(start_paused = true)]
    async fn the_folds_a_chunk_drops_are_counted_out() {
        let rows: Vec<WindowRow> = (0..8_i64)
            .flat_map(|window| {
                ["eu", "us", "ap"].into_iter().map(move |region| {
                    let values: Vec<f64> = (0..20).map(|i| (window * 100 + i) as f64).collect();
                    sketched(
                        window * 60_000,
                        &[("plan", "pro"), ("region", region)],
                        &values,
                    )
                })
            })
            .collect();
        let cache = RowCache::new(10_000_000, Duration::from_secs(60));
        let chunk = Arc::new(Chunk::new(rows));
        cache.insert(key(0), chunk.clone());
        let plan_of = |stat: Stat, by_region: bool| {
            let pro = filter(&[("plan", "pro")]);
            let region = ["region".to_owned()];
            let mut ask = Ask::simple(&pro, stat, WindowAsk::Base, 10_000_000);
            if by_region {
                ask.group_by = &region;
                ask.limit = 10;
            }
            let plan = plan(&amount(), "t", &Tiers::none(), &ask).expect("plan");
            assert_eq!(plan.dim_set, "plan,region");
            plan
        };
        // The largest first (percentiles' sketches per region), the smallest last.
        let plans = [
            plan_of(Stat::P99, true),
            plan_of(Stat::Count, true),
            plan_of(Stat::P99, false),
            plan_of(Stat::Unique, false),
            plan_of(Stat::Count, false),
        ];
        let mut kept = Vec::new();
        let mut counted = Vec::new();
        for plan in &plans {
            let (fold, delta) = chunk.fold(plan);
            assert!(delta != 0, "a new fold");
            cache.grow(&key(0), &chunk, delta);
            kept.push(fold.heap_bytes());
            if kept.len() > FOLDS_PER_CHUNK {
                kept.remove(0);
            }
            assert_eq!(cache.bytes(), chunk.bytes + kept.iter().sum::<usize>());
            counted.push(cache.bytes());
        }
        assert!(
            counted[4] < counted[3],
            "the percentiles by region went: {counted:?}"
        );
        let (_, again) = chunk.fold(&plans[4]);
        assert_eq!(again, 0, "kept: nothing changes");
        assert_eq!(cache.bytes(), counted[4]);
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
