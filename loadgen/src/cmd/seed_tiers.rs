//! `rtdash-loadgen seed-tiers`: history for the query-latency benchmark (BENCHMARKS.md,
//! "Queries over long ranges"): a metric with `--regions` x `--hosts` series and `--days` days
//! of rows in the rollup tiers `1h` and `1d`, written to QuestDB the way the core aggregator
//! writes them (ILP over HTTP, the numbers and the mergeable `state` in one row: the
//! aggregator's own row layout, `rtdash_shared::ilp`), with the total series (the empty dimension set)
//! beside the full one, as the aggregator keeps by default.
//!
//! Each hour of each series is a sketch of `--events-per-hour` synthetic requests (latency
//! log-normal around a per-region median, users drawn from `--users`); an hour's total is the
//! merge of its series, a day's row the merge of its hours: every row is what the aggregator
//! would have folded from the same events. The metric is defined through the gateway first,
//! and the tier tables are created if missing with the schema of `rtdash_shared::schema`.
//!
//! ```sh
//! . <state>/secrets/questdb.env   # QDB_ADMIN_USER, QDB_ADMIN_PASSWORD
//! rtdash-loadgen --key "$(cat <state>/operator.key)" seed-tiers --tenant bench
//! ```

use crate::gateway::GatewayClient;
use anyhow::{bail, Context};
use clap::Args;
use questdb::ingress::{Buffer, Sender};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use rtdash_shared::ilp::WindowRow;
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::rollup::Tier;
use rtdash_shared::schema::{create_table_sql_with, tier_table, METRICS_TABLE};
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// Arguments of `seed-tiers`.
#[derive(Debug, Args)]
pub struct SeedTiersArgs {
    /// Gateway base URL (the metric is defined there).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// QuestDB HTTP address (ILP over HTTP and `/exec`).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub questdb: String,
    /// QuestDB user; default $QDB_ADMIN_USER.
    #[arg(long)]
    pub questdb_user: Option<String>,
    /// Tenant.
    #[arg(long, default_value = "bench")]
    pub tenant: String,
    /// Metric name.
    #[arg(long, default_value = "query_bench")]
    pub metric: String,
    /// Days of history, ending with the last whole hour.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Values of the `region` dimension.
    #[arg(long, default_value_t = 10)]
    pub regions: usize,
    /// Values of the `host` dimension (series = regions x hosts).
    #[arg(long, default_value_t = 10)]
    pub hosts: usize,
    /// Events per series and hour.
    #[arg(long, default_value_t = 40)]
    pub events_per_hour: usize,
    /// Distinct users events are drawn from.
    #[arg(long, default_value_t = 50_000)]
    pub users: u64,
}

/// The metric the rows belong to.
fn definition(args: &SeedTiersArgs) -> MetricDefinition {
    MetricDefinition {
        name: args.metric.clone(),
        tenant_id: Some(args.tenant.clone()),
        event_type: "request".to_owned(),
        field: Some("latency_ms".to_owned()),
        unique: Some("user_id".to_owned()),
        dimensions: vec!["region".to_owned(), "host".to_owned()],
        rollups: None,
        window_secs: 60,
        max_series_per_window: rtdash_shared::metric::DEFAULT_MAX_SERIES,
        description: Some("Query-latency benchmark: synthetic request latency".to_owned()),
    }
}

/// One stored window: its series dimensions, start, length and sketch.
struct Window {
    dims: BTreeMap<String, Option<String>>,
    start: i64,
    window_ms: i64,
    sketch: Sketch,
}

/// The hourly windows of every series and of the total, then the daily ones (merges of the
/// hours), over `[from, to)`.
fn windows(args: &SeedTiersArgs, from: i64, to: i64) -> anyhow::Result<(Vec<Window>, Vec<Window>)> {
    let spec = SketchSpec::ALL;
    let mut rng = SmallRng::seed_from_u64(15);
    let series: Vec<BTreeMap<String, Option<String>>> = (0..args.regions)
        .flat_map(|r| {
            (0..args.hosts).map(move |h| {
                BTreeMap::from([
                    ("region".to_owned(), Some(format!("region-{r:02}"))),
                    ("host".to_owned(), Some(format!("host-{r:02}-{h:02}"))),
                ])
            })
        })
        .collect();
    let latency: Vec<LogNormal<f64>> = (0..args.regions)
        .map(|r| LogNormal::new((20.0 + 5.0 * r as f64).ln(), 0.6))
        .collect::<Result<_, _>>()?;
    let mut hours = Vec::new();
    let mut days: BTreeMap<(i64, usize), Sketch> = BTreeMap::new();
    let total = series.len();
    for start in (from..to).step_by(HOUR_MS as usize) {
        let mut hour_total = Sketch::new(spec);
        for (i, dims) in series.iter().enumerate() {
            let mut sketch = Sketch::new(spec);
            for _ in 0..args.events_per_hour {
                let user = rng.random_range(0..args.users.max(1));
                let value = latency[i / args.hosts].sample(&mut rng);
                sketch.record(
                    Some(value),
                    Some(unique_hash(format!("u{user}").as_bytes())),
                );
            }
            hour_total.merge(&sketch);
            let day = start.div_euclid(DAY_MS) * DAY_MS;
            days.entry((day, i))
                .or_insert_with(|| Sketch::new(spec))
                .merge(&sketch);
            hours.push(Window {
                dims: dims.clone(),
                start,
                window_ms: HOUR_MS,
                sketch,
            });
        }
        let day = start.div_euclid(DAY_MS) * DAY_MS;
        days.entry((day, total))
            .or_insert_with(|| Sketch::new(spec))
            .merge(&hour_total);
        hours.push(Window {
            dims: BTreeMap::new(),
            start,
            window_ms: HOUR_MS,
            sketch: hour_total,
        });
    }
    let days = days
        .into_iter()
        .map(|((start, i), sketch)| Window {
            dims: series.get(i).cloned().unwrap_or_default(),
            start,
            window_ms: DAY_MS,
            sketch,
        })
        .collect();
    Ok((hours, days))
}

