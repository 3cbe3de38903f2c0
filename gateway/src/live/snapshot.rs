//! Widget snapshots through a short-lived [`SingleFlight`] cache: whatever the number of
//! viewers, QuestDB sees at most one query per (plan, time range, topic generation, link
//! epoch) per `snapshot_ttl_ms` (a NATS reconnection moves the epoch on, so resynchronising
//! streams query again). A query's rows (from the row cache where windows no longer change)
//! also seed the topic's memory so live values of combined windows are complete;
//! [`snapshot_answer`] derives the widget's answer from them as a metric query would, and
//! overlays memory's newer values.

use super::ring::{LiveValue, PlanReg};
use super::topic::PlanHandle;
use crate::api::metric_answer::Derived;
use crate::metrics as names;
use crate::query::cache::RowCache;
use crate::query::single_flight::{Limits, SingleFlight};
use crate::query::{self, DerivedSeries, DerivedWindow, QueryError, QueryPlan, QuestDb, RowSet};
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
    pub rows: RowSet,
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
    horizon_ms: i64,
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
    /// The row cache the snapshots' rows come from (their folds are kept there too).
    pub fn row_cache(&self) -> &RowCache {
        self.db.row_cache()
    }

    /// A cache over `db` keeping results for `ttl`; windows older than the aggregators'
    /// correction horizon (`horizon_ms`) come from the row cache.
    pub fn new(db: Arc<QuestDb>, ttl: Duration, horizon_ms: i64) -> Self {
        Self {
            db,
            horizon_ms,
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
        closed_through: Option<UnixMillis>,
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
                || async {
                    self.fetch(handle, range_ms, closed_through)
                        .await
                        .map(Arc::new)
                },
                |_| true,
            )
            .await?;
        // A plan registered after this result was fetched (a viewer left and came back
        // while the topic lived on) is seeded from it: the topic's memory has every live
        // update since before the fetch, and older rows never replace newer ones.
        if handle.reg.seeded_from.load(Ordering::SeqCst) > rows.from {
            handle
                .topic
                .seed(&handle.reg, rows.rows.iter(), rows.from, rows.epoch);
        }
        Ok(rows)
    }

    async fn fetch(
        &self,
        handle: &PlanHandle,
        range_ms: i64,
        closed_through: Option<UnixMillis>,
    ) -> Result<SnapshotRows, QueryError> {
        let plan = &handle.reg.plan;
        let now = now_millis();
        let (from, to) = plan.align(now - range_ms, now + 1);
        // Taken before the query: rows read before a resynchronisation do not seed after it.
        let epoch = handle.topic.epoch();
        self.queries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::SNAPSHOT_QUERIES).increment(1);
        let immutable = query::immutable_before(now, closed_through, self.horizon_ms);
        let rows = self.db.rows(plan, from, to, immutable).await?;
        handle.topic.seed(&handle.reg, rows.iter(), from, epoch);
        Ok(SnapshotRows {
            from,
            to,
            rows,
            epoch,
        })
    }
}

/// What a widget's snapshot shows: `reg`'s windows of the last `range_ms` derived from the
/// stored `rows` (their folds kept in `cache`, the row cache they came from); where
/// `memory` (the topic's values, see [`super::topic::Topic::memory_values`]) has a value for
/// the same window (and series) that one wins (it includes live updates since the query);
/// the newest `max` windows at most per series, oldest first. A grouped plan's series are
/// fixed by its first snapshot (the live values of later viewers must name the same series).
pub fn snapshot_answer(
    reg: &PlanReg,
    (rows, cache): (&RowSet, &RowCache),
    memory: Vec<LiveValue>,
    now: UnixMillis,
    range_ms: i64,
    closed_through: Option<UnixMillis>,
    max: usize,
) -> Derived {
    let plan = &reg.plan;
    let from = plan.bucket_of(now - range_ms);
    let merged = rows.merged(plan, cache, from);
    if !plan.is_grouped() {
        let windows = merged.windows(plan, now, closed_through);
        let memory = memory.into_iter().map(|value| value.window);
        return Derived::Windows(overlay(windows, memory, from, max));
    }
    let groups = reg.groups_or(|| {
        merged
            .ranked(plan)
            .into_iter()
            .take(plan.limit)
            .map(|(key, _)| key)
            .collect()
    });
    let mut series = merged.series_fixed(plan, &groups.top, now, closed_through);
    let mut by_series: BTreeMap<usize, Vec<DerivedWindow>> = BTreeMap::new();
    for value in memory {
        if let Some(tag) = &value.series {
            by_series.entry(tag.index).or_default().push(value.window);
        }
    }
    if by_series.contains_key(&groups.top.len()) && !series.last().is_some_and(|s| s.other) {
        series.push(DerivedSeries {
            dimensions: Default::default(),
            other: true,
            value: None,
            windows: Vec::new(),
        });
    }
    for (index, one) in series.iter_mut().enumerate() {
        let windows = std::mem::take(&mut one.windows);
        let live = by_series.remove(&index).unwrap_or_default();
        one.windows = overlay(windows, live.into_iter(), from, max);
    }
    Derived::Series(series)
}

