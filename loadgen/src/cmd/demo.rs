//! `rtdash-loadgen demo`: realistic, continuous demo traffic for `./deploy/up.sh`.
//!
//! Four event types (`page_view`, `api_request`, `payment_completed`, `signup`) with
//! `region` (4 values), `plan` (3), `service` (5), `amount_usd` (lognormal), `latency_ms`
//! (lognormal with occasional spikes) and `user_id` (5,000 users). The rate follows a
//! compressed daily sine (`--period-secs`) around `--rate`, with random bursts; about 1.5 % of
//! events are 10 to 90 s late; batches hold 50 to 200 events. Agent errors never stop it: it
//! logs them, honours `Retry-After` on `429`/`503` and backs off on failures.
//!
//! With `--gateway`, it first defines the demo metrics (`revenue`, `api_latency`, `signups`,
//! `page_views`) and the dashboard "Demo overview" for the tenant, reusing a dashboard of that
//! name if it exists; it keeps retrying in the background until the gateway answers.

use crate::agent::{http_client, AgentClient, BodyFormat, Outcome};
use crate::gateway::GatewayClient;
use crate::jsonw::{self, Timestamps};
use bytes::Bytes;
use clap::Args;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::time::now_millis;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Edge agent base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub agent: String,
    /// Gateway base URL: define the demo metrics and dashboard first.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Tenant of the demo traffic.
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    /// Average events per second.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Period of the daily-ish rate cycle, in seconds.
    #[arg(long, default_value_t = 600.0)]
    pub period_secs: f64,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    pub duration: Option<f64>,
    /// PRNG seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

const REGIONS: [&str; 4] = ["us-east", "us-west", "eu-west", "ap-south"];
const PLANS: [&str; 3] = ["free", "pro", "enterprise"];
const SERVICES: [&str; 5] = ["checkout", "search", "auth", "catalog", "payments"];
const USERS: u32 = 5000;
const TICK: Duration = Duration::from_millis(200);

/// The demo metric definitions of `tenant`.
pub fn demo_metrics(tenant: &str) -> Vec<MetricDefinition> {
    let def = |name: &str,
               event_type: &str,
               field: Option<&str>,
               unique: Option<&str>,
               dims: &[&str],
               description: &str| {
        MetricDefinition {
            name: name.to_owned(),
            tenant_id: Some(tenant.to_owned()),
            event_type: event_type.to_owned(),
            field: field.map(str::to_owned),
            unique: unique.map(str::to_owned),
            dimensions: dims.iter().map(|d| (*d).to_owned()).collect(),
            rollups: None,
            window_secs: 60,
            max_series_per_window: rtdash_shared::metric::DEFAULT_MAX_SERIES,
            description: Some(description.to_owned()),
        }
    };
    let mut revenue = def(
        "revenue",
        "payment_completed",
        Some("amount_usd"),
        Some("user_id"),
        &["region", "plan"],
        "Completed payments in USD, paying users",
    );
    revenue.rollups = Some(vec![vec!["region".into()], vec!["plan".into()], Vec::new()]);
    vec![
        revenue,
        def(
            "api_latency",
            "api_request",
            Some("latency_ms"),
            None,
            &["service"],
            "API request latency in ms",
        ),
        def("signups", "signup", None, None, &["plan"], "New sign-ups"),
        def(
            "page_views",
            "page_view",
            None,
            Some("user_id"),
            &["region"],
            "Page views and unique visitors",
        ),
    ]
}

/// The widgets of "Demo overview".
pub fn demo_widgets() -> Vec<Value> {
    vec![
        json!({"title": "Events per minute", "metric_name": "events", "stat": "count",
               "time_window": "last_30m", "viz_type": "line_chart"}),
        json!({"title": "Revenue (USD, this minute)", "metric_name": "revenue", "stat": "sum",
               "time_window": "last_30m", "viz_type": "counter"}),
        json!({"title": "API latency p99 (ms)", "metric_name": "api_latency", "stat": "p99",
               "time_window": "last_30m", "viz_type": "line_chart"}),
        json!({"title": "Unique visitors", "metric_name": "page_views", "stat": "unique",
               "time_window": "last_30m", "viz_type": "line_chart"}),
        json!({"title": "Revenue in us-east", "metric_name": "revenue", "stat": "sum",
               "dimensions": {"region": "us-east"}, "time_window": "last_30m",
               "viz_type": "area_chart"}),
        json!({"title": "Revenue by region", "metric_name": "revenue", "stat": "sum",
               "time_window": "last_30m", "viz_type": "table"}),
        json!({"title": "Sign-ups", "metric_name": "signups", "stat": "count",
               "time_window": "last_30m", "viz_type": "bar_chart"}),
    ]
}

