//! `core-aggregator replay`: after the table is dropped, replaying a time range from
//! RTDASH_PARTIALS restores identical rows (except `updated_at`), and replaying again changes
//! nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use rtdash_tests::aggregator::run_command;
use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::fake_agent::FakeAgent;
use rtdash_tests::model::wait_exact;
use rtdash_tests::table::fetch_rows;
use rtdash_tests::time::format_rfc3339;
use rtdash_tests::workload::{base, Workload, TENANT, WINDOW_MS};
use rtdash_tests::QuestDb;

const TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_dropped_range_restores_identical_rows() -> anyhow::Result<()> {
    let db = QuestDb::shared()?;
    let env = AggregatorEnv::start().await?;
    let options = env.options("agg-replay", db);
    let mut aggregator = env.aggregator(options.clone()).await?;
    let mut work = Workload::new(12, 4, 5);
    let mut agents: Vec<FakeAgent> = (0..2)
        .map(|i| FakeAgent::new(&format!("edge-{i}"), env.js.clone(), 4))
        .collect();
    let base = base(1);
    const WINDOWS: i64 = 8;
    for window in 0..WINDOWS {
        let start = base + window * WINDOW_MS;
        for _flush in 0..2 {
            for agent in &mut agents {
                agent.send_flush(&mut work, start).await?;
            }
        }
    }
    // Close everything, then a correction of window 3 and a duplicate under another id.
    let watermark = base + WINDOWS * WINDOW_MS + 31_000;
    for agent in &mut agents {
        agent.heartbeat(watermark).await?;
    }
    let late = work.entry(1, base + 3 * WINDOW_MS, 2, true);
    let partition = late.series.partition(4);
    let batch = agents[0].send(partition, watermark, vec![late]).await?;
    agents[0].publish_as(&batch, "a-republished-copy").await?;

    let live = wait_exact(db, &env.table, &work.expected, WINDOW_MS, TIMEOUT).await?;
    assert!(live.values().any(|r| r.revision == 1));
    assert!(
        aggregator.stop(),
        "graceful stop: {}",
        aggregator.log_tail(20)
    );

    // Lose the table, replay windows [base + 2 s, base + 6 s).
    let (from, to) = (base + 2 * WINDOW_MS, base + 6 * WINDOW_MS);
    let in_range: BTreeMap<_, _> = live
        .iter()
        .filter(|((_, start), _)| (from..to).contains(start))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(!in_range.is_empty());
    db.exec(&format!("drop table '{}'", env.table))?;
    let args = [
        "replay".to_owned(),
        "--from".to_owned(),
        format_rfc3339(from),
        "--to".to_owned(),
        format_rfc3339(to),
        "--tenant".to_owned(),
        TENANT.to_owned(),
    ];
    for round in 0..2 {
        let output = {
            let options = options.clone();
            let args = args.clone();
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                run_command(&options, &args)
            })
            .await??
        };
        assert!(output.contains("replay: done"), "{output}");
        db.wait_wal_applied(&env.table, TIMEOUT)?;
        let replayed = fetch_rows(db, &env.table)?;
        assert_eq!(replayed, in_range, "round {round}:\n{output}");
    }
    Ok(())
}
