//! A real NATS JetStream cluster and leaf-node edge sites, for the distributed-path tests.
//!
//! - [`NatsCluster::start`]: three `nats-server`s forming one JetStream cluster (domain
//!   [`HUB_DOMAIN`]) on free loopback ports, each with its own store in a temporary directory,
//!   configs rendered from `deploy/cluster/node.conf`. A node can be killed (`SIGKILL`),
//!   stopped and restarted on the same ports and store.
//! - [`EdgeSite::start`]: an edge site's `nats-server`, a leaf node with its own JetStream
//!   domain (`edge-<site>`), config rendered from `deploy/edge/leaf.conf`, connected to every
//!   hub node's leafnode port. [`EdgeSite::cut_link`] and [`EdgeSite::restore_link`] take the
//!   link down and up deterministically while both sides keep running: the leaf's remote is
//!   re-rendered with `disabled: true` / `false` and the server reloads its config (`SIGHUP`;
//!   nats-server closes a disabled remote's connection and does not redial it; the same
//!   mechanism as `deploy/edge/link.sh`). A TCP proxy would not do: the hub tells a connected
//!   leaf its own leafnode address, which the leaf then dials directly.
//! - The JetStream objects of an edge site, rendered from the same JSON templates
//!   `deploy/edge/up.sh` uses: [`edge_stream_config`], [`hub_source_config`],
//!   [`config_mirror_config`] (plain JSON: the harness does not depend on async-nats; the
//!   tests deserialize them into `async_nats::jetstream::stream::Config` / `Source`).
//!
//! Cleanup guarantees are those of [`crate::NatsServer`]: every server is a
//! [`ServiceProcess`] (own process group, `SIGKILL` on drop and when the test process dies),
//! and the directories are removed on drop.
//!
//! Subject scheme of an edge site `<site>` (`[a-z0-9-]`, see [`validate_site`]):
//!
//! | at the edge (domain `edge-<site>`) | stream there | sourced into (hub) |
//! |---|---|---|
//! | `rtdash.edge.<site>.partials.<p>` | `RTDASH_EDGE_PARTIALS` | `RTDASH_PARTIALS` as `rtdash.partials.<p>` |
//! | `rtdash.edge.<site>.dlq.<tenant>` | `RTDASH_EDGE_DLQ` | `RTDASH_DLQ` as `rtdash.dlq.<tenant>` |
//! | `rtdash.edge.<site>.events.<tenant>` | `RTDASH_EDGE_EVENTS` | `RTDASH_EVENTS` as `rtdash.events.<tenant>` |

use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;

use crate::deploy;
use crate::http;
use crate::process::{is_port_conflict, ServiceProcess};

/// `deploy/cluster/node.conf`: one node of the hub cluster.
const NODE_CONF_TEMPLATE: &str = include_str!("../../deploy/cluster/node.conf");
/// `deploy/edge/leaf.conf`: an edge site's leaf node.
const LEAF_CONF_TEMPLATE: &str = include_str!("../../deploy/edge/leaf.conf");
/// `deploy/edge/edge-stream.json`: an edge stream in the site's domain.
const EDGE_STREAM_TEMPLATE: &str = include_str!("../../deploy/edge/edge-stream.json");
/// `deploy/edge/hub-source.json`: the source entry a hub stream gets for an edge stream.
const HUB_SOURCE_TEMPLATE: &str = include_str!("../../deploy/edge/hub-source.json");
/// `deploy/edge/config-mirror.json`: the site's read-only mirror of `rtdash_config`.
const CONFIG_MIRROR_TEMPLATE: &str = include_str!("../../deploy/edge/config-mirror.json");

/// The hub cluster's JetStream domain (set in `deploy/cluster/node.conf`).
pub const HUB_DOMAIN: &str = "hub";
/// Kinds of edge data, each the second subject token of its hub stream (`rtdash.<kind>.*`).
pub const EDGE_KINDS: [&str; 3] = ["partials", "dlq", "events"];

