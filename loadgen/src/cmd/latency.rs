//! `rtdash-loadgen latency`: the event-to-screen probe.
//!
//! Defines the marker metric and a dashboard watching it (see [`crate::probe`]), opens the
//! dashboard's SSE stream as a browser would, then sends one marker event through the edge
//! agent every `--interval-ms` and times each from just before its `POST` until the stream
//! shows a value of the marker's window that includes it. `load` may run at the same time
//! (other tenants); the probe's own traffic is one event per interval.

use crate::agent::{http_client, AgentClient, BodyFormat, Outcome};
use crate::gateway::GatewayClient;
use crate::probe::{self, includes, values_of, Seen, PROBE_WINDOW_MS};
use crate::sse::SseParser;
use crate::stats::{Samples, Summary};
use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use rand::SeedableRng;
use rtdash_shared::time::now_millis;
use rtdash_shared::window::window_start;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Arguments of `latency`.
#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Edge agent base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub agent: String,
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Tenant of the markers (keep it apart from other traffic).
    #[arg(long, default_value = "probe")]
    pub tenant: String,
    /// Markers to send.
    #[arg(long, default_value_t = 60)]
    pub markers: u32,
    /// Mean milliseconds between markers (each pause is uniform in 0.5..1.5 times this).
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Seconds to wait for the last markers to show up.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
}

/// What the probe measured.
#[derive(Debug, Serialize)]
pub struct LatencyReport {
    /// Markers sent (accepted by the agent).
    pub sent: u64,
    /// Markers seen on the stream.
    pub seen: u64,
    /// Markers never seen within the timeout.
    pub missing: u64,
    /// Send-to-screen latency.
    pub latency: Summary,
}

struct Pending {
    seq: u64,
    window: i64,
    sent: Instant,
}

/// Runs `latency`.
pub async fn run(args: LatencyArgs) -> anyhow::Result<()> {
    let client = http_client(4, Duration::from_secs(30))?;
    let gateway = GatewayClient::new(&args.gateway, client.clone());
    let dashboard = probe::setup(&gateway, &args.tenant, "rtdash latency probe").await?;
    let widget_id = dashboard
        .widgets
        .iter()
        .find(|w| w.metric_name == probe::PROBE_METRIC)
        .map(|w| w.widget_id.clone())
        .context("probe widget")?;
    let stream_client = reqwest::Client::builder().http1_only().build()?;
    let response = gateway
        .open_stream(&stream_client, &dashboard.dashboard_id, &args.tenant)
        .await
        .context("opening the dashboard stream")?;
    if !response.status().is_success() {
        anyhow::bail!("dashboard stream answered {}", response.status());
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Seen)>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let reader_widget = widget_id.clone();
    let reader = tokio::spawn(async move {
        let mut response = response;
        let mut parser = SseParser::new();
        let mut ready = Some(ready_tx);
        while let Ok(Some(chunk)) = response.chunk().await {
            let at = Instant::now();
            parser.feed(&chunk, |event| {
                if event.event == "snapshot" {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                for seen in values_of(&event, &reader_widget) {
                    let _ = tx.send((at, seen));
                }
            });
        }
    });
    tokio::time::timeout(Duration::from_secs(30), ready_rx)
        .await
        .context("no snapshot on the dashboard stream within 30 s")?
        .ok();

    let agent = AgentClient::new(&args.agent, client);
    let first = probe::first_seq();
    let mut pending: Vec<Pending> = Vec::new();
    let mut samples = Samples::new();
    let mut sent = 0u64;
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(u64::from(std::process::id()));
    let mut next_at = tokio::time::Instant::now();
    let mut next = 0u32;
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_at), if next < args.markers => {
                next_at += probe::jittered(interval, &mut rng);
                let seq = first + u64::from(next);
                next += 1;
                let at = now_millis();
                let body = Bytes::from(probe::marker_event(&args.tenant, seq, at));
                let started = Instant::now();
                match agent.post(body, BodyFormat::Json, 1).await {
                    Ok(Outcome::Judged { accepted: 1, .. }) => {
                        sent += 1;
                        pending.push(Pending { seq, window: window_start(at, PROBE_WINDOW_MS), sent: started });
                    }
                    Ok(other) => tracing::warn!(?other, "marker not accepted"),
                    Err(err) => tracing::warn!(%err, "marker not sent"),
                }
                if next == args.markers {
                    deadline = Some(Instant::now() + Duration::from_secs(args.timeout_secs));
                }
            }
            received = rx.recv() => {
                let Some((at, seen)) = received else { break };
                pending.retain(|p| {
                    if includes(&seen, p.window, p.seq) {
                        samples.record(at.saturating_duration_since(p.sent));
                        false
                    } else {
                        true
                    }
                });
                if next == args.markers && pending.is_empty() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)).into()), if deadline.is_some() => break,
        }
    }
    reader.abort();
    let report = LatencyReport {
        sent,
        seen: samples.len() as u64,
        missing: pending.len() as u64,
        latency: samples.summary(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("event-to-screen latency (marker sent -> SSE update including it)");
        println!(
            "  markers           {} sent, {} seen, {} missing",
            report.sent, report.seen, report.missing
        );
        println!("  latency           {}", report.latency);
    }
    Ok(())
}
