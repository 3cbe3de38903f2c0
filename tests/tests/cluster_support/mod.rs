//! Shared by the `cluster_*` tests: connecting to a cluster, rtdash's hub topology, setting
//! up an edge site's JetStream objects (the async-nats equivalent of `deploy/edge/up.sh`),
//! publishing with retries under faults, and reading a stream back.

#![allow(dead_code)] // each test binary uses a part

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use async_nats::jetstream::{self, consumer, message::PublishMessage, stream};
use futures::StreamExt;
use rtdash_runtime::nats::{Ensure, StreamsConfig};
use rtdash_tests::cluster::{self, EdgeBuffer, EDGE_KINDS};

/// Partition count of the topology the tests create.
pub const PARTITIONS: u32 = 8;

/// Connects to every URL in `urls`, reconnecting forever (the client moves to another node
/// when the one it uses dies).
pub async fn connect(urls: &[String], name: &str) -> anyhow::Result<async_nats::Client> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None::<usize>)
        .connect(urls)
        .await
        .with_context(|| format!("connect to {urls:?}"))?;
    Ok(client)
}

/// A JetStream context with a short API / ack timeout, so a publish to a dead stream leader
/// fails fast and is retried.
pub fn jetstream(client: async_nats::Client, timeout: Duration) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(timeout);
    js
}

/// The streams config the tests use: `replicas` per stream, [`PARTITIONS`] partitions.
pub fn streams_config(replicas: usize) -> StreamsConfig {
    StreamsConfig {
        partitions: PARTITIONS,
        replicas,
        ..StreamsConfig::default()
    }
}

/// Creates (or updates) rtdash's streams and buckets exactly as the core aggregator does at
/// start (`ensure_topology` with [`Ensure::CreateOrUpdate`]).
pub async fn ensure_hub_topology(js: &jetstream::Context, replicas: usize) -> anyhow::Result<()> {
    let config = streams_config(replicas);
    // The meta leader may still be settling right after start: retry briefly.
    let mut last = None;
    for _ in 0..20 {
        match rtdash_runtime::nats::ensure_topology(js, &config, Ensure::CreateOrUpdate).await {
            Ok(()) => return Ok(()),
            Err(err) => last = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(last.expect("an error")).context("ensure_topology on the hub")
}

/// What `deploy/edge/up.sh <site>` does, with async-nats: in the site's domain (`edge_js`,
/// connected to the leaf node) the edge streams (LIMITS retention) and the read-only mirror
/// of the config bucket; on the hub (`hub_js`) one source per edge stream, added to the hub
/// streams' existing sources (idempotent: an existing entry for the same stream and domain
/// is replaced, others are kept).
pub async fn ensure_edge_site(
    hub_js: &jetstream::Context,
    edge_js: &jetstream::Context,
    site: &str,
    buffer: EdgeBuffer,
) -> anyhow::Result<()> {
    for kind in EDGE_KINDS {
        let config: stream::Config =
            serde_json::from_value(cluster::edge_stream_config(site, kind, buffer, PARTITIONS)?)
                .context("edge stream config")?;
        edge_js
            .create_or_update_stream(config)
            .await
            .with_context(|| {
                format!("edge stream {} at {site}", cluster::edge_stream_name(kind))
            })?;
    }
    let mirror: stream::Config =
        serde_json::from_value(cluster::config_mirror_config(site)?).context("config mirror")?;
    edge_js
        .create_or_update_stream(mirror)
        .await
        .with_context(|| format!("config mirror at {site}"))?;
    for kind in EDGE_KINDS {
        add_hub_source(hub_js, site, kind).await?;
    }
    Ok(())
}

/// Adds (or replaces) the source entry for `site`'s edge stream of `kind` on the hub stream.
pub async fn add_hub_source(
    hub_js: &jetstream::Context,
    site: &str,
    kind: &str,
) -> anyhow::Result<()> {
    let name = cluster::hub_stream_name(kind);
    let source: stream::Source = serde_json::from_value(cluster::hub_source_config(site, kind)?)
        .context("hub source config")?;
    let mut hub = hub_js
        .get_stream(&name)
        .await
        .with_context(|| format!("hub stream {name} (created by the core aggregator)"))?;
    let mut config = hub.info().await?.config.clone();
    let mut sources = config.sources.take().unwrap_or_default();
    sources.retain(|s| !(s.name == source.name && s.external == source.external));
    sources.push(source);
    config.sources = Some(sources);
    hub_js
        .update_stream(config)
        .await
        .with_context(|| format!("add {site}'s source to hub stream {name}"))?;
    Ok(())
}

/// Puts `value` under `key`, retrying for up to 10 s (right after a bucket is created its
/// R3 stream may still be electing a leader: "no stream found").
pub async fn kv_put(
    kv: &async_nats::jetstream::kv::Store,
    key: &str,
    value: &str,
) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match kv.put(key, value.to_owned().into_bytes().into()).await {
            Ok(revision) => return Ok(revision),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => return Err(err).with_context(|| format!("put {key}")),
        }
    }
}

