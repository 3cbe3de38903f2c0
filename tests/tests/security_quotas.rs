//! Tenant quotas on real services (issue #16): the operator sets a tenant's limits with
//! `PUT /v1/tenants/{tenant}/quotas`; creating over a count limit answers `429
//! quota_exceeded` naming the limit while another tenant is unaffected; a definition above the
//! series ceiling is refused with `400` naming it; opening a live stream over `open_streams`
//! answers `429`; `GET` shows the limits and the use against them; the edge agent enforces
//! `events_per_second` and caps series at a lowered `max_series_per_window`.

use std::time::Duration;

use anyhow::{ensure, Context};
use rtdash_shared::time::{format_rfc3339, now_millis};
use rtdash_tests::auth::{create_key, key_client, operator_key};
use rtdash_tests::client::decode;
use rtdash_tests::prometheus::{metric_sum, metrics_text};
use rtdash_tests::stack::{Stack, StackOptions};
use rtdash_tests::{blocking, unique_name};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = client.request(reqwest::Method::from_bytes(method.as_bytes())?, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    decode(response).await
}

async fn create_dashboard(
    gw: &str,
    client: &reqwest::Client,
    name: &str,
) -> anyhow::Result<(u16, Value)> {
    call(
        client,
        "POST",
        &format!("{gw}/v1/dashboards"),
        Some(json!({"name": name})),
    )
    .await
}

