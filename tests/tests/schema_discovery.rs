//! Schema discovery end to end on the real binaries and a real nats-server: events of two
//! types posted to the edge agent come back from the gateway's `GET /v1/event-types` with
//! their property kinds, exact example values and distinct counts within the HyperLogLog's
//! bounds; a producer sending ten times the agent's bounds (event types per tenant, properties
//! per type, example length) leaves them holding, with what overflowed counted; another tenant
//! sees nothing of it.
//!
//! Needs the service binaries (`cargo build --workspace --bins`). About 20 s.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rtdash_tests::auth::{create_key, key_client};
use rtdash_tests::client::Api;
use rtdash_tests::events::event_json;
use rtdash_tests::stack::{Stack, StackOptions};
use rtdash_tests::time::now_millis;
use rtdash_tests::unique_name;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(30);
/// The agent's bounds in this test (the defaults are 200, 100 and 64).
const MAX_TYPES: usize = 5;
const MAX_PROPERTIES: usize = 4;
const MAX_EXAMPLE_CHARS: usize = 8;

/// Polls `GET /v1/event-types` until `done` holds for the answer.
async fn event_types_until(
    api: &Api,
    tenant: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let (status, body) = api
            .get_query("/v1/event-types", &[("tenant_id", tenant.to_owned())])
            .await?;
        ensure!(status == 200, "GET /v1/event-types: {status} {body}");
        if done(&body) {
            return Ok(body);
        }
        if started.elapsed() > TIMEOUT {
            bail!("event types never as expected: {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn event_type<'a>(answer: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    answer["event_types"]
        .as_array()
        .context("event_types")?
        .iter()
        .find(|t| t["event_type"] == name)
        .with_context(|| format!("no event type {name} in {answer}"))
}

fn property<'a>(kind: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    kind["properties"]
        .as_array()
        .context("properties")?
        .iter()
        .find(|p| p["name"] == name)
        .with_context(|| format!("no property {name} in {kind}"))
}

/// Within four standard errors (HyperLogLog at precision 10: 1.04/√1024) of `exact`.
fn within_hll_bounds(estimate: &Value, exact: f64) -> bool {
    let estimate = estimate.as_f64().unwrap_or(-1.0);
    (estimate - exact).abs() <= (exact * 4.0 * 1.04 / 32.0).max(1.0)
}

#[tokio::test]
async fn event_types_properties_and_examples_are_served_within_bounds_per_tenant(
) -> anyhow::Result<()> {
    let stack = Stack::start(
        StackOptions::default()
            .agent("SCHEMA__PUBLISH_INTERVAL_MS", 300)
            .agent("SCHEMA__MAX_EVENT_TYPES", MAX_TYPES)
            .agent("SCHEMA__MAX_PROPERTIES", MAX_PROPERTIES)
            .agent("SCHEMA__MAX_EXAMPLE_CHARS", MAX_EXAMPLE_CHARS),
    )?;
    let result = run(&stack).await;
    if result.is_err() {
        eprintln!("{}", stack.logs(40));
    }
    result
}

async fn run(stack: &Stack) -> anyhow::Result<()> {
    let gw = stack.gateway_url();
    let (a, b) = (unique_name("schema-a"), unique_name("schema-b"));
    let producer = Api::new(
        key_client(
            &create_key(&gw, &a, "ingest", "producer").await?,
            Some(TIMEOUT),
        ),
        stack.agent_url(),
    );
    let viewer_a = Api::new(
        key_client(
            &create_key(&gw, &a, "viewer", "viewer").await?,
            Some(TIMEOUT),
        ),
        gw.clone(),
    );
    let viewer_b = Api::new(
        key_client(
            &create_key(&gw, &b, "viewer", "viewer").await?,
            Some(TIMEOUT),
        ),
        gw.clone(),
    );

    // 300 orders: a number with 50 values, a string with 3, a bool, a string with 300; and
    // 20 page views whose paths are longer than the example length.
    let now = now_millis();
    let regions = ["eu", "us", "apac"];
    let mut events: Vec<Value> = (0..300)
        .map(|i| {
            event_json(
                &a,
                "checkout",
                "order",
                json!({"amount": i % 50, "region": regions[i % 3], "paid": i % 2 == 0, "user": format!("u{i}")}),
                now,
            )
        })
        .collect();
    events.extend((0..20).map(|i| {
        event_json(
            &a,
            "web",
            "page_view",
            json!({"path": format!("/products/{}", i % 10)}),
            now,
        )
    }));
    let (status, body) = producer.post_json("/v1/events", &json!(events)).await?;
    ensure!(status == 202 && body["accepted"] == 320, "{status} {body}");

    let answer = event_types_until(&viewer_a, &a, |answer| {
        answer["event_types"].as_array().map(Vec::len) == Some(2)
            && answer["event_types"][0]["events"] == 300
            && answer["event_types"][1]["events"] == 20
    })
    .await?;
    ensure!(
        answer["tenant_id"] == a.as_str() && answer["agents"] == 1,
        "{answer}"
    );
    let order = event_type(&answer, "order")?;
    let expect = [
        (
            "amount",
            json!(["number"]),
            json!({"number": 300, "string": 0, "bool": 0}),
            json!(["0", "1", "2", "3", "4"]),
            50.0,
        ),
        (
            "region",
            json!(["string"]),
            json!({"number": 0, "string": 300, "bool": 0}),
            json!(["eu", "us", "apac"]),
            3.0,
        ),
        (
            "paid",
            json!(["bool"]),
            json!({"number": 0, "string": 0, "bool": 300}),
            json!(["true", "false"]),
            2.0,
        ),
        (
            "user",
            json!(["string"]),
            json!({"number": 0, "string": 300, "bool": 0}),
            json!(["u0", "u1", "u2", "u3", "u4"]),
            300.0,
        ),
    ];
    for (name, kinds, counts, examples, distinct) in expect {
        let p = property(order, name)?;
        ensure!(p["kinds"] == kinds, "{name}: kinds {p}");
        ensure!(p["kind_counts"] == counts, "{name}: kind counts {p}");
        ensure!(p["examples"] == examples, "{name}: examples {p}");
        ensure!(
            within_hll_bounds(&p["distinct_estimate"], distinct),
            "{name}: {} distinct estimated as {}",
            distinct,
            p["distinct_estimate"]
        );
    }
    let path = property(event_type(&answer, "page_view")?, "path")?;
    ensure!(
        path["examples"] == json!(["/product"]),
        "examples cut to {MAX_EXAMPLE_CHARS} characters (and then equal): {path}"
    );
    ensure!(
        within_hll_bounds(&path["distinct_estimate"], 10.0),
        "{path}"
    );
    ensure!(answer["event_types_dropped"] == 0, "{answer}");

    // Ten times the bounds: 50 event types of 40 properties each. Three types still fit.
    let flood: Vec<Value> = (0..10 * MAX_TYPES)
        .map(|t| {
            let props: serde_json::Map<String, Value> = (0..10 * MAX_PROPERTIES)
                .map(|p| {
                    (
                        format!("p{p:02}"),
                        json!(format!("value-{t}-{p}-with-a-long-tail")),
                    )
                })
                .collect();
            event_json(&a, "flood", &format!("t{t:02}"), Value::Object(props), now)
        })
        .collect();
    let (status, body) = producer.post_json("/v1/events", &json!(flood)).await?;
    ensure!(status == 202 && body["accepted"] == 50, "{status} {body}");
    let answer = event_types_until(&viewer_a, &a, |answer| {
        answer["event_types_dropped"] == json!(10 * MAX_TYPES - 3)
    })
    .await?;
    let types = answer["event_types"].as_array().context("event_types")?;
    ensure!(types.len() == MAX_TYPES, "{} event types kept", types.len());
    for name in ["t00", "t01", "t02"] {
        let kind = event_type(&answer, name)?;
        let properties = kind["properties"].as_array().context("properties")?;
        ensure!(properties.len() == MAX_PROPERTIES, "{name}: {kind}");
        ensure!(
            kind["properties_dropped"] == json!(10 * MAX_PROPERTIES - MAX_PROPERTIES),
            "{name}: {kind}"
        );
        for p in properties {
            let example = p["examples"][0].as_str().context("an example")?;
            ensure!(example.chars().count() == MAX_EXAMPLE_CHARS, "{p}");
        }
    }
    ensure!(
        event_type(&answer, "t03").is_err(),
        "t03 is beyond the bound"
    );

    // Another tenant sees nothing of it, and cannot ask for it.
    let (status, theirs) = viewer_b.get("/v1/event-types").await?;
    ensure!(status == 200, "{status} {theirs}");
    ensure!(
        theirs["tenant_id"] == b.as_str()
            && theirs["event_types"] == json!([])
            && theirs["agents"] == 0,
        "{theirs}"
    );
    let (status, body) = viewer_b
        .get_query("/v1/event-types", &[("tenant_id", a.clone())])
        .await?;
    ensure!(
        status == 403,
        "tenant {b} read {a}'s event types: {status} {body}"
    );
    Ok(())
}
