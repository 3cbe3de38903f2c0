//! An edge site (a leaf node with its own JetStream domain, `deploy/edge/`) in front of the
//! 3-node hub cluster (`deploy/cluster/`): the site keeps accepting while its link to the hub
//! is cut, and the hub's `RTDASH_PARTIALS` sources everything exactly once when the link is
//! back, with subjects mapped to `rtdash.partials.<p>` and the `Nats-Msg-Id`s kept.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use rtdash_shared::names;
use rtdash_tests::cluster::{self, EdgeBuffer, EdgeSite, HUB_DOMAIN};
use rtdash_tests::env_or;
use rtdash_tests::jetstream::{
    connect_as, jetstream, kv_put, publish_until_acked, read_stream, stream_messages, wait_messages,
};
use rtdash_tests::topology::{ensure_edge_site, ensure_hub_topology, start_hub, PARTITIONS};

/// One edge-agent's batches, published one after another like the agent's flush loop.
struct Agent<'a> {
    js: &'a async_nats::jetstream::Context,
    /// The site id.
    site: String,
    id: String,
    /// Next seq per partition.
    seqs: Vec<u64>,
    /// `(Nats-Msg-Id, payload)` in the order the edge stream acknowledged them.
    sent: Vec<(String, Vec<u8>)>,
}

impl<'a> Agent<'a> {
    fn new(js: &'a async_nats::jetstream::Context, site: &str, id: &str) -> Self {
        Self {
            js,
            site: site.to_owned(),
            id: id.to_owned(),
            seqs: vec![0; PARTITIONS as usize],
            sent: Vec::new(),
        }
    }

    /// Publishes `count` batches round-robin over the partitions; every ack must come from
    /// the site's own domain and edge stream.
    async fn publish(&mut self, count: usize) -> anyhow::Result<()> {
        let stream = cluster::edge_stream_name("partials");
        let domain = cluster::edge_domain(&self.site);
        for _ in 0..count {
            let n = self.sent.len();
            let partition = (n % PARTITIONS as usize) as u32;
            let seq = self.seqs[partition as usize];
            self.seqs[partition as usize] += 1;
            let id = names::partial_msg_id(&self.id, partition, seq);
            let payload = format!("{{\"batch\":{n},\"agent\":\"{}\"}}", self.id).into_bytes();
            let (_, ack) = publish_until_acked(
                self.js,
                &cluster::edge_subject(&self.site, "partials", &partition.to_string()),
                &id,
                &payload,
                Duration::from_secs(10),
            )
            .await?;
            ensure!(
                ack.domain == domain && ack.stream == stream,
                "batch {id} acknowledged by {:?} in domain {:?}, not {stream} in {domain}",
                ack.stream,
                ack.domain,
            );
            self.sent.push((id, payload));
        }
        Ok(())
    }
}

