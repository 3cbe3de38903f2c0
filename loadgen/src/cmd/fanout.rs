//! `rtdash-loadgen fanout`: N concurrent SSE viewers of one dashboard; delivery delay from a
//! live publication to every viewer, and the gateway's memory.
//!
//! The viewers connect at `--ramp-per-sec`, each reading the stream like a browser would.
//! Once they are connected the probe publishes `--markers` markers, either through the edge
//! agent (the whole pipeline: agent, aggregator, gateway) or, with `--nats`, directly on the
//! live subject `rtdash.live.<tenant>.probe` as a `WindowUpdate` (the gateway alone). Every
//! viewer timestamps every value it receives; a marker's delay at a viewer is from just before
//! its publication until that viewer first saw a value of its window including it.
//! Every viewer connects from this host's address: the gateway must run with
//! `live.max_streams_per_client = 0` (or at least `--viewers`), as `bench/run.sh` starts it.
//! With `--gateway-pid` it reads the gateway's resident memory from `/proc/<pid>/status`
//! before, with all viewers connected, and at the end.

use crate::agent::{http_client, AgentClient, BodyFormat};
use crate::gateway::GatewayClient;
use crate::probe::{self, includes, values_of, Seen, PROBE_METRIC, PROBE_WINDOW_MS};
use crate::sse::SseParser;
use crate::stats::{Samples, Summary};
use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use rand::SeedableRng;
use rtdash_shared::messages::WindowUpdate;
use rtdash_shared::sketch::Stats;
use rtdash_shared::time::now_millis;
use rtdash_shared::window::window_start;
use rtdash_shared::wire::{self, Format};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Arguments of `fanout`.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Concurrent viewers.
    #[arg(long, default_value_t = 1000)]
    pub viewers: usize,
    /// Edge agent base URL (markers go through the whole pipeline).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub agent: String,
    /// Publish markers directly on NATS at this URL instead of through the agent.
    #[arg(long)]
    pub nats: Option<String>,
    /// Tenant of the probe dashboard.
    #[arg(long, default_value = "fanout")]
    pub tenant: String,
    /// Markers to publish once every viewer is connected.
    #[arg(long, default_value_t = 10)]
    pub markers: u32,
    /// Mean milliseconds between markers (each pause is uniform in 0.5..1.5 times this).
    #[arg(long, default_value_t = 2000)]
    pub interval_ms: u64,
    /// Viewers connected per second while ramping up.
    #[arg(long, default_value_t = 1000.0)]
    pub ramp_per_sec: f64,
    /// Seconds to wait for every viewer to connect.
    #[arg(long, default_value_t = 120)]
    pub connect_timeout_secs: u64,
    /// Seconds to wait after the last marker.
    #[arg(long, default_value_t = 15)]
    pub settle_secs: u64,
    /// Gateway process id, to read its resident memory.
    #[arg(long)]
    pub gateway_pid: Option<u32>,
    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
    /// Also print one line per marker (to standard error): when it was sent (second of the
    /// minute) and its median and largest delay over the viewers. Shows whether slow
    /// deliveries cluster at a point of the minute, such as window rollovers.
    #[arg(long)]
    pub timeline: bool,
    /// What the viewers watch: `gateway` (rtdash's dashboard stream), or `centrifugo`, the
    /// fan-out peer (`fanout_centrifugo.rs`): Centrifugo's uni_sse endpoint at
    /// `--centrifugo`, markers published through its server API (key and token secret from
    /// `RTDASH_CENTRIFUGO_API_KEY` and `RTDASH_CENTRIFUGO_HMAC_SECRET`).
    #[arg(long, value_enum, default_value_t = Target::Gateway)]
    pub target: Target,
    /// Centrifugo base URL (with `--target centrifugo`).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub centrifugo: String,
    /// Centrifugo's process id, to read its resident memory (with `--target centrifugo`).
    #[arg(long)]
    pub centrifugo_pid: Option<u32>,
}

/// The server the viewers of `fanout` watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// rtdash's gateway.
    Gateway,
    /// Centrifugo v6, unidirectional SSE.
    Centrifugo,
}

/// What the probe measured.
#[derive(Debug, Default, Serialize)]
pub struct FanoutReport {
    /// Viewers asked for.
    pub viewers: usize,
    /// Viewers that received their snapshot.
    pub connected: u64,
    /// Seconds until they had.
    pub connect_seconds: f64,
    /// Viewers that failed to connect or lost their stream.
    pub failed: u64,
    /// Markers published.
    pub markers: u32,
    /// Deliveries expected (markers x connected viewers).
    pub expected_deliveries: u64,
    /// Deliveries seen.
    pub deliveries: u64,
    /// Delay from publication to delivery, over every viewer and marker.
    pub delay: Summary,
    /// How markers were published: `agent` or `nats`.
    pub path: String,
    /// Gateway resident memory before the viewers, in MiB.
    pub gateway_rss_before_mib: Option<f64>,
    /// ... with every viewer connected.
    pub gateway_rss_connected_mib: Option<f64>,
    /// ... at the end.
    pub gateway_rss_end_mib: Option<f64>,
}

