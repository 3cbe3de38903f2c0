//! Consuming `RTDASH_ALERTS` and delivering each firing or resolved transition.
//!
//! - **Consumer**: the durable pull consumer `rtdash-notifier` (explicit acks, `ack_wait`
//!   `alerts.notifier.ack_wait_ms`, unlimited redeliveries, `max_ack_pending`
//!   `alerts.notifier.max_in_flight`), shared by every aggregator: work-queue style, each
//!   transition goes to one of them at a time.
//! - **Which transitions notify**: `firing` and `resolved`. `pending` and `ok` are written to
//!   the alert log and acknowledged without a request.
//! - **At most once per alert and transition, in order**: KV `rtdash_alert_delivery` holds,
//!   per alert (fingerprint = rule + series), the transition number of the newest transition
//!   delivered (or failed, or given up on). A transition whose number is not above it is not
//!   sent again (recorded `skipped`: delivered before, or superseded by a newer one of the
//!   same alert): this covers redeliveries after a crash and republished transitions
//!   beyond JetStream's duplicate window, and keeps a resolved from being followed by an
//!   older firing. Within a process, check, request and record of one alert are serialised.
//!   A crash between a 2xx answer and that record repeats the request once; the
//!   `Idempotency-Key` header (the transition id) lets the receiver drop it.
//! - **Retries**: 5xx, 408, 429, timeouts and connection errors are retried in this process
//!   with exponential backoff (`initial_backoff_ms` doubling up to `max_backoff_ms`, ±20 %
//!   jitter), or after what a 429 or 503 answer's `Retry-After` asks (seconds or an HTTP
//!   date, kept within `initial_backoff_ms` .. `max_backoff_ms`), while the message is kept from redelivery with `+WPI` (in progress) every third
//!   of `ack_wait`, until `retry_for_secs` after the transition was published; then it is
//!   recorded `gave_up`. Other 4xx (and 3xx: redirects are not followed) are recorded
//!   `failed` with the status and the start of the answer. The message is acknowledged only
//!   when that is settled, so a notifier that dies mid-retry leaves it to another one (after
//!   `ack_wait`), which starts a new series of attempts within the same deadline.
//! - **Shutdown**: deliveries waiting for a retry give their message back at once (`-NAK`);
//!   a request in progress finishes first.

use super::config::NotifierConfig;
use super::destinations::Destinations;
use super::http::{PostError, WebhookClient};
use super::log::{AlertLog, AttemptReport};
use super::payload;
use super::retry::{retry_delay, verdict, Verdict};
use super::silences::Silences;
use crate::alerts::builtin;
use crate::alerts::rules::RuleBook;
use crate::config::Config;
use crate::error::{BoxError, Error};
use crate::metrics as m;
use async_nats::jetstream::{self, consumer, kv, AckKind};
use futures::StreamExt;
use rtdash_shared::alert::{AlertTransition, DeliveryOutcome};
use rtdash_shared::names;
use rtdash_shared::time::now_millis;
use rtdash_shared::wire;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The record per alert in `rtdash_alert_delivery`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Transition number of the newest transition settled.
    pub seq: u64,
    /// Its id.
    pub transition_id: String,
    /// How it ended.
    pub outcome: DeliveryOutcome,
    /// When.
    pub at: i64,
}

struct Shared {
    config: NotifierConfig,
    external_url: String,
    client: WebhookClient,
    delivered: kv::Store,
    log: AlertLog,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    retrying: AtomicI64,
    silences: Silences,
    destinations: Destinations,
    stop: CancellationToken,
}

impl Shared {
    fn lock_for(&self, fingerprint: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() > 10_000 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        Arc::clone(locks.entry(fingerprint.to_owned()).or_default())
    }

    /// The alert's delivery record and its revision, if any.
    async fn settled(
        &self,
        fingerprint: &str,
    ) -> Result<Option<(DeliveryRecord, u64)>, kv::EntryError> {
        let entry = self.delivered.entry(fingerprint).await?;
        Ok(entry.and_then(|entry| {
            (entry.operation == kv::Operation::Put)
                .then(|| serde_json::from_slice(&entry.value).ok())
                .flatten()
                .map(|record| (record, entry.revision))
        }))
    }

