//! The product end to end, on real services: events posted over HTTP to the real `edge-agent`
//! binary reach QuestDB through real NATS JetStream and the real `core-aggregator`, and come
//! back out of the real `gateway`, over REST and to live SSE viewers, exactly.
//!
//! One stack (`rtdash_tests::stack`), 2 s windows, 5 s allowed lateness, 60 s correction
//! horizon. Two tenants send payments (amount, user id, region x plan), API requests (latency
//! by service) and page views, from two sources, in two windows A and B: a first batch as B
//! begins (A's events already after A's end, i.e. late but within the allowed lateness), a
//! second one a second later, including one event without the metric's field (counted by
//! `events` only) and one invalid item (rejected). The test computes every aggregate itself
//! and checks:
//!
//! - (a) every row of the metrics table (SQL, straight from QuestDB) and every answer of
//!   `GET /v1/metrics/{name}` (full dimension sets, rollups, totals, filters combined from
//!   full-set rows, a coarser window, the built-in `events` metric): count, sum, min and max
//!   exact, avg to 1e-9, distinct counts within the HyperLogLog's error, revision 0, final,
//!   late count 0, and no row or window more or fewer than expected;
//! - (b) an SSE viewer of a dashboard created through the API gets empty snapshots, then
//!   updates whose values are the exact aggregates, until every window is `final`, and
//!   `status` turns `ok`;
//! - (c) late events beyond the allowed lateness but within the correction horizon produce a
//!   correction: revision 1 and the late count on exactly the series they touched, in QuestDB,
//!   over REST, on the open stream, and in a new viewer's snapshots;
//! - the three services then stop gracefully (exit status 0).
//!
//! Needs the service binaries: `cargo build --workspace --bins` first (`./deploy/test.sh`
//! does). About 30 s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use rtdash_shared::time::{format_rfc3339, now_millis, parse_rfc3339};
use rtdash_tests::prometheus::metric_sum;
use rtdash_tests::stack::{Stack, StackOptions};
use serde_json::{json, Value};

/// Window of the test metrics.
const WINDOW_MS: i64 = 2_000;
/// Aggregator `windows.allowed_lateness_ms`.
const LATENESS_MS: i64 = 5_000;
/// Aggregator `windows.correction_horizon_ms`.
const HORIZON_MS: i64 = 60_000;
/// Longest wait for anything the pipeline does.
const PATIENCE: Duration = Duration::from_secs(30);

const TENANTS: [&str; 2] = ["acme", "globex"];
const REGIONS: [&str; 3] = ["us", "eu", "ap"];
const PLANS: [&str; 2] = ["free", "pro"];
const SERVICES: [&str; 3] = ["checkout", "search", "auth"];
const SOURCES: [&str; 2] = ["web", "api-gw"];

type Dims = BTreeMap<String, String>;

fn dims(pairs: &[(&str, &str)]) -> Dims {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A test metric, as defined through the gateway.
struct Metric {
    name: &'static str,
    event_type: &'static str,
    field: &'static str,
    unique: Option<&'static str>,
    dimensions: &'static [&'static str],
    /// `None`: the default (full set and total).
    rollups: Option<&'static [&'static [&'static str]]>,
}

const CHECKOUT: Metric = Metric {
    name: "checkout",
    event_type: "payment_completed",
    field: "amount",
    unique: Some("user_id"),
    dimensions: &["region", "plan"],
    rollups: Some(&[&["region"], &[]]),
};

const API_LATENCY: Metric = Metric {
    name: "api_latency",
    event_type: "api_request",
    field: "latency_ms",
    unique: None,
    dimensions: &["service"],
    rollups: None,
};

const METRICS: [&Metric; 2] = [&CHECKOUT, &API_LATENCY];

impl Metric {
    fn definition(&self, tenant: &str) -> Value {
        let mut definition = json!({
            "tenant_id": tenant,
            "name": self.name,
            "event_type": self.event_type,
            "field": self.field,
            "dimensions": self.dimensions,
            "window_secs": WINDOW_MS / 1000,
        });
        if let Some(unique) = self.unique {
            definition["unique"] = json!(unique);
        }
        if let Some(rollups) = self.rollups {
            definition["rollups"] = json!(rollups);
        }
        definition
    }

    /// The dimension sets kept, each sorted: the full set and the rollups.
    fn dim_sets(&self) -> Vec<Vec<String>> {
        let sorted = |set: &[&str]| {
            let mut set: Vec<String> = set.iter().map(|d| d.to_string()).collect();
            set.sort();
            set
        };
        let mut sets = vec![sorted(self.dimensions)];
        match self.rollups {
            Some(rollups) => sets.extend(rollups.iter().map(|r| sorted(r))),
            None => sets.push(Vec::new()),
        }
        sets.dedup();
        sets
    }

    fn full_set(&self) -> Vec<String> {
        self.dim_sets().remove(0)
    }

    fn stats(&self) -> Vec<&'static str> {
        let mut stats = vec!["count", "sum", "min", "max", "avg"];
        if self.unique.is_some() {
            stats.push("unique");
        }
        stats
    }
}

/// Exact aggregates of one series window, computed here.
#[derive(Clone, Debug, Default)]
struct Acc {
    values: Vec<f64>,
    users: BTreeSet<String>,
    /// Events that arrived after the window closed (corrections).
    late: u64,
    /// Correction batches applied (each late request on a series is one correction).
    revision: u32,
}

