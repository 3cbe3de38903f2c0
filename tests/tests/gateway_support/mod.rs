//! Shared by the gateway integration tests: a gateway on a free port against a real
//! nats-server (one per test) and the shared QuestDB (a table per test), plus an SSE client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use gateway::config::GatewayConfig;
use questdb::ingress::{Buffer, Sender, TimestampMicros};
use rtdash_shared::messages::WindowUpdate;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::Stats;
use rtdash_tests::{unique_name, NatsServer, QuestDb};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// A running gateway and what it talks to.
pub struct Env {
    pub nats: NatsServer,
    pub db: &'static QuestDb,
    pub table: String,
    pub gateway: Option<gateway::Running>,
    pub state: gateway::AppState,
    pub shutdown: CancellationToken,
    pub base: String,
    pub http: reqwest::Client,
    pub client: async_nats::Client,
}

impl Env {
    /// Starts everything; `tune` adjusts the gateway configuration.
    pub async fn start(tune: impl FnOnce(&mut GatewayConfig)) -> Env {
        let nats = NatsServer::start().expect("nats-server");
        let db = QuestDb::shared().expect("questdb");
        let table = unique_name("gw");
        let mut config = GatewayConfig {
            listen: "127.0.0.1:0".into(),
            web_root: "/nonexistent/rtdash-web".into(),
            shutdown_grace_ms: 3_000,
            ..GatewayConfig::default()
        };
        config.nats.url = nats.url();
        config.questdb.pg_addr = db.pg_addr().to_string();
        config.questdb.table = table.clone();
        config.streams.storage = "memory".into();
        tune(&mut config);
        let shutdown = CancellationToken::new();
        let running = gateway::start(config, shutdown.clone())
            .await
            .expect("gateway starts");
        let base = format!("http://{}", running.addr);
        let state = running.state.clone();
        let client = async_nats::connect(nats.url()).await.expect("nats client");
        Env {
            nats,
            db,
            table,
            gateway: Some(running),
            state,
            shutdown,
            base,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(2048)
                .build()
                .expect("client"),
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET` answering (status, JSON body or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("request");
        decode(response).await
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send_with(method, path, body, &[]).await
    }

    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        decode(request.send().await.expect("request")).await
    }

    /// Creates a metric definition for `tenant`.
    pub async fn define(&self, tenant: &str, definition: Value) {
        let mut definition = definition;
        definition["tenant_id"] = json!(tenant);
        let (status, body) = self
            .send("POST", "/v1/metric-definitions", Some(definition))
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// Creates a dashboard with `widgets`; returns (dashboard id, widget ids).
    pub async fn dashboard(&self, tenant: &str, widgets: Vec<Value>) -> (String, Vec<String>) {
        let (status, body) = self
            .send(
                "POST",
                "/v1/dashboards",
                Some(json!({"tenant_id": tenant, "name": "test", "widgets": widgets})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["dashboard_id"].as_str().expect("id").to_owned();
        let widgets = body["widgets"]
            .as_array()
            .expect("widgets")
            .iter()
            .map(|w| w["widget_id"].as_str().expect("widget id").to_owned())
            .collect();
        (id, widgets)
    }

    /// Inserts rows into this test's table the way the core aggregator writes them (ILP over
    /// HTTP, see `append_row` in `core-aggregator/src/sink/questdb.rs`: the empty dimension
    /// set is an absent `dim_set` symbol, which QuestDB stores as NULL), and waits until they
    /// are visible.
    pub fn insert(&self, rows: &[Row]) {
        if rows.is_empty() {
            return;
        }
        let mut sender = Sender::from_conf(self.db.ilp_http_conf()).expect("ILP sender");
        let mut buffer = sender.new_buffer();
        for row in rows {
            row.append(&mut buffer, &self.table).expect("ILP row");
        }
        sender.flush(&mut buffer).expect("ILP flush");
        self.db
            .wait_wal_applied(&self.table, Duration::from_secs(30))
            .expect("WAL applied");
    }

    /// Publishes a live update the way the core aggregator does.
    pub async fn publish(&self, update: &WindowUpdate) {
        let bytes =
            rtdash_shared::wire::encode(update, rtdash_shared::wire::Format::Json).expect("encode");
        let subject = rtdash_shared::names::live_subject(&update.tenant_id, &update.metric);
        self.client
            .publish(subject, bytes.into())
            .await
            .expect("publish");
        self.client.flush().await.expect("flush");
    }

    /// Opens a stream.
    pub async fn stream(&self, tenant: &str, dashboard: &str, last_event_id: Option<&str>) -> Sse {
        let mut request = self.http.get(self.url(&format!(
            "/v1/dashboards/{dashboard}/stream?tenant_id={tenant}"
        )));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("stream request");
        assert_eq!(response.status().as_u16(), 200);
        Sse {
            response,
            buffer: String::new(),
        }
    }

    /// Cancels the shutdown token and waits for the server to stop.
    pub async fn stop(&mut self) -> Duration {
        let started = std::time::Instant::now();
        self.shutdown.cancel();
        if let Some(running) = self.gateway.take() {
            running.wait().await.expect("clean stop");
        }
        started.elapsed()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, body)
}

/// One stored metric window.
#[derive(Clone, Debug)]
pub struct Row {
    pub start: i64,
    pub window_ms: i64,
    pub tenant: String,
    pub metric: String,
    pub dims: BTreeMap<String, Option<String>>,
    pub count: u64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub p99: Option<f64>,
    pub uniq: Option<u64>,
    pub revision: u32,
    pub is_final: bool,
}

impl Row {
    pub fn new(tenant: &str, metric: &str, start: i64, dims: &[(&str, &str)], count: u64) -> Row {
        Row {
            start,
            window_ms: 60_000,
            tenant: tenant.into(),
            metric: metric.into(),
            dims: dims
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
            count,
            sum: None,
            min: None,
            max: None,
            p99: None,
            uniq: None,
            revision: 0,
            is_final: true,
        }
    }

    pub fn values(mut self, sum: f64, min: f64, max: f64, p99: f64) -> Row {
        self.sum = Some(sum);
        self.min = Some(min);
        self.max = Some(max);
        self.p99 = Some(p99);
        self
    }

    /// Appends the row in the aggregator's ILP layout (same columns, same symbol handling).
    fn append(&self, buffer: &mut Buffer, table: &str) -> questdb::Result<()> {
        let series = SeriesKey::new(self.tenant.clone(), self.metric.clone(), self.dims.clone());
        let dim_set = series.dim_set();
        let avg = match self.sum {
            Some(sum) if self.count > 0 => Some(sum / self.count as f64),
            _ => None,
        };
        let micros = |ms: i64| TimestampMicros::new(ms * 1000);
        buffer
            .table(table)?
            .symbol("tenant", series.tenant.as_str())?
            .symbol("metric", series.metric.as_str())?
            .symbol_opt("dim_set", (!dim_set.is_empty()).then_some(dim_set.as_str()))?
            .column_str("series", series.dims_json().as_str())?
            .column_ts("window_end", micros(self.start + self.window_ms))?
            .column_i64("count", self.count as i64)?
            .column_f64_opt("sum", self.sum)?
            .column_f64_opt("min", self.min)?
            .column_f64_opt("max", self.max)?
            .column_f64_opt("avg", avg)?
            .column_f64_opt("p50", None)?
            .column_f64_opt("p90", None)?
            .column_f64_opt("p95", None)?
            .column_f64_opt("p99", self.p99)?
            .column_i64_opt("uniq", self.uniq.map(|u| u as i64))?
            .column_i64("revision", i64::from(self.revision))?
            .column_bool("final", self.is_final)?
            .column_i64("late_count", 0)?
            .column_ts("updated_at", micros(self.start + self.window_ms + 1_000))?
            .at(micros(self.start))
    }

    /// The same window as a live update.
    pub fn update(&self, updated_at: i64) -> WindowUpdate {
        WindowUpdate {
            tenant_id: self.tenant.clone(),
            metric: self.metric.clone(),
            dimensions: self.dims.clone(),
            window_start: self.start,
            window_end: self.start + self.window_ms,
            stats: Stats {
                count: self.count,
                sum: self.sum,
                min: self.min,
                max: self.max,
                avg: self.sum.map(|s| s / self.count.max(1) as f64),
                p50: None,
                p90: None,
                p95: None,
                p99: self.p99,
                unique: self.uniq,
            },
            revision: self.revision,
            is_final: self.is_final,
            late_count: 0,
            updated_at,
        }
    }
}

/// One SSE event.
#[derive(Clone, Debug, Default)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// A minimal SSE reader.
pub struct Sse {
    pub response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// Reads events from an open stream response.
    pub fn new(response: reqwest::Response) -> Sse {
        Sse {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or `None` at the end of the stream or after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event {
                    event: "message".into(),
                    ..Event::default()
                };
                let mut data = String::new();
                let mut any = false;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim().to_owned();
                        any = true;
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                        any = true;
                    }
                }
                if !any {
                    continue; // a comment (keep-alive)
                }
                event.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(event);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads until the unread text contains `needle` (cheap: no parsing), or `timeout`.
    pub async fn wait_for(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(at) = self.buffer.find(needle) {
                self.buffer.drain(..at + needle.len());
                return true;
            }
            let chunk = match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => chunk,
                _ => return false,
            };
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event named `name` (skipping others).
    pub async fn next_named(&mut self, name: &str, timeout: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await?;
            if event.event == name {
                return Some(event);
            }
        }
    }
}

/// Start of the minute `minutes_ago` minutes before now.
pub fn minute(minutes_ago: i64) -> i64 {
    let now = rtdash_shared::time::now_millis();
    (now / 60_000 - minutes_ago) * 60_000
}
