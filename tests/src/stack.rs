//! The whole rtdash pipeline on free loopback ports, for end-to-end tests: a real nats-server
//! (one per stack), the test binary's shared QuestDB (a table per stack), and the three
//! services as their real binaries, configured the way an operator would, through
//! `RTDASH_...` environment variables:
//!
//! ```text
//! test --HTTP--> edge-agent --JetStream--> core-aggregator --ILP--> QuestDB <--SQL-- gateway --SSE/REST--> test
//! ```
//!
//! The binaries are found as [`crate::service`] says (build them first with
//! `cargo build --workspace --bins`). Every service is a [`Service`]: its own process group,
//! killed on drop and when the test process dies; logs in the stack's temporary directory
//! ([`Stack::logs`] prints their ends when a test fails).
//!
//! [`crate::fault::FaultStack`] starts its gateways and agent with the same functions
//! ([`start_gateway`], [`start_edge_agent`]).

use std::path::Path;

use anyhow::{bail, Context};
use tempfile::TempDir;

use crate::aggregator::{Aggregator, AggregatorOptions};
use crate::service::{service_binary, Service};
use crate::{unique_name, NatsServer, QuestDb};

/// Settings of a [`Stack`]. Keys are relative to the component's prefix
/// (`RTDASH_CORE_AGGREGATOR__`, `RTDASH_GATEWAY__`, `RTDASH_EDGE_AGENT__`), e.g.
/// `("WINDOWS__ALLOWED_LATENESS_MS", "5000")`.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// `streams.partitions` of every component.
    pub partitions: u32,
    /// Core aggregator settings beyond [`AggregatorOptions::new`]'s test timings.
    pub aggregator: Vec<(String, String)>,
    /// Gateway settings.
    pub gateway: Vec<(String, String)>,
    /// Edge agent settings.
    pub agent: Vec<(String, String)>,
    /// Further environment variables for every service, full names (e.g.
    /// `RTDASH_TELEMETRY__OTLP_ENDPOINT`, `OTEL_BSP_SCHEDULE_DELAY`).
    pub env: Vec<(String, String)>,
}

impl Default for StackOptions {
    /// Test timings: 4 partitions, agent flushes every 100 ms with 200 ms heartbeats, the
    /// gateway reports status every 500 ms and reuses snapshots for 200 ms at most.
    fn default() -> Self {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Self {
            partitions: 4,
            aggregator: pairs(&[
                ("LIVE__THROTTLE_MS", "100"),
                ("LIVE__STATUS_INTERVAL_MS", "500"),
            ]),
            gateway: pairs(&[
                ("LIVE__STATUS_INTERVAL_MS", "500"),
                ("LIVE__SNAPSHOT_TTL_MS", "200"),
                ("SHUTDOWN_GRACE_MS", "3000"),
            ]),
            agent: pairs(&[
                ("FLUSH_INTERVAL_MS", "100"),
                ("HEARTBEAT_INTERVAL_MS", "200"),
                ("ARCHIVE_EVENTS", "true"),
                ("SHUTDOWN_GRACE_MS", "5000"),
            ]),
            env: Vec::new(),
        }
    }
}

impl StackOptions {
    /// Sets (or replaces) one aggregator setting.
    pub fn aggregator(mut self, key: &str, value: impl ToString) -> Self {
        set(&mut self.aggregator, key, value);
        self
    }

    /// Sets (or replaces) one gateway setting.
    pub fn gateway(mut self, key: &str, value: impl ToString) -> Self {
        set(&mut self.gateway, key, value);
        self
    }

    /// Sets (or replaces) one edge agent setting.
    pub fn agent(mut self, key: &str, value: impl ToString) -> Self {
        set(&mut self.agent, key, value);
        self
    }

