//! Gateway REST API against real NATS and QuestDB: every resource's CRUD, error statuses,
//! optimistic concurrency, tenant isolation, OpenAPI, admin endpoints and the UI fallback.

use rtdash_tests::gateway_env::GatewayEnv;
use serde_json::json;

fn widget(metric: &str) -> serde_json::Value {
    json!({"metric_name": metric, "stat": "count", "time_window": "last_15m", "viz_type": "counter"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_widgets_crud_with_revisions() {
    let env = GatewayEnv::start(|_| {}).await;
    // Create (seed shape plus widgets), read back.
    let (status, created) = env
        .send(
            "POST",
            "/v1/dashboards",
            Some(json!({"tenant_id": "acme", "name": "Payments Overview"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["dashboard_id"].as_str().unwrap().to_owned();
    let revision = created["revision"].as_u64().unwrap();
    let (status, got) = env
        .get(&format!("/v1/dashboards/{id}?tenant_id=acme"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["name"], "Payments Overview");
    assert_eq!(got["widgets"], json!([]));

    // Widgets: add (tenant in the body), update, delete.
    let (status, added) = env
        .send(
            "POST",
            &format!("/v1/dashboards/{id}/widgets"),
            Some(json!({"tenant_id": "acme", "metric_name": "events",
                        "dimensions": {"source": "checkout"}, "time_window": "last_1h",
                        "viz_type": "line_chart"})),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let widget_id = added["widget_id"].as_str().unwrap().to_owned();
    assert_eq!(added["stat"], "count");
    let (status, updated) = env
        .send(
            "PUT",
            &format!("/v1/dashboards/{id}/widgets/{widget_id}?tenant_id=acme"),
            Some(
                json!({"metric_name": "events", "stat": "count", "window": "5m",
                        "time_window": "last_6h", "viz_type": "bar_chart"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["window"], "5m");
    let (_, got) = env
        .get(&format!("/v1/dashboards/{id}?tenant_id=acme"))
        .await;
    assert_eq!(got["widgets"][0]["viz_type"], "bar_chart");
    let current = got["revision"].as_u64().unwrap();
    assert!(current > revision);

    // Stale revision: 409, nothing changed.
    let (status, body) = env
        .send_with(
            "PUT",
            &format!("/v1/dashboards/{id}?tenant_id=acme"),
            Some(json!({"name": "renamed"})),
            &[("If-Match", &format!("\"{revision}\""))],
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let (status, body) = env
        .send_with(
            "PUT",
            &format!("/v1/dashboards/{id}?tenant_id=acme"),
            Some(json!({"name": "renamed", "revision": current})),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "renamed");
    assert_eq!(body["widgets"].as_array().unwrap().len(), 1, "widgets kept");

    // List, sorted by name.
    env.send(
        "POST",
        "/v1/dashboards",
        Some(json!({"tenant_id": "acme", "name": "A first"})),
    )
    .await;
    let (status, list) = env.get("/v1/dashboards?tenant_id=acme").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["dashboards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["A first", "renamed"]);

    // Delete the widget, then the dashboard.
    let (status, _) = env
        .send(
            "DELETE",
            &format!("/v1/dashboards/{id}/widgets/{widget_id}?tenant_id=acme"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = env
        .send(
            "DELETE",
            &format!("/v1/dashboards/{id}/widgets/{widget_id}?tenant_id=acme"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = env
        .send(
            "DELETE",
            &format!("/v1/dashboards/{id}?tenant_id=acme"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = env
        .get(&format!("/v1/dashboards/{id}?tenant_id=acme"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_widget_adds_lose_nothing() {
    let env = GatewayEnv::start(|_| {}).await;
    let (id, _) = env.dashboard("acme", vec![]).await;
    let path = format!("/v1/dashboards/{id}/widgets?tenant_id=acme");
    let adds = (0..10).map(|_| env.send("POST", &path, Some(widget("events"))));
    let results = futures::future::join_all(adds).await;
    let created = results.iter().filter(|(status, _)| *status == 201).count();
    let (_, got) = env
        .get(&format!("/v1/dashboards/{id}?tenant_id=acme"))
        .await;
    assert_eq!(got["widgets"].as_array().unwrap().len(), created);
    assert!(created >= 5, "retries absorb most races: {results:?}");
    for (status, body) in &results {
        assert!(*status == 201 || *status == 409, "{status} {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_are_400_with_reasons() {
    let env = GatewayEnv::start(|config| config.max_body_bytes = 4096).await;
    env.define(
        "acme",
        json!({"name": "latency", "event_type": "req", "field": "ms",
                               "dimensions": ["region", "plan"]}),
    )
    .await;
    let cases = vec![
        ("POST", "/v1/dashboards", json!({"name": "x"}), "tenant_id"),
        (
            "POST",
            "/v1/dashboards",
            json!({"tenant_id": "a.b", "name": "x"}),
            "tenant_id",
        ),
        (
            "POST",
            "/v1/dashboards",
            json!({"tenant_id": "acme", "name": ""}),
            "name",
        ),
        (
            "POST",
            "/v1/dashboards",
            json!({"tenant_id": "acme", "name": "x", "colour": 1}),
            "colour",
        ),
        (
            "POST",
            "/v1/dashboards",
            json!({"tenant_id": "acme", "name": "x",
            "widgets": [{"metric_name": "nope"}]}),
            "nope",
        ),
        (
            "POST",
            "/v1/dashboards",
            json!({"tenant_id": "acme", "name": "x",
            "widgets": [{"metric_name": "latency", "stat": "p99", "group_by": ["colour"]}]}),
            "colour",
        ),
        (
            "POST",
            "/v1/dashboards",
            json!({"tenant_id": "acme", "name": "x",
            "widgets": [{"metric_name": "latency", "stat": "p99", "window": "1m",
                         "time_window": "last_30d"}]}),
            "7 days",
        ),
        (
            "POST",
            "/v1/dashboards",
            json!({"tenant_id": "acme", "name": "x",
            "widgets": [{"metric_name": "latency", "stat": "unique"}]}),
            "unique",
        ),
        (
            "POST",
            "/v1/dashboards",
            json!({"tenant_id": "acme", "name": "x",
            "widgets": [{"metric_name": "latency", "time_window": "yesterday"}]}),
            "time_window",
        ),
        (
            "POST",
            "/v1/dashboards",
            json!({"tenant_id": "acme", "name": "x",
            "widgets": [{"metric_name": "latency", "stat": "p42"}]}),
            "p42",
        ),
        (
            "POST",
            "/v1/alerts",
            json!({"tenant_id": "acme", "metric_name": "latency", "condition": "gt",
            "threshold": 1, "notify_channel": "ftp://x"}),
            "notify_channel",
        ),
        (
            "POST",
            "/v1/alerts",
            json!({"tenant_id": "acme", "metric_name": "latency", "condition": "gt",
            "stat": "unique", "threshold": 1, "notify_channel": "https://x.example/h"}),
            "unique",
        ),
        (
            "POST",
            "/v1/alerts",
            json!({"tenant_id": "acme", "metric_name": "latency", "condition": "around",
            "threshold": 1, "notify_channel": "https://x.example/h"}),
            "around",
        ),
        (
            "POST",
            "/v1/metric-definitions",
            json!({"tenant_id": "acme", "name": "bad name", "event_type": "e"}),
            "name",
        ),
        (
            "POST",
            "/v1/metric-definitions",
            json!({"tenant_id": "acme", "name": "x", "event_type": "e", "dimension": ["a"]}),
            "dimension",
        ),
        (
            "POST",
            "/v1/metric-definitions",
            json!({"name": "x", "event_type": "e"}),
            "tenant_id",
        ),
    ];
    for (method, path, body, mention) in cases {
        let (status, answer) = env.send(method, path, Some(body.clone())).await;
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(mention), "{body}: {message}");
    }
    // Not JSON.
    let response = env
        .http
        .post(env.url("/v1/dashboards"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // Too large: 413 with the JSON error body.
    let big = "x".repeat(10_000);
    let (status, body) = env
        .send(
            "POST",
            "/v1/dashboards",
            Some(json!({"tenant_id": "acme", "name": big})),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    // Unknown route and wrong method.
    let (status, body) = env.get("/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = env.send("PATCH", "/v1/dashboards", None).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_crud() {
    let env = GatewayEnv::start(|_| {}).await;
    env.define(
        "acme",
        json!({"name": "latency", "event_type": "req", "field": "ms",
                               "dimensions": ["service"]}),
    )
    .await;
    let rule = json!({"tenant_id": "acme", "metric_name": "latency", "dimensions": {"service": "checkout"},
                      "stat": "p99", "condition": "gt", "threshold": 500,
                      "notify_channel": "https://hooks.example.com/x", "for_windows": 2,
                      "annotations": {"summary": "slow"}});
    let (status, created) = env.send("POST", "/v1/alerts", Some(rule.clone())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["alert_id"].as_str().unwrap().to_owned();
    assert_eq!(created["for_windows"], 2);
    assert_eq!(created["evaluate_on"], "final");
    // Stored as the shared AlertRule (what the aggregators read).
    let stored = env
        .state
        .store
        .get(&rtdash_shared::names::alert_config_key("acme", &id))
        .unwrap();
    let parsed: rtdash_shared::alert::AlertRule = serde_json::from_slice(&stored.value).unwrap();
    assert_eq!(parsed.threshold, 500.0);
    assert_eq!(parsed.stat, rtdash_shared::stat::Stat::P99);

    let (status, got) = env.get(&format!("/v1/alerts/{id}?tenant_id=acme")).await;
    assert_eq!(status, 200);
    // Write-only: answered masked, stored whole.
    assert_eq!(got["notify_channel"], "https://hooks.example.com/***");
    assert_eq!(parsed.notify_channel, "https://hooks.example.com/x");
    let mut changed = rule.clone();
    changed["threshold"] = json!(750);
    let (status, updated) = env
        .send(
            "PUT",
            &format!("/v1/alerts/{id}?tenant_id=acme"),
            Some(changed.clone()),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["threshold"], 750.0);
    assert_eq!(updated["created_at"], created["created_at"]);
    // Stale revision.
    changed["revision"] = created["revision"].clone();
    let (status, _) = env
        .send(
            "PUT",
            &format!("/v1/alerts/{id}?tenant_id=acme"),
            Some(changed),
        )
        .await;
    assert_eq!(status, 409);
    let (status, list) = env.get("/v1/alerts?tenant_id=acme").await;
    assert_eq!(status, 200);
    assert_eq!(list["alerts"].as_array().unwrap().len(), 1);
    let (status, _) = env
        .send("DELETE", &format!("/v1/alerts/{id}?tenant_id=acme"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = env.get(&format!("/v1/alerts/{id}?tenant_id=acme")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_definitions_crud_and_builtin() {
    let env = GatewayEnv::start(|_| {}).await;
    let (status, list) = env.get("/v1/metric-definitions?tenant_id=acme").await;
    assert_eq!(status, 200);
    assert_eq!(list["definitions"][0]["name"], "events");
    assert_eq!(list["definitions"][0]["scope"], "builtin");
    assert_eq!(list["definitions"][0]["read_only"], true);
    let definition = json!({"tenant_id": "acme", "name": "checkout_amount", "event_type": "payment_completed",
                            "field": "amount_usd", "unique": "user_id", "dimensions": ["region", "plan"],
                            "rollups": [["region"], []]});
    let (status, created) = env
        .send("POST", "/v1/metric-definitions", Some(definition.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["dimension_sets"],
        json!([["plan", "region"], ["region"], []])
    );
    let (status, _) = env
        .send("POST", "/v1/metric-definitions", Some(definition.clone()))
        .await;
    assert_eq!(status, 409);
    // Stored under metric.<tenant>.<name> as the shared MetricDefinition.
    let stored = env
        .state
        .store
        .get(&rtdash_shared::names::metric_config_key(
            Some("acme"),
            "checkout_amount",
        ))
        .unwrap();
    let parsed = rtdash_shared::metric::MetricDefinition::from_json(&stored.value).unwrap();
    assert_eq!(parsed.tenant_id.as_deref(), Some("acme"));
    // Read back and PUT what was read (answer-only fields tolerated).
    let (status, mut got) = env
        .get("/v1/metric-definitions/checkout_amount?tenant_id=acme")
        .await;
    assert_eq!(status, 200);
    got["description"] = json!("money");
    let (status, put) = env
        .send(
            "PUT",
            "/v1/metric-definitions/checkout_amount?tenant_id=acme",
            Some(got.clone()),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["description"], "money");
    let (status, _) = env
        .send(
            "PUT",
            "/v1/metric-definitions/checkout_amount?tenant_id=acme",
            Some(got),
        )
        .await;
    assert_eq!(status, 409, "the revision read is stale now");
    // Built-in: read-only.
    let (status, _) = env
        .send(
            "DELETE",
            "/v1/metric-definitions/events?tenant_id=acme",
            None,
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = env
        .send(
            "POST",
            "/v1/metric-definitions",
            Some(json!({"tenant_id": "acme", "name": "events", "event_type": "*"})),
        )
        .await;
    assert_eq!(status, 409);
    // GET /v1/metrics lists both with their stats.
    let (status, metrics) = env.get("/v1/metrics?tenant_id=acme").await;
    assert_eq!(status, 200);
    let amount = metrics["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "checkout_amount")
        .unwrap();
    assert_eq!(amount["stats"].as_array().unwrap().len(), 10);
    let (status, _) = env
        .send(
            "DELETE",
            "/v1/metric-definitions/checkout_amount?tenant_id=acme",
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = env
        .get("/v1/metric-definitions/checkout_amount?tenant_id=acme")
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_isolation_matrix() {
    let env = GatewayEnv::start(|_| {}).await;
    env.define(
        "tenant-a",
        json!({"name": "secret_metric", "event_type": "e"}),
    )
    .await;
    let (dashboard, widgets) = env.dashboard("tenant-a", vec![widget("events")]).await;
    let (_, alert) = env
        .send(
            "POST",
            "/v1/alerts",
            Some(json!({"tenant_id": "tenant-a", "metric_name": "events",
            "condition": "gt", "threshold": 1, "notify_channel": "https://x.example/h"})),
        )
        .await;
    let alert = alert["alert_id"].as_str().unwrap().to_owned();
    let widget = &widgets[0];
    // Every read and write of tenant A's resources through tenant B: 404, nothing changes.
    let b = "tenant_id=tenant-b";
    let attempts: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("GET", format!("/v1/dashboards/{dashboard}?{b}"), None),
        (
            "PUT",
            format!("/v1/dashboards/{dashboard}?{b}"),
            Some(json!({"name": "pwned"})),
        ),
        ("DELETE", format!("/v1/dashboards/{dashboard}?{b}"), None),
        (
            "POST",
            format!("/v1/dashboards/{dashboard}/widgets?{b}"),
            Some(widget_json()),
        ),
        (
            "PUT",
            format!("/v1/dashboards/{dashboard}/widgets/{widget}?{b}"),
            Some(widget_json()),
        ),
        (
            "DELETE",
            format!("/v1/dashboards/{dashboard}/widgets/{widget}?{b}"),
            None,
        ),
        (
            "GET",
            format!("/v1/dashboards/{dashboard}/stream?{b}"),
            None,
        ),
        ("GET", format!("/v1/alerts/{alert}?{b}"), None),
        (
            "PUT",
            format!("/v1/alerts/{alert}?{b}"),
            Some(json!({"metric_name": "events",
            "condition": "lt", "threshold": 0, "notify_channel": "https://evil.example/"})),
        ),
        ("DELETE", format!("/v1/alerts/{alert}?{b}"), None),
        (
            "GET",
            format!("/v1/metric-definitions/secret_metric?{b}"),
            None,
        ),
        (
            "DELETE",
            format!("/v1/metric-definitions/secret_metric?{b}"),
            None,
        ),
        ("GET", format!("/v1/metrics/secret_metric?{b}"), None),
        ("GET", format!("/v1/metrics/secret_metric/series?{b}"), None),
        // Path games.
        (
            "GET",
            format!("/v1/dashboards/..%2Ftenant-a.{dashboard}?{b}"),
            None,
        ),
        ("GET", format!("/v1/dashboards/*?{b}"), None),
        ("GET", format!("/v1/dashboards/%3E?{b}"), None),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = env.send(method, &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    // A body naming tenant A through tenant B's query is refused.
    let (status, _) = env
        .send(
            "PUT",
            &format!("/v1/dashboards/{dashboard}?{b}"),
            Some(json!({"tenant_id": "tenant-a", "name": "pwned"})),
        )
        .await;
    assert_eq!(status, 400);
    // Lists of B show nothing of A; A still has everything.
    for path in ["/v1/dashboards", "/v1/alerts"] {
        let (_, list) = env.get(&format!("{path}?{b}")).await;
        let items = list.as_object().unwrap().values().next().unwrap();
        assert_eq!(items.as_array().unwrap().len(), 0, "{path}");
    }
    let (_, defs) = env.get(&format!("/v1/metric-definitions?{b}")).await;
    assert!(!defs.to_string().contains("secret_metric"));
    let (status, got) = env
        .get(&format!("/v1/dashboards/{dashboard}?tenant_id=tenant-a"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["name"], "test");
    assert_eq!(got["widgets"].as_array().unwrap().len(), 1);
    let (status, _) = env
        .get(&format!("/v1/alerts/{alert}?tenant_id=tenant-a"))
        .await;
    assert_eq!(status, 200);
    // Missing tenant: 400.
    let (status, _) = env.get(&format!("/v1/dashboards/{dashboard}")).await;
    assert_eq!(status, 400);
}

fn widget_json() -> serde_json::Value {
    json!({"metric_name": "events"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_admin_status_and_ui_fallback() {
    let env = GatewayEnv::start(|_| {}).await;
    let (status, doc) = env.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/dashboards",
        "/v1/dashboards/{id}",
        "/v1/dashboards/{id}/widgets",
        "/v1/dashboards/{id}/widgets/{widget_id}",
        "/v1/dashboards/{id}/stream",
        "/v1/alerts",
        "/v1/alerts/{id}",
        "/v1/metric-definitions",
        "/v1/metric-definitions/{name}",
        "/v1/metrics",
        "/v1/metrics/{name}",
        "/v1/metrics/{name}/series",
        "/v1/status",
    ] {
        assert!(paths.contains_key(path), "{path} missing from OpenAPI");
    }
    let (status, _) = env.get("/healthz").await;
    assert_eq!(status, 200);
    let mut ready = 0;
    for _ in 0..100 {
        ready = env.get("/readyz").await.0;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 200);
    let metrics = env.text("/metrics").await;
    assert!(
        metrics.contains("rtdash_gateway_http_request_duration_seconds"),
        "{metrics}"
    );
    // Status from the aggregators' reports.
    let (status, body) = env.get("/v1/status").await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "unknown");
    let report = rtdash_shared::messages::PartitionStatus {
        partition: 3,
        owner: "agg-1".into(),
        watermark: Some(rtdash_shared::time::now_millis() - 1_000),
        lag_messages: 5,
        reported_at: rtdash_shared::time::now_millis(),
        closed_through: None,
    };
    let bytes = rtdash_shared::wire::encode(&report, rtdash_shared::wire::Format::Json).unwrap();
    env.client
        .publish(rtdash_shared::names::status_subject(3), bytes.into())
        .await
        .unwrap();
    env.client.flush().await.unwrap();
    let mut state = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, body) = env.get("/v1/status").await;
        if body["state"] == "ok" {
            state = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(state["partitions"][0]["partition"], 3, "{state}");
    assert_eq!(state["partitions"][0]["lag_messages"], 5);
    assert_eq!(state["stale"], false);
    // UI not built: a page saying so.
    let page = env.http.get(env.url("/")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("not built"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_built_ui() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>rtdash ui</html>").unwrap();
    std::fs::write(dir.path().join("app.js"), "console.log(1)").unwrap();
    let root = dir.path().to_path_buf();
    let env = GatewayEnv::start(move |config| config.web_root = root).await;
    let text = env.text("/").await;
    assert!(text.contains("rtdash ui"));
    let text = env.text("/app.js").await;
    assert!(text.contains("console"));
    // Client-side routes get index.html.
    let text = env.text("/dashboards/x").await;
    assert!(text.contains("rtdash ui"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questdb_unreachable_is_503_and_not_ready() {
    let env = GatewayEnv::start(|config| {
        config.questdb.pg_addr = "127.0.0.1:1".into();
        config.questdb.query_timeout_ms = 1_000;
    })
    .await;
    let (status, body) = env.get("/v1/metrics/events?tenant_id=acme").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    let (status, body) = env.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["checks"]["questdb"], "ok");
    // Configuration calls do not need QuestDB.
    let (status, _) = env.get("/v1/dashboards?tenant_id=acme").await;
    assert_eq!(status, 200);
    // A stream still opens; the widget's snapshot carries the error.
    let (dashboard, _) = env
        .dashboard("acme", vec![json!({"metric_name": "events"})])
        .await;
    let mut sse = env.stream("acme", &dashboard, None).await;
    let snapshot = sse
        .next_named("snapshot", std::time::Duration::from_secs(10))
        .await
        .expect("snapshot");
    assert_eq!(
        snapshot.data["error"]["code"], "unavailable",
        "{}",
        snapshot.data
    );
}
