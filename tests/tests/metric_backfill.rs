//! A metric created with `"backfill": {"hours": 1}` is computed over the archived past, and
//! every window, base and tier, counts every event exactly once across the boundary between
//! backfilled and live windows.
//!
//! The real binaries on a real nats-server and QuestDB, with short windows (1 s), horizon
//! (6 s), lateness (1 s) and tiers (`10s`, `30s`). Orders are posted to the edge agent:
//! - before the metric exists: some for windows 30 and 50 minutes ago (archive only), and live
//!   ones for 3 s;
//! - then the metric is created through the gateway with a backfill, and orders keep coming
//!   live for 8 s, among them late ones for a window just before the creation (within the
//!   horizon: the live aggregator makes a row of them alone, as a correction, which the job's
//!   row must replace, not add to).
//!
//! Once the job is `done`, the stored windows of the metric must be exactly the model of every
//! order sent (count, sum, min, max, percentiles, final, late count 0): none missing, none
//! counted twice, whether rewritten by the job or written live; the `10s` and `30s` tier
//! windows alike. The gateway, read for the seconds before the creation once they are past the
//! horizon (its row cache takes them for immutable) but before the job rewrites them, must
//! afterwards serve the rewritten windows, not its cached chunk. Needs the service binaries (`cargo build --workspace --bins`). About 60 s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rtdash_tests::auth::{create_key, key_client};
use rtdash_tests::client::Api;
use rtdash_tests::events::event_json;
use rtdash_tests::model::{coarsen, mismatch, Expected};
use rtdash_tests::rng::TestRng;
use rtdash_tests::stack::{Stack, StackOptions};
use rtdash_tests::table::{fetch_rows_where, StoredRow};
use rtdash_tests::time::{format_rfc3339, now_millis, parse_rfc3339};
use rtdash_tests::unique_name;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(30);
const METRIC: &str = "orders";
const WINDOW_MS: i64 = 1_000;
const HORIZON_MS: i64 = 6_000;
const TIERS: [(&str, i64); 2] = [("10s", 10_000), ("30s", 30_000)];