/// How long a (re)start may take before it counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop waits after `SIGTERM` before `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Attempts at a first start when a picked port turns out to be taken.
const PORT_ATTEMPTS: usize = 3;
/// How long [`EdgeSite::cut_link`] and [`EdgeSite::restore_link`] wait for the link state.
const LINK_TIMEOUT: Duration = Duration::from_secs(20);

/// Settings of a [`NatsCluster`].
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of nodes: 3 (R3 streams) or 5.
    pub nodes: usize,
    /// JetStream `sync_interval` of every node: a duration (`2m`, the nats-server default)
    /// or `always`.
    pub sync_interval: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            sync_interval: "2m".to_owned(),
        }
    }
}

/// One node of a [`NatsCluster`].
#[derive(Debug)]
struct ClusterNode {
    /// `server_name`: `n1`, `n2`, ...
    name: String,
    port: u16,
    cluster_port: u16,
    monitor_port: u16,
    leaf_port: u16,
    /// `<cluster dir>/<name>`: `nats.conf`, `nats.log`, `store/`.
    dir: PathBuf,
    /// `None` while stopped.
    process: Option<ServiceProcess>,
}

impl ClusterNode {
    fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nats.log")
    }

    /// Starts the server; with `wait`, waits until `/healthz` answers ok (JetStream meta
    /// leader known, this node's streams and consumers current).
    fn launch(&mut self, wait: bool) -> anyhow::Result<()> {
        let mut command = Command::new(deploy::nats_server()?);
        command.arg("-c").arg(self.dir.join("nats.conf"));
        let name = format!("nats-server {}", self.name);
        let mut process = ServiceProcess::spawn(&name, command, &self.log_path())?;
        if wait {
            let health = format!("{}/healthz", self.monitor_url());
            process.wait_ready(READY_TIMEOUT, || http::is_ok(&health))?;
        }
        self.process = Some(process);
        Ok(())
    }
}

/// A JetStream cluster of real `nats-server`s on loopback (domain [`HUB_DOMAIN`]), each node
/// with client, route, monitoring and leafnode ports. Killed on drop; directories removed.
#[derive(Debug)]
pub struct NatsCluster {
    /// Declared first: dropped (killed) before the directory is removed.
    nodes: Vec<ClusterNode>,
    /// Holds every node's directory.
    dir: TempDir,
}

