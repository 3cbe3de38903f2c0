//! The [`WindowObserver`] that feeds the evaluator: it keeps only the window versions some
//! rule looks at and queues them, with the partition start and stop notices, in order.
//!
//! Queue policy: unbounded in what matters, bounded in what does not. Closes and corrections
//! (final versions) are always queued: their number is bounded by the windows the partitions
//! hold, and dropping one would lose a transition. Provisional versions (only queued when a
//! `provisional` rule watches the metric) are dropped while more than `alerts.queue_limit`
//! updates wait, counted in `rtdash_core_alert_updates_dropped_total`; a later version of the
//! same window replaces them anyway.

use super::rules::RuleBook;
use crate::metrics::AlertMetrics;
use crate::observer::WindowObserver;
use rtdash_shared::messages::WindowUpdate;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the evaluator receives, in the order the partition workers produced it.
#[derive(Debug)]
pub enum Input {
    /// A partition was taken over: load its alert state.
    Started {
        /// Partition.
        partition: u32,
        /// Ownership epoch.
        epoch: u64,
    },
    /// A partition was given up: forget its alert state.
    Stopped {
        /// Partition.
        partition: u32,
        /// Ownership epoch.
        epoch: u64,
    },
    /// A window version.
    Window {
        /// Partition.
        partition: u32,
        /// The version.
        update: Box<WindowUpdate>,
    },
}

/// Queues what the evaluator needs; passes everything on to `next` too.
pub struct AlertObserver {
    rules: Arc<RuleBook>,
    tx: mpsc::UnboundedSender<Input>,
    backlog: Arc<AtomicUsize>,
    limit: usize,
    next: Arc<dyn WindowObserver>,
    metrics: AlertMetrics,
}

impl std::fmt::Debug for AlertObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertObserver")
            .field("backlog", &self.backlog.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl AlertObserver {
    /// An observer feeding `tx` (whose length `backlog` counts), chained with `next`.
    pub fn new(
        rules: Arc<RuleBook>,
        tx: mpsc::UnboundedSender<Input>,
        backlog: Arc<AtomicUsize>,
        limit: usize,
        next: Arc<dyn WindowObserver>,
        metrics: AlertMetrics,
    ) -> Self {
        Self {
            rules,
            tx,
            backlog,
            limit,
            next,
            metrics,
        }
    }

    fn send(&self, input: Input) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(input).is_err() {
            // The evaluator is gone (shutdown).
            self.backlog.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl WindowObserver for AlertObserver {
    fn wants(&self, tenant: &str, metric: &str, is_final: bool) -> bool {
        self.next.wants(tenant, metric, is_final)
            || self
                .rules
                .current()
                .interest(tenant, metric)
                .is_some_and(|provisional| is_final || provisional)
    }

    fn window_changed(&self, partition: u32, update: &WindowUpdate) {
        self.next.window_changed(partition, update);
        let Some(provisional) = self
            .rules
            .current()
            .interest(&update.tenant_id, &update.metric)
        else {
            return;
        };
        if !update.is_final {
            if !provisional {
                return;
            }
            if self.backlog.load(Ordering::Relaxed) >= self.limit {
                self.metrics.updates_dropped.increment(1);
                return;
            }
        }
        self.send(Input::Window {
            partition,
            update: Box::new(update.clone()),
        });
    }

    fn partition_started(&self, partition: u32, epoch: u64) {
        self.next.partition_started(partition, epoch);
        self.send(Input::Started { partition, epoch });
    }

    fn partition_stopped(&self, partition: u32, epoch: u64) {
        self.next.partition_stopped(partition, epoch);
        self.send(Input::Stopped { partition, epoch });
    }
}