/// Resident memory of `pid` in MiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

struct Shared {
    connected: AtomicU64,
    failed: AtomicU64,
}

/// Everything one viewer saw, timestamped.
type SeenLog = Vec<(Instant, Seen)>;

async fn viewer(
    client: reqwest::Client,
    gateway: GatewayClient,
    dashboard_id: String,
    tenant: String,
    widget_id: String,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> SeenLog {
    let mut log = SeenLog::new();
    let mut attempts = 0;
    let response = loop {
        match gateway.open_stream(&client, &dashboard_id, &tenant).await {
            Ok(r) if r.status().is_success() => break r,
            Ok(r) if r.status().as_u16() == 503 && attempts < 10 => {
                attempts += 1;
                let wait = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            Ok(r) if r.status().as_u16() == 429 => {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    tracing::warn!(
                        "viewers refused with 429: the gateway limits open streams per client \
                         address, and every viewer comes from this one; run the gateway with \
                         live.max_streams_per_client = 0 \
                         (RTDASH_GATEWAY__LIVE__MAX_STREAMS_PER_CLIENT=0)"
                    );
                });
                shared.failed.fetch_add(1, Ordering::Relaxed);
                return log;
            }
            Ok(r) => {
                tracing::debug!(status = %r.status(), "viewer refused");
                shared.failed.fetch_add(1, Ordering::Relaxed);
                return log;
            }
            Err(err) => {
                tracing::debug!(%err, "viewer could not connect");
                shared.failed.fetch_add(1, Ordering::Relaxed);
                return log;
            }
        }
    };
    let mut response = response;
    let mut parser = SseParser::new();
    let mut connected = false;
    loop {
        tokio::select! {
            chunk = response.chunk() => {
                let chunk = match chunk {
                    Ok(Some(chunk)) => chunk,
                    _ => {
                        if !*stop.borrow() {
                            shared.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        break;
                    }
                };
                let at = Instant::now();
                parser.feed(&chunk, |event| {
                    if event.event == "snapshot" && !connected {
                        connected = true;
                        shared.connected.fetch_add(1, Ordering::Relaxed);
                    }
                    for seen in values_of(&event, &widget_id) {
                        log.push((at, seen));
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    log
}

/// Runs `fanout`.
pub async fn run(args: FanoutArgs) -> anyhow::Result<()> {
    if args.target == Target::Centrifugo {
        return super::fanout_centrifugo::run(args).await;
    }
    let wanted = (args.viewers as u64) * 2 + 1024;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit < wanted => {
            tracing::warn!(
                limit,
                wanted,
                "could not raise the open-file limit far enough"
            )
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "could not raise the open-file limit"),
    }
    let client = http_client(4, Duration::from_secs(30))?;
    let gateway = GatewayClient::new(&args.gateway, client.clone());
    let dashboard = probe::setup(&gateway, &args.tenant, "rtdash fanout probe").await?;
    let widget_id = dashboard
        .widgets
        .iter()
        .find(|w| w.metric_name == PROBE_METRIC)
        .map(|w| w.widget_id.clone())
        .context("probe widget")?;
    let mut report = FanoutReport {
        viewers: args.viewers,
        markers: args.markers,
        path: if args.nats.is_some() { "nats" } else { "agent" }.to_owned(),
        gateway_rss_before_mib: args.gateway_pid.and_then(rss_mib),
        ..FanoutReport::default()
    };
    // Streams never time out; one connection per viewer.
    let stream_client = reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(30))
        .build()?;
    let shared = Arc::new(Shared {
        connected: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let ramp = Duration::from_secs_f64(1.0 / args.ramp_per_sec.max(1.0));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(args.viewers);
    for i in 0..args.viewers {
        handles.push(tokio::spawn(viewer(
            stream_client.clone(),
            gateway.clone(),
            dashboard.dashboard_id.clone(),
            args.tenant.clone(),
            widget_id.clone(),
            Arc::clone(&shared),
            stop_rx.clone(),
        )));
        tokio::time::sleep_until((started + ramp.mul_f64((i + 1) as f64)).into()).await;
    }
    let connect_deadline = started + Duration::from_secs(args.connect_timeout_secs);
    loop {
        let done = shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed);
        if done >= args.viewers as u64 || Instant::now() >= connect_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report.connect_seconds = started.elapsed().as_secs_f64();
    report.connected = shared.connected.load(Ordering::Relaxed);
    report.gateway_rss_connected_mib = args.gateway_pid.and_then(rss_mib);
    tracing::info!(
        connected = report.connected,
        failed = shared.failed.load(Ordering::Relaxed),
        seconds = report.connect_seconds,
        "viewers connected"
    );

    let publisher = Publisher::new(&args, client).await?;
    let first = probe::first_seq();
    // (seq, its window, when it was sent, wall clock of the send)
    let mut published: Vec<(u64, i64, Instant, i64)> = Vec::new();
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(u64::from(std::process::id()));
    for i in 0..args.markers {
        tokio::time::sleep(probe::jittered(interval, &mut rng)).await;
        let seq = first + u64::from(i);
        let at = now_millis();
        let sent = Instant::now();
        match publisher.publish(&args.tenant, seq, at).await {
            Ok(()) => published.push((seq, window_start(at, PROBE_WINDOW_MS), sent, at)),
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "marker not published"),
        }
    }
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    report.gateway_rss_end_mib = args.gateway_pid.and_then(rss_mib);
    let _ = stop_tx.send(true);

    let mut samples = Samples::new();
    let mut per_marker: Vec<Samples> = published.iter().map(|_| Samples::new()).collect();
    for handle in handles {
        let Ok(log) = handle.await else { continue };
        if log.is_empty() {
            continue;
        }
        for ((seq, window, sent, _), marker) in published.iter().zip(&mut per_marker) {
            if let Some((at, _)) = log.iter().find(|(_, seen)| includes(seen, *window, *seq)) {
                let delay = at.saturating_duration_since(*sent);
                samples.record(delay);
                marker.record(delay);
            }
        }
    }
    if args.timeline {
        print_timeline(&published, &per_marker);
    }
    report.failed = shared.failed.load(Ordering::Relaxed);
    report.markers = published.len() as u32;
    report.expected_deliveries = report.connected * published.len() as u64;
    report.deliveries = samples.len() as u64;
    report.delay = samples.summary();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// One line per marker on standard error: second of the minute it was sent, deliveries, and
/// its median and largest delay in milliseconds.
pub(crate) fn print_timeline(published: &[(u64, i64, Instant, i64)], per_marker: &[Samples]) {
    eprintln!("marker  sent_at(s of minute)  deliveries  p50_ms  max_ms");
    for (i, ((_, _, _, at), marker)) in published.iter().zip(per_marker).enumerate() {
        let summary = marker.summary();
        eprintln!(
            "{i:>6}  {:>20.1}  {:>10}  {:>6.0}  {:>6.0}",
            (at.rem_euclid(60_000)) as f64 / 1000.0,
            marker.len(),
            summary.p50_ms,
            summary.max_ms
        );
    }
}

fn print_report(r: &FanoutReport) {
    let mib = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} MiB"));
    println!(
        "SSE fan-out ({} viewers, markers via {})",
        r.viewers, r.path
    );
    println!(
        "  connected         {} in {:.1} s ({} failed or dropped)",
        r.connected, r.connect_seconds, r.failed
    );
    println!(
        "  deliveries        {} of {} ({} markers)",
        r.deliveries, r.expected_deliveries, r.markers
    );
    println!("  delay             {}", r.delay);
    println!(
        "  gateway RSS       before {}, connected {}, end {}",
        mib(r.gateway_rss_before_mib),
        mib(r.gateway_rss_connected_mib),
        mib(r.gateway_rss_end_mib)
    );
}

/// Publishes markers through the agent or on NATS.
enum Publisher {
    Agent(AgentClient),
    Nats(async_nats::Client),
}

impl Publisher {
    async fn new(args: &FanoutArgs, client: reqwest::Client) -> anyhow::Result<Self> {
        Ok(match &args.nats {
            Some(url) => Publisher::Nats(
                async_nats::connect(url)
                    .await
                    .with_context(|| format!("connecting to NATS at {url}"))?,
            ),
            None => Publisher::Agent(AgentClient::new(&args.agent, client)),
        })
    }

    async fn publish(&self, tenant: &str, seq: u64, at: i64) -> anyhow::Result<()> {
        match self {
            Publisher::Agent(agent) => {
                let body = Bytes::from(probe::marker_event(tenant, seq, at));
                agent.post(body, BodyFormat::Json, 1).await?;
            }
            Publisher::Nats(nats) => {
                let start = window_start(at, PROBE_WINDOW_MS);
                let update = WindowUpdate {
                    tenant_id: tenant.to_owned(),
                    metric: PROBE_METRIC.to_owned(),
                    dimensions: BTreeMap::new(),
                    window_start: start,
                    window_end: start + PROBE_WINDOW_MS,
                    stats: Stats {
                        count: 1,
                        sum: Some(seq as f64),
                        min: Some(seq as f64),
                        max: Some(seq as f64),
                        avg: Some(seq as f64),
                        ..Stats::default()
                    },
                    revision: 0,
                    is_final: false,
                    late_count: 0,
                    updated_at: at,
                    state: None,
                };
                let payload = wire::encode(&update, Format::Json)?;
                nats.publish(
                    rtdash_shared::names::live_subject(tenant, PROBE_METRIC),
                    payload.into(),
                )
                .await?;
                nats.flush().await?;
            }
        }
        Ok(())
    }
}
