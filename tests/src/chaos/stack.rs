//! The deployment the soak runs: the distributed layout of `deploy/` on loopback, every
//! component a [`Component`] that can be killed, restarted, paused and resumed.

use std::fmt;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context};
use serde_json::{json, Value};
use tempfile::TempDir;

use super::{ALLOWED_LATENESS_MS, EVENT_TYPE, METRIC, PARTITIONS, TENANT, WINDOW_MS};
use crate::aggregator::Aggregator;
use crate::cluster::NatsCluster;
use crate::fault::FailoverProxy;
use crate::http;
use crate::service::Service;
use crate::stack::{start_edge_agent, start_gateway, StackOptions};
use crate::{unique_name, QuestDb};

/// One component of a [`ChaosStack`] (indices 0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// A core aggregator.
    Aggregator(usize),
    /// An edge agent.
    Agent(usize),
    /// A gateway.
    Gateway(usize),
    /// A node of the NATS cluster.
    Nats(usize),
    /// The QuestDB server.
    QuestDb,
}

impl Component {
    /// `aggregator`, `agent`, `gateway`, `nats`, `questdb`.
    pub fn kind(&self) -> &'static str {
        match self {
            Component::Aggregator(_) => "aggregator",
            Component::Agent(_) => "agent",
            Component::Gateway(_) => "gateway",
            Component::Nats(_) => "nats",
            Component::QuestDb => "questdb",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Aggregator(i) => write!(f, "aggregator-{}", i + 1),
            Component::Agent(i) => write!(f, "agent-{}", i + 1),
            Component::Gateway(i) => write!(f, "gateway-{}", i + 1),
            Component::Nats(i) => write!(f, "nats-n{}", i + 1),
            Component::QuestDb => f.write_str("questdb"),
        }
    }
}

/// The soak's settings of every service: the stack's test timings, windows final
/// [`ALLOWED_LATENESS_MS`] after their end, webhook retries every 0.5 to 5 s, agents with
/// `ingest.durable_ack` (the soak kills them with `SIGKILL`: without it the events of the
/// last flush interval, already answered `202`, die with the process).
pub fn soak_stack_options() -> StackOptions {
    StackOptions {
        partitions: PARTITIONS,
        ..StackOptions::default()
    }
    .agent("INGEST__DURABLE_ACK", true)
    .aggregator("WINDOWS__ALLOWED_LATENESS_MS", ALLOWED_LATENESS_MS)
    .aggregator("ALERTS__NOTIFIER__INITIAL_BACKOFF_MS", 500)
    .aggregator("ALERTS__NOTIFIER__MAX_BACKOFF_MS", 5_000)
    .aggregator("ALERTS__NOTIFIER__ACK_WAIT_MS", 10_000)
    .aggregator("ALERTS__NOTIFIER__REQUEST_TIMEOUT_MS", 3_000)
}

/// The 3-node NATS cluster (R3 streams and buckets, `deploy/cluster/node.conf`), a private
/// QuestDB, 2 core aggregators, 2 gateways behind one [`FailoverProxy`] address and 2 edge
/// agents connected to the cluster. Dropping it kills everything.
#[derive(Debug)]
pub struct ChaosStack {
    /// Declared first: dropped (killed) before what they use.
    pub agents: Vec<Service>,
    /// The one address in front of the gateways.
    pub proxy: FailoverProxy,
    /// `gateway-1`, `gateway-2`.
    pub gateways: Vec<Service>,
    /// Instance ids `<table>-agg-1`...
    pub aggregators: Vec<Aggregator>,
    /// Its own QuestDB: killed and restarted by the soak.
    pub db: QuestDb,
    /// The hub.
    pub cluster: NatsCluster,
    /// The windows table.
    pub table: String,
    options: StackOptions,
    /// Logs and the agents' state directories.
    dir: TempDir,
}

