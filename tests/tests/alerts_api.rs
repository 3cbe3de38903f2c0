//! Alert rules through the gateway's API (the gateway in-process, the real aggregator binary):
//! a changed rule applies from the next window without a restart, a deleted rule resolves its
//! alert, and `GET /v1/alerts/{id}/events` lists transitions and delivery attempts, a 4xx
//! answer recorded as failed.
//!
//! Build the binary first: `cargo build -p core-aggregator`.

use std::time::Duration;

use rtdash_shared::series::SeriesKey;
use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::alerts::{alert_options, window_end, Driver, LATENESS_MS, TENANT};
use rtdash_tests::client::{http_client, Api};
use rtdash_tests::in_process::{gateway_config, InProcessGateway};
use rtdash_tests::time::now_millis;
use rtdash_tests::webhook::Receiver;
use rtdash_tests::QuestDb;
use serde_json::{json, Value};

/// The gateway in this process, against the test's NATS and QuestDB.
struct Gateway {
    /// Stopped when dropped.
    _gateway: InProcessGateway,
    api: Api,
}

impl Gateway {
    async fn start(env: &AggregatorEnv, db: &QuestDb) -> anyhow::Result<Gateway> {
        let config = gateway_config(&env.nats.url(), &db.pg_addr().to_string(), &env.table);
        let gateway = InProcessGateway::start(config).await?;
        let api = Api::new(http_client(None), gateway.base.clone());
        Ok(Gateway {
            _gateway: gateway,
            api,
        })
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api
            .request(method, path, body, &[])
            .await
            .expect("gateway answers")
    }
}

fn events_series() -> SeriesKey {
    SeriesKey::new(
        TENANT,
        "events",
        [("source".to_owned(), Some("s1".to_owned()))],
    )
}

fn api_rule(threshold: f64, notify: &str) -> Value {
    json!({
        "tenant_id": TENANT,
        "metric_name": "events",
        "dimensions": {"source": "s1"},
        "stat": "count",
        "condition": "gt",
        "threshold": threshold,
        "notify_channel": notify,
        "annotations": {"summary": "source {{source}} is busy"},
    })
}

