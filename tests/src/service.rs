//! rtdash's own binaries (core-aggregator, gateway, edge-agent) as child processes, configured
//! the way an operator would, through `RTDASH_...` environment variables, each answering HTTP
//! (`/readyz`, `/metrics`) on a free loopback port.
//!
//! The binaries are looked up next to the test executable (`target/<profile>/<name>`), or taken
//! from `RTDASH_CORE_AGGREGATOR_BIN`, `RTDASH_GATEWAY_BIN`, `RTDASH_EDGE_AGENT_BIN`. A plain
//! `cargo test` does not build other packages' binaries: run `cargo build --workspace --bins`
//! first (`./deploy/test.sh` does). A binary older than its crate's sources (or those of
//! `shared/` and `runtime/`) is refused, so a test never runs yesterday's code.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context};

use crate::ports::{free_port, retry_port_conflicts};
use crate::prometheus::{metric_sum, metrics_text};
use crate::supervised::{Launch, Program, Supervised};

/// How long a service may take to answer `/readyz` (NATS topology, QuestDB table).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before `SIGKILL`, unless the caller's [`Launch`] says.
const STOP_GRACE: Duration = Duration::from_secs(30);

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

/// An rtdash service binary running as a child process, answering HTTP on a loopback port.
/// Killed on drop.
#[derive(Debug)]
pub struct Service {
    port: u16,
    server: Supervised,
}

impl Service {
    /// Starts `binary` as `name` with the environment `env(port)` on a free `port`, output
    /// appended to `<dir>/<name>.log`, `RUST_LOG` `info` unless the test sets it, 30 s to stop
    /// gracefully. See [`start_launch`](Self::start_launch).
    pub fn start(
        name: &str,
        binary: &Path,
        dir: &Path,
        env: impl Fn(u16) -> Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        let launch = Launch::new(
            name,
            Program::new(binary).env_default("RUST_LOG", "info"),
            dir.join(format!("{name}.log")),
        )
        .stop_grace(STOP_GRACE);
        Self::start_launch(launch, env)
    }

    /// Starts `launch` (program, log, stop grace) with the environment `env(port)` on a free
    /// `port` (inherited `RTDASH_*` variables removed) and waits until
    /// `http://127.0.0.1:<port>/readyz` answers 2xx. A start that fails because the port was
    /// taken meanwhile is retried on another port; a [`restart`](Self::restart) keeps it.
    pub fn start_launch(
        launch: Launch,
        env: impl Fn(u16) -> Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        retry_port_conflicts(|| {
            let port = free_port()?;
            let launch = launch
                .clone()
                .map_program(|program| program.clear_rtdash_env().envs(env(port)))
                .ready_when_ok(format!("http://127.0.0.1:{port}/readyz"), READY_TIMEOUT);
            Ok(Self {
                port,
                server: Supervised::start(launch)?,
            })
        })
    }

    /// Its name (`gateway`, `edge-agent`).
    pub fn name(&self) -> &str {
        self.server.name()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log (stdout and stderr, all runs).
    pub fn log_path(&self) -> &Path {
        self.server.log_path()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.server.log_tail(lines)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.server.is_running()
    }

    /// Graceful stop: `SIGTERM`, `SIGKILL` after the grace. `None` when it was not running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.server.stop()
    }

    /// Crash stop: `SIGKILL` to its process group, no shutdown. `None` when it was not running.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.server.kill()
    }

    /// Starts it again on the same port with the same environment (stopping it gracefully
    /// first if it runs) and waits until it is ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.server.restart()
    }

    /// Starts it again on the same port with the same environment without waiting until it
    /// is ready (see [`Supervised::respawn`]); [`wait_ready`](Self::wait_ready) next.
    pub fn respawn(&mut self) -> anyhow::Result<()> {
        self.server.respawn()
    }

    /// Waits until its `/readyz` answers 2xx (the launch's timeout).
    pub fn wait_ready(&mut self) -> anyhow::Result<()> {
        self.server.wait_ready(None)
    }

    /// The running process's id (also its process group's), `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.server.process().map(|p| p.id())
    }

    /// Sends `signal` to the running process group (`SIGSTOP`/`SIGCONT`: a pause).
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        self.server.signal(signal)
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> anyhow::Result<String> {
        metrics_text(&self.url())
    }

    /// The sum over every label set of metric `name` (0 when absent).
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        Ok(metric_sum(&self.metrics_text()?, name))
    }
}
