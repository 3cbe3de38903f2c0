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
//! Locked down as deployed ([`secrets`]): TLS on client, route and leafnode ports, the users
//! and permissions of `deploy/nats/users.conf` (no anonymous client), routes authenticated as
//! `route`, each edge site as its `leaf-<site>`. Clients connect with [`NatsCluster::credentials`] /
//! [`EdgeSite::credentials`] (user, password, CA).
//!
//! Cleanup guarantees are those of [`crate::NatsServer`]: every server is a
//! [`Supervised`] process (own process group, `SIGKILL` on drop and when the test process
//! dies), and the directories are removed on drop.
//!
//! Files: this one holds the hub cluster; `cluster/edge_site.rs` the leaf node and its link;
//! `cluster/edge_objects.rs` the site's names and JetStream object templates;
//! `cluster/secrets.rs` the users, passwords and certificates.
//!
//! Subject scheme of an edge site `<site>` (`[a-z0-9-]`, see [`validate_site`]):
//!
//! | at the edge (domain `edge-<site>`) | stream there | sourced into (hub) |
//! |---|---|---|
//! | `rtdash.edge.<site>.partials.<p>` | `RTDASH_EDGE_PARTIALS` | `RTDASH_PARTIALS` as `rtdash.partials.<p>` |
//! | `rtdash.edge.<site>.dlq.<tenant>` | `RTDASH_EDGE_DLQ` | `RTDASH_DLQ` as `rtdash.dlq.<tenant>` |
//! | `rtdash.edge.<site>.events.<tenant>` | `RTDASH_EDGE_EVENTS` | `RTDASH_EVENTS` as `rtdash.events.<tenant>` |

mod edge_objects;
mod edge_site;
mod secrets;

pub use edge_objects::{
    config_mirror_config, edge_domain, edge_stream_config, edge_stream_name, edge_subject,
    hub_source_config, hub_stream_name, keys_mirror_config, validate_site, EdgeBuffer, EDGE_KINDS,
};
pub use edge_site::{EdgeOptions, EdgeSite};
pub use secrets::{make_tls, tls_options, ClusterSecrets, Credentials};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;

use crate::deploy;
use crate::http::{self, get_json};
use crate::nats::{monitor_url, monitoring_line, nats_launch};
use crate::ports::{free_port_list, retry_port_conflicts};
use crate::supervised::Supervised;

/// `deploy/cluster/node.conf`: one node of the hub cluster.
const NODE_CONF_TEMPLATE: &str = include_str!("../../deploy/cluster/node.conf");

/// The hub cluster's JetStream domain (set in `deploy/cluster/node.conf`).
pub const HUB_DOMAIN: &str = "hub";

/// How long a (re)start may take before it counts as failed: the meta leader election of a
/// fresh cluster may take tens of seconds on a loaded two-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop waits after `SIGTERM` before `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(10);

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

/// The four loopback ports of a cluster node.
#[derive(Clone, Copy, Debug)]
struct NodePorts {
    client: u16,
    cluster: u16,
    monitor: u16,
    leaf: u16,
}

/// One node of a [`NatsCluster`].
#[derive(Debug)]
struct ClusterNode {
    /// `server_name`: `n1`, `n2`, ...
    name: String,
    ports: NodePorts,
    /// `<cluster dir>/<name>`: `nats.conf`, `nats.log`, `store/`.
    dir: PathBuf,
    server: Supervised,
}

/// A JetStream cluster of real `nats-server`s on loopback (domain [`HUB_DOMAIN`]), each node
/// with client, route, monitoring and leafnode ports. Killed on drop; directories removed.
#[derive(Debug)]
pub struct NatsCluster {
    /// Declared first: dropped (killed) before the directory is removed.
    nodes: Vec<ClusterNode>,
    /// Users, passwords, certificates (under `<dir>/secrets`).
    secrets: ClusterSecrets,
    /// Holds every node's directory.
    dir: TempDir,
}