impl NatsCluster {
    /// Starts a 3-node cluster with `sync_interval` 2m and waits until every node is healthy.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(ClusterOptions::default())
    }

    /// Starts a cluster with `options` and waits until every node is healthy.
    pub fn start_with(options: ClusterOptions) -> anyhow::Result<Self> {
        if !matches!(options.nodes, 3 | 5) {
            bail!(
                "a cluster has 3 or 5 nodes, not {} (JetStream needs a majority)",
                options.nodes
            );
        }
        let mut attempt = 1;
        loop {
            let dir = tempfile::Builder::new()
                .prefix("rtdash-cluster-")
                .tempdir()?;
            let mut cluster = Self::render(dir, &options)?;
            match cluster.launch_all() {
                Ok(()) => return Ok(cluster),
                Err(err) if attempt < PORT_ATTEMPTS && is_port_conflict(&format!("{err:#}")) => {
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Picks ports and writes every node's `nats.conf`.
    fn render(dir: TempDir, options: &ClusterOptions) -> anyhow::Result<Self> {
        let ports = free_port_list(options.nodes * 4)?;
        let mut nodes: Vec<ClusterNode> = (0..options.nodes)
            .map(|i| ClusterNode {
                name: format!("n{}", i + 1),
                port: ports[i * 4],
                cluster_port: ports[i * 4 + 1],
                monitor_port: ports[i * 4 + 2],
                leaf_port: ports[i * 4 + 3],
                dir: dir.path().join(format!("n{}", i + 1)),
                process: None,
            })
            .collect();
        let routes = nodes
            .iter()
            .map(|node| format!("\"nats-route://127.0.0.1:{}\"", node.cluster_port))
            .collect::<Vec<_>>()
            .join(", ");
        for node in &mut nodes {
            std::fs::create_dir_all(node.dir.join("store"))?;
            let conf = deploy::render(
                NODE_CONF_TEMPLATE,
                &[
                    ("NAME", &node.name),
                    ("PORT", &node.port.to_string()),
                    ("CLUSTER_PORT", &node.cluster_port.to_string()),
                    ("MONITOR_PORT", &node.monitor_port.to_string()),
                    ("LEAF_PORT", &node.leaf_port.to_string()),
                    ("ROUTES", &routes),
                    ("STORE_DIR", &node.dir.join("store").display().to_string()),
                    ("SYNC_INTERVAL", &options.sync_interval),
                ],
            )?;
            std::fs::write(node.dir.join("nats.conf"), conf)?;
        }
        Ok(Self { nodes, dir })
    }

    /// Starts every node (they need each other for a meta leader), then waits for all.
    fn launch_all(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.launch(false)?;
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        for node in &mut self.nodes {
            let health = format!("{}/healthz", node.monitor_url());
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(process) = node.process.as_mut() {
                process.wait_ready(left, || http::is_ok(&health))?;
            }
        }
        Ok(())
    }

    /// The directory holding every node's `nats.conf`, `nats.log` and `store/` (`<dir>/n1`...).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes' names (`server_name`): `n1`, `n2`, `n3`.
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.name.clone()).collect()
    }

    /// Index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// Every node's client URL, `nats://127.0.0.1:<port>`.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.node_url(i)).collect()
    }

    /// The client URLs comma-separated, as in `RTDASH_NATS__URL`.
    pub fn url(&self) -> String {
        self.urls().join(",")
    }

    /// Client URL of node `i`.
    pub fn node_url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    /// Monitoring URL of node `i`: `/healthz`, `/jsz`, `/routez`, `/leafz`.
    pub fn monitor_url(&self, i: usize) -> String {
        self.nodes[i].monitor_url()
    }

    /// Every node's leafnode URL, `nats-leaf://127.0.0.1:<port>`, for edge sites.
    pub fn leaf_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("nats-leaf://127.0.0.1:{}", node.leaf_port))
            .collect()
    }

    /// Node `i`'s log (appended to across restarts).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.nodes[i].log_path()
    }

    /// Node `i`'s JetStream store directory (kept across restarts).
    pub fn store_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("store")
    }

    /// True while node `i`'s process runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .process
            .as_mut()
            .is_some_and(|p| p.try_exit().is_none())
    }

    /// Crash stop of node `i` (`SIGKILL`); ports and store are kept for [`restart`](Self::restart).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.nodes[i].process.take() {
            process.kill();
        }
    }

    /// Graceful stop of node `i` (`SIGTERM`, `SIGKILL` after 10 s).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut process) = self.nodes[i].process.take() {
            process.terminate(STOP_GRACE);
        }
    }

    /// Starts node `i` again on its ports and store (stopping it first if it runs) and waits
    /// until it is healthy: back in the cluster, its streams and consumers caught up.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.stop(i);
        let node = &mut self.nodes[i];
        node.launch(true)
            .with_context(|| format!("restart cluster node {}", node.name))
    }

    /// Waits until every running node's `/healthz` answers ok.
    pub fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.is_running(i))
            .collect();
        let urls: Vec<String> = running
            .into_iter()
            .map(|i| format!("{}/healthz", self.monitor_url(i)))
            .collect();
        crate::eventually(timeout, "every running cluster node healthy", || {
            Ok(urls.iter().all(|url| http::is_ok(url)).then_some(()))
        })
    }

    /// `/jsz` of the first running node, with `query` appended (e.g. `accounts=true&streams=true`).
    pub fn jsz(&mut self, query: &str) -> anyhow::Result<serde_json::Value> {
        let i = (0..self.nodes.len())
            .find(|&i| self.is_running(i))
            .ok_or_else(|| anyhow!("no cluster node is running"))?;
        get_json(&format!("{}/jsz?{query}", self.monitor_url(i)))
    }

    /// The JetStream meta leader's node index, when one is known.
    pub fn meta_leader(&mut self) -> anyhow::Result<Option<usize>> {
        let jsz = self.jsz("")?;
        Ok(jsz["meta_cluster"]["leader"]
            .as_str()
            .and_then(|name| self.index_of(name)))
    }

    /// The node index leading `stream` (the node that orders and acknowledges its
    /// publishes), when the stream exists and has a leader.
    pub fn stream_leader(&mut self, stream: &str) -> anyhow::Result<Option<usize>> {
        let jsz = self.jsz("accounts=true&streams=true")?;
        let leader = streams_in(&jsz)
            .find(|detail| detail["name"] == stream)
            .and_then(|detail| detail["cluster"]["leader"].as_str().map(str::to_owned));
        Ok(leader.and_then(|name| self.index_of(&name)))
    }

    /// Messages of `stream` in node `i`'s own replica (`None` when the node has no replica or
    /// does not answer): shows whether a restarted node caught up.
    pub fn replica_messages(&self, i: usize, stream: &str) -> anyhow::Result<Option<u64>> {
        let jsz = get_json(&format!(
            "{}/jsz?accounts=true&streams=true",
            self.monitor_url(i)
        ))?;
        let messages = streams_in(&jsz)
            .find(|detail| detail["name"] == stream)
            .and_then(|detail| detail["state"]["messages"].as_u64());
        Ok(messages)
    }
}

