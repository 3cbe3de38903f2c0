//! `POST /v1/alerts/{id}/test` (the gateway in-process, the real aggregator binary for the
//! alert log's stream, a real receiver on loopback allowed by `webhook_allow_destinations`):
//! the test notification arrives in the notifier's format, the answer says how it went
//! without the receiver's body, and the attempt is listed in the rule's events.
//!
//! Build the binary first: `cargo build -p core-aggregator`.

use std::time::Duration;

use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::alerts::{alert_options, TENANT};
use rtdash_tests::client::{http_client, Api};
use rtdash_tests::in_process::{gateway_config, InProcessGateway};
use rtdash_tests::webhook::Receiver;
use rtdash_tests::QuestDb;
use serde_json::{json, Value};

fn rule(name: &str, notify: &str) -> Value {
    json!({
        "tenant_id": TENANT,
        "name": name,
        "description": "checks the webhook",
        "metric_name": "events",
        "stat": "count",
        "condition": "gt",
        "threshold": 1000.0,
        "notify_channel": notify,
        "labels": {"team": "payments"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_test_notification_reaches_the_webhook_and_is_recorded() -> anyhow::Result<()> {
    let env = AggregatorEnv::start().await?;
    let db = QuestDb::shared()?;
    let receiver = Receiver::start().await;
    receiver.answer_on("gone", 404, "internal secret: do not show");
    // The aggregator creates the alert log's stream.
    let aggregator = env
        .aggregator(alert_options(env.options("agg-test-notify", db)))
        .await?;
    let config = gateway_config(&env.nats.url(), &db.pg_addr().to_string(), &env.table);
    let _gateway = InProcessGateway::start(config).await?;
    let api = Api::new(http_client(None), _gateway.base.clone());
    let call = |method: &'static str, path: String| {
        let api = &api;
        async move {
            api.request(method, &path, None, &[])
                .await
                .expect("gateway answers")
        }
    };

    // Delivered: the receiver gets one firing notification labelled as a test.
    let (status, created) = api
        .request(
            "POST",
            "/v1/alerts",
            Some(rule("Checkout errors", &receiver.url("ok"))),
            &[],
        )
        .await?;
    assert_eq!(status, 201, "{created}");
    let id = created["alert_id"].as_str().unwrap().to_owned();
    let (status, sent) = call("POST", format!("/v1/alerts/{id}/test?tenant_id={TENANT}")).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["outcome"], "delivered", "{sent}");
    assert_eq!(sent["http_status"], 200);
    assert_eq!(sent["error_class"], Value::Null);
    assert_eq!(sent["recorded"], true, "{sent}");
    let got = receiver.with_status("ok", "firing");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].key, sent["test_id"].as_str().unwrap());
    assert_eq!(got[0].label("alertname"), "Checkout errors");
    assert_eq!(got[0].label("test"), "true");
    assert_eq!(got[0].label("team"), "payments");
    assert_eq!(got[0].label("rule_id"), id);
    assert!(
        got[0].body["text"].as_str().unwrap().starts_with("[TEST] "),
        "{}",
        got[0].body
    );

    // Listed in the rule's events as a test attempt.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) =
            call("GET", format!("/v1/alerts/{id}/events?tenant_id={TENANT}")).await;
        assert_eq!(status, 200, "{body}");
        let events = body["events"].as_array().cloned().unwrap_or_default();
        if let Some(test) = events.iter().find(|e| e["kind"] == "test") {
            assert_eq!(test["outcome"], "delivered");
            assert_eq!(test["http_status"], 200);
            assert_eq!(test["transition_id"], sent["test_id"]);
            assert_eq!(events.len(), 1, "only the test: {body}");
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no test event: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A 4xx: failed with the status, the receiver's body never answered.
    let (status, created) = api
        .request(
            "POST",
            "/v1/alerts",
            Some(rule("", &receiver.url("gone"))),
            &[],
        )
        .await?;
    assert_eq!(status, 201, "{created}");
    let gone = created["alert_id"].as_str().unwrap().to_owned();
    let (status, sent) = call("POST", format!("/v1/alerts/{gone}/test?tenant_id={TENANT}")).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["outcome"], "failed");
    assert_eq!(sent["http_status"], 404);
    assert_eq!(sent["error_class"], "http_status");
    assert!(!sent.to_string().contains("secret"), "{sent}");
    assert_eq!(
        receiver.with_status("gone", "firing")[0].label("alertname"),
        gone
    );

    // Nothing listening: a connection error, classed, naming neither path nor body.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let (status, created) = api
        .request(
            "POST",
            "/v1/alerts",
            Some(rule(
                "closed",
                &format!("http://127.0.0.1:{closed}/hook/token123"),
            )),
            &[],
        )
        .await?;
    assert_eq!(status, 201, "{created}");
    let down = created["alert_id"].as_str().unwrap().to_owned();
    let (status, sent) = call("POST", format!("/v1/alerts/{down}/test?tenant_id={TENANT}")).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["outcome"], "failed");
    assert_eq!(sent["http_status"], Value::Null);
    assert_eq!(sent["error_class"], "connect", "{sent}");
    assert!(!sent.to_string().contains("token123"), "{sent}");

    // Another tenant's rule, an unknown rule: 404, nothing sent.
    let before = receiver.requests().len();
    let (status, _) = call("POST", format!("/v1/alerts/{id}/test?tenant_id=other")).await;
    assert_eq!(status, 404);
    let (status, _) = call("POST", format!("/v1/alerts/nope/test?tenant_id={TENANT}")).await;
    assert_eq!(status, 404);
    assert_eq!(receiver.requests().len(), before);

    let (status, spec) = call("GET", "/v1/openapi.json".to_owned()).await;
    assert_eq!(status, 200);
    assert!(spec["paths"]["/v1/alerts/{id}/test"]["post"].is_object());
    let mut aggregator = aggregator;
    assert!(aggregator.stop());
    Ok(())
}