impl NatsCluster {
    /// Starts a 3-node cluster with `sync_interval` 2m and waits until every node is healthy.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(ClusterOptions::default())
    }

    /// Starts a cluster with `options` and waits until every node is healthy. A start that
    /// fails on a taken port is retried from scratch (new directory, new ports).
    pub fn start_with(options: ClusterOptions) -> anyhow::Result<Self> {
        if !matches!(options.nodes, 3 | 5) {
            bail!(
                "a cluster has 3 or 5 nodes, not {} (JetStream needs a majority)",
                options.nodes
            );
        }
        retry_port_conflicts(|| {
            let dir = tempfile::Builder::new()
                .prefix("rtdash-cluster-")
                .tempdir()?;
            let secrets = ClusterSecrets::generate(dir.path())?;
            let nodes = launch_nodes(dir.path(), &options, &secrets)?;
            Ok(Self {
                nodes,
                secrets,
                dir,
            })
        })
    }

    /// The directory holding every node's `nats.conf`, `nats.log` and `store/` (`<dir>/n1`...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The users, passwords and certificates.
    pub fn secrets(&self) -> &ClusterSecrets {
        &self.secrets
    }

    /// The credentials of NATS user `user` (`core-aggregator`, `gateway`, `edge-agent`,
    /// `operator`).
    pub fn credentials(&self, user: &str) -> Credentials {
        self.secrets.credentials(user)
    }

    /// Edge site `site`'s leaf user, `leaf-<site>` (`deploy/nats/leaf-user.conf`): added at
    /// its first request, as `deploy/edge/up.sh` does, with the running nodes reloading their
    /// users (`SIGHUP`; a leaf node dialing meanwhile is refused and redials).
    pub fn leaf_user(&self, site: &str) -> anyhow::Result<Credentials> {
        if self.secrets.add_leaf_user(site)? {
            for node in self
                .nodes
                .iter()
                .filter(|node| node.server.process().is_some())
            {
                node.server
                    .signal(libc::SIGHUP)
                    .with_context(|| format!("reload {}", node.name))?;
            }
        }
        self.secrets
            .leaf_credentials(site)
            .with_context(|| format!("no leaf user for site {site}"))
    }

    /// The `operator` user's: every subject (tests, tools).
    pub fn operator(&self) -> Credentials {
        self.credentials("operator")
    }

    /// `RTDASH_NATS__URL` (every node) and `user`'s credentials, for a service's environment.
    pub fn service_env(&self, user: &str) -> Vec<(String, String)> {
        let mut env = vec![("RTDASH_NATS__URL".to_owned(), self.url())];
        env.extend(self.credentials(user).env());
        env
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
        format!("nats://127.0.0.1:{}", self.nodes[i].ports.client)
    }

    /// Monitoring URL of node `i`: `/healthz`, `/jsz`, `/routez`, `/leafz`.
    pub fn monitor_url(&self, i: usize) -> String {
        monitor_url(self.nodes[i].ports.monitor)
    }

    /// Every node's leafnode URL, `nats-leaf://127.0.0.1:<port>`, for edge sites.
    pub fn leaf_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("nats-leaf://127.0.0.1:{}", node.ports.leaf))
            .collect()
    }

    /// Node `i`'s log (appended to across restarts).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.nodes[i].server.log_path().to_owned()
    }

    /// Node `i`'s JetStream store directory (kept across restarts).
    pub fn store_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("store")
    }

    /// True while node `i`'s process runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].server.is_running()
    }

    /// Crash stop of node `i` (`SIGKILL`); ports and store are kept for [`restart`](Self::restart).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].server.kill();
    }

    /// Node `i`'s process id, `None` while stopped.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].server.process().map(|p| p.id())
    }

    /// Sends `signal` to node `i`'s process (`SIGSTOP`/`SIGCONT`: a pause).
    pub fn signal(&self, i: usize, signal: libc::c_int) -> anyhow::Result<()> {
        self.nodes[i].server.signal(signal)
    }

    /// Graceful stop of node `i` (`SIGTERM`, `SIGKILL` after 10 s).
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].server.stop();
    }

    /// Starts node `i` again on its ports and store (stopping it first if it runs) and waits
    /// until it is healthy: back in the cluster, its streams and consumers caught up.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        node.server
            .restart()
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

