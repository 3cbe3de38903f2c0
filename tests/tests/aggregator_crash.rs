//! core-aggregator crash safety: SIGKILL mid-stream and restart, and two aggregators where one
//! is killed and the other takes its partitions over. Final counts stay exact.

use std::time::{Duration, Instant};

use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::fake_agent::FakeAgent;
use rtdash_tests::model::{wait_exact, Expected};
use rtdash_tests::workload::{base, Workload, WINDOW_MS};
use rtdash_tests::{until, QuestDb};

const TIMEOUT: Duration = Duration::from_secs(120);
const PARTITIONS: u32 = 4;

/// Publishes `windows` windows of `work` from 3 agents, pacing batches so the stream runs for a
/// few seconds, then closes every window. Returns the expectation.
async fn publish_stream(
    js: async_nats::jetstream::Context,
    mut work: Workload,
    windows: i64,
    pace: Duration,
) -> anyhow::Result<Expected> {
    let mut agents: Vec<FakeAgent> = (0..3)
        .map(|i| FakeAgent::new(&format!("edge-{i}"), js.clone(), PARTITIONS))
        .collect();
    let base = base(10);
    for window in 0..windows {
        let start = base + window * WINDOW_MS;
        for _flush in 0..4 {
            for agent in &mut agents {
                agent.send_flush(&mut work, start).await?;
                tokio::time::sleep(pace).await;
            }
        }
    }
    for agent in &mut agents {
        agent.heartbeat(base + windows * WINDOW_MS + 31_000).await?;
    }
    Ok(work.expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_and_restart_keeps_counts_exact() -> anyhow::Result<()> {
    let db = QuestDb::shared()?;
    let env = AggregatorEnv::start().await?;
    let mut aggregator = env.aggregator(env.options("agg-kill", db)).await?;
    let publisher = tokio::spawn(publish_stream(
        env.js.clone(),
        Workload::new(30, PARTITIONS, 21),
        12,
        Duration::from_millis(15),
    ));
    for pause_ms in [900u64, 1_300, 700] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        tokio::task::block_in_place(|| aggregator.restart())?;
    }
    let expected = publisher.await??;
    let outcome = wait_exact(db, &env.table, &expected, WINDOW_MS, TIMEOUT).await;
    if outcome.is_err() || std::env::var_os("RTDASH_TEST_LOGS").is_some() {
        eprintln!("aggregator log:\n{}", aggregator.log_tail(80));
    }
    outcome?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_takes_over_the_partitions_of_a_killed_aggregator() -> anyhow::Result<()> {
    let db = QuestDb::shared()?;
    let env = AggregatorEnv::start().await?;
    let mut first = env.aggregator(env.options("agg-one", db)).await?;
    let second = env.aggregator(env.options("agg-two", db)).await?;
    // They share the partitions (the first releases half of them to the second).
    until(Duration::from_secs(20), "partitions shared", || {
        let (a, b) = (first.owned_partitions(), second.owned_partitions());
        a > 0.0 && b > 0.0 && a + b == f64::from(PARTITIONS)
    })
    .await?;
    let publisher = tokio::spawn(publish_stream(
        env.js.clone(),
        Workload::new(30, PARTITIONS, 33),
        10,
        Duration::from_millis(15),
    ));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    first.kill();
    let killed = Instant::now();
    // The survivor owns everything within the lease time (3 s) plus a renewal period.
    until(Duration::from_secs(8), "takeover", || {
        second.owned_partitions() == f64::from(PARTITIONS)
    })
    .await?;
    let takeover = killed.elapsed();
    eprintln!("takeover after {takeover:?}");
    assert!(takeover <= Duration::from_millis(5_500), "{takeover:?}");
    let expected = publisher.await??;
    let outcome = wait_exact(db, &env.table, &expected, WINDOW_MS, TIMEOUT).await;
    if outcome.is_err() || std::env::var_os("RTDASH_TEST_LOGS").is_some() {
        eprintln!("survivor log:\n{}", second.log_tail(80));
    }
    outcome?;
    Ok(())
}
