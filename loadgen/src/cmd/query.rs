//! `rtdash-loadgen query`: latency of the gateway's metric query
//! (`GET /v1/metrics/{name}?tenant_id=&stat=&from=&to=`) for `--requests` requests.
//!
//! Closed loop by default: `--concurrency` requests in flight, each sent when the previous one
//! was answered. With `--rate R` the load is open loop: request *i* is due at
//! `start + i / R`, and each of `--concurrency` senders takes the next request, waits until it
//! is due and sends it; latency is then also reported from the due time (free of coordinated
//! omission), with how far behind schedule requests left.

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
    /// Range: the last this long (`7d`, `30d`, `12h`); overrides --minutes.
    #[arg(long)]
    pub range: Option<String>,
    /// Served window (`window=`: `1h`, `1d`, `auto`); absent: the metric's own.
    #[arg(long)]
    pub window: Option<String>,
    /// One series per value of these dimensions (`group_by=`, e.g. `region`).
    #[arg(long)]
    pub group_by: Option<String>,
    /// Send one query alone first and report its latency apart (the first, cold, read).
    #[arg(long)]
    pub cold: bool,
    /// Requests to send.
    #[arg(long, default_value_t = 2000)]
    pub requests: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Open loop at this many requests per second (0: closed loop).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
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
    /// With --cold: latency of the first query, in milliseconds.
    pub cold_ms: Option<f64>,
    /// With --cold: series and windows with data in the first answer.
    pub cold_answer: Option<AnswerShape>,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests answered otherwise or failed.
    pub failed: u64,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Latency of the successful requests, from sending.
    pub latency: Summary,
    /// Target requests per second (0: closed loop).
    pub target_rate: f64,
    /// Open loop: latency of the successful requests from their due time.
    pub latency_from_due: Summary,
    /// Open loop: largest delay of a request behind its due time, in milliseconds.
    pub max_lag_ms: f64,
}

/// How much a metric answer holds.
#[derive(Debug, Default, Serialize)]
pub struct AnswerShape {
    /// Series (1 without `group_by`).
    pub series: usize,
    /// Windows over all series.
    pub windows: usize,
    /// Windows with a value of the stat.
    pub with_value: usize,
}

impl AnswerShape {
    /// The shape of a `GET /v1/metrics/{name}` answer: `{windows: [...]}` or
    /// `{series: [{windows: [...]}]}`.
    fn of(answer: &serde_json::Value) -> Self {
        let count = |windows: &serde_json::Value| {
            let windows = windows.as_array().map(Vec::as_slice).unwrap_or_default();
            let with_value = windows
                .iter()
                .filter(|w| w.get("value").is_some_and(|v| !v.is_null()))
                .count();
            (windows.len(), with_value)
        };
        match answer.get("series").and_then(|s| s.as_array()) {
            Some(series) => {
                let mut shape = AnswerShape {
                    series: series.len(),
                    ..Default::default()
                };
                for one in series {
                    let (windows, with_value) = count(&one["windows"]);
                    shape.windows += windows;
                    shape.with_value += with_value;
                }
                shape
            }
            None => {
                let (windows, with_value) = count(&answer["windows"]);
                AnswerShape {
                    series: 1,
                    windows,
                    with_value,
                }
            }
        }
    }
}

/// Parses `--range`: `<n>m`, `<n>h` or `<n>d` into milliseconds.
fn parse_range(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("--range {text:?} must look like 90m, 12h or 7d"))?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => anyhow::bail!("--range {text:?} must look like 90m, 12h or 7d"),
    };
    Ok(n * unit_ms)
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
    let range_ms = match &args.range {
        Some(range) => parse_range(range)?,
        None => args.minutes * 60_000,
    };
    let from = rtdash_shared::time::format_rfc3339(now - range_ms);
    let to = rtdash_shared::time::format_rfc3339(now);
    let mut query = vec![
        ("tenant_id", args.tenant.clone()),
        ("stat", args.stat.clone()),
        ("from", from),
        ("to", to),
    ];
    if let Some(window) = &args.window {
        query.push(("window", window.clone()));
    }
    if let Some(group_by) = &args.group_by {
        query.push(("group_by", group_by.clone()));
    }
    let (cold_ms, cold_answer) = if args.cold {
        let sent = Instant::now();
        let response = client
            .get(&url)
            .headers(crate::credentials::gateway_headers())
            .query(&query)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        let cold_ms = sent.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            anyhow::bail!("the first query answered {status}: {body}");
        }
        let answer: serde_json::Value = serde_json::from_str(&body)?;
        (Some(cold_ms), Some(AnswerShape::of(&answer)))
    } else {
        (None, None)
    };
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let max_lag_us = Arc::new(AtomicU64::new(0));
    let started = Instant::now() + Duration::from_millis(20);
    let deadline = started + Duration::from_secs_f64(args.max_secs.max(0.0));
    let interval = (args.rate > 0.0).then(|| 1.0 / args.rate);
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, url, next, failed, max_lag_us) = (
            client.clone(),
            url.clone(),
            Arc::clone(&next),
            Arc::clone(&failed),
            Arc::clone(&max_lag_us),
        );
        let query = query.clone();
        let total = args.requests;
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::new();
            let mut from_due = Samples::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                let due = match interval {
                    Some(secs) => started + Duration::from_secs_f64(index as f64 * secs),
                    None => Instant::now(),
                };
                if due >= deadline || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let lag = u64::try_from(sent.duration_since(due).as_micros()).unwrap_or(u64::MAX);
                max_lag_us.fetch_max(lag, Ordering::Relaxed);
                let result = client
                    .get(&url)
                    .headers(crate::credentials::gateway_headers())
                    .query(&query)
                    .send()
                    .await;
                let ok = match result {
                    Ok(response) => {
                        let status = response.status();
                        response.bytes().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                if ok {
                    samples.record(sent.elapsed());
                    from_due.record(due.elapsed());
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            (samples, from_due)
        }));
    }
    let mut samples = Samples::new();
    let mut from_due = Samples::new();
    for task in tasks {
        if let Ok((s, d)) = task.await {
            samples.extend(s);
            from_due.extend(d);
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let report = QueryReport {
        cold_ms,
        cold_answer,
        ok: samples.len() as u64,
        failed: failed.load(Ordering::Relaxed),
        requests_per_sec: samples.len() as f64 / elapsed,
        latency: samples.summary(),
        target_rate: args.rate.max(0.0),
        latency_from_due: if interval.is_some() {
            from_due.summary()
        } else {
            Summary::default()
        },
        max_lag_ms: max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        if interval.is_some() {
            println!(
                "metric query GET {url} (open loop at {} requests/s, {} senders)",
                args.rate, args.concurrency
            );
        } else {
            println!("metric query GET {url} ({} in flight)", args.concurrency);
        }
        if let (Some(ms), Some(shape)) = (report.cold_ms, &report.cold_answer) {
            println!(
                "  first (cold)      {ms:.1} ms: {} series, {} windows, {} with a value",
                shape.series, shape.windows, shape.with_value
            );
        }
        println!(
            "  answered          {} ok, {} failed, {:.0} requests/s",
            report.ok, report.failed, report.requests_per_sec
        );
        println!("  latency           {}", report.latency);
        if interval.is_some() {
            println!("  from due time     {}", report.latency_from_due);
            println!("  max lag           {:.1} ms", report.max_lag_ms);
        }
    }
    Ok(())
}