    /// Raises the alert's record to this transition (never lowers it).
    async fn settle(&self, transition: &AlertTransition, outcome: DeliveryOutcome) {
        let fingerprint = transition.fingerprint();
        let record = DeliveryRecord {
            seq: transition.seq,
            transition_id: transition.id(),
            outcome,
            at: now_millis(),
        };
        let Ok(bytes) = serde_json::to_vec(&record) else {
            return;
        };
        for _ in 0..5 {
            let written: Result<(), BoxError> = match self.settled(&fingerprint).await {
                Ok(Some((existing, _))) if existing.seq >= record.seq => return,
                Ok(Some((_, revision))) => self
                    .delivered
                    .update(&fingerprint, bytes.clone().into(), revision)
                    .await
                    .map(|_| ())
                    .map_err(BoxError::from),
                Ok(None) => self
                    .delivered
                    .create(&fingerprint, bytes.clone().into())
                    .await
                    .map(|_| ())
                    .map_err(BoxError::from),
                Err(err) => Err(BoxError::from(err)),
            };
            match written {
                Ok(()) => return,
                Err(err) => {
                    tracing::debug!(%err, %fingerprint, "delivery record not written; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tracing::warn!(%fingerprint, id = %record.transition_id, "delivery record not written: a redelivery may repeat the request");
    }
}

/// The running notifier.
pub struct Notifier {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    silences: tokio::task::JoinHandle<()>,
    /// The watch of the rules, when the notifier has its own (alert evaluation is off here).
    rules: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

impl Notifier {
    /// Starts delivering until `stop` (see [`Notifier::finish`]); the topology must exist, see
    /// [`crate::alerts::setup`]. `rules`: the evaluator's rules when alert evaluation runs in
    /// this process (the webhooks are looked up from them), else the notifier watches the
    /// rules itself.
    pub async fn start(
        config: &Config,
        js: jetstream::Context,
        rules: Option<Arc<RuleBook>>,
        stop: CancellationToken,
    ) -> Result<Self, Error> {
        let notifier = config.alerts.notifier.clone();
        let allow = notifier.allowlist().map_err(|source| Error::Invalid {
            what: "invalid config: alerts.notifier.allow_destinations".to_owned(),
            source: Box::new(source),
        })?;
        let client = WebhookClient::new(
            Duration::from_millis(notifier.request_timeout_ms),
            notifier.response_excerpt_bytes,
            super::guard::Guard::new(allow),
        )
        .map_err(|source| Error::Invalid {
            what: "invalid config: alerts.notifier".to_owned(),
            source: Box::new(source),
        })?;
        let delivered = js
            .get_key_value(names::ALERT_DELIVERY_BUCKET)
            .await
            .map_err(|e| Error::js(format!("bucket {}", names::ALERT_DELIVERY_BUCKET), e))?;
        let config_bucket = js
            .get_key_value(names::CONFIG_BUCKET)
            .await
            .map_err(|e| Error::js(format!("bucket {}", names::CONFIG_BUCKET), e))?;
        let silences = Silences::default();
        let following = tokio::spawn(silences.clone().follow(
            js.clone(),
            config_bucket.clone(),
            stop.clone(),
        ));
        // The evaluator's rules when it runs in this process, else a watch of our own.
        let (rules, following_rules) = match rules {
            Some(rules) => (rules, None),
            None => {
                let rules = RuleBook::new(builtin::rules(&config.alerts));
                let watch = Arc::clone(&rules).watch(js.clone(), config_bucket, stop.clone());
                (rules, Some(tokio::spawn(watch)))
            }
        };
        let destinations = Destinations::new(&rules);
        let shared = Arc::new(Shared {
            config: notifier,
            external_url: config.alerts.external_url.clone(),
            client,
            delivered,
            log: AlertLog::new(js.clone()),
            locks: Mutex::new(HashMap::new()),
            retrying: AtomicI64::new(0),
            silences,
            destinations,
            stop: stop.clone(),
        });
        let task = tokio::spawn(consume(shared, js, rules));
        Ok(Self {
            stop,
            task,
            silences: following,
            rules: following_rules,
        })
    }

    /// Stops pulling; deliveries waiting for a retry hand their message back; requests in
    /// progress finish (at most `grace`).
    pub async fn finish(self, grace: Duration) {
        self.stop.cancel();
        let _ = self.silences.await;
        if let Some(rules) = self.rules {
            let _ = rules.await;
        }
        if tokio::time::timeout(grace, self.task).await.is_err() {
            tracing::warn!(
                "notifier did not stop in time; unacknowledged transitions are redelivered"
            );
        }
    }
}

/// Opens the shared durable consumer of `RTDASH_ALERTS`.
async fn open(
    js: &jetstream::Context,
    config: &NotifierConfig,
) -> Result<consumer::pull::Stream, Error> {
    let stream = js
        .get_stream(names::ALERTS_STREAM)
        .await
        .map_err(|e| Error::js(format!("stream {}", names::ALERTS_STREAM), e))?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            names::NOTIFIER_CONSUMER,
            consumer::pull::Config {
                durable_name: Some(names::NOTIFIER_CONSUMER.to_owned()),
                description: Some(
                    "rtdash notifier: webhook delivery, shared by every aggregator".into(),
                ),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_millis(config.ack_wait_ms),
                max_deliver: -1,
                max_ack_pending: config.max_in_flight as i64,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| Error::js(format!("consumer {}", names::NOTIFIER_CONSUMER), e))?;
    consumer
        .stream()
        .max_messages_per_batch(config.max_in_flight.min(100))
        .expires(Duration::from_secs(10))
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| Error::js(format!("consumer {}", names::NOTIFIER_CONSUMER), e))
}

/// Delivers once the rules' destinations are known (a transition is not taken before its
/// webhook can be looked up).
async fn consume(shared: Arc<Shared>, js: jetstream::Context, rules: Arc<RuleBook>) {
    tokio::select! {
        () = shared.stop.cancelled() => return,
        () = rules.loaded() => {}
    }
    let permits = Arc::new(Semaphore::new(shared.config.max_in_flight));
    let mut tasks = JoinSet::new();
    let mut backoff = Duration::from_millis(200);
    'outer: loop {
        let mut messages = tokio::select! {
            () = shared.stop.cancelled() => break,
            opened = open(&js, &shared.config) => match opened {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(%err, "cannot consume alert transitions; retrying");
                    tokio::select! {
                        () = shared.stop.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(200);
        loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                () = shared.stop.cancelled() => break 'outer,
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break 'outer,
                },
            };
            let next = tokio::select! {
                () = shared.stop.cancelled() => break 'outer,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    let shared = Arc::clone(&shared);
                    tasks.spawn(async move {
                        deliver(&shared, message).await;
                        drop(permit);
                    });
                }
                Some(Err(err)) => {
                    tracing::debug!(%err, "alert transition consumer: reopening");
                    continue 'outer;
                }
                None => continue 'outer,
            }
        }
    }
    // Requests in progress finish; waits for retries end at once (stop is cancelled).
    while tasks.join_next().await.is_some() {}
}

async fn deliver(shared: &Shared, message: jetstream::Message) {
    let transition: AlertTransition = match wire::decode(&message.payload) {
        Ok(transition) => transition,
        Err(err) => {
            tracing::warn!(%err, subject = %message.subject, "undecodable alert transition; dropped");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let published = message
        .info()
        .map(|info| (info.published.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or_else(|_| now_millis());
    shared.log.transition(&transition).await;
    if !transition.to.notifies() {
        let _ = message.ack().await;
        return;
    }
    let id = transition.id();
    let fingerprint = transition.fingerprint();
    let Some(webhook) = shared.destinations.webhook(&transition) else {
        skip(
            shared,
            &transition,
            1,
            "no notify channel (the rule was deleted)",
        )
        .await;
        let _ = message.ack().await;
        return;
    };
    if let Some(silence) = shared.silences.muting(&transition, now_millis()) {
        let reason = format!(
            "silenced by {} until {}",
            silence.id,
            rtdash_shared::time::format_rfc3339(silence.ends_at)
        );
        record_not_sent(shared, &transition, 1, DeliveryOutcome::Silenced, &reason).await;
        let _ = message.ack().await;
        return;
    }
    let body: bytes::Bytes = serde_json::to_vec(&payload::body(&transition, &shared.external_url))
        .unwrap_or_default()
        .into();
    let deadline = published.saturating_add(shared.config.retry_for().as_millis() as i64);
    let progress_every = Duration::from_millis(shared.config.ack_wait_ms / 3);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let _ = message.ack_with(AckKind::Progress).await;
        let lock = shared.lock_for(&fingerprint);
        let guard = lock.lock().await;
        match shared.settled(&fingerprint).await {
            Ok(Some((record, _))) if record.seq >= transition.seq => {
                drop(guard);
                let reason = if record.seq == transition.seq {
                    "settled before (redelivery)"
                } else {
                    "superseded by a newer transition of this alert"
                };
                skip(shared, &transition, attempt, reason).await;
                let _ = message.ack().await;
                return;
            }
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(%err, "delivery record unreadable; delivering anyway");
            }
        }
        let started = Instant::now();
        let result = shared
            .client
            .post(&webhook, &[("Idempotency-Key", id.as_str())], body.clone())
            .await;
        let elapsed = started.elapsed();
        metrics::histogram!(m::ALERT_REQUEST_SECONDS).record(elapsed.as_secs_f64());
        if let Err(PostError::Refused(refusal)) = &result {
            metrics::counter!(m::ALERT_DESTINATIONS_REFUSED, "class" => refusal.label())
                .increment(1);
        }
        let report = AttemptReport::from_result(&result, elapsed);
        let wait = retry_delay(&shared.config, attempt, &result);
        let outcome = match verdict(&result) {
            Verdict::Delivered => DeliveryOutcome::Delivered,
            Verdict::Failed => DeliveryOutcome::Failed,
            Verdict::Retry => {
                if now_millis().saturating_add(wait.as_millis() as i64) > deadline {
                    DeliveryOutcome::GaveUp
                } else {
                    DeliveryOutcome::Retrying
                }
            }
        };
        if outcome != DeliveryOutcome::Retrying {
            shared.settle(&transition, outcome).await;
        }
        drop(guard);
        metrics::counter!(m::ALERT_DELIVERIES, "outcome" => outcome.as_str()).increment(1);
        tracing::info!(
            %id,
            attempt,
            outcome = outcome.as_str(),
            status = ?report.status,
            error = ?report.error,
            ms = elapsed.as_millis() as u64,
            "alert delivery attempt"
        );
        shared
            .log
            .attempt(&transition, attempt, outcome, report)
            .await;
        if outcome == DeliveryOutcome::Delivered {
            let latency = (now_millis() - transition.evaluated_at).max(0) as f64 / 1000.0;
            metrics::histogram!(m::ALERT_DELIVERY_LATENCY).record(latency);
        }
        if outcome != DeliveryOutcome::Retrying {
            let _ = message.ack().await;
            return;
        }
        let backlog = shared.retrying.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(m::ALERT_RETRY_BACKLOG).set(backlog as f64);
        let waited = wait_in_progress(&message, wait, progress_every, &shared.stop).await;
        let backlog = shared.retrying.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!(m::ALERT_RETRY_BACKLOG).set(backlog as f64);
        if !waited {
            let _ = message.ack_with(AckKind::Nak(None)).await;
            return;
        }
    }
}

async fn skip(shared: &Shared, transition: &AlertTransition, attempt: u32, reason: &str) {
    record_not_sent(
        shared,
        transition,
        attempt,
        DeliveryOutcome::Skipped,
        reason,
    )
    .await;
}

/// Records a transition that was not posted: `skipped` or `silenced`, with why.
async fn record_not_sent(
    shared: &Shared,
    transition: &AlertTransition,
    attempt: u32,
    outcome: DeliveryOutcome,
    reason: &str,
) {
    metrics::counter!(m::ALERT_DELIVERIES, "outcome" => outcome.as_str()).increment(1);
    tracing::info!(id = %transition.id(), reason, outcome = outcome.as_str(), "alert not sent");
    shared
        .log
        .attempt(
            transition,
            attempt,
            outcome,
            AttemptReport {
                error: Some(reason.to_owned()),
                ..AttemptReport::default()
            },
        )
        .await;
}

/// Sleeps `wait`, marking `message` in progress every `every`; false when stopped.
async fn wait_in_progress(
    message: &jetstream::Message,
    wait: Duration,
    every: Duration,
    stop: &CancellationToken,
) -> bool {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            return true;
        }
        let nap = (until - now).min(every.max(Duration::from_millis(100)));
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(nap) => {}
        }
        if tokio::time::Instant::now() < until {
            let _ = message.ack_with(AckKind::Progress).await;
        }
    }
}
