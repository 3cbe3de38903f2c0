//! `rtdash-loadgen peer`: the peer workload, in-process or through a real edge agent.

use crate::agent::{http_client, AgentClient, BodyFormat};
use crate::gateway::GatewayClient;
use crate::openloop::{self, OpenLoopConfig};
use crate::peer::http::{peer_metric_for, PeerSource};
use crate::peer::inprocess::{self, Clock, InprocessConfig, InprocessReport, EXPECTED_GROUPS};
use crate::peer::workload::TENANTS;
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::time::Duration;

/// Where the workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Generate and aggregate in this process through `rtdash_shared::aggregate::Aggregator`.
    Inprocess,
    /// Generate in this process and send through a real edge agent over HTTP.
    Http,
}

/// Arguments of `peer`.
#[derive(Debug, Args)]
pub struct PeerArgs {
    /// inprocess or http.
    #[arg(long, value_enum, default_value = "inprocess")]
    pub mode: Mode,
    /// inprocess: events to generate (bounded run; events/s = events / wall time).
    #[arg(long, default_value_t = 100_000_000)]
    pub events: u64,
    /// inprocess: worker threads (default: the machine's cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// inprocess: events a worker aggregates between drains of its deltas.
    #[arg(long, default_value_t = 1_000_000)]
    pub flush_every: u64,
    /// inprocess: advance event time one second per this many events instead of following
    /// the wall clock (crosses many windows in a short run).
    #[arg(long)]
    pub event_time_rate: Option<u64>,
    /// PRNG seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// inprocess: leave out rtdash's built-in `events` metric (4 series per event that the
    /// peers do not compute), so that the run computes exactly the peers' aggregation. The
    /// report says which configuration ran.
    #[arg(long)]
    pub no_builtin_events: bool,
    /// http: edge agent base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub agent: String,
    /// http: gateway base URL, to define the peer metric for the 10 tenants first.
    #[arg(long)]
    pub gateway: Option<String>,
    /// http: seconds to send.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// http: target events/s (open loop); 0 sends as fast as the agent answers.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// http: events per request.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// http: concurrent requests.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
}

/// Runs `peer`.
pub fn run(args: PeerArgs) -> anyhow::Result<()> {
    match args.mode {
        Mode::Inprocess => run_inprocess(&args),
        Mode::Http => crate::runtime()?.block_on(run_http(&args)),
    }
}

async fn run_http(args: &PeerArgs) -> anyhow::Result<()> {
    let client = http_client(args.connections, Duration::from_secs(30))?;
    if let Some(url) = &args.gateway {
        let gateway = GatewayClient::new(url, client.clone());
        for tenant in TENANTS {
            gateway
                .put_metric(&peer_metric_for(tenant))
                .await
                .with_context(|| format!("defining the peer metric for {tenant}"))?;
        }
    }
    let agent = AgentClient::new(&args.agent, client);
    let config = OpenLoopConfig {
        rate: (args.rate > 0.0).then_some(args.rate),
        batch_size: args.batch_size,
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        connections: args.connections,
        format: BodyFormat::Json,
        progress: (!args.json).then_some(Duration::from_secs(5)),
    };
    let seed = args.seed;
    let batch_size = args.batch_size;
    let report = openloop::run(agent, config, |i| {
        PeerSource::new(
            seed.wrapping_mul(1000).wrapping_add(i as u64),
            batch_size,
            BodyFormat::Json,
        )
    })
    .await;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        openloop::print_report(
            "peer workload through the edge agent (HTTP, JSON batches)",
            &report,
        );
    }
    Ok(())
}

fn run_inprocess(args: &PeerArgs) -> anyhow::Result<()> {
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let config = InprocessConfig {
        events: args.events,
        workers,
        flush_every: args.flush_every,
        clock: match args.event_time_rate {
            Some(events_per_sec) => Clock::Simulated { events_per_sec },
            None => Clock::Wall,
        },
        seed: args.seed,
        builtin_events: !args.no_builtin_events,
    };
    let report = inprocess::run(&config);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_inprocess(&report);
    }
    if report.max_groups_per_window > EXPECTED_GROUPS {
        anyhow::bail!(
            "a window had {} groups, the workload has {EXPECTED_GROUPS}",
            report.max_groups_per_window
        );
    }
    Ok(())
}

fn print_inprocess(r: &InprocessReport) {
    println!("peer workload, in-process ({} workers)", r.workers);
    if r.builtin_events {
        println!(
            "  metrics           peer + rtdash's built-in `events` (5 series per event; the peers compute only the first)"
        );
    } else {
        println!(
            "  metrics           peer only (--no-builtin-events: built-in `events` metric left out; the peers' aggregation exactly)"
        );
    }
    println!(
        "  events            {:>14}  in {:.2} s",
        r.events, r.seconds
    );
    println!("  events/s          {:>14.0}", r.events_per_sec);
    println!(
        "  per CPU-second    {:>14.0}  ({:.2} CPU-seconds; the cost per event whatever else runs)",
        r.events_per_cpu_sec, r.cpu_seconds
    );
    println!(
        "  late              {:>14}  generated, {} dropped (window already emitted)",
        r.late_generated, r.late_dropped
    );
    println!(
        "  windows emitted   {:>14}  ({} peer rows, at most {} groups in a window; {} built-in rows)",
        r.windows_emitted, r.rows_emitted, r.max_groups_per_window, r.builtin_rows_emitted
    );
    println!(
        "  events in output  {:>14}  (+ {} dropped = {})",
        r.events_emitted,
        r.late_dropped,
        r.events_emitted + r.late_dropped
    );
}