    /// The options of an aggregator of a stack with these settings: instance `instance_id`,
    /// NATS at `nats_url`, writing `table` of `db`.
    pub fn aggregator_options(
        &self,
        instance_id: &str,
        nats_url: &str,
        db: &QuestDb,
        table: &str,
    ) -> AggregatorOptions {
        let mut options =
            AggregatorOptions::new(instance_id, nats_url, &db.http_addr().to_string(), table);
        options.partitions = self.partitions;
        for (key, value) in &self.aggregator {
            options = options.set(key, value);
        }
        options.env.extend(self.env.iter().cloned());
        options
    }

    /// Sets (or replaces) one environment variable of every service (full name).
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        set(&mut self.env, key, value);
        self
    }
}

fn set(list: &mut Vec<(String, String)>, key: &str, value: impl ToString) {
    list.retain(|(k, _)| k != key);
    list.push((key.to_owned(), value.to_string()));
}

/// NATS, QuestDB, core-aggregator, gateway and edge-agent, started in that order (the
/// aggregator owns the topology and creates the table; the agent routes with the partition
/// count the aggregator recorded). Dropping it kills everything; [`Stack::stop`] stops the
/// services gracefully first.
#[derive(Debug)]
pub struct Stack {
    /// Declared first: dropped (killed) before the servers they use.
    pub agent: Service,
    /// The gateway (REST, SSE).
    pub gateway: Service,
    /// The core aggregator.
    pub aggregator: Aggregator,
    /// This stack's own nats-server.
    pub nats: NatsServer,
    /// The test binary's shared QuestDB.
    pub db: &'static QuestDb,
    /// This stack's metric windows table.
    pub table: String,
    /// Service logs and the agent's state directory.
    dir: TempDir,
}

impl Stack {
    /// Starts everything with `options` and waits until every service is ready.
    pub fn start(options: StackOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("rtdash-stack-").tempdir()?;
        let nats = NatsServer::start().context("start nats-server")?;
        let db = QuestDb::shared()?;
        let table = unique_name("e2e");
        let nats_url = nats.url();
        let partitions = options.partitions.to_string();

        let aggregator_options =
            options.aggregator_options(&unique_name("agg"), &nats_url, db, &table);
        let aggregator = Aggregator::start(aggregator_options).context("start core-aggregator")?;

        let mut base_env = vec![
            ("RTDASH_NATS__URL".to_owned(), nats_url.clone()),
            ("RTDASH_STREAMS__PARTITIONS".to_owned(), partitions),
        ];
        base_env.extend(options.env.iter().cloned());
        let gateway = start_gateway(
            "gateway",
            dir.path(),
            &base_env,
            db,
            &table,
            &options.gateway,
        )
        .context("start gateway")?;
        let agent = start_edge_agent(dir.path(), &base_env, "e2e-agent", None, &options.agent)
            .context("start edge-agent")?;
        Ok(Self {
            agent,
            gateway,
            aggregator,
            nats,
            db,
            table,
            dir,
        })
    }

    /// The gateway's base URL.
    pub fn gateway_url(&self) -> String {
        self.gateway.url()
    }

    /// The edge agent's base URL (`POST /v1/events`).
    pub fn agent_url(&self) -> String {
        self.agent.url()
    }

    /// Where the service logs are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `lines` lines of every service's log, for a failure message.
    pub fn logs(&self, lines: usize) -> String {
        format!(
            "--- edge-agent ({}):\n{}\n--- gateway ({}):\n{}\n--- core-aggregator ({}):\n{}",
            self.agent.log_path().display(),
            self.agent.log_tail(lines),
            self.gateway.log_path().display(),
            self.gateway.log_tail(lines),
            self.aggregator.log_path().display(),
            self.aggregator.log_tail(lines),
        )
    }

    /// Stops the services gracefully, producers first (edge-agent, gateway, core-aggregator);
    /// fails naming every one that did not exit with status 0.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let mut failed = Vec::new();
        for service in [&mut self.agent, &mut self.gateway] {
            if let Some(status) = service.stop() {
                if !status.success() {
                    failed.push(format!("{} exited with {status}", service.name()));
                }
            }
        }
        if !self.aggregator.stop() {
            failed.push("core-aggregator did not exit with status 0".to_owned());
        }
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("{}\n{}", failed.join("; "), self.logs(30))
        }
    }
}

