//! The whole rtdash pipeline on free loopback ports, for end-to-end tests: a real nats-server
//! (one per stack), the test binary's shared QuestDB (a table per stack), and the three
//! services as their real binaries, configured the way an operator would, through
//! `RTDASH_...` environment variables:
//!
//! ```text
//! test --HTTP--> edge-agent --JetStream--> core-aggregator --ILP--> QuestDB <--SQL-- gateway --SSE/REST--> test
//! ```
//!
//! The binaries are looked up next to the test executable (`target/<profile>/<name>`), or taken
//! from `RTDASH_CORE_AGGREGATOR_BIN`, `RTDASH_GATEWAY_BIN`, `RTDASH_EDGE_AGENT_BIN`. A plain
//! `cargo test` does not build other packages' binaries: run `cargo build --workspace --bins`
//! first (`./deploy/test.sh` does). A binary older than its crate's sources (or those of
//! `shared/` and `runtime/`) is refused, so a test never runs yesterday's code.
//!
//! Every service is a [`ServiceProcess`]: its own process group, killed on drop and when the
//! test process dies; logs in the stack's temporary directory ([`Stack::logs`] prints their
//! ends when a test fails).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;

use crate::aggregator::{Aggregator, AggregatorOptions};
use crate::http;
use crate::ports::free_port;
use crate::process::{is_port_conflict, ServiceProcess};
use crate::{unique_name, NatsServer, QuestDb};

/// How long a service may take to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Attempts at a start when a picked port turns out to be taken.
const PORT_ATTEMPTS: usize = 3;

/// The binary `name` of workspace package directory `package` (e.g. `("gateway", "gateway")`):
/// `$RTDASH_<NAME>_BIN`, else `target/<profile>/<name>` beside the test executable, refused
/// when older than the sources it is built from.
pub fn service_binary(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    let var = format!("RTDASH_{}_BIN", name.to_ascii_uppercase().replace('-', "_"));
    if let Some(path) = std::env::var_os(&var) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locate the test executable")?;
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("unexpected test executable path {}", exe.display()))?;
    let binary = profile_dir.join(name);
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .map_err(|_| {
            anyhow!(
                "{name} binary not found at {}: build the services first with \
                 `cargo build --workspace --bins` (./deploy/test.sh does), or point {var} at one",
                binary.display()
            )
        })?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sources = [
        workspace.join(package).join("src"),
        workspace.join(package).join("Cargo.toml"),
        workspace.join("shared/src"),
        workspace.join("runtime/src"),
    ];
    if let Some((newest, path)) = newest_file(&sources) {
        if newest > built + Duration::from_secs(1) {
            bail!(
                "{name} binary {} is older than {}: rebuild with `cargo build --workspace --bins`",
                binary.display(),
                path.display()
            );
        }
    }
    Ok(binary)
}

/// The most recently modified file under `roots` (directories walked), with its time.
fn newest_file(roots: &[PathBuf]) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    let mut stack: Vec<PathBuf> = roots.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(modified) = meta.modified() {
            if newest.as_ref().is_none_or(|(time, _)| modified > *time) {
                newest = Some((modified, path));
            }
        }
    }
    newest
}

/// A service binary running as a child process (gateway, edge-agent), answering HTTP on a free
/// loopback port. Killed on drop.
#[derive(Debug)]
pub struct Service {
    name: String,
    port: u16,
    log: PathBuf,
    process: Option<ServiceProcess>,
}

