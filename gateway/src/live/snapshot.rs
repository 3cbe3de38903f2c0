//! Widget snapshots through a short-lived single-flight cache: whatever the number of
//! viewers, QuestDB sees at most one query per (plan, time range, topic generation, link
//! epoch) per `snapshot_ttl_ms` (a NATS reconnection moves the epoch on, so resynchronising
//! streams query again). A query's rows also seed the topic's memory so live values of
//! combined windows are complete.

use super::hub::PlanHandle;
use crate::query::{QueryError, QuestDb, WindowRow};
use rtdash_shared::time::{now_millis, UnixMillis};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

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

type Slot = Arc<OnceCell<Result<Arc<SnapshotRows>, String>>>;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    plan: crate::query::QueryPlan,
    range_ms: i64,
    generation: u64,
    epoch: u64,
}

struct Entry {
    created: tokio::time::Instant,
    slot: Slot,
}

/// The cache.
pub struct SnapshotCache {
    db: Arc<QuestDb>,
    ttl: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
    queries: AtomicU64,
}

impl std::fmt::Debug for SnapshotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCache")
            .field("ttl", &self.ttl)
            .field("queries", &self.queries)
            .finish_non_exhaustive()
    }
}

impl SnapshotCache {
    /// A cache over `db` keeping results for `ttl`.
    pub fn new(db: Arc<QuestDb>, ttl: Duration) -> Self {
        Self {
            db,
            ttl,
            entries: Mutex::new(HashMap::new()),
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
    ) -> Result<Arc<SnapshotRows>, String> {
        let key = Key {
            plan: handle.reg.plan.clone(),
            range_ms,
            generation: handle.topic.generation,
            epoch: handle.topic.link_epoch(),
        };
        let slot = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let now = tokio::time::Instant::now();
            if entries.len() > 4096 {
                entries.retain(|_, entry| now.duration_since(entry.created) < self.ttl);
            }
            match entries.get(&key) {
                Some(entry) if now.duration_since(entry.created) < self.ttl => entry.slot.clone(),
                _ => {
                    let slot: Slot = Arc::new(OnceCell::new());
                    entries.insert(
                        key.clone(),
                        Entry {
                            created: now,
                            slot: slot.clone(),
                        },
                    );
                    slot
                }
            }
        };
        let result = slot
            .get_or_init(|| async {
                self.fetch(handle, range_ms)
                    .await
                    .map(Arc::new)
                    .map_err(|err| err.to_string())
            })
            .await
            .clone();
        if let Ok(rows) = &result {
            // A plan registered after this result was fetched (a viewer left and came back
            // while the topic lived on) is seeded from it: the topic's memory has every live
            // update since before the fetch, and older rows never replace newer ones.
            if handle.reg.seeded_from.load(Ordering::SeqCst) > rows.from {
                handle
                    .topic
                    .seed(&handle.reg, &rows.rows, rows.from, rows.epoch);
            }
        }
        if result.is_err() {
            // Do not keep failures: the next viewer tries again.
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if entries
                .get(&key)
                .is_some_and(|entry| Arc::ptr_eq(&entry.slot, &slot))
            {
                entries.remove(&key);
            }
        }
        result
    }

    async fn fetch(&self, handle: &PlanHandle, range_ms: i64) -> Result<SnapshotRows, QueryError> {
        let plan = &handle.reg.plan;
        let now = now_millis();
        let from = plan.bucket_of(now - range_ms);
        let to = plan.bucket_of(now) + plan.window_ms;
        // Taken before the query: rows read before a resynchronisation do not seed after it.
        let epoch = handle.topic.epoch();
        self.queries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::SNAPSHOT_QUERIES).increment(1);
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
