//! 1,000 concurrent SSE viewers of one dashboard (in its own test binary, so no other test
//! competes for the two cores): every viewer gets an update within a second of its
//! publication, QuestDB sees one snapshot query per widget, NATS one subscription.
//! `RTDASH_FANOUT_VIEWERS` changes the number of viewers.

use std::time::{Duration, Instant};

use rtdash_tests::gateway_env::amount::{self, at, provisional, total, us};
use rtdash_tests::gateway_env::GatewayEnv;
use rtdash_tests::sse::Sse;
use rtdash_tests::time::{minute, now_millis};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_viewers_get_each_update_within_a_second() {
    let env = GatewayEnv::start(|config| {
        config.live.snapshot_ttl_ms = 120_000;
        config.max_concurrent_requests = 4096;
        // Every viewer connects from this one address.
        config.live.max_streams_per_client = 0;
    })
    .await;
    let base = minute(0);
    amount::define(&env).await;
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
            let mut sse = Sse::new(response);
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
    let metrics = env.text("/metrics").await;
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
