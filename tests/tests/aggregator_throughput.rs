//! A quick local throughput measurement of the core aggregator (ignored by default):
//! pre-loads RTDASH_PARTIALS with partial batches, starts the aggregator, and times how fast it
//! merges them (series deltas per second) and writes them (rows per second of ILP request time),
//! with checkpoint and QuestDB figures from its `/metrics` and the tables' size on disk.
//!
//! Each run measures the aggregator three times, in turn, on the same backlog: as before stored
//! state (`writer.write_state = false`, no rollup tiers), with every row's sketch state but no
//! tiers, and as deployed (state, tiers `1h` and `1d`), so the figures compare under the same
//! load.
//!
//! ```text
//! cargo build --release -p core-aggregator
//! RTDASH_CORE_AGGREGATOR_BIN=target/release/core-aggregator \
//!   cargo test -p rtdash-tests --test aggregator_throughput -- --ignored --nocapture
//! ```
//!
//! `RTDASH_BENCH_BATCHES` (2 000) sets the backlog, `RTDASH_BENCH_RUNS` (1) the number of
//! run pairs.

use std::time::{Duration, Instant};

use rtdash_tests::aggregator::run_command;
use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::fake_agent::FakeAgent;
use rtdash_tests::process::cpu_seconds;
use rtdash_tests::prometheus::metric_sum;
use rtdash_tests::workload::Backlog;
use rtdash_tests::{env_or, QuestDb};

const PARTITIONS: u32 = 4;
const BATCHES: usize = 2_000;

/// What one aggregator run did.
#[derive(Debug)]
struct Figures {
    merged_per_s: f64,
    /// Series deltas merged per second of the aggregator's own CPU time (from its start until
    /// its last rows and checkpoints, 3 s after the last merge): a figure a busy machine
    /// disturbs far less than the wall-clock rate.
    merged_per_cpu_s: f64,
    /// CPU seconds of the aggregator and of QuestDB over the same time.
    cpu_s: (f64, f64),
    rows: f64,
    rows_per_write_s: f64,
    bytes_per_row: f64,
}