/// `stored` windows with `live` ones (from `from` on) replacing those of the same start,
/// the newest `max`, oldest first.
fn overlay(
    stored: Vec<DerivedWindow>,
    live: impl Iterator<Item = DerivedWindow>,
    from: UnixMillis,
    max: usize,
) -> Vec<DerivedWindow> {
    let mut windows: BTreeMap<i64, DerivedWindow> =
        stored.into_iter().map(|w| (w.window_start, w)).collect();
    for window in live {
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
    use crate::query::tiers::Tiers;
    use crate::query::{Ask, WindowAsk, WindowRow};
    use rtdash_shared::stat::Stat;

    fn cache() -> RowCache {
        RowCache::new(1 << 20, std::time::Duration::from_secs(60))
    }

    fn reg(group_by: &[String], stat: Stat) -> PlanReg {
        let def = crate::fixtures::def(
            r#"{"name":"m","event_type":"e","dimensions":["region"],"rollups":[]}"#,
        );
        let dims = if group_by.is_empty() {
            filter(&[("region", "us")])
        } else {
            filter(&[])
        };
        let mut ask = Ask::simple(&dims, stat, WindowAsk::Base, 0);
        ask.group_by = group_by;
        ask.limit = 1;
        let plan = query::plan(&def, "t", &Tiers::none(), &ask).expect("plan");
        PlanReg::new(plan, 0, i64::MIN)
    }

    fn stored(n: i64, region: &str, count: u64) -> WindowRow {
        WindowRow::from_update(&update(
            n * 60_000,
            &[("region", region)],
            count,
            n * 60_000,
        ))
    }

    #[test]
    fn memory_overlays_stored_windows_in_range_and_the_newest_are_kept() {
        let reg = reg(&[], Stat::Count);
        let minute = |n: i64| n * 60_000;
        let rows = RowSet::from_rows(
            vec![
                stored(1, "us", 1),
                stored(2, "us", 2),
                stored(3, "us", 3),
                stored(4, "us", 4),
            ],
            0,
            minute(10),
        );
        let live = |n: i64, count: u64| {
            let rows = [stored(n, "us", count)];
            LiveValue {
                series: None,
                window: query::derive(&reg.plan, rows.iter(), minute(10), None).remove(0),
            }
        };
        let memory = vec![live(1, 100), live(4, 40), live(5, 50)];
        let now = minute(5) + 1;
        let values = |max| -> Vec<Option<f64>> {
            match snapshot_answer(
                &reg,
                (&rows, &cache()),
                memory.clone(),
                now,
                minute(3),
                None,
                max,
            ) {
                Derived::Windows(windows) => windows.iter().map(|w| w.value).collect(),
                Derived::Series(_) => panic!("not grouped"),
            }
        };
        // Minutes 2 to 5: minute 1 is out of range in memory as in storage.
        assert_eq!(
            values(10),
            vec![Some(2.0), Some(3.0), Some(40.0), Some(50.0)]
        );
        assert_eq!(values(2), vec![Some(40.0), Some(50.0)]);
    }

    #[test]
    fn a_grouped_snapshot_fixes_the_series_for_later_ones() {
        let reg = reg(&["region".to_owned()], Stat::Count);
        let rows = RowSet::from_rows(
            vec![stored(1, "us", 5), stored(1, "eu", 3), stored(2, "ap", 1)],
            0,
            600_000,
        );
        let series = |rows: &RowSet| match snapshot_answer(
            &reg,
            (rows, &cache()),
            Vec::new(),
            300_000,
            300_000,
            None,
            10,
        ) {
            Derived::Series(series) => series
                .iter()
                .map(|s| {
                    (
                        s.dimensions.get("region").cloned().flatten(),
                        s.other,
                        s.value,
                    )
                })
                .collect::<Vec<_>>(),
            Derived::Windows(_) => panic!("grouped"),
        };
        assert_eq!(
            series(&rows),
            vec![
                (Some("us".to_owned()), false, Some(5.0)),
                (None, true, Some(4.0))
            ]
        );
        // eu now leads, but the series stay those of the first snapshot.
        let later = RowSet::from_rows(vec![stored(1, "us", 5), stored(1, "eu", 30)], 0, 600_000);
        assert_eq!(
            series(&later),
            vec![
                (Some("us".to_owned()), false, Some(5.0)),
                (None, true, Some(30.0))
            ]
        );
    }
}