/// Picks ports, writes every node's `nats.conf` under `dir`, starts every node (they need
/// each other for a meta leader), then waits until all are healthy.
fn launch_nodes(
    dir: &Path,
    options: &ClusterOptions,
    secrets: &ClusterSecrets,
) -> anyhow::Result<Vec<ClusterNode>> {
    let ports: Vec<NodePorts> = free_port_list(options.nodes * 4)?
        .chunks(4)
        .map(|p| NodePorts {
            client: p[0],
            cluster: p[1],
            monitor: p[2],
            leaf: p[3],
        })
        .collect();
    let routes = ports
        .iter()
        .map(|p| {
            format!(
                "\"nats-route://route:{}@127.0.0.1:{}\"",
                secrets.route_password(),
                p.cluster
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut nodes = Vec::with_capacity(ports.len());
    for (i, ports) in ports.into_iter().enumerate() {
        let name = format!("n{}", i + 1);
        let node_dir = dir.join(&name);
        std::fs::create_dir_all(node_dir.join("store"))?;
        let mut values = vec![
            ("NAME", name.clone()),
            ("PORT", ports.client.to_string()),
            ("CLUSTER_PORT", ports.cluster.to_string()),
            ("MONITORING", monitoring_line(ports.monitor)),
            ("LEAF_PORT", ports.leaf.to_string()),
            ("ROUTES", routes.clone()),
            ("STORE_DIR", node_dir.join("store").display().to_string()),
            ("SYNC_INTERVAL", options.sync_interval.clone()),
            ("ROUTE_PASSWORD", secrets.route_password().to_owned()),
        ];
        values.extend(secrets.template_values("../secrets/nats-users.conf"));
        let values: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let conf = deploy::render(NODE_CONF_TEMPLATE, &values)?;
        std::fs::write(node_dir.join("nats.conf"), conf)?;
        let health = format!("{}/healthz", monitor_url(ports.monitor));
        let launch = nats_launch(
            &format!("nats-server {name}"),
            &node_dir,
            health,
            READY_TIMEOUT,
            STOP_GRACE,
        )?;
        nodes.push(ClusterNode {
            name,
            ports,
            dir: node_dir,
            server: Supervised::spawn(launch)?,
        });
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    for i in 0..nodes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(err) = nodes[i].server.wait_ready(Some(left)) {
            return Err(with_siblings_state(err, &mut nodes, i));
        }
    }
    Ok(nodes)
}

/// A node waits for its siblings to elect a meta leader, so it is never ready when one of them
/// died (a route or leaf port taken between choosing it and binding it): the error names every
/// node that is not running with the end of its log, so a port conflict is retried.
fn with_siblings_state(
    err: anyhow::Error,
    nodes: &mut [ClusterNode],
    waited: usize,
) -> anyhow::Error {
    let mut context = String::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        if i != waited && !node.server.is_running() {
            context.push_str(&format!(
                "\nnats-server {} exited; log:\n{}",
                node.name,
                node.server.log_tail(20)
            ));
        }
    }
    if context.is_empty() {
        err
    } else {
        err.context(context)
    }
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
                ("MONITORING", "http: \"127.0.0.1:3\""),
                ("LEAF_PORT", "4"),
                ("ROUTES", "\"nats-route://127.0.0.1:2\""),
                ("STORE_DIR", "/s"),
                ("SYNC_INTERVAL", "2m"),
                ("ROUTE_PASSWORD", "p"),
                ("TLS_CERT", "/c"),
                ("TLS_KEY", "/k"),
                ("TLS_CA", "/ca"),
                ("USERS_INCLUDE", "../secrets/nats-users.conf"),
            ],
        )
        .unwrap();
        assert!(
            node.contains("include \"../secrets/nats-users.conf\""),
            "{node}"
        );
        // Quoted: unquoted, nats-server reads `2m` as the number 2,000,000 (seconds).
        assert!(node.contains("sync_interval: \"2m\""), "{node}");
        assert!(node.contains("domain: hub"), "{node}");
        let leaf = deploy::render(
            edge_site::LEAF_CONF_TEMPLATE,
            &[
                ("NAME", "edge-s1"),
                ("DOMAIN", "edge-s1"),
                ("PORT", "1"),
                ("MONITORING", "# no monitoring"),
                ("STORE_DIR", "/s"),
                ("MAX_FILE_STORE", "1G"),
                ("SYNC_INTERVAL", "always"),
                ("HUB_URLS", "\"nats-leaf://127.0.0.1:3\""),
                ("LINK_DISABLED", "false"),
                ("TLS_CERT", "/c"),
                ("TLS_KEY", "/k"),
                ("TLS_CA", "/ca"),
                ("USERS_INCLUDE", "secrets/nats-users.conf"),
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
