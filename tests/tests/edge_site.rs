//! A real edge agent at an edge site: a leaf node with its own JetStream domain
//! (`deploy/edge/`) in front of the 3-node hub cluster (`deploy/cluster/`), set up like
//! `deploy/edge/up.sh` does (`rtdash_tests::topology::ensure_edge_site`).
//!
//! The agent runs with `site = "s1"`: it publishes to `rtdash.edge.s1.{partials,dlq,events}.*`,
//! creates no stream in the site's domain, routes with the partition count recorded on
//! `RTDASH_EDGE_PARTIALS` and reads metric definitions from the site's mirror of
//! `rtdash_config`. Events are ingested before, during and after a cut of the leaf link (the
//! agent restarted in the middle of the cut, and ready without the hub); at the
//! end the hub's `RTDASH_PARTIALS` holds every partial batch exactly once (the same message ids
//! as the edge stream, each once) and their counts add up to the accepted events; every dead
//! letter reaches the hub's `RTDASH_DLQ` and every archived event the hub's `RTDASH_EVENTS`.
//! The agent's schema discovery records reach the hub's `rtdash_schema` bucket (the site's
//! domain has none): written while linked, held while cut and written after the link is
//! restored, each counting exactly the events its agent instance accepted.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use edge_agent::AgentConfig;
use rtdash_shared::discovery::TypeRecord;
use rtdash_shared::messages::{DeadLetter, PartialBatch};
use rtdash_shared::names;
use rtdash_shared::wire;
use rtdash_tests::client::{http_client, Api};
use rtdash_tests::cluster::{EdgeBuffer, EdgeSite};
use rtdash_tests::env_or;
use rtdash_tests::events::event_json;
use rtdash_tests::in_process::InProcessAgent;
use rtdash_tests::jetstream::{
    connect_as, jetstream, kv_put, read_stream, stream_messages, wait_messages,
    wait_messages_at_least,
};
use rtdash_tests::time::now_millis;
use rtdash_tests::topology::{ensure_edge_site, start_hub, PARTITIONS};
use serde_json::json;

const SITE: &str = "s1";
/// Request timeout of the test's HTTP client.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

fn agent_config(site: &EdgeSite, state_dir: &Path) -> AgentConfig {
    let mut config = AgentConfig {
        // The site's agent connects as its own user over TLS, as deployed.
        nats: site.credentials("edge-agent").nats_config(&site.url()),
        ..AgentConfig::default()
    };
    config.site = Some(site.site().to_owned());
    config.state_dir = state_dir.to_owned();
    config.flush_interval_ms = 100;
    config.heartbeat_interval_ms = 1000;
    // Not the hub's count (8): the agent must take the one recorded on the edge stream.
    config.streams.partitions = 3;
    config.archive_events = true;
    config.publish.ack_timeout_ms = 2_000;
    config.publish.retry_backoff_max_ms = 500;
    config.schema.publish_interval_ms = 200;
    config
}

