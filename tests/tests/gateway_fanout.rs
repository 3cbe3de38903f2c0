//! 1,000 concurrent SSE viewers of one dashboard (in its own test binary, so no other test
//! competes for the two cores): every viewer gets an update within a second of its
//! publication, QuestDB sees one snapshot query per widget, NATS one subscription.
//! `RTDASH_FANOUT_VIEWERS` changes the number of viewers.

mod gateway_support;

use gateway_support::{minute, Env, Row};

/// Start of the minute `n` minutes before the test's fixed "now" (taken once per test so a
/// minute boundary crossed mid-test cannot move windows).
fn at(base: i64, n: i64) -> i64 {
    base - n * 60_000
}
use rtdash_shared::time::now_millis;
use serde_json::json;
use std::time::{Duration, Instant};

async fn amount(env: &Env) {
    env.define(
        "acme",
        json!({"name": "amount", "event_type": "pay", "field": "usd",
                              "dimensions": ["region"]}),
    )
    .await;
}

fn us(start: i64, count: u64) -> Row {
    let c = count as f64;
    Row::new("acme", "amount", start, &[("region", "us")], count).values(c * 2.0, 1.0, c, c - 0.5)
}

fn total(start: i64, count: u64) -> Row {
    let c = count as f64;
    Row::new("acme", "amount", start, &[], count).values(c * 2.0, 1.0, c, c - 0.25)
}

fn provisional(mut row: Row) -> Row {
    row.is_final = false;
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_viewers_get_each_update_within_a_second() {
    let env = Env::start(|config| {
        config.live.snapshot_ttl_ms = 120_000;
        config.max_concurrent_requests = 4096;
    })
    .await;
    let base = minute(0);
    amount(&env).await;
    env.insert(&[us(at(base, 2), 10), total(at(base, 2), 11)]);
    let (dashboard, _) = env
        .dashboard("acme", vec![
            json!({"metric_name": "amount", "dimensions": {"region": "us"}, "stat": "count", "time_window": "last_15m"}),
            json!({"metric_name": "amount", "stat": "sum", "window": "5m", "time_window": "last_1h"}),
        ])
        .await;
    let viewers: usize = std::env::var("RTDASH_FANOUT_VIEWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(viewers);
    let mut tasks = Vec::with_capacity(viewers);
    for _ in 0..viewers {
        let http = env.http.clone();
        let url = env.url(&format!("/v1/dashboards/{dashboard}/stream?tenant_id=acme"));
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let response = http.get(url).send().await.expect("stream");
            assert_eq!(response.status().as_u16(), 200);
            let mut sse = gateway_support::Sse::new(response);
            for _ in 0..2 {
                sse.next_named("snapshot", Duration::from_secs(60))
                    .await
                    .expect("snapshot");
            }
            ready.send(()).await.unwrap();
            let seen = sse
                .wait_for("\"value\":42.0", Duration::from_secs(60))
                .await;
            (Instant::now(), seen)
        }));
    }
    drop(ready_tx);
    let connect_started = Instant::now();
    for _ in 0..viewers {
        tokio::time::timeout(Duration::from_secs(120), ready_rx.recv())
            .await
            .expect("all viewers ready")
            .unwrap();
    }
    eprintln!(
        "{viewers} viewers connected with snapshots in {:?}",
        connect_started.elapsed()
    );
    assert_eq!(
        env.state.snapshots.queries(),
        2,
        "one QuestDB query per widget"
    );
    assert_eq!(
        env.state.hub.subscriptions(),
        1,
        "one upstream subscription"
    );
    let metrics = env
        .http
        .get(env.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("rtdash_gateway_snapshot_queries_total"));
    assert!(metrics.contains("rtdash_gateway_sse_clients"));
    let published = Instant::now();
    env.publish(&provisional(us(at(base, 0), 42)).update(now_millis()))
        .await;
    let mut worst = Duration::ZERO;
    let mut delays = Vec::with_capacity(viewers);
    for task in tasks {
        let (at, seen) = task.await.unwrap();
        assert!(seen, "update received");
        let delay = at.saturating_duration_since(published);
        worst = worst.max(delay);
        delays.push(delay);
    }
    delays.sort();
    eprintln!(
        "fan-out to {viewers} viewers: p50 {:?}, p99 {:?}, max {worst:?}",
        delays[viewers / 2],
        delays[viewers * 99 / 100]
    );
    assert!(worst < Duration::from_secs(1), "{worst:?}");
}
