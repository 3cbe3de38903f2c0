//! An edge site's names (domain, subjects, streams) and the JetStream objects `deploy/edge/up.sh`
//! creates for it, rendered from the same JSON templates as plain JSON (the tests deserialize
//! them into `async_nats::jetstream::stream::Config` / `Source`).

use std::time::Duration;

use anyhow::{bail, Context};

use crate::deploy;

/// `deploy/edge/edge-stream.json`: an edge stream in the site's domain.
const EDGE_STREAM_TEMPLATE: &str = include_str!("../../../deploy/edge/edge-stream.json");
/// `deploy/edge/hub-source.json`: the source entry a hub stream gets for an edge stream.
const HUB_SOURCE_TEMPLATE: &str = include_str!("../../../deploy/edge/hub-source.json");
/// `deploy/edge/config-mirror.json`: the site's read-only mirror of `rtdash_config`.
const CONFIG_MIRROR_TEMPLATE: &str = include_str!("../../../deploy/edge/config-mirror.json");
/// `deploy/edge/keys-mirror.json`: the site's read-only mirror of `rtdash_keys`.
const KEYS_MIRROR_TEMPLATE: &str = include_str!("../../../deploy/edge/keys-mirror.json");

/// Kinds of edge data, each the second subject token of its hub stream (`rtdash.<kind>.*`).
pub const EDGE_KINDS: [&str; 3] = ["partials", "dlq", "events"];

/// Checks an edge site id: 1 to 32 of `[a-z0-9-]`, starting and ending with a letter or
/// digit. It becomes a subject token, part of the JetStream domain `edge-<site>` and of the
/// server name, so it must be unique across the deployment.
pub fn validate_site(site: &str) -> anyhow::Result<()> {
    let ok = !site.is_empty()
        && site.len() <= 32
        && site
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !site.starts_with('-')
        && !site.ends_with('-');
    if ok {
        Ok(())
    } else {
        bail!("edge site id {site:?}: use 1 to 32 of a-z, 0-9 and '-', not starting or ending with '-'")
    }
}

/// The JetStream domain of edge site `site`: `edge-<site>`.
pub fn edge_domain(site: &str) -> String {
    format!("edge-{site}")
}

/// `rtdash.edge.<site>.<kind>.<token>`: where an edge site's agent publishes what a
/// directly connected agent publishes to `rtdash.<kind>.<token>`.
pub fn edge_subject(site: &str, kind: &str, token: &str) -> String {
    format!("rtdash.edge.{site}.{kind}.{token}")
}

/// The edge stream holding `kind` ([`EDGE_KINDS`]) in a site's domain: `RTDASH_EDGE_PARTIALS`...
pub fn edge_stream_name(kind: &str) -> String {
    format!("RTDASH_EDGE_{}", kind.to_ascii_uppercase())
}

/// The hub stream an edge stream of `kind` is sourced into: `RTDASH_PARTIALS`...
pub fn hub_stream_name(kind: &str) -> String {
    format!("RTDASH_{}", kind.to_ascii_uppercase())
}

/// Retention of an edge stream: the edge buffer.
#[derive(Clone, Copy, Debug)]
pub struct EdgeBuffer {
    /// Messages older than this are removed (sourced or not): the longest outage survived.
    pub max_age: Duration,
    /// Cap in bytes; past it the oldest messages are removed (sourced or not).
    pub max_bytes: i64,
    /// Window in which the edge stream drops a repeated `Nats-Msg-Id` (agent retries).
    pub duplicate_window: Duration,
}

impl Default for EdgeBuffer {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(24 * 3600),
            max_bytes: 1 << 30,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl EdgeBuffer {
    /// Edge streams small enough for a test machine (JetStream reserves `max_bytes` of the
    /// site's store for each): 64 MiB, the default age and duplicate window.
    pub fn small() -> Self {
        Self {
            max_bytes: 64 << 20,
            ..Self::default()
        }
    }
}

/// The JetStream stream config (API JSON) of the edge stream of `kind` at `site`, rendered
/// from `deploy/edge/edge-stream.json`. `partitions` is recorded in its metadata
/// (`rtdash.partitions`) for the edge-agent.
pub fn edge_stream_config(
    site: &str,
    kind: &str,
    buffer: EdgeBuffer,
    partitions: u32,
) -> anyhow::Result<serde_json::Value> {
    validate_site(site)?;
    check_kind(kind)?;
    let text = deploy::render(
        EDGE_STREAM_TEMPLATE,
        &[
            ("STREAM", &edge_stream_name(kind)),
            ("SITE", site),
            ("KIND", kind),
            ("MAX_AGE_NS", &buffer.max_age.as_nanos().to_string()),
            ("MAX_BYTES", &buffer.max_bytes.to_string()),
            (
                "DUPLICATE_WINDOW_NS",
                &buffer.duplicate_window.as_nanos().to_string(),
            ),
            ("PARTITIONS", &partitions.to_string()),
        ],
    )?;
    serde_json::from_str(&text).context("deploy/edge/edge-stream.json")
}

/// The source entry (API JSON) that hub stream [`hub_stream_name`]`(kind)` gets for the edge
/// stream of `kind` at `site`, rendered from `deploy/edge/hub-source.json`: read through
/// `$JS.edge-<site>.API`, subjects transformed `rtdash.edge.<site>.<kind>.*` ->
/// `rtdash.<kind>.{{wildcard(1)}}`.
pub fn hub_source_config(site: &str, kind: &str) -> anyhow::Result<serde_json::Value> {
    validate_site(site)?;
    check_kind(kind)?;
    let text = deploy::render(
        HUB_SOURCE_TEMPLATE,
        &[
            ("STREAM", &edge_stream_name(kind)),
            ("DOMAIN", &edge_domain(site)),
            ("SITE", site),
            ("KIND", kind),
        ],
    )?;
    serde_json::from_str(&text).context("deploy/edge/hub-source.json")
}

/// The stream config (API JSON) of the site's read-only mirror of the hub's `rtdash_config`
/// bucket (`KV_rtdash_config` in the site's domain), rendered from
/// `deploy/edge/config-mirror.json`: the edge-agent reads metric definitions from it even
/// while the link is down.
pub fn config_mirror_config(site: &str) -> anyhow::Result<serde_json::Value> {
    validate_site(site)?;
    let text = deploy::render(CONFIG_MIRROR_TEMPLATE, &[("SITE", site)])?;
    serde_json::from_str(&text).context("deploy/edge/config-mirror.json")
}

/// The stream config (API JSON) of the site's read-only mirror of the hub's `rtdash_keys`
/// bucket, rendered from `deploy/edge/keys-mirror.json`: the edge-agent verifies ingest keys
/// from it even while the link is down.
pub fn keys_mirror_config(site: &str) -> anyhow::Result<serde_json::Value> {
    validate_site(site)?;
    let text = deploy::render(KEYS_MIRROR_TEMPLATE, &[("SITE", site)])?;
    serde_json::from_str(&text).context("deploy/edge/keys-mirror.json")
}

fn check_kind(kind: &str) -> anyhow::Result<()> {
    if EDGE_KINDS.contains(&kind) {
        Ok(())
    } else {
        bail!("edge data kind {kind:?}: one of {EDGE_KINDS:?}")
    }
}
