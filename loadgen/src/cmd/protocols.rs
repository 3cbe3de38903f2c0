//! `rtdash-loadgen protocols`: events per second through the edge agent for each entry point
//! in turn, the same synthetic events in each protocol's shape: `POST /v1/events` (NDJSON),
//! Segment `/v1/batch`, OTLP `/v1/logs` (protobuf), and DogStatsD datagrams. HTTP protocols
//! run closed-loop on `--connections` connections for `--duration` seconds each; StatsD is
//! sent open-loop at `--statsd-rate` datagrams/s and the lines the agent took are compared
//! with the lines sent (loss = sent − accepted; the kernel's drops are reported too).
//!
//! Rates are what the agent counted (`rtdash_agent_protocol_events_total{outcome="accepted"}`
//! before and after), not what the client sent.
//!
//! ```sh
//! rtdash-loadgen protocols --agent http://127.0.0.1:8081 --statsd 127.0.0.1:8125 --duration 10
//! ```

use crate::protocols::bodies;
use anyhow::{bail, Context};
use clap::Args;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Arguments of `protocols`.
#[derive(Debug, Args)]
pub struct ProtocolsArgs {
    /// Edge agent base URL (its `/metrics` is read too).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub agent: String,
    /// The agent's StatsD address (`statsd.listen`); empty: skip StatsD.
    #[arg(long, default_value = "127.0.0.1:8125")]
    pub statsd: String,
    /// Tenant of `POST /v1/events` (the others use the agent's configured tenants).
    #[arg(long, default_value = "bench")]
    pub tenant: String,
    /// Seconds per protocol.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Events per HTTP request (Segment caps a batch at 500 KB: 1000 of these fit).
    #[arg(long, default_value_t = 500)]
    pub batch: u64,
    /// Concurrent HTTP requests.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// StatsD datagrams per second.
    #[arg(long, default_value_t = 20_000.0)]
    pub statsd_rate: f64,
    /// StatsD lines per datagram.
    #[arg(long, default_value_t = 10)]
    pub statsd_lines: u64,
    /// Which protocols, comma-separated.
    #[arg(long, default_value = "events,segment,otlp,statsd")]
    pub only: String,
}

fn now_rfc3339() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    rtdash_shared::time::format_rfc3339(millis)
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `rtdash_agent_protocol_events_total{protocol, outcome="accepted"}` and the kernel drops.
async fn counters(
    http: &reqwest::Client,
    agent: &str,
    protocol: &str,
) -> anyhow::Result<(f64, f64)> {
    let text = http
        .get(format!("{agent}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let value = |prefix: &str, labels: &[&str]| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix) && labels.iter().all(|x| l.contains(x)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let protocol_label = format!("protocol=\"{protocol}\"");
    Ok((
        value(
            "rtdash_agent_protocol_events_total{",
            &[&protocol_label, "outcome=\"accepted\""],
        ),
        value("rtdash_agent_statsd_kernel_drops_total", &[]),
    ))
}

/// One HTTP protocol, closed loop; returns (events accepted, seconds, non-2xx answers).
async fn http_run(args: &ProtocolsArgs, protocol: &str) -> anyhow::Result<(f64, f64, u64)> {
    let http = crate::agent::http_client(args.connections, Duration::from_secs(30))?;
    let (before, _) = counters(&http, &args.agent, protocol).await?;
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let started = Instant::now();
    let run = format!("run{}", now_nanos());
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (http, next, failures) = (http.clone(), Arc::clone(&next), Arc::clone(&failures));
        let (agent, protocol, run, tenant, batch) = (
            args.agent.clone(),
            protocol.to_owned(),
            run.clone(),
            args.tenant.clone(),
            args.batch,
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                let (path, content_type, body) = match protocol.as_str() {
                    "events" => (
                        "/v1/events",
                        "application/x-ndjson",
                        bodies::events_ndjson(&tenant, first, batch, &now_rfc3339()),
                    ),
                    "segment" => (
                        "/v1/batch",
                        "application/json",
                        bodies::segment_batch(&run, first, batch, &now_rfc3339()),
                    ),
                    _ => (
                        "/v1/logs",
                        "application/x-protobuf",
                        bodies::otlp_logs(first, batch, now_nanos()),
                    ),
                };
                let mut request = http
                    .post(format!("{agent}{path}"))
                    .header("content-type", content_type)
                    .body(body);
                if protocol == "segment" {
                    request = request.basic_auth("bench-key", Some(""));
                }
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    // The counters are bumped before the answer is sent.
    let (after, _) = counters(&http, &args.agent, protocol).await?;
    Ok((after - before, seconds, failures.load(Ordering::Relaxed)))
}

/// StatsD, open loop: (lines sent, lines accepted, kernel drops, seconds).
async fn statsd_run(args: &ProtocolsArgs) -> anyhow::Result<(f64, f64, f64, f64)> {
    let http = crate::agent::http_client(1, Duration::from_secs(30))?;
    let (before, drops_before) = counters(&http, &args.agent, "statsd").await?;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket
        .connect(&args.statsd)
        .context("connect to the StatsD address")?;
    let interval = Duration::from_secs_f64(1.0 / args.statsd_rate);
    let total = (args.statsd_rate * args.duration) as u64;
    let started = Instant::now();
    let mut sent_lines = 0u64;
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let datagram = bodies::statsd_datagram(n * args.statsd_lines, args.statsd_lines);
        if socket.send(&datagram).is_ok() {
            sent_lines += args.statsd_lines;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // Let the listener drain its queue.
    let mut accepted = 0.0;
    let mut drops = 0.0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (after, drops_after) = counters(&http, &args.agent, "statsd").await?;
        accepted = after - before;
        drops = drops_after - drops_before;
        if accepted >= sent_lines as f64 {
            break;
        }
    }
    Ok((sent_lines as f64, accepted, drops, seconds))
}

/// Runs the protocols in turn and prints one line each.
pub async fn run(args: ProtocolsArgs) -> anyhow::Result<()> {
    let wanted: Vec<&str> = args.only.split(',').map(str::trim).collect();
    for protocol in ["events", "segment", "otlp"] {
        if !wanted.contains(&protocol) {
            continue;
        }
        let (accepted, seconds, failures) = http_run(&args, protocol).await?;
        if accepted == 0.0 {
            bail!("the agent accepted no {protocol} events ({failures} failed requests): is its tenant configured?");
        }
        println!(
            "{protocol:8} {:>10.0} events/s  ({accepted:.0} events in {seconds:.1} s, batches of {}, {} connections, {failures} non-2xx)",
            accepted / seconds,
            args.batch,
            args.connections
        );
    }
    if wanted.contains(&"statsd") && !args.statsd.is_empty() {
        let (sent, accepted, drops, seconds) = statsd_run(&args).await?;
        println!(
            "statsd   {:>10.0} events/s  ({:.0} datagrams/s of {} lines offered; {sent:.0} lines sent, {accepted:.0} accepted, loss {:.0}, kernel drops {drops:.0})",
            accepted / seconds,
            args.statsd_rate,
            args.statsd_lines,
            (sent - accepted).max(0.0)
        );
    }
    Ok(())
}
