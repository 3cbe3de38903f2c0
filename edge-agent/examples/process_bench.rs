//! Where the agent's CPU goes per event, single-threaded and without HTTP or NATS: parsing
//! alone (the agent's one-pass `parse_batch`, and split + parse separately), aggregation alone, the whole `Ingest::process` (split, parse, validate, aggregate),
//! and draining + encoding the deltas as a flush would. Reports events per CPU-second
//! (process CPU time from `/proc/self/stat`, so other load on the machine does not skew it).
//!
//! ```text
//! cargo run --release -p edge-agent --example process_bench -- --seconds 2 --rounds 5
//! ```
//!
//! `--schema` adds schema discovery's per-batch recording to `Ingest::process`.

use clap::Parser;
use edge_agent::aggregate::{InFlightRequests, Shards};
use edge_agent::config::{AgentConfig, IngestConfig};
use edge_agent::ingest::{Ingest, IngestAuth, IngestScope};
use edge_agent::memory::MemoryBudget;
use edge_agent::metrics::AgentMetrics;
use edge_agent::publish::deadletter::{DeadLetters, DlqSettings};
use edge_agent::publish::spool::Spool;
use rtdash_shared::event::{parse_batch, parse_event, split_batch, Event, EventLimits};
use rtdash_shared::messages::PartialBatch;
use rtdash_shared::metric::{MetricDefinition, MetricSet};
use rtdash_shared::time::now_millis;
use rtdash_shared::wire::{self, Format};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Events per body.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Run only the measurements whose name contains this (e.g. `process`, for `perf`).
    #[arg(long)]
    only: Option<String>,
    /// Rounds per measurement (each `--seconds` of CPU); the best one is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Record schema discovery in `Ingest::process` (on in the agent by default).
    #[arg(long)]
    schema: bool,
}

/// The agent binary's allocator (feature `jemalloc`), so allocation costs are the binary's.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (utime + stime) / 100.0
}

fn bodies(batch: usize) -> Vec<Vec<u8>> {
    let now = now_millis();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let plans = ["free", "pro", "team", "enterprise"];
    let devices = ["ios", "android", "web"];
    (0..16)
        .map(|_| {
            let events: Vec<String> = (0..batch)
                .map(|_| {
                    state ^= state >> 12;
                    state ^= state << 25;
                    state ^= state >> 27;
                    let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
                    format!(
                        r#"{{"tenant_id":"bench","source":"checkout-service","event_type":"purchase","properties":{{"region":"region-{}","plan":"{}","device":"{}","amount":{}.{:02},"user_id":"u{}"}},"occurred_at":"{}"}}"#,
                        r % 8,
                        plans[(r >> 8) as usize % 4],
                        devices[(r >> 16) as usize % 3],
                        (r >> 24) % 500,
                        (r >> 32) % 100,
                        (r >> 20) % 100_000,
                        rtdash_shared::time::format_rfc3339(now - (r >> 40) as i64 % 2_000),
                    )
                })
                .collect();
            format!("[{}]", events.join(",")).into_bytes()
        })
        .collect()
}

fn metric_set() -> Arc<MetricSet> {
    let def = MetricDefinition::from_json(
        br#"{"name":"purchases","event_type":"purchase","field":"amount","unique":"user_id","dimensions":["region","plan","device"]}"#,
    )
    .expect("valid definition");
    Arc::new(MetricSet::new([def]))
}

/// Runs `work` (returning events done) until `seconds` of CPU passed; prints events/CPU-s.
/// Skipped unless its name contains `only`.
/// Each of `rounds` rounds lasts `seconds` of CPU; the best round is the figure least
/// disturbed by other load on the machine (the median is shown beside it).
fn measure(
    only: Option<&str>,
    rounds: usize,
    name: &str,
    seconds: f64,
    mut work: impl FnMut() -> usize,
) {
    if only.is_some_and(|only| !name.contains(only)) {
        return;
    }
    let wall = Instant::now();
    let mut rates = Vec::with_capacity(rounds);
    let mut total = 0usize;
    for _ in 0..rounds.max(1) {
        let start = cpu_seconds();
        let mut events = 0usize;
        while cpu_seconds() - start < seconds {
            events += work();
        }
        total += events;
        rates.push(events as f64 / (cpu_seconds() - start));
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{name:<50} {:>10.0} events per CPU-second (best of {}; median {:.0}; {total} events, {:.1} s wall)",
        rates[rates.len() - 1],
        rates.len(),
        rates[rates.len() / 2],
        wall.elapsed().as_secs_f64()
    );
}

