//! Alert evaluation and webhook delivery end to end: the real `core-aggregator` binary, a real
//! nats-server and QuestDB, fake agents publishing real partial batches in real time, and a
//! webhook receiver on loopback.
//!
//! Build the binary first: `cargo build -p core-aggregator`.

use std::collections::HashSet;
use std::time::Duration;

use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::alerts::{
    alert_log, alert_options, messages_containing, put_rule, rule, series, window_end, Driver,
    LATENESS_MS, METRIC, TENANT,
};
use rtdash_tests::webhook::Receiver;
use rtdash_tests::QuestDb;

/// A breach produces exactly one firing notification within a few seconds of the window
/// closing; the recovery one resolved notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_breach_fires_once_and_the_recovery_resolves_once() -> anyhow::Result<()> {
    let env = AggregatorEnv::start().await?;
    let db = QuestDb::shared()?;
    let receiver = Receiver::start().await;
    let mut aggregator = env
        .aggregator(
            alert_options(env.options("agg-alert-1", db))
                .set("ALERTS__EXTERNAL_URL", "https://dash.example.com"),
        )
        .await?;
    put_rule(&env.js, &rule("r1", 10.0, &receiver.url("hook"))).await?;
    let driver = Driver::start(env.js.clone(), 4, "drv-1", series(), 5);

    // Below the threshold: nothing is sent (ok -> ok).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(receiver.requests().is_empty(), "{:?}", receiver.requests());

    driver.set_rate(20);
    let firing = receiver
        .wait_for("hook", "firing", 1, Duration::from_secs(15))
        .await?;
    let first = &firing[0];
    let closed_at = window_end(first) + LATENESS_MS;
    let delay = first.at - closed_at;
    println!("firing notification {delay} ms after its window closed");
    // "Within a few seconds": generous, the test machine is shared.
    assert!(delay < 5_000, "notified {delay} ms after the window closed");

    // The body: Alertmanager's webhook format plus Slack's `text`.
    let body = &first.body;
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(first.label("alertname"), "r1");
    assert_eq!(first.label("tenant"), TENANT);
    assert_eq!(first.label("metric"), METRIC);
    assert_eq!(first.label("region"), "eu");
    assert_eq!(first.label("severity"), "page");
    assert_eq!(first.annotation("summary"), "too many requests in eu");
    assert_eq!(first.annotation("value"), "20");
    assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        body["alerts"][0]["generatorURL"],
        "https://dash.example.com/v1/alerts/r1?tenant_id=t1"
    );
    assert_eq!(
        body["alerts"][0]["fingerprint"].as_str().map(str::len),
        Some(16)
    );
    assert!(body["groupKey"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(
        body["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("[FIRING]")),
        "{body}"
    );
    assert!(
        first.key.starts_with("alert.r1."),
        "Idempotency-Key {}",
        first.key
    );

    // Still breaching: still one notification.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.with_status("hook", "firing").len(), 1);

    driver.set_rate(5);
    let resolved = receiver
        .wait_for("hook", "resolved", 1, Duration::from_secs(15))
        .await?;
    assert!(resolved[0].body["alerts"][0]["endsAt"]
        .as_str()
        .is_some_and(|t| !t.starts_with("0001")));
    assert_eq!(
        resolved[0].body["alerts"][0]["fingerprint"], body["alerts"][0]["fingerprint"],
        "the same alert"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = receiver.requests();
    assert_eq!(all.len(), 2, "one firing, one resolved: {all:#?}");
    assert_eq!(all.iter().map(|r| &r.key).collect::<HashSet<_>>().len(), 2);

    // The alert log has the transitions (incl. the unsent resolved -> ok) and the deliveries.
    let log = alert_log(&env.js, TENANT, "r1").await?;
    let transitions: Vec<&str> = log
        .iter()
        .filter(|r| r["kind"] == "transition")
        .map(|r| r["to"].as_str().unwrap())
        .collect();
    assert_eq!(transitions, ["firing", "resolved", "ok"], "{log:#?}");
    let delivered = log
        .iter()
        .filter(|r| r["kind"] == "delivery" && r["outcome"] == "delivered")
        .count();
    assert_eq!(delivered, 2);

    // The webhook URL (often a secret) stays in the config bucket: not in the transitions,
    // the alert log or the alert state.
    let url = receiver.url("hook");
    for stream in [
        rtdash_shared::names::ALERTS_STREAM.to_owned(),
        rtdash_shared::names::ALERT_EVENTS_STREAM.to_owned(),
        format!("KV_{}", rtdash_shared::names::ALERT_STATE_BUCKET),
    ] {
        let copies = messages_containing(&env.js, &stream, &url).await?;
        assert_eq!(copies, 0, "{stream} holds the webhook URL {copies} times");
    }

    let metrics = aggregator.metrics_text()?;
    assert!(
        metrics.contains("rtdash_core_alert_transitions_total{to=\"firing\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("rtdash_core_alert_deliveries_total{outcome=\"delivered\"} 2"));
    assert!(metrics.contains("rtdash_core_alert_delivery_latency_seconds"));
    driver.stop().await;
    assert!(aggregator.stop(), "graceful stop");
    Ok(())
}

/// The receiver answers 500 for 30 s, then 200: the transition is delivered once, after it
/// recovers, always with the same `Idempotency-Key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_receiver_gets_the_notification_once_it_recovers() -> anyhow::Result<()> {
    let env = AggregatorEnv::start().await?;
    let db = QuestDb::shared()?;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let mut aggregator = env
        .aggregator(alert_options(env.options("agg-alert-2", db)))
        .await?;
    put_rule(&env.js, &rule("r2", 10.0, &receiver.url("hook"))).await?;
    let driver = Driver::start(env.js.clone(), 4, "drv-2", series(), 20);

    let first = receiver
        .wait_for("hook", "firing", 1, Duration::from_secs(15))
        .await?
        .remove(0);
    assert_eq!(first.answered, 500);
    let recover_at = first.at + 30_000;
    tokio::time::sleep(Duration::from_millis(
        (recover_at - rtdash_shared::time::now_millis()).max(0) as u64,
    ))
    .await;
    receiver.answer(200);
    let delivered = loop {
        let ok: Vec<_> = receiver
            .with_status("hook", "firing")
            .into_iter()
            .filter(|r| r.answered == 200)
            .collect();
        if let Some(first_ok) = ok.first() {
            break first_ok.clone();
        }
        anyhow::ensure!(
            rtdash_shared::time::now_millis() < recover_at + 10_000,
            "not delivered within 10 s of the receiver recovering"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let after = delivered.at - recover_at;
    println!("delivered {after} ms after the receiver recovered");
    // Backoff is capped at 2 s (+20 % jitter) in this test.
    assert!(after <= 3_000, "delivered {after} ms after recovery");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let attempts = receiver.with_status("hook", "firing");
    let failed = attempts.iter().filter(|r| r.answered == 500).count();
    let succeeded = attempts.iter().filter(|r| r.answered == 200).count();
    println!("{failed} attempts answered 500, {succeeded} answered 200");
    assert_eq!(succeeded, 1, "delivered exactly once");
    assert!(failed >= 10, "retried while failing ({failed})");
    let keys: HashSet<_> = attempts.iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        keys.len(),
        1,
        "one Idempotency-Key for every attempt: {keys:?}"
    );
    assert_eq!(
        receiver.requests().len(),
        attempts.len(),
        "nothing else was sent"
    );

    let log = alert_log(&env.js, TENANT, "r2").await?;
    let outcomes: Vec<&str> = log
        .iter()
        .filter(|r| r["kind"] == "delivery")
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.last(), Some(&"delivered"), "{outcomes:?}");
    assert!(outcomes[..outcomes.len() - 1]
        .iter()
        .all(|o| *o == "retrying"));
    assert!(log
        .iter()
        .any(|r| r["http_status"] == 500 && r["response"].is_null()));
    assert_eq!(aggregator.metric("rtdash_core_alert_retry_backlog")?, 0.0);
    driver.stop().await;
    assert!(aggregator.stop(), "graceful stop");
    Ok(())
}