impl ChaosStack {
    /// Starts every component with `options` (partitions and replicas are the soak's) and
    /// waits until each is ready.
    pub fn start(
        options: StackOptions,
        aggregators: usize,
        gateways: usize,
        agents: usize,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("rtdash-chaos-").tempdir()?;
        let cluster = NatsCluster::start().context("start the NATS cluster")?;
        let db = QuestDb::start().context("start QuestDB")?;
        let table = unique_name("chaos");
        let base_env = base_env(&cluster, &options);
        // Each service connects as its own NATS user over TLS, as deployed; the gateway does
        // not create the topology (its user may not: the aggregators do).
        let with_user = |user: &str| {
            let mut env = base_env.clone();
            env.extend(cluster.credentials(user).env());
            env
        };
        let mut gateway_env = with_user("gateway");
        gateway_env.push((
            "RTDASH_GATEWAY__ENSURE_TOPOLOGY".to_owned(),
            "false".to_owned(),
        ));
        let agent_env = with_user("edge-agent");
        let mut started = Vec::new();
        for n in 1..=aggregators {
            let mut aggregator_options = options
                .aggregator_options(&format!("{table}-agg-{n}"), &cluster.url(), &db, &table)
                .set("STREAMS__REPLICAS", 3);
            aggregator_options
                .env
                .extend(cluster.credentials("core-aggregator").env());
            started.push(
                Aggregator::start(aggregator_options)
                    .with_context(|| format!("start core-aggregator {n}"))?,
            );
        }
        let mut gateway_services = Vec::new();
        for n in 1..=gateways {
            gateway_services.push(
                start_gateway(
                    &format!("gateway-{n}"),
                    dir.path(),
                    &gateway_env,
                    &db,
                    &table,
                    &options.gateway,
                )
                .with_context(|| format!("start gateway {n}"))?,
            );
        }
        let proxy = FailoverProxy::start(
            &gateway_services
                .iter()
                .map(Service::url)
                .collect::<Vec<_>>(),
        )?;
        let mut agent_services = Vec::new();
        for n in 1..=agents {
            let agent_dir = dir.path().join(format!("agent-{n}"));
            std::fs::create_dir_all(&agent_dir)?;
            agent_services.push(
                start_edge_agent(
                    &agent_dir,
                    &agent_env,
                    &format!("chaos-agent-{n}"),
                    None,
                    &options.agent,
                )
                .with_context(|| format!("start edge agent {n}"))?,
            );
        }
        Ok(Self {
            agents: agent_services,
            proxy,
            gateways: gateway_services,
            aggregators: started,
            db,
            cluster,
            table,
            options,
            dir,
        })
    }

    /// Every component, in a stable order.
    pub fn components(&self) -> Vec<Component> {
        let mut all = Vec::new();
        all.extend((0..self.cluster.len()).map(Component::Nats));
        all.push(Component::QuestDb);
        all.extend((0..self.aggregators.len()).map(Component::Aggregator));
        all.extend((0..self.gateways.len()).map(Component::Gateway));
        all.extend((0..self.agents.len()).map(Component::Agent));
        all
    }

    /// The agents' base URLs.
    pub fn agent_urls(&self) -> Vec<String> {
        self.agents.iter().map(Service::url).collect()
    }

    /// The partitions the aggregators own now, summed (a paused one counts nothing).
    pub fn owned_partitions(&self) -> f64 {
        self.aggregators
            .iter()
            .map(|a| a.owned_partitions().max(0.0))
            .sum()
    }

    /// `component`'s process id while it runs.
    pub fn pid(&self, component: Component) -> Option<u32> {
        match component {
            Component::Aggregator(i) => self.aggregators[i].pid(),
            Component::Agent(i) => self.agents[i].pid(),
            Component::Gateway(i) => self.gateways[i].pid(),
            Component::Nats(i) => self.cluster.pid(i),
            Component::QuestDb => self.db.pid(),
        }
    }

    /// Crash: `SIGKILL` to `component`'s process group.
    pub fn kill(&mut self, component: Component) {
        match component {
            Component::Aggregator(i) => self.aggregators[i].kill(),
            Component::Agent(i) => {
                self.agents[i].kill();
            }
            Component::Gateway(i) => {
                self.gateways[i].kill();
            }
            Component::Nats(i) => self.cluster.kill(i),
            Component::QuestDb => self.db.kill(),
        }
    }

    /// Starts `component` again on its ports and storage and waits until it is ready.
    pub fn restart(&mut self, component: Component) -> anyhow::Result<()> {
        match component {
            Component::Aggregator(i) => self.aggregators[i].restart(),
            Component::Agent(i) => self.agents[i].restart(),
            Component::Gateway(i) => self.gateways[i].restart(),
            Component::Nats(i) => self.cluster.restart(i),
            Component::QuestDb => self.db.restart(),
        }
    }

    /// Sends `signal` (`SIGSTOP`, `SIGCONT`) to `component`'s process group.
    pub fn signal(&self, component: Component, signal: libc::c_int) -> anyhow::Result<()> {
        match component {
            Component::Aggregator(i) => self.aggregators[i].signal(signal),
            Component::Agent(i) => self.agents[i].signal(signal),
            Component::Gateway(i) => self.gateways[i].signal(signal),
            Component::Nats(i) => self.cluster.signal(i, signal),
            Component::QuestDb => self.db.signal(signal),
        }
    }

