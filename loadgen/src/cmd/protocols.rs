//! `rtdash-loadgen protocols`: events per second through the edge agent for each entry point
//! in turn, the same synthetic events in each protocol's shape: `POST /v1/events` (NDJSON),
//! Segment `/v1/batch`, OTLP `/v1/logs` (protobuf), and DogStatsD datagrams. HTTP protocols
//! run closed-loop on `--connections` connections for `--duration` seconds each; StatsD is
//! sent open-loop at `--statsd-rate` datagrams/s and the lines the agent took are compared
//! with the lines sent (loss = sent − accepted; the kernel's drops are reported too).
//!
//! With `--statsd-peer` and `statsd-peer` in `--only`, the same datagrams at the same rate go
//! to a peer StatsD server, whose own counter says what it took.
//!
//! Rates are what the agent counted (`rtdash_agent_protocol_events_total{outcome="accepted"}`
//! before and after), not what the client sent.
//!
//! ```sh
//! rtdash-loadgen protocols --agent http://127.0.0.1:8081 --statsd 127.0.0.1:8125 --duration 10
//! ```

use crate::protocols::{bodies, udp};
use anyhow::bail;
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
    /// A peer StatsD server to send the same datagrams to (`statsd-peer` in `--only`), e.g.
    /// Prometheus statsd_exporter (`bench/peers/statsd_exporter.sh`) at `127.0.0.1:9125`.
    #[arg(long)]
    pub statsd_peer: Option<String>,
    /// The peer's Prometheus `/metrics` URL, read before and after its run.
    #[arg(long)]
    pub statsd_peer_metrics: Option<String>,
    /// The peer's counter of lines taken (summed over its labels).
    #[arg(long, default_value = "statsd_exporter_events_total")]
    pub statsd_peer_counter: String,
    /// Which protocols, comma-separated: `events`, `segment`, `otlp`, `statsd`, `statsd-peer`.
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

/// The agent's `/metrics` page (sent with the agent key: access control guards it).
async fn agent_metrics(http: &reqwest::Client, agent: &str) -> anyhow::Result<String> {
    let response = http
        .get(format!("{agent}/metrics"))
        .headers(crate::credentials::agent_headers())
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        bail!("GET {agent}/metrics answered {status} (pass the operator key with --key)");
    }
    Ok(response.text().await?)
}

/// `rtdash_agent_protocol_events_total{protocol, outcome="accepted"}`.
async fn accepted(http: &reqwest::Client, agent: &str, protocol: &str) -> anyhow::Result<f64> {
    let text = agent_metrics(http, agent).await?;
    let protocol_label = format!("protocol=\"{protocol}\"");
    Ok(udp::counter_sum(
        &text,
        "rtdash_agent_protocol_events_total",
        &[&protocol_label, "outcome=\"accepted\""],
    ))
}

/// One HTTP protocol, closed loop; returns (events accepted, seconds, non-2xx answers).
async fn http_run(args: &ProtocolsArgs, protocol: &str) -> anyhow::Result<(f64, f64, u64)> {
    let http = crate::agent::http_client(args.connections, Duration::from_secs(30))?;
    let before = accepted(&http, &args.agent, protocol).await?;
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
                match protocol.as_str() {
                    // Segment SDKs send their write key (here the agent key) as the HTTP
                    // Basic user; OTLP exporters send it in their headers.
                    "segment" => {
                        let key = crate::credentials::agent_key().unwrap_or_default();
                        request = request.basic_auth(key, Some(""));
                    }
                    _ => request = request.headers(crate::credentials::agent_headers()),
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
    let after = accepted(&http, &args.agent, protocol).await?;
    Ok((after - before, seconds, failures.load(Ordering::Relaxed)))
}

/// Where a StatsD run sends its datagrams and how it learns what was taken.
enum StatsdTarget<'a> {
    /// The edge agent: `rtdash_agent_protocol_events_total{protocol="statsd",outcome="accepted"}`.
    Agent,
    /// A peer StatsD server: the sum of `counter` on the Prometheus page at `metrics`.
    Peer {
        /// Its `/metrics` URL.
        metrics: &'a str,
        /// The counter of lines it took (`statsd_exporter_events_total`).
        counter: &'a str,
    },
}

/// What one StatsD run measured.
struct StatsdRun {
    sent: udp::Sent,
    accepted: f64,
    kernel_drops: Option<u64>,
}

/// StatsD, open loop at `--statsd-rate` to `addr`; waits up to 5 s for the receiver to drain.
async fn statsd_run(
    args: &ProtocolsArgs,
    addr: &str,
    target: StatsdTarget<'_>,
) -> anyhow::Result<StatsdRun> {
    let http = crate::agent::http_client(1, Duration::from_secs(30))?;
    let read = |http: reqwest::Client| {
        let agent = args.agent.clone();
        let peer = match &target {
            StatsdTarget::Agent => None,
            StatsdTarget::Peer { metrics, counter } => {
                Some(((*metrics).to_owned(), (*counter).to_owned()))
            }
        };
        async move {
            match peer {
                None => accepted(&http, &agent, "statsd").await,
                Some((metrics, counter)) => {
                    let response = http.get(&metrics).send().await?;
                    let status = response.status();
                    if !status.is_success() {
                        bail!("GET {metrics} answered {status}");
                    }
                    Ok(udp::counter_sum(&response.text().await?, &counter, &[]))
                }
            }
        }
    };
    let before = read(http.clone()).await?;
    let drops_before = udp::kernel_drops(addr);
    let (addr_owned, rate, duration, lines) = (
        addr.to_owned(),
        args.statsd_rate,
        args.duration,
        args.statsd_lines,
    );
    let sent = tokio::task::spawn_blocking(move || {
        udp::send_open_loop(&addr_owned, rate, duration, lines)
    })
    .await??;
    let mut taken = 0.0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        taken = read(http.clone()).await? - before;
        if taken >= sent.lines as f64 {
            break;
        }
    }
    let kernel_drops = match (drops_before, udp::kernel_drops(addr)) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    Ok(StatsdRun {
        sent,
        accepted: taken,
        kernel_drops,
    })
}

/// Prints one StatsD line.
fn print_statsd(name: &str, args: &ProtocolsArgs, run: &StatsdRun) {
    let sent = run.sent;
    let drops = run
        .kernel_drops
        .map_or_else(|| "unknown".to_owned(), |d| d.to_string());
    println!(
        "{name:8} {:>10.0} events/s  ({:.0} datagrams/s of {} lines offered, {:.0} sent/s; {} lines sent, {:.0} accepted, loss {:.0}, kernel drops {drops}, sender max lag {:.0} ms)",
        run.accepted / sent.seconds,
        args.statsd_rate,
        args.statsd_lines,
        sent.datagrams as f64 / sent.seconds,
        sent.lines,
        run.accepted,
        (sent.lines as f64 - run.accepted).max(0.0),
        sent.max_lag_ms,
    );
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
        let run = statsd_run(&args, &args.statsd, StatsdTarget::Agent).await?;
        print_statsd("statsd", &args, &run);
    }
    if wanted.contains(&"statsd-peer") {
        let (Some(addr), Some(metrics)) = (&args.statsd_peer, &args.statsd_peer_metrics) else {
            bail!("statsd-peer needs --statsd-peer and --statsd-peer-metrics");
        };
        let target = StatsdTarget::Peer {
            metrics,
            counter: &args.statsd_peer_counter,
        };
        let run = statsd_run(&args, addr, target).await?;
        print_statsd("peer", &args, &run);
    }
    Ok(())
}
