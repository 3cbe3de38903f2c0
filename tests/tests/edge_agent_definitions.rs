//! An edge agent restarted under load counts every acknowledged event in the metrics defined
//! in the config bucket (defect 2 of `RELIABILITY.md`, found by the chaos soak): until it has
//! read the bucket's metric definitions it answers `503 definitions_not_loaded` with
//! `Retry-After: 1`, so no event is aggregated into the built-in `events` metric alone.
//!
//! The real `edge-agent` binary on a real nats-server (the stack's aggregator and gateway run
//! beside it): a metric `orders` is defined in the bucket, then 3 times 20 requests of 50
//! events are posted, the agent is killed (`SIGKILL`, with `ingest.durable_ack`) and started
//! again, and the next requests go out at once, as a producer without a load balancer sends
//! them: retried while the port refuses, and after `Retry-After` on a `503`. Then the
//! bucket-defined metric's total in the partials must equal the events acknowledged, as the
//! built-in `events` metric's must (it alone cannot see the defect).
//!
//! Needs the service binaries (`cargo build --workspace --bins`). About 30 s.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use rtdash_shared::messages::PartialBatch;
use rtdash_shared::names;
use rtdash_tests::auth::operator_authorization;
use rtdash_tests::jetstream::{connect, jetstream, kv_put, read_stream, stream_messages};
use rtdash_tests::stack::{Stack, StackOptions};
use rtdash_tests::time::{format_rfc3339, now_millis};
use serde_json::{json, Value};

const TENANT: &str = "defs";
/// The bucket-defined metric: a count of the test's events.
const METRIC: &str = "orders";
const EVENT_TYPE: &str = "order";

/// The totals of `events` and of `METRIC` for `TENANT` in the partials, each batch once.
async fn totals_in_partials(nats_url: &str) -> anyhow::Result<(u64, u64)> {
    let client = connect(&[nats_url.to_owned()], "definitions-test").await?;
    let js = jetstream(client, Duration::from_secs(10));
    let total = stream_messages(&js, names::PARTIALS_STREAM).await? as usize;
    let mut seen = BTreeSet::new();
    let (mut events, mut defined) = (0, 0);
    for message in read_stream(&js, names::PARTIALS_STREAM, total, Duration::from_secs(30)).await? {
        let batch: PartialBatch = rtdash_shared::wire::decode(&message.payload)?;
        ensure!(
            seen.insert((batch.agent_id.clone(), batch.partition, batch.seq)),
            "batch {} twice in the stream",
            message.msg_id
        );
        for entry in &batch.entries {
            if entry.series.tenant != TENANT || !entry.series.dims.is_empty() {
                continue;
            }
            match entry.series.metric.as_str() {
                "events" => events += entry.sketch.count(),
                METRIC => defined += entry.sketch.count(),
                _ => {}
            }
        }
    }
    Ok((events, defined))
}

/// What the client saw.
#[derive(Debug, Default)]
struct Sent {
    accepted: u64,
    /// `503 definitions_not_loaded` answers (each retried after its `Retry-After`).
    not_loaded: u64,
    /// Connection errors while the agent was not listening yet (retried).
    refused: u64,
}

/// Posts 20 requests of 50 events back to back, each retried as a producer would until it is
/// answered `202`.
fn post_round(http: &ureq::Agent, agent_url: &str, sent: &mut Sent) -> anyhow::Result<()> {
    for _ in 0..20 {
        let at = format_rfc3339(now_millis());
        let items: Vec<String> = (0..50)
            .map(|i| {
                format!(
                    r#"{{"tenant_id":"{TENANT}","source":"s","event_type":"{EVENT_TYPE}","properties":{{"i":{i}}},"occurred_at":"{at}"}}"#
                )
            })
            .collect();
        let body = format!("[{}]", items.join(","));
        // The operator key: verified from its file, so the agent's key store (loaded from
        // its own bucket after a start) plays no part.
        let (auth_name, auth_value) = operator_authorization();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            ensure!(Instant::now() < deadline, "no 202 within 60 s");
            let mut response = match http
                .post(&format!("{agent_url}/v1/events"))
                .header("content-type", "application/json")
                .header(auth_name, &auth_value)
                .send(body.as_bytes())
            {
                Ok(response) => response,
                Err(_) => {
                    // Not listening yet (or a pooled connection to the killed process): the
                    // request reached no running agent.
                    sent.refused += 1;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let answer: Value = serde_json::from_str(&response.body_mut().read_to_string()?)?;
            match status {
                202 => {
                    ensure!(answer["rejected"] == 0, "{answer}");
                    sent.accepted += answer["accepted"].as_u64().unwrap_or(0);
                    break;
                }
                503 if answer["error"]["code"] == "definitions_not_loaded" => {
                    ensure!(retry_after.as_deref() == Some("1"), "{retry_after:?}");
                    sent.not_loaded += 1;
                    std::thread::sleep(Duration::from_secs(1));
                }
                _ => bail!("{status} {answer}"),
            }
        }
    }
    Ok(())
}

#[test]
fn a_restarted_agent_counts_every_acknowledged_event_in_bucket_defined_metrics(
) -> anyhow::Result<()> {
    let options = StackOptions::default()
        .agent("FLUSH_INTERVAL_MS", 500)
        .agent("HEARTBEAT_INTERVAL_MS", 500)
        .agent("INGEST__DURABLE_ACK", true);
    let mut stack = Stack::start(options)?;
    let runtime = tokio::runtime::Runtime::new()?;

    // The metric, defined in the bucket; the running agent applies it within moments.
    let active_before = stack.agent.metric("rtdash_agent_definitions_active")?;
    runtime.block_on(async {
        let client = connect(&[stack.nats.url()], "definitions-test").await?;
        let js = jetstream(client, Duration::from_secs(10));
        let kv = js.get_key_value(names::CONFIG_BUCKET).await?;
        kv_put(
            &kv,
            &format!("metric._all.{METRIC}"),
            &json!({"name": METRIC, "event_type": EVENT_TYPE}).to_string(),
        )
        .await?;
        anyhow::Ok(())
    })?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while stack.agent.metric("rtdash_agent_definitions_active")? <= active_before {
        ensure!(
            Instant::now() < deadline,
            "the agent never applied `{METRIC}`"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let http = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let url = stack.agent_url();
    let mut sent = Sent::default();
    for _ in 0..3 {
        post_round(&http, &url, &mut sent)?;
        stack.agent.kill();
        // Started again, and posted to at once: no wait for `/readyz`.
        stack.agent.respawn()?;
    }
    post_round(&http, &url, &mut sent)?;
    stack.agent.wait_ready()?;
    println!(
        "{} events acknowledged; {} answers 503 definitions_not_loaded, {} connection errors, retried",
        sent.accepted, sent.not_loaded, sent.refused
    );
    ensure!(sent.accepted == 4 * 20 * 50, "{sent:?}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = runtime.block_on(totals_in_partials(&stack.nats.url()))?;
    while found != (sent.accepted, sent.accepted) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        found = runtime.block_on(totals_in_partials(&stack.nats.url()))?;
    }
    let (events, defined) = found;
    println!("in the partials: `events` {events}, `{METRIC}` {defined}");
    ensure!(
        events == sent.accepted,
        "{} events acknowledged, {events} in `events`",
        sent.accepted
    );
    ensure!(
        defined == sent.accepted,
        "{} events acknowledged, {defined} in the bucket-defined `{METRIC}`",
        sent.accepted
    );
    Ok(())
}
