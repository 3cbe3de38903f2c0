//! `rtdash-loadgen fanout --target centrifugo`: the fan-out benchmark against the fan-out peer,
//! Centrifugo v6 with its unidirectional SSE transport.
//!
//! The same probe as the gateway's (`fanout.rs`): `--viewers` SSE clients connect at
//! `--ramp-per-sec`, one HTTP/1.1 connection each, and timestamp everything they receive;
//! then `--markers` markers are published `--interval-ms` apart (the same jitter), each timed
//! from just before its publication until every viewer first received it; the same
//! statistics. A viewer connects to `<--centrifugo>/connection/uni_sse` with a connection
//! JWT (HMAC SHA-256, secret from `RTDASH_CENTRIFUGO_HMAC_SECRET`) whose `subs` claim
//! subscribes it to the probe channel; a marker is `{"seq": n}` published through the server
//! API (`POST /api/publish`, key from `RTDASH_CENTRIFUGO_API_KEY`). With `--centrifugo-pid`
//! it reads Centrifugo's resident memory before, with every viewer connected, and at the end.

use super::fanout::{print_timeline, rss_mib, FanoutArgs};
use crate::agent::http_client;
use crate::centrifugo::{self, Message, PROBE_CHANNEL};
use crate::probe;
use crate::sse::SseParser;
use crate::stats::{Samples, Summary};
use anyhow::Context;
use rand::SeedableRng;
use rtdash_shared::time::now_millis;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Environment variable holding Centrifugo's server API key.
pub const API_KEY_ENV: &str = "RTDASH_CENTRIFUGO_API_KEY";
/// Environment variable holding Centrifugo's HMAC secret for connection tokens.
pub const HMAC_SECRET_ENV: &str = "RTDASH_CENTRIFUGO_HMAC_SECRET";

/// What the probe measured against Centrifugo (the fields of the gateway's report, with the
/// server's memory under `server_rss_*`).
#[derive(Debug, Default, Serialize)]
pub struct CentrifugoReport {
    /// Always `centrifugo`.
    pub target: String,
    /// Viewers asked for.
    pub viewers: usize,
    /// Viewers whose connect reply arrived.
    pub connected: u64,
    /// Seconds until they had.
    pub connect_seconds: f64,
    /// Viewers that failed to connect or lost their stream.
    pub failed: u64,
    /// Messages that were not Centrifugo's JSON (a protocol mismatch).
    pub protocol_errors: u64,
    /// Markers published.
    pub markers: u32,
    /// Deliveries expected (markers x connected viewers).
    pub expected_deliveries: u64,
    /// Deliveries seen.
    pub deliveries: u64,
    /// Delay from publication to delivery, over every viewer and marker.
    pub delay: Summary,
    /// How markers were published.
    pub path: String,
    /// Centrifugo's resident memory before the viewers, in MiB.
    pub server_rss_before_mib: Option<f64>,
    /// ... with every viewer connected.
    pub server_rss_connected_mib: Option<f64>,
    /// ... at the end.
    pub server_rss_end_mib: Option<f64>,
}

struct Shared {
    connected: AtomicU64,
    failed: AtomicU64,
    protocol_errors: AtomicU64,
    warned: AtomicBool,
}

/// Every marker seq one viewer received, timestamped.
type SeqLog = Vec<(Instant, u64)>;

