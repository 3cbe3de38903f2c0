//! Fault scenarios on the real binaries: the pieces the `tests/tests/fault_*.rs` tests share.
//! This file holds the stack; `fault/load.rs` the producer and its exact tally,
//! `fault/verdict.rs` the check against QuestDB, `fault/proxy.rs` the failover proxy.
//!
//! - [`FaultStack`]: the pipeline as in [`crate::stack::Stack`], but with a choice of NATS (one
//!   server with R1 streams, or the 3-node cluster of `deploy/cluster/` with R3 streams and
//!   buckets), several core aggregators, several gateways, and an edge agent connected either
//!   to the hub or to an edge site's leaf node (`deploy/edge/`).
//! - [`Load`]: a steady producer posting events of the test metric [`FAULT_METRIC`] to the real
//!   edge agent over HTTP from its own thread, retrying `429`/`503` answers (nothing was taken),
//!   and keeping the exact count and sum of every accepted event per window and key (`202`
//!   with `accepted` = the batch).
//! - [`check_exact`]: reads the metric's rows back from QuestDB until every window is final
//!   and equal to what was accepted, and reports lost and duplicated events per window and
//!   series against that exact count ([`Verdict`]); [`Verdict::line`] is the machine-readable
//!   `FAULT-RESULT ...` line `deploy/faults.sh` collects.
//! - [`FailoverProxy`]: one loopback address in front of several gateways, sending each new
//!   connection to the first backend that accepts it (what a load balancer with health checks
//!   does); the gateway fault test kills the active gateway behind it.

mod load;
mod proxy;
mod verdict;

pub use load::{Expected, Load, LoadOptions, Tally};
pub use proxy::FailoverProxy;
pub use verdict::{check_exact, report, Verdict};

use std::time::Duration;

use anyhow::{anyhow, ensure, Context};
use serde_json::json;
use tempfile::TempDir;

use crate::aggregator::{Aggregator, AggregatorOptions};
use crate::cluster::{EdgeSite, NatsCluster};
use crate::http;
use crate::service::Service;
use crate::stack::{start_edge_agent, start_gateway, StackOptions};
use crate::{unique_name, NatsServer, QuestDb};

/// Tenant of the fault workload.
pub const FAULT_TENANT: &str = "fault";
/// The test metric: `count`/`sum` of the integer property `v` of `tick` events by `k`.
pub const FAULT_METRIC: &str = "fault";
/// Event type of the fault workload.
pub const FAULT_EVENT_TYPE: &str = "tick";
/// Window of [`FAULT_METRIC`].
pub const WINDOW_MS: i64 = 2_000;
/// Distinct values of the dimension `k` (series of the full dimension set).
pub const KEYS: u64 = 8;
/// The aggregators' `windows.allowed_lateness_ms` in fault stacks.
pub const ALLOWED_LATENESS_MS: u64 = 2_000;

/// Settings of a [`FaultStack`].
#[derive(Clone, Debug)]
pub struct FaultOptions {
    /// Service settings and partition count, as for [`crate::stack::Stack`].
    pub stack: StackOptions,
    /// A 3-node cluster (`deploy/cluster/node.conf`) instead of one server.
    pub cluster: bool,
    /// `streams.replicas` of every service (3 on a cluster).
    pub replicas: usize,
    /// Core aggregators sharing the partitions.
    pub aggregators: usize,
    /// Gateways.
    pub gateways: usize,
}

impl Default for FaultOptions {
    /// One server, R1, one aggregator, one gateway; the stack's test timings, windows final
    /// [`ALLOWED_LATENESS_MS`] after their end.
    fn default() -> Self {
        Self {
            stack: StackOptions::default()
                .aggregator("WINDOWS__ALLOWED_LATENESS_MS", ALLOWED_LATENESS_MS),
            cluster: false,
            replicas: 1,
            aggregators: 1,
            gateways: 1,
        }
    }
}

impl FaultOptions {
    /// The 3-node cluster with R3 streams and buckets.
    pub fn cluster(mut self) -> Self {
        self.cluster = true;
        self.replicas = 3;
        self
    }
}

/// NATS (one server or a 3-node cluster), QuestDB (the test binary's shared one, a table per
/// stack), `n` core aggregators, `m` gateways and, once [`FaultStack::start_agent`] or
/// [`FaultStack::start_agent_at`] is called, an edge agent. Dropping it kills everything.
#[derive(Debug)]
pub struct FaultStack {
    /// Declared first: dropped (killed) before what it uses.
    pub agent: Option<Service>,
    /// The gateways, `gateway-1`...
    pub gateways: Vec<Service>,
    /// The core aggregators, instance ids `<table>-agg-1`...
    pub aggregators: Vec<Aggregator>,
    /// The edge site the agent publishes to, with [`FaultStack::start_agent_at`].
    pub edge: Option<EdgeSite>,
    /// The single server, unless [`FaultOptions::cluster`].
    pub nats: Option<NatsServer>,
    /// The 3-node cluster, with [`FaultOptions::cluster`].
    pub cluster: Option<NatsCluster>,
    /// The test binary's shared QuestDB.
    pub db: &'static QuestDb,
    /// This stack's metric windows table.
    pub table: String,
    options: FaultOptions,
    /// Service logs and the agent's state directory.
    dir: TempDir,
}

