//! Pipeline freshness from the aggregators' `rtdash.status.<partition>` reports.

use crate::config::LiveConfig;
use crate::live::link::Link;
use crate::tasks::Tasks;
use futures::StreamExt;
use rtdash_shared::messages::PartitionStatus;
use rtdash_shared::time::{format_rfc3339, now_millis, UnixMillis};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use utoipa::ToSchema;

/// Overall freshness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FreshnessState {
    /// Reports arrive and every partition is current.
    Ok,
    /// Some partition lags (messages or watermark).
    Behind,
    /// No report for `stale_report_ms`: the aggregators are silent.
    Stale,
    /// No report seen since the gateway started.
    Unknown,
    /// The gateway has lost its NATS connection: neither live updates nor reports arrive.
    /// After it reconnects, streams get fresh snapshots.
    Disconnected,
}

/// One partition's latest report.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PartitionView {
    /// Partition.
    pub partition: u32,
    /// Owning aggregator.
    pub owner: String,
    /// Watermark (RFC 3339), if known.
    pub watermark: Option<String>,
    /// Unprocessed messages.
    pub lag_messages: u64,
    /// When the aggregator reported (RFC 3339).
    pub reported_at: String,
    /// How long ago this gateway received the report, ms.
    pub age_ms: i64,
    /// Whether this partition is behind or silent.
    pub stale: bool,
}

/// The freshness summary (`GET /v1/status`, SSE `status` events).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StatusView {
    /// Overall state.
    pub state: FreshnessState,
    /// `state` is `behind` or `stale`.
    pub stale: bool,
    /// Largest partition lag.
    pub max_lag_messages: u64,
    /// Oldest partition watermark (RFC 3339).
    pub min_watermark: Option<String>,
    /// How far the oldest watermark is behind now, ms.
    pub watermark_delay_ms: Option<i64>,
    /// Partitions with a report.
    pub partitions_reporting: usize,
    /// When this summary was computed (RFC 3339).
    pub checked_at: String,
    /// Per partition (only in `GET /v1/status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<PartitionView>>,
}

/// Keeps the latest report per partition, and publishes the summary to live streams.
#[derive(Clone, Debug)]
pub struct StatusTracker {
    config: LiveConfig,
    reports: Arc<RwLock<BTreeMap<u32, (PartitionStatus, UnixMillis)>>>,
    /// The gateway's NATS connection is up.
    connected: Arc<AtomicBool>,
    /// The summary streams send: replaced when the state changes (checked every second) and
    /// every `status_interval_ms`, so viewers wake for it rather than each polling.
    published: watch::Sender<Arc<StatusView>>,
    /// The partition count of the deployment, once known (stream metadata).
    partitions: Arc<AtomicU32>,
}

impl StatusTracker {
    /// A tracker with no reports.
    pub fn new(config: LiveConfig) -> Self {
        let reports = Arc::new(RwLock::new(BTreeMap::new()));
        let mut tracker = Self {
            config,
            reports,
            connected: Arc::new(AtomicBool::new(true)),
            published: watch::channel(Arc::new(empty_view())).0,
            partitions: Arc::new(AtomicU32::new(0)),
        };
        tracker.published = watch::channel(Arc::new(tracker.view(false))).0;
        tracker
    }

    /// The summary for streams, and a receiver woken when it is republished.
    pub fn subscribe(&self) -> watch::Receiver<Arc<StatusView>> {
        self.published.subscribe()
    }

