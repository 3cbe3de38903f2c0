//! The edge agent killed (`SIGKILL`) right after answering `202`: with `ingest.durable_ack`
//! every acknowledged event reaches the partials stream, exactly once, after the restart;
//! without it the events of the last flush interval die with the process (the control, which
//! shows the check can fail).
//!
//! The real `edge-agent` binary on a real nats-server: 3 rounds of 20 requests of 50 events
//! posted back to back (each answered `202`), the agent killed with `SIGKILL` at once after the
//! last answer and restarted on its state directory; then the `events` metric's total in the
//! partials must equal the events acknowledged. Found by the chaos soak
//! (`tests/tests/chaos_soak.rs`), which kills agents under load.
//!
//! Needs the service binaries (`cargo build --workspace --bins`). About 20 s.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::ensure;
use rtdash_shared::messages::PartialBatch;
use rtdash_shared::names;
use rtdash_tests::auth::operator_authorization;
use rtdash_tests::jetstream::{connect, jetstream, read_stream, stream_messages};
use rtdash_tests::stack::{Stack, StackOptions};
use rtdash_tests::time::{format_rfc3339, now_millis};
use serde_json::Value;

const TENANT: &str = "crash";

/// Events of `TENANT` counted by the built-in `events` metric's total in the partials, each
/// batch once.
async fn events_in_partials(nats_url: &str) -> anyhow::Result<u64> {
    let client = connect(&[nats_url.to_owned()], "crash-test").await?;
    let js = jetstream(client, Duration::from_secs(10));
    let total = stream_messages(&js, names::PARTIALS_STREAM).await? as usize;
    let mut seen = BTreeSet::new();
    let mut events = 0;
    for message in read_stream(&js, names::PARTIALS_STREAM, total, Duration::from_secs(30)).await? {
        let batch: PartialBatch = rtdash_shared::wire::decode(&message.payload)?;
        ensure!(
            seen.insert((batch.agent_id.clone(), batch.partition, batch.seq)),
            "batch {} twice in the stream",
            message.msg_id
        );
        events += batch
            .entries
            .iter()
            .filter(|e| e.series.tenant == TENANT && e.series.metric == "events")
            .filter(|e| e.series.dims.is_empty())
            .map(|e| e.sketch.count())
            .sum::<u64>();
    }
    Ok(events)
}

/// Posts 20 requests of 50 events back to back; returns the events acknowledged.
fn post_round(agent_url: &str) -> anyhow::Result<u64> {
    let http = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    // The operator key sends for any tenant (the events name theirs).
    let (auth_name, auth_value) = operator_authorization();
    let mut accepted = 0;
    for _ in 0..20 {
        let at = format_rfc3339(now_millis());
        let items: Vec<String> = (0..50)
            .map(|i| {
                format!(
                    r#"{{"tenant_id":"{TENANT}","source":"s","event_type":"e","properties":{{"i":{i}}},"occurred_at":"{at}"}}"#
                )
            })
            .collect();
        let mut response = http
            .post(&format!("{agent_url}/v1/events"))
            .header("content-type", "application/json")
            .header(auth_name, &auth_value)
            .send(format!("[{}]", items.join(",")).as_bytes())?;
        let status = response.status().as_u16();
        let body: Value = serde_json::from_str(&response.body_mut().read_to_string()?)?;
        ensure!(status == 202, "{status} {body}");
        accepted += body["accepted"].as_u64().unwrap_or(0);
    }
    Ok(accepted)
}

/// Runs the rounds with `durable_ack`; returns (acknowledged, found in the partials).
fn crash_rounds(durable_ack: bool) -> anyhow::Result<(u64, u64)> {
    let options = StackOptions::default()
        .agent("FLUSH_INTERVAL_MS", 500)
        .agent("HEARTBEAT_INTERVAL_MS", 500)
        .agent("INGEST__DURABLE_ACK", durable_ack);
    let mut stack = Stack::start(options)?;
    let mut accepted = 0;
    for _ in 0..3 {
        accepted += post_round(&stack.agent_url())?;
        stack.agent.kill();
        stack.agent.restart()?;
    }
    // Everything the restarted agent found on disk goes out; give it time to settle.
    let runtime = tokio::runtime::Runtime::new()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = runtime.block_on(events_in_partials(&stack.nats.url()))?;
    while found < accepted && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        found = runtime.block_on(events_in_partials(&stack.nats.url()))?;
    }
    Ok((accepted, found))
}

#[test]
fn an_agent_killed_after_a_durable_ack_loses_nothing() -> anyhow::Result<()> {
    let (accepted, found) = crash_rounds(true)?;
    println!("durable_ack: {accepted} events acknowledged, {found} in the partials");
    ensure!(
        found == accepted,
        "{accepted} events acknowledged, {found} in the partials"
    );
    Ok(())
}

#[test]
fn without_durable_ack_a_kill_loses_the_last_flush_interval() -> anyhow::Result<()> {
    let (accepted, found) = crash_rounds(false)?;
    println!("no durable_ack: {accepted} events acknowledged, {found} in the partials");
    ensure!(
        found < accepted,
        "the control lost nothing ({found} of {accepted}): the kill came after a flush"
    );
    Ok(())
}