impl FaultStack {
    /// Starts NATS, the aggregators (the first creates the topology and the table) and the
    /// gateways, and waits until each is ready. No agent yet.
    pub fn start(options: FaultOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("rtdash-fault-").tempdir()?;
        let (nats, cluster) = if options.cluster {
            (
                None,
                Some(NatsCluster::start().context("start the NATS cluster")?),
            )
        } else {
            (
                Some(NatsServer::start().context("start nats-server")?),
                None,
            )
        };
        let db = QuestDb::shared()?;
        let table = unique_name("fault");
        let mut stack = Self {
            agent: None,
            gateways: Vec::new(),
            aggregators: Vec::new(),
            edge: None,
            nats,
            cluster,
            db,
            table,
            options,
            dir,
        };
        for i in 0..stack.options.aggregators {
            stack.add_aggregator(i + 1)?;
        }
        for i in 0..stack.options.gateways {
            stack.add_gateway(i + 1)?;
        }
        Ok(stack)
    }

    /// The NATS URL(s) of the hub, comma-separated for a cluster (`RTDASH_NATS__URL`).
    pub fn nats_url(&self) -> String {
        match (&self.nats, &self.cluster) {
            (Some(nats), _) => nats.url(),
            (None, Some(cluster)) => cluster.url(),
            (None, None) => unreachable!("a fault stack has NATS"),
        }
    }

    /// The `RTDASH_NATS__USER`, `__PASSWORD` and `__TLS_CA` of NATS user `user` on the
    /// locked-down cluster (none on the single server, which is open).
    pub fn nats_credentials(&self, user: &str) -> Vec<(String, String)> {
        match &self.cluster {
            Some(cluster) => cluster.credentials(user).env(),
            None => Vec::new(),
        }
    }

    /// The options of aggregator number `n` (1-based).
    pub fn aggregator_options(&self, n: usize) -> AggregatorOptions {
        let mut options = self
            .options
            .stack
            .aggregator_options(
                &format!("{}-agg-{n}", self.table),
                &self.nats_url(),
                self.db,
                &self.table,
            )
            .set("STREAMS__REPLICAS", self.options.replicas);
        options.env.extend(self.nats_credentials("core-aggregator"));
        options
    }

    /// Starts aggregator number `n` (1-based) and adds it to [`FaultStack::aggregators`].
    pub fn add_aggregator(&mut self, n: usize) -> anyhow::Result<()> {
        let aggregator = Aggregator::start(self.aggregator_options(n))
            .with_context(|| format!("start core-aggregator {n}"))?;
        self.aggregators.push(aggregator);
        Ok(())
    }

    /// The variables every service gets: `nats_url` (the hub's, or an edge site's for the
    /// agent there) and its `credentials` ([`Self::nats_credentials`]), partitions, replicas,
    /// then [`StackOptions::env`].
    fn base_env(
        &self,
        nats_url: String,
        credentials: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let mut env = credentials;
        env.extend([
            ("RTDASH_NATS__URL".to_owned(), nats_url),
            (
                "RTDASH_STREAMS__PARTITIONS".to_owned(),
                self.options.stack.partitions.to_string(),
            ),
            (
                "RTDASH_STREAMS__REPLICAS".to_owned(),
                self.options.replicas.to_string(),
            ),
        ]);
        env.extend(self.options.stack.env.iter().cloned());
        env
    }

    /// Starts gateway number `n` (1-based, log `gateway-<n>.log`).
    pub fn add_gateway(&mut self, n: usize) -> anyhow::Result<()> {
        let gateway = start_gateway(
            &format!("gateway-{n}"),
            self.dir.path(),
            &self.base_env(self.nats_url(), self.gateway_credentials()),
            self.db,
            &self.table,
            &self.options.stack.gateway,
        )
        .with_context(|| format!("start gateway {n}"))?;
        self.gateways.push(gateway);
        Ok(())
    }

    /// The gateway's NATS credentials; on the cluster it does not create the topology (its
    /// user may not: the aggregators do), as deployed.
    fn gateway_credentials(&self) -> Vec<(String, String)> {
        let mut env = self.nats_credentials("gateway");
        if self.cluster.is_some() {
            env.push((
                "RTDASH_GATEWAY__ENSURE_TOPOLOGY".to_owned(),
                "false".to_owned(),
            ));
        }
        env
    }