/// Name of the demo dashboard.
pub const DASHBOARD_NAME: &str = "Demo overview";

/// Defines the demo metrics and dashboard (idempotent).
pub async fn setup(gateway: &GatewayClient, tenant: &str) -> anyhow::Result<String> {
    for def in demo_metrics(tenant) {
        gateway.put_metric(&def).await?;
    }
    let dashboard = gateway
        .ensure_dashboard(
            tenant,
            DASHBOARD_NAME,
            "Live demo traffic from rtdash-loadgen demo",
            &demo_widgets(),
        )
        .await?;
    Ok(dashboard.dashboard_id)
}

/// Generates the demo events.
struct DemoGen {
    rng: SmallRng,
    timestamps: Timestamps,
    amount: LogNormal<f64>,
    latency: LogNormal<f64>,
}

impl DemoGen {
    fn new(seed: u64) -> anyhow::Result<Self> {
        Ok(Self {
            rng: SmallRng::seed_from_u64(seed),
            timestamps: Timestamps::new(),
            // median ~$33, long tail
            amount: LogNormal::new(3.5, 0.9)?,
            // median ~45 ms
            latency: LogNormal::new(3.8, 0.5)?,
        })
    }

    fn write_event(&mut self, out: &mut Vec<u8>, tenant: &str, now: i64) {
        let rng = &mut self.rng;
        let kind: f64 = rng.random();
        let (event_type, source) = match kind {
            k if k < 0.60 => ("page_view", "web"),
            k if k < 0.92 => ("api_request", "api-gateway"),
            k if k < 0.97 => ("payment_completed", "billing"),
            _ => ("signup", "auth"),
        };
        // Regions and plans are skewed, as real traffic is.
        let region = REGIONS[weighted(rng.random(), &[0.4, 0.25, 0.25, 0.1])];
        let plan = PLANS[weighted(rng.random(), &[0.7, 0.25, 0.05])];
        let service = SERVICES[rng.random_range(0..SERVICES.len())];
        let user = rng.random_range(0..USERS);
        let late = rng.random::<f64>() < 0.015;
        let at = if late {
            now - rng.random_range(10_000..=90_000)
        } else {
            now
        };
        out.extend_from_slice(br#"{"tenant_id":"#);
        jsonw::string(out, tenant);
        out.extend_from_slice(br#","source":"#);
        jsonw::string(out, source);
        out.extend_from_slice(br#","event_type":"#);
        jsonw::string(out, event_type);
        out.extend_from_slice(br#","properties":{"region":"#);
        jsonw::string(out, region);
        out.extend_from_slice(br#","plan":"#);
        jsonw::string(out, plan);
        out.extend_from_slice(br#","user_id":"u"#);
        jsonw::uint(out, u64::from(user));
        out.push(b'"');
        match event_type {
            "payment_completed" => {
                out.extend_from_slice(br#","amount_usd":"#);
                jsonw::fixed2(out, self.amount.sample(rng));
            }
            "api_request" => {
                out.extend_from_slice(br#","service":"#);
                jsonw::string(out, service);
                let mut latency = self.latency.sample(rng);
                if rng.random::<f64>() < 0.01 {
                    // a slow dependency: occasional spikes
                    latency *= rng.random_range(10.0..40.0);
                }
                out.extend_from_slice(br#","latency_ms":"#);
                jsonw::fixed2(out, latency);
                out.extend_from_slice(br#","status":"#);
                jsonw::uint(out, if rng.random::<f64>() < 0.02 { 500 } else { 200 });
            }
            "page_view" => {
                out.extend_from_slice(br#","path":"/"#);
                out.extend_from_slice(service.as_bytes());
                out.push(b'"');
            }
            _ => {}
        }
        out.extend_from_slice(br#"},"occurred_at":"#);
        self.timestamps.write(out, at);
        out.push(b'}');
    }
}

fn weighted(x: f64, weights: &[f64]) -> usize {
    let mut acc = 0.0;
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        if x < acc {
            return i;
        }
    }
    weights.len() - 1
}

/// The rate at `t` seconds: a daily-ish sine (±60 %) times a burst factor.
fn rate_at(base: f64, period: f64, t: f64) -> f64 {
    let phase = 2.0 * std::f64::consts::PI * t / period.max(1.0);
    (base * (1.0 + 0.6 * phase.sin())).max(base * 0.1)
}

/// Runs `demo` (until killed, or for `--duration`).
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let client = http_client(4, Duration::from_secs(30))?;
    if let Some(url) = &args.gateway {
        let gateway = GatewayClient::new(url, client.clone());
        let tenant = args.tenant.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            loop {
                match setup(&gateway, &tenant).await {
                    Ok(id) => {
                        tracing::info!(dashboard_id = %id, tenant = %tenant, "demo metrics and dashboard ready");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(error = %format!("{err:#}"), "demo setup through the gateway failed; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }
    let agent = AgentClient::new(&args.agent, client);
    let mut gen = DemoGen::new(args.seed)?;
    let mut rng = SmallRng::seed_from_u64(args.seed ^ 0x5eed);
    let started = Instant::now();
    let mut burst_until: Option<Instant> = None;
    let mut burst_factor = 1.0;
    let mut carry = 0.0f64;
    let mut backoff = Duration::from_millis(250);
    let (mut sent, mut accepted, mut rejected) = (0u64, 0u64, 0u64);
    let mut last_log = Instant::now();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let t = started.elapsed().as_secs_f64();
        if args.duration.is_some_and(|d| t >= d) {
            break;
        }
        let now = Instant::now();
        if burst_until.is_some_and(|until| now >= until) {
            burst_until = None;
            burst_factor = 1.0;
        }
        // A burst about every 2 minutes on average, 5 to 20 s long, 2 to 4 times the rate.
        if burst_until.is_none() && rng.random::<f64>() < TICK.as_secs_f64() / 120.0 {
            burst_until = Some(now + Duration::from_secs_f64(rng.random_range(5.0..20.0)));
            burst_factor = rng.random_range(2.0..4.0);
        }
        let rate = rate_at(args.rate, args.period_secs, t) * burst_factor;
        carry += rate * TICK.as_secs_f64();
        while carry >= 1.0 {
            let n = (rng.random_range(50..=200) as f64).min(carry.floor()) as usize;
            carry -= n as f64;
            let mut body = Vec::with_capacity(n * 220);
            let at = now_millis();
            body.push(b'[');
            for i in 0..n {
                if i > 0 {
                    body.push(b',');
                }
                gen.write_event(&mut body, &args.tenant, at);
            }
            body.push(b']');
            match agent
                .post(Bytes::from(body), BodyFormat::Json, n as u64)
                .await
            {
                Ok(Outcome::Judged {
                    accepted: a,
                    rejected: r,
                }) => {
                    sent += n as u64;
                    accepted += a;
                    rejected += r;
                    backoff = Duration::from_millis(250);
                }
                Ok(Outcome::Overloaded {
                    status,
                    retry_after,
                }) => {
                    let wait = retry_after.unwrap_or(Duration::from_secs(1));
                    tracing::warn!(
                        status,
                        wait_ms = wait.as_millis() as u64,
                        "edge agent overloaded; backing off"
                    );
                    tokio::time::sleep(wait).await;
                    carry = 0.0;
                    break;
                }
                Ok(Outcome::Failed { status }) => {
                    tracing::warn!(status, "edge agent answered with an unexpected status");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    carry = 0.0;
                    break;
                }
                Err(err) => {
                    tracing::warn!(%err, backoff_ms = backoff.as_millis() as u64, "cannot reach the edge agent");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    carry = 0.0;
                    break;
                }
            }
        }
        if last_log.elapsed() >= Duration::from_secs(30) {
            tracing::info!(
                sent,
                accepted,
                rejected,
                rate = rate.round(),
                "demo traffic"
            );
            last_log = Instant::now();
        }
    }
    tracing::info!(sent, accepted, rejected, "demo traffic finished");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::event::{parse_event, EventLimits};

    #[test]
    fn demo_events_are_valid_and_metrics_validate() {
        let mut gen = DemoGen::new(1).expect("distributions");
        let now = now_millis();
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let mut out = Vec::new();
            gen.write_event(&mut out, "demo", now);
            let event = parse_event(&out, &EventLimits::default(), now).expect("valid event");
            kinds.insert(event.event_type.to_string());
            assert!(event.occurred_at >= now - 90_000);
        }
        assert_eq!(kinds.len(), 4);
        for def in demo_metrics("demo") {
            def.validate().expect("valid metric");
        }
        assert!(rate_at(1000.0, 600.0, 150.0) > 1500.0);
        assert!(rate_at(1000.0, 600.0, 450.0) < 500.0);
    }
}
