//! A real `nats-server` with JetStream for one test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tempfile::TempDir;

use crate::deploy;
use crate::ports::{free_ports, retry_port_conflicts};
use crate::supervised::{Launch, Program, Supervised};

/// How long a start may take before it counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`NatsServer::stop`] waits after `SIGTERM` before `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to run a `nats-server` whose `nats.conf` is in `dir` (its log goes to `nats.log`
/// there), ready when `health_url` answers 2xx: the one launch of every server the harness
/// starts (single server, cluster node, edge leaf node).
pub(crate) fn nats_launch(
    name: &str,
    dir: &Path,
    health_url: String,
    ready_timeout: Duration,
    stop_grace: Duration,
) -> anyhow::Result<Launch> {
    let program = Program::new(deploy::nats_server()?)
        .arg("-c")
        .arg(dir.join("nats.conf"));
    Ok(Launch::new(name, program, dir.join("nats.log"))
        .ready_when_ok(health_url, ready_timeout)
        .stop_grace(stop_grace))
}

/// The `http:` line the harness renders for the `MONITORING` / `NATS_MONITORING` placeholder
/// of the server templates: its servers keep a monitoring port on loopback (readiness,
/// `/jsz`, `/leafz`), which the deploy scripts leave off unless `RTDASH_NATS_MONITOR=1`.
pub(crate) fn monitoring_line(port: u16) -> String {
    format!("http: \"127.0.0.1:{port}\"")
}

/// `http://127.0.0.1:<port>`: a monitoring (HTTP) port's base URL.
pub(crate) fn monitor_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Server settings a test may change.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// JetStream `sync_interval`: a duration such as `2m` (the default, as in nats-server:
    /// acks may precede fsync) or `always` (fsync every write).
    pub sync_interval: String,
    /// Appended to the server config: e.g. users and permissions ([`crate::lockdown`]).
    /// Default empty: the harness's servers are open.
    pub extra_conf: String,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            sync_interval: "2m".to_owned(),
            extra_conf: String::new(),
        }
    }
}

/// A nats-server with JetStream on free loopback ports, its config, store and log in a
/// temporary directory. Killed on drop; the directory is removed.
#[derive(Debug)]
pub struct NatsServer {
    /// Client port.
    port: u16,
    /// Monitoring (HTTP) port, for `/healthz`.
    monitor_port: u16,
    /// Declared before `dir`: killed before the directory is removed.
    server: Supervised,
    /// `nats.conf`, `nats.log` and the JetStream store (`store/`).
    dir: TempDir,
}

impl NatsServer {
    /// Starts a server with the default [`NatsOptions`] and waits until JetStream is ready.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(NatsOptions::default())
    }

    /// Starts a server with `options` and waits until JetStream is ready.
    pub fn start_with(options: NatsOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("rtdash-nats-").tempdir()?;
        let store = dir.path().join("store");
        let (port, monitor_port, server) = retry_port_conflicts(|| {
            let [port, monitor_port] = free_ports()?;
            let conf = deploy::render(
                deploy::NATS_CONF_TEMPLATE,
                &[
                    ("NATS_PORT", &port.to_string()),
                    ("NATS_MONITORING", &monitoring_line(monitor_port)),
                    ("NATS_STORE_DIR", &store.display().to_string()),
                    ("NATS_SYNC_INTERVAL", &options.sync_interval),
                ],
            )?;
            let conf = format!("{conf}\n{}\n", options.extra_conf);
            std::fs::write(dir.path().join("nats.conf"), conf)?;
            let health = format!("{}/healthz?js-enabled-only=true", monitor_url(monitor_port));
            let launch = nats_launch("nats-server", dir.path(), health, READY_TIMEOUT, STOP_GRACE)?;
            Ok((port, monitor_port, Supervised::start(launch)?))
        })?;
        Ok(Self {
            port,
            monitor_port,
            server,
            dir,
        })
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port (kept across [`stop`](Self::stop) and [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<monitor port>`: `/healthz`, `/varz`, `/jsz`...
    pub fn monitor_url(&self) -> String {
        monitor_url(self.monitor_port)
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The server's log (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.server.is_running()
    }

    /// Graceful stop (`SIGTERM`, `SIGKILL` after 10 s). Port and store are kept for
    /// [`restart`](Self::restart). Stopping a stopped server does nothing.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Crash stop (`SIGKILL`). Port and store are kept for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts the server again on the same port with the same store, stopping it first if it
    /// runs, and waits until JetStream is ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.server
            .restart()
            .with_context(|| format!("restart nats-server on port {}", self.port))
    }
}