impl Service {
    /// Starts `binary` with the environment `env(port)` on a free `port` (inherited `RTDASH_*`
    /// variables removed), output appended to `<dir>/<name>.log`, and waits until
    /// `http://127.0.0.1:<port>/readyz` answers 2xx. A start that fails because the port was
    /// taken meanwhile is retried on another port.
    pub fn start(
        name: &str,
        binary: &Path,
        dir: &Path,
        env: impl Fn(u16) -> Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            let mut command = Command::new(binary);
            for (key, _) in std::env::vars() {
                if key.starts_with("RTDASH_") {
                    command.env_remove(key);
                }
            }
            command.envs(env(port));
            if std::env::var_os("RUST_LOG").is_none() {
                command.env("RUST_LOG", "info");
            }
            let mut process = ServiceProcess::spawn(name, command, &log)?;
            let ready = format!("http://127.0.0.1:{port}/readyz");
            match process.wait_ready(READY_TIMEOUT, || http::is_ok(&ready)) {
                Ok(()) => {
                    return Ok(Self {
                        name: name.to_owned(),
                        port,
                        log,
                        process: Some(process),
                    })
                }
                Err(err) if attempt < PORT_ATTEMPTS && is_port_conflict(&format!("{err:#}")) => {
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Its name (`gateway`, `edge-agent`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.try_exit().is_none())
    }

    /// Graceful stop: `SIGTERM`, `SIGKILL` after 30 s. `None` when it was not running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.process
            .take()
            .map(|mut process| process.terminate(STOP_GRACE))
    }

    /// Crash stop: `SIGKILL` to its process group, no shutdown. `None` when it was not running.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.process.take().map(|mut process| process.kill())
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> anyhow::Result<String> {
        crate::aggregator::metrics_text_of(&self.url())
    }

    /// The sum over every label set of metric `name` (0 when absent).
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        Ok(crate::aggregator::metric_sum(&self.metrics_text()?, name))
    }
}

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

        let mut aggregator_options = AggregatorOptions::new(
            &unique_name("agg"),
            &nats_url,
            &db.http_addr().to_string(),
            &table,
        );
        aggregator_options.partitions = options.partitions;
        for (key, value) in &options.aggregator {
            aggregator_options = aggregator_options.set(key, value);
        }
        aggregator_options.env.extend(options.env.iter().cloned());
        let aggregator = Aggregator::start(aggregator_options).context("start core-aggregator")?;

        let shared = |extra: &[(&str, String)]| -> Vec<(String, String)> {
            let mut env = vec![
                ("RTDASH_NATS__URL".to_owned(), nats_url.clone()),
                ("RTDASH_STREAMS__PARTITIONS".to_owned(), partitions.clone()),
            ];
            env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
            env.extend(options.env.iter().cloned());
            env
        };
        let gateway = {
            let binary = service_binary("gateway", "gateway")?;
            let pg = db.pg_addr().to_string();
            Service::start("gateway", &binary, dir.path(), |port| {
                let mut env = shared(&[
                    ("RTDASH_QUESTDB__PG_ADDR", pg.clone()),
                    ("RTDASH_QUESTDB__TABLE", table.clone()),
                    ("RTDASH_GATEWAY__LISTEN", format!("127.0.0.1:{port}")),
                    (
                        "RTDASH_GATEWAY__WEB_ROOT",
                        dir.path().join("no-web").display().to_string(),
                    ),
                ]);
                env.extend(component_env("GATEWAY", &options.gateway));
                env
            })
            .context("start gateway")?
        };
        let agent = {
            let binary = service_binary("edge-agent", "edge-agent")?;
            let state = dir.path().join("edge-agent");
            Service::start("edge-agent", &binary, dir.path(), |port| {
                let mut env = shared(&[
                    ("RTDASH_EDGE_AGENT__LISTEN", format!("127.0.0.1:{port}")),
                    ("RTDASH_EDGE_AGENT__STATE_DIR", state.display().to_string()),
                    ("RTDASH_EDGE_AGENT__AGENT_ID", "e2e-agent".to_owned()),
                ]);
                env.extend(component_env("EDGE_AGENT", &options.agent));
                env
            })
            .context("start edge-agent")?
        };
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

/// `(KEY, value)` settings as `RTDASH_<COMPONENT>__KEY` variables.
fn component_env(component: &str, settings: &[(String, String)]) -> Vec<(String, String)> {
    settings
        .iter()
        .map(|(k, v)| (format!("RTDASH_{component}__{k}"), v.clone()))
        .collect()
}
