//! rtdash's topology on a real 3-node JetStream cluster (R3 streams and buckets, as with
//! `RTDASH_STREAMS__REPLICAS=3`), and what a node crash under load does to it: nothing lost,
//! nothing stored twice, when publishers retry with the same `Nats-Msg-Id`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use futures::{stream, StreamExt, TryStreamExt};
use rtdash_shared::names;
use rtdash_tests::jetstream::{
    connect_as, jetstream, kv_put, publish_until_acked, read_stream, wait_messages,
};
use rtdash_tests::topology::{start_hub, PARTITIONS};

/// Publishes in flight at once.
const IN_FLIGHT: usize = 128;
/// API and ack timeout: a publish to a dead leader fails this fast and is retried.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_topology_is_replicated_on_every_node() -> anyhow::Result<()> {
    let (mut cluster, js) = start_hub("topology").await?;

    for name in [
        names::PARTIALS_STREAM,
        names::EVENTS_STREAM,
        names::DLQ_STREAM,
        names::LATE_STREAM,
        names::ALERTS_STREAM,
    ] {
        let info = js.get_stream(name).await?.info().await?.clone();
        ensure!(
            info.config.num_replicas == 3,
            "{name}: {} replicas",
            info.config.num_replicas
        );
        let cluster_info = info.cluster.context("stream without cluster info")?;
        ensure!(cluster_info.leader.is_some(), "{name}: no leader");
        ensure!(
            cluster_info.replicas.len() == 2,
            "{name}: {} followers",
            cluster_info.replicas.len()
        );
    }
    for bucket in [
        names::CONFIG_BUCKET,
        names::LEASES_BUCKET,
        names::CHECKPOINTS_BUCKET,
    ] {
        let info = js
            .get_stream(format!("KV_{bucket}"))
            .await?
            .info()
            .await?
            .clone();
        ensure!(
            info.config.num_replicas == 3,
            "bucket {bucket}: {} replicas",
            info.config.num_replicas
        );
    }
    // A bucket write is visible through any node (direct gets may be answered by a follower,
    // which applies the write a moment later: poll).
    let kv = js.get_key_value(names::CONFIG_BUCKET).await?;
    kv_put(&kv, "probe", "1").await?;
    for url in cluster.urls() {
        let js = jetstream(
            connect_as(std::slice::from_ref(&url), "probe", &cluster.operator()).await?,
            Duration::from_secs(5),
        );
        let kv = js.get_key_value(names::CONFIG_BUCKET).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let value = kv.get("probe").await.ok().flatten();
            if value.as_deref() == Some(&b"1"[..]) {
                break;
            }
            ensure!(Instant::now() < deadline, "{url}: probe is {value:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    ensure!(cluster.meta_leader()?.is_some(), "no meta leader");
    Ok(())
}

/// Which node a fault test kills.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Victim {
    /// The partials stream's leader: in-flight publishes fail until a new leader is elected.
    StreamLeader,
    /// A follower the publisher is connected to: the client reconnects to another node and
    /// acks in flight are lost, so some retries find their first attempt stored (`duplicate`).
    PublishersNode,
}

/// N partial batches published with `Nats-Msg-Id`s (`<agent>.<partition>.<seq>`) from a client
/// that knows all three nodes; the partials stream's leader is killed (`SIGKILL`) half-way.
/// Failed publishes are retried with the same id. Then: exactly N messages in the stream,
/// one per id, none missing, and the restarted node's replica catches up to N.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_leader_killed_under_load_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    node_killed_under_load(Victim::StreamLeader).await
}

/// The same with the node the publisher is connected to (a follower) killed half-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_node_killed_under_load_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    node_killed_under_load(Victim::PublishersNode).await
}

