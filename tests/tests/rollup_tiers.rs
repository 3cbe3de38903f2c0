//! Stored sketch state and rollup tiers on real NATS and QuestDB (issue 15): the core
//! aggregator writes every window with its mergeable `state`, keeps coarser tier windows
//! (here `10s` and `1m` over 1 s base windows, so nothing waits an hour) in tables of their
//! own with QuestDB retention, revises them on late corrections, publishes them live, and
//! keeps them exact across a crash in the middle of a tier window.
//!
//! Windows are 15 minutes in the past and the agents' watermarks move through them, so no
//! test waits in real time for a window to close.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use rtdash_shared::messages::WindowUpdate;
use rtdash_shared::names;
use rtdash_shared::sketch::{Sketch, Stats};
use rtdash_shared::wire;
use rtdash_tests::aggregator::AggregatorOptions;
use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::fake_agent::FakeAgent;
use rtdash_tests::model::{approx_eq, coarsen, mismatch, wait_exact, Expected};
use rtdash_tests::table::{fetch_rows, fetch_states, insert_rows, stored_rows, Row, StoredRow};
use rtdash_tests::time::{minute, now_millis};
use rtdash_tests::workload::{Workload, METRIC, TENANT, WINDOW_MS};
use rtdash_tests::{until, QuestDb};

const TIMEOUT: Duration = Duration::from_secs(120);
const PARTITIONS: u32 = 4;
/// The tiers of these tests, by name and length.
const TIERS: [(&str, i64); 2] = [("10s", 10_000), ("1m", 60_000)];

fn with_tiers(options: AggregatorOptions) -> AggregatorOptions {
    options
        .set("ROLLUPS__TIERS", r#"["10s", "1m"]"#)
        .set("ROLLUPS__TIER_RETENTION_DAYS__10S", 1)
        .set("ROLLUPS__TIER_RETENTION_DAYS__1M", 2)
}

fn tier_table(env: &AggregatorEnv, tier: &str) -> String {
    format!("{}_{tier}", env.table)
}

/// One flush of `work` per base window in `[from, from + windows s)`, each with its start as
/// the watermark (so windows close behind it).
async fn send_windows(
    agent: &mut FakeAgent,
    work: &mut Workload,
    from: i64,
    windows: i64,
) -> anyhow::Result<()> {
    for window in 0..windows {
        agent.send_flush(work, from + window * WINDOW_MS).await?;
    }
    Ok(())
}

/// Waits until the base table and every tier table hold exactly the model's windows.
async fn wait_all_exact(
    db: &QuestDb,
    env: &AggregatorEnv,
    expected: &Expected,
) -> anyhow::Result<BTreeMap<String, BTreeMap<(String, i64), StoredRow>>> {
    let mut tables = BTreeMap::new();
    tables.insert(
        env.table.clone(),
        wait_exact(db, &env.table, expected, WINDOW_MS, TIMEOUT).await?,
    );
    for (tier, ms) in TIERS {
        let table = tier_table(env, tier);
        let rows = wait_exact(db, &table, &coarsen(expected, ms), ms, TIMEOUT).await?;
        tables.insert(table, rows);
    }
    Ok(tables)
}

/// The stats a stored row serves.
fn row_stats(row: &StoredRow) -> Stats {
    Stats {
        count: row.count,
        sum: row.sum,
        min: row.min,
        max: row.max,
        avg: row.avg,
        p50: row.p50,
        p90: row.p90,
        p95: row.p95,
        p99: row.p99,
        unique: row.uniq,
    }
}

/// Whether two stats are the same: counts exactly, floats to rounding (JSON, from QuestDB or a
/// live update, may parse a float one unit in the last place off).
fn same_stats(a: &Stats, b: &Stats) -> bool {
    let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => approx_eq(x, y),
        (x, y) => x == y,
    };
    a.count == b.count
        && a.unique == b.unique
        && [
            (a.sum, b.sum),
            (a.min, b.min),
            (a.max, b.max),
            (a.avg, b.avg),
            (a.p50, b.p50),
            (a.p90, b.p90),
            (a.p95, b.p95),
            (a.p99, b.p99),
        ]
        .into_iter()
        .all(|(x, y)| close(x, y))
}