impl Acc {
    fn merge(&mut self, other: &Acc) {
        self.values.extend_from_slice(&other.values);
        self.users.extend(other.users.iter().cloned());
        self.late += other.late;
        self.revision = self.revision.max(other.revision);
    }

    fn count(&self) -> f64 {
        self.values.len() as f64
    }

    fn sum(&self) -> f64 {
        self.values.iter().sum()
    }

    fn min(&self) -> f64 {
        self.values.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }

    fn stat(&self, stat: &str) -> f64 {
        match stat {
            "count" => self.count(),
            "sum" => self.sum(),
            "min" => self.min(),
            "max" => self.max(),
            "avg" => self.sum() / self.count(),
            "unique" => self.users.len() as f64,
            other => panic!("no expectation for stat {other}"),
        }
    }
}

/// Whether `got` is what `stat` should be for `want`: exact for count, sum, min and max (the
/// test's values add up exactly in f64), 1e-9 relative for avg, the HyperLogLog's error for
/// unique (p14, sparse at these cardinalities: 2 %, at least 1).
fn stat_matches(stat: &str, got: f64, want: f64) -> bool {
    match stat {
        "avg" => (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "unique" => (got - want).abs() <= (want * 0.02).max(1.0),
        _ => got == want,
    }
}

/// Expected series windows: (tenant, metric, dimension values, window start).
type Expected = BTreeMap<(String, String, Dims, i64), Acc>;

/// One event as the test sends it.
#[derive(Clone, Debug)]
struct Event {
    tenant: &'static str,
    source: &'static str,
    event_type: &'static str,
    properties: serde_json::Map<String, Value>,
    occurred_at: i64,
}

impl Event {
    fn json(&self) -> Value {
        json!({
            "tenant_id": self.tenant,
            "source": self.source,
            "event_type": self.event_type,
            "properties": self.properties,
            "occurred_at": format_rfc3339(self.occurred_at),
        })
    }
}

/// What the test expects the pipeline to make of the events it sent.
#[derive(Default)]
struct Model {
    windows: Expected,
    /// Built-in `events` metric: count per (tenant, event_type, source).
    events: BTreeMap<(String, String, String), u64>,
}

impl Model {
    /// Records accepted events; `late` ones arrive after their window closed, in one request,
    /// so each series they touch gets one correction.
    fn record(&mut self, events: &[Event], late: bool) {
        let mut corrected = BTreeSet::new();
        for event in events {
            *self
                .events
                .entry((
                    event.tenant.to_owned(),
                    event.event_type.to_owned(),
                    event.source.to_owned(),
                ))
                .or_default() += 1;
            for metric in METRICS {
                if metric.event_type != event.event_type {
                    continue;
                }
                let Some(value) = event.properties.get(metric.field).and_then(Value::as_f64) else {
                    continue; // no numeric field: not part of the metric
                };
                let start = event.occurred_at.div_euclid(WINDOW_MS) * WINDOW_MS;
                for set in metric.dim_sets() {
                    let series: Dims = set
                        .iter()
                        .map(|d| {
                            let v = event.properties[d.as_str()].as_str().expect("string dim");
                            (d.clone(), v.to_owned())
                        })
                        .collect();
                    let key = (
                        event.tenant.to_owned(),
                        metric.name.to_owned(),
                        series,
                        start,
                    );
                    let acc = self.windows.entry(key.clone()).or_default();
                    acc.values.push(value);
                    if let Some(unique) = metric.unique {
                        acc.users
                            .insert(event.properties[unique].as_str().expect("user").to_owned());
                    }
                    if late {
                        acc.late += 1;
                        corrected.insert(key);
                    }
                }
            }
        }
        for key in corrected {
            self.windows.get_mut(&key).expect("recorded").revision += 1;
        }
    }

    /// The expected value of `metric` filtered on `filter` in the window of size `window_ms`
    /// starting at `start`, the way the gateway derives it: the rows of the dimension set
    /// equal to the filter's keys when the metric keeps it, else the full-set rows matching
    /// the filter, combined (also across the metric's windows inside a coarser window).
    fn derived(
        &self,
        tenant: &str,
        metric: &Metric,
        filter: &Dims,
        start: i64,
        window_ms: i64,
    ) -> Option<Acc> {
        let keys: Vec<String> = filter.keys().cloned().collect();
        let exact_set = metric.dim_sets().contains(&keys);
        let mut out: Option<Acc> = None;
        for ((t, m, series, window), acc) in &self.windows {
            if t != tenant || m != metric.name || *window < start || *window >= start + window_ms {
                continue;
            }
            let set: Vec<String> = series.keys().cloned().collect();
            let wanted = if exact_set {
                series == filter
            } else {
                set == metric.full_set() && filter.iter().all(|(k, v)| series.get(k) == Some(v))
            };
            if wanted {
                out.get_or_insert_with(Acc::default).merge(acc);
            }
        }
        out
    }

    /// Window starts (of size `window_ms`) with data for `metric` of `tenant`.
    fn window_starts(&self, tenant: &str, metric: &Metric, window_ms: i64) -> BTreeSet<i64> {
        self.windows
            .keys()
            .filter(|(t, m, _, _)| t == tenant && m == metric.name)
            .map(|(_, _, _, start)| start.div_euclid(window_ms) * window_ms)
            .collect()
    }

    /// Distinct dimension values of `metric` for `set`.
    fn series_of(&self, tenant: &str, metric: &Metric, set: &[String]) -> BTreeSet<Dims> {
        self.windows
            .keys()
            .filter(|(t, m, series, _)| {
                t == tenant && m == metric.name && series.keys().eq(set.iter())
            })
            .map(|(_, _, series, _)| series.clone())
            .collect()
    }
}

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn props(pairs: &[(&str, Value)]) -> serde_json::Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// One request's worth of on-time events for every tenant: every (region, plan) and every
/// service in both windows, values that add up exactly in f64 (multiples of 0.25), users from
/// a small population. `a` and `b` are the windows' starts; B events fall in `b_range`.
fn on_time_batch(rng: &mut Rng, a: i64, b: i64, b_range: (i64, i64), seed: u64) -> Vec<Event> {
    let mut events = Vec::new();
    for (t, tenant) in TENANTS.iter().enumerate() {
        for window in [a, b] {
            let at = |rng: &mut Rng| {
                if window == a {
                    a + rng.below(WINDOW_MS as u64) as i64
                } else {
                    b_range.0 + rng.below((b_range.1 - b_range.0) as u64) as i64
                }
            };
            for i in 0..12 {
                let (region, plan) = (REGIONS[i % 3], PLANS[i / 3 % 2]);
                let amount = rng.below(40_000) as f64 * 0.25 + 0.25;
                let user = format!("u{}", rng.below(9 + t as u64 * 4));
                events.push(Event {
                    tenant,
                    source: SOURCES[i % 2],
                    event_type: "payment_completed",
                    properties: props(&[
                        ("region", json!(region)),
                        ("plan", json!(plan)),
                        ("amount", json!(amount)),
                        ("user_id", json!(user)),
                    ]),
                    occurred_at: at(rng),
                });
            }
            for i in 0..6 {
                events.push(Event {
                    tenant,
                    source: "api-gw",
                    event_type: "api_request",
                    properties: props(&[
                        ("service", json!(SERVICES[i % 3])),
                        ("latency_ms", json!(1 + rng.below(5_000))),
                        ("status", json!(200)),
                    ]),
                    occurred_at: at(rng),
                });
            }
            for i in 0..(3 + seed as usize % 2) {
                events.push(Event {
                    tenant,
                    source: SOURCES[i % 2],
                    event_type: "page_view",
                    properties: props(&[("path", json!(format!("/p{i}")))]),
                    occurred_at: at(rng),
                });
            }
        }
        // A payment without the metric's field: counted by `events` only.
        events.push(Event {
            tenant,
            source: "web",
            event_type: "payment_completed",
            properties: props(&[
                ("region", json!("us")),
                ("plan", json!("pro")),
                ("user_id", json!("u-nofield")),
            ]),
            occurred_at: b_range.0,
        });
    }
    events
}

/// HTTP to the services.
struct Client {
    http: reqwest::Client,
    gateway: String,
    agent: String,
}

impl Client {
    async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<(u16, Value)> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.gateway), query)?;
        let response = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        decode(response).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .post(format!("{}{path}", self.gateway))
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        decode(response).await
    }

    /// Posts a batch of events (plus `extra` raw items) to the agent; returns the answer.
    async fn send(&self, events: &[Event], extra: &[Value]) -> anyhow::Result<(u16, Value)> {
        let mut items: Vec<Value> = events.iter().map(Event::json).collect();
        items.extend_from_slice(extra);
        let response = self
            .http
            .post(format!("{}/v1/events", self.agent))
            .json(&items)
            .send()
            .await
            .context("POST /v1/events")?;
        decode(response).await
    }

    /// Posts events that must all be accepted; `rejected` raw items must all be rejected.
    async fn send_ok(&self, events: &[Event], rejected: &[Value]) -> anyhow::Result<()> {
        let (status, body) = self.send(events, rejected).await?;
        ensure!(status == 202, "ingest answered {status}: {body}");
        let accepted = body["accepted"].as_u64().unwrap_or(u64::MAX);
        ensure!(
            accepted == events.len() as u64 && body["rejected"] == json!(rejected.len()),
            "ingest accepted {accepted} of {} and rejected {} (want {}): {body}",
            events.len(),
            body["rejected"],
            rejected.len()
        );
        Ok(())
    }

    /// `GET /v1/metrics/{name}`.
    async fn metric(
        &self,
        tenant: &str,
        name: &str,
        filter: &Dims,
        stat: &str,
        window: Option<&str>,
        range: (i64, i64),
    ) -> anyhow::Result<(u16, Value)> {
        let mut query = vec![
            ("tenant_id", tenant.to_owned()),
            ("dimensions", serde_json::to_string(filter)?),
            ("stat", stat.to_owned()),
            ("from", format_rfc3339(range.0)),
            ("to", format_rfc3339(range.1)),
        ];
        if let Some(window) = window {
            query.push(("window", window.to_owned()));
        }
        self.get(&format!("/v1/metrics/{name}"), &query).await
    }
}

