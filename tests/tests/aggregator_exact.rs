//! core-aggregator against real nats-server and QuestDB: partials from several agents end up
//! as QuestDB rows equal to the exact aggregates, and duplicates are counted once.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use futures::StreamExt;
use rtdash_shared::messages::{DeadLetter, PartitionStatus, WindowUpdate};
use rtdash_shared::wire;
use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::fake_agent::FakeAgent;
use rtdash_tests::model::wait_exact;
use rtdash_tests::workload::{base, Workload, METRIC, TENANT, WINDOW_MS};
use rtdash_tests::QuestDb;

const TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_equal_the_exact_aggregates_of_several_agents() -> anyhow::Result<()> {
    let db = QuestDb::shared()?;
    let env = AggregatorEnv::start().await?;
    let mut aggregator = env.aggregator(env.options("agg-exact", db)).await?;
    let mut live = env
        .client
        .subscribe(rtdash_shared::names::live_subject(TENANT, METRIC))
        .await?;
    let mut status = env.client.subscribe("rtdash.status.>").await?;
    env.client.flush().await?;
    let mut work = Workload::new(40, 4, 7);
    let mut agents: Vec<FakeAgent> = (0..3)
        .map(|i| FakeAgent::new(&format!("edge-{i}"), env.js.clone(), 4))
        .collect();
    let base = base(5);
    let mut entries = 0;
    for window in 0..6 {
        let start = base + window * WINDOW_MS;
        for _flush in 0..3 {
            for agent in &mut agents {
                entries += agent.send_flush(&mut work, start).await?;
            }
        }
    }
    // Every agent promises it is done: all windows close (allowed lateness 30 s by default).
    for agent in &mut agents {
        agent.heartbeat(base + 6 * WINDOW_MS + 31_000).await?;
    }
    let rows = wait_exact(db, &env.table, &work.expected, WINDOW_MS, TIMEOUT).await?;
    assert_eq!(rows.len(), work.expected.len());
    assert!(rows.values().all(|r| r.revision == 0 && r.late_count == 0));
    // The total series (no dimensions) has a null dim_set; the others `host,region`.
    assert!(rows
        .iter()
        .all(|((series, _), row)| (series == "{}") == row.dim_set.is_none()));
    assert_eq!(
        aggregator.metric("rtdash_core_partials_merged_total")?,
        entries as f64
    );
    assert_eq!(
        aggregator.metric("rtdash_core_windows_closed_total")?,
        work.expected.len() as f64
    );

    // Live updates: every window's final version was published, with the exact count.
    let mut latest: BTreeMap<(String, i64), WindowUpdate> = BTreeMap::new();
    while latest.len() < work.expected.len() || latest.values().any(|u| !u.is_final) {
        let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(10), live.next()).await
        else {
            break;
        };
        // One message carries one update or a batch of them.
        let mut updates = Vec::new();
        rtdash_shared::wire::decode_live_updates(&message.payload, &mut updates)?;
        // The aggregator also publishes its rollup tier windows (an hour, a day) here.
        for update in updates
            .into_iter()
            .filter(|u| u.window_end - u.window_start == WINDOW_MS)
        {
            latest.insert((update.series().dims_json(), update.window_start), update);
        }
    }
    assert_eq!(latest.len(), work.expected.len());
    for (key, acc) in &work.expected {
        let update = &latest[key];
        assert!(update.is_final && update.revision == 0, "{update:?}");
        assert_eq!(update.stats.count, acc.count());
        assert_eq!(update.stats.sum, Some(acc.sum()));
    }
    // Partition status reports.
    let message = tokio::time::timeout(Duration::from_secs(5), status.next())
        .await?
        .expect("a status report");
    let report: PartitionStatus = wire::decode(&message.payload)?;
    assert_eq!(report.owner, "agg-exact");
    assert!(report.partition < 4);

    assert!(
        aggregator.stop(),
        "graceful stop: {}",
        aggregator.log_tail(20)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_partial_published_twice_is_counted_once() -> anyhow::Result<()> {
    let db = QuestDb::shared()?;
    let env = AggregatorEnv::start().await?;
    let aggregator = env.aggregator(env.options("agg-dup", db)).await?;
    let mut work = Workload::new(8, 1, 11);
    let mut agent = FakeAgent::new("edge-dup", env.js.clone(), 1);
    let base = base(5);
    let entries = |work: &mut Workload, window: i64| -> Vec<_> {
        (0..8)
            .map(|i| work.entry(i, base + window * WINDOW_MS, 3, false))
            .collect()
    };
    let first = agent.batch(0, base, entries(&mut work, 0));
    let mut second = agent.batch(0, base, entries(&mut work, 0));
    // Pipelined: the second was created before the first was acknowledged...
    second.acked_below = first.seq;
    // ...and lands first.
    agent.publish(&second).await?;
    agent.publish(&first).await?;
    // A retry with the same message id: JetStream drops it.
    assert!(agent.publish(&first).await?.duplicate);
    // Republished under other ids (say, after the duplicate window): stored, must be skipped.
    assert!(!agent.publish_as(&first, "copy-of-first").await?.duplicate);
    assert!(!agent.publish_as(&second, "copy-of-second").await?.duplicate);
    let third = agent
        .send(0, base + WINDOW_MS, entries(&mut work, 1))
        .await?;
    assert_eq!(third.acked_below, 3);
    // Much later, another copy of the first: below the floor set by the third's acked_below.
    assert!(
        !agent
            .publish_as(&first, "late-copy-of-first")
            .await?
            .duplicate
    );
    // Garbage on the partition: dead-lettered, the partition goes on.
    env.js
        .publish(
            rtdash_shared::names::partials_subject(0),
            "not a partial".into(),
        )
        .await?
        .await?;
    agent.heartbeat(base + 2 * WINDOW_MS + 31_000).await?;

    wait_exact(db, &env.table, &work.expected, WINDOW_MS, TIMEOUT).await?;
    assert_eq!(
        aggregator.metric("rtdash_core_duplicates_skipped_total")?,
        3.0
    );
    assert_eq!(aggregator.metric("rtdash_core_dead_letters_total")?, 1.0);
    let dlq = env.js.get_stream(rtdash_shared::names::DLQ_STREAM).await?;
    let consumer = dlq
        .create_consumer(OrderedConfig {
            filter_subject: rtdash_shared::names::dlq_subject(rtdash_shared::names::UNKNOWN_TENANT),
            ..Default::default()
        })
        .await?;
    let message = tokio::time::timeout(TIMEOUT, consumer.messages().await?.next())
        .await?
        .expect("a dead letter")?;
    let letter: DeadLetter = wire::decode(&message.payload)?;
    assert_eq!(letter.code, "undecodable_partial");
    assert_eq!(letter.raw, "not a partial");
    Ok(())
}