    /// Whether `component` runs and answers its readiness probe.
    pub fn ready(&mut self, component: Component) -> bool {
        match component {
            Component::Aggregator(i) => {
                self.aggregators[i].is_running()
                    && http::is_ok(&format!("{}/readyz", self.aggregators[i].admin_url()))
            }
            Component::Agent(i) => {
                self.agents[i].is_running()
                    && http::is_ok(&format!("{}/readyz", self.agents[i].url()))
            }
            Component::Gateway(i) => {
                self.gateways[i].is_running()
                    && http::is_ok(&format!("{}/readyz", self.gateways[i].url()))
            }
            Component::Nats(i) => {
                self.cluster.is_running(i)
                    && http::is_ok(&format!("{}/healthz", self.cluster.monitor_url(i)))
            }
            Component::QuestDb => self.db.is_running() && self.db.exec("select 1").is_ok(),
        }
    }

    /// Start of the newest window of the soak metric's total series that is stored final,
    /// with its end (Unix ms).
    pub fn newest_final_window_end(&self) -> anyhow::Result<Option<i64>> {
        let answer = self.db.exec(&format!(
            "select cast(max(window_end) as long) from '{}' where tenant = '{TENANT}' and \
             metric = '{METRIC}' and dim_set is null and final = true",
            self.table
        ))?;
        Ok(answer["dataset"][0][0].as_i64().map(|micros| micros / 1000))
    }

    /// Defines the soak metric through the gateways' address and waits until every agent
    /// has it.
    pub fn define_metric(&self) -> anyhow::Result<()> {
        let definition = json!({
            "tenant_id": TENANT,
            "name": METRIC,
            "event_type": EVENT_TYPE,
            "field": "v",
            "unique": "u",
            "dimensions": ["k"],
            "window_secs": WINDOW_MS / 1000,
        });
        let (status, body) = self.post("/v1/metric-definitions", &definition)?;
        ensure!(status == 201, "define {METRIC}: {status} {body}");
        for agent in &self.agents {
            crate::eventually(
                Duration::from_secs(60),
                "every agent has the soak metric",
                || Ok((agent.metric("rtdash_agent_definitions_active")? >= 2.0).then_some(())),
            )?;
        }
        Ok(())
    }

    /// Creates the alert rule on the alert series (count above `threshold`, notifying
    /// `webhook`) through the gateways' address; returns its id.
    pub fn define_alert(&self, threshold: f64, webhook: &str) -> anyhow::Result<String> {
        let rule = json!({
            "tenant_id": TENANT,
            "metric_name": METRIC,
            "dimensions": {"k": super::ALERT_KEY},
            "stat": "count",
            "condition": "gt",
            "threshold": threshold,
            "notify_channel": webhook,
            "for_windows": 1,
            "evaluate_on": "final",
            "labels": {"severity": "page"},
            "annotations": {"summary": "the alert series is high"},
        });
        let (status, body) = self.post("/v1/alerts", &rule)?;
        ensure!(status == 201, "create the alert rule: {status} {body}");
        body["alert_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no alert_id in {body}"))
    }

    /// `POST <proxy><path>` with a JSON body: `(status, JSON answer)`.
    fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.proxy.url());
        let mut response = http::client(Duration::from_secs(30))
            .post(&url)
            .header(
                "authorization",
                format!("Bearer {}", crate::auth::operator_key()),
            )
            .send_json(body)
            .with_context(|| format!("POST {url}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Where the logs are.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The settings the services run with.
    pub fn options(&self) -> &StackOptions {
        &self.options
    }

    /// The last `lines` lines of every rtdash service's log.
    pub fn logs(&self, lines: usize) -> String {
        let mut out = String::new();
        for (i, agent) in self.agents.iter().enumerate() {
            out += &format!(
                "--- agent-{} ({}):\n{}\n",
                i + 1,
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
        for (i, aggregator) in self.aggregators.iter().enumerate() {
            out += &format!(
                "--- aggregator-{} ({}):\n{}\n",
                i + 1,
                aggregator.log_path().display(),
                aggregator.log_tail(lines)
            );
        }
        out
    }
}

/// What every service gets: the cluster's URLs, partitions, R3, then the stack's variables.
fn base_env(cluster: &NatsCluster, options: &StackOptions) -> Vec<(String, String)> {
    let mut env = vec![
        ("RTDASH_NATS__URL".to_owned(), cluster.url()),
        (
            "RTDASH_STREAMS__PARTITIONS".to_owned(),
            options.partitions.to_string(),
        ),
        ("RTDASH_STREAMS__REPLICAS".to_owned(), "3".to_owned()),
    ];
    env.extend(options.env.iter().cloned());
    env
}