async fn decode(response: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// One Server-Sent Event.
#[derive(Debug)]
struct SseEvent {
    event: String,
    data: Value,
}

/// A minimal SSE reader.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    async fn open(client: &Client, tenant: &str, dashboard: &str) -> anyhow::Result<Sse> {
        let response = client
            .http
            .get(format!(
                "{}/v1/dashboards/{dashboard}/stream?tenant_id={tenant}",
                client.gateway
            ))
            .send()
            .await
            .context("open stream")?;
        ensure!(
            response.status().as_u16() == 200,
            "stream answered {}",
            response.status()
        );
        Ok(Sse {
            response,
            buffer: String::new(),
        })
    }

    /// The next event; `None` at the deadline or the end of the stream.
    async fn next(&mut self, deadline: tokio::time::Instant) -> anyhow::Result<Option<SseEvent>> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                let mut any = false;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_owned();
                        any = true;
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                        any = true;
                    }
                }
                if !any {
                    continue; // a comment (keep-alive)
                }
                let data = serde_json::from_str(&data)
                    .with_context(|| format!("{event} data is not JSON: {data}"))?;
                return Ok(Some(SseEvent { event, data }));
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Ok(None),
                Ok(chunk) => match chunk.context("read stream")? {
                    Some(chunk) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                    None => return Ok(None),
                },
            }
        }
    }
}

