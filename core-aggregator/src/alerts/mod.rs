//! Alert evaluation: rules from the config bucket (plus the built-in pipeline self-alerts),
//! state per (rule, series) in the aggregator that owns the series' partition, transitions
//! published to `RTDASH_ALERTS`. See `docs/alerts.md`.
//!
//! ```text
//!  partition workers ──WindowObserver──> observer (filter, queue) ──> evaluator task
//!                                                                     │  state per (rule, series)
//!  rtdash_config alert.> ──watch──> rules ────────────────────────────┤  (KV rtdash_alert_state,
//!  rtdash.status.* ──> pipeline series (lag, watermark delay) ────────┘   saved before publishing)
//!                                                                     v
//!                                                  RTDASH_ALERTS rtdash.alerts.<tenant>
//!                                                  (Nats-Msg-Id = transition id) ──> notifier
//! ```
//!
//! Modules: [`config`] (`[alerts]`), [`builtin`] (the pipeline self-alert rules), [`rules`]
//! (rules in force), [`observer`] (the hook and its queue), [`state`] (the state machine of
//! one rule and series), [`store`] (its KV form), [`evaluator`] (the task), [`pipeline`] (the
//! aggregator's own series).

pub mod builtin;
pub mod config;
pub mod evaluator;
pub mod observer;
pub mod pipeline;
pub mod rules;
pub mod state;
pub mod store;

use crate::config::Config;
use crate::error::Error;
use crate::observer::WindowObserver;
use async_nats::jetstream::{self, kv, stream};
use rtdash_shared::names;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Creates (or updates) what alerting stores: the state bucket, the delivery bucket and the
/// alert log stream. `RTDASH_ALERTS` itself is part of the shared topology.
pub async fn setup(js: &jetstream::Context, config: &Config) -> Result<(), Error> {
    let storage = if config.streams.storage == "memory" {
        stream::StorageType::Memory
    } else {
        stream::StorageType::File
    };
    let alerts = &config.alerts;
    let buckets = [
        (
            names::ALERT_STATE_BUCKET,
            "rtdash alert state per (rule, series)",
            Duration::ZERO,
        ),
        (
            names::ALERT_DELIVERY_BUCKET,
            "rtdash newest transition delivered per alert",
            // Longer than RTDASH_ALERTS keeps transitions, so a redelivered one is recognised.
            Duration::from_secs(
                config
                    .streams
                    .side_streams_max_age_secs
                    .saturating_add(86_400),
            ),
        ),
    ];
    for (bucket, description, max_age) in buckets {
        if js.get_key_value(bucket).await.is_ok() {
            continue;
        }
        js.create_key_value(kv::Config {
            bucket: bucket.to_owned(),
            description: description.to_owned(),
            history: 1,
            max_age,
            storage,
            num_replicas: config.streams.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::js(format!("bucket {bucket}"), e))?;
    }
    js.create_or_update_stream(stream::Config {
        name: names::ALERT_EVENTS_STREAM.to_owned(),
        subjects: vec![format!("{}.>", names::ALERTLOG_PREFIX)],
        description: Some("rtdash alert log: transitions and delivery attempts per rule".into()),
        storage,
        num_replicas: config.streams.replicas,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_messages_per_subject: alerts.log_max_per_rule,
        max_age: Duration::from_secs(alerts.log_max_age_secs),
        duplicate_window: Duration::from_secs(config.streams.duplicate_window_secs),
        ..Default::default()
    })
    .await
    .map_err(|e| Error::js(format!("stream {}", names::ALERT_EVENTS_STREAM), e))?;
    Ok(())
}

/// The running evaluator.
pub struct Alerts {
    observer: Arc<dyn WindowObserver>,
    /// The rules in force (the notifier looks its webhooks up from the same watch).
    rules: Arc<rules::RuleBook>,
    stop: CancellationToken,
    /// The rule watcher and the evaluator.
    tasks: TaskTracker,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").finish_non_exhaustive()
    }
}

impl Alerts {
    /// Loads the rules (waits until the bucket's current rules are in force, at most 10 s)
    /// and starts the evaluator, which runs until `stop` (see [`Alerts::finish`]). `next` also
    /// receives every window version.
    pub async fn start(
        config: &Config,
        instance: &str,
        client: async_nats::Client,
        js: jetstream::Context,
        next: Arc<dyn WindowObserver>,
        stop: CancellationToken,
    ) -> Result<Self, Error> {
        let tasks = TaskTracker::new();
        let book = rules::RuleBook::new(builtin::rules(&config.alerts));
        let config_kv = js
            .get_key_value(names::CONFIG_BUCKET)
            .await
            .map_err(|e| Error::js(format!("bucket {}", names::CONFIG_BUCKET), e))?;
        tasks.spawn(Arc::clone(&book).watch(js.clone(), config_kv, stop.clone()));
        if tokio::time::timeout(Duration::from_secs(10), book.loaded())
            .await
            .is_err()
        {
            tracing::warn!("alert rules not loaded within 10 s; evaluating with what arrives");
        }
        let store = store::StateStore::open(&js).await?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let metrics = crate::metrics::AlertMetrics::new();
        let observer = Arc::new(observer::AlertObserver::new(
            Arc::clone(&book),
            tx,
            Arc::clone(&backlog),
            config.alerts.queue_limit,
            next,
            metrics.clone(),
        ));
        let evaluator = evaluator::Evaluator::new(
            config,
            instance.to_owned(),
            rx,
            backlog,
            Arc::clone(&book),
            store,
            js,
            client,
            stop.clone(),
            metrics,
        );
        tasks.spawn(evaluator.run());
        tasks.close();
        Ok(Self {
            observer,
            rules: book,
            stop,
            tasks,
        })
    }

    /// The rules in force, kept current by the evaluator's watch of the config bucket.
    pub fn rules(&self) -> Arc<rules::RuleBook> {
        Arc::clone(&self.rules)
    }

    /// The observer to install in the partition workers.
    pub fn observer(&self) -> Arc<dyn WindowObserver> {
        Arc::clone(&self.observer)
    }

    /// Stops after the partition workers have: evaluates what is queued (at most `grace`).
    pub async fn finish(self, grace: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("alert evaluation did not finish in time; the next owner re-evaluates");
        }
    }
}