/// Every row of `table` carries a state that decodes to its numbers (state and numbers are
/// one row, replaced together); returns the decoded sketches.
fn states_match_numbers(
    db: &QuestDb,
    table: &str,
    rows: &BTreeMap<(String, i64), StoredRow>,
) -> anyhow::Result<BTreeMap<(String, i64), Sketch>> {
    let states = fetch_states(db, table)?;
    assert_eq!(states.len(), rows.len(), "{table}");
    let mut sketches = BTreeMap::new();
    for (key, row) in rows {
        let text = states[key]
            .as_deref()
            .unwrap_or_else(|| panic!("{table} {key:?}: no state"));
        let sketch = Sketch::from_state(text)?;
        assert!(
            same_stats(&sketch.stats(), &row_stats(row)),
            "{table} {key:?}: state {:?}, row {row:?}",
            sketch.stats()
        );
        sketches.insert(key.clone(), sketch);
    }
    Ok(sketches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stat_of_every_tier_is_exact_and_revised_by_late_corrections() -> anyhow::Result<()> {
    let db = QuestDb::shared()?;
    let env = AggregatorEnv::start().await?;
    let mut live = env
        .client
        .subscribe(names::live_subject(TENANT, METRIC))
        .await?;
    let aggregator = env
        .aggregator(with_tiers(env.options("agg-tiers", db)))
        .await?;
    let mut work = Workload::new(10, PARTITIONS, 15);
    let mut agent = FakeAgent::new("edge-tiers", env.js.clone(), PARTITIONS);
    // Two 1m tier windows, twelve 10s ones.
    let base = minute(15);
    send_windows(&mut agent, &mut work, base, 120).await?;
    let watermark = base + 120_000 + 31_000;
    agent.heartbeat(watermark).await?;
    let closed = wait_all_exact(db, &env, &work.expected).await?;
    for (table, rows) in &closed {
        assert!(rows.values().all(|r| r.revision == 0), "{table}");
        states_match_numbers(db, table, rows)?;
    }

    // Late corrections within the horizon (10 min): two in the same 1m tier window of series
    // 1, one in the next; the other series once each.
    let corrections: [(usize, i64); 5] = [
        (1, base + 5_000),
        (1, base + 15_000),
        (1, base + 65_000),
        (2, base + 5_000),
        (3, base + 42_000),
    ];
    for (series, start) in corrections {
        let entry = work.entry(series, start, 2, true);
        agent
            .send(entry.series.partition(PARTITIONS), watermark, vec![entry])
            .await?;
    }
    let corrected = wait_all_exact(db, &env, &work.expected).await?;
    let key_of = |series: usize, start: i64| (work.series[series].dims_json(), start);
    for (table, rows) in &corrected {
        let ms = rows.values().next().map_or(0, |r| r.window_end - r.start);
        for (key, row) in rows {
            let revisions = corrections
                .iter()
                .filter(|(series, start)| {
                    let (name, _) = key_of(*series, *start);
                    name == key.0 && start.div_euclid(ms) * ms == key.1
                })
                .count() as i64;
            assert_eq!(row.revision, revisions, "{table} {key:?}");
        }
        // Numbers and state were replaced together.
        let sketches = states_match_numbers(db, table, rows)?;
        for (series, start) in corrections {
            let (name, _) = key_of(series, start);
            let key = (name, start.div_euclid(ms) * ms);
            // A correction may be the first data of its series in that window.
            let before = closed[table].get(&key).map_or(0, |row| row.count);
            assert!(sketches[&key].count() > before, "{table} {key:?}");
        }
    }
    assert_eq!(
        aggregator.metric("rtdash_core_tier_corrections_total")?,
        // Per tier: one per correction (each tier window of a correction was closed).
        2.0 * corrections.len() as f64
    );

    // A tier window's state is the merge of its base windows' states: merged from the stored
    // base states, it serves the model's numbers.
    let base_sketches = states_match_numbers(db, &env.table, &corrected[&env.table])?;
    for (tier, ms) in TIERS {
        let mut merged: BTreeMap<(String, i64), Sketch> = BTreeMap::new();
        for ((series, start), sketch) in &base_sketches {
            let key = (series.clone(), start.div_euclid(ms) * ms);
            merged
                .entry(key)
                .or_insert_with(|| Sketch::new(sketch.spec()))
                .merge(sketch);
        }
        let tier_rows = &corrected[&tier_table(&env, tier)];
        let from_states: BTreeMap<(String, i64), StoredRow> = merged
            .into_iter()
            .map(|(key, sketch)| {
                let stats = sketch.stats();
                let mut row = tier_rows[&key].clone();
                (row.count, row.sum, row.min, row.max, row.avg) =
                    (stats.count, stats.sum, stats.min, stats.max, stats.avg);
                (row.p50, row.p90, row.p95, row.p99, row.uniq) =
                    (stats.p50, stats.p90, stats.p95, stats.p99, stats.unique);
                (key, row)
            })
            .collect();
        let expected = coarsen(&work.expected, ms);
        assert_eq!(mismatch(&from_states, &expected, ms), None, "tier {tier}");
    }

    // Live: base and tier versions on the metric's subject, each with its state (the metric
    // has values and a unique key), a tier version told apart by its length.
    let mut lengths: BTreeMap<i64, usize> = BTreeMap::new();
    let mut updates = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), live.next()).await
    {
        let mut batch: Vec<WindowUpdate> = Vec::new();
        wire::decode_live_updates(&message.payload, &mut batch)?;
        updates.extend(batch);
    }
    for update in &updates {
        *lengths
            .entry(update.window_end - update.window_start)
            .or_default() += 1;
        let sketch = update.sketch().expect("a state")?;
        assert!(same_stats(&sketch.stats(), &update.stats), "{update:?}");
    }
    for length in [WINDOW_MS, 10_000, 60_000] {
        assert!(lengths.contains_key(&length), "{lengths:?}");
    }
    // The final version of every tier window was published.
    for (tier, ms) in TIERS {
        let finals = updates
            .iter()
            .filter(|u| u.window_end - u.window_start == ms && u.is_final)
            .count();
        assert!(finals >= corrected[&tier_table(&env, tier)].len(), "{tier}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_upgraded_in_place_and_questdb_drops_what_is_past_retention(
) -> anyhow::Result<()> {
    let db = QuestDb::shared()?;
    let env = AggregatorEnv::start().await?;
    // The base table as an older release created it: no `state`, no TTL.
    db.exec(&format!(
        "CREATE TABLE {} (ts TIMESTAMP, window_end TIMESTAMP, tenant SYMBOL CAPACITY 4096, \
         metric SYMBOL CAPACITY 4096, dim_set SYMBOL CAPACITY 4096, series VARCHAR, \
         count LONG, sum DOUBLE, min DOUBLE, max DOUBLE, avg DOUBLE, p50 DOUBLE, p90 DOUBLE, \
         p95 DOUBLE, p99 DOUBLE, uniq LONG, revision INT, final BOOLEAN, late_count LONG, \
         updated_at TIMESTAMP) TIMESTAMP(ts) PARTITION BY DAY WAL \
         DEDUP UPSERT KEYS(ts, tenant, metric, series)",
        env.table
    ))?;
    let day = 86_400_000;
    let old = |table: &str, start: i64| -> anyhow::Result<()> {
        let row = Row::new(TENANT, "old_metric", start, &[("region", "eu")], 3);
        insert_rows(db, table, &[row])
    };
    let count = |table: &str, metric: &str| -> anyhow::Result<u64> {
        Ok(stored_rows(db, table, &format!("metric = '{metric}'"))?.len() as u64)
    };
    // Five days old (the base retention below is 3): kept while nothing newer is written.
    old(&env.table, now_millis() - 5 * day)?;
    assert_eq!(count(&env.table, "old_metric")?, 1);

    let options = env
        .options("agg-retention", db)
        .set("ROLLUPS__TIERS", r#"["1m", "1d"]"#)
        .set("ROLLUPS__BASE_RETENTION_DAYS", 3)
        .set("ROLLUPS__TIER_RETENTION_DAYS__1M", 2)
        .set("ROLLUPS__TIER_RETENTION_DAYS__1D", 40);
    let _aggregator = env.aggregator(options).await?;
    let minute_table = format!("{}_1m", env.table);
    let day_table = format!("{}_1d", env.table);
    // Retention is QuestDB's TTL on each table (a day tier is partitioned by month, so its 40
    // days are 2 months); the old table got the `state` column and kept its row.
    let answer = db.exec(&format!(
        "select table_name, partitionBy, ttlValue, ttlUnit from tables() \
         where table_name in ('{}', '{minute_table}', '{day_table}') order by table_name",
        env.table
    ))?;
    let got: Vec<(String, String, i64, String)> = answer["dataset"]
        .as_array()
        .expect("dataset")
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_owned(),
                r[1].as_str().unwrap_or_default().to_owned(),
                r[2].as_i64().unwrap_or(-1),
                r[3].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (env.table.clone(), "DAY".into(), 3, "DAY".into()),
            (day_table.clone(), "MONTH".into(), 2, "MONTH".into()),
            (minute_table.clone(), "DAY".into(), 2, "DAY".into()),
        ]
    );
    let ddl = db.exec(&format!("SHOW CREATE TABLE {day_table}"))?;
    assert!(
        ddl["dataset"][0][0]
            .as_str()
            .is_some_and(|d| d.contains("TTL 2 MONTHS")),
        "{ddl}"
    );
    let columns = db.exec(&format!(
        "select \"column\" from table_columns('{}')",
        env.table
    ))?;
    assert!(columns.to_string().contains("\"state\""), "{columns}");
    assert_eq!(count(&env.table, "old_metric")?, 1, "kept by the upgrade");

    // Old rows in the empty tier tables: kept while they are the newest.
    old(&minute_table, now_millis() - 5 * day)?;
    old(&day_table, now_millis() - 100 * day)?;
    assert_eq!(count(&minute_table, "old_metric")?, 1);
    assert_eq!(count(&day_table, "old_metric")?, 1);

    // Current windows written: every table's old partition is past its TTL and dropped.
    let mut work = Workload::new(4, PARTITIONS, 16);
    let mut agent = FakeAgent::new("edge-retention", env.js.clone(), PARTITIONS);
    let base = minute(15);
    send_windows(&mut agent, &mut work, base, 60).await?;
    agent.heartbeat(base + 60_000 + 31_000).await?;
    wait_exact(db, &env.table, &work.expected, WINDOW_MS, TIMEOUT).await?;
    wait_exact(
        db,
        &minute_table,
        &coarsen(&work.expected, 60_000),
        60_000,
        TIMEOUT,
    )
    .await?;
    until(TIMEOUT, "old partitions dropped", || {
        let gone = |table: &str| {
            db.wait_wal_applied(table, Duration::from_secs(10)).is_ok()
                && count(table, "old_metric").is_ok_and(|n| n == 0)
        };
        gone(&env.table) && gone(&minute_table) && gone(&day_table)
    })
    .await?;
    // The day tier holds the current day (still open: provisional rows), every event of it.
    let expected_total: u64 = work
        .expected
        .iter()
        .filter(|((series, _), _)| series == "{}")
        .map(|(_, acc)| acc.count())
        .sum();
    until(TIMEOUT, "the day's total in the day tier", || {
        fetch_rows(db, &day_table).is_ok_and(|rows| {
            rows.iter()
                .filter(|((series, _), _)| series == "{}")
                .map(|(_, row)| row.count)
                .sum::<u64>()
                == expected_total
        })
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_and_a_restart_in_the_middle_of_a_tier_window_keep_it_exact() -> anyhow::Result<()>
{
    let db = QuestDb::shared()?;
    let env = AggregatorEnv::start().await?;
    let mut aggregator = env
        .aggregator(with_tiers(env.options("agg-tier-restart", db)))
        .await?;
    let mut work = Workload::new(20, PARTITIONS, 17);
    let mut agent = FakeAgent::new("edge-tier-restart", env.js.clone(), PARTITIONS);
    let base = minute(15);
    let minute_table = tier_table(&env, "1m");
    // A third of the 1m tier window, until its provisional rows are written (its state was
    // output, and checkpointed soon after): then SIGKILL.
    send_windows(&mut agent, &mut work, base, 20).await?;
    until(TIMEOUT, "provisional tier rows", || {
        fetch_rows(db, &minute_table).is_ok_and(|rows| !rows.is_empty())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    tokio::task::block_in_place(|| aggregator.restart())?;
    // Another third, then a graceful restart.
    send_windows(&mut agent, &mut work, base + 20_000, 20).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| {
        assert!(aggregator.stop(), "graceful stop");
        aggregator.restart()
    })?;
    send_windows(&mut agent, &mut work, base + 40_000, 20).await?;
    agent.heartbeat(base + 60_000 + 31_000).await?;
    let outcome = wait_all_exact(db, &env, &work.expected).await;
    if outcome.is_err() || std::env::var_os("RTDASH_TEST_LOGS").is_some() {
        eprintln!("aggregator log:\n{}", aggregator.log_tail(80));
    }
    let tables = outcome?;
    for (table, rows) in &tables {
        assert!(
            rows.values().all(|r| r.revision == 0 && r.late_count == 0),
            "{table}"
        );
        states_match_numbers(db, table, rows)?;
    }
    Ok(())
}
