//! `rtdash-loadgen query`: latency of the gateway's metric query
//! (`GET /v1/metrics/{name}?tenant_id=&stat=&from=&to=`), closed loop with `--concurrency`
//! requests in flight for `--requests` requests.

use crate::agent::http_client;
use crate::stats::{Samples, Summary};
use clap::Args;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Tenant.
    #[arg(long, default_value = "tenant-0")]
    pub tenant: String,
    /// Metric to query.
    #[arg(long, default_value = "events")]
    pub metric: String,
    /// Statistic.
    #[arg(long, default_value = "count")]
    pub stat: String,
    /// Range: the last this many minutes.
    #[arg(long, default_value_t = 60)]
    pub minutes: i64,
    /// Requests to send.
    #[arg(long, default_value_t = 2000)]
    pub requests: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Stop sending after this many seconds even if fewer requests were sent.
    #[arg(long, default_value_t = 60.0)]
    pub max_secs: f64,
    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
}

/// What the run measured.
#[derive(Debug, Serialize)]
pub struct QueryReport {
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests answered otherwise or failed.
    pub failed: u64,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Latency of the successful requests.
    pub latency: Summary,
}

/// Runs `query`.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    let client = http_client(args.concurrency, Duration::from_secs(30))?;
    let url = format!(
        "{}/v1/metrics/{}",
        args.gateway.trim_end_matches('/'),
        args.metric
    );
    let now = rtdash_shared::time::now_millis();
    let from = rtdash_shared::time::format_rfc3339(now - args.minutes * 60_000);
    let to = rtdash_shared::time::format_rfc3339(now);
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.max_secs.max(0.0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, url, next, failed) = (
            client.clone(),
            url.clone(),
            Arc::clone(&next),
            Arc::clone(&failed),
        );
        let query = [
            ("tenant_id", args.tenant.clone()),
            ("stat", args.stat.clone()),
            ("from", from.clone()),
            ("to", to.clone()),
        ];
        let total = args.requests;
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::new();
            while next.fetch_add(1, Ordering::Relaxed) < total && Instant::now() < deadline {
                let sent = Instant::now();
                let result = client.get(&url).query(&query).send().await;
                let ok = match result {
                    Ok(response) => {
                        let status = response.status();
                        response.bytes().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                if ok {
                    samples.record(sent.elapsed());
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            samples
        }));
    }
    let mut samples = Samples::new();
    for task in tasks {
        if let Ok(s) = task.await {
            samples.extend(s);
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let report = QueryReport {
        ok: samples.len() as u64,
        failed: failed.load(Ordering::Relaxed),
        requests_per_sec: samples.len() as f64 / elapsed,
        latency: samples.summary(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("metric query GET {url} ({} in flight)", args.concurrency);
        println!(
            "  answered          {} ok, {} failed, {:.0} requests/s",
            report.ok, report.failed, report.requests_per_sec
        );
        println!("  latency           {}", report.latency);
    }
    Ok(())
}
