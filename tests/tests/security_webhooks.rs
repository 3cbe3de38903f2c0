//! Webhooks that cannot be turned inward (issue #16): the gateway refuses rules whose
//! `notify_channel` points at loopback, link-local (cloud metadata), private, shared,
//! multicast or unspecified addresses, at names resolving there, or carries user-info (`400`
//! naming why); answers show the URL masked; an update without it keeps it. The real
//! `core-aggregator` refuses such destinations again at every delivery (a recorded `failed`
//! delivery with the reason, no request made) unless `alerts.notifier.allow_destinations`
//! names them; tenants never see a receiver's answer.
//!
//! Build the binary first: `cargo build -p core-aggregator`.

use std::time::Duration;

use rtdash_shared::series::SeriesKey;
use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::alerts::{alert_log, alert_options, put_rule, rule, series, Driver, TENANT};
use rtdash_tests::client::{http_client, Api};
use rtdash_tests::in_process::{gateway_config, InProcessGateway};
use rtdash_tests::webhook::Receiver;
use rtdash_tests::QuestDb;
use serde_json::{json, Value};

/// The gateway in this process with `allow` as its webhook allowlist.
async fn gateway(env: &AggregatorEnv, db: &QuestDb, allow: &[&str]) -> (InProcessGateway, Api) {
    let mut config = gateway_config(&env.nats.url(), &db.pg_addr().to_string(), &env.table);
    config.webhook_allow_destinations = allow.iter().map(|s| s.to_string()).collect();
    let gateway = InProcessGateway::start(config).await.expect("gateway");
    let api = Api::new(http_client(None), gateway.base.clone());
    (gateway, api)
}

async fn call(api: &Api, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    api.request(method, path, body, &[])
        .await
        .expect("gateway answers")
}

fn api_rule(notify: &str) -> Value {
    json!({
        "tenant_id": TENANT,
        "metric_name": "events",
        "dimensions": {"source": "s1"},
        "stat": "count",
        "condition": "gt",
        "threshold": 10.0,
        "notify_channel": notify,
    })
}