/// Appends `window` as the aggregator's row ([`WindowRow`], the layout the aggregator
/// writes).
fn append(
    buffer: &mut Buffer,
    table: &str,
    tenant: &str,
    metric: &str,
    window: &Window,
    now: i64,
) -> questdb::Result<()> {
    let series = SeriesKey::new(tenant, metric, window.dims.clone());
    let state = window.sketch.to_state();
    WindowRow {
        series: &series,
        start: window.start,
        end: window.start + window.window_ms,
        stats: &window.sketch.stats(),
        revision: 0,
        is_final: true,
        late_count: 0,
        updated_at: now,
        state: Some(&state),
    }
    .append(buffer, table)
}

/// QuestDB's `/exec`: runs `sql`, returns the JSON answer.
async fn exec(
    http: &reqwest::Client,
    args: &SeedTiersArgs,
    auth: &(String, String),
    sql: &str,
) -> anyhow::Result<serde_json::Value> {
    let url = format!("http://{}/exec", args.questdb);
    let response = http
        .get(&url)
        .basic_auth(&auth.0, Some(&auth.1))
        .query(&[("query", sql)])
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("QuestDB answered {status} to {sql:?}: {body}");
    }
    Ok(body)
}

/// Runs `seed-tiers`.
pub async fn run(args: SeedTiersArgs) -> anyhow::Result<()> {
    let user = args
        .questdb_user
        .clone()
        .or_else(|| std::env::var("QDB_ADMIN_USER").ok())
        .unwrap_or_else(|| "admin".to_owned());
    let password = std::env::var("QDB_ADMIN_PASSWORD").context(
        "QDB_ADMIN_PASSWORD must hold QuestDB's admin password (<state>/secrets/questdb.env)",
    )?;
    let auth = (user, password);
    let http = crate::agent::http_client(2, Duration::from_secs(60))?;
    GatewayClient::new(&args.gateway, http.clone())
        .put_metric(&definition(&args))
        .await?;

    let now = rtdash_shared::time::now_millis();
    let to = now.div_euclid(HOUR_MS) * HOUR_MS;
    let from = to - args.days * DAY_MS;
    let started = Instant::now();
    let (hours, days) = windows(&args, from, to)?;
    let generated = started.elapsed();
    let mut tables = Vec::new();
    for (tier, rows) in [("1h", hours), ("1d", days)] {
        let tier = Tier::parse(tier)?;
        let table = tier_table(METRICS_TABLE, &tier);
        exec(
            &http,
            &args,
            &auth,
            &create_table_sql_with(&table, tier.partitioning(), None),
        )
        .await?;
        tables.push((table, rows));
    }

    let conf = format!(
        "http::addr={};username={};password={};request_timeout=60000;",
        args.questdb, auth.0, auth.1
    );
    let (tenant, metric) = (args.tenant.clone(), args.metric.clone());
    let written = tokio::task::spawn_blocking(
        move || -> anyhow::Result<Vec<(String, usize, usize, i64)>> {
            let mut sender = Sender::from_conf(conf)?;
            let mut out = Vec::new();
            for (table, rows) in &tables {
                let mut buffer = sender.new_buffer();
                let mut state_bytes = 0usize;
                for (i, window) in rows.iter().enumerate() {
                    state_bytes += window.sketch.to_state().len();
                    append(&mut buffer, table, &tenant, &metric, window, now)?;
                    if i % 5_000 == 4_999 {
                        sender.flush(&mut buffer)?;
                    }
                }
                sender.flush(&mut buffer)?;
                // A day row starts at its day, before `from` when `from` is not midnight.
                let first = rows.iter().map(|w| w.start).min().unwrap_or(0);
                out.push((table.clone(), rows.len(), state_bytes, first));
            }
            Ok(out)
        },
    )
    .await??;

    // The rows are visible once QuestDB's WAL has been applied.
    for (table, rows, state_bytes, first) in &written {
        let sql = format!(
            "SELECT count() FROM {table} WHERE tenant = '{}' AND metric = '{}' AND ts >= {}",
            args.tenant.replace('\'', "''"),
            args.metric.replace('\'', "''"),
            first * 1000
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let answer = exec(&http, &args, &auth, &sql).await?;
            let visible = answer["dataset"][0][0].as_u64().unwrap_or(0);
            if visible >= *rows as u64 {
                break;
            }
            if Instant::now() >= deadline {
                bail!("{table}: only {visible} of {rows} rows visible after 120 s");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!(
            "{table}: {rows} rows ({} series + the total, {} days), state {:.0} bytes per row on average",
            args.regions * args.hosts,
            args.days,
            *state_bytes as f64 / (*rows).max(1) as f64
        );
    }
    println!(
        "seeded {}/{}: {} days to {}, generated in {:.1} s, written and visible in {:.1} s",
        args.tenant,
        args.metric,
        args.days,
        rtdash_shared::time::format_rfc3339(to),
        generated.as_secs_f64(),
        (started.elapsed() - generated).as_secs_f64()
    );
    Ok(())
}