/// A rule changed with `PUT /v1/alerts/{id}` takes effect on the next window, without a
/// restart; deleting it resolves the alert it fired.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_changed_through_the_api_applies_on_the_next_window() -> anyhow::Result<()> {
    let env = AggregatorEnv::start().await?;
    let db = QuestDb::shared()?;
    let receiver = Receiver::start().await;
    let mut aggregator = env
        .aggregator(alert_options(env.options("agg-api-1", db)))
        .await?;
    let gateway = Gateway::start(&env, db).await?;
    let (status, created) = gateway
        .call(
            "POST",
            "/v1/alerts",
            Some(api_rule(1_000.0, &receiver.url("hook"))),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["alert_id"].as_str().unwrap().to_owned();
    let driver = Driver::start(env.js.clone(), 4, "drv-api-1", events_series(), 50);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(receiver.requests().is_empty(), "50 is not above 1000");

    let mut changed = api_rule(10.0, &receiver.url("hook"));
    changed["revision"] = created["revision"].clone();
    let changed_at = now_millis();
    let (status, body) = gateway
        .call(
            "PUT",
            &format!("/v1/alerts/{id}?tenant_id={TENANT}"),
            Some(changed),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let firing = receiver
        .wait_for("hook", "firing", 1, Duration::from_secs(10))
        .await?;
    let after = firing[0].at - changed_at;
    println!("fired {after} ms after the rule changed");
    // The window in progress when the rule changed closes at most 1.5 s later.
    assert!(
        after < 1_000 + LATENESS_MS + 2_000,
        "fired {after} ms after the change"
    );
    // Not a window evaluated long before the change: the window closes on the driver's
    // watermark, which can reach the aggregator up to a heartbeat after end + lateness, so
    // a window closing just before `changed_at` on the clock may still be evaluated after it.
    let close_slack_ms = 1_000;
    assert!(
        window_end(&firing[0]) + LATENESS_MS + close_slack_ms >= changed_at,
        "fired for a window closed before the change"
    );
    assert_eq!(firing[0].annotation("threshold"), "> 10");
    assert_eq!(firing[0].annotation("summary"), "source s1 is busy");
    assert_eq!(firing[0].label("alertname"), id);

    let (status, _) = gateway
        .call(
            "DELETE",
            &format!("/v1/alerts/{id}?tenant_id={TENANT}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let resolved = receiver
        .wait_for("hook", "resolved", 1, Duration::from_secs(10))
        .await?;
    assert!(
        resolved[0]
            .annotation("resolved_reason")
            .contains("deleted"),
        "{:#?}",
        resolved[0].body
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.requests().len(), 2, "{:#?}", receiver.requests());
    assert!(aggregator.is_running(), "never restarted");
    driver.stop().await;
    assert!(aggregator.stop());
    Ok(())
}

/// A 4xx answer is not retried, is recorded as failed with its status, and shows in
/// `GET /v1/alerts/{id}/events` (newest first, tenant-scoped).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_4xx_is_recorded_as_failed_and_listed_in_the_events() -> anyhow::Result<()> {
    let env = AggregatorEnv::start().await?;
    let db = QuestDb::shared()?;
    let receiver = Receiver::start().await;
    receiver.answer_on("gone", 404, "no such hook: gone");
    let mut aggregator = env
        .aggregator(alert_options(env.options("agg-api-2", db)))
        .await?;
    let gateway = Gateway::start(&env, db).await?;
    let (status, created) = gateway
        .call(
            "POST",
            "/v1/alerts",
            Some(api_rule(10.0, &receiver.url("gone"))),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["alert_id"].as_str().unwrap().to_owned();
    let events_path = format!("/v1/alerts/{id}/events?tenant_id={TENANT}");
    let (status, empty) = gateway.call("GET", &events_path, None).await;
    assert_eq!((status, &empty["events"]), (200, &json!([])), "{empty}");

    let driver = Driver::start(env.js.clone(), 4, "drv-api-2", events_series(), 50);
    receiver
        .wait_for("gone", "firing", 1, Duration::from_secs(15))
        .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let events = loop {
        let (status, body) = gateway.call("GET", &events_path, None).await;
        assert_eq!(status, 200, "{body}");
        let events = body["events"].as_array().cloned().unwrap_or_default();
        if events.iter().any(|e| e["outcome"] == "failed") {
            break events;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no failed delivery listed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("{}", serde_json::to_string_pretty(&events)?);
    let failed = events.iter().find(|e| e["outcome"] == "failed").unwrap();
    assert_eq!(failed["kind"], "delivery");
    assert_eq!(failed["http_status"], 404);
    // The receiver's answer is never shown (a webhook turned inward would read it back).
    assert!(failed.get("response").is_none(), "{failed}");
    assert_eq!(failed["attempt"], 1);
    assert_eq!(failed["to"], "firing");
    assert_eq!(failed["dimensions"]["source"], "s1");
    let transition = events
        .iter()
        .find(|e| e["kind"] == "transition" && e["to"] == "firing")
        .expect("the transition is listed");
    assert_eq!(transition["transition_id"], failed["transition_id"]);
    assert_eq!(transition["from"], "ok");
    assert_eq!(transition["value"], 50.0);
    let times: Vec<&str> = events.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    // Not retried.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.requests().len(), 1, "{:#?}", receiver.requests());
    assert_eq!(
        aggregator.metric("rtdash_core_alert_deliveries_total")?,
        1.0
    );

    let (status, one) = gateway
        .call("GET", &format!("{events_path}&limit=1"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["events"].as_array().map(Vec::len), Some(1));
    let (status, _) = gateway
        .call("GET", &format!("{events_path}&limit=0"), None)
        .await;
    assert_eq!(status, 400);
    let (status, _) = gateway
        .call(
            "GET",
            &format!("/v1/alerts/{id}/events?tenant_id=other"),
            None,
        )
        .await;
    assert_eq!(status, 404, "another tenant's rule");
    let (status, _) = gateway
        .call(
            "GET",
            &format!("/v1/alerts/nope/events?tenant_id={TENANT}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, spec) = gateway.call("GET", "/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(spec["paths"]["/v1/alerts/{id}/events"]["get"].is_object());
    driver.stop().await;
    assert!(aggregator.stop());
    Ok(())
}

/// Polls `path` until `done` holds for its answer (at most `within`).
async fn poll(
    gateway: &Gateway,
    path: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let (status, body) = gateway.call("GET", path, None).await;
        anyhow::ensure!(status == 200, "GET {path}: {status} {body}");
        if done(&body) {
            return Ok(body);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "GET {path} never got there: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A silence mutes a firing rule's notification (recorded `silenced` in its history) while its
/// state, served from the aggregators, says firing and which silence mutes it; once the
/// silence is expired the resolved notification goes out, titled with the rule's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silence_mutes_delivery_but_keeps_state_and_history() -> anyhow::Result<()> {
    let env = AggregatorEnv::start().await?;
    let db = QuestDb::shared()?;
    let receiver = Receiver::start().await;
    let mut aggregator = env
        .aggregator(alert_options(env.options("agg-api-3", db)))
        .await?;
    let gateway = Gateway::start(&env, db).await?;
    let mut rule = api_rule(10.0, &receiver.url("hook"));
    rule["name"] = json!("Busy source s1");
    rule["description"] = json!("More than 10 events a second from s1.");
    let (status, created) = gateway.call("POST", "/v1/alerts", Some(rule)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "Busy source s1");
    let id = created["alert_id"].as_str().unwrap().to_owned();

    // Silences are checked: an end is needed, the rule must exist, tenants are apart.
    let (status, body) = gateway
        .call(
            "POST",
            "/v1/silences",
            Some(json!({"tenant_id": TENANT, "alert_id": id})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ends_at"));
    let (status, body) = gateway
        .call(
            "POST",
            "/v1/silences",
            Some(json!({"tenant_id": TENANT, "alert_id": "nope", "duration_secs": 60})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, silence) = gateway
        .call(
            "POST",
            "/v1/silences",
            Some(json!({
                "tenant_id": TENANT, "alert_id": id, "matchers": {"source": "s1"},
                "duration_secs": 600, "comment": "maintenance",
            })),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    assert_eq!(silence["status"], "active");
    let silence_id = silence["silence_id"].as_str().unwrap().to_owned();
    let silence_path = format!("/v1/silences/{silence_id}?tenant_id={TENANT}");
    let (status, _) = gateway
        .call(
            "GET",
            &format!("/v1/silences/{silence_id}?tenant_id=other"),
            None,
        )
        .await;
    assert_eq!(status, 404, "another tenant's silence");

    let state_path = format!("/v1/alerts/{id}/state?tenant_id={TENANT}");
    let (status, quiet) = gateway.call("GET", &state_path, None).await;
    assert_eq!(status, 200, "{quiet}");
    assert_eq!(quiet["state"], "ok");

    let driver = Driver::start(env.js.clone(), 4, "drv-api-3", events_series(), 50);
    let firing = poll(&gateway, &state_path, Duration::from_secs(20), |b| {
        b["state"] == "firing"
    })
    .await?;
    assert_eq!(firing["firing"], 1, "{firing}");
    let series = &firing["series"][0];
    assert_eq!(series["dimensions"]["source"], "s1");
    assert_eq!(series["value"], 50.0);
    assert_eq!(series["silenced_by"], silence_id.as_str());
    let states = poll(
        &gateway,
        &format!("/v1/alert-states?tenant_id={TENANT}"),
        Duration::from_secs(5),
        |b| b["alerts"][0]["state"] == "firing",
    )
    .await?;
    assert_eq!(states["alerts"][0]["alert_id"], id.as_str());

    let events_path = format!("/v1/alerts/{id}/events?tenant_id={TENANT}");
    let events = poll(&gateway, &events_path, Duration::from_secs(10), |b| {
        b["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["outcome"] == "silenced"))
    })
    .await?;
    let silenced = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "silenced")
        .unwrap();
    assert_eq!(silenced["to"], "firing");
    assert!(
        silenced["error"]
            .as_str()
            .is_some_and(|e| e.contains(&silence_id)),
        "{silenced}"
    );
    assert!(
        receiver.requests().is_empty(),
        "muted: {:#?}",
        receiver.requests()
    );

    // Expired: the silence stays listed, no longer in force; the recovery is notified.
    let (status, _) = gateway.call("DELETE", &silence_path, None).await;
    assert_eq!(status, 204);
    let (status, expired) = gateway.call("GET", &silence_path, None).await;
    assert_eq!((status, &expired["status"]), (200, &json!("expired")));
    let (_, listed) = gateway
        .call("GET", &format!("/v1/silences?tenant_id={TENANT}"), None)
        .await;
    assert_eq!(listed["silences"].as_array().map(Vec::len), Some(1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    driver.set_rate(5);
    let resolved = receiver
        .wait_for("hook", "resolved", 1, Duration::from_secs(15))
        .await?;
    assert_eq!(resolved[0].label("alertname"), "Busy source s1");
    assert_eq!(
        resolved[0].annotation("description"),
        "More than 10 events a second from s1."
    );
    assert_eq!(
        resolved[0].body["groupLabels"]["alertname"],
        "Busy source s1"
    );
    assert_eq!(
        receiver.with_status("hook", "firing").len(),
        0,
        "never sent"
    );
    driver.stop().await;
    assert!(aggregator.stop());
    Ok(())
}
