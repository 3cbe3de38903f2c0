//! Fault scenarios on the real binaries: the pieces the `tests/tests/fault_*.rs` tests share.
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

use std::collections::BTreeMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::aggregator::{metric_sum, Aggregator, AggregatorOptions};
use crate::cluster::{EdgeSite, NatsCluster};
use crate::stack::{service_binary, Service, StackOptions};
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

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `ms` (Unix milliseconds, >= 0) as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000
    )
}

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

    /// The options of aggregator number `n` (1-based).
    pub fn aggregator_options(&self, n: usize) -> AggregatorOptions {
        let mut options = AggregatorOptions::new(
            &format!("{}-agg-{n}", self.table),
            &self.nats_url(),
            &self.db.http_addr().to_string(),
            &self.table,
        );
        options.partitions = self.options.stack.partitions;
        options = options.set("STREAMS__REPLICAS", self.options.replicas);
        for (key, value) in &self.options.stack.aggregator {
            options = options.set(key, value);
        }
        options.env.extend(self.options.stack.env.iter().cloned());
        options
    }

    /// Starts aggregator number `n` (1-based) and adds it to [`FaultStack::aggregators`].
    pub fn add_aggregator(&mut self, n: usize) -> anyhow::Result<()> {
        let aggregator = Aggregator::start(self.aggregator_options(n))
            .with_context(|| format!("start core-aggregator {n}"))?;
        self.aggregators.push(aggregator);
        Ok(())
    }

    /// NATS URL first (the agent at an edge site replaces it), then the shared settings and
    /// [`StackOptions::env`].
    fn shared_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("RTDASH_NATS__URL".to_owned(), self.nats_url()),
            (
                "RTDASH_STREAMS__PARTITIONS".to_owned(),
                self.options.stack.partitions.to_string(),
            ),
            (
                "RTDASH_STREAMS__REPLICAS".to_owned(),
                self.options.replicas.to_string(),
            ),
        ];
        env.extend(self.options.stack.env.iter().cloned());
        env
    }

    /// Starts gateway number `n` (1-based, log `gateway-<n>.log`).
    pub fn add_gateway(&mut self, n: usize) -> anyhow::Result<()> {
        let binary = service_binary("gateway", "gateway")?;
        let shared = self.shared_env();
        let pg = self.db.pg_addr().to_string();
        let no_web = self.dir.path().join("no-web").display().to_string();
        let settings = component_env("GATEWAY", &self.options.stack.gateway);
        let gateway = Service::start(&format!("gateway-{n}"), &binary, self.dir.path(), |port| {
            let mut env = shared.clone();
            env.extend([
                ("RTDASH_QUESTDB__PG_ADDR".to_owned(), pg.clone()),
                ("RTDASH_QUESTDB__TABLE".to_owned(), self.table.clone()),
                (
                    "RTDASH_GATEWAY__LISTEN".to_owned(),
                    format!("127.0.0.1:{port}"),
                ),
                ("RTDASH_GATEWAY__WEB_ROOT".to_owned(), no_web.clone()),
            ]);
            env.extend(settings.iter().cloned());
            env
        })
        .with_context(|| format!("start gateway {n}"))?;
        self.gateways.push(gateway);
        Ok(())
    }

    /// Starts the edge agent connected to the hub.
    pub fn start_agent(&mut self) -> anyhow::Result<()> {
        let url = self.nats_url();
        self.launch_agent(url, None)
    }

    /// Starts the edge agent at edge site `site` (its leaf node as NATS URL, `site` set):
    /// the site's streams and the hub's sources must exist (`deploy/edge/up.sh`). The site
    /// is kept in [`FaultStack::edge`].
    pub fn start_agent_at(&mut self, site: EdgeSite) -> anyhow::Result<()> {
        let url = site.url();
        let name = site.site().to_owned();
        self.edge = Some(site);
        self.launch_agent(url, Some(name))
    }

    fn launch_agent(&mut self, nats_url: String, site: Option<String>) -> anyhow::Result<()> {
        let binary = service_binary("edge-agent", "edge-agent")?;
        let mut shared = self.shared_env();
        shared[0].1 = nats_url;
        let state = self.dir.path().join("edge-agent");
        let settings = component_env("EDGE_AGENT", &self.options.stack.agent);
        let agent = Service::start("edge-agent", &binary, self.dir.path(), |port| {
            let mut env = shared.clone();
            env.extend([
                (
                    "RTDASH_EDGE_AGENT__LISTEN".to_owned(),
                    format!("127.0.0.1:{port}"),
                ),
                (
                    "RTDASH_EDGE_AGENT__STATE_DIR".to_owned(),
                    state.display().to_string(),
                ),
            ]);
            match &site {
                Some(site) => {
                    env.push(("RTDASH_EDGE_AGENT__SITE".to_owned(), site.clone()));
                    env.push((
                        "RTDASH_EDGE_AGENT__AGENT_ID".to_owned(),
                        format!("{site}-fault-agent"),
                    ));
                }
                None => env.push((
                    "RTDASH_EDGE_AGENT__AGENT_ID".to_owned(),
                    "fault-agent".to_owned(),
                )),
            }
            env.extend(settings.iter().cloned());
            env
        })
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
        let client = client(Duration::from_secs(30));
        let url = format!("{gateway}/v1/metric-definitions");
        let mut response = client
            .post(&url)
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
            .map(|a| a.metric("rtdash_core_partitions_owned").unwrap_or(-1.0))
            .collect()
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

/// `(KEY, value)` settings as `RTDASH_<COMPONENT>__KEY` variables.
fn component_env(component: &str, settings: &[(String, String)]) -> Vec<(String, String)> {
    settings
        .iter()
        .map(|(k, v)| (format!("RTDASH_{component}__{k}"), v.clone()))
        .collect()
}

/// A blocking HTTP client: non-2xx answers are responses; requests time out after `timeout`.
fn client(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(2)))
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// Exact count and sum of accepted events per `(window start, k)`.
pub type Expected = BTreeMap<(i64, String), (u64, u64)>;

