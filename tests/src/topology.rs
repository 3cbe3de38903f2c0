//! rtdash's JetStream topology as the tests set it up: the hub's streams and buckets exactly
//! as the core aggregator creates them, and an edge site's objects as `deploy/edge/up.sh`
//! creates them (with async-nats, from the same templates: [`crate::cluster`]).

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, stream};
use rtdash_runtime::nats::{Ensure, StreamsConfig};

use crate::cluster::{self, EdgeBuffer, NatsCluster, EDGE_KINDS};
use crate::jetstream::{connect_as, jetstream};

/// Partition count of the topology the tests create.
pub const PARTITIONS: u32 = 8;

/// The streams config the tests use: `replicas` per stream, [`PARTITIONS`] partitions.
pub fn streams_config(replicas: usize) -> StreamsConfig {
    StreamsConfig {
        partitions: PARTITIONS,
        replicas,
        ..StreamsConfig::default()
    }
}

/// Starts a 3-node hub cluster and creates rtdash's R3 topology on it through a client named
/// `name` (5 s API timeout); returns the cluster and that client's JetStream context.
pub async fn start_hub(name: &str) -> anyhow::Result<(NatsCluster, jetstream::Context)> {
    let cluster = tokio::task::block_in_place(NatsCluster::start)?;
    let js = jetstream(
        connect_as(&cluster.urls(), name, &cluster.operator()).await?,
        Duration::from_secs(5),
    );
    ensure_hub_topology(&js, 3).await?;
    Ok((cluster, js))
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
/// connected to the leaf node) the edge streams (LIMITS retention) and the read-only mirrors
/// of the config and keys buckets; on the hub (`hub_js`) one source per edge stream, added to the hub
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
    let keys: stream::Config =
        serde_json::from_value(cluster::keys_mirror_config(site)?).context("keys mirror")?;
    edge_js
        .create_or_update_stream(keys)
        .await
        .with_context(|| format!("keys mirror at {site}"))?;
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