    fn spawn_publisher(&self, tasks: &Tasks) {
        let tracker = self.clone();
        let shutdown = tasks.child_token();
        tasks.spawn("status publisher", async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let view = tracker.view(false);
                let changed = tracker.published.borrow().state != view.state;
                let due = last.elapsed().as_millis() as u64 >= tracker.config.status_interval_ms;
                if changed || due {
                    last = tokio::time::Instant::now();
                    tracker.published.send_replace(Arc::new(view));
                }
            }
        });
    }

    /// Follows the NATS link until shutdown: while it is down the state is `disconnected`
    /// (republished at once on every change).
    pub fn follow_link(&self, mut link: watch::Receiver<Link>, tasks: &Tasks) {
        let tracker = self.clone();
        let shutdown = tasks.child_token();
        tasks.spawn("status link follower", async move {
            loop {
                let connected = link.borrow_and_update().connected;
                tracker.set_connected(connected);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    changed = link.changed() => if changed.is_err() { return },
                }
            }
        });
    }

    /// Records whether the NATS connection is up; republishes when that changes.
    pub fn set_connected(&self, connected: bool) {
        if self.connected.swap(connected, Ordering::SeqCst) != connected {
            self.published.send_replace(Arc::new(self.view(false)));
        }
    }

    /// Subscribes to `rtdash.status.*` and publishes the summary to streams, until shutdown.
    pub async fn start(
        &self,
        client: &async_nats::Client,
        tasks: &Tasks,
    ) -> Result<(), async_nats::SubscribeError> {
        let subject = format!("{}.*", rtdash_shared::names::STATUS_PREFIX);
        let mut subscriber = client.subscribe(subject.clone()).await?;
        self.spawn_publisher(tasks);
        let tracker = self.clone();
        let shutdown = tasks.child_token();
        tasks.spawn("status subscription", async move {
            loop {
                let message = tokio::select! {
                    () = shutdown.cancelled() => break,
                    message = subscriber.next() => match message {
                        Some(message) => message,
                        None => break,
                    },
                };
                match rtdash_shared::wire::decode::<PartitionStatus>(&message.payload) {
                    Ok(status) => tracker.record(status),
                    Err(err) => tracing::debug!(error = %err, "undecodable status report"),
                }
            }
        });
        Ok(())
    }

    /// Reads the deployment's partition count from the partials stream's metadata (recorded
    /// by the aggregators), retrying every few seconds until it is there or shutdown.
    pub fn learn_partitions(&self, js: async_nats::jetstream::Context, tasks: &Tasks) {
        let tracker = self.clone();
        let shutdown = tasks.child_token();
        tasks.spawn("partition count", async move {
            loop {
                let found = tokio::select! {
                    () = shutdown.cancelled() => return,
                    found = rtdash_runtime::nats::partition_count(&js) => found,
                };
                match found {
                    Ok(Some(partitions)) => {
                        tracker.set_partitions(partitions);
                        return;
                    }
                    Ok(None) => tracing::debug!("partition count not recorded yet"),
                    Err(err) => tracing::debug!(error = %err, "could not read the partition count"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(std::time::Duration::from_secs(3)) => {}
                }
            }
        });
    }

    /// Sets the deployment's partition count, which [`closed_through`](Self::closed_through)
    /// needs to know every partition has reported.
    pub fn set_partitions(&self, partitions: u32) {
        self.partitions.store(partitions, Ordering::SeqCst);
    }

    /// The time through which every window is closed in every partition: the oldest
    /// `closed_through` of the partitions' reports, when each partition of the deployment
    /// has a recent report carrying one; otherwise `None` (not known).
    pub fn closed_through(&self) -> Option<UnixMillis> {
        let partitions = self.partitions.load(Ordering::SeqCst) as usize;
        let reports = self.reports.read().ok()?;
        if partitions == 0 || reports.len() < partitions {
            return None;
        }
        let now = now_millis();
        let mut through: Option<UnixMillis> = None;
        for (status, received) in reports.values() {
            if now - received > self.config.stale_report_ms as i64 {
                return None;
            }
            let closed = status.closed_through?;
            through = Some(through.map_or(closed, |t| t.min(closed)));
        }
        through
    }

    /// Records a report (received now).
    pub fn record(&self, status: PartitionStatus) {
        if let Ok(mut reports) = self.reports.write() {
            reports.insert(status.partition, (status, now_millis()));
        }
    }

    /// The summary now; with `detail`, per partition too.
    pub fn view(&self, detail: bool) -> StatusView {
        let now = now_millis();
        let reports = self.reports.read().map(|r| r.clone()).unwrap_or_default();
        let mut partitions = Vec::with_capacity(reports.len());
        let mut any_behind = false;
        let mut all_silent = !reports.is_empty();
        let mut max_lag = 0;
        let mut min_watermark: Option<UnixMillis> = None;
        for (status, received) in reports.values() {
            let age = now - received;
            let silent = age > self.config.stale_report_ms as i64;
            let behind = status.lag_messages > self.config.stale_lag_messages
                || status
                    .watermark
                    .is_some_and(|w| now - w > self.config.stale_watermark_ms as i64);
            all_silent &= silent;
            any_behind |= behind || silent;
            max_lag = max_lag.max(status.lag_messages);
            if let Some(w) = status.watermark {
                min_watermark = Some(min_watermark.map_or(w, |m: UnixMillis| m.min(w)));
            }
            if detail {
                partitions.push(PartitionView {
                    partition: status.partition,
                    owner: status.owner.clone(),
                    watermark: status.watermark.map(format_rfc3339),
                    lag_messages: status.lag_messages,
                    reported_at: format_rfc3339(status.reported_at),
                    age_ms: age,
                    stale: silent || behind,
                });
            }
        }
        let state = if !self.connected.load(Ordering::SeqCst) {
            FreshnessState::Disconnected
        } else if reports.is_empty() {
            FreshnessState::Unknown
        } else if all_silent {
            FreshnessState::Stale
        } else if any_behind {
            FreshnessState::Behind
        } else {
            FreshnessState::Ok
        };
        StatusView {
            state,
            stale: matches!(
                state,
                FreshnessState::Behind | FreshnessState::Stale | FreshnessState::Disconnected
            ),
            max_lag_messages: max_lag,
            min_watermark: min_watermark.map(format_rfc3339),
            watermark_delay_ms: min_watermark.map(|w| now - w),
            partitions_reporting: reports.len(),
            checked_at: format_rfc3339(now),
            partitions: detail.then_some(partitions),
        }
    }
}