/// What a [`Load`] sent and what the agent took.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Events posted (each once, however often its batch was retried).
    pub sent: u64,
    /// Events in `202` answers (`accepted` of the batch).
    pub accepted: u64,
    /// Requests answered `429` or `503` and retried.
    pub retried: u64,
    /// Requests that failed without an answer (the agent may or may not have taken them):
    /// must stay 0 for an exact count.
    pub unknown: u64,
    /// Batches given up after [`LoadOptions::give_up`] of `429`/`503`.
    pub given_up: u64,
    /// Requests answered `202`.
    pub requests: u64,
    /// The exact expectation.
    pub expected: Expected,
    /// Accepted events per second of the run, in order.
    pub per_second: Vec<u64>,
}

/// How a [`Load`] posts.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Events per second.
    pub rate: u64,
    /// Events per request.
    pub batch: u64,
    /// How long a batch is retried on `429`/`503` before it counts as given up.
    pub give_up: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            rate: 3_000,
            batch: 100,
            give_up: Duration::from_secs(60),
        }
    }
}

/// A steady producer on its own thread: `rate` events per second of `tick` events
/// (`k` = `k0`..`k7`, `v` = 1..=10) in JSON batches to the edge agent.
pub struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// Starts posting to `agent_url` (`http://...`).
    pub fn start(agent_url: &str, options: LoadOptions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let url = format!("{agent_url}/v1/events");
        let thread = {
            let stop = stop.clone();
            let tally = tally.clone();
            std::thread::Builder::new()
                .name("fault-load".to_owned())
                .spawn(move || run_load(&url, &options, &stop, &tally))
                .expect("spawn the load thread")
        };
        Self {
            stop,
            tally,
            thread: Some(thread),
        }
    }

    /// The tally so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().expect("tally").clone()
    }

    /// Events accepted so far.
    pub fn accepted(&self) -> u64 {
        self.tally.lock().expect("tally").accepted
    }

    /// Stops after the batch in progress (which is finished, retries included) and returns
    /// the final tally.
    pub fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.tally()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_load(url: &str, options: &LoadOptions, stop: &AtomicBool, tally: &Mutex<Tally>) {
    let http = client(Duration::from_secs(60));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(options.batch as f64 / options.rate.max(1) as f64);
    let mut n: u64 = 0;
    let mut batch_no: u32 = 0;
    while !stop.load(Ordering::SeqCst) {
        let due = started + interval * batch_no;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        batch_no += 1;
        let at = now_ms();
        let mut items = Vec::with_capacity(options.batch as usize);
        let mut batch: Expected = BTreeMap::new();
        for _ in 0..options.batch {
            let k = format!("k{}", n % KEYS);
            let v = n % 10 + 1;
            items.push(format!(
                r#"{{"tenant_id":"{FAULT_TENANT}","source":"fault-load","event_type":"{FAULT_EVENT_TYPE}","properties":{{"k":"{k}","v":{v}}},"occurred_at":"{}"}}"#,
                rfc3339(at)
            ));
            let entry = batch.entry((at - at.rem_euclid(WINDOW_MS), k)).or_default();
            entry.0 += 1;
            entry.1 += v;
            n += 1;
        }
        let body = format!("[{}]", items.join(","));
        tally.lock().expect("tally").sent += options.batch;
        let first_try = Instant::now();
        loop {
            let answer = http
                .post(url)
                .header("content-type", "application/json")
                .send(body.as_bytes())
                .map(|mut response| {
                    let status = response.status().as_u16();
                    let text = response.body_mut().read_to_string().unwrap_or_default();
                    (status, text)
                });
            let mut tally = tally.lock().expect("tally");
            match answer {
                Ok((202, text)) => {
                    let accepted = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["accepted"].as_u64())
                        .unwrap_or(0);
                    if accepted != options.batch {
                        // Never happens with valid events; counted as not taken so the check
                        // fails loudly rather than guessing which were taken.
                        tally.unknown += 1;
                    } else {
                        tally.accepted += accepted;
                        tally.requests += 1;
                        let second = started.elapsed().as_secs() as usize;
                        if tally.per_second.len() <= second {
                            tally.per_second.resize(second + 1, 0);
                        }
                        tally.per_second[second] += accepted;
                        for (key, (count, sum)) in &batch {
                            let entry = tally.expected.entry(key.clone()).or_default();
                            entry.0 += count;
                            entry.1 += sum;
                        }
                    }
                    break;
                }
                Ok((429 | 503, _)) if first_try.elapsed() < options.give_up => {
                    tally.retried += 1;
                }
                Ok((429 | 503, _)) => {
                    tally.given_up += 1;
                    break;
                }
                Ok(_) | Err(_) => {
                    tally.unknown += 1;
                    break;
                }
            }
            drop(tally);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The outcome of [`check_exact`].
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Events counted in the stored rows of the full dimension set.
    pub stored: u64,
    /// Accepted events missing from the stored counts (summed over windows and series).
    pub lost: u64,
    /// Stored events beyond the accepted ones (summed over windows and series).
    pub duplicated: u64,
    /// Windows expected.
    pub windows: usize,
    /// Rows (window, series) expected in the full dimension set.
    pub series_windows: usize,
    /// Whether every count, sum and total matched and every window was final.
    pub exact: bool,
    /// What did not match (empty when exact).
    pub detail: String,
}

impl Verdict {
    /// `FAULT-RESULT scenario=<name> sent=.. accepted=.. stored=.. lost=.. duplicated=..
    /// [key=value ...] pass|FAIL`.
    pub fn line(
        &self,
        scenario: &str,
        tally: &Tally,
        pass: bool,
        extra: &[(&str, String)],
    ) -> String {
        let mut line = format!(
            "FAULT-RESULT scenario={scenario} sent={} accepted={} stored={} lost={} duplicated={} \
             windows={} retried={} unknown={}",
            tally.sent,
            tally.accepted,
            self.stored,
            self.lost,
            self.duplicated,
            self.windows,
            tally.retried,
            tally.unknown + tally.given_up,
        );
        for (key, value) in extra {
            line += &format!(" {key}={value}");
        }
        line += if pass { " pass" } else { " FAIL" };
        line
    }
}

/// One stored row of [`FAULT_METRIC`].
#[derive(Clone, Debug)]
struct Row {
    count: u64,
    sum: f64,
    is_final: bool,
}

/// The rows of [`FAULT_METRIC`] in `table`: `(window start ms, k)` for the full set, `(window
/// start ms, "")` for the total.
fn fetch_rows(db: &QuestDb, table: &str) -> anyhow::Result<BTreeMap<(i64, String), Row>> {
    let answer = db.exec(&format!(
        "select cast(ts as long) ts_us, dim_set, series, count, sum, final from {table} \
         where tenant = '{FAULT_TENANT}' and metric = '{FAULT_METRIC}'"
    ))?;
    let mut rows = BTreeMap::new();
    for row in answer["dataset"].as_array().into_iter().flatten() {
        let start = row[0].as_i64().ok_or_else(|| anyhow!("bad ts in {row}"))? / 1_000;
        let key = match row[1].as_str().unwrap_or_default() {
            "" => String::new(),
            "k" => {
                let series: Value = serde_json::from_str(row[2].as_str().unwrap_or("{}"))
                    .with_context(|| format!("series of {row}"))?;
                series["k"].as_str().unwrap_or_default().to_owned()
            }
            other => bail!("unexpected dim_set {other:?} in {row}"),
        };
        rows.insert(
            (start, key),
            Row {
                count: row[3].as_u64().unwrap_or(0),
                sum: row[4].as_f64().unwrap_or(f64::NAN),
                is_final: row[5].as_bool().unwrap_or(false),
            },
        );
    }
    Ok(rows)
}

/// Compares `rows` with `expected`.
fn compare(rows: &BTreeMap<(i64, String), Row>, expected: &Expected) -> Verdict {
    let mut verdict = Verdict::default();
    let mut problems = Vec::new();
    let mut totals: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for ((start, k), (count, sum)) in expected {
        let total = totals.entry(*start).or_default();
        total.0 += count;
        total.1 += sum;
        let got = rows.get(&(*start, k.clone()));
        let got_count = got.map_or(0, |r| r.count);
        verdict.stored += got_count;
        verdict.lost += count.saturating_sub(got_count);
        verdict.duplicated += got_count.saturating_sub(*count);
        match got {
            None => problems.push(format!("{} {k}: no row (want {count})", rfc3339(*start))),
            Some(row) if row.count != *count || row.sum != *sum as f64 => problems.push(format!(
                "{} {k}: count {} sum {} (want {count} {sum})",
                rfc3339(*start),
                row.count,
                row.sum
            )),
            Some(row) if !row.is_final => {
                problems.push(format!("{} {k}: not final yet", rfc3339(*start)))
            }
            Some(_) => {}
        }
    }
    for ((start, k), row) in rows {
        if k.is_empty() {
            match totals.get(start) {
                Some((count, sum)) if row.count == *count && row.sum == *sum as f64 => {}
                Some((count, sum)) => problems.push(format!(
                    "{} total: count {} sum {} (want {count} {sum})",
                    rfc3339(*start),
                    row.count,
                    row.sum
                )),
                None => {
                    verdict.duplicated += row.count;
                    problems.push(format!("{} total: unexpected row", rfc3339(*start)));
                }
            }
        } else if !expected.contains_key(&(*start, k.clone())) {
            verdict.stored += row.count;
            verdict.duplicated += row.count;
            problems.push(format!(
                "{} {k}: unexpected row ({})",
                rfc3339(*start),
                row.count
            ));
        }
    }
    for start in totals.keys() {
        if !rows.contains_key(&(*start, String::new())) {
            problems.push(format!("{} total: no row", rfc3339(*start)));
        }
    }
    verdict.windows = totals.len();
    verdict.series_windows = expected.len();
    verdict.exact = problems.is_empty();
    let shown: Vec<String> = problems.iter().take(12).cloned().collect();
    verdict.detail = if problems.len() > shown.len() {
        format!(
            "{} (and {} more)",
            shown.join("; "),
            problems.len() - shown.len()
        )
    } else {
        shown.join("; ")
    };
    verdict
}

/// Reads [`FAULT_METRIC`]'s rows of `table` every 500 ms until every expected window and
/// series is stored, final, and equal in count and sum (and the per-window totals too), or
/// `timeout` passes; returns the last comparison.
pub fn check_exact(
    db: &QuestDb,
    table: &str,
    expected: &Expected,
    timeout: Duration,
) -> anyhow::Result<Verdict> {
    ensure!(!expected.is_empty(), "nothing was accepted");
    let deadline = Instant::now() + timeout;
    loop {
        let verdict = match fetch_rows(db, table) {
            Ok(rows) => compare(&rows, expected),
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Err(err) => return Err(err),
        };
        if verdict.exact || Instant::now() >= deadline {
            return Ok(verdict);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Prints the summary line, and fails (with the detail and the services' logs) unless the
/// verdict is exact, nothing was lost or duplicated and every batch was answered.
pub fn report(
    scenario: &str,
    tally: &Tally,
    verdict: &Verdict,
    extra: &[(&str, String)],
    logs: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let pass = verdict.exact
        && verdict.lost == 0
        && verdict.duplicated == 0
        && tally.unknown == 0
        && tally.given_up == 0
        && tally.accepted > 0;
    println!("{}", verdict.line(scenario, tally, pass, extra));
    if pass {
        return Ok(());
    }
    bail!(
        "{scenario}: not exact: {}; {} batch(es) unanswered, {} given up\n{}",
        verdict.detail,
        tally.unknown,
        tally.given_up,
        logs()
    )
}

/// The Prometheus metric `name` summed over labels, from `url` (`.../metrics`).
pub fn scrape(url: &str, name: &str) -> anyhow::Result<f64> {
    let mut response = client(Duration::from_secs(10))
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    Ok(metric_sum(&response.body_mut().read_to_string()?, name))
}

/// A loopback TCP proxy in front of several backends (gateways): each new connection goes to
/// the first backend, in the order given, that accepts a connection within 500 ms; bytes are
/// copied both ways until either side closes, then both are closed. A backend that dies takes
/// its connections with it; the clients' reconnections reach the next live one. This is a
/// load balancer with failover, reduced to what the gateway fault test needs.
#[derive(Debug)]
pub struct FailoverProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections handed to each backend.
    counts: Arc<Vec<AtomicU64>>,
    thread: Option<JoinHandle<()>>,
}

impl FailoverProxy {
    /// Listens on a free loopback port in front of `backends` (`http://host:port` or
    /// `host:port`).
    pub fn start(backends: &[String]) -> anyhow::Result<Self> {
        let backends: Vec<SocketAddr> = backends
            .iter()
            .map(|b| {
                b.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .parse::<SocketAddr>()
                    .with_context(|| format!("backend {b}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<Vec<AtomicU64>> =
            Arc::new(backends.iter().map(|_| AtomicU64::new(0)).collect());
        let thread = {
            let stop = stop.clone();
            let counts = counts.clone();
            std::thread::Builder::new()
                .name("failover-proxy".to_owned())
                .spawn(move || {
                    for client in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(client) = client else { continue };
                        let backends = backends.clone();
                        let counts = counts.clone();
                        std::thread::spawn(move || {
                            let _ = proxy_connection(client, &backends, &counts);
                        });
                    }
                })?
        };
        Ok(Self {
            addr,
            stop,
            counts,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`: the one address clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections handed to each backend so far, in the order given.
    pub fn connections(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }
}

impl Drop for FailoverProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn proxy_connection(
    client: TcpStream,
    backends: &[SocketAddr],
    counts: &[AtomicU64],
) -> io::Result<()> {
    let mut chosen = None;
    for (i, backend) in backends.iter().enumerate() {
        if let Ok(stream) = TcpStream::connect_timeout(backend, Duration::from_millis(500)) {
            counts[i].fetch_add(1, Ordering::SeqCst);
            chosen = Some(stream);
            break;
        }
    }
    let Some(backend) = chosen else {
        // No backend: close, as a load balancer without a healthy target does.
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let (mut client_read, mut backend_write) = (client.try_clone()?, backend.try_clone()?);
    let upstream = std::thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut backend_write);
        let _ = backend_write.shutdown(Shutdown::Write);
    });
    let (mut backend_read, mut client_write) = (backend, client);
    let _ = io::copy(&mut backend_read, &mut client_write);
    // The backend closed (or died): close the client entirely, which ends the other copy.
    let _ = client_write.shutdown(Shutdown::Both);
    let _ = backend_read.shutdown(Shutdown::Both);
    let _ = upstream.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_millis() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_705_327_532_250), "2024-01-15T14:05:32.250Z");
    }

    #[test]
    fn compare_counts_lost_and_duplicated() {
        let mut expected = Expected::new();
        expected.insert((0, "k0".into()), (3, 6));
        expected.insert((0, "k1".into()), (2, 2));
        let row = |count: u64, sum: f64| Row {
            count,
            sum,
            is_final: true,
        };
        let mut rows = BTreeMap::new();
        rows.insert((0, "k0".to_owned()), row(3, 6.0));
        rows.insert((0, "k1".to_owned()), row(2, 2.0));
        rows.insert((0, String::new()), row(5, 8.0));
        let verdict = compare(&rows, &expected);
        assert!(verdict.exact, "{}", verdict.detail);
        assert_eq!(
            (verdict.stored, verdict.lost, verdict.duplicated),
            (5, 0, 0)
        );
        rows.insert((0, "k0".to_owned()), row(4, 7.0));
        rows.insert((0, "k1".to_owned()), row(1, 1.0));
        let verdict = compare(&rows, &expected);
        assert!(!verdict.exact);
        assert_eq!((verdict.lost, verdict.duplicated), (1, 1));
    }
}