async fn node_killed_under_load(victim: Victim) -> anyhow::Result<()> {
    const N: usize = 20_000;
    const AGENTS: usize = 4;
    let started = Instant::now();
    let (mut cluster, _admin) = start_hub("admin").await?;
    let leader = cluster
        .stream_leader(names::PARTIALS_STREAM)?
        .context("the partials stream has no leader")?;
    let target = match victim {
        Victim::StreamLeader => leader,
        Victim::PublishersNode => (leader + 1) % cluster.len(),
    };
    // The publisher knows every node; for PublishersNode it connects to the victim first.
    let mut urls = cluster.urls();
    urls.rotate_left(target);
    let client = cluster
        .operator()
        .connect_options()
        .name("publisher")
        .max_reconnects(None::<usize>)
        .retain_servers_order()
        .connect(urls.as_slice())
        .await?;
    if victim == Victim::PublishersNode {
        let connected = client.server_info().server_name;
        ensure!(
            connected == cluster.names()[target],
            "publisher connected to {connected}, not {}",
            cluster.names()[target]
        );
    }
    let js = jetstream(client, ACK_TIMEOUT);

    // Message i: agent i % AGENTS; then, j = i / AGENTS, partition j % PARTITIONS and seq
    // j / PARTITIONS: unique, and increasing per (agent, partition) like an agent's.
    let expected: Vec<(String, String)> = (0..N)
        .map(|i| {
            let agent = format!("agent-{}", i % AGENTS);
            let j = i / AGENTS;
            let partition = (j % PARTITIONS as usize) as u32;
            let seq = (j / PARTITIONS as usize) as u64;
            (
                names::partials_subject(partition),
                names::partial_msg_id(&agent, partition, seq),
            )
        })
        .collect();

    let acked = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let acked = Arc::clone(&acked);
        let expected = expected.clone();
        tokio::spawn(async move {
            stream::iter(expected)
                .map(|(subject, id)| {
                    let js = js.clone();
                    let acked = Arc::clone(&acked);
                    async move {
                        let payload = format!("batch {id}");
                        let (published, _) = publish_until_acked(
                            &js,
                            &subject,
                            &id,
                            payload.as_bytes(),
                            Duration::from_secs(30),
                        )
                        .await?;
                        acked.fetch_add(1, Ordering::Relaxed);
                        anyhow::Ok(published)
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .try_collect::<Vec<_>>()
                .await
        })
    };

    // Kill the victim once half of the batches are acknowledged.
    let unique: HashSet<&String> = expected.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), N, "the test's ids must be unique");
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::Relaxed) < N / 2 {
        ensure!(
            Instant::now() < deadline,
            "half the publishes not acked within 30 s"
        );
        ensure!(!publisher.is_finished(), "publisher ended early");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let killed_at = acked.load(Ordering::Relaxed);
    cluster.kill(target);
    let killed = Instant::now();

    let results = publisher.await??;
    let publish_time = killed.elapsed();
    let retried = results.iter().filter(|p| p.retries > 0).count();
    let retries: u32 = results.iter().map(|p| p.retries).sum();
    let duplicates = results.iter().filter(|p| p.duplicate).count();

    let new_leader = cluster.stream_leader(names::PARTIALS_STREAM)?;
    ensure!(
        new_leader.is_some() && new_leader != Some(target),
        "the stream should be led by a live node, is by {new_leader:?}"
    );

    // Restart the killed node: it rejoins and its replica catches up.
    tokio::task::block_in_place(|| cluster.restart(target))?;
    let reader = jetstream(
        connect_as(&cluster.urls(), "reader", &cluster.operator()).await?,
        Duration::from_secs(5),
    );
    wait_messages(
        &reader,
        names::PARTIALS_STREAM,
        N as u64,
        Duration::from_secs(10),
    )
    .await?;
    let stored = read_stream(&reader, names::PARTIALS_STREAM, N, Duration::from_secs(20)).await?;

    let ids: HashSet<&str> = stored.iter().map(|m| m.msg_id.as_str()).collect();
    ensure!(
        ids.len() == N,
        "{} distinct ids in {} messages",
        ids.len(),
        stored.len()
    );
    let missing: Vec<&String> = expected
        .iter()
        .map(|(_, id)| id)
        .filter(|id| !ids.contains(id.as_str()))
        .take(5)
        .collect();
    ensure!(
        missing.is_empty(),
        "ids missing from the stream: {missing:?}..."
    );
    for message in &stored {
        let partition = message.msg_id.split('.').nth(1).unwrap_or_default();
        ensure!(
            message.subject == format!("{}.{partition}", names::PARTIALS_PREFIX),
            "{} stored under {}",
            message.msg_id,
            message.subject
        );
        ensure!(message.payload == format!("batch {}", message.msg_id).into_bytes());
    }
    // Per (agent, partition), the stream order is the seq order only for sequential
    // publishers; these were concurrent, so only completeness is checked here.

    // Every replica, the restarted one included, holds N messages.
    let replicas = tokio::task::block_in_place(|| {
        rtdash_tests::eventually(Duration::from_secs(15), "every replica at N", || {
            let counts = (0..cluster.len())
                .map(|i| cluster.replica_messages(i, names::PARTIALS_STREAM))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(counts
                .iter()
                .all(|c| *c == Some(N as u64))
                .then_some(counts))
        })
    })?;

    println!(
        "R3 {victim:?} kill: {N} batches, node {} killed at {killed_at} acked; \
         {retried} batches retried ({retries} attempts), {duplicates} acked as duplicate; \
         second half took {publish_time:?}; replicas {replicas:?}; test {:?}",
        cluster.names()[target],
        started.elapsed()
    );
    Ok(())
}