fn options() -> StackOptions {
    // Tiers shorter than an hour are the aggregator's only (the gateway reads whole hours).
    StackOptions::default()
        .aggregator("WINDOWS__ALLOWED_LATENESS_MS", 1_000)
        .aggregator("WINDOWS__CORRECTION_HORIZON_MS", HORIZON_MS)
        .aggregator("BACKFILL__SETTLE_MS", 2_000)
        .aggregator("BACKFILL__POLL_MS", 200)
        .gateway("QUERY__CORRECTION_HORIZON_MS", HORIZON_MS)
        .gateway("BACKFILL__ACTIVATION_MARGIN_MS", 3_000)
        .aggregator("ROLLUPS__TIERS", r#"["10s", "30s"]"#)
        .aggregator("ROLLUPS__TIER_RETENTION_DAYS__10S", 1)
        .aggregator("ROLLUPS__TIER_RETENTION_DAYS__30S", 1)
}

/// The orders a test sends, and the model of what they add up to.
struct Orders {
    tenant: String,
    producer: Api,
    rng: TestRng,
    expected: Expected,
    sent: u64,
}

impl Orders {
    /// Posts one order per time in `at` (random region and amount) and records them.
    async fn send(&mut self, at: &[i64]) -> anyhow::Result<()> {
        let mut batch = Vec::new();
        for &at in at {
            let region = format!("r{}", self.rng.below(3));
            let amount = self.rng.below(10_000) as f64 * 0.25;
            batch.push(event_json(
                &self.tenant,
                "shop",
                "order",
                json!({"region": region, "amount": amount}),
                at,
            ));
            let start = at.div_euclid(WINDOW_MS) * WINDOW_MS;
            for series in [json!({"region": region}).to_string(), "{}".to_owned()] {
                self.expected
                    .entry((series, start))
                    .or_default()
                    .add(amount, None);
            }
        }
        let (status, answer) = self
            .producer
            .post_json("/v1/events", &Value::Array(batch))
            .await?;
        ensure!(
            status == 202 && answer["accepted"] == at.len(),
            "{status} {answer}"
        );
        self.sent += at.len() as u64;
        Ok(())
    }

    /// Sends 4 orders at the current time every 200 ms for `duration`.
    async fn live_for(&mut self, duration: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            let now = now_millis();
            self.send(&[now, now, now - 1, now - 2]).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }
}

/// Polls the job until it has ended.
async fn job_ended(viewer: &Api, tenant: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, job) = viewer
            .get_query(
                &format!("/v1/metric-definitions/{METRIC}/backfill"),
                &[("tenant_id", tenant.to_owned())],
            )
            .await?;
        ensure!(status == 200, "GET backfill: {status} {job}");
        if job["state"] == "done" || job["state"] == "failed" {
            return Ok(job);
        }
        if Instant::now() > deadline {
            bail!("the backfill job did not end within 120 s: {job}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The gateway's counts of the metric's total series, by window start, over `[from, to)`.
async fn served_counts(
    viewer: &Api,
    tenant: &str,
    (from, to): (i64, i64),
) -> anyhow::Result<BTreeMap<i64, u64>> {
    let (status, answer) = viewer
        .get_query(
            &format!("/v1/metrics/{METRIC}"),
            &[
                ("tenant_id", tenant.to_owned()),
                ("from", format_rfc3339(from)),
                ("to", format_rfc3339(to)),
                ("stat", "count".to_owned()),
                ("window", "1s".to_owned()),
            ],
        )
        .await?;
    ensure!(status == 200, "GET /v1/metrics/{METRIC}: {status} {answer}");
    let mut counts = BTreeMap::new();
    for window in answer["windows"].as_array().context("windows")? {
        let start = window["window_start"].as_str().context("window_start")?;
        let start = parse_rfc3339(start).context("window_start")?;
        counts.insert(start, window["value"].as_f64().context("value")? as u64);
    }
    Ok(counts)
}

/// Polls `table`'s rows of the metric until they are exactly `expected` (windows of
/// `window_ms`).
async fn rows_exact(
    stack: &Stack,
    table: &str,
    expected: &Expected,
    window_ms: i64,
) -> anyhow::Result<BTreeMap<(String, i64), StoredRow>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        stack.db.wait_wal_applied(table, Duration::from_secs(10))?;
        let rows = fetch_rows_where(stack.db, table, &format!("metric = '{METRIC}'"))?;
        let Some(problem) = mismatch(&rows, expected, window_ms) else {
            return Ok(rows);
        };
        if Instant::now() > deadline {
            bail!("{table}: {problem}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfilled_metric_counts_every_event_once_across_the_boundary() -> anyhow::Result<()> {
    let stack = Stack::start(options())?;
    let result = run(&stack).await;
    if result.is_err() {
        eprintln!("{}", stack.logs(60));
    }
    result
}

async fn run(stack: &Stack) -> anyhow::Result<()> {
    let gw = stack.gateway_url();
    let tenant = unique_name("backfill");
    let client = |key: String| key_client(&key, Some(TIMEOUT));
    let editor = Api::new(
        client(create_key(&gw, &tenant, "editor", "editor").await?),
        gw.clone(),
    );
    let viewer = Api::new(
        client(create_key(&gw, &tenant, "viewer", "viewer").await?),
        gw.clone(),
    );
    let mut orders = Orders {
        producer: Api::new(
            client(create_key(&gw, &tenant, "ingest", "producer").await?),
            stack.agent_url(),
        ),
        tenant: tenant.clone(),
        rng: TestRng::seeded("backfill", 1),
        expected: Expected::new(),
        sent: 0,
    };

    // Before the metric exists: the archived past, then live orders.
    let start = now_millis();
    let past: Vec<i64> = (0..120)
        .map(|i| start - 30 * 60_000 + (i % 20) * 700 + i)
        .chain((0..40).map(|i| start - 50 * 60_000 + i * 13))
        .collect();
    orders.send(&past).await?;
    orders.live_for(Duration::from_secs(3)).await?;

    // The metric, with a backfill of the last hour.
    let defined_at = now_millis();
    let definition = json!({
        "tenant_id": tenant, "name": METRIC, "event_type": "order", "field": "amount",
        "dimensions": ["region"], "window_secs": 1, "backfill": {"hours": 1}
    });
    let (status, created) = editor
        .post_json("/v1/metric-definitions", &definition)
        .await?;
    ensure!(status == 201, "create: {status} {created}");
    let job = &created["backfill"];
    ensure!(job["state"] == "queued", "{created}");
    let (from, boundary) = (
        job["from"].as_i64().context("from")?,
        job["boundary"].as_i64().context("boundary")?,
    );
    ensure!(
        from <= defined_at - 3_600_000 && from > defined_at - 3_600_000 - WINDOW_MS,
        "{job}"
    );
    ensure!(
        boundary >= defined_at + 3_000 && boundary % WINDOW_MS == 0,
        "{job}"
    );
    // One job at a time per metric.
    let (status, again) = editor
        .request(
            "PUT",
            &format!("/v1/metric-definitions/{METRIC}"),
            Some(definition.clone()),
            &[],
        )
        .await?;
    ensure!(
        status == 409,
        "a second backfill while one is queued: {status} {again}"
    );

    // Live across the creation, with late orders within the horizon for a window just before
    // the creation.
    orders.live_for(Duration::from_secs(1)).await?;
    let before_creation = defined_at - 1_500;
    orders
        .send(&[before_creation, before_creation, before_creation + 1])
        .await?;
    orders.live_for(Duration::from_secs(7)).await?;
    let last_sent = now_millis();
    println!("{} orders sent", orders.sent);
    // The gateway's answer for the seconds before the creation, read while they are past the
    // horizon (its row cache keeps such rows as immutable) but not rewritten yet: the job must
    // make the gateway drop them.
    let around = (defined_at - 4_000, defined_at);
    let model: BTreeMap<i64, u64> = orders
        .expected
        .iter()
        .filter(|((series, at), _)| series == "{}" && *at >= around.0 && *at < around.1)
        .map(|((_, at), acc)| (*at, acc.count()))
        .collect();
    let early = served_counts(&viewer, &tenant, around).await?;
    let rewritten_at = boundary + HORIZON_MS + 2_000;
    if now_millis() < rewritten_at {
        ensure!(
            early != model,
            "before the rewrite the gateway already serves the model: {early:?}"
        );
    } else {
        println!("note: the first read came after the rewrite; the cache is not exercised");
    }

    let job = job_ended(&viewer, &tenant).await?;
    println!("job: {job}");
    ensure!(job["state"] == "done", "{job}");
    ensure!(
        job["windows_total"] == (boundary - from) / WINDOW_MS,
        "{job}"
    );
    ensure!(job["windows_done"] == job["windows_total"], "{job}");
    ensure!(
        job["recent_complete_at"].as_i64() == Some(boundary + HORIZON_MS + 2_000),
        "{job}"
    );
    ensure!(
        last_sent < boundary + 10_000,
        "the test sent for too long: {job}"
    );

    // Every window, base and tier, is the model: rewritten by the job before the boundary,
    // live after it.
    let rows = rows_exact(stack, &stack.table, &orders.expected, WINDOW_MS).await?;
    let before = rows.keys().filter(|(_, at)| *at < boundary).count();
    ensure!(
        before > 0 && before < rows.len(),
        "windows on both sides of the boundary: {before} of {}",
        rows.len()
    );
    // The window with late orders within the horizon had live corrections; the job's row
    // replaced them with a higher revision.
    let late_window = (
        "{}".to_owned(),
        before_creation.div_euclid(WINDOW_MS) * WINDOW_MS,
    );
    ensure!(
        rows[&late_window].revision >= 2,
        "revision of the corrected window: {:?}",
        rows[&late_window]
    );
    // The gateway serves the rewritten windows, not what it cached before the rewrite.
    let served = served_counts(&viewer, &tenant, around).await?;
    ensure!(
        served == model,
        "served {served:?}, model {model:?} (before the rewrite: {early:?})"
    );
    for (tier, ms) in TIERS {
        let table = format!("{}_{tier}", stack.table);
        rows_exact(stack, &table, &coarsen(&orders.expected, ms), ms).await?;
    }
    Ok(())
}