/// Stream details of every account in a `/jsz?accounts=true&streams=true` answer.
fn streams_in(jsz: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
}

/// Settings of an [`EdgeSite`].
#[derive(Clone, Debug)]
pub struct EdgeOptions {
    /// JetStream `sync_interval` of the leaf node.
    pub sync_interval: String,
    /// JetStream `max_file_store` of the leaf node: the hard cap on the site's store. JetStream
    /// reserves each edge stream's `max_bytes` against it, so it must exceed their sum
    /// (three [`EdgeBuffer`]s and the config mirror). Default `4G`.
    pub max_file_store: String,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        Self {
            sync_interval: "2m".to_owned(),
            max_file_store: "4G".to_owned(),
        }
    }
}

/// An edge site: a leaf-node `nats-server` with JetStream domain `edge-<site>`, connected to
/// the hub's leafnode URLs. Killed on drop; directory removed.
#[derive(Debug)]
pub struct EdgeSite {
    /// `None` while stopped. Declared first: killed before the directory is removed.
    process: Option<ServiceProcess>,
    /// `nats.conf`, `nats.log`, `store/`.
    dir: TempDir,
    site: String,
    port: u16,
    monitor_port: u16,
    /// The template values except `LINK_DISABLED`, to re-render the config.
    values: Vec<(&'static str, String)>,
    /// True while the link is cut.
    cut: bool,
}

impl EdgeSite {
    /// Starts site `site` connected to `hub_leaf_urls` ([`NatsCluster::leaf_urls`]) and waits
    /// until JetStream is ready and the link to the hub is up.
    pub fn start(site: &str, hub_leaf_urls: &[String]) -> anyhow::Result<Self> {
        Self::start_with(site, hub_leaf_urls, EdgeOptions::default())
    }

