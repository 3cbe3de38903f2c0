//! The evaluator task: alert state per (rule, series) of the partitions this process owns,
//! moved by every window version the observer queues, saved before each transition is
//! published.
//!
//! **Saving before publishing (the outbox).** For each (rule, series) the state lives in
//! memory and, once it is more than a quiet `ok`, in `rtdash_alert_state` (one key each,
//! compare-and-set writes). When a window causes a transition, the new state *and the
//! transition* are written first, then the transition is published to `RTDASH_ALERTS`
//! (`rtdash.alerts.<tenant>`, `Nats-Msg-Id` = its id) and marked published. So:
//!
//! - a crash before the write: nothing was published; after the restart the window is
//!   evaluated again (restored windows are all re-emitted, later ones replayed) from the
//!   saved state and decides the same way;
//! - a crash after the write: the next owner loads the state, finds the transition
//!   unpublished and publishes it again under the same id: JetStream drops the duplicate
//!   within its duplicate window (`streams.duplicate_window_secs`), the notifier's delivery
//!   record beyond it;
//! - a window evaluated again after a restart moves a state that already reflects it:
//!   nothing happens (see [`super::state`]).
//!
//! The saved state, not the path the windows took, decides what was announced, so a
//! restart or a takeover neither fires twice nor misses a transition.
//!
//! A quiet `ok` state (no breach among the last `for_windows` windows, nothing unpublished)
//! is not rewritten for every window; a state quiet (or without any window) for the
//! evaluation horizon is deleted, and windows that ended before the horizon are not
//! evaluated, so a window evaluated long ago cannot come back as new. A series that stops
//! reporting while firing is resolved after the horizon (`resolved_reason: no data`).

mod outbox;

use super::observer::Input;
use super::pipeline::PartitionHealth;
use super::rules::{RuleBook, RuleIndex};
use super::state::{Observation, SeriesAlert};
use super::store::StateStore;
use crate::config::Config;
use crate::metrics::AlertMetrics;
use async_nats::jetstream;
use futures::StreamExt;
use rtdash_shared::alert::{AlertRule, AlertState};
use rtdash_shared::messages::{PartitionStatus, WindowUpdate};
use rtdash_shared::names;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::time::now_millis;
use rtdash_shared::wire;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One state in memory.
#[derive(Debug)]
struct Tracked {
    key: String,
    alert: SeriesAlert,
    /// KV revision of the saved state (`None`: not saved, or deleted).
    revision: Option<u64>,
}

/// An owned partition's states, by (rule id, series id).
#[derive(Debug, Default)]
struct Part {
    epoch: u64,
    records: HashMap<(String, u64), Tracked>,
}

/// What [`Evaluator::run`] needs.
pub struct Evaluator {
    /// This aggregator.
    pub instance: String,
    /// Queue from the observer.
    pub rx: mpsc::UnboundedReceiver<Input>,
    /// Its length.
    pub backlog: Arc<AtomicUsize>,
    /// The rules.
    pub rules: Arc<RuleBook>,
    /// State bucket.
    pub store: StateStore,
    /// JetStream (transitions).
    pub js: jetstream::Context,
    /// Core NATS (status reports).
    pub client: async_nats::Client,
    /// Windows that ended longer ago are not evaluated.
    pub horizon_ms: i64,
    /// Windows of the pipeline series.
    pub self_window_ms: i64,
    /// Status report interval.
    pub status_interval_ms: i64,
    /// Stop: the queue is drained first.
    pub stop: CancellationToken,
    /// Its metrics.
    pub metrics: AlertMetrics,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// Transition numbers of a new state start at the clock in microseconds.
fn seq_base() -> u64 {
    (now_millis().max(0) as u64).saturating_mul(1000)
}

impl Evaluator {
    /// Creates the evaluator for `config`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        instance: String,
        rx: mpsc::UnboundedReceiver<Input>,
        backlog: Arc<AtomicUsize>,
        rules: Arc<RuleBook>,
        store: StateStore,
        js: jetstream::Context,
        client: async_nats::Client,
        stop: CancellationToken,
        metrics: AlertMetrics,
    ) -> Self {
        Self {
            instance,
            rx,
            backlog,
            rules,
            store,
            js,
            client,
            horizon_ms: config
                .alerts
                .horizon_ms(config.windows.correction_horizon_ms),
            self_window_ms: config.alerts.self_alerts.window_ms,
            status_interval_ms: config.live.status_interval_ms as i64,
            stop,
            metrics,
        }
    }

