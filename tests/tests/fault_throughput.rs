//! A measurement, not a test (ignored): how the core aggregators' throughput changes from 1 to
//! 2 aggregators and from R1 streams on one nats-server to R3 streams on the 3-node cluster of
//! `deploy/cluster/`. Recorded in BENCHMARKS.md ("Aggregators and R3").
//!
//! Per configuration and run, on fresh servers (`rtdash_tests::fault::FaultStack`, the real
//! `core-aggregator` binary, QuestDB):
//!
//! 1. `core-aggregator setup` creates the topology (R1 or R3) and the table;
//! 2. a backlog of `RTDASH_BENCH_BATCHES` (default 4,000) partial batches of 500 series deltas
//!    each (20,000 series over 4 partitions, one-minute windows, real wire format and message
//!    ids) is published to `RTDASH_PARTIALS` with 64 publishes in flight: the publish rate is
//!    JetStream's write rate for partials (R3: every write goes to a majority first);
//! 3. `n` aggregators are started together (production checkpoint and write cadence); the
//!    merge rate is the deltas merged (`rtdash_core_partials_merged_total`, summed over the
//!    aggregators) from the first progress seen to the last delta, divided by that time; the
//!    drain time runs from the start of the aggregators, start-up and lease acquisition
//!    included.
//!
//! ```text
//! cargo build --release -p core-aggregator
//! RTDASH_CORE_AGGREGATOR_BIN=$PWD/target/release/core-aggregator \
//!   cargo test -p rtdash-tests --test fault_throughput -- --ignored --nocapture
//! ```
//!
//! `RTDASH_BENCH_RUNS` (default 3) runs per configuration; the medians are printed at the end
//! as `BENCH-SUMMARY` lines.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream;
use rtdash_shared::names;
use rtdash_shared::wire::{self, Format};
use rtdash_tests::aggregator::{run_command, Aggregator};
use rtdash_tests::env_or;
use rtdash_tests::fake_agent::FakeAgent;
use rtdash_tests::fault::{FaultOptions, FaultStack};
use rtdash_tests::workload::Backlog;

const PARTITIONS: u32 = 4;
const IN_FLIGHT: usize = 64;

/// One run's figures.
#[derive(Clone, Copy, Debug)]
struct Run {
    publish_batches_per_s: f64,
    merged_per_s: f64,
    drain_s: f64,
}

