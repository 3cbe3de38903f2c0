//! The aggregator's own pipeline series, for the self-alert rules: per owned partition and
//! window (`alerts.self_alerts.window_ms`), the consumer lag (`pipeline_consumer_lag`,
//! messages not yet processed) and the watermark delay (`pipeline_watermark_delay_ms`, the
//! aggregator's clock minus the partition watermark), both from the partition owners' status
//! reports (`rtdash.status.<p>`, every `live.status_interval_ms`). A window is handed to the
//! evaluator as a closed window (count = reports, sum/min/max/avg of the values) once a
//! report of a later window arrives or it ended more than `grace` ago. These series are
//! evaluated, not stored in QuestDB.

use rtdash_shared::messages::{PartitionStatus, WindowUpdate};
use rtdash_shared::metric::{PIPELINE_CONSUMER_LAG_METRIC, PIPELINE_WATERMARK_DELAY_METRIC};
use rtdash_shared::names::PIPELINE_TENANT;
use rtdash_shared::sketch::Stats;
use rtdash_shared::time::UnixMillis;
use rtdash_shared::window::window_start;
use std::collections::{BTreeMap, HashMap};

#[derive(Clone, Copy, Debug, Default)]
struct Agg {
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Agg {
    fn add(&mut self, value: f64) {
        if self.n == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.n += 1;
        self.sum += value;
    }

    fn stats(&self) -> Stats {
        Stats {
            count: self.n,
            sum: Some(self.sum),
            min: (self.n > 0).then_some(self.min),
            max: (self.n > 0).then_some(self.max),
            avg: (self.n > 0).then(|| self.sum / self.n as f64),
            ..Stats::default()
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Acc {
    start: UnixMillis,
    lag: Agg,
    delay: Agg,
}

/// Per-partition windows of the pipeline series being accumulated.
#[derive(Debug)]
pub struct PartitionHealth {
    window_ms: i64,
    current: HashMap<u32, Acc>,
}

impl PartitionHealth {
    /// Windows of `window_ms`.
    pub fn new(window_ms: i64) -> Self {
        Self {
            window_ms: window_ms.max(1),
            current: HashMap::new(),
        }
    }

    /// Adds one status report; returns the windows it completes.
    pub fn observe(&mut self, status: &PartitionStatus) -> Vec<(u32, WindowUpdate)> {
        let start = window_start(status.reported_at, self.window_ms);
        let mut done = Vec::new();
        let acc = self.current.entry(status.partition).or_insert(Acc {
            start,
            lag: Agg::default(),
            delay: Agg::default(),
        });
        if start < acc.start {
            return done;
        }
        if start > acc.start {
            done.extend(updates(
                status.partition,
                acc,
                self.window_ms,
                status.reported_at,
            ));
            *acc = Acc {
                start,
                lag: Agg::default(),
                delay: Agg::default(),
            };
        }
        acc.lag.add(status.lag_messages as f64);
        if let Some(watermark) = status.watermark {
            acc.delay
                .add(status.reported_at.saturating_sub(watermark).max(0) as f64);
        }
        done
    }

    /// Windows that ended more than `grace` before `now` (no later report came).
    pub fn due(&mut self, now: UnixMillis, grace: i64) -> Vec<(u32, WindowUpdate)> {
        let window_ms = self.window_ms;
        let mut done = Vec::new();
        self.current.retain(|&partition, acc| {
            if acc.start + window_ms + grace <= now {
                done.extend(updates(partition, acc, window_ms, now));
                false
            } else {
                true
            }
        });
        done
    }

    /// Forgets `partition` (no longer owned).
    pub fn forget(&mut self, partition: u32) {
        self.current.remove(&partition);
    }
}

fn updates(partition: u32, acc: &Acc, window_ms: i64, now: UnixMillis) -> Vec<(u32, WindowUpdate)> {
    let dimensions = BTreeMap::from([("partition".to_owned(), Some(partition.to_string()))]);
    [
        (PIPELINE_CONSUMER_LAG_METRIC, acc.lag),
        (PIPELINE_WATERMARK_DELAY_METRIC, acc.delay),
    ]
    .into_iter()
    .filter(|(_, agg)| agg.n > 0)
    .map(|(metric, agg)| {
        (
            partition,
            WindowUpdate {
                tenant_id: PIPELINE_TENANT.to_owned(),
                metric: metric.to_owned(),
                dimensions: dimensions.clone(),
                window_start: acc.start,
                window_end: acc.start + window_ms,
                stats: agg.stats(),
                revision: 0,
                is_final: true,
                late_count: 0,
                updated_at: now,
                state: None,
            },
        )
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(partition: u32, at: i64, lag: u64, watermark: i64) -> PartitionStatus {
        PartitionStatus {
            partition,
            owner: "a".into(),
            watermark: Some(watermark),
            lag_messages: lag,
            reported_at: at,
            closed_through: None,
        }
    }

    #[test]
    fn windows_of_reports_close_on_a_later_report_or_when_due() {
        let mut health = PartitionHealth::new(10_000);
        assert!(health.observe(&status(1, 10_000, 5, 9_000)).is_empty());
        assert!(health.observe(&status(1, 15_000, 50, 9_000)).is_empty());
        let done = health.observe(&status(1, 21_000, 0, 20_000));
        assert_eq!(done.len(), 2);
        let lag = &done
            .iter()
            .find(|(_, u)| u.metric == PIPELINE_CONSUMER_LAG_METRIC)
            .unwrap()
            .1;
        assert_eq!(
            (
                lag.window_start,
                lag.stats.min,
                lag.stats.max,
                lag.stats.count
            ),
            (10_000, Some(5.0), Some(50.0), 2)
        );
        let delay = &done
            .iter()
            .find(|(_, u)| u.metric == PIPELINE_WATERMARK_DELAY_METRIC)
            .unwrap()
            .1;
        assert_eq!(delay.stats.min, Some(1_000.0));
        assert_eq!(delay.dimensions["partition"].as_deref(), Some("1"));
        assert!(health.due(31_000, 2_000).is_empty());
        assert_eq!(health.due(32_000, 2_000).len(), 2);
        assert!(health.due(99_000, 2_000).is_empty());
    }
}