    /// Runs until `stop`, then evaluates what is still queued and returns.
    pub async fn run(self) {
        let mut state = Running {
            index: self.rules.current(),
            partitions: HashMap::new(),
            health: PartitionHealth::new(self.self_window_ms),
            last_sweep: Instant::now(),
        };
        let mut rules_changed = self.rules.subscribe();
        let mut status = match self
            .client
            .subscribe(format!("{}.*", names::STATUS_PREFIX))
            .await
        {
            Ok(subscription) => Some(subscription),
            Err(err) => {
                tracing::warn!(%err, "no status reports: the consumer-lag self-alerts are off");
                None
            }
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rx = self.rx;
        let ctx = Ctx {
            instance: self.instance,
            backlog: self.backlog,
            rules: self.rules,
            store: self.store,
            js: self.js,
            horizon_ms: self.horizon_ms,
            status_grace_ms: self.status_interval_ms * 2 + 1_000,
            stop: self.stop.clone(),
            metrics: self.metrics,
        };
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                changed = rules_changed.changed() => {
                    if changed.is_ok() {
                        ctx.reconcile(&mut state).await;
                    }
                }
                _ = tick.tick() => ctx.housekeeping(&mut state).await,
                Some(message) = async {
                    match status.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                } => ctx.on_status(&mut state, &message.payload).await,
                input = rx.recv() => match input {
                    Some(input) => {
                        ctx.backlog.fetch_sub(1, Ordering::Relaxed);
                        ctx.handle(&mut state, input).await;
                    }
                    None => break,
                },
            }
        }
        // Drain: the partition workers have stopped; what they queued is still evaluated.
        while let Ok(input) = rx.try_recv() {
            ctx.backlog.fetch_sub(1, Ordering::Relaxed);
            ctx.handle(&mut state, input).await;
        }
        tracing::debug!("alert evaluator stopped");
    }
}

struct Running {
    index: Arc<RuleIndex>,
    partitions: HashMap<u32, Part>,
    health: PartitionHealth,
    last_sweep: Instant,
}

struct Ctx {
    instance: String,
    backlog: Arc<AtomicUsize>,
    rules: Arc<RuleBook>,
    store: StateStore,
    js: jetstream::Context,
    horizon_ms: i64,
    status_grace_ms: i64,
    stop: CancellationToken,
    metrics: AlertMetrics,
}

impl Ctx {
    async fn handle(&self, state: &mut Running, input: Input) {
        self.metrics
            .queue
            .set(self.backlog.load(Ordering::Relaxed) as f64);
        match input {
            Input::Started { partition, epoch } => self.load(state, partition, epoch).await,
            Input::Stopped { partition, epoch } => {
                if state
                    .partitions
                    .get(&partition)
                    .is_some_and(|p| p.epoch == epoch)
                {
                    state.partitions.remove(&partition);
                    state.health.forget(partition);
                    tracing::debug!(partition, "alert state of the partition released");
                }
            }
            Input::Window { partition, update } => {
                self.evaluate(state, partition, &update).await;
            }
        }
    }

