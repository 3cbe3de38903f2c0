//! core-aggregator with QuestDB stopped for 30 s under load: the writer holds and retries, the
//! consumers stop pulling when its channel is full, and once QuestDB is back nothing is lost.

use std::time::{Duration, Instant};

use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::fake_agent::FakeAgent;
use rtdash_tests::model::wait_exact;
use rtdash_tests::workload::{base, Workload, WINDOW_MS};
use rtdash_tests::QuestDb;

const PARTITIONS: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questdb_down_for_30_s_under_load_loses_nothing() -> anyhow::Result<()> {
    let mut db = tokio::task::block_in_place(QuestDb::start)?;
    let env = AggregatorEnv::start().await?;
    let options = env
        .options("agg-outage", &db)
        // A small channel, so the outage turns into backpressure quickly.
        .set("WRITER__CHANNEL_ROWS", 200)
        .set("WRITER__MAX_BACKOFF_MS", 1_000);
    let aggregator = env.aggregator(options).await?;

    let js = env.js.clone();
    let publisher = tokio::spawn(async move {
        let mut work = Workload::new(40, PARTITIONS, 77);
        let mut agents: Vec<FakeAgent> = (0..3)
            .map(|i| FakeAgent::new(&format!("edge-{i}"), js.clone(), PARTITIONS))
            .collect();
        let base = base(2);
        let started = Instant::now();
        let mut window = 0;
        // About 45 s of load: a new window every second.
        while started.elapsed() < Duration::from_secs(45) {
            let start = base + window * WINDOW_MS;
            for _flush in 0..4 {
                for agent in &mut agents {
                    agent.send_flush(&mut work, start).await?;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            window += 1;
        }
        for agent in &mut agents {
            agent.heartbeat(base + window * WINDOW_MS + 31_000).await?;
        }
        anyhow::Ok(work.expected)
    });

    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| db.stop());
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let backlog = aggregator.metric("rtdash_core_questdb_backlog_rows")?;
    let errors = aggregator.metric("rtdash_core_questdb_errors_total")?;
    tokio::task::block_in_place(|| db.restart())?;
    eprintln!(
        "QuestDB was down {:?}; backlog then {backlog} rows, {errors} failed requests",
        down.elapsed()
    );
    assert!(errors > 0.0, "the outage went unnoticed");
    assert!(backlog > 0.0, "nothing was held back");

    let expected = publisher.await??;
    let outcome = wait_exact(
        &db,
        &env.table,
        &expected,
        WINDOW_MS,
        Duration::from_secs(180),
    )
    .await;
    if outcome.is_err() {
        eprintln!("aggregator log:\n{}", aggregator.log_tail(60));
    }
    let rows = outcome?;
    eprintln!("{} windows exact after the outage", rows.len());
    Ok(())
}
