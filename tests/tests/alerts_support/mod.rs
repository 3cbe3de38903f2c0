//! Shared by the alert integration tests: a webhook receiver on loopback that records every
//! request and answers as told, a driver publishing real `PartialBatch`es in real time (one
//! series, a chosen number of events per window, the watermark at the wall clock), rules
//! written to the config bucket, and alert log reads.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::aggregator_support::FakeAgent;
use anyhow::{bail, Context};
use async_nats::jetstream;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use rtdash_shared::messages::PartialEntry;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::{Sketch, SketchSpec};
use rtdash_shared::time::now_millis;
use rtdash_shared::window::window_start;
use rtdash_tests::aggregator::AggregatorOptions;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// When (Unix ms).
    pub at: i64,
    /// Path without the leading `/`.
    pub path: String,
    /// `Idempotency-Key`.
    pub key: String,
    /// JSON body.
    pub body: Value,
    /// What it answered.
    pub answered: u16,
}

impl Received {
    /// `status` of the body (`firing` / `resolved`).
    pub fn status(&self) -> &str {
        self.body["status"].as_str().unwrap_or_default()
    }

    /// A label of the (only) alert.
    pub fn label(&self, name: &str) -> &str {
        self.body["alerts"][0]["labels"][name]
            .as_str()
            .unwrap_or_default()
    }

    /// An annotation of the (only) alert.
    pub fn annotation(&self, name: &str) -> &str {
        self.body["alerts"][0]["annotations"][name]
            .as_str()
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Received>>,
    /// Status answered on every path without its own.
    status: AtomicU16,
    /// Path -> (status, body).
    per_path: Mutex<HashMap<String, (u16, String)>>,
}

/// A webhook receiver on `127.0.0.1:<port>`.
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    inner: Arc<Inner>,
    stop: CancellationToken,
}

async fn hook(
    State(inner): State<Arc<Inner>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let (status, text) = inner
        .per_path
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or_else(|| (inner.status.load(Ordering::SeqCst), "ok".to_owned()));
    inner.requests.lock().unwrap().push(Received {
        at: now_millis(),
        path,
        key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        answered: status,
    });
    (StatusCode::from_u16(status).unwrap(), text)
}

impl Receiver {
    /// Starts a receiver answering 200.
    pub async fn start() -> Receiver {
        let inner = Arc::new(Inner::default());
        inner.status.store(200, Ordering::SeqCst);
        let app = Router::new()
            .route("/{*path}", post(hook))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await;
        });
        Receiver { base, inner, stop }
    }

    /// The URL of hook `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// Answers `status` from now on (paths without their own answer).
    pub fn answer(&self, status: u16) {
        self.inner.status.store(status, Ordering::SeqCst);
    }

    /// Answers `status` with `body` on `path`.
    pub fn answer_on(&self, path: &str, status: u16, body: &str) {
        self.inner
            .per_path
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, body.to_owned()));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Requests on `path` whose body has `status`.
    pub fn with_status(&self, path: &str, status: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path && r.status() == status)
            .collect()
    }

    /// Waits until `count` requests on `path` with body `status` arrived.
    pub async fn wait_for(
        &self,
        path: &str,
        status: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Received>> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.with_status(path, status);
            if found.len() >= count {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{count} `{status}` notification(s) on /{path} not received within {timeout:?}; got: {:#?}",
                    self.requests()
                        .iter()
                        .map(|r| (r.path.clone(), r.status().to_owned(), r.answered))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

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
