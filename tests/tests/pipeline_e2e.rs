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
//! The scenario runs as named phases ([`Scenario`]'s methods), each saying what it proves.
//!
//! Needs the service binaries: `cargo build --workspace --bins` first (`./deploy/test.sh`
//! does). About 30 s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use rtdash_tests::blocking;
use rtdash_tests::client::{http_client, Api};
use rtdash_tests::events::event_json;
use rtdash_tests::model::{approx_eq, unique_within, Acc};
use rtdash_tests::rng::TestRng;
use rtdash_tests::sse::{stream_url, Event as SseEvent, Sse};
use rtdash_tests::stack::{Stack, StackOptions};
use rtdash_tests::table::stored_rows;
use rtdash_tests::time::{format_rfc3339, now_millis, parse_rfc3339, sleep_until_ms};
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
/// Whether `got` is what `stat` should be for `want`: exact for count, sum, min and max (the
/// test's values add up exactly in f64), 1e-9 relative for avg, the HyperLogLog's error for
/// unique (p14, sparse at these cardinalities: 2 %, at least 1).
fn stat_matches(stat: &str, got: f64, want: f64) -> bool {
    match stat {
        "avg" => approx_eq(got, want),
        "unique" => unique_within(got, want, 0.02, 1.0),
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
        event_json(
            self.tenant,
            self.source,
            self.event_type,
            Value::Object(self.properties.clone()),
            self.occurred_at,
        )
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
                    let unique = metric
                        .unique
                        .map(|unique| event.properties[unique].as_str().expect("user").to_owned());
                    acc.add(value, unique);
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

fn props(pairs: &[(&str, Value)]) -> serde_json::Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// One request's worth of on-time events for every tenant: every (region, plan) and every
/// service in both windows, values that add up exactly in f64 (multiples of 0.25), users from
/// a small population. `a` and `b` are the windows' starts; B events fall in `b_range`.
fn on_time_batch(rng: &mut TestRng, a: i64, b: i64, b_range: (i64, i64), seed: u64) -> Vec<Event> {
    let mut events = Vec::new();
    for (t, tenant) in TENANTS.iter().enumerate() {
        for window in [a, b] {
            let at = |rng: &mut TestRng| {
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

/// Posts `events` (plus `rejected` raw items) to the agent: every event must be accepted and
/// every raw item rejected.
async fn send_events(agent: &Api, events: &[Event], rejected: &[Value]) -> anyhow::Result<()> {
    let mut items: Vec<Value> = events.iter().map(Event::json).collect();
    items.extend_from_slice(rejected);
    let (status, body) = agent.post_json("/v1/events", &json!(items)).await?;
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

/// `GET /v1/metrics/{name}` of `tenant`: `stat` of `filter` over `range`, in `window`s (the
/// metric's own when `None`).
async fn metric_query(
    gateway: &Api,
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
    gateway
        .get_query(&format!("/v1/metrics/{name}"), &query)
        .await
}

/// The next event of `sse`, `None` at `deadline` or at the end of the stream; its data must
/// be JSON.
async fn next_event(
    sse: &mut Sse,
    deadline: tokio::time::Instant,
) -> anyhow::Result<Option<SseEvent>> {
    let Some(event) = sse.next_until(Some(deadline)).await else {
        return Ok(None);
    };
    ensure!(
        event.data_is_json,
        "{} data is not JSON: {}",
        event.event,
        event.data
    );
    Ok(Some(event))
}

/// A dashboard widget of the test and what it shows.
struct Widget {
    metric: &'static Metric,
    filter: Dims,
    stat: &'static str,
    id: String,
}

impl Widget {
    /// A widget not created yet (no id).
    fn new(metric: &'static Metric, filter: Dims, stat: &'static str) -> Self {
        Self {
            metric,
            filter,
            stat,
            id: String::new(),
        }
    }
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
            let Some(event) = next_event(sse, deadline).await? else {
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
    let rows = stored_rows(
        stack.db,
        &stack.table,
        "metric in ('checkout', 'api_latency')",
    )?;
    let mut seen = BTreeSet::new();
    for row in &rows {
        let series: BTreeMap<String, Option<String>> =
            serde_json::from_str(&row.series).with_context(|| format!("series of {row:?}"))?;
        let series: Dims = series
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), v.ok_or_else(|| anyhow!("null {k} in {row:?}"))?)))
            .collect::<anyhow::Result<_>>()?;
        let key = (row.tenant.clone(), row.metric.clone(), series, row.start);
        let want = model
            .windows
            .get(&key)
            .ok_or_else(|| anyhow!("unexpected row {key:?}: {row:?}"))?;
        ensure!(seen.insert(key.clone()), "row {key:?} twice: {row:?}");
        let what = format!("row {key:?}");
        ensure!(
            row.count == want.count()
                && row.sum == Some(want.sum())
                && row.min == want.min()
                && row.max == want.max(),
            "{what}: count/sum/min/max {}/{:?}/{:?}/{:?}, expected {}/{}/{:?}/{:?}",
            row.count,
            row.sum,
            row.min,
            row.max,
            want.count(),
            want.sum(),
            want.min(),
            want.max()
        );
        let avg = row.avg.ok_or_else(|| anyhow!("{what}: no avg"))?;
        ensure!(
            stat_matches("avg", avg, want.stat("avg")),
            "{what}: avg {avg}"
        );
        for (p, v) in [
            ("p50", row.p50),
            ("p90", row.p90),
            ("p95", row.p95),
            ("p99", row.p99),
        ] {
            let v = v.ok_or_else(|| anyhow!("{what}: no {p}"))?;
            ensure!(
                v >= want.stat("min") && v <= want.stat("max"),
                "{what}: {p} {v} outside [{}, {}]",
                want.stat("min"),
                want.stat("max")
            );
        }
        match key.1.as_str() {
            "checkout" => {
                let uniq = row.uniq.ok_or_else(|| anyhow!("{what}: no uniq"))? as f64;
                let exact = want.uniques.len() as f64;
                ensure!(
                    stat_matches("unique", uniq, exact),
                    "{what}: uniq {uniq}, expected {exact}"
                );
            }
            _ => ensure!(row.uniq.is_none(), "{what}: uniq without a unique property"),
        }
        let dim_set = key.2.keys().cloned().collect::<Vec<_>>().join(",");
        ensure!(
            row.dim_set.as_deref().unwrap_or("") == dim_set,
            "{what}: dim_set {:?}, expected {dim_set:?}",
            row.dim_set
        );
        ensure!(
            row.revision == i64::from(want.revision)
                && row.late_count == want.late as i64
                && row.is_final,
            "{what}: revision/late_count/final {}/{}/{}, expected {}/{}/true",
            row.revision,
            row.late_count,
            row.is_final,
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

/// Every REST answer for the test metrics equals the model; returns the queries made.
async fn check_rest(gateway: &Api, model: &Model, range: (i64, i64)) -> anyhow::Result<usize> {
    let mut calls = 0;
    for tenant in TENANTS {
        calls += rest_serves_every_kept_and_combined_set(gateway, model, tenant, range).await?;
        calls += rest_merges_state_and_refuses_what_it_cannot_derive(gateway, model, tenant, range)
            .await?;
        calls += rest_combines_windows_into_a_coarser_one(gateway, model, tenant, range).await?;
        calls +=
            rest_counts_every_event_in_the_builtin_metric(gateway, model, tenant, range).await?;
    }
    Ok(calls)
}

/// Every kept dimension set (full set, rollups, total) of every metric, and filters on a
/// subset that is not kept (combined from full-set rows, for the stats that combine): the
/// windows with data, each exact.
async fn rest_serves_every_kept_and_combined_set(
    gateway: &Api,
    model: &Model,
    tenant: &str,
    range: (i64, i64),
) -> anyhow::Result<usize> {
    let mut calls = 0;
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
                let (status, body) =
                    metric_query(gateway, tenant, metric.name, &filter, stat, None, range).await?;
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
    Ok(calls)
}

/// Distinct users for a plan (kept only as plan x region): derived by merging the stored
/// sketch states of every region's series, within the HyperLogLog bound of the exact answer;
/// a dimension the metric does not keep is refused with `400` naming it.
async fn rest_merges_state_and_refuses_what_it_cannot_derive(
    gateway: &Api,
    model: &Model,
    tenant: &str,
    range: (i64, i64),
) -> anyhow::Result<usize> {
    let filter = dims(&[("plan", "pro")]);
    let (status, body) =
        metric_query(gateway, tenant, "checkout", &filter, "unique", None, range).await?;
    ensure!(status == 200, "unique by plan: {status} {body}");
    let windows = body["windows"].as_array().cloned().unwrap_or_default();
    for window in &windows {
        let start =
            parse_rfc3339(window["window_start"].as_str().unwrap_or("")).unwrap_or_default();
        let value = window["value"].as_f64().unwrap_or(f64::NAN);
        let want = model
            .derived(tenant, &CHECKOUT, &filter, start, WINDOW_MS)
            .map(|acc| acc.stat("unique"))
            .unwrap_or(0.0);
        ensure!(
            stat_matches("unique", value, want),
            "unique by plan @{start}: {value}, expected {want}: {body}"
        );
    }
    let unkept = dims(&[("country", "fr")]);
    let (status, body) =
        metric_query(gateway, tenant, "checkout", &unkept, "unique", None, range).await?;
    ensure!(
        status == 400 && body.to_string().contains("country"),
        "a dimension the metric does not keep must be refused naming it, got {status} {body}"
    );
    Ok(2)
}

/// A coarser window combines the metric's windows. It is final once it is known to be
/// closed: a final row reaches its end, or the aggregators report windows closed through its
/// end (allowed lateness after it), so an answer may say `final: false` for a while after the
/// end; the values are exact in every answer.
async fn rest_combines_windows_into_a_coarser_one(
    gateway: &Api,
    model: &Model,
    tenant: &str,
    range: (i64, i64),
) -> anyhow::Result<usize> {
    let mut calls = 0;
    let coarse = 2 * WINDOW_MS;
    for stat in ["count", "sum", "min", "max", "avg"] {
        let what = format!("{tenant} checkout total {stat} per 4s");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, body) = metric_query(
                gateway,
                tenant,
                "checkout",
                &Dims::new(),
                stat,
                Some("4s"),
                range,
            )
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
    Ok(calls)
}

/// The built-in `events` metric: every accepted event, by type, by source and in total.
async fn rest_counts_every_event_in_the_builtin_metric(
    gateway: &Api,
    model: &Model,
    tenant: &str,
    range: (i64, i64),
) -> anyhow::Result<usize> {
    let mut calls = 0;
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
        let (status, body) = metric_query(
            gateway,
            tenant,
            "events",
            &filter,
            "count",
            None,
            event_range,
        )
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
    Ok(calls)
}

/// The scenario's state from phase to phase.
struct Scenario<'a> {
    stack: &'a Stack,
    /// The gateway's REST API (30 s request timeout).
    gateway: Api,
    /// The edge agent's ingest (30 s request timeout).
    agent: Api,
    /// For the dashboard streams: no request timeout.
    streams: reqwest::Client,
    rng: TestRng,
    /// What the pipeline must make of every event accepted so far.
    model: Model,
    /// acme's dashboard: its widgets (with the ids the gateway gave them) and id.
    widgets: Vec<Widget>,
    dashboard_id: String,
    /// Starts of windows A (ended as the events are sent) and B (begins as they are sent).
    a: i64,
    b: i64,
    /// What the first viewer shows.
    screen: Screen,
    /// Updates the first viewer read up to the corrections.
    updates_on_time: usize,
    /// REST queries checked.
    rest_calls: usize,
}

impl<'a> Scenario<'a> {
    fn new(stack: &'a Stack) -> Self {
        let client = http_client(Some(Duration::from_secs(30)));
        Self {
            stack,
            gateway: Api::new(client.clone(), stack.gateway_url()),
            agent: Api::new(client, stack.agent_url()),
            streams: http_client(None),
            rng: TestRng::seeded("pipeline_e2e", 0x9e37_79b9_7f4a_7c15),
            model: Model::default(),
            widgets: Vec::new(),
            dashboard_id: String::new(),
            a: 0,
            b: 0,
            screen: Screen::default(),
            updates_on_time: 0,
            rest_calls: 0,
        }
    }

    /// The phases in order.
    async fn run(&mut self) -> anyhow::Result<()> {
        self.definitions_made_through_the_gateway_reach_the_agent()
            .await?;
        let mut sse = self.a_new_dashboards_viewer_gets_empty_snapshots().await?;
        self.on_time_events_are_accepted_and_invalid_ones_rejected()
            .await?;
        // (b)
        self.the_viewer_sees_every_window_reach_its_exact_final_value(&mut sse)
            .await?;
        // (a)
        self.questdb_and_rest_hold_exactly_the_model().await?;
        // (c)
        self.late_events_within_the_horizon_are_accepted().await?;
        let corrected = self
            .the_viewer_sees_the_corrections_of_the_windows_they_touch(&mut sse)
            .await?;
        drop(sse);
        self.questdb_and_rest_hold_exactly_the_model().await?;
        self.a_new_viewer_gets_the_final_corrected_snapshots()
            .await?;
        eprintln!(
            "pipeline_e2e: {} series windows exact in QuestDB and over {} REST queries; \
             {} + {} stream updates; corrections on {corrected} widget windows",
            self.model.windows.len(),
            self.rest_calls,
            self.updates_on_time,
            self.screen.updates - self.updates_on_time
        );
        Ok(())
    }

    /// Metric definitions, through the gateway; the agent picks them up from the config
    /// bucket: its `rtdash_agent_definitions_active` counts them and the built-in one.
    async fn definitions_made_through_the_gateway_reach_the_agent(&self) -> anyhow::Result<()> {
        for tenant in TENANTS {
            for metric in METRICS {
                let (status, body) = self
                    .gateway
                    .post_json("/v1/metric-definitions", &metric.definition(tenant))
                    .await?;
                ensure!(status == 201, "define {}: {status} {body}", metric.name);
            }
        }
        let want_active = (1 + TENANTS.len() * METRICS.len()) as f64;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let active = self.agent.metric("rtdash_agent_definitions_active").await?;
            if active == want_active {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the agent has {active} metric definitions, expected {want_active}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A dashboard for acme, created through the API, and a viewer on it: one empty snapshot
    /// per widget, without error.
    async fn a_new_dashboards_viewer_gets_empty_snapshots(&mut self) -> anyhow::Result<Sse> {
        let mut widgets = vec![
            Widget::new(&CHECKOUT, Dims::new(), "count"),
            Widget::new(&CHECKOUT, dims(&[("region", "us")]), "sum"),
            Widget::new(&CHECKOUT, Dims::new(), "unique"),
            Widget::new(&API_LATENCY, dims(&[("service", "search")]), "max"),
            Widget::new(&CHECKOUT, dims(&[("plan", "pro")]), "avg"),
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
        let (status, dashboard) = self.gateway.post_json("/v1/dashboards", &body).await?;
        ensure!(status == 201, "create dashboard: {status} {dashboard}");
        self.dashboard_id = dashboard["dashboard_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for (widget, created) in widgets
            .iter_mut()
            .zip(dashboard["widgets"].as_array().into_iter().flatten())
        {
            widget.id = created["widget_id"].as_str().unwrap_or_default().to_owned();
        }
        self.widgets = widgets;
        let mut sse = self.open_viewer().await?;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut snapshots = BTreeMap::new();
        while snapshots.len() < self.widgets.len() {
            let event = next_event(&mut sse, deadline).await?.ok_or_else(|| {
                anyhow!("snapshots: {} of {}", snapshots.len(), self.widgets.len())
            })?;
            if event.event == "snapshot" {
                snapshots.insert(
                    event.data["widget_id"].as_str().unwrap_or("").to_owned(),
                    event.data,
                );
            }
        }
        for widget in &self.widgets {
            let snapshot = &snapshots[&widget.id];
            ensure!(
                snapshot["error"].is_null() && snapshot["windows"] == json!([]),
                "first snapshot of {} {} must be empty: {snapshot}",
                widget.metric.name,
                widget.stat
            );
        }
        Ok(sse)
    }

    /// A viewer of acme's dashboard.
    async fn open_viewer(&self) -> anyhow::Result<Sse> {
        let url = stream_url(&self.gateway.base, "acme", &self.dashboard_id);
        Sse::open(&self.streams, &url, None).await
    }

    /// Windows A and B: B begins now (give or take), A just ended. A first batch as B begins
    /// (A's events already after A's end: late, but within the allowed lateness) with one
    /// invalid item (rejected), a second one a second later; both within the allowed
    /// lateness of A, or the machine is too slow for the test.
    async fn on_time_events_are_accepted_and_invalid_ones_rejected(
        &mut self,
    ) -> anyhow::Result<()> {
        let mut now = now_millis();
        while !(150..700).contains(&now.rem_euclid(WINDOW_MS)) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            now = now_millis();
        }
        let b = now - now.rem_euclid(WINDOW_MS);
        let a = b - WINDOW_MS;
        (self.a, self.b) = (a, b);
        let first = on_time_batch(&mut self.rng, a, b, (b, b + 150), 1);
        let invalid = json!({"tenant_id": "acme", "source": "web", "event_type": "page_view",
                             "properties": {"nested": {"no": 1}}, "occurred_at": format_rfc3339(b)});
        send_events(&self.agent, &first, &[invalid]).await?;
        self.model.record(&first, false);
        // A second batch a second later: A ended 1.2 s ago, within the allowed lateness.
        sleep_until_ms(b + 1_200).await;
        let second = on_time_batch(&mut self.rng, a, b, (b + 150, b + 1_200), 2);
        send_events(&self.agent, &second, &[]).await?;
        let sent = now_millis();
        ensure!(
            sent < a + WINDOW_MS + LATENESS_MS - 1_500,
            "the machine is too slow for this test's timings: the second batch was only accepted \
             {} ms after window A ended (A closes {LATENESS_MS} ms after its end)",
            sent - a - WINDOW_MS
        );
        self.model.record(&second, false);
        Ok(())
    }

    /// (b) The viewer sees every window of every widget reach its exact final value.
    async fn the_viewer_sees_every_window_reach_its_exact_final_value(
        &mut self,
        sse: &mut Sse,
    ) -> anyhow::Result<()> {
        let (widgets, a, b) = (&self.widgets, self.a, self.b);
        self.screen
            .follow(sse, "final windows on the stream", |s| {
                all_final(s, widgets, a, b, |_, _| 0)
            })
            .await?;
        for widget in &self.widgets {
            for start in [self.a, self.b] {
                let want = self
                    .model
                    .derived("acme", widget.metric, &widget.filter, start, WINDOW_MS)
                    .expect("every widget has data in A and B");
                let got = self.screen.window(widget, start).expect("seen");
                let what = format!(
                    "stream {} {:?} {} @{start}",
                    widget.metric.name, widget.filter, widget.stat
                );
                check_window(&what, widget.stat, got, &want, true)?;
            }
        }
        self.updates_on_time = self.screen.updates;
        Ok(())
    }

    /// (a) Once every window (and correction) is written, QuestDB holds exactly the model's
    /// rows and every REST answer equals the model.
    async fn questdb_and_rest_hold_exactly_the_model(&mut self) -> anyhow::Result<()> {
        let revisions: u32 = self.model.windows.values().map(|acc| acc.revision).sum();
        wait_table(self.stack, self.model.windows.len(), revisions).await?;
        check_table(self.stack, &self.model)?;
        let range = (self.a - 2 * WINDOW_MS, self.b + 2 * WINDOW_MS);
        self.rest_calls += check_rest(&self.gateway, &self.model, range).await?;
        Ok(())
    }

    /// (c) Late events, after their windows closed, within the correction horizon: acme's two
    /// in A on one series (one request: one correction of two events), globex's one in B.
    /// The model then holds 3 series x 2 corrections.
    async fn late_events_within_the_horizon_are_accepted(&mut self) -> anyhow::Result<()> {
        let payment = |tenant: &'static str,
                       source: &'static str,
                       region: &str,
                       plan: &str,
                       amount: f64,
                       user: &str,
                       occurred_at: i64| Event {
            tenant,
            source,
            event_type: "payment_completed",
            properties: props(&[
                ("region", json!(region)),
                ("plan", json!(plan)),
                ("amount", json!(amount)),
                ("user_id", json!(user)),
            ]),
            occurred_at,
        };
        let (a, b) = (self.a, self.b);
        let late = vec![
            payment("acme", "web", "us", "pro", 1234.5, "late-1", a + 700),
            payment("acme", "web", "us", "pro", 0.5, "late-2", a + 1_900),
            payment("globex", "api-gw", "eu", "free", 99999.75, "late-3", b + 10),
        ];
        ensure!(
            now_millis() < a + HORIZON_MS - 10_000,
            "too slow: window A is about to leave the correction horizon"
        );
        send_events(&self.agent, &late, &[]).await?;
        self.model.record(&late, true);
        let revisions: u32 = self.model.windows.values().map(|acc| acc.revision).sum();
        ensure!(
            revisions == 6,
            "the model has {revisions} corrections, expected 3 series x 2"
        );
        Ok(())
    }

    /// On the open stream: the corrected windows (revision 1, late count) of exactly the
    /// widgets the late events touch, final and exact; and the stream said `status` `ok`.
    /// Returns the corrected widget windows.
    async fn the_viewer_sees_the_corrections_of_the_windows_they_touch(
        &mut self,
        sse: &mut Sse,
    ) -> anyhow::Result<usize> {
        let (widgets, a, b, model) = (&self.widgets, self.a, self.b, &self.model);
        let revision_of = |w: &Widget, start: i64| -> u64 {
            model
                .derived("acme", w.metric, &w.filter, start, WINDOW_MS)
                .map_or(0, |acc| u64::from(acc.revision))
        };
        self.screen
            .follow(sse, "corrections on the stream", |s| {
                all_final(s, widgets, a, b, revision_of)
            })
            .await?;
        let mut corrected = 0;
        for widget in &self.widgets {
            for start in [self.a, self.b] {
                let want = self
                    .model
                    .derived("acme", widget.metric, &widget.filter, start, WINDOW_MS)
                    .expect("data");
                corrected += usize::from(want.revision > 0);
                let got = self.screen.window(widget, start).expect("seen");
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
            self.screen.status_ok,
            "no `status` event with state `ok` on the stream"
        );
        Ok(corrected)
    }

    /// A new viewer's snapshots show the final, corrected windows, A and B, exact.
    async fn a_new_viewer_gets_the_final_corrected_snapshots(&self) -> anyhow::Result<()> {
        let mut sse = self.open_viewer().await?;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut seen = 0;
        while seen < self.widgets.len() {
            let event = next_event(&mut sse, deadline)
                .await?
                .ok_or_else(|| anyhow!("second viewer's snapshots"))?;
            if event.event != "snapshot" {
                continue;
            }
            seen += 1;
            let widget = self
                .widgets
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
            for (window, start) in windows.iter().zip([self.a, self.b]) {
                ensure!(
                    window["window_start"] == json!(format_rfc3339(start)),
                    "{what}: {window}"
                );
                let want = self
                    .model
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
        Ok(())
    }
}

/// Whether `screen` shows every window (A and B) of every widget final, at the revision
/// `revision_of(widget, start)`.
fn all_final(
    screen: &Screen,
    widgets: &[Widget],
    a: i64,
    b: i64,
    revision_of: impl Fn(&Widget, i64) -> u64,
) -> bool {
    widgets.iter().all(|w| {
        [a, b].iter().all(|start| {
            screen.window(w, *start).is_some_and(|v| {
                v["final"] == json!(true) && v["revision"] == json!(revision_of(w, *start))
            })
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_questdb_rest_and_live_viewers_exactly() {
    let started = Instant::now();
    let options = StackOptions::default()
        .aggregator("WINDOWS__ALLOWED_LATENESS_MS", LATENESS_MS)
        .aggregator("WINDOWS__CORRECTION_HORIZON_MS", HORIZON_MS);
    let mut stack = blocking(move || Stack::start(options))
        .await
        .unwrap_or_else(|err| panic!("stack did not start: {err:#}"));
    eprintln!(
        "pipeline_e2e: stack up in {:?} (logs in {})",
        started.elapsed(),
        stack.dir().display()
    );
    if let Err(err) = Scenario::new(&stack).run().await {
        panic!("{err:#}\n\nservice logs:\n{}", stack.logs(40));
    }
    blocking(move || stack.stop())
        .await
        .unwrap_or_else(|err| panic!("graceful stop: {err:#}"));
    eprintln!("pipeline_e2e: passed in {:?}", started.elapsed());
}
