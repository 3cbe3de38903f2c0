//! rtdash's load generator and benchmark probes.
//!
//! One module per subcommand under [`cmd`]; [`peer`] holds the peer (Spark/Flink) workload;
//! the rest are the pieces the subcommands share.
#![forbid(unsafe_code)]

pub mod agent;
pub mod centrifugo;
pub mod cmd;
pub mod credentials;
pub mod gateway;
pub mod jsonw;
pub mod openloop;
pub mod peer;
pub mod probe;
pub mod protocols;
pub mod sse;
pub mod stats;
pub mod synth;

use clap::{Parser, Subcommand};

/// Command line of `rtdash-loadgen`.
#[derive(Debug, Parser)]
#[command(name = "rtdash-loadgen", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Key sent to the edge agent (an `ingest` key) and, without --gateway-key, to the
    /// gateway; default $RTDASH_KEY.
    #[arg(long, global = true)]
    pub key: Option<String>,
    /// Key sent to the gateway (`editor` to set up metrics and dashboards, `viewer` to
    /// read); default $RTDASH_GATEWAY_KEY, else --key.
    #[arg(long, global = true)]
    pub gateway_key: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Realistic continuous demo traffic (and, with --gateway, demo metrics and dashboard).
    Demo(cmd::demo::DemoArgs),
    /// Open-loop load at a fixed rate (synthetic events or --replay of an NDJSON file).
    Load(cmd::load::LoadArgs),
    /// Event-to-screen latency: markers through the agent, timed until an SSE viewer sees them.
    Latency(cmd::latency::LatencyArgs),
    /// N concurrent SSE viewers: delivery delay of live updates and gateway memory.
    Fanout(cmd::fanout::FanoutArgs),
    /// The peer workload (shared/bench/peer-workload.md), in-process or through an edge agent.
    Peer(cmd::peer::PeerArgs),
    /// Latency of the gateway's metric query endpoint.
    Query(cmd::query::QueryArgs),
    /// Events/s through the agent per entry point: /v1/events, Segment, OTLP logs, StatsD.
    Protocols(cmd::protocols::ProtocolsArgs),
    /// History for the query benchmark: rollup-tier rows of a metric with 100 series.
    SeedTiers(cmd::seed_tiers::SeedTiersArgs),
}

/// Installs the log subscriber (stderr; `RUST_LOG` overrides the `info` default).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    credentials::set(cli.key, cli.gateway_key)?;
    match cli.command {
        Command::Demo(args) => runtime()?.block_on(cmd::demo::run(args)),
        Command::Load(args) => runtime()?.block_on(cmd::load::run(args)),
        Command::Latency(args) => runtime()?.block_on(cmd::latency::run(args)),
        Command::Fanout(args) => runtime()?.block_on(cmd::fanout::run(args)),
        Command::Peer(args) => cmd::peer::run(args),
        Command::Query(args) => runtime()?.block_on(cmd::query::run(args)),
        Command::Protocols(args) => runtime()?.block_on(cmd::protocols::run(args)),
        Command::SeedTiers(args) => runtime()?.block_on(cmd::seed_tiers::run(args)),
    }
}

/// The async runtime of the network subcommands (one worker per core).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("loadgen")
        .build()
}