/// Pre-loads `batches` batches, starts an aggregator with `settings`, and measures.
async fn measure(
    db: &QuestDb,
    batches: usize,
    label: &str,
    settings: &[(&str, &str)],
) -> anyhow::Result<Figures> {
    let env = AggregatorEnv::start().await?;
    // Production timings (the test defaults checkpoint and write provisional rows faster).
    let mut options = env
        .options("agg-bench", db)
        .set("CHECKPOINT__INTERVAL_MS", 2_000)
        .set("WRITER__PROVISIONAL_INTERVAL_MS", 1_000)
        .set("WRITER__TIER_INTERVAL_MS", 10_000)
        .set("CONSUMER__ACK_WAIT_MS", 60_000);
    for (key, value) in settings {
        options = options.set(key, value);
    }
    tokio::task::block_in_place(|| run_command(&options, &["setup"]))?;

    // One-minute windows, a new one every 1 000 batches (as live: the deltas of a flush go to
    // the current minute).
    let mut backlog = Backlog::new(PARTITIONS);
    let mut agents: Vec<FakeAgent> = (0..4)
        .map(|i| FakeAgent::new(&format!("edge-{i}"), env.js.clone(), PARTITIONS))
        .collect();
    let started = Instant::now();
    let mut entries_total = 0u64;
    for b in 0..batches {
        let (partition, window, entries) = backlog.batch(b);
        entries_total += entries.len() as u64;
        let agent = &mut agents[b % 4];
        agent.send(partition, window, entries).await?;
    }
    eprintln!(
        "[{label}] pre-loaded {batches} batches, {entries_total} series deltas in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let questdb_cpu = db.pid().and_then(cpu_seconds).unwrap_or(0.0);
    let aggregator = env.aggregator(options).await?;
    let started = Instant::now();
    let mut last = 0.0;
    while last < entries_total as f64 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = aggregator.metric("rtdash_core_partials_merged_total")?;
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("only {last} of {entries_total} merged after 10 minutes");
        }
    }
    let elapsed = started.elapsed();
    // Let the last checkpoints and rows happen.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_s = (
        aggregator.pid().and_then(cpu_seconds).unwrap_or(f64::NAN),
        db.pid().and_then(cpu_seconds).unwrap_or(f64::NAN) - questdb_cpu,
    );
    let text = aggregator.metrics_text()?;
    let per = |name: &str| {
        let sum = metric_sum(&text, &format!("{name}_sum"));
        let count = metric_sum(&text, &format!("{name}_count"));
        (sum / count.max(1.0), count, sum)
    };
    let (ckpt_seconds, checkpoints, _) = per("rtdash_core_checkpoint_seconds");
    let (ckpt_bytes, _, _) = per("rtdash_core_checkpoint_bytes");
    let (write_seconds, writes, write_total) = per("rtdash_core_questdb_write_seconds");
    let rows = metric_sum(&text, "rtdash_core_questdb_rows_written_total");
    // What the rows take on disk, every table of the run (the base table, and the tiers').
    let mut disk = (0.0, 0.0);
    for table in [
        env.table.clone(),
        format!("{}_1h", env.table),
        format!("{}_1d", env.table),
    ] {
        if let Ok(answer) = db.exec(&format!(
            "select sum(numRows), sum(diskSize) from table_partitions('{table}')"
        )) {
            disk.0 += answer["dataset"][0][0].as_f64().unwrap_or(0.0);
            disk.1 += answer["dataset"][0][1].as_f64().unwrap_or(0.0);
        }
    }
    let figures = Figures {
        merged_per_s: entries_total as f64 / elapsed.as_secs_f64(),
        merged_per_cpu_s: entries_total as f64 / cpu_s.0,
        cpu_s,
        rows,
        rows_per_write_s: rows / write_total.max(1e-9),
        bytes_per_row: disk.1 / disk.0.max(1.0),
    };
    eprintln!(
        "[{label}] merged {entries_total} series deltas in {:.2} s (since process start): {:.0}/s",
        elapsed.as_secs_f64(),
        figures.merged_per_s
    );
    eprintln!(
        "[{label}] CPU: aggregator {:.2} s ({:.0} merged per CPU second), QuestDB {:.2} s",
        cpu_s.0, figures.merged_per_cpu_s, cpu_s.1
    );
    eprintln!(
        "[{label}] checkpoints: {checkpoints} taken, mean {:.1} ms, mean {:.0} bytes",
        ckpt_seconds * 1e3,
        ckpt_bytes
    );
    eprintln!(
        "[{label}] questdb: {rows} rows in {writes} requests, mean request {:.1} ms, \
         {:.0} rows per second of request time; {:.0} rows on disk, {:.0} bytes each",
        write_seconds * 1e3,
        figures.rows_per_write_s,
        disk.0,
        figures.bytes_per_row
    );
    if std::env::var_os("RTDASH_TEST_LOGS").is_some() {
        eprintln!("aggregator log:\n{}", aggregator.log_tail(80));
    }
    Ok(figures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run with --ignored --nocapture"]
async fn merge_throughput() -> anyhow::Result<()> {
    let batches = env_or("RTDASH_BENCH_BATCHES", BATCHES);
    let runs = env_or("RTDASH_BENCH_RUNS", 1usize);
    let db = QuestDb::shared()?;
    let without: &[(&str, &str)] = &[("WRITER__WRITE_STATE", "false"), ("ROLLUPS__TIERS", "[]")];
    let state_only: &[(&str, &str)] = &[("ROLLUPS__TIERS", "[]")];
    let with: &[(&str, &str)] = &[];
    for run in 1..=runs {
        let before = measure(db, batches, "without state", without).await?;
        let stored = measure(db, batches, "with state", state_only).await?;
        let after = measure(db, batches, "with state and tiers", with).await?;
        for (label, figures) in [("state", &stored), ("state and tiers", &after)] {
            eprintln!(
                "run {run}, with {label}: merged/s {:.0} -> {:.0} ({:.2}x); merged per \
                 aggregator CPU second {:.0} -> {:.0} ({:.2}x); aggregator + QuestDB CPU s \
                 {:.2} -> {:.2} ({:.2}x); rows written {:.0} -> {:.0}; rows per second of \
                 request time {:.0} -> {:.0} ({:.2}x); bytes per row on disk {:.0} -> {:.0}",
                before.merged_per_s,
                figures.merged_per_s,
                figures.merged_per_s / before.merged_per_s,
                before.merged_per_cpu_s,
                figures.merged_per_cpu_s,
                figures.merged_per_cpu_s / before.merged_per_cpu_s,
                before.cpu_s.0 + before.cpu_s.1,
                figures.cpu_s.0 + figures.cpu_s.1,
                (before.cpu_s.0 + before.cpu_s.1) / (figures.cpu_s.0 + figures.cpu_s.1),
                before.rows,
                figures.rows,
                before.rows_per_write_s,
                figures.rows_per_write_s,
                figures.rows_per_write_s / before.rows_per_write_s.max(1e-9),
                before.bytes_per_row,
                figures.bytes_per_row
            );
        }
    }
    Ok(())
}