/// Publishes the backlog (pipelined) and returns (batches/s, deltas published).
async fn preload(js: &jetstream::Context, batches: usize) -> anyhow::Result<(f64, u64)> {
    let mut backlog = Backlog::new(PARTITIONS);
    let mut agents: Vec<FakeAgent> = (0..4)
        .map(|i| FakeAgent::new(&format!("edge-{i}"), js.clone(), PARTITIONS))
        .collect();
    // Build first, so the publish rate is the servers', not the encoder's.
    let mut messages = Vec::with_capacity(batches);
    let mut entries_total = 0u64;
    for b in 0..batches {
        let (partition, window, entries) = backlog.batch(b);
        entries_total += entries.len() as u64;
        let batch = agents[b % 4].batch(partition, window, entries);
        let id = names::partial_msg_id(&batch.agent_id, batch.partition, batch.seq);
        messages.push((
            names::partials_subject(batch.partition),
            id,
            wire::encode(&batch, Format::Binary)?,
        ));
    }
    let started = Instant::now();
    let mut pending = VecDeque::with_capacity(IN_FLIGHT);
    for (subject, id, payload) in messages {
        if pending.len() >= IN_FLIGHT {
            let ack: jetstream::context::PublishAckFuture =
                pending.pop_front().context("pending")?;
            ack.await?;
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        pending.push_back(
            js.publish_with_headers(subject, headers, payload.into())
                .await?,
        );
    }
    for ack in pending {
        ack.await?;
    }
    Ok((
        batches as f64 / started.elapsed().as_secs_f64(),
        entries_total,
    ))
}

async fn run_once(replicas: usize, aggregators: usize, batches: usize) -> anyhow::Result<Run> {
    let mut options = FaultOptions {
        aggregators: 0,
        gateways: 0,
        ..FaultOptions::default()
    };
    if replicas == 3 {
        options = options.cluster();
    }
    options.stack.partitions = PARTITIONS;
    // Production cadence (the harness's test timings checkpoint and write faster).
    for (key, value) in [
        ("CHECKPOINT__INTERVAL_MS", "2000"),
        ("WRITER__PROVISIONAL_INTERVAL_MS", "1000"),
        ("CONSUMER__ACK_WAIT_MS", "60000"),
    ] {
        options.stack = options.stack.aggregator(key, value);
    }
    let mut stack = tokio::task::block_in_place(|| FaultStack::start(options))?;
    let setup = stack.aggregator_options(1);
    tokio::task::block_in_place(|| run_command(&setup, &["setup"]))?;
    let client = stack
        .cluster
        .as_ref()
        .map_or_else(async_nats::ConnectOptions::new, |c| {
            c.operator().connect_options()
        })
        .connect(stack.nats_url().split(',').collect::<Vec<_>>().as_slice())
        .await?;
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(10));
    let (publish_batches_per_s, entries_total) = preload(&js, batches).await?;

    let started = Instant::now();
    let starting: Vec<_> = (1..=aggregators)
        .map(|n| {
            let options = stack.aggregator_options(n);
            std::thread::spawn(move || Aggregator::start(options))
        })
        .collect();
    for handle in starting {
        let aggregator = handle
            .join()
            .map_err(|_| anyhow::anyhow!("start thread panicked"))??;
        stack.aggregators.push(aggregator);
    }
    // The merge rate is timed from the first progress seen (start-up and lease acquisition
    // excluded) to the last delta; the drain time includes them.
    let mut first: Option<(Instant, f64)> = None;
    loop {
        let merged: f64 = stack
            .aggregators
            .iter()
            .map(|a| a.metric("rtdash_core_partials_merged_total").unwrap_or(0.0))
            .sum();
        if merged > 0.0 && first.is_none() {
            first = Some((Instant::now(), merged));
        }
        if merged >= entries_total as f64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {merged} of {entries_total} merged after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = started.elapsed().as_secs_f64();
    let (first_at, first_merged) = first.context("no progress")?;
    let merging = first_at.elapsed().as_secs_f64().max(0.1);
    let owned = stack.owned_partitions();
    let run = Run {
        publish_batches_per_s,
        merged_per_s: (entries_total as f64 - first_merged) / merging,
        drain_s: drain,
    };
    println!(
        "BENCH-RESULT replicas={replicas} aggregators={aggregators} batches={batches} \
         deltas={entries_total} publish_batches_per_s={:.0} publish_deltas_per_s={:.0} \
         drain_s={:.2} merged_deltas_per_s={:.0} owned={owned:?}",
        run.publish_batches_per_s,
        run.publish_batches_per_s * Backlog::ENTRIES_PER_BATCH as f64,
        run.drain_s,
        run.merged_per_s,
    );
    Ok(run)
}

/// `median (min-max)` with `decimals` decimals.
fn median_range(mut values: Vec<f64>, decimals: usize) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "{:.d$} ({:.d$}-{:.d$})",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
        d = decimals
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run with --ignored --nocapture"]
async fn aggregator_and_replication_throughput() -> anyhow::Result<()> {
    let batches = env_or("RTDASH_BENCH_BATCHES", 4_000);
    let runs = env_or("RTDASH_BENCH_RUNS", 3);
    let configs = [(1, 1), (1, 2), (3, 1), (3, 2)];
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); configs.len()];
    // Interleaved, so slow phases of a shared machine spread over every configuration.
    for _ in 0..runs {
        for (i, (replicas, aggregators)) in configs.iter().enumerate() {
            results[i].push(run_once(*replicas, *aggregators, batches).await?);
        }
    }
    for ((replicas, aggregators), runs) in configs.iter().zip(&results) {
        println!(
            "BENCH-SUMMARY replicas=R{replicas} aggregators={aggregators} runs={} \
             publish_batches_per_s={} merged_deltas_per_s={} drain_s={}",
            runs.len(),
            median_range(runs.iter().map(|r| r.publish_batches_per_s).collect(), 0),
            median_range(runs.iter().map(|r| r.merged_per_s).collect(), 0),
            median_range(runs.iter().map(|r| r.drain_s).collect(), 1),
        );
    }
    Ok(())
}