/// The stored rule, read from the config bucket as the aggregators read it.
async fn stored_channel(env: &AggregatorEnv, id: &str) -> String {
    let kv = env
        .js
        .get_key_value(rtdash_shared::names::CONFIG_BUCKET)
        .await
        .expect("config bucket");
    let entry = kv
        .get(rtdash_shared::names::alert_config_key(TENANT, id))
        .await
        .expect("kv")
        .expect("stored");
    let rule: Value = serde_json::from_slice(&entry).expect("json");
    rule["notify_channel"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_refuses_inward_webhooks_and_never_reads_a_url_back() -> anyhow::Result<()> {
    let env = AggregatorEnv::start().await?;
    let db = QuestDb::shared()?;
    // The aggregator writes the topology (config bucket) the gateway uses.
    let mut aggregator = env
        .aggregator(alert_options(env.options("agg-sec-api", db)))
        .await?;
    let (_gateway, api) = gateway(&env, db, &[]).await;
    let cases = [
        (
            "http://127.0.0.1:9/hook",
            "`127.0.0.1` is a loopback address",
        ),
        ("http://[::1]:9/hook", "`::1` is a loopback address"),
        (
            "http://localhost:9/hook",
            "`localhost` resolves to a loopback address",
        ),
        ("http://2130706433/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:169.254.169.254]/latest/", "link-local"),
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.0.1/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://[fd00::1]/hook", "private"),
        ("http://100.64.0.1/hook", "100.64"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://0.0.0.0:80/hook", "unspecified"),
        (
            "http://user:secret@93.184.215.14/hook",
            "user name or password",
        ),
        ("ftp://93.184.215.14/hook", "http"),
    ];
    for (url, why) in cases {
        let (status, body) = call(&api, "POST", "/v1/alerts", Some(api_rule(url))).await;
        assert_eq!(status, 400, "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{url}: {message}");
    }

    // A public destination is taken; its path (a token) is never answered back.
    let secret = "http://93.184.215.14:8443/services/T0/B1/s3cr3t?token=abc";
    let (status, created) = call(&api, "POST", "/v1/alerts", Some(api_rule(secret))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["notify_channel"], "http://93.184.215.14:8443/***");
    let id = created["alert_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/alerts/{id}?tenant_id={TENANT}");
    let (status, one) = call(&api, "GET", &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(one["notify_channel"], "http://93.184.215.14:8443/***");
    let (_, list) = call(&api, "GET", &format!("/v1/alerts?tenant_id={TENANT}"), None).await;
    assert!(!list.to_string().contains("s3cr3t"), "{list}");

    // An update without the URL, or with the masked form read back, keeps the stored one.
    let mut changed = api_rule("");
    changed.as_object_mut().unwrap().remove("notify_channel");
    changed["threshold"] = json!(20.0);
    let (status, body) = call(&api, "PUT", &path, Some(changed)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["threshold"], 20.0);
    assert_eq!(stored_channel(&env, &id).await, secret);
    let mut read_back = api_rule("http://93.184.215.14:8443/***");
    read_back["threshold"] = json!(30.0);
    let (status, body) = call(&api, "PUT", &path, Some(read_back)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stored_channel(&env, &id).await, secret);
    // Changing it to an inward one is refused like a create.
    let (status, body) = call(
        &api,
        "PUT",
        &path,
        Some(api_rule("http://169.254.169.254/latest/")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(stored_channel(&env, &id).await, secret);
    // A create without one is refused.
    let mut missing = api_rule("");
    missing.as_object_mut().unwrap().remove("notify_channel");
    let (status, body) = call(&api, "POST", "/v1/alerts", Some(missing)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("notify_channel"), "{body}");
    assert!(aggregator.stop());
    Ok(())
}

/// A rule stored with an inward URL (written before the policy, or a name that resolved
/// elsewhere when it was checked) is refused at delivery: a `failed` attempt naming why,
/// no request made, counted by class.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_refuses_inward_destinations_not_allowlisted() -> anyhow::Result<()> {
    let env = AggregatorEnv::start().await?;
    let db = QuestDb::shared()?;
    let receiver = Receiver::start().await;
    let mut aggregator = env
        .aggregator(
            alert_options(env.options("agg-sec-deliver", db))
                .set("ALERTS__NOTIFIER__ALLOW_DESTINATIONS", "[]"),
        )
        .await?;
    let by_name = receiver.url("named").replace("127.0.0.1", "localhost");
    put_rule(&env.js, &rule("lit", 10.0, &receiver.url("literal"))).await?;
    put_rule(&env.js, &rule("dns", 10.0, &by_name)).await?;
    let driver = Driver::start(env.js.clone(), 4, "drv-sec-1", series(), 20);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (literal, named) = loop {
        let failed = |log: Vec<Value>| {
            log.into_iter()
                .find(|r| r["kind"] == "delivery" && r["outcome"] == "failed")
        };
        let literal = failed(alert_log(&env.js, TENANT, "lit").await?);
        let named = failed(alert_log(&env.js, TENANT, "dns").await?);
        if let (Some(literal), Some(named)) = (&literal, &named) {
            break (literal.clone(), named.clone());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no refused delivery recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reason = literal["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("destination refused") && reason.contains("is a loopback address"),
        "{literal}"
    );
    assert_eq!(literal["attempt"], 1, "not retried");
    assert!(literal["http_status"].is_null());
    let reason = named["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("`localhost` resolves to a loopback address"),
        "{named}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(receiver.requests().is_empty(), "{:?}", receiver.requests());
    let refused = aggregator.metric("rtdash_core_alert_destinations_refused_total")?;
    assert!(refused >= 2.0, "{refused}");
    driver.stop().await;
    assert!(aggregator.stop());
    Ok(())
}

/// The allowlisted receiver (as the harness allows its loopback receivers) gets the
/// notification; a failing receiver's answer is never shown to the tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_allowlisted_receiver_is_delivered_to_and_its_answer_not_shown() -> anyhow::Result<()> {
    let env = AggregatorEnv::start().await?;
    let db = QuestDb::shared()?;
    let receiver = Receiver::start().await;
    let port = receiver
        .url("")
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .to_owned();
    receiver.answer_on("internal", 404, "internal-secret-body");
    let mut aggregator = env
        .aggregator(alert_options(env.options("agg-sec-allow", db)).set(
            "ALERTS__NOTIFIER__ALLOW_DESTINATIONS",
            format!("[\"127.0.0.1:{port}\"]"),
        ))
        .await?;
    let (_gateway, api) = gateway(&env, db, &[&format!("127.0.0.1:{port}")]).await;
    let (status, created) = call(
        &api,
        "POST",
        "/v1/alerts",
        Some(api_rule(&receiver.url("internal"))),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["notify_channel"],
        format!("http://127.0.0.1:{port}/***")
    );
    let id = created["alert_id"].as_str().unwrap().to_owned();
    // Another port of the same address is not allowed.
    let (status, body) = call(
        &api,
        "POST",
        "/v1/alerts",
        Some(api_rule("http://127.0.0.1:1/other")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let events_series = SeriesKey::new(
        TENANT,
        "events",
        [("source".to_owned(), Some("s1".to_owned()))],
    );
    let driver = Driver::start(env.js.clone(), 4, "drv-sec-2", events_series, 50);
    receiver
        .wait_for("internal", "firing", 1, Duration::from_secs(15))
        .await?;
    let events_path = format!("/v1/alerts/{id}/events?tenant_id={TENANT}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let events = loop {
        let (status, body) = call(&api, "GET", &events_path, None).await;
        assert_eq!(status, 200, "{body}");
        if body["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["outcome"] == "failed"))
        {
            break body;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no failed delivery: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let failed = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "failed")
        .unwrap();
    assert_eq!(failed["http_status"], 404);
    assert!(
        !events.to_string().contains("internal-secret-body"),
        "{events}"
    );
    let log = alert_log(&env.js, TENANT, &id).await?;
    assert!(
        !serde_json::to_string(&log)?.contains("internal-secret-body"),
        "not even in the alert log"
    );
    driver.stop().await;
    assert!(aggregator.stop());
    Ok(())
}