fn empty_view() -> StatusView {
    StatusView {
        state: FreshnessState::Unknown,
        stale: false,
        max_lag_messages: 0,
        min_watermark: None,
        watermark_delay_ms: None,
        partitions_reporting: 0,
        checked_at: String::new(),
        partitions: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(partition: u32, lag: u64, watermark_age: i64) -> PartitionStatus {
        PartitionStatus {
            partition,
            owner: "agg".into(),
            watermark: Some(now_millis() - watermark_age),
            lag_messages: lag,
            reported_at: now_millis(),
            closed_through: None,
        }
    }

    #[test]
    fn states() {
        let tracker = StatusTracker::new(LiveConfig::default());
        assert_eq!(tracker.view(false).state, FreshnessState::Unknown);
        tracker.record(report(0, 0, 1_000));
        tracker.record(report(1, 0, 2_000));
        let view = tracker.view(true);
        assert_eq!(view.state, FreshnessState::Ok);
        assert!(!view.stale);
        assert_eq!(view.partitions.as_ref().map(Vec::len), Some(2));
        tracker.record(report(1, 10_000_000, 2_000));
        assert_eq!(tracker.view(false).state, FreshnessState::Behind);
        assert!(tracker.view(false).stale);
        let mut published = tracker.subscribe();
        published.borrow_and_update();
        tracker.set_connected(false);
        assert!(published.has_changed().unwrap());
        let view = published.borrow_and_update().clone();
        assert_eq!(view.state, FreshnessState::Disconnected);
        assert!(view.stale);
        tracker.set_connected(true);
        assert_eq!(published.borrow_and_update().state, FreshnessState::Behind);
    }

    #[test]
    fn closed_through_needs_every_partition() {
        let tracker = StatusTracker::new(LiveConfig::default());
        let closed = |partition, through| PartitionStatus {
            closed_through: through,
            ..report(partition, 0, 0)
        };
        tracker.record(closed(0, Some(5_000)));
        assert_eq!(tracker.closed_through(), None, "partition count unknown");
        tracker.set_partitions(2);
        assert_eq!(tracker.closed_through(), None, "partition 1 never reported");
        tracker.record(closed(1, None));
        assert_eq!(tracker.closed_through(), None, "partition 1 does not say");
        tracker.record(closed(1, Some(3_000)));
        assert_eq!(tracker.closed_through(), Some(3_000), "the oldest");
        tracker.record(closed(1, Some(9_000)));
        assert_eq!(tracker.closed_through(), Some(5_000));
    }
}