/// Opens the stream of `dashboard`: its status, and the response (kept open while held).
async fn open_stream(
    gw: &str,
    client: &reqwest::Client,
    dashboard: &str,
) -> anyhow::Result<(u16, reqwest::Response)> {
    let response = client
        .get(format!("{gw}/v1/dashboards/{dashboard}/stream"))
        .send()
        .await
        .context("open a stream")?;
    Ok((response.status().as_u16(), response))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_set_by_the_operator_are_enforced_per_tenant() -> anyhow::Result<()> {
    let stack = blocking(|| Stack::start(StackOptions::default())).await?;
    let gw = stack.gateway_url();
    let (a, b) = (unique_name("quota-a"), unique_name("quota-b"));
    let a_admin = key_client(&create_key(&gw, &a, "admin", "admin").await?, Some(TIMEOUT));
    let b_admin = key_client(&create_key(&gw, &b, "admin", "admin").await?, Some(TIMEOUT));
    let streams = key_client(&create_key(&gw, &a, "viewer", "streams").await?, None);
    let b_streams = key_client(&create_key(&gw, &b, "viewer", "streams").await?, None);
    let operator = key_client(operator_key(), Some(TIMEOUT));
    let a_quotas = format!("{gw}/v1/tenants/{a}/quotas");
    let b_quotas = format!("{gw}/v1/tenants/{b}/quotas");
    let settings = json!({"dashboards": 2, "max_series_per_window": 20000, "open_streams": 1});

    // Only the operator sets quotas; settings are checked.
    let (status, body) = call(&a_admin, "PUT", &a_quotas, Some(settings.clone())).await?;
    ensure!(
        status == 403,
        "a tenant admin set its quotas: {status} {body}"
    );
    for bad in [json!({"max_series_per_window": 0}), json!({"dashbords": 1})] {
        let (status, body) = call(&operator, "PUT", &a_quotas, Some(bad.clone())).await?;
        ensure!(status == 400, "PUT {bad}: {status} {body}");
    }
    let (status, body) = call(&operator, "PUT", &a_quotas, Some(settings.clone())).await?;
    ensure!(status == 200, "PUT quotas: {status} {body}");
    ensure!(body["settings"] == settings, "{body}");
    ensure!(body["limits"]["dashboards"] == 2, "{body}");
    ensure!(body["limits"]["alert_rules"] == 200, "default kept: {body}");
    ensure!(body["limits"]["max_series_per_window"] == 20000, "{body}");

    // Dashboards: the third of tenant A is refused; tenant B is unaffected.
    let mut dashboards = Vec::new();
    for n in 0..2 {
        let (status, body) = create_dashboard(&gw, &a_admin, &format!("d{n}")).await?;
        ensure!(status == 201, "dashboard {n}: {status} {body}");
        dashboards.push(body["dashboard_id"].as_str().context("id")?.to_owned());
    }
    let (status, body) = create_dashboard(&gw, &a_admin, "d2").await?;
    ensure!(status == 429, "third dashboard: {status} {body}");
    ensure!(
        body == json!({"error": {"code": "quota_exceeded", "message": "dashboards is 2"}}),
        "{body}"
    );
    let mut b_dashboard = String::new();
    for n in 0..3 {
        let (status, body) = create_dashboard(&gw, &b_admin, &format!("d{n}")).await?;
        ensure!(status == 201, "tenant B's dashboard {n}: {status} {body}");
        b_dashboard = body["dashboard_id"].as_str().context("id")?.to_owned();
    }

    // The series ceiling: one above is refused naming it, the ceiling itself is accepted.
    let definition = |cap: u64| {
        json!({"name": "quota_amount", "event_type": "pay", "field": "amount",
               "max_series_per_window": cap})
    };
    let url = format!("{gw}/v1/metric-definitions");
    let (status, body) = call(&a_admin, "POST", &url, Some(definition(20_001))).await?;
    ensure!(status == 400, "above the ceiling: {status} {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains("max_series_per_window") && message.contains("20000"),
        "{body}"
    );
    let put = format!("{url}/quota_amount");
    let (status, body) = call(&a_admin, "PUT", &put, Some(definition(20_001))).await?;
    ensure!(status == 400, "PUT above the ceiling: {status} {body}");
    let (status, body) = call(&a_admin, "POST", &url, Some(definition(20_000))).await?;
    ensure!(status == 201, "at the ceiling: {status} {body}");
    let (status, body) = call(&b_admin, "POST", &url, Some(definition(50_000))).await?;
    ensure!(
        status == 201,
        "tenant B under the default ceiling: {status} {body}"
    );

    // Open streams: the second of tenant A is refused while the first is open.
    let (status, first) = open_stream(&gw, &streams, &dashboards[0]).await?;
    ensure!(status == 200, "first stream: {status}");
    let (status, second) = open_stream(&gw, &streams, &dashboards[1]).await?;
    let (_, body) = decode(second).await?;
    ensure!(status == 429, "second stream: {status} {body}");
    ensure!(
        body["error"] == json!({"code": "quota_exceeded", "message": "open_streams is 1"}),
        "{body}"
    );
    let (status, b_stream) = open_stream(&gw, &b_streams, &b_dashboard).await?;
    ensure!(status == 200, "tenant B's stream: {status}");

    // Use against limits: the tenant's admin reads its own, not another tenant's.
    let (status, body) = call(&a_admin, "GET", &a_quotas, None).await?;
    ensure!(status == 200, "GET quotas: {status} {body}");
    let used = &body["used"];
    ensure!(
        used["dashboards"] == 2
            && used["metric_definitions"] == 1
            && used["max_series_per_window"] == 20000
            && used["open_streams"] == 1
            && used["alert_rules"] == 0
            && used["widgets_per_dashboard"] == 0,
        "{body}"
    );
    ensure!(body["limits"]["dashboards"] == 2, "{body}");
    let (status, body) = call(&b_admin, "GET", &a_quotas, None).await?;
    ensure!(status == 403, "another tenant's quotas: {status} {body}");
    let (status, body) = call(&b_admin, "GET", &b_quotas, None).await?;
    ensure!(status == 200, "own quotas: {status} {body}");
    ensure!(
        body["limits"]["dashboards"] == 100
            && body["used"]["dashboards"] == 3
            && body["used"]["open_streams"] == 1
            && body["settings"] == json!({}),
        "{body}"
    );

    // The same use on the gateway's /metrics (the operator's), recomputed every 15 s.
    let line = |quota: &str, tenant: &str, kind: &str| {
        format!("rtdash_gateway_quota_{kind}{{tenant=\"{tenant}\",quota=\"{quota}\"}}")
    };
    let expected = [
        format!("{} 2", line("dashboards", &a, "used")),
        format!("{} 2", line("dashboards", &a, "limit")),
        format!("{} 1", line("open_streams", &a, "used")),
        format!("{} 20000", line("max_series_per_window", &a, "limit")),
        format!("{} 3", line("dashboards", &b, "used")),
        format!("{} 100", line("dashboards", &b, "limit")),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let text = operator
            .get(format!("{gw}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let missing: Vec<&String> = expected
            .iter()
            .filter(|want| !text.lines().any(|l| l == want.as_str()))
            .collect();
        if missing.is_empty() {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "/metrics lacks {missing:?}; it has {:?}",
            text.lines()
                .filter(|l| l.starts_with("rtdash_gateway_quota"))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    drop((first, b_stream));

    // Back to the defaults: the third dashboard is created.
    let (status, body) = call(&operator, "PUT", &a_quotas, Some(json!({}))).await?;
    ensure!(
        status == 200 && body["limits"]["dashboards"] == 100,
        "{status} {body}"
    );
    let (status, body) = create_dashboard(&gw, &a_admin, "d2").await?;
    ensure!(
        status == 201,
        "third dashboard after the reset: {status} {body}"
    );

    // Bytes in the config bucket: what the tenant holds is shown; a limit below it refuses
    // the next create, and an edit that does not grow within it still passes.
    let (_, body) = call(&a_admin, "GET", &a_quotas, None).await?;
    let held = body["used"]["config_bytes"].as_u64().unwrap_or(0);
    ensure!(held > 500, "config bytes held: {body}");
    let (status, body) = call(
        &operator,
        "PUT",
        &a_quotas,
        Some(json!({"config_bytes": held + 10})),
    )
    .await?;
    ensure!(status == 200, "{status} {body}");
    let (status, body) = create_dashboard(&gw, &a_admin, "one more").await?;
    ensure!(status == 429, "over config_bytes: {status} {body}");
    ensure!(
        body["error"]
            == json!({"code": "quota_exceeded", "message": format!("config_bytes is {}", held + 10)}),
        "{body}"
    );
    let (status, body) = create_dashboard(&gw, &b_admin, "tenant B is not limited").await?;
    ensure!(status == 201, "{status} {body}");
    Ok(())
}

/// `events_per_second`, set by the operator through the gateway, is enforced by the edge
/// agent per tenant: a tenant over it is answered `429 quota_exceeded` with `Retry-After`
/// while another tenant sends on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_enforces_a_tenant_s_events_per_second() -> anyhow::Result<()> {
    let stack = blocking(|| Stack::start(StackOptions::default())).await?;
    let (gw, agent) = (stack.gateway_url(), stack.agent_url());
    let (slow, other) = (unique_name("rate-a"), unique_name("rate-b"));
    let operator = key_client(operator_key(), Some(TIMEOUT));
    let (status, body) = call(
        &operator,
        "PUT",
        &format!("{gw}/v1/tenants/{slow}/quotas"),
        Some(json!({"events_per_second": 1})),
    )
    .await?;
    ensure!(status == 200, "PUT quotas: {status} {body}");
    let slow_ingest = key_client(
        &create_key(&gw, &slow, "ingest", "rate").await?,
        Some(TIMEOUT),
    );
    let other_ingest = key_client(
        &create_key(&gw, &other, "ingest", "rate").await?,
        Some(TIMEOUT),
    );
    let batch = |tenant: &str, n: usize| {
        json!((0..n)
            .map(
                |i| json!({"tenant_id": tenant, "source": "rate", "event_type": "e",
                            "properties": {"i": i}, "occurred_at": format_rfc3339(now_millis())})
            )
            .collect::<Vec<_>>())
    };
    let ingest = format!("{agent}/v1/events");

    // The agent sees the setting within moments of the PUT: until it does, the default
    // (no limit) holds and the batches are accepted.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let refused = loop {
        let response = slow_ingest
            .post(&ingest)
            .json(&batch(&slow, 100))
            .send()
            .await?;
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (status, body) = decode(response).await?;
        if status == 429 {
            break (body, retry_after);
        }
        ensure!(status == 202, "before the limit: {status} {body}");
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the agent never applied events_per_second: 1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (body, retry_after) = refused;
    ensure!(body["error"]["code"] == "quota_exceeded", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("events_per_second is 1"), "{body}");
    // 100 events at 1 per second: the debt takes more than a minute to pay back.
    ensure!(
        retry_after.is_some_and(|secs| secs > 60),
        "Retry-After {retry_after:?}"
    );

    // Another tenant is not limited.
    let (status, body) = decode(
        other_ingest
            .post(&ingest)
            .json(&batch(&other, 100))
            .send()
            .await?,
    )
    .await?;
    ensure!(status == 202, "another tenant: {status} {body}");
    Ok(())
}

/// The series ceiling (`max_series_per_window`), lowered by the operator below a definition
/// the tenant stored before, caps what the edge agent aggregates for that tenant: of eight
/// regions in one window three are kept and five fold into the overflow series (counted in
/// `rtdash_agent_series_overflowed_total` and stored so), while another tenant with the same
/// definition keeps all eight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_caps_series_at_a_lowered_tenant_ceiling() -> anyhow::Result<()> {
    // One aggregation shard, so that the cap is counted once per agent.
    let options = StackOptions::default().agent("SHARDS", 1);
    let stack = blocking(move || Stack::start(options)).await?;
    let (gw, agent) = (stack.gateway_url(), stack.agent_url());
    let (low, other) = (unique_name("ceiling-a"), unique_name("ceiling-b"));
    let operator = key_client(operator_key(), Some(TIMEOUT));
    let low_admin = key_client(
        &create_key(&gw, &low, "admin", "admin").await?,
        Some(TIMEOUT),
    );
    let other_admin = key_client(
        &create_key(&gw, &other, "admin", "admin").await?,
        Some(TIMEOUT),
    );
    let low_ingest = key_client(
        &create_key(&gw, &low, "ingest", "ingest").await?,
        Some(TIMEOUT),
    );
    let other_ingest = key_client(
        &create_key(&gw, &other, "ingest", "ingest").await?,
        Some(TIMEOUT),
    );
    let definitions = format!("{gw}/v1/metric-definitions");
    let definition = |name: &str, event_type: &str, cap: u32| {
        json!({"name": name, "event_type": event_type, "field": "amount",
               "dimensions": ["region"], "max_series_per_window": cap})
    };
    for admin in [&low_admin, &other_admin] {
        let body = definition("ceiling_amount", "pay", 10);
        let (status, body) = call(admin, "POST", &definitions, Some(body)).await?;
        ensure!(status == 201, "definition: {status} {body}");
    }
    // Stored after `ceiling_amount`, so the agent has that one once it has this one.
    let body = definition("ceiling_probe", "probe", 1000);
    let (status, body) = call(&low_admin, "POST", &definitions, Some(body)).await?;
    ensure!(status == 201, "probe definition: {status} {body}");

    // The operator lowers the tenant's ceiling below its definitions' caps.
    let (status, body) = call(
        &operator,
        "PUT",
        &format!("{gw}/v1/tenants/{low}/quotas"),
        Some(json!({"max_series_per_window": 3})),
    )
    .await?;
    ensure!(status == 200, "PUT quotas: {status} {body}");

    let ingest = format!("{agent}/v1/events");
    let batch = |tenant: &str, event_type: &str, regions: &[String]| {
        let at = format_rfc3339(now_millis());
        json!(regions
            .iter()
            .map(|region| json!({"tenant_id": tenant, "source": "ceiling",
                                  "event_type": event_type,
                                  "properties": {"region": region, "amount": 1},
                                  "occurred_at": at}))
            .collect::<Vec<_>>())
    };
    let overflowed = || async {
        let text = blocking({
            let agent = agent.clone();
            move || metrics_text(&agent)
        })
        .await?;
        anyhow::Ok(metric_sum(&text, "rtdash_agent_series_overflowed_total") as u64)
    };
    let send = |client: &reqwest::Client, body: Value| {
        let request = client.post(&ingest).json(&body);
        async move {
            let (status, body) = decode(request.send().await?).await?;
            ensure!(status == 202, "ingest: {status} {body}");
            anyhow::Ok(())
        }
    };

    // Until the agent has the probe definition and the ceiling, four new regions of the probe
    // are all admitted; once it has both, at most three are.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    for attempt in 0.. {
        let before = overflowed().await?;
        let regions: Vec<String> = (0..4).map(|i| format!("p{attempt}-{i}")).collect();
        send(&low_ingest, batch(&low, "probe", &regions)).await?;
        if overflowed().await? > before {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the agent never applied the ceiling"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let regions: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    let before = overflowed().await?;
    send(&low_ingest, batch(&low, "pay", &regions)).await?;
    send(&other_ingest, batch(&other, "pay", &regions)).await?;
    let after = overflowed().await?;
    ensure!(
        after - before == 5,
        "series updates overflowed: {}, expected 5 (eight regions, ceiling three)",
        after - before
    );

    // What is stored: per tenant, region -> count of the `region` dimension set.
    let mut want: std::collections::BTreeMap<(String, String), u64> = (0..3)
        .map(|i| ((low.clone(), format!("r{i}")), 1))
        .chain(std::iter::once((
            (low.clone(), "__overflow__".to_owned()),
            5,
        )))
        .collect();
    want.extend(regions.iter().map(|r| ((other.clone(), r.clone()), 1)));
    let sql = format!(
        "select tenant, series, sum(count) from {} where metric = 'ceiling_amount' \
         and dim_set = 'region' and tenant in ('{low}', '{other}') group by tenant, series",
        stack.table
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let answer = blocking({
            let (db, sql) = (stack.db, sql.clone());
            move || db.exec(&sql)
        })
        .await?;
        let mut stored = std::collections::BTreeMap::new();
        for row in answer["dataset"].as_array().into_iter().flatten() {
            let series: Value = serde_json::from_str(row[1].as_str().unwrap_or("{}"))?;
            let region = series["region"].as_str().unwrap_or_default().to_owned();
            let tenant = row[0].as_str().unwrap_or_default().to_owned();
            stored.insert((tenant, region), row[2].as_u64().unwrap_or(0));
        }
        if stored == want {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "stored series {stored:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
