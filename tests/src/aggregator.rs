//! The real `core-aggregator` binary as a child process, for its integration tests.
//!
//! The binary is looked up next to the test executable (`target/<profile>/core-aggregator`),
//! or taken from `RTDASH_CORE_AGGREGATOR_BIN`. `cargo test --workspace` builds it; with
//! `cargo test -p rtdash-tests` build it first (`cargo build -p core-aggregator`). A binary
//! older than the crate's sources is refused, so a test never runs yesterday's code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;

use crate::http;
use crate::ports::free_port;
use crate::process::ServiceProcess;

/// How long a start may take (NATS topology, QuestDB table) before it counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `core-aggregator` binary to run.
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("RTDASH_CORE_AGGREGATOR_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locate the test executable")?;
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("unexpected test executable path {}", exe.display()))?;
    let binary = profile_dir.join("core-aggregator");
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .map_err(|_| {
            anyhow!(
                "core-aggregator binary not found at {}: build it first with \
                 `cargo build -p core-aggregator` (or run `cargo test --workspace`), \
                 or point RTDASH_CORE_AGGREGATOR_BIN at one",
                binary.display()
            )
        })?;
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core-aggregator");
    if let Some(newest) = newest_source(&sources) {
        if newest > built + Duration::from_secs(1) {
            bail!(
                "core-aggregator binary {} is older than its sources: rebuild it with \
                 `cargo build -p core-aggregator`",
                binary.display()
            );
        }
    }
    Ok(binary)
}

fn newest_source(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack = vec![dir.join("src"), dir.join("Cargo.toml")];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(modified) = meta.modified() {
            newest = Some(newest.map_or(modified, |n: SystemTime| n.max(modified)));
        }
    }
    newest
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
                ("WRITER__FLUSH_MS".into(), "50".into()),
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
    admin_port: u16,
    /// Holds `aggregator.log` (appended to across restarts).
    dir: TempDir,
    process: Option<ServiceProcess>,
}

impl Aggregator {
    /// Starts an aggregator and waits until `/readyz` answers 200.
    pub fn start(options: AggregatorOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rtdash-aggregator-")
            .tempdir()?;
        let mut aggregator = Self {
            options,
            admin_port: free_port()?,
            dir,
            process: None,
        };
        aggregator.launch()?;
        Ok(aggregator)
    }

    /// The options it runs with.
    pub fn options(&self) -> &AggregatorOptions {
        &self.options
    }

    /// `http://127.0.0.1:<admin port>`.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// Its log (stdout and stderr, all runs).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("aggregator.log")
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.try_exit().is_none())
    }

    /// `SIGKILL`: no checkpoint, no lease release.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// `SIGTERM` and wait (up to 60 s) for the graceful shutdown; returns whether it exited
    /// with status 0.
    pub fn stop(&mut self) -> bool {
        match self.process.take() {
            Some(mut process) => process.terminate(Duration::from_secs(60)).success(),
            None => true,
        }
    }

    /// Starts it again (same instance id, admin port and settings), after stopping it with
    /// `SIGKILL` if it runs.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.launch()
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(binary()?);
        command.arg("run");
        for (key, _) in std::env::vars() {
            if key.starts_with("RTDASH_") {
                command.env_remove(key);
            }
        }
        command.envs(self.options.env(self.admin_port));
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info,core_aggregator=debug");
        }
        let mut process = ServiceProcess::spawn("core-aggregator", command, &self.log_path())?;
        let ready = format!("{}/readyz", self.admin_url());
        process.wait_ready(READY_TIMEOUT, || http::is_ok(&ready))?;
        self.process = Some(process);
        Ok(())
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> anyhow::Result<String> {
        metrics_text_of(&self.admin_url())
    }

    /// The sum over every label set of metric `name` (0 when absent).
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        Ok(metric_sum(&self.metrics_text()?, name))
    }
}

/// The Prometheus text of `GET <base_url>/metrics`.
pub fn metrics_text_of(base_url: &str) -> anyhow::Result<String> {
    let url = format!("{base_url}/metrics");
    let mut response = http::agent()
        .get(&url)
        .call()
        .with_context(|| url.clone())?;
    Ok(response.body_mut().read_to_string()?)
}

/// Sums the samples of `name` in Prometheus text (all label sets; 0 when absent).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = if let Some(labelled) = rest.strip_prefix('{') {
                labelled.rsplit_once('}')?.1
            } else if rest.starts_with(' ') {
                rest
            } else {
                return None;
            };
            value.trim().split(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}

/// Runs `core-aggregator <args>` to completion with `options`' environment; returns its
/// combined output, failing when it exits non-zero.
pub fn run_command(options: &AggregatorOptions, args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new(binary()?);
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("RTDASH_") {
            command.env_remove(key);
        }
    }
    command.envs(options.env(free_port()?));
    let output = command.output().context("run core-aggregator")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_over_labels() {
        let text = "# HELP x y\nrtdash_a_total 3\nrtdash_a_total_more 7\n\
                    rtdash_b{partition=\"0\"} 1.5\nrtdash_b{partition=\"1\"} 2\n";
        assert_eq!(metric_sum(text, "rtdash_a_total"), 3.0);
        assert_eq!(metric_sum(text, "rtdash_b"), 3.5);
        assert_eq!(metric_sum(text, "rtdash_c"), 0.0);
    }
}