/// A dashboard widget of the test and what it shows.
struct Widget {
    metric: &'static Metric,
    filter: Dims,
    stat: &'static str,
    id: String,
}

/// The latest version of each (widget, window) a viewer saw, by the UI's merge rule: higher
/// revision wins; at equal revision final beats provisional, then the newer `updated_at`.
#[derive(Default)]
struct Screen {
    windows: BTreeMap<(String, i64), Value>,
    updates: usize,
    status_ok: bool,
}

impl Screen {
    fn apply(&mut self, widget: &str, window: &Value) -> anyhow::Result<()> {
        let start = parse_rfc3339(window["window_start"].as_str().unwrap_or_default())
            .ok_or_else(|| anyhow!("window without window_start: {window}"))?;
        let key = (widget.to_owned(), start);
        let rank = |w: &Value| {
            (
                w["revision"].as_u64().unwrap_or(0),
                w["final"].as_bool().unwrap_or(false),
                w["updated_at"].as_str().unwrap_or("").to_owned(),
            )
        };
        let newer = match self.windows.get(&key) {
            Some(old) => rank(window) >= rank(old),
            None => true,
        };
        if newer {
            self.windows.insert(key, window.clone());
        }
        Ok(())
    }

    /// Reads `sse` until `done(self)` or the deadline.
    async fn follow(
        &mut self,
        sse: &mut Sse,
        what: &str,
        done: impl Fn(&Screen) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done(self) {
            let Some(event) = sse.next(deadline).await? else {
                bail!(
                    "{what}: not seen within {PATIENCE:?} ({} updates read); screen: {:#?}",
                    self.updates,
                    self.windows
                );
            };
            match event.event.as_str() {
                "update" => {
                    self.updates += 1;
                    let widget = event.data["widget_id"].as_str().unwrap_or_default();
                    self.apply(widget, &event.data)?;
                }
                "status" => self.status_ok |= event.data["state"] == "ok",
                "snapshot" => bail!("unexpected snapshot mid-stream: {}", event.data),
                "reload" => bail!("unexpected reload: {}", event.data),
                _ => {}
            }
        }
        Ok(())
    }

    fn window(&self, widget: &Widget, start: i64) -> Option<&Value> {
        self.windows.get(&(widget.id.clone(), start))
    }
}

/// Checks one served window (`value`, `revision`, `final`, `late_count`) against `want`.
fn check_window(
    what: &str,
    stat: &str,
    got: &Value,
    want: &Acc,
    ended: bool,
) -> anyhow::Result<()> {
    let value = got["value"]
        .as_f64()
        .ok_or_else(|| anyhow!("{what}: no value in {got}"))?;
    let expected = want.stat(stat);
    ensure!(
        stat_matches(stat, value, expected),
        "{what}: {stat} is {value}, expected {expected}: {got}"
    );
    ensure!(
        got["revision"] == json!(want.revision) && got["late_count"] == json!(want.late),
        "{what}: revision/late_count {}/{}, expected {}/{}: {got}",
        got["revision"],
        got["late_count"],
        want.revision,
        want.late
    );
    ensure!(
        got["final"] == json!(ended),
        "{what}: final is {}, expected {ended}: {got}",
        got["final"]
    );
    Ok(())
}