/// Starts a `gateway` binary as `name` (log `<dir>/<name>.log`) on a free port: `base_env`
/// (NATS URL, partitions, ... and the stack's extra variables), reading `table` of `db`,
/// no web UI, the harness's operator key ([`crate::auth`]), then `settings` (keys relative to
/// `RTDASH_GATEWAY__`).
pub(crate) fn start_gateway(
    name: &str,
    dir: &Path,
    base_env: &[(String, String)],
    db: &QuestDb,
    table: &str,
    settings: &[(String, String)],
) -> anyhow::Result<Service> {
    let binary = service_binary("gateway", "gateway")?;
    let pg = db.pg_addr().to_string();
    let no_web = dir.join("no-web").display().to_string();
    let operator_key = crate::auth::operator_key_file(dir)?.display().to_string();
    Service::start(name, &binary, dir, |port| {
        let mut env = base_env.to_vec();
        env.extend([
            ("RTDASH_QUESTDB__PG_ADDR".to_owned(), pg.clone()),
            ("RTDASH_QUESTDB__TABLE".to_owned(), table.to_owned()),
            (
                "RTDASH_GATEWAY__LISTEN".to_owned(),
                format!("127.0.0.1:{port}"),
            ),
            ("RTDASH_GATEWAY__WEB_ROOT".to_owned(), no_web.clone()),
            (
                "RTDASH_GATEWAY__AUTH__OPERATOR_KEY_FILE".to_owned(),
                operator_key.clone(),
            ),
            // The tests' webhook receivers listen on loopback.
            (
                "RTDASH_GATEWAY__WEBHOOK_ALLOW_DESTINATIONS".to_owned(),
                "[\"127.0.0.1\"]".to_owned(),
            ),
        ]);
        env.extend(component_env("GATEWAY", settings));
        env
    })
}

/// Starts the `edge-agent` binary (log `<dir>/edge-agent.log`, state in `<dir>/edge-agent`)
/// on a free port as agent `agent_id`, at edge site `site` if given: `base_env`, the
/// harness's operator key ([`crate::auth`]), then `settings` (keys relative to
/// `RTDASH_EDGE_AGENT__`).
pub(crate) fn start_edge_agent(
    dir: &Path,
    base_env: &[(String, String)],
    agent_id: &str,
    site: Option<&str>,
    settings: &[(String, String)],
) -> anyhow::Result<Service> {
    let binary = service_binary("edge-agent", "edge-agent")?;
    let state = dir.join("edge-agent").display().to_string();
    let operator_key = crate::auth::operator_key_file(dir)?.display().to_string();
    Service::start("edge-agent", &binary, dir, |port| {
        let mut env = base_env.to_vec();
        env.extend([
            (
                "RTDASH_EDGE_AGENT__LISTEN".to_owned(),
                format!("127.0.0.1:{port}"),
            ),
            ("RTDASH_EDGE_AGENT__STATE_DIR".to_owned(), state.clone()),
            (
                "RTDASH_EDGE_AGENT__AGENT_ID".to_owned(),
                agent_id.to_owned(),
            ),
            (
                "RTDASH_EDGE_AGENT__AUTH__OPERATOR_KEY_FILE".to_owned(),
                operator_key.clone(),
            ),
        ]);
        if let Some(site) = site {
            env.push(("RTDASH_EDGE_AGENT__SITE".to_owned(), site.to_owned()));
        }
        env.extend(component_env("EDGE_AGENT", settings));
        env
    })
}

/// `(KEY, value)` settings as `RTDASH_<COMPONENT>__KEY` variables.
fn component_env(component: &str, settings: &[(String, String)]) -> Vec<(String, String)> {
    settings
        .iter()
        .map(|(k, v)| (format!("RTDASH_{component}__{k}"), v.clone()))
        .collect()
}
