//! A quick local throughput measurement of the core aggregator (ignored by default):
//! pre-loads RTDASH_PARTIALS with partial batches, starts the aggregator, and times how fast it
//! merges them (series deltas per second), with checkpoint and QuestDB figures from its
//! `/metrics`.
//!
//! ```text
//! cargo build --release -p core-aggregator
//! RTDASH_CORE_AGGREGATOR_BIN=target/release/core-aggregator \
//!   cargo test -p rtdash-tests --test aggregator_throughput -- --ignored --nocapture
//! ```

use std::time::{Duration, Instant};

use rtdash_tests::aggregator::run_command;
use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::fake_agent::FakeAgent;
use rtdash_tests::prometheus::metric_sum;
use rtdash_tests::workload::Backlog;
use rtdash_tests::{env_or, QuestDb};

const PARTITIONS: u32 = 4;
const BATCHES: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run with --ignored --nocapture"]
async fn merge_throughput() -> anyhow::Result<()> {
    let batches = env_or("RTDASH_BENCH_BATCHES", BATCHES);
    let db = QuestDb::shared()?;
    let env = AggregatorEnv::start().await?;
    // Production timings (the test defaults checkpoint and write provisional rows faster).
    let options = env
        .options("agg-bench", db)
        .set("CHECKPOINT__INTERVAL_MS", 2_000)
        .set("WRITER__PROVISIONAL_INTERVAL_MS", 1_000)
        .set("CONSUMER__ACK_WAIT_MS", 60_000);
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
        "pre-loaded {batches} batches, {entries_total} series deltas in {:.1} s",
        started.elapsed().as_secs_f64()
    );

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
    let text = aggregator.metrics_text()?;
    let per = |name: &str| {
        let sum = metric_sum(&text, &format!("{name}_sum"));
        let count = metric_sum(&text, &format!("{name}_count"));
        (sum / count.max(1.0), count)
    };
    let (ckpt_seconds, checkpoints) = per("rtdash_core_checkpoint_seconds");
    let (ckpt_bytes, _) = per("rtdash_core_checkpoint_bytes");
    let (write_seconds, writes) = per("rtdash_core_questdb_write_seconds");
    eprintln!(
        "merged {entries_total} series deltas in {:.2} s (since process start): {:.0}/s",
        elapsed.as_secs_f64(),
        entries_total as f64 / elapsed.as_secs_f64()
    );
    eprintln!(
        "checkpoints: {checkpoints} taken, mean {:.1} ms, mean {:.0} bytes",
        ckpt_seconds * 1e3,
        ckpt_bytes
    );
    eprintln!(
        "questdb: {} rows in {writes} requests, mean request {:.1} ms",
        metric_sum(&text, "rtdash_core_questdb_rows_written_total"),
        write_seconds * 1e3
    );
    if std::env::var_os("RTDASH_TEST_LOGS").is_some() {
        eprintln!("aggregator log:\n{}", aggregator.log_tail(80));
    }
    Ok(())
}
