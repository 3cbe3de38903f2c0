//! Widget snapshots through a short-lived [`SingleFlight`] cache: whatever the number of
//! viewers, QuestDB sees at most one query per (plan, time range, topic generation, link
//! epoch) per `snapshot_ttl_ms` (a NATS reconnection moves the epoch on, so resynchronising
//! streams query again). A query's rows also seed the topic's memory so live values of
//! combined windows are complete; [`snapshot_windows`] overlays memory's newer values on them.

use super::topic::PlanHandle;
use crate::metrics as names;
use crate::query::single_flight::{Limits, SingleFlight};
use crate::query::{self, DerivedWindow, QueryError, QueryPlan, QuestDb, WindowRow};
use rtdash_shared::time::{now_millis, UnixMillis};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Expired snapshots are swept once the cache holds this many; it is not capped otherwise.
const LIMITS: Limits = Limits {
    sweep_from: 4_096,
    max_entries: usize::MAX,
};

/// Rows of one snapshot query.
#[derive(Debug)]
pub struct SnapshotRows {
    /// Range start queried (aligned to the plan's window).
    pub from: UnixMillis,
    /// Range end queried.
    pub to: UnixMillis,
    /// The rows.
    pub rows: Vec<WindowRow>,
    /// The topic's memory epoch before the query.
    pub epoch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    plan: QueryPlan,
    range_ms: i64,
    generation: u64,
    epoch: u64,
}

/// The cache.
pub struct SnapshotCache {
    db: Arc<QuestDb>,
    cache: SingleFlight<Key, Arc<SnapshotRows>, QueryError>,
    queries: AtomicU64,
}

impl std::fmt::Debug for SnapshotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCache")
            .field("cache", &self.cache)
            .field("queries", &self.queries)
            .finish_non_exhaustive()
    }
}

impl SnapshotCache {
    /// A cache over `db` keeping results for `ttl`.
    pub fn new(db: Arc<QuestDb>, ttl: Duration) -> Self {
        Self {
            db,
            cache: SingleFlight::new(ttl, LIMITS),
            queries: AtomicU64::new(0),
        }
    }

    /// Snapshot queries sent to QuestDB so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// The rows for `handle`'s plan over the last `range_ms` (from the cache when fresh).
    pub async fn rows(
        &self,
        handle: &PlanHandle,
        range_ms: i64,
    ) -> Result<Arc<SnapshotRows>, QueryError> {
        let key = Key {
            plan: handle.reg.plan.clone(),
            range_ms,
            generation: handle.topic.generation,
            epoch: handle.topic.link_epoch(),
        };
        let rows = self
            .cache
            .get_or_fetch(
                key,
                || async { self.fetch(handle, range_ms).await.map(Arc::new) },
                |_| true,
            )
            .await?;
        // A plan registered after this result was fetched (a viewer left and came back
        // while the topic lived on) is seeded from it: the topic's memory has every live
        // update since before the fetch, and older rows never replace newer ones.
        if handle.reg.seeded_from.load(Ordering::SeqCst) > rows.from {
            handle
                .topic
                .seed(&handle.reg, &rows.rows, rows.from, rows.epoch);
        }
        Ok(rows)
    }

    async fn fetch(&self, handle: &PlanHandle, range_ms: i64) -> Result<SnapshotRows, QueryError> {
        let plan = &handle.reg.plan;
        let now = now_millis();
        let from = plan.bucket_of(now - range_ms);
        let to = plan.bucket_of(now) + plan.window_ms;
        // Taken before the query: rows read before a resynchronisation do not seed after it.
        let epoch = handle.topic.epoch();
        self.queries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::SNAPSHOT_QUERIES).increment(1);
        let rows = self.db.fetch_rows(plan, from, to).await?;
        handle.topic.seed(&handle.reg, &rows, from, epoch);
        Ok(SnapshotRows {
            from,
            to,
            rows,
            epoch,
        })
    }
}

/// The windows a widget's snapshot shows: `plan`'s windows of the last `range_ms` derived
/// from the stored `rows`, where `memory` (the topic's values, see
/// [`super::topic::Topic::memory_values`]) has a value for the same window that one wins (it
/// includes live updates since the query); the newest `max` at most, oldest first.
pub fn snapshot_windows(
    plan: &QueryPlan,
    rows: &[WindowRow],
    memory: Vec<DerivedWindow>,
    now: UnixMillis,
    range_ms: i64,
    closed_through: Option<UnixMillis>,
    max: usize,
) -> Vec<DerivedWindow> {
    let from = plan.bucket_of(now - range_ms);
    let in_range = rows.iter().filter(|row| row.window_start >= from);
    let mut windows: BTreeMap<i64, DerivedWindow> =
        query::derive(plan, in_range, now, closed_through)
            .into_iter()
            .map(|w| (w.window_start, w))
            .collect();
    for window in memory {
        if window.window_start >= from {
            windows.insert(window.window_start, window);
        }
    }
    let mut list: Vec<DerivedWindow> = windows.into_values().collect();
    if list.len() > max {
        list.drain(..list.len() - max);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{filter, update};
    use rtdash_shared::stat::Stat;

    #[test]
    fn memory_overlays_stored_windows_in_range_and_the_newest_are_kept() {
        let def = crate::fixtures::def(r#"{"name":"m","event_type":"e","dimensions":["region"]}"#);
        let plan =
            query::plan(&def, "t", &filter(&[("region", "us")]), Stat::Count, None).expect("plan");
        let minute = |n: i64| n * 60_000;
        let stored = |n: i64, count: u64| {
            WindowRow::from_update(&update(minute(n), &[("region", "us")], count, minute(n)))
        };
        let rows = vec![stored(1, 1), stored(2, 2), stored(3, 3), stored(4, 4)];
        let live = |n: i64, count: u64| {
            let rows = [stored(n, count)];
            query::derive(&plan, rows.iter(), minute(10), None).remove(0)
        };
        let memory = vec![live(1, 100), live(4, 40), live(5, 50)];
        let now = minute(5) + 1;
        let values = |max| -> Vec<Option<f64>> {
            snapshot_windows(&plan, &rows, memory.clone(), now, minute(3), None, max)
                .iter()
                .map(|w| w.value)
                .collect()
        };
        // Minutes 2 to 5: minute 1 is out of range in memory as in storage.
        assert_eq!(
            values(10),
            vec![Some(2.0), Some(3.0), Some(40.0), Some(50.0)]
        );
        assert_eq!(values(2), vec![Some(40.0), Some(50.0)]);
    }
}