/// Every row of the test metrics in the table equals the model, and there is no other.
fn check_table(stack: &Stack, model: &Model) -> anyhow::Result<()> {
    let answer = stack.db.exec(&format!(
        "select * from {} where metric in ('checkout', 'api_latency')",
        stack.table
    ))?;
    let columns: Vec<String> = answer["columns"]
        .as_array()
        .ok_or_else(|| anyhow!("no columns: {answer}"))?
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    let col = |row: &Value, name: &str| -> Value {
        columns
            .iter()
            .position(|c| c == name)
            .map(|i| row[i].clone())
            .unwrap_or(Value::Null)
    };
    let mut seen = BTreeSet::new();
    for row in answer["dataset"].as_array().into_iter().flatten() {
        let tenant = col(row, "tenant").as_str().unwrap_or_default().to_owned();
        let metric = col(row, "metric").as_str().unwrap_or_default().to_owned();
        let series: BTreeMap<String, Option<String>> =
            serde_json::from_str(col(row, "series").as_str().unwrap_or("?"))
                .with_context(|| format!("series of {row}"))?;
        let series: Dims = series
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), v.ok_or_else(|| anyhow!("null {k} in {row}"))?)))
            .collect::<anyhow::Result<_>>()?;
        let ts = parse_rfc3339(col(row, "ts").as_str().unwrap_or_default())
            .ok_or_else(|| anyhow!("ts of {row}"))?;
        let key = (tenant, metric, series, ts);
        let want = model
            .windows
            .get(&key)
            .ok_or_else(|| anyhow!("unexpected row {key:?}: {row}"))?;
        ensure!(seen.insert(key.clone()), "row {key:?} twice: {row}");
        let what = format!("row {key:?}");
        let num = |name: &str| col(row, name).as_f64();
        ensure!(
            num("count") == Some(want.count())
                && num("sum") == Some(want.sum())
                && num("min") == Some(want.min())
                && num("max") == Some(want.max()),
            "{what}: count/sum/min/max {:?}/{:?}/{:?}/{:?}, expected {}/{}/{}/{}",
            num("count"),
            num("sum"),
            num("min"),
            num("max"),
            want.count(),
            want.sum(),
            want.min(),
            want.max()
        );
        let avg = num("avg").ok_or_else(|| anyhow!("{what}: no avg"))?;
        ensure!(
            stat_matches("avg", avg, want.stat("avg")),
            "{what}: avg {avg}"
        );
        for p in ["p50", "p90", "p95", "p99"] {
            let v = num(p).ok_or_else(|| anyhow!("{what}: no {p}"))?;
            ensure!(
                v >= want.min() && v <= want.max(),
                "{what}: {p} {v} outside [{}, {}]",
                want.min(),
                want.max()
            );
        }
        match key.1.as_str() {
            "checkout" => {
                let uniq = num("uniq").ok_or_else(|| anyhow!("{what}: no uniq"))?;
                let exact = want.users.len() as f64;
                ensure!(
                    stat_matches("unique", uniq, exact),
                    "{what}: uniq {uniq}, expected {exact}"
                );
            }
            _ => ensure!(
                col(row, "uniq").is_null(),
                "{what}: uniq without a unique property"
            ),
        }
        let dim_set = key.2.keys().cloned().collect::<Vec<_>>().join(",");
        let got_set = col(row, "dim_set");
        ensure!(
            got_set.as_str().unwrap_or("") == dim_set,
            "{what}: dim_set {got_set}, expected {dim_set:?}"
        );
        ensure!(
            col(row, "revision") == json!(want.revision)
                && col(row, "late_count") == json!(want.late)
                && col(row, "final") == json!(true),
            "{what}: revision/late_count/final {}/{}/{}, expected {}/{}/true",
            col(row, "revision"),
            col(row, "late_count"),
            col(row, "final"),
            want.revision,
            want.late
        );
    }
    let missing: Vec<_> = model
        .windows
        .keys()
        .filter(|key| !seen.contains(*key))
        .collect();
    ensure!(missing.is_empty(), "rows missing from QuestDB: {missing:?}");
    Ok(())
}