/// Waits until the hub's schema bucket holds `key` with a record counting `events` events;
/// the record, or an error naming what the bucket held last.
async fn wait_hub_schema(
    bucket: &async_nats::jetstream::kv::Store,
    key: &str,
    events: u64,
    timeout: Duration,
) -> anyhow::Result<TypeRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match bucket.get(key).await? {
            Some(value) => {
                let record = TypeRecord::decode(&value)?;
                if record.events == events {
                    return Ok(record);
                }
                format!("a record of {} events", record.events)
            }
            None => "nothing".to_owned(),
        };
        ensure!(
            Instant::now() < deadline,
            "the hub's {} holds {last} under {key}, want {events} events",
            names::SCHEMA_BUCKET
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the test sent and what the agent said it took.
#[derive(Debug, Default)]
struct Sent {
    accepted: u64,
    rejected: u64,
    /// Sum of `usd` over accepted events (integers: exact).
    usd: f64,
    /// Accepted events per region.
    regions: BTreeMap<String, u64>,
    requests: u64,
}

/// Posts one batch of `n` valid `pay` events plus one invalid item (a dead letter for
/// tenant `acme`).
async fn post_batch(agent: &Api, n: u64, sent: &mut Sent) -> anyhow::Result<()> {
    let mut items = Vec::with_capacity(n as usize + 1);
    let mut usd = 0.0;
    let mut regions = BTreeMap::new();
    for i in 0..n {
        let region = format!("r{}", (sent.requests + i) % 5);
        let amount = ((sent.requests * 7 + i) % 100) as f64;
        items.push(
            event_json(
                "acme",
                "pos",
                "pay",
                json!({"region": region, "usd": amount}),
                now_millis(),
            )
            .to_string(),
        );
        usd += amount;
        *regions.entry(region).or_insert(0) += 1;
    }
    items.push(r#"{"tenant_id":"acme","not_a_field":1}"#.to_owned());
    let (status, body) = agent
        .post_raw("/v1/events", format!("[{}]", items.join(",")), &[])
        .await?;
    ensure!(status == 202, "status {status}: {body}");
    ensure!(body["accepted"] == n && body["rejected"] == 1, "{body}");
    sent.accepted += n;
    sent.rejected += 1;
    sent.usd += usd;
    for (region, count) in regions {
        *sent.regions.entry(region).or_insert(0) += count;
    }
    sent.requests += 1;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_at_an_edge_site_buffers_while_cut_and_the_hub_gets_everything_once(
) -> anyhow::Result<()> {
    let cut_for = Duration::from_secs(env_or("RTDASH_TEST_EDGE_CUT_SECS", 5));
    let started = Instant::now();
    let (cluster, hub) = start_hub("hub").await?;
    let hub_kv = hub.get_key_value(names::CONFIG_BUCKET).await?;
    kv_put(
        &hub_kv,
        "metric._all.amount",
        &json!({"name": "amount", "event_type": "pay", "field": "usd", "dimensions": ["region"]})
            .to_string(),
    )
    .await?;

    let mut site = EdgeSite::start(SITE, &cluster)?;
    let edge = jetstream(
        connect_as(&[site.url()], "edge-test", &site.operator()).await?,
        Duration::from_secs(5),
    );
    let state = tempfile::tempdir()?;

    // Before `deploy/edge/up.sh`: the agent refuses to start, and says what to run.
    let err = InProcessAgent::start(agent_config(&site, state.path()), http_client(None))
        .await
        .expect_err("no edge streams yet");
    let message = err.to_string();
    ensure!(
        message.contains("rtdash.edge.s1.partials") && message.contains("deploy/edge/up.sh s1"),
        "{message}"
    );

    ensure_edge_site(&hub, &edge, SITE, EdgeBuffer::small()).await?;
    // The site's mirror carries the definition before the agent starts.
    let edge_kv = edge.get_key_value(names::CONFIG_BUCKET).await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while edge_kv.get("metric._all.amount").await?.is_none() {
        ensure!(
            Instant::now() < deadline,
            "the mirror never got the definition"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut agent = InProcessAgent::start(
        agent_config(&site, state.path()),
        http_client(Some(HTTP_TIMEOUT)),
    )
    .await?;
    let agent_id = agent.handle.agent_id().to_owned();
    ensure!(agent_id.starts_with("s1-"), "generated id {agent_id}");
    ensure!(
        agent.handle.partitions() == PARTITIONS,
        "the agent routes with {} partitions, the edge stream records {PARTITIONS}",
        agent.handle.partitions()
    );
    agent.api.wait_ready(Duration::from_secs(20)).await?;
    // The agent created nothing in the site's domain: only the site's own streams exist.
    {
        use futures::TryStreamExt;
        let mut names_here = Vec::new();
        let mut streams = edge.streams();
        while let Some(info) = streams.try_next().await? {
            names_here.push(info.config.name.clone());
        }
        names_here.sort();
        ensure!(
            names_here
                == [
                    "KV_rtdash_config",
                    "KV_rtdash_keys",
                    names::EDGE_DLQ_STREAM,
                    names::EDGE_EVENTS_STREAM,
                    names::EDGE_PARTIALS_STREAM
                ],
            "streams in the site's domain: {names_here:?}"
        );
    }

    let mut sent = Sent::default();
    // Linked.
    for _ in 0..20 {
        post_batch(&agent.api, 50, &mut sent).await?;
    }
    let before = sent.accepted;
    wait_messages_at_least(&hub, names::DLQ_STREAM, sent.rejected).await?;
    // Schema discovery: the site's agent writes its record to the hub's bucket.
    let hub_schema = hub.get_key_value(names::SCHEMA_BUCKET).await?;
    let schema_key = names::schema_type_key("acme", &agent_id, "pay");
    let record = wait_hub_schema(&hub_schema, &schema_key, before, Duration::from_secs(20))
        .await
        .context("schema discovery while linked")?;
    let mut properties: Vec<&str> = record.properties.iter().map(|p| p.name.as_str()).collect();
    properties.sort_unstable();
    ensure!(
        properties == ["region", "usd"],
        "properties recorded at the hub: {properties:?}"
    );

    // Cut: the site keeps accepting; the hub sees nothing of it.
    tokio::task::block_in_place(|| site.cut_link())?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hub_partials_at_cut = stream_messages(&hub, names::PARTIALS_STREAM).await?;
    let edge_partials_at_cut = stream_messages(&edge, names::EDGE_PARTIALS_STREAM).await?;
    let cut = Instant::now();
    let mut restarted = false;
    let mut accepted_at_restart = 0;
    while cut.elapsed() < cut_for {
        if !restarted && cut.elapsed() >= cut_for / 2 {
            // Restarted while cut: it reads its metric definitions (and keys) from the site's
            // mirrors, so it becomes ready and accepts without the hub (ingest answers `503
            // definitions_not_loaded` until the definitions are read).
            agent.stop().await?;
            agent = InProcessAgent::start(
                agent_config(&site, state.path()),
                http_client(Some(HTTP_TIMEOUT)),
            )
            .await?;
            agent.api.wait_ready(Duration::from_secs(20)).await?;
            restarted = true;
            accepted_at_restart = sent.accepted;
        }
        post_batch(&agent.api, 100, &mut sent).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(restarted, "the agent was not restarted during the cut");
    let during = sent.accepted - before;
    // Let the last flushes of the cut reach the edge stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let edge_partials_in_cut = stream_messages(&edge, names::EDGE_PARTIALS_STREAM).await?;
    ensure!(
        edge_partials_in_cut > edge_partials_at_cut,
        "the edge stream took nothing while cut"
    );
    ensure!(
        stream_messages(&hub, names::PARTIALS_STREAM).await? == hub_partials_at_cut,
        "the hub received partials while the link was cut"
    );

    // Restored, then more events, then a graceful stop (final flush, acks awaited).
    tokio::task::block_in_place(|| site.restore_link())?;
    for _ in 0..10 {
        post_batch(&agent.api, 50, &mut sent).await?;
    }
    // The restarted agent's record (from an empty catalog) held while cut reaches the hub.
    wait_hub_schema(
        &hub_schema,
        &schema_key,
        sent.accepted - accepted_at_restart,
        Duration::from_secs(30),
    )
    .await
    .context("schema discovery after the link was restored")?;
    agent.stop().await?;

    // Everything the edge stream holds reaches the hub, once.
    let edge_total = stream_messages(&edge, names::EDGE_PARTIALS_STREAM).await?;
    let catch_up = Duration::from_secs(30) + cut_for.min(Duration::from_secs(120));
    wait_messages(&hub, names::PARTIALS_STREAM, edge_total, catch_up)
        .await
        .context("sourcing after the link was restored")?;
    let at_edge = read_stream(
        &edge,
        names::EDGE_PARTIALS_STREAM,
        edge_total as usize,
        Duration::from_secs(20),
    )
    .await?;
    let at_hub = read_stream(
        &hub,
        names::PARTIALS_STREAM,
        edge_total as usize,
        Duration::from_secs(20),
    )
    .await?;
    let edge_ids: Vec<&str> = at_edge.iter().map(|m| m.msg_id.as_str()).collect();
    let hub_ids: Vec<&str> = at_hub.iter().map(|m| m.msg_id.as_str()).collect();
    ensure!(
        hub_ids.iter().collect::<HashSet<_>>().len() == hub_ids.len(),
        "duplicate message ids in the hub's partials"
    );
    ensure!(
        hub_ids == edge_ids,
        "the hub's partials differ from the edge's"
    );

    let mut events = 0u64;
    let mut amount_count = 0u64;
    let mut amount_sum = 0.0;
    let mut regions: BTreeMap<String, u64> = BTreeMap::new();
    for message in &at_hub {
        let batch: PartialBatch = wire::decode(&message.payload)?;
        ensure!(batch.agent_id == agent_id, "batch of {}", batch.agent_id);
        ensure!(
            message.msg_id == names::partial_msg_id(&agent_id, batch.partition, batch.seq),
            "message id {} of batch {}.{}",
            message.msg_id,
            batch.partition,
            batch.seq
        );
        ensure!(
            message.subject == names::partials_subject(batch.partition),
            "batch of partition {} stored under {}",
            batch.partition,
            message.subject
        );
        for entry in &batch.entries {
            ensure!(
                entry.series.partition(PARTITIONS) == batch.partition,
                "a series routed to the wrong partition"
            );
            match (entry.series.metric.as_str(), entry.series.dims.is_empty()) {
                ("events", true) => events += entry.sketch.count(),
                ("amount", true) => {
                    amount_count += entry.sketch.count();
                    amount_sum += entry.sketch.stats().sum.unwrap_or(0.0);
                }
                ("amount", false) => {
                    *regions.entry(entry.series.dims_json()).or_insert(0) += entry.sketch.count()
                }
                _ => {}
            }
        }
    }
    ensure!(
        events == sent.accepted,
        "the hub's partials count {events} events, {} were accepted",
        sent.accepted
    );
    ensure!(
        amount_count == sent.accepted && amount_sum == sent.usd,
        "metric `amount` from the mirrored config: count {amount_count} sum {amount_sum}, want {} and {}",
        sent.accepted,
        sent.usd
    );
    let want_regions: BTreeMap<String, u64> = sent
        .regions
        .iter()
        .map(|(region, n)| (json!({ "region": region }).to_string(), *n))
        .collect();
    ensure!(regions == want_regions, "{regions:?} != {want_regions:?}");

    // Dead letters: every one at the hub, under rtdash.dlq.<tenant>.
    wait_messages(&hub, names::DLQ_STREAM, sent.rejected, catch_up).await?;
    let letters = read_stream(
        &hub,
        names::DLQ_STREAM,
        sent.rejected as usize,
        Duration::from_secs(20),
    )
    .await?;
    for message in &letters {
        ensure!(
            message.subject == names::dlq_subject("acme"),
            "{}",
            message.subject
        );
        let letter: DeadLetter = wire::decode(&message.payload)?;
        ensure!(letter.code == "unknown_field", "{}", letter.code);
    }

    // Archived events: every accepted one at the hub, under rtdash.events.<tenant>.
    let archived_total = stream_messages(&edge, names::EDGE_EVENTS_STREAM).await?;
    wait_messages(&hub, names::EVENTS_STREAM, archived_total, catch_up).await?;
    let chunks = read_stream(
        &hub,
        names::EVENTS_STREAM,
        archived_total as usize,
        Duration::from_secs(20),
    )
    .await?;
    let mut lines = 0u64;
    for chunk in &chunks {
        ensure!(
            chunk.subject == names::events_subject("acme"),
            "{}",
            chunk.subject
        );
        lines += chunk
            .payload
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64;
    }
    ensure!(
        lines == sent.accepted,
        "{lines} archived events at the hub, {} accepted",
        sent.accepted
    );

    println!(
        "edge site agent: {} events accepted ({before} before, {during} during a {cut_for:?} cut), \
         {} dead letters; {edge_total} partial batches at the edge, the same at the hub, once \
         each; test {:?}",
        sent.accepted,
        sent.rejected,
        started.elapsed()
    );
    Ok(())
}
