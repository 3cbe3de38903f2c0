//! The real `core-aggregator` binary as a child process, for its integration tests: a
//! long-running `run` ([`Aggregator`], restartable on the same admin port) and one-shot
//! subcommands ([`run_command`]: `setup`, `replay`, `recompute`). The binary is found as every
//! rtdash binary is ([`crate::service::service_binary`]).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::service::{service_binary, Service};
use crate::supervised::{Launch, Program};

/// How long a graceful stop may take before `SIGKILL` (the final checkpoint included).
const STOP_GRACE: Duration = Duration::from_secs(60);

/// The `core-aggregator` binary to run.
fn binary() -> anyhow::Result<std::path::PathBuf> {
    service_binary("core-aggregator", "core-aggregator")
}

/// How to run an aggregator.
#[derive(Clone, Debug)]
pub struct AggregatorOptions {
    /// `instance_id` (stable across restarts of this handle).
    pub instance_id: String,
    /// `nats://...`.
    pub nats_url: String,
    /// QuestDB `host:port` (HTTP).
    pub questdb_http: String,
    /// QuestDB table.
    pub table: String,
    /// Partition count.
    pub partitions: u32,
    /// Further settings as `(key, value)`, the key relative to `RTDASH_CORE_AGGREGATOR__`
    /// (e.g. `("WINDOWS__ALLOWED_LATENESS_MS", "1000")`).
    pub settings: Vec<(String, String)>,
    /// Further environment variables, full names (e.g. `OTEL_BSP_SCHEDULE_DELAY`).
    pub env: Vec<(String, String)>,
}

impl AggregatorOptions {
    /// Options with test-friendly timings: 300 ms checkpoints, 3 s leases, 5 s ack wait,
    /// in-memory streams are *not* used (the store survives aggregator crashes either way).
    pub fn new(instance_id: &str, nats_url: &str, questdb_http: &str, table: &str) -> Self {
        Self {
            instance_id: instance_id.to_owned(),
            nats_url: nats_url.to_owned(),
            questdb_http: questdb_http.to_owned(),
            table: table.to_owned(),
            partitions: 4,
            settings: vec![
                ("CHECKPOINT__INTERVAL_MS".into(), "300".into()),
                ("LEASE__TTL_MS".into(), "3000".into()),
                ("CONSUMER__ACK_WAIT_MS".into(), "5000".into()),
                ("WRITER__PROVISIONAL_INTERVAL_MS".into(), "200".into()),
                ("WRITER__TIER_INTERVAL_MS".into(), "1000".into()),
                ("WRITER__FLUSH_MS".into(), "50".into()),
                // The tests' webhook receivers listen on loopback, which webhooks may not
                // reach unless the operator allows it.
                (
                    "ALERTS__NOTIFIER__ALLOW_DESTINATIONS".into(),
                    "[\"127.0.0.1\"]".into(),
                ),
            ],
            env: Vec::new(),
        }
    }

    /// Sets (or replaces) one setting.
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.settings.retain(|(k, _)| k != key);
        self.settings.push((key.to_owned(), value.to_string()));
        self
    }

    fn env(&self, admin_port: u16) -> Vec<(String, String)> {
        let mut env = vec![
            ("RTDASH_NATS__URL".to_owned(), self.nats_url.clone()),
            ("RTDASH_QUESTDB__HTTP".to_owned(), self.questdb_http.clone()),
            ("RTDASH_QUESTDB__TABLE".to_owned(), self.table.clone()),
            (
                "RTDASH_STREAMS__PARTITIONS".to_owned(),
                self.partitions.to_string(),
            ),
            (
                "RTDASH_CORE_AGGREGATOR__ADMIN_LISTEN".to_owned(),
                format!("127.0.0.1:{admin_port}"),
            ),
            (
                "RTDASH_CORE_AGGREGATOR__INSTANCE_ID".to_owned(),
                self.instance_id.clone(),
            ),
        ];
        env.extend(
            self.settings
                .iter()
                .map(|(k, v)| (format!("RTDASH_CORE_AGGREGATOR__{k}"), v.clone())),
        );
        env.extend(self.env.iter().cloned());
        env
    }
}

/// A `core-aggregator run` child process. Killed on drop.
#[derive(Debug)]
pub struct Aggregator {
    options: AggregatorOptions,
    /// Declared before the directory: killed before its log is removed.
    service: Service,
    /// Holds `aggregator.log` (appended to across restarts).
    _log_dir: TempDir,
}

impl Aggregator {
    /// Starts an aggregator and waits until `/readyz` answers 200.
    pub fn start(options: AggregatorOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rtdash-aggregator-")
            .tempdir()?;
        let program = Program::new(binary()?)
            .arg("run")
            .env_default("RUST_LOG", "info,core_aggregator=debug");
        let launch = Launch::new(
            "core-aggregator",
            program,
            dir.path().join("aggregator.log"),
        )
        .stop_grace(STOP_GRACE);
        let service = Service::start_launch(launch, |admin_port| options.env(admin_port))?;
        Ok(Self {
            options,
            service,
            _log_dir: dir,
        })
    }

    /// The options it runs with.
    pub fn options(&self) -> &AggregatorOptions {
        &self.options
    }

    /// `http://127.0.0.1:<admin port>`.
    pub fn admin_url(&self) -> String {
        self.service.url()
    }

    /// Its log (stdout and stderr, all runs).
    pub fn log_path(&self) -> &Path {
        self.service.log_path()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.service.log_tail(lines)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.service.is_running()
    }

    /// The running process's id, `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.service.pid()
    }

    /// Sends `signal` to the running process group (`SIGSTOP`/`SIGCONT`: a pause).
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        self.service.signal(signal)
    }

    /// `SIGKILL`: no checkpoint, no lease release.
    pub fn kill(&mut self) {
        self.service.kill();
    }

    /// `SIGTERM` and wait (up to 60 s) for the graceful shutdown; returns whether it exited
    /// with status 0.
    pub fn stop(&mut self) -> bool {
        self.service.stop().is_none_or(|status| status.success())
    }

    /// Starts it again (same instance id, admin port and settings), after stopping it with
    /// `SIGKILL` if it runs.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.service.restart()
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> anyhow::Result<String> {
        self.service.metrics_text()
    }

    /// The sum over every label set of metric `name` (0 when absent).
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        self.service.metric(name)
    }

    /// Partitions it owns now (`rtdash_core_partitions_owned`; -1 when it does not answer).
    pub fn owned_partitions(&self) -> f64 {
        self.metric("rtdash_core_partitions_owned").unwrap_or(-1.0)
    }
}

/// Runs `core-aggregator <args>` to completion with `options`' environment; returns its
/// combined output, failing when it exits non-zero.
pub fn run_command(options: &AggregatorOptions, args: &[&str]) -> anyhow::Result<String> {
    let program = Program::new(binary()?)
        .args(args)
        .clear_rtdash_env()
        .envs(options.env(free_port()?));
    let output = program.command().output().context("run core-aggregator")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!(
            "core-aggregator {} failed ({}):\n{text}",
            args.join(" "),
            output.status
        );
    }
    Ok(text)
}
