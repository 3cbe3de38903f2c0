//! The data-quality answer end to end on the real binaries, a real nats-server and QuestDB:
//! known good events, rejected items of two reasons (one larger than the agent keeps of a
//! dead letter), events more than a minute late and events beyond the aggregators'
//! correction horizon, posted to the edge agent, come back from the gateway's
//! `GET /v1/data-quality` with exact counts per source, event type and reason, with samples
//! of the rejected items (the large one cut); another tenant's rejections never show, and it
//! cannot ask for this tenant's.
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

const TIMEOUT: Duration = Duration::from_secs(40);
/// The aggregator's correction horizon here: events older than this (and its allowed
/// lateness) at arrival go to the late stream.
const HORIZON_MS: i64 = 120_000;
/// What the agent keeps of a rejected item's raw input (`dlq.max_raw_bytes`' default).
const AGENT_RAW_BYTES: usize = 4 * 1024;

/// Polls `GET /v1/data-quality` until `done` holds for the answer.
async fn quality_until(
    api: &Api,
    query: &[(&str, String)],
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let (status, body) = api.get_query("/v1/data-quality", query).await?;
        ensure!(status == 200, "GET /v1/data-quality: {status} {body}");
        if done(&body) {
            return Ok(body);
        }
        if started.elapsed() > TIMEOUT {
            bail!("the data-quality answer never became as expected: {body:#}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The row of `source` and `event_type` without its samples: (accepted, rejected, late,
/// beyond horizon, [(reason, count, samples)]).
type Summary = (u64, u64, u64, u64, Vec<(String, u64, usize)>);

fn summary(answer: &Value, source: &str, event_type: &str) -> Option<Summary> {
    let row = answer["rows"]
        .as_array()?
        .iter()
        .find(|r| r["source"] == source && r["event_type"] == event_type)?;
    let n = |field: &str| row[field].as_u64().unwrap_or(u64::MAX);
    let reasons = row["rejections"]
        .as_array()?
        .iter()
        .map(|r| {
            (
                r["reason"].as_str().unwrap_or_default().to_owned(),
                r["count"].as_u64().unwrap_or(u64::MAX),
                r["samples"].as_array().map(Vec::len).unwrap_or(usize::MAX),
            )
        })
        .collect();
    Some((
        n("accepted"),
        n("rejected"),
        n("late"),
        n("beyond_horizon"),
        reasons,
    ))
}

fn reason(n: u64, samples: usize, code: &str) -> (String, u64, usize) {
    (code.to_owned(), n, samples)
}

#[tokio::test]
async fn accepted_rejected_and_late_events_are_counted_per_source_event_type_and_reason(
) -> anyhow::Result<()> {
    let stack = Stack::start(
        StackOptions::default()
            .aggregator("WINDOWS__ALLOWED_LATENESS_MS", 5_000)
            .aggregator("WINDOWS__CORRECTION_HORIZON_MS", HORIZON_MS),
    )?;
    let result = run(&stack).await;
    if result.is_err() {
        eprintln!("{}", stack.logs(40));
    }
    result
}

async fn run(stack: &Stack) -> anyhow::Result<()> {
    let gw = stack.gateway_url();
    let (a, b) = (unique_name("quality-a"), unique_name("quality-b"));
    let client = |key: String| Api::new(key_client(&key, Some(TIMEOUT)), gw.clone());
    let producer = |key: String| Api::new(key_client(&key, Some(TIMEOUT)), stack.agent_url());
    let producer_a = producer(create_key(&gw, &a, "ingest", "producer").await?);
    let producer_b = producer(create_key(&gw, &b, "ingest", "producer").await?);
    let viewer_a = client(create_key(&gw, &a, "viewer", "viewer").await?);
    let viewer_b = client(create_key(&gw, &b, "viewer", "viewer").await?);

    let started = now_millis();
    let good = |source: &str, event_type: &str, at: i64| {
        event_json(&a, source, event_type, json!({"n": 1}), at)
    };
    let mut items: Vec<Value> = Vec::new();
    // 5 orders on time and 2 arriving 90 s after they occurred (late, within the horizon).
    items.extend((0..5).map(|_| good("checkout", "order", started)));
    items.extend((0..2).map(|_| good("checkout", "order", started - 90_000)));
    // 3 page views on time.
    items.extend((0..3).map(|_| good("web", "page_view", started)));
    // 4 imports 5 minutes old: late, and beyond the correction horizon.
    items.extend((0..4).map(|_| good("batch", "import", started - 300_000)));
    // 3 orders whose `occurred_at` is a number: wrong_type.
    items.extend((0..3).map(|i| {
        json!({"tenant_id": a, "source": "checkout", "event_type": "order",
               "properties": {"attempt": i}, "occurred_at": 12})
    }));
    let mut body = serde_json::to_string(&items)?;
    body.pop(); // the closing `]`: two invalid timestamps follow, written by hand.
                // 2 page views with an invalid timestamp, one of them padded past what the agent keeps.
    let padding = " ".repeat(AGENT_RAW_BYTES + 500);
    body.push_str(&format!(
        r#",{{"tenant_id":"{a}","source":"web","event_type":"page_view","occurred_at":"yesterday"}}"#
    ));
    body.push_str(&format!(
        r#",{{"tenant_id":"{a}",{padding}"source":"web","event_type":"page_view","occurred_at":"<b>soon</b>"}}]"#
    ));
    let (status, reply) = producer_a
        .post_raw("/v1/events", body, &[("content-type", "application/json")])
        .await?;
    ensure!(status == 202, "{status} {reply}");
    ensure!(
        reply["accepted"] == 14 && reply["errors"].as_array().map(Vec::len) == Some(5),
        "{reply}"
    );

    // Tenant b: one rejected order of its own (a batch with nothing accepted answers 400).
    let (status, reply) = producer_b
        .post_json(
            "/v1/events",
            &json!([{"tenant_id": b, "source": "checkout", "event_type": "order",
                     "properties": {"secret": "b-only"}, "occurred_at": 12}]),
        )
        .await?;
    ensure!(
        status == 400 && reply["errors"][0]["code"] == "wrong_type",
        "{status} {reply}"
    );

    let expected_a = [
        (("batch", "import"), (0, 0, 4, 4, vec![])),
        (
            ("checkout", "order"),
            (7, 3, 2, 0, vec![reason(3, 3, "wrong_type")]),
        ),
        (
            ("web", "page_view"),
            (3, 2, 0, 0, vec![reason(2, 2, "invalid_timestamp")]),
        ),
    ];
    let query_a = [("tenant_id", a.clone())];
    let answer = quality_until(&viewer_a, &query_a, |answer| {
        answer["rows"].as_array().map(Vec::len) == Some(expected_a.len())
            && expected_a.iter().all(|((source, event_type), expected)| {
                summary(answer, source, event_type).as_ref() == Some(expected)
            })
    })
    .await?;
    ensure!(
        answer["tenant_id"] == a.as_str()
            && answer["late_after_ms"] == 60_000
            && answer["samples_scanned"] == 5
            && answer["samples_complete"] == true
            && answer["beyond_horizon_complete"] == true
            && answer["truncated"] == false,
        "{answer:#}"
    );

    // Samples: newest first, the raw items as received, their reason and detail; the padded
    // one cut to what the agent keeps.
    let rows = answer["rows"].as_array().context("rows")?;
    let web = rows
        .iter()
        .find(|r| r["source"] == "web")
        .context("web row")?;
    let samples = web["rejections"][0]["samples"]
        .as_array()
        .context("samples")?;
    let padded = &samples[0];
    let raw = padded["raw"].as_str().context("raw")?;
    ensure!(
        raw.len() == AGENT_RAW_BYTES
            && padded["truncated"] == true
            && raw.starts_with(&format!(r#"{{"tenant_id":"{a}","#)),
        "the padded item is the newest and cut to {AGENT_RAW_BYTES} bytes: {} bytes, {padded}",
        raw.len()
    );
    ensure!(
        padded["reason"] == "invalid_timestamp"
            && padded["detail"]
                .as_str()
                .is_some_and(|d| d.contains("occurred_at"))
            && padded["received_at"]
                .as_str()
                .and_then(rtdash_shared::time::parse_rfc3339)
                .is_some_and(|at| at >= started - 1_000),
        "{padded}"
    );
    let plain = &samples[1];
    ensure!(
        plain["raw"]
            == format!(
                r#"{{"tenant_id":"{a}","source":"web","event_type":"page_view","occurred_at":"yesterday"}}"#
            )
            && plain["truncated"] == false,
        "{plain}"
    );
    let orders = rows
        .iter()
        .find(|r| r["source"] == "checkout")
        .context("checkout row")?;
    let attempts: Vec<Value> = orders["rejections"][0]["samples"]
        .as_array()
        .context("order samples")?
        .iter()
        .map(|s| serde_json::from_str::<Value>(s["raw"].as_str().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    ensure!(
        attempts
            .iter()
            .map(|s| s["properties"]["attempt"].clone())
            .collect::<Vec<_>>()
            == [json!(2), json!(1), json!(0)],
        "the order samples, newest first: {attempts:?}"
    );
    ensure!(
        !answer.to_string().contains("b-only"),
        "tenant {b}'s rejected item shows to {a}"
    );

    // Tenant b sees its own rejection only, and cannot read a's.
    let query_b = [("tenant_id", b.clone())];
    let theirs = quality_until(&viewer_b, &query_b, |answer| {
        summary(answer, "checkout", "order") == Some((0, 1, 0, 0, vec![reason(1, 1, "wrong_type")]))
    })
    .await?;
    ensure!(
        theirs["rows"].as_array().map(Vec::len) == Some(1) && theirs.to_string().contains("b-only"),
        "{theirs:#}"
    );
    let (status, body) = viewer_b.get_query("/v1/data-quality", &query_a).await?;
    ensure!(
        status == 403,
        "tenant {b} read {a}'s data quality: {status} {body}"
    );

    // A range without any of it is empty; bad ranges are refused with the reason.
    let (status, empty) = viewer_a
        .get_query(
            "/v1/data-quality",
            &[
                ("from", "2020-01-01T00:00:00Z".to_owned()),
                ("to", "2020-01-01T01:00:00Z".to_owned()),
            ],
        )
        .await?;
    ensure!(
        status == 200 && empty["rows"] == json!([]) && empty["samples_scanned"] == 0,
        "{status} {empty}"
    );
    for (from, to, says) in [
        ("2020-01-02T00:00:00Z", "2020-01-01T00:00:00Z", "before"),
        ("2020-01-01T00:00:00Z", "2020-01-09T00:00:00Z", "7 days"),
        ("yesterday", "2020-01-01T00:00:00Z", "RFC 3339"),
    ] {
        let (status, body) = viewer_a
            .get_query(
                "/v1/data-quality",
                &[("from", from.to_owned()), ("to", to.to_owned())],
            )
            .await?;
        ensure!(
            status == 400 && body.to_string().contains(says),
            "{from}..{to}: {status} {body}"
        );
    }
    Ok(())
}