/// Publish while linked, cut the link, keep publishing (acked by the edge domain), restore
/// the link: the hub holds every batch exactly once, in the edge stream's order, under
/// `rtdash.partials.<p>`, with its `Nats-Msg-Id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_site_buffers_while_cut_and_the_hub_sources_each_batch_once() -> anyhow::Result<()> {
    const BEFORE: usize = 300;
    const AFTER: usize = 200;
    // Long enough for both sides to notice (heartbeats, the source consumer at the edge
    // going away); RTDASH_TEST_EDGE_CUT_SECS makes it longer by hand.
    let cut_for = Duration::from_secs(env_or("RTDASH_TEST_EDGE_CUT_SECS", 5));
    let started = Instant::now();
    let (cluster, hub) = start_hub("hub").await?;
    let mut site = EdgeSite::start("s1", &cluster)?;
    let edge = jetstream(
        connect_as(&[site.url()], "edge-agent", &site.operator()).await?,
        Duration::from_secs(5),
    );
    ensure_edge_site(&hub, &edge, site.site(), EdgeBuffer::small()).await?;

    // Nothing at the edge stores the hub's subjects (they would be captured twice).
    let mut edge_streams = edge.streams();
    use futures::TryStreamExt;
    while let Some(info) = edge_streams.try_next().await? {
        for subject in &info.config.subjects {
            ensure!(
                !subject.starts_with(names::PARTIALS_PREFIX)
                    && subject.starts_with(&format!("rtdash.edge.{}.", site.site())),
                "edge stream {} stores {subject}",
                info.config.name
            );
        }
    }

    let mut agent = Agent::new(&edge, site.site(), "s1-agent-1");
    agent.publish(BEFORE).await?;
    wait_messages(
        &hub,
        names::PARTIALS_STREAM,
        BEFORE as u64,
        Duration::from_secs(15),
    )
    .await
    .context("sourcing while linked")?;

    tokio::task::block_in_place(|| site.cut_link())?;
    let cut = Instant::now();
    // The agent keeps flushing while cut off, acknowledged by its own domain.
    while cut.elapsed() < cut_for {
        agent.publish(10).await.context("publishing while cut")?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = agent.sent.len() - BEFORE;
    // The hub cannot see the site now: it still holds only what came before the cut.
    ensure!(
        stream_messages(&hub, names::PARTIALS_STREAM).await? == BEFORE as u64,
        "the hub received batches while the link was cut"
    );
    ensure!(
        stream_messages(&edge, &cluster::edge_stream_name("partials")).await?
            == (BEFORE + during) as u64
    );
    let cut_for = cut.elapsed();

    tokio::task::block_in_place(|| site.restore_link())?;
    let restored = Instant::now();
    agent.publish(AFTER).await?;
    let total = BEFORE + during + AFTER;
    // The hub retries a failed source after 10 s x failures (at most 2 min): after a long
    // cut, sourcing resumes up to that long after the link is back.
    let catch_up = Duration::from_secs(30) + cut_for.min(Duration::from_secs(120));
    wait_messages(&hub, names::PARTIALS_STREAM, total as u64, catch_up)
        .await
        .context("sourcing after the link was restored")?;
    let caught_up = restored.elapsed();

    let stored = read_stream(&hub, names::PARTIALS_STREAM, total, Duration::from_secs(20)).await?;
    let ids: Vec<&str> = stored.iter().map(|m| m.msg_id.as_str()).collect();
    let sent: Vec<&str> = agent.sent.iter().map(|(id, _)| id.as_str()).collect();
    ensure!(
        ids.iter().collect::<HashSet<_>>().len() == total,
        "duplicates in the hub stream"
    );
    ensure!(ids == sent, "the hub's order differs from the edge's");
    for (message, (id, payload)) in stored.iter().zip(&agent.sent) {
        let partition = id.split('.').nth(1).unwrap_or_default();
        ensure!(
            message.subject == format!("{}.{partition}", names::PARTIALS_PREFIX),
            "{id} stored under {}",
            message.subject
        );
        ensure!(&message.payload == payload, "{id}: payload changed");
        let source = message
            .headers
            .get("Nats-Stream-Source")
            .with_context(|| format!("{id}: no Nats-Stream-Source header"))?;
        ensure!(
            source.starts_with(&cluster::edge_stream_name("partials")),
            "{id}: sourced from {source}"
        );
    }
    // Everything is still in the edge stream too (limits retention: the hub's sourcing
    // does not remove it).
    ensure!(stream_messages(&edge, &cluster::edge_stream_name("partials")).await? == total as u64);

    println!(
        "edge cut: {BEFORE} batches before, {during} during a {cut_for:?} cut, {AFTER} after; \
         hub caught up {caught_up:?} after the link returned; {total} exactly once, in order; \
         test {:?}",
        started.elapsed()
    );
    Ok(())
}