/// Waits until the table holds `rows` final rows of the test metrics whose revisions add up
/// to `revisions`, i.e. everything (corrections included) is written.
async fn wait_table(stack: &Stack, rows: usize, revisions: u32) -> anyhow::Result<()> {
    let sql = format!(
        "select count(), sum(revision) from {} where metric in ('checkout', 'api_latency') and final = true",
        stack.table
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        stack.db.wait_wal_applied(&stack.table, PATIENCE)?;
        let answer = stack.db.exec(&sql)?;
        let row = &answer["dataset"][0];
        if row[0] == json!(rows) && row[1].as_u64().unwrap_or(0) == u64::from(revisions) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("table: {row} final rows/revisions, expected [{rows}, {revisions}]");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every REST answer for the test metrics equals the model.
async fn check_rest(client: &Client, model: &Model, range: (i64, i64)) -> anyhow::Result<usize> {
    let mut calls = 0;
    for tenant in TENANTS {
        for metric in METRICS {
            // Exact sets: the full set, the rollups, the total.
            let mut filters: Vec<(Dims, Vec<&str>)> = Vec::new();
            for set in metric.dim_sets() {
                for series in model.series_of(tenant, metric, &set) {
                    filters.push((series, metric.stats()));
                }
            }
            // A filter on a dimension subset that is not kept: combined from full-set rows,
            // for the stats that combine.
            if metric.name == "checkout" {
                for plan in PLANS {
                    filters.push((
                        dims(&[("plan", plan)]),
                        vec!["count", "sum", "min", "max", "avg"],
                    ));
                }
            }
            for (filter, stats) in filters {
                let starts = model.window_starts(tenant, metric, WINDOW_MS);
                for stat in stats {
                    let (status, body) = client
                        .metric(tenant, metric.name, &filter, stat, None, range)
                        .await?;
                    calls += 1;
                    let what = format!("{tenant} {} {filter:?} {stat}", metric.name);
                    ensure!(status == 200, "{what}: {status} {body}");
                    let windows = body["windows"].as_array().cloned().unwrap_or_default();
                    let got: BTreeSet<i64> = windows
                        .iter()
                        .filter_map(|w| parse_rfc3339(w["window_start"].as_str()?))
                        .collect();
                    let want_starts: BTreeSet<i64> = starts
                        .iter()
                        .copied()
                        .filter(|s| {
                            model
                                .derived(tenant, metric, &filter, *s, WINDOW_MS)
                                .is_some()
                        })
                        .collect();
                    ensure!(
                        got == want_starts,
                        "{what}: windows {got:?}, expected {want_starts:?}: {body}"
                    );
                    for window in &windows {
                        let start = parse_rfc3339(window["window_start"].as_str().unwrap_or(""))
                            .unwrap_or_default();
                        let want = model
                            .derived(tenant, metric, &filter, start, WINDOW_MS)
                            .expect("expected window");
                        check_window(&format!("{what} @{start}"), stat, window, &want, true)?;
                    }
                }
            }
        }
        // Not derivable: distinct users for a plan (only plan x region and region are kept).
        let (status, body) = client
            .metric(
                tenant,
                "checkout",
                &dims(&[("plan", "pro")]),
                "unique",
                None,
                range,
            )
            .await?;
        calls += 1;
        ensure!(
            status == 400,
            "unique by plan must be refused, got {status} {body}"
        );
        // A coarser window combines the metric's windows. It is final once it is known to be
        // closed: a final row reaches its end, or the aggregators report windows closed
        // through its end (allowed lateness after it), so an answer may say `final: false`
        // for a while after the end; the values are exact in every answer.
        let coarse = 2 * WINDOW_MS;
        for stat in ["count", "sum", "min", "max", "avg"] {
            let what = format!("{tenant} checkout total {stat} per 4s");
            let deadline = Instant::now() + PATIENCE;
            loop {
                let (status, body) = client
                    .metric(tenant, "checkout", &Dims::new(), stat, Some("4s"), range)
                    .await?;
                calls += 1;
                ensure!(status == 200, "{what}: {status} {body}");
                let windows = body["windows"].as_array().cloned().unwrap_or_default();
                let want_starts = model.window_starts(tenant, &CHECKOUT, coarse);
                ensure!(windows.len() == want_starts.len(), "{what}: {body}");
                let mut all_final = true;
                for (window, start) in windows.iter().zip(&want_starts) {
                    ensure!(
                        window["window_start"] == json!(format_rfc3339(*start)),
                        "{what}: {window}"
                    );
                    let want = model
                        .derived(tenant, &CHECKOUT, &Dims::new(), *start, coarse)
                        .expect("data");
                    let is_final = window["final"] == json!(true);
                    ensure!(
                        !is_final || start + coarse <= now_millis(),
                        "{what}: final before its end: {window}"
                    );
                    all_final &= is_final;
                    check_window(&what, stat, window, &want, is_final)?;
                }
                if all_final {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "{what}: not final within {PATIENCE:?}: {body}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        // The built-in `events` metric: every accepted event, by type, by source and in total.
        let event_range = (range.0 - 60_000, range.1 + 60_000);
        let mut filters = vec![(Dims::new(), None, None)];
        for event_type in ["payment_completed", "api_request", "page_view"] {
            filters.push((dims(&[("event_type", event_type)]), Some(event_type), None));
        }
        for source in SOURCES {
            filters.push((dims(&[("source", source)]), None, Some(source)));
        }
        for (filter, event_type, source) in filters {
            let want: u64 = model
                .events
                .iter()
                .filter(|((t, e, s), _)| {
                    t == tenant
                        && event_type.is_none_or(|x| x == e.as_str())
                        && source.is_none_or(|x| x == s.as_str())
                })
                .map(|(_, n)| n)
                .sum();
            let (status, body) = client
                .metric(tenant, "events", &filter, "count", None, event_range)
                .await?;
            calls += 1;
            ensure!(status == 200, "{tenant} events {filter:?}: {status} {body}");
            let got: f64 = body["windows"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w["value"].as_f64())
                .sum();
            ensure!(
                got == want as f64,
                "{tenant} events {filter:?}: {got}, expected {want}: {body}"
            );
        }
    }
    Ok(calls)
}

/// Sleeps until the wall clock is `at` (Unix ms).
async fn sleep_until_ms(at: i64) {
    let left = at - now_millis();
    if left > 0 {
        tokio::time::sleep(Duration::from_millis(left as u64)).await;
    }
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let client = Client {
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()?,
        gateway: stack.gateway_url(),
        agent: stack.agent_url(),
    };
    let http = reqwest::Client::builder().no_proxy().build()?; // streams: no timeout

    // Metric definitions, through the gateway; the agent picks them up from the config bucket.
    for tenant in TENANTS {
        for metric in METRICS {
            let (status, body) = client
                .post("/v1/metric-definitions", &metric.definition(tenant))
                .await?;
            ensure!(status == 201, "define {}: {status} {body}", metric.name);
        }
    }
    let want_active = (1 + TENANTS.len() * METRICS.len()) as f64;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = client
            .http
            .get(format!("{}/metrics", client.agent))
            .send()
            .await?
            .text()
            .await?;
        let active = metric_sum(&text, "rtdash_agent_definitions_active");
        if active == want_active {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the agent has {active} metric definitions, expected {want_active}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A dashboard for acme, and a viewer on it.
    let mut widgets = vec![
        Widget {
            metric: &CHECKOUT,
            filter: Dims::new(),
            stat: "count",
            id: String::new(),
        },
        Widget {
            metric: &CHECKOUT,
            filter: dims(&[("region", "us")]),
            stat: "sum",
            id: String::new(),
        },
        Widget {
            metric: &CHECKOUT,
            filter: Dims::new(),
            stat: "unique",
            id: String::new(),
        },
        Widget {
            metric: &API_LATENCY,
            filter: dims(&[("service", "search")]),
            stat: "max",
            id: String::new(),
        },
        Widget {
            metric: &CHECKOUT,
            filter: dims(&[("plan", "pro")]),
            stat: "avg",
            id: String::new(),
        },
    ];
    let body = json!({
        "tenant_id": "acme",
        "name": "e2e",
        "widgets": widgets.iter().map(|w| json!({
            "metric_name": w.metric.name,
            "dimensions": w.filter,
            "stat": w.stat,
            "time_window": "last_15m",
            "viz_type": "line_chart",
        })).collect::<Vec<_>>(),
    });
    let (status, dashboard) = client.post("/v1/dashboards", &body).await?;
    ensure!(status == 201, "create dashboard: {status} {dashboard}");
    let dashboard_id = dashboard["dashboard_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for (widget, created) in widgets
        .iter_mut()
        .zip(dashboard["widgets"].as_array().into_iter().flatten())
    {
        widget.id = created["widget_id"].as_str().unwrap_or_default().to_owned();
    }
    let viewer = Client {
        http: http.clone(),
        gateway: client.gateway.clone(),
        agent: String::new(),
    };
    let mut sse = Sse::open(&viewer, "acme", &dashboard_id).await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut snapshots = BTreeMap::new();
    while snapshots.len() < widgets.len() {
        let event = sse
            .next(deadline)
            .await?
            .ok_or_else(|| anyhow!("snapshots: {} of {}", snapshots.len(), widgets.len()))?;
        if event.event == "snapshot" {
            snapshots.insert(
                event.data["widget_id"].as_str().unwrap_or("").to_owned(),
                event.data,
            );
        }
    }
    for widget in &widgets {
        let snapshot = &snapshots[&widget.id];
        ensure!(
            snapshot["error"].is_null() && snapshot["windows"] == json!([]),
            "first snapshot of {} {} must be empty: {snapshot}",
            widget.metric.name,
            widget.stat
        );
    }

    // Windows A and B: B begins now (give or take), A just ended.
    let mut now = now_millis();
    while !(150..700).contains(&now.rem_euclid(WINDOW_MS)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        now = now_millis();
    }
    let b = now - now.rem_euclid(WINDOW_MS);
    let a = b - WINDOW_MS;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut model = Model::default();
    let first = on_time_batch(&mut rng, a, b, (b, b + 150), 1);
    let invalid = json!({"tenant_id": "acme", "source": "web", "event_type": "page_view",
                         "properties": {"nested": {"no": 1}}, "occurred_at": format_rfc3339(b)});
    client.send_ok(&first, &[invalid]).await?;
    model.record(&first, false);
    // A second batch a second later: A ended 1.2 s ago, within the allowed lateness.
    sleep_until_ms(b + 1_200).await;
    let second = on_time_batch(&mut rng, a, b, (b + 150, b + 1_200), 2);
    client.send_ok(&second, &[]).await?;
    let sent = now_millis();
    ensure!(
        sent < a + WINDOW_MS + LATENESS_MS - 1_500,
        "the machine is too slow for this test's timings: the second batch was only accepted \
         {} ms after window A ended (A closes {LATENESS_MS} ms after its end)",
        sent - a - WINDOW_MS
    );
    model.record(&second, false);

    // (b) The viewer sees every window of every widget reach its exact final value.
    let mut screen = Screen::default();
    let expect_final = |screen: &Screen, revision_of: &dyn Fn(&Widget, i64) -> u64| {
        widgets.iter().all(|w| {
            [a, b].iter().all(|start| {
                screen.window(w, *start).is_some_and(|v| {
                    v["final"] == json!(true) && v["revision"] == json!(revision_of(w, *start))
                })
            })
        })
    };
    screen
        .follow(&mut sse, "final windows on the stream", |s| {
            expect_final(s, &|_, _| 0)
        })
        .await?;
    for widget in &widgets {
        for start in [a, b] {
            let want = model
                .derived("acme", widget.metric, &widget.filter, start, WINDOW_MS)
                .expect("every widget has data in A and B");
            let got = screen.window(widget, start).expect("seen");
            let what = format!(
                "stream {} {:?} {} @{start}",
                widget.metric.name, widget.filter, widget.stat
            );
            check_window(&what, widget.stat, got, &want, true)?;
        }
    }
    let updates_on_time = screen.updates;

    // (a) QuestDB and the REST API hold exactly the model.
    wait_table(stack, model.windows.len(), 0).await?;
    check_table(stack, &model)?;
    let range = (a - 2 * WINDOW_MS, b + 2 * WINDOW_MS);
    let calls = check_rest(&client, &model, range).await?;

    // (c) Late events, after their windows closed, within the correction horizon: acme's two
    // in A on one series (one request: one correction of two events), globex's one in B.
    let late = vec![
        Event {
            tenant: "acme",
            source: "web",
            event_type: "payment_completed",
            properties: props(&[
                ("region", json!("us")),
                ("plan", json!("pro")),
                ("amount", json!(1234.5)),
                ("user_id", json!("late-1")),
            ]),
            occurred_at: a + 700,
        },
        Event {
            tenant: "acme",
            source: "web",
            event_type: "payment_completed",
            properties: props(&[
                ("region", json!("us")),
                ("plan", json!("pro")),
                ("amount", json!(0.5)),
                ("user_id", json!("late-2")),
            ]),
            occurred_at: a + 1_900,
        },
        Event {
            tenant: "globex",
            source: "api-gw",
            event_type: "payment_completed",
            properties: props(&[
                ("region", json!("eu")),
                ("plan", json!("free")),
                ("amount", json!(99999.75)),
                ("user_id", json!("late-3")),
            ]),
            occurred_at: b + 10,
        },
    ];
    ensure!(
        now_millis() < a + HORIZON_MS - 10_000,
        "too slow: window A is about to leave the correction horizon"
    );
    client.send_ok(&late, &[]).await?;
    model.record(&late, true);
    let revisions: u32 = model.windows.values().map(|acc| acc.revision).sum();
    ensure!(
        revisions == 6,
        "the model has {revisions} corrections, expected 3 series x 2"
    );

    // On the open stream: the corrected windows (revision 1) of the widgets the events touch.
    let revision_of = |w: &Widget, start: i64| -> u64 {
        model
            .derived("acme", w.metric, &w.filter, start, WINDOW_MS)
            .map_or(0, |acc| u64::from(acc.revision))
    };
    screen
        .follow(&mut sse, "corrections on the stream", |s| {
            expect_final(s, &revision_of)
        })
        .await?;
    let mut corrected = 0;
    for widget in &widgets {
        for start in [a, b] {
            let want = model
                .derived("acme", widget.metric, &widget.filter, start, WINDOW_MS)
                .expect("data");
            corrected += usize::from(want.revision > 0);
            let got = screen.window(widget, start).expect("seen");
            let what = format!(
                "stream {} {:?} {} @{start} (corrected)",
                widget.metric.name, widget.filter, widget.stat
            );
            check_window(&what, widget.stat, got, &want, true)?;
        }
    }
    ensure!(
        corrected == 4,
        "4 widget windows should be corrected, {corrected} were"
    );
    ensure!(
        screen.status_ok,
        "no `status` event with state `ok` on the stream"
    );
    drop(sse);

    wait_table(stack, model.windows.len(), revisions).await?;
    check_table(stack, &model)?;
    let calls = calls + check_rest(&client, &model, range).await?;

    // A new viewer's snapshots show the final, corrected windows.
    let mut sse = Sse::open(&viewer, "acme", &dashboard_id).await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seen = 0;
    while seen < widgets.len() {
        let event = sse
            .next(deadline)
            .await?
            .ok_or_else(|| anyhow!("second viewer's snapshots"))?;
        if event.event != "snapshot" {
            continue;
        }
        seen += 1;
        let widget = widgets
            .iter()
            .find(|w| event.data["widget_id"] == json!(w.id))
            .ok_or_else(|| anyhow!("snapshot of an unknown widget: {}", event.data))?;
        let windows = event.data["windows"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let what = format!(
            "snapshot {} {:?} {}",
            widget.metric.name, widget.filter, widget.stat
        );
        ensure!(
            windows.len() == 2,
            "{what}: {} windows: {}",
            windows.len(),
            event.data
        );
        for (window, start) in windows.iter().zip([a, b]) {
            ensure!(
                window["window_start"] == json!(format_rfc3339(start)),
                "{what}: {window}"
            );
            let want = model
                .derived("acme", widget.metric, &widget.filter, start, WINDOW_MS)
                .expect("data");
            check_window(
                &format!("{what} @{start}"),
                widget.stat,
                window,
                &want,
                true,
            )?;
        }
    }
    eprintln!(
        "pipeline_e2e: {} series windows exact in QuestDB and over {calls} REST queries; \
         {updates_on_time} + {} stream updates; corrections on {corrected} widget windows",
        model.windows.len(),
        screen.updates - updates_on_time
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_questdb_rest_and_live_viewers_exactly() {
    let started = Instant::now();
    let options = StackOptions::default()
        .aggregator("WINDOWS__ALLOWED_LATENESS_MS", LATENESS_MS)
        .aggregator("WINDOWS__CORRECTION_HORIZON_MS", HORIZON_MS);
    let mut stack = tokio::task::spawn_blocking(move || Stack::start(options))
        .await
        .expect("start task")
        .unwrap_or_else(|err| panic!("stack did not start: {err:#}"));
    eprintln!(
        "pipeline_e2e: stack up in {:?} (logs in {})",
        started.elapsed(),
        stack.dir().display()
    );
    if let Err(err) = scenario(&stack).await {
        panic!("{err:#}\n\nservice logs:\n{}", stack.logs(40));
    }
    tokio::task::spawn_blocking(move || stack.stop())
        .await
        .expect("stop task")
        .unwrap_or_else(|err| panic!("graceful stop: {err:#}"));
    eprintln!("pipeline_e2e: passed in {:?}", started.elapsed());
}