/// The `Nats-Msg-Id` of a partial batch: `<agent>.<partition>.<seq>`.
pub fn msg_id(agent: &str, partition: u32, seq: u64) -> String {
    format!("{agent}.{partition}.{seq}")
}

/// How a publish went.
#[derive(Debug, Default, Clone, Copy)]
pub struct Published {
    /// Attempts that failed (no ack: timeout, no responders, connection lost) and were retried.
    pub retries: u32,
    /// The stream answered `duplicate`: an earlier attempt had been stored.
    pub duplicate: bool,
    /// Stream sequence of the message.
    pub sequence: u64,
}

/// Publishes until the stream acknowledges it, retrying with the same `Nats-Msg-Id` (the
/// stream deduplicates), every 100 ms, for at most `deadline`.
pub async fn publish_until_acked(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    payload: &[u8],
    deadline: Duration,
) -> anyhow::Result<(Published, jetstream::publish::PublishAck)> {
    let give_up = tokio::time::Instant::now() + deadline;
    let mut published = Published::default();
    loop {
        let attempt = async {
            let ack = js
                .send_publish(
                    subject.to_owned(),
                    PublishMessage::build()
                        .message_id(id)
                        .payload(payload.to_vec().into()),
                )
                .await?;
            anyhow::Ok(ack.await?)
        };
        let error = match attempt.await {
            Ok(ack) => {
                published.duplicate = ack.duplicate;
                published.sequence = ack.sequence;
                return Ok((published, ack));
            }
            Err(err) => err,
        };
        if tokio::time::Instant::now() >= give_up {
            return Err(error.context(format!(
                "publish {id} to {subject}: no ack within {deadline:?} ({} retries)",
                published.retries
            )));
        }
        published.retries += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A message read back from a stream.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Stream sequence.
    pub sequence: u64,
    pub subject: String,
    /// `Nats-Msg-Id`, empty when absent.
    pub msg_id: String,
    pub payload: Vec<u8>,
    /// Every header (first value of each).
    pub headers: HashMap<String, String>,
}

/// Reads every message of `stream` in stream order (an ordered consumer from the start),
/// expecting exactly `expected` of them; fails after `timeout`.
pub async fn read_stream(
    js: &jetstream::Context,
    stream: &str,
    expected: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Stored>> {
    let stream_handle = js.get_stream(stream).await?;
    let consumer = stream_handle
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut out = Vec::with_capacity(expected);
    tokio::time::timeout(timeout, async {
        while out.len() < expected {
            let Some(message) = messages.next().await else {
                bail!("the ordered consumer ended");
            };
            let message = message?;
            let info = message.info().map_err(anyhow::Error::from_boxed)?;
            let mut headers = HashMap::new();
            if let Some(map) = &message.headers {
                for (name, values) in map.iter() {
                    if let Some(value) = values.first() {
                        headers.insert(name.to_string(), value.to_string());
                    }
                }
            }
            out.push(Stored {
                sequence: info.stream_sequence,
                subject: message.subject.to_string(),
                msg_id: headers.get("Nats-Msg-Id").cloned().unwrap_or_default(),
                payload: message.payload.to_vec(),
                headers,
            });
        }
        anyhow::Ok(())
    })
    .await
    .with_context(|| {
        format!(
            "reading {stream}: {} of {expected} messages within {timeout:?}",
            out.len()
        )
    })??;
    Ok(out)
}

/// Messages in `stream` now (from its leader).
pub async fn stream_messages(js: &jetstream::Context, stream: &str) -> anyhow::Result<u64> {
    let mut handle = js.get_stream(stream).await?;
    Ok(handle.info().await?.state.messages)
}

/// Waits until `stream` holds `count` messages; fails after `timeout` with the last count.
pub async fn wait_messages(
    js: &jetstream::Context,
    stream: &str,
    count: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match stream_messages(js, stream).await {
            Ok(n) if n == count => return Ok(()),
            Ok(n) if n > count => {
                bail!("{stream} holds {n} messages, more than the {count} expected")
            }
            Ok(n) => n.to_string(),
            Err(err) => format!("error: {err:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("{stream} did not reach {count} messages within {timeout:?} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