    /// Loads the saved states of a partition just taken over, publishes any transition its
    /// previous owner saved but may not have published, and retires states whose rule is gone.
    async fn load(&self, state: &mut Running, partition: u32, epoch: u64) {
        let mut backoff = Duration::from_millis(100);
        let loaded = loop {
            match self.store.load_partition(partition).await {
                Ok(loaded) => break loaded,
                Err(err) => {
                    tracing::warn!(partition, %err, "cannot load alert state; retrying");
                    if self.stop.is_cancelled() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        let mut part = Part {
            epoch,
            records: HashMap::new(),
        };
        let count = loaded.len();
        for entry in loaded {
            let series = SeriesKey::new(
                entry.alert.tenant_id.clone(),
                entry.alert.metric.clone(),
                entry.alert.dimensions.clone(),
            );
            let mut tracked = Tracked {
                key: entry.key,
                alert: entry.alert,
                revision: Some(entry.revision),
            };
            if let Some(transition) = tracked.alert.outbox().cloned() {
                tracing::info!(id = %transition.id(), "publishing a transition saved by the previous owner");
                self.publish(&transition).await;
                tracked.alert.published = true;
                let _ = self.save(&mut tracked).await;
            }
            part.records
                .insert((tracked.alert.rule_id.clone(), series.id()), tracked);
        }
        tracing::debug!(partition, epoch, states = count, "alert state loaded");
        state.partitions.insert(partition, part);
        let index = self.rules.current();
        self.retire_unwatched(state, Some(partition), &index, &index)
            .await;
    }

    async fn evaluate(&self, state: &mut Running, partition: u32, update: &WindowUpdate) {
        let now = now_millis();
        if update.window_end < now.saturating_sub(self.horizon_ms) {
            return;
        }
        let index = self.rules.current();
        let rules: Vec<Arc<AlertRule>> = index
            .rules_for(&update.tenant_id, &update.metric)
            .filter(|rule| rule.watches(&update.dimensions))
            .cloned()
            .collect();
        if rules.is_empty() {
            return;
        }
        let Some(part) = state.partitions.get_mut(&partition) else {
            return;
        };
        let series_id = SeriesKey::new(
            update.tenant_id.clone(),
            update.metric.clone(),
            update.dimensions.clone(),
        )
        .id();
        for rule in rules {
            let observation = Observation {
                start: update.window_start,
                end: update.window_end,
                value: rule.stat.value(&update.stats),
                revision: update.revision,
                is_final: update.is_final,
            };
            let slot = (rule.id.clone(), series_id);
            let mut tracked = part.records.remove(&slot).unwrap_or_else(|| Tracked {
                key: names::alert_state_key(partition, &update.tenant_id, &rule.id, series_id),
                alert: SeriesAlert::new(
                    &rule.id,
                    &update.tenant_id,
                    &update.metric,
                    update.dimensions.clone(),
                    seq_base(),
                ),
                revision: None,
            });
            self.metrics.evaluations.increment(1);
            self.apply(&mut tracked, |alert| {
                alert.observe(&rule, &observation, now)
            })
            .await;
            part.records.insert(slot, tracked);
        }
    }

    /// Rules changed: states whose rule is gone, or no longer watches their series, are
    /// retired (firing -> resolved with `resolved_reason`) and deleted.
    async fn reconcile(&self, state: &mut Running) {
        let new = self.rules.current();
        let old = std::mem::replace(&mut state.index, Arc::clone(&new));
        self.retire_unwatched(state, None, &old, &new).await;
    }

    async fn retire_unwatched(
        &self,
        state: &mut Running,
        only: Option<u32>,
        old: &RuleIndex,
        new: &RuleIndex,
    ) {
        let now = now_millis();
        for (&partition, part) in state.partitions.iter_mut() {
            if only.is_some_and(|p| p != partition) {
                continue;
            }
            let gone: Vec<(String, u64)> = part
                .records
                .iter()
                .filter(|(_, t)| {
                    !new.get(&t.alert.tenant_id, &t.alert.rule_id)
                        .is_some_and(|rule| watches(rule, &t.alert.metric, &t.alert.dimensions))
                })
                .map(|(slot, _)| slot.clone())
                .collect();
            for slot in gone {
                let Some(mut tracked) = part.records.remove(&slot) else {
                    continue;
                };
                let rule = old
                    .get(&tracked.alert.tenant_id, &tracked.alert.rule_id)
                    .cloned();
                let reason = "the rule was deleted or no longer watches this series";
                self.apply(&mut tracked, |alert| {
                    alert.retire(rule.as_deref(), reason, now)
                })
                .await;
                self.forget(tracked).await;
            }
        }
    }

    /// Every second: closes due pipeline-series windows and reports the queue; every 10 s:
    /// resolves firing states without a window for the horizon and forgets states quiet that
    /// long.
    async fn housekeeping(&self, state: &mut Running) {
        self.metrics
            .queue
            .set(self.backlog.load(Ordering::Relaxed) as f64);
        let now = now_millis();
        for (partition, update) in state.health.due(now, self.status_grace_ms) {
            self.evaluate(state, partition, &update).await;
        }
        if state.last_sweep.elapsed() < Duration::from_secs(10) {
            return;
        }
        state.last_sweep = Instant::now();
        let before = now.saturating_sub(self.horizon_ms);
        let index = self.rules.current();
        let mut tracked_total = 0usize;
        for part in state.partitions.values_mut() {
            let stale: Vec<(String, u64)> = part
                .records
                .iter()
                .filter(|(_, t)| t.alert.last_end().is_none_or(|end| end < before))
                .map(|(slot, _)| slot.clone())
                .collect();
            for slot in stale {
                let Some(mut tracked) = part.records.remove(&slot) else {
                    continue;
                };
                if matches!(
                    tracked.alert.state,
                    AlertState::Firing | AlertState::Pending
                ) {
                    let rule = index
                        .get(&tracked.alert.tenant_id, &tracked.alert.rule_id)
                        .cloned();
                    self.apply(&mut tracked, |alert| {
                        alert.retire(rule.as_deref(), "no data", now)
                    })
                    .await;
                }
                self.forget(tracked).await;
            }
            tracked_total += part.records.len();
        }
        self.metrics.series.set(tracked_total as f64);
    }

    async fn on_status(&self, state: &mut Running, payload: &[u8]) {
        let Ok(status) = wire::decode::<PartitionStatus>(payload) else {
            return;
        };
        if status.owner != self.instance || !state.partitions.contains_key(&status.partition) {
            return;
        }
        for (partition, update) in state.health.observe(&status) {
            self.evaluate(state, partition, &update).await;
        }
    }
}

fn watches(rule: &AlertRule, metric: &str, dimensions: &BTreeMap<String, Option<String>>) -> bool {
    rule.metric_name == metric && rule.watches(dimensions)
}