fn main() {
    let args = Args::parse();
    let bodies = bodies(args.batch);
    let limits = EventLimits::default();
    let only = args.only.as_deref();
    println!(
        "body: {} events, {} bytes ({} bytes per event)",
        args.batch,
        bodies[0].len(),
        bodies[0].len() / args.batch
    );

    let mut i = 0;
    measure(
        only,
        args.rounds,
        "parse only (parse_batch: one pass)",
        args.seconds,
        || {
            let body = &bodies[i % bodies.len()];
            i += 1;
            let batch = parse_batch(body, false, 100_000, &limits, now_millis()).expect("batch");
            batch
                .items
                .iter()
                .filter(|(_, event)| event.is_ok())
                .count()
        },
    );
    let mut i = 0;
    measure(
        only,
        args.rounds,
        "parse only (split_batch, then parse_event)",
        args.seconds,
        || {
            let body = &bodies[i % bodies.len()];
            i += 1;
            let items = split_batch(body, false, 100_000).expect("batch");
            let now = now_millis();
            items
                .as_slice()
                .iter()
                .filter(|raw| parse_event(raw, &limits, now).is_ok())
                .count()
        },
    );

    let mut i = 0;
    measure(
        only,
        args.rounds,
        "  of which split_batch",
        args.seconds,
        || {
            let body = &bodies[i % bodies.len()];
            i += 1;
            split_batch(body, false, 100_000)
                .expect("batch")
                .as_slice()
                .len()
        },
    );
    let items: Vec<Vec<&[u8]>> = bodies
        .iter()
        .map(|body| {
            split_batch(body, false, 100_000)
                .expect("batch")
                .as_slice()
                .to_vec()
        })
        .collect();
    let mut i = 0;
    measure(
        only,
        args.rounds,
        "  of which parse_event",
        args.seconds,
        || {
            let items = &items[i % items.len()];
            i += 1;
            let now = now_millis();
            items
                .iter()
                .filter(|raw| parse_event(raw, &limits, now).is_ok())
                .count()
        },
    );

    let now = now_millis();
    let parsed: Vec<Vec<Event<'_>>> = bodies
        .iter()
        .map(|body| {
            split_batch(body, false, 100_000)
                .expect("batch")
                .as_slice()
                .iter()
                .map(|raw| parse_event(raw, &limits, now).expect("valid"))
                .collect()
        })
        .collect();
    let shards = Shards::new(1, metric_set());
    let mut i = 0;
    let mut since_drain = 0;
    measure(
        only,
        args.rounds,
        "aggregate only (Aggregator::add, 6 series/event)",
        args.seconds,
        || {
            let events = &parsed[i % parsed.len()];
            i += 1;
            shards.add_all(events.iter());
            since_drain += events.len();
            if since_drain >= 100_000 {
                shards.drain_all(0);
                since_drain = 0;
            }
            events.len()
        },
    );

    let shards = Shards::new(1, metric_set());
    let mut i = 0;
    let mut entries_total = 0usize;
    let mut bytes_total = 0usize;
    measure(
        only,
        args.rounds,
        "aggregate + drain + encode every 10k events",
        args.seconds,
        || {
            let mut done = 0;
            for _ in 0..10 {
                let events = &parsed[i % parsed.len()];
                i += 1;
                shards.add_all(events.iter());
                done += events.len();
            }
            let entries = shards.drain_all(0);
            entries_total += entries.len();
            let batch = PartialBatch {
                agent_id: "edge-bench".into(),
                partition: 0,
                seq: 1,
                acked_below: 1,
                watermark: 0,
                created_at: 0,
                entries,
            };
            bytes_total += wire::encode(&batch, Format::Binary)
                .map(|b| b.len())
                .unwrap_or(0);
            done
        },
    );
    if entries_total > 0 {
        println!("  ({entries_total} entries, {bytes_total} bytes encoded)");
    }

    let dir = std::env::temp_dir().join(format!("edge-process-bench-{}", std::process::id()));
    let metrics = AgentMetrics::new();
    let shards = Arc::new(Shards::new(1, metric_set()));
    let (spool, _) = Spool::open(
        &dir.join("spool"),
        "b",
        1 << 20,
        1 << 30,
        1 << 24,
        metrics.clone(),
    )
    .expect("spool");
    let spool = Arc::new(spool);
    let dlq = Arc::new(
        DeadLetters::open(
            &dir.join("dlq"),
            "b",
            DlqSettings {
                max_raw_bytes: 4096,
                queue_bytes: 1 << 20,
                spool_max_bytes: 1 << 20,
            },
            metrics.clone(),
        )
        .expect("dlq"),
    );
    let defaults = AgentConfig::default();
    let ingest = Ingest {
        limits: EventLimits::default(),
        config: IngestConfig::default(),
        shards: Arc::clone(&shards),
        dlq: Arc::clone(&dlq),
        archive: None,
        spool: Arc::clone(&spool),
        budget: MemoryBudget::new(
            defaults.memory_budget_bytes,
            Arc::clone(&shards),
            spool,
            dlq,
            None,
        ),
        in_flight: Arc::new(InFlightRequests::default()),
        concurrency: Arc::new(Semaphore::new(1)),
        metrics,
        shutdown: CancellationToken::new(),
        max_raw_bytes: 4096,
        // Not consulted by `process`, which takes the scope: the bench's events name their
        // tenants, as an operator's would.
        auth: IngestAuth::Sidecar {
            tenant: "bench".into(),
        },
        durable: None,
        idempotency: None,
        definitions_loaded: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        tenant_rates: edge_agent::ingest::tenant_rate::TenantRates::new(0, None),
        schema: args.schema.then(|| {
            Arc::new(edge_agent::schema::Catalog::new(
                edge_agent::config::SchemaConfig::default(),
            ))
        }),
    };
    let scope = IngestScope { tenant: None };
    let mut i = 0;
    let mut since_drain = 0;
    measure(
        only,
        args.rounds,
        "Ingest::process (split+parse+aggregate)",
        args.seconds,
        || {
            let body = &bodies[i % bodies.len()];
            i += 1;
            let _ = ingest.process(body, false, now_millis(), &scope);
            since_drain += args.batch;
            if since_drain >= 100_000 {
                shards.drain_all(0);
                since_drain = 0;
            }
            args.batch
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}
