//! core-aggregator lateness: data 45 s behind the watermark is merged into its (closed)
//! window as a correction; data beyond the correction horizon is counted, published on
//! `rtdash.late.<tenant>`, and leaves its window unchanged. Default settings (allowed lateness
//! 30 s, horizon 10 min); the agents' watermarks jump through a window 15 min old, so nothing
//! waits in real time.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use futures::StreamExt;
use rtdash_shared::messages::LateRecord;
use rtdash_shared::names;
use rtdash_shared::wire;
use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::fake_agent::FakeAgent;
use rtdash_tests::model::{mismatch, wait_exact};
use rtdash_tests::table::fetch_rows;
use rtdash_tests::workload::{base, Workload, TENANT, WINDOW_MS};
use rtdash_tests::{until, QuestDb};

const TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_data_is_corrected_within_the_horizon_and_routed_beyond_it() -> anyhow::Result<()> {
    let db = QuestDb::shared()?;
    let env = AggregatorEnv::start().await?;
    let aggregator = env.aggregator(env.options("agg-late", db)).await?;
    const SERIES: usize = 4;
    let mut work = Workload::new(SERIES, 4, 99);
    let mut agent = FakeAgent::new("edge-late", env.js.clone(), 4);
    // Far enough in the past that every watermark below, up to the horizon's end, is behind
    // this clock: the aggregator clamps agent clocks running ahead of its own.
    let base = base(15);
    let window_end = base + WINDOW_MS;
    let by_partition = |entries: Vec<rtdash_shared::messages::PartialEntry>| {
        let mut out: std::collections::BTreeMap<u32, Vec<_>> = Default::default();
        for entry in entries {
            out.entry(entry.series.partition(4))
                .or_default()
                .push(entry);
        }
        out
    };

    // On time, then closed: the watermark passes the window end by 45 s (lateness 30 s).
    let on_time: Vec<_> = (0..SERIES).map(|i| work.entry(i, base, 3, false)).collect();
    for (partition, entries) in by_partition(on_time) {
        agent.send(partition, base, entries).await?;
    }
    let watermark = window_end + 45_000;
    agent.heartbeat(watermark).await?;
    let closed = wait_exact(db, &env.table, &work.expected, WINDOW_MS, TIMEOUT).await?;
    assert!(closed.values().all(|r| r.is_final && r.revision == 0));

    // 45 s behind the watermark: merged, revision + 1, late count raised.
    let late: Vec<_> = (0..SERIES).map(|i| work.entry(i, base, 2, true)).collect();
    for (partition, entries) in by_partition(late) {
        agent.send(partition, watermark, entries).await?;
    }
    let corrected = wait_exact(db, &env.table, &work.expected, WINDOW_MS, TIMEOUT).await?;
    assert!(
        corrected
            .values()
            .all(|r| r.revision == 1 && r.late_count == 2),
        "{corrected:?}"
    );
    assert_eq!(
        aggregator.metric("rtdash_core_corrections_total")?,
        SERIES as f64
    );

    // Past the horizon (10 min after the window end): counted, on the late stream, window
    // unchanged.
    let far = window_end + 600_000 + 1_000;
    agent.heartbeat(far).await?;
    let mut beyond = Workload::new(SERIES, 4, 1234); // not part of the expectation
    let beyond: Vec<_> = (0..SERIES)
        .map(|i| beyond.entry(i, base, 5, false))
        .collect();
    for (partition, entries) in by_partition(beyond) {
        agent.send(partition, far, entries).await?;
    }
    until(TIMEOUT, "late data counted", || {
        aggregator
            .metric("rtdash_core_late_beyond_horizon_total")
            .unwrap_or(0.0)
            == SERIES as f64
    })
    .await?;
    let stream = env.js.get_stream(names::LATE_STREAM).await?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: names::late_subject(TENANT),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?.take(SERIES);
    let mut records = Vec::new();
    while let Some(message) = tokio::time::timeout(TIMEOUT, messages.next()).await? {
        records.push(wire::decode::<LateRecord>(&message?.payload)?);
    }
    assert_eq!(records.len(), SERIES);
    for record in &records {
        assert_eq!(record.entry.window_start, base);
        assert_eq!(record.entry.sketch.count(), 5);
        assert_eq!(record.agent_id, "edge-late");
        assert!(record.watermark >= far);
    }
    db.wait_wal_applied(&env.table, TIMEOUT)?;
    let after = fetch_rows(db, &env.table)?;
    assert_eq!(
        after, corrected,
        "windows changed by data beyond the horizon"
    );
    assert_eq!(mismatch(&after, &work.expected, WINDOW_MS), None);
    // Past the horizon, stored final and checkpointed: evicted from memory.
    until(TIMEOUT, "windows evicted", || {
        aggregator
            .metric("rtdash_core_windows_evicted_total")
            .unwrap_or(0.0)
            == SERIES as f64
    })
    .await?;
    Ok(())
}