    /// [`start`](Self::start) with `options`.
    pub fn start_with(
        site: &str,
        hub_leaf_urls: &[String],
        options: EdgeOptions,
    ) -> anyhow::Result<Self> {
        validate_site(site)?;
        if hub_leaf_urls.is_empty() {
            bail!("edge site {site}: no hub leafnode URL given");
        }
        let hub_urls = hub_leaf_urls
            .iter()
            .map(|url| format!("\"{url}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut dir = tempfile::Builder::new()
            .prefix(&format!("rtdash-edge-{site}-"))
            .tempdir()?;
        let mut attempt = 1;
        loop {
            let [port, monitor_port] = crate::ports::free_ports()?;
            let values = vec![
                ("NAME", edge_domain(site)),
                ("DOMAIN", edge_domain(site)),
                ("PORT", port.to_string()),
                ("MONITOR_PORT", monitor_port.to_string()),
                ("STORE_DIR", dir.path().join("store").display().to_string()),
                ("MAX_FILE_STORE", options.max_file_store.clone()),
                ("SYNC_INTERVAL", options.sync_interval.clone()),
                ("HUB_URLS", hub_urls.clone()),
            ];
            let mut edge = Self {
                process: None,
                dir,
                site: site.to_owned(),
                port,
                monitor_port,
                values,
                cut: false,
            };
            edge.write_config()?;
            match edge.launch() {
                Ok(()) => {
                    edge.wait_link(true, READY_TIMEOUT)?;
                    return Ok(edge);
                }
                Err(err) if attempt < PORT_ATTEMPTS && is_port_conflict(&format!("{err:#}")) => {
                    attempt += 1;
                    dir = std::mem::replace(&mut edge.dir, tempfile::tempdir()?);
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Renders `deploy/edge/leaf.conf` into `<dir>/nats.conf` with the link state.
    fn write_config(&self) -> anyhow::Result<()> {
        let disabled = if self.cut { "true" } else { "false" };
        let mut values: Vec<(&str, &str)> = self
            .values
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .collect();
        values.push(("LINK_DISABLED", disabled));
        let conf = deploy::render(LEAF_CONF_TEMPLATE, &values)?;
        std::fs::write(self.dir.path().join("nats.conf"), conf)?;
        Ok(())
    }

    /// The site id.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// The site's JetStream domain, `edge-<site>`.
    pub fn domain(&self) -> String {
        edge_domain(&self.site)
    }

    /// `nats://127.0.0.1:<port>`: where the site's edge-agent connects.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<monitor port>`: `/healthz`, `/jsz`, `/leafz`.
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// The leaf node's log (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// The site's JetStream store (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// `rtdash.edge.<site>.partials.<partition>`.
    pub fn partials_subject(&self, partition: u32) -> String {
        edge_subject(&self.site, "partials", &partition.to_string())
    }

    /// Number of leafnode connections the leaf node reports (0 while the link is down).
    pub fn link_count(&self) -> anyhow::Result<u64> {
        let leafz = get_json(&format!("{}/leafz", self.monitor_url()))?;
        Ok(leafz["leafnodes"].as_u64().unwrap_or(0))
    }

    /// True while the leaf node has a connection to the hub.
    pub fn is_linked(&self) -> bool {
        self.link_count().is_ok_and(|n| n > 0)
    }

    /// Takes the link to the hub down (the leaf's remote disabled, config reloaded) and waits
    /// until the leaf node reports no hub connection. Both servers keep running; the site's
    /// clients stay connected to it.
    pub fn cut_link(&mut self) -> anyhow::Result<()> {
        self.set_link(false)
    }

    /// Brings the link back (remote enabled, config reloaded) and waits until the leaf node
    /// has reconnected.
    pub fn restore_link(&mut self) -> anyhow::Result<()> {
        self.set_link(true)
    }

    fn set_link(&mut self, up: bool) -> anyhow::Result<()> {
        self.cut = !up;
        self.write_config()?;
        let process = self
            .process
            .as_ref()
            .with_context(|| format!("edge site {} is not running", self.site))?;
        process.signal_group(libc::SIGHUP);
        self.wait_link(up, LINK_TIMEOUT)
    }

    /// True while the link is cut by [`cut_link`](Self::cut_link).
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    fn wait_link(&self, up: bool, timeout: Duration) -> anyhow::Result<()> {
        let what = if up {
            "edge leaf node connected to the hub"
        } else {
            "edge leaf node disconnected from the hub"
        };
        crate::eventually(timeout, what, || {
            Ok(((self.link_count()? > 0) == up).then_some(()))
        })
        .with_context(|| format!("leaf node log: {}", self.log_path().display()))
    }

    /// True while the leaf node's process runs.
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.try_exit().is_none())
    }

    /// Crash stop of the leaf node (`SIGKILL`); port and store are kept.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Graceful stop of the leaf node (`SIGTERM`, `SIGKILL` after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate(STOP_GRACE);
        }
    }

    /// Starts the leaf node again on its port and store and waits until JetStream is ready
    /// (and, unless the link is cut, until it reached the hub).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch()
            .with_context(|| format!("restart edge site {}", self.site))?;
        if !self.cut {
            self.wait_link(true, READY_TIMEOUT)?;
        }
        Ok(())
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(deploy::nats_server()?);
        command.arg("-c").arg(self.dir.path().join("nats.conf"));
        let name = format!("nats-server {}", edge_domain(&self.site));
        let mut process = ServiceProcess::spawn(&name, command, &self.log_path())?;
        let health = format!("{}/healthz?js-enabled-only=true", self.monitor_url());
        process.wait_ready(READY_TIMEOUT, || http::is_ok(&health))?;
        self.process = Some(process);
        Ok(())
    }
}

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

fn check_kind(kind: &str) -> anyhow::Result<()> {
    if EDGE_KINDS.contains(&kind) {
        Ok(())
    } else {
        bail!("edge data kind {kind:?}: one of {EDGE_KINDS:?}")
    }
}

fn get_json(url: &str) -> anyhow::Result<serde_json::Value> {
    let mut response = http::agent()
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        bail!("GET {url}: {}", response.status());
    }
    response
        .body_mut()
        .read_json()
        .with_context(|| format!("GET {url}: not JSON"))
}

/// `n` distinct free loopback ports (all held open together while they are picked).
fn free_port_list(n: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|addr| addr.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render() {
        let json = edge_stream_config("s1", "partials", EdgeBuffer::default(), 8).unwrap();
        assert_eq!(json["name"], "RTDASH_EDGE_PARTIALS");
        assert_eq!(json["subjects"][0], "rtdash.edge.s1.partials.*");
        assert_eq!(json["retention"], "limits");
        assert_eq!(json["metadata"]["rtdash.partitions"], "8");
        let source = hub_source_config("s1", "dlq").unwrap();
        assert_eq!(source["name"], "RTDASH_EDGE_DLQ");
        assert_eq!(source["external"]["api"], "$JS.edge-s1.API");
        assert_eq!(
            source["subject_transforms"][0]["src"],
            "rtdash.edge.s1.dlq.*"
        );
        assert_eq!(
            source["subject_transforms"][0]["dest"],
            "rtdash.dlq.{{wildcard(1)}}"
        );
        let mirror = config_mirror_config("s1").unwrap();
        assert_eq!(mirror["mirror"]["external"]["api"], "$JS.hub.API");
        assert!(edge_stream_config("s1", "live", EdgeBuffer::default(), 8).is_err());
    }

    #[test]
    fn server_templates_render_with_the_harness_keys() {
        let node = deploy::render(
            NODE_CONF_TEMPLATE,
            &[
                ("NAME", "n1"),
                ("PORT", "1"),
                ("CLUSTER_PORT", "2"),
                ("MONITOR_PORT", "3"),
                ("LEAF_PORT", "4"),
                ("ROUTES", "\"nats-route://127.0.0.1:2\""),
                ("STORE_DIR", "/s"),
                ("SYNC_INTERVAL", "2m"),
            ],
        )
        .unwrap();
        // Quoted: unquoted, nats-server reads `2m` as the number 2,000,000 (seconds).
        assert!(node.contains("sync_interval: \"2m\""), "{node}");
        assert!(node.contains("domain: hub"), "{node}");
        let leaf = deploy::render(
            LEAF_CONF_TEMPLATE,
            &[
                ("NAME", "edge-s1"),
                ("DOMAIN", "edge-s1"),
                ("PORT", "1"),
                ("MONITOR_PORT", "2"),
                ("STORE_DIR", "/s"),
                ("MAX_FILE_STORE", "1G"),
                ("SYNC_INTERVAL", "always"),
                ("HUB_URLS", "\"nats-leaf://127.0.0.1:3\""),
                ("LINK_DISABLED", "false"),
            ],
        )
        .unwrap();
        assert!(leaf.contains("disabled: false"), "{leaf}");
    }

    #[test]
    fn site_ids() {
        for ok in ["s1", "eu-west-1", "a"] {
            validate_site(ok).unwrap();
        }
        for bad in ["", "S1", "a.b", "a_b", "-a", "a-", "a b", &"x".repeat(33)] {
            assert!(validate_site(bad).is_err(), "{bad:?}");
        }
    }
}
