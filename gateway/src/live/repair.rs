//! Finality repair: live updates travel over core NATS, which is at most once, so a gateway
//! can miss a window's final version (the classic case: a topic subscribes just after the
//! aggregator published it, and its snapshot query reads QuestDB before the row is applied).
//! Its viewers would then show that window as provisional forever.
//!
//! Every `repair_interval_ms` this task asks each topic which series-windows it still holds
//! as not final although the aggregators report them closed in every partition
//! (`closed_through` of the status reports), reads those windows back from QuestDB and merges
//! what is newer, which reaches the viewers as ordinary updates. A range that yields nothing
//! newer (QuestDB has not applied the row yet, or is down) is retried with a doubling delay,
//! up to a minute.

use super::hub::Hub;
use super::memory::UnfinishedRange;
use super::status::StatusTracker;
use super::topic::Topic;
use crate::metrics as names;
use crate::query::{QueryPlan, QuestDb};
use crate::tasks::Tasks;
use rtdash_runtime::error_chain::ErrorChain;
use rtdash_shared::time::{now_millis, UnixMillis};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Without status reports (partition count unknown), a window counts as closed everywhere
/// this long after its end.
const FALLBACK_CLOSED_AFTER_MS: i64 = 5 * 60_000;

/// Longest delay between two reads of a range that yielded nothing newer.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// (tenant, metric, dimension set, window size) of a range being retried.
type RangeKey = (String, String, String, i64);

/// When a range that yielded nothing newer is read again.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    delay: Duration,
    next: tokio::time::Instant,
}

/// Starts the repair task on `tasks`; it ends at shutdown. `interval` zero disables it.
pub fn spawn(
    hub: Arc<Hub>,
    db: Arc<QuestDb>,
    status: StatusTracker,
    interval: Duration,
    tasks: &Tasks,
) {
    if interval.is_zero() {
        return;
    }
    let shutdown = tasks.child_token();
    tasks.spawn("live repair", async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff: HashMap<RangeKey, Backoff> = HashMap::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let closed_through = status
                .closed_through()
                .unwrap_or_else(|| now_millis() - FALLBACK_CLOSED_AFTER_MS);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = sweep(&hub, &db, closed_through, interval, &mut backoff) => {}
            }
        }
    });
}

/// One pass over every topic.
async fn sweep(
    hub: &Hub,
    db: &QuestDb,
    closed_through: UnixMillis,
    interval: Duration,
    backoff: &mut HashMap<RangeKey, Backoff>,
) {
    let mut pending: HashMap<RangeKey, Backoff> = HashMap::new();
    for topic in hub.topics() {
        for range in topic.unfinished_before(closed_through) {
            let key: RangeKey = (
                topic.tenant.clone(),
                topic.metric.clone(),
                range.dim_set.clone(),
                range.window_ms,
            );
            let now = tokio::time::Instant::now();
            if let Some(wait) = backoff.get(&key).filter(|wait| wait.next > now) {
                pending.insert(key, *wait);
                continue;
            }
            let plan = range_plan(&topic, &range);
            let span = tracing::debug_span!(
                "gateway.live_repair",
                otel.kind = "internal",
                tenant = %topic.tenant,
                metric = %topic.metric,
                dim_set = %range.dim_set,
                windows = range.windows
            );
            let repaired = async {
                match db.fetch_rows_with(&plan, range.from, range.to, true).await {
                    Ok(rows) => topic.merge_rows(&range.dim_set, rows),
                    Err(err) => {
                        tracing::debug!(error = %ErrorChain(&err), "cannot read unfinished windows back");
                        0
                    }
                }
            }
            .instrument(span)
            .await;
            metrics::counter!(names::LIVE_REPAIR_READS).increment(1);
            if repaired > 0 {
                metrics::counter!(names::LIVE_REPAIRED).increment(repaired as u64);
                tracing::info!(
                    repaired,
                    "live windows whose final update was missed were read back from QuestDB"
                );
            }
            if repaired < range.windows {
                // Some are still not final there: wait longer before the next read.
                let delay = backoff
                    .get(&key)
                    .map_or(interval, |wait| (wait.delay * 2).min(MAX_BACKOFF));
                pending.insert(
                    key,
                    Backoff {
                        delay,
                        next: now + delay,
                    },
                );
            }
        }
    }
    // Ranges no longer unfinished are forgotten.
    *backoff = pending;
}

/// The plan reading every series of `range`'s dimension set, from the table of its window
/// length (the metric's own windows, or a tier's).
fn range_plan(topic: &Topic, range: &UnfinishedRange) -> QueryPlan {
    let base = match topic.base_window_ms() {
        0 => range.window_ms,
        base => base,
    };
    let mut plan = QueryPlan::raw(&topic.tenant, &topic.metric, &range.dim_set, base);
    plan.source_window_ms = range.window_ms;
    plan.window_ms = range.window_ms;
    plan
}
