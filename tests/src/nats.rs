//! A real `nats-server` with JetStream for one test.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use tempfile::TempDir;

use crate::deploy;
use crate::http;
use crate::ports::free_ports;
use crate::process::{is_port_conflict, ServiceProcess};

/// How long a start may take before it counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`NatsServer::stop`] waits after `SIGTERM` before `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Attempts at a first start when a picked port turns out to be taken.
const PORT_ATTEMPTS: usize = 3;

/// Server settings a test may change.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// JetStream `sync_interval`: a duration such as `2m` (the default, as in nats-server:
    /// acks may precede fsync) or `always` (fsync every write).
    pub sync_interval: String,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            sync_interval: "2m".to_owned(),
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
    /// `nats.conf`, `nats.log` and the JetStream store (`store/`).
    dir: TempDir,
    /// `None` while stopped.
    process: Option<ServiceProcess>,
}

impl NatsServer {
    /// Starts a server with the default [`NatsOptions`] and waits until JetStream is ready.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(NatsOptions::default())
    }

    /// Starts a server with `options` and waits until JetStream is ready.
    pub fn start_with(options: NatsOptions) -> anyhow::Result<Self> {
        let mut dir = tempfile::Builder::new().prefix("rtdash-nats-").tempdir()?;
        let store = dir.path().join("store");
        let mut attempt = 1;
        loop {
            let [port, monitor_port] = free_ports()?;
            let conf = deploy::render(
                deploy::NATS_CONF_TEMPLATE,
                &[
                    ("NATS_PORT", &port.to_string()),
                    ("NATS_MONITOR_PORT", &monitor_port.to_string()),
                    ("NATS_STORE_DIR", &store.display().to_string()),
                    ("NATS_SYNC_INTERVAL", &options.sync_interval),
                ],
            )?;
            std::fs::write(dir.path().join("nats.conf"), conf)?;
            let mut server = Self {
                port,
                monitor_port,
                dir,
                process: None,
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(err) if attempt < PORT_ATTEMPTS && is_port_conflict(&format!("{err:#}")) => {
                    attempt += 1;
                    dir = server.dir; // never started: retry on other ports
                }
                Err(err) => return Err(err),
            }
        }
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
        format!("http://127.0.0.1:{}", self.monitor_port)
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
        self.process
            .as_mut()
            .is_some_and(|p| p.try_exit().is_none())
    }

    /// Graceful stop (`SIGTERM`, `SIGKILL` after 10 s). Port and store are kept for
    /// [`restart`](Self::restart). Stopping a stopped server does nothing.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate(STOP_GRACE);
        }
    }

    /// Crash stop (`SIGKILL`). Port and store are kept for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again on the same port with the same store, stopping it first if it
    /// runs, and waits until JetStream is ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch()
            .with_context(|| format!("restart nats-server on port {}", self.port))
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(deploy::nats_server()?);
        command.arg("-c").arg(self.dir.path().join("nats.conf"));
        let mut process = ServiceProcess::spawn("nats-server", command, &self.log_path())?;
        let health = format!("{}/healthz?js-enabled-only=true", self.monitor_url());
        process.wait_ready(READY_TIMEOUT, || http::is_ok(&health))?;
        self.process = Some(process);
        Ok(())
    }
}
