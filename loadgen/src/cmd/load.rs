//! `rtdash-loadgen load`: open-loop load at a fixed rate against an edge agent (synthetic
//! events, or `--replay` of an NDJSON file). See [`crate::openloop`] for how the schedule,
//! the lag and the latencies are measured.

use crate::agent::{http_client, AgentClient, BodyFormat};
use crate::gateway::GatewayClient;
use crate::openloop::{self, BatchSource, OpenLoopConfig};
use crate::synth::{load_metric, SynthConfig, SynthGen};
use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Edge agent base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub agent: String,
    /// Target events per second (open loop); 0 sends as fast as answered (closed loop).
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Tenants (`tenant-0`..).
    #[arg(long, default_value_t = 10)]
    pub tenants: u32,
    /// Event types (`type-0`..).
    #[arg(long, default_value_t = 5)]
    pub event_types: u32,
    /// Distinct values of the `key` dimension (up to millions).
    #[arg(long, default_value_t = 1000)]
    pub cardinality: u32,
    /// Distinct `user_id` values.
    #[arg(long, default_value_t = 100_000)]
    pub users: u32,
    /// Share of late events (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub late_fraction: f64,
    /// Late events are late by a uniform 1..=this many seconds.
    #[arg(long, default_value_t = 60)]
    pub late_max_secs: u32,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Concurrent requests (connections).
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Approximate size of one event in bytes (padded).
    #[arg(long, default_value_t = 200)]
    pub payload_bytes: usize,
    /// Body encoding.
    #[arg(long, value_enum, default_value = "json")]
    pub format: BodyFormat,
    /// Send the events of this NDJSON file (one event per line, sent as they are, in
    /// batches of --batch-size) instead of synthetic ones; stops at the end of the file.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// Gateway base URL: create the `load` metric (value by region, plan, key) for every
    /// tenant first.
    #[arg(long)]
    pub gateway: Option<String>,
    /// PRNG seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds between progress lines (0: none).
    #[arg(long, default_value_t = 5.0)]
    pub progress: f64,
    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
}

/// Synthetic batches.
struct SynthSource {
    gen: SynthGen,
    batch_size: usize,
    format: BodyFormat,
    capacity: usize,
}

impl BatchSource for SynthSource {
    fn next_batch(&mut self) -> Option<(Bytes, u64)> {
        let mut out = Vec::with_capacity(self.capacity);
        self.gen.write_batch(&mut out, self.batch_size, self.format);
        self.capacity = self.capacity.max(out.len() + 1024);
        Some((Bytes::from(out), self.batch_size as u64))
    }
}

/// Pre-built batches of a replayed file, shared by the sender tasks.
struct ReplaySource {
    batches: Arc<Vec<(Bytes, u64)>>,
    next: Arc<AtomicUsize>,
}

impl BatchSource for ReplaySource {
    fn next_batch(&mut self) -> Option<(Bytes, u64)> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        self.batches.get(index).cloned()
    }
}

/// Splits an NDJSON file into bodies of `batch_size` lines.
fn replay_batches(
    path: &PathBuf,
    batch_size: usize,
    format: BodyFormat,
) -> anyhow::Result<Vec<(Bytes, u64)>> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .collect();
    let mut batches = Vec::new();
    for chunk in lines.chunks(batch_size.max(1)) {
        let mut body = Vec::new();
        if format == BodyFormat::Json {
            body.push(b'[');
        }
        for (i, line) in chunk.iter().enumerate() {
            if i > 0 {
                body.push(if format == BodyFormat::Json {
                    b','
                } else {
                    b'\n'
                });
            }
            body.extend_from_slice(line);
        }
        body.push(if format == BodyFormat::Json {
            b']'
        } else {
            b'\n'
        });
        batches.push((Bytes::from(body), chunk.len() as u64));
    }
    Ok(batches)
}

/// Runs `load`.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let client = http_client(args.connections, Duration::from_secs(30))?;
    let synth = SynthConfig {
        tenants: args.tenants,
        event_types: args.event_types,
        cardinality: args.cardinality,
        users: args.users,
        late_fraction: args.late_fraction,
        late_max_secs: args.late_max_secs,
        payload_bytes: args.payload_bytes,
    };
    if let Some(gateway) = &args.gateway {
        let gateway = GatewayClient::new(gateway, client.clone());
        for tenant in SynthGen::new(synth.clone(), 0).tenants() {
            gateway
                .put_metric(&load_metric(tenant))
                .await
                .with_context(|| format!("creating the load metric of {tenant}"))?;
        }
        tracing::info!(tenants = args.tenants, "load metric defined");
    }
    let agent = AgentClient::new(&args.agent, client);
    let config = OpenLoopConfig {
        rate: (args.rate > 0.0).then_some(args.rate),
        batch_size: args.batch_size,
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        connections: args.connections,
        format: args.format,
        progress: (args.progress > 0.0).then(|| Duration::from_secs_f64(args.progress)),
    };
    let report = match &args.replay {
        Some(path) => {
            let batches = Arc::new(replay_batches(path, args.batch_size, args.format)?);
            let next = Arc::new(AtomicUsize::new(0));
            openloop::run(agent, config, |_| ReplaySource {
                batches: Arc::clone(&batches),
                next: Arc::clone(&next),
            })
            .await
        }
        None => {
            let seed = args.seed;
            openloop::run(agent, config, |i| SynthSource {
                gen: SynthGen::new(
                    synth.clone(),
                    seed.wrapping_mul(1000).wrapping_add(i as u64),
                ),
                batch_size: args.batch_size,
                format: args.format,
                capacity: args.batch_size * (args.payload_bytes + 16),
            })
            .await
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        openloop::print_report("load", &report);
    }
    if report.fell_behind {
        tracing::warn!(
            target = report.target_rate,
            achieved = report.offered_rate,
            lag_ms = report.final_lag_ms,
            "the target rate was not sustained"
        );
    }
    Ok(())
}