    /// Starts the edge agent connected to the hub.
    pub fn start_agent(&mut self) -> anyhow::Result<()> {
        let url = self.nats_url();
        let credentials = self.nats_credentials("edge-agent");
        self.launch_agent(url, credentials, None)
    }

    /// Starts the edge agent at edge site `site` (its leaf node as NATS URL, `site` set):
    /// the site's streams and the hub's sources must exist (`deploy/edge/up.sh`). The site
    /// is kept in [`FaultStack::edge`].
    pub fn start_agent_at(&mut self, site: EdgeSite) -> anyhow::Result<()> {
        let url = site.url();
        let name = site.site().to_owned();
        let credentials = site.credentials("edge-agent").env();
        self.edge = Some(site);
        self.launch_agent(url, credentials, Some(name))
    }

    fn launch_agent(
        &mut self,
        nats_url: String,
        credentials: Vec<(String, String)>,
        site: Option<String>,
    ) -> anyhow::Result<()> {
        let agent_id = match &site {
            Some(site) => format!("{site}-fault-agent"),
            None => "fault-agent".to_owned(),
        };
        let agent = start_edge_agent(
            self.dir.path(),
            &self.base_env(nats_url, credentials),
            &agent_id,
            site.as_deref(),
            &self.options.stack.agent,
        )
        .context("start edge-agent")?;
        self.agent = Some(agent);
        Ok(())
    }

    /// The edge agent's base URL.
    pub fn agent_url(&self) -> anyhow::Result<String> {
        Ok(self
            .agent
            .as_ref()
            .ok_or_else(|| anyhow!("the edge agent is not started"))?
            .url())
    }

    /// Where the service logs are.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Defines [`FAULT_METRIC`] through the first gateway that is running and waits until
    /// the edge agent has it (its `rtdash_agent_definitions_active` counts it).
    pub fn define_metric(&mut self) -> anyhow::Result<()> {
        let gateway = self
            .gateways
            .iter_mut()
            .find_map(|g| g.is_running().then(|| g.url()))
            .ok_or_else(|| anyhow!("no gateway is running"))?;
        let definition = json!({
            "tenant_id": FAULT_TENANT,
            "name": FAULT_METRIC,
            "event_type": FAULT_EVENT_TYPE,
            "field": "v",
            "dimensions": ["k"],
            "window_secs": WINDOW_MS / 1000,
        });
        let client = http::client(Duration::from_secs(30));
        let url = format!("{gateway}/v1/metric-definitions");
        let (auth_name, auth_value) = crate::auth::operator_authorization();
        let mut response = client
            .post(&url)
            .header(auth_name, auth_value.as_str())
            .send_json(&definition)
            .with_context(|| format!("POST {url}"))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        ensure!(status == 201, "define {FAULT_METRIC}: {status} {body}");
        let agent = self
            .agent
            .as_ref()
            .ok_or_else(|| anyhow!("start the edge agent before defining the metric"))?;
        crate::eventually(
            Duration::from_secs(60),
            "the edge agent has the fault metric",
            || Ok((agent.metric("rtdash_agent_definitions_active")? >= 2.0).then_some(())),
        )
    }

    /// Partitions each aggregator owns now (`rtdash_core_partitions_owned`; -1 when it does
    /// not answer).
    pub fn owned_partitions(&self) -> Vec<f64> {
        self.aggregators
            .iter()
            .map(Aggregator::owned_partitions)
            .collect()
    }

    /// Reads this stack's rows until they match `expected` exactly or `timeout` passes (see
    /// [`check_exact`]).
    pub fn check_exact(&self, expected: &Expected, timeout: Duration) -> anyhow::Result<Verdict> {
        check_exact(self.db, &self.table, expected, timeout)
    }

    /// The last `lines` lines of every service's log.
    pub fn logs(&self, lines: usize) -> String {
        let mut out = String::new();
        if let Some(agent) = &self.agent {
            out += &format!(
                "--- edge-agent ({}):\n{}\n",
                agent.log_path().display(),
                agent.log_tail(lines)
            );
        }
        for gateway in &self.gateways {
            out += &format!(
                "--- {} ({}):\n{}\n",
                gateway.name(),
                gateway.log_path().display(),
                gateway.log_tail(lines)
            );
        }
        for aggregator in &self.aggregators {
            out += &format!(
                "--- core-aggregator {} ({}):\n{}\n",
                aggregator.options().instance_id,
                aggregator.log_path().display(),
                aggregator.log_tail(lines)
            );
        }
        out
    }
}
