//! The alert tests' side of the core aggregator: a driver publishing one series in real time
//! (a chosen number of events per window, the watermark at the wall clock), rules written to
//! the config bucket as the gateway writes them, and the alert log read back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use rtdash_shared::messages::PartialEntry;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::{Sketch, SketchSpec};
use rtdash_shared::time::now_millis;
use rtdash_shared::window::window_start;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::aggregator::AggregatorOptions;
use crate::fake_agent::FakeAgent;
use crate::webhook::Received;

/// Tenant of the driven series.
pub const TENANT: &str = "t1";
/// Metric of the driven series.
pub const METRIC: &str = "requests";
/// Window of the driven series.
pub const WINDOW_MS: i64 = 1_000;
/// Allowed lateness the aggregators run with.
pub const LATENESS_MS: i64 = 500;

/// The driven series: `requests{region="eu"}` of tenant `t1`.
pub fn series() -> SeriesKey {
    SeriesKey::new(
        TENANT,
        METRIC,
        [("region".to_owned(), Some("eu".to_owned()))],
    )
}

/// Publishes one series in real time: at the start of each window one entry with the current
/// number of events (values 1.0), and every 100 ms a heartbeat on every partition with the
/// watermark at the wall clock, so each window closes `LATENESS_MS` after its end.
pub struct Driver {
    rate: Arc<AtomicU64>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Driver {
    /// Starts publishing `rate` events per window of `series` (agent id `agent`).
    pub fn start(
        js: jetstream::Context,
        partitions: u32,
        agent: &str,
        series: SeriesKey,
        rate: u64,
    ) -> Driver {
        let rate = Arc::new(AtomicU64::new(rate));
        let stop = CancellationToken::new();
        let mut agent = FakeAgent::new(agent, js, partitions);
        let (shared, until) = (Arc::clone(&rate), stop.clone());
        let task = tokio::spawn(async move {
            let mut last = None;
            while !until.is_cancelled() {
                let now = now_millis();
                let window = window_start(now, WINDOW_MS);
                if last != Some(window) {
                    let events = shared.load(Ordering::SeqCst);
                    let mut sketch = Sketch::new(SketchSpec::VALUES);
                    for _ in 0..events {
                        sketch.record(Some(1.0), None);
                    }
                    let entry = PartialEntry {
                        series: series.clone(),
                        window_start: window,
                        window_ms: WINDOW_MS,
                        sketch,
                    };
                    let partition = series.partition(partitions);
                    if agent.send(partition, now, vec![entry]).await.is_ok() {
                        last = Some(window);
                    }
                }
                let _ = agent.heartbeat(now).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Driver { rate, stop, task }
    }

    /// Events per window from the next window on.
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::SeqCst);
    }

    /// Stops publishing.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Aggregator options for alert tests: short lateness, short retries, a webhook base URL.
pub fn alert_options(options: AggregatorOptions) -> AggregatorOptions {
    options
        .set("WINDOWS__ALLOWED_LATENESS_MS", LATENESS_MS)
        .set("ALERTS__NOTIFIER__INITIAL_BACKOFF_MS", 500)
        .set("ALERTS__NOTIFIER__MAX_BACKOFF_MS", 2_000)
        .set("ALERTS__NOTIFIER__ACK_WAIT_MS", 5_000)
        .set("ALERTS__NOTIFIER__REQUEST_TIMEOUT_MS", 3_000)
}

/// An alert rule as the gateway stores it.
pub fn rule(id: &str, threshold: f64, notify: &str) -> Value {
    json!({
        "id": id,
        "tenant_id": TENANT,
        "metric_name": METRIC,
        "dimensions": {"region": "eu"},
        "stat": "count",
        "condition": "gt",
        "threshold": threshold,
        "notify_channel": notify,
        "for_windows": 1,
        "evaluate_on": "final",
        "labels": {"severity": "page"},
        "annotations": {"summary": "too many requests in {{region}}"},
        "created_at": now_millis(),
        "updated_at": now_millis(),
    })
}

/// Writes `rule` to the config bucket (as the gateway does).
pub async fn put_rule(js: &jetstream::Context, rule: &Value) -> anyhow::Result<()> {
    let kv = js
        .get_key_value(rtdash_shared::names::CONFIG_BUCKET)
        .await?;
    let key = rtdash_shared::names::alert_config_key(
        rule["tenant_id"].as_str().unwrap(),
        rule["id"].as_str().unwrap(),
    );
    kv.put(key, serde_json::to_vec(rule)?.into()).await?;
    Ok(())
}

/// Every alert log record of `rule` (oldest first).
pub async fn alert_log(
    js: &jetstream::Context,
    tenant: &str,
    rule: &str,
) -> anyhow::Result<Vec<Value>> {
    use async_nats::jetstream::consumer;
    use futures::StreamExt;
    let stream = js
        .get_stream(rtdash_shared::names::ALERT_EVENTS_STREAM)
        .await
        .context("alert log stream")?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: rtdash_shared::names::alertlog_subject(tenant, rule),
            ..Default::default()
        })
        .await?;
    let mut remaining = consumer.cached_info().num_pending;
    let mut out = Vec::new();
    if remaining == 0 {
        return Ok(out);
    }
    let mut messages = consumer.messages().await?;
    while remaining > 0 {
        let message = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await?
            .context("log ended")??;
        remaining = message.info().map_err(|e| anyhow::anyhow!("{e}"))?.pending;
        out.push(serde_json::from_slice(&message.payload)?);
    }
    Ok(out)
}

/// The end of the window a notification is about (Unix ms).
pub fn window_end(received: &Received) -> i64 {
    rtdash_shared::time::parse_rfc3339(received.annotation("window_end")).unwrap_or_default()
}

/// How many messages of `stream` (every subject, the deleted ones skipped) contain `needle`
/// in their payload: to prove a secret is not copied into a stream.
pub async fn messages_containing(
    js: &jetstream::Context,
    stream: &str,
    needle: &str,
) -> anyhow::Result<usize> {
    let name = stream;
    let mut stream = js
        .get_stream(name)
        .await
        .with_context(|| format!("stream {name}"))?;
    let state = stream.info().await?.state.clone();
    anyhow::ensure!(
        state.messages > 0,
        "the stream is empty: nothing was checked"
    );
    let (mut found, mut read) = (0, 0);
    for sequence in state.first_sequence..=state.last_sequence {
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        read += 1;
        if message
            .payload
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            found += 1;
        }
    }
    anyhow::ensure!(read > 0, "no message of {name} could be read");
    Ok(found)
}