/// The site's mirror of `rtdash_config` (in the edge domain) serves the metric definitions
/// while the link is cut, and catches up with changes made on the hub meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_config_mirror_serves_definitions_while_cut() -> anyhow::Result<()> {
    let (cluster, hub) = start_hub("hub").await?;
    let hub_kv = hub.get_key_value(names::CONFIG_BUCKET).await?;
    kv_put(&hub_kv, "metric.t1.m1", "v1").await?;

    let mut site = EdgeSite::start("s2", &cluster)?;
    let edge_client = connect_as(&[site.url()], "edge-agent", &site.operator()).await?;
    let edge = jetstream(edge_client.clone(), Duration::from_secs(5));
    ensure_edge_site(&hub, &edge, site.site(), EdgeBuffer::small()).await?;
    // The agent opens the bucket in its own (edge) domain: that is the mirror.
    let edge_kv = edge.get_key_value(names::CONFIG_BUCKET).await?;
    let get = |key: &'static str| {
        let edge_kv = edge_kv.clone();
        async move { anyhow::Ok(edge_kv.get(key).await?.map(|v| v.to_vec())) }
    };
    let wait_value = |key: &'static str, want: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let value = get(key).await.ok().flatten();
            if value.as_deref() == Some(want.as_bytes()) {
                return anyhow::Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "edge mirror: {key} is {:?}, want {want}",
                value.map(|v| String::from_utf8_lossy(&v).into_owned())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    wait_value("metric.t1.m1", "v1").await?;

    tokio::task::block_in_place(|| site.cut_link())?;
    // The hub changes while the site is cut off; the site still serves what it had.
    kv_put(&hub_kv, "metric.t1.m1", "v2").await?;
    kv_put(&hub_kv, "metric.t1.m2", "v1").await?;
    ensure!(get("metric.t1.m1").await?.as_deref() == Some(&b"v1"[..]));
    // The hub's own API is unreachable from the site meanwhile (account info: the one hub
    // API request the `leaf` user forwards besides the mirrors'; its answer comes back
    // under `_INBOX.edge.>`, the replies the link carries to tools at a site).
    let tool_at_site = site
        .operator()
        .connect_options()
        .custom_inbox_prefix(format!("_INBOX.edge.{}", site.site()))
        .connect(site.url())
        .await?;
    let hub_from_edge = async_nats::jetstream::with_domain(tool_at_site, HUB_DOMAIN);
    ensure!(
        tokio::time::timeout(Duration::from_secs(3), hub_from_edge.query_account())
            .await
            .map_or(true, |r| r.is_err()),
        "the hub's JetStream answered through a cut link"
    );

    tokio::task::block_in_place(|| site.restore_link())?;
    wait_value("metric.t1.m1", "v2").await?;
    wait_value("metric.t1.m2", "v1").await?;
    // Through the link, the hub domain is reachable from the site again.
    ensure!(
        with_retry(|| hub_from_edge.query_account()).await,
        "hub domain unreachable from the site after the link returned"
    );
    Ok(())
}

/// True once `attempt` succeeds within 10 s.
async fn with_retry<F, Fut, T, E>(mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if attempt().await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// `core-aggregator` runs `ensure_topology` with `CreateOrUpdate` at every start; the hub's
/// sources of edge streams must survive that (an update that dropped them would silently stop
/// sourcing every edge site).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_sources_survive_the_aggregators_topology_update() -> anyhow::Result<()> {
    let (cluster, hub) = start_hub("hub").await?;
    let site = EdgeSite::start("s3", &cluster)?;
    let edge = jetstream(
        connect_as(&[site.url()], "edge", &site.operator()).await?,
        Duration::from_secs(5),
    );
    ensure_edge_site(&hub, &edge, site.site(), EdgeBuffer::small()).await?;
    ensure_hub_topology(&hub, 3).await?; // what every core-aggregator start does
    for kind in cluster::EDGE_KINDS {
        let name = cluster::hub_stream_name(kind);
        let mut stream = hub.get_stream(&name).await?;
        let sources = stream
            .info()
            .await?
            .config
            .sources
            .clone()
            .unwrap_or_default();
        ensure!(
            sources
                .iter()
                .any(|s| s.name == cluster::edge_stream_name(kind)),
            "{name} lost the source of site s3's {kind}"
        );
    }
    Ok(())
}