async fn viewer(
    client: reqwest::Client,
    url: String,
    connect: String,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> SeqLog {
    let mut log = SeqLog::new();
    let response = client
        .get(&url)
        .query(&[("cf_connect", connect.as_str())])
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await;
    let mut response = match response {
        Ok(r) if r.status().is_success() => r,
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
    };
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
                parser.feed(&chunk, |event| match centrifugo::parse_message(&event) {
                    Ok(Message::Connected) if !connected => {
                        connected = true;
                        shared.connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Message::Marker { channel, seq }) if channel == PROBE_CHANNEL => {
                        log.push((at, seq));
                    }
                    Ok(_) => {}
                    Err(err) => {
                        shared.protocol_errors.fetch_add(1, Ordering::Relaxed);
                        if !shared.warned.swap(true, Ordering::Relaxed) {
                            tracing::warn!(error = %format!("{err:#}"), "unexpected uni_sse message");
                        }
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    log
}

fn secret(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .with_context(|| format!("--target centrifugo needs {name} in the environment"))
}

/// Runs `fanout --target centrifugo`.
pub async fn run(args: FanoutArgs) -> anyhow::Result<()> {
    let api_key = secret(API_KEY_ENV)?;
    let hmac_secret = secret(HMAC_SECRET_ENV)?;
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
    let base = args.centrifugo.trim_end_matches('/').to_owned();
    let api_client = http_client(4, Duration::from_secs(30))?;
    let mut report = CentrifugoReport {
        target: "centrifugo".to_owned(),
        viewers: args.viewers,
        path: "centrifugo server API (POST /api/publish)".to_owned(),
        server_rss_before_mib: args.centrifugo_pid.and_then(rss_mib),
        ..CentrifugoReport::default()
    };
    // The same stream client as the gateway's viewers: one connection each, no timeout.
    let stream_client = reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(30))
        .build()?;
    let shared = Arc::new(Shared {
        connected: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        protocol_errors: AtomicU64::new(0),
        warned: AtomicBool::new(false),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let url = format!("{base}/connection/uni_sse");
    let exp = now_millis() / 1000 + 2 * 3600;
    let ramp = Duration::from_secs_f64(1.0 / args.ramp_per_sec.max(1.0));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(args.viewers);
    for i in 0..args.viewers {
        let token = centrifugo::connection_token(
            hmac_secret.as_bytes(),
            &format!("viewer-{i}"),
            exp,
            PROBE_CHANNEL,
        );
        handles.push(tokio::spawn(viewer(
            stream_client.clone(),
            url.clone(),
            centrifugo::connect_request(&token),
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
    report.server_rss_connected_mib = args.centrifugo_pid.and_then(rss_mib);
    tracing::info!(
        connected = report.connected,
        failed = shared.failed.load(Ordering::Relaxed),
        seconds = report.connect_seconds,
        "viewers connected"
    );

    let first = probe::first_seq();
    // (seq, unused window, when it was sent, wall clock of the send): the gateway probe's shape.
    let mut published: Vec<(u64, i64, Instant, i64)> = Vec::new();
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(u64::from(std::process::id()));
    for i in 0..args.markers {
        tokio::time::sleep(probe::jittered(interval, &mut rng)).await;
        let seq = first + u64::from(i);
        let at = now_millis();
        let sent = Instant::now();
        match centrifugo::publish(&api_client, &base, &api_key, PROBE_CHANNEL, seq).await {
            Ok(()) => published.push((seq, 0, sent, at)),
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "marker not published"),
        }
    }
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    report.server_rss_end_mib = args.centrifugo_pid.and_then(rss_mib);
    let _ = stop_tx.send(true);

    let mut samples = Samples::new();
    let mut per_marker: Vec<Samples> = published.iter().map(|_| Samples::new()).collect();
    for handle in handles {
        let Ok(log) = handle.await else { continue };
        for ((seq, _, sent, _), marker) in published.iter().zip(&mut per_marker) {
            // As for the gateway: the first message that includes the marker.
            if let Some((at, _)) = log.iter().find(|(_, seen)| seen >= seq) {
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
    report.protocol_errors = shared.protocol_errors.load(Ordering::Relaxed);
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

fn print_report(r: &CentrifugoReport) {
    let mib = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} MiB"));
    println!(
        "SSE fan-out, Centrifugo uni_sse ({} viewers, markers via {})",
        r.viewers, r.path
    );
    println!(
        "  connected         {} in {:.1} s ({} failed or dropped, {} protocol errors)",
        r.connected, r.connect_seconds, r.failed, r.protocol_errors
    );
    println!(
        "  deliveries        {} of {} ({} markers)",
        r.deliveries, r.expected_deliveries, r.markers
    );
    println!("  delay             {}", r.delay);
    println!(
        "  centrifugo RSS    before {}, connected {}, end {}",
        mib(r.server_rss_before_mib),
        mib(r.server_rss_connected_mib),
        mib(r.server_rss_end_mib)
    );
}
