//! rtdash services started in the test's own process (the library's `start`, not the binary):
//! the gateway ([`InProcessGateway`]) and the edge agent ([`InProcessAgent`]), each on a free
//! loopback port, stopped through its shutdown token.

use std::time::{Duration, Instant};

use anyhow::Context;
use edge_agent::{AgentConfig, AgentHandle};
use gateway::config::GatewayConfig;
use tokio_util::sync::CancellationToken;

use crate::client::Api;

/// The gateway configuration of every in-process test gateway: a free loopback port, no web
/// UI, a 3 s shutdown grace, NATS at `nats_url`, QuestDB's PostgreSQL wire protocol at
/// `pg_addr`, windows in `table`, the harness's operator key ([`crate::auth`]).
pub fn gateway_config(nats_url: &str, pg_addr: &str, table: &str) -> GatewayConfig {
    let mut config = GatewayConfig {
        listen: "127.0.0.1:0".into(),
        web_root: "/nonexistent/rtdash-web".into(),
        shutdown_grace_ms: 3_000,
        ..GatewayConfig::default()
    };
    config.nats.url = nats_url.to_owned();
    config.questdb.pg_addr = pg_addr.to_owned();
    config.questdb.table = table.to_owned();
    config.auth.operator_key_file = Some(crate::auth::shared_operator_key_file().to_owned());
    // The tests' webhook receivers listen on loopback.
    config.webhook_allow_destinations = vec!["127.0.0.1".to_owned()];
    config
}

/// A gateway started in this process with [`gateway::start`]. Dropping it cancels its
/// shutdown token.
pub struct InProcessGateway {
    /// `None` once [`stop`](Self::stop)ped.
    pub running: Option<gateway::Running>,
    pub state: gateway::AppState,
    pub shutdown: CancellationToken,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl InProcessGateway {
    /// Starts the gateway with `config` and returns once it listens.
    pub async fn start(config: GatewayConfig) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        let running = gateway::start(config, shutdown.clone()).await?;
        Ok(Self {
            base: format!("http://{}", running.addr),
            state: running.state.clone(),
            running: Some(running),
            shutdown,
        })
    }

    /// Cancels the shutdown token and waits for the server to stop; returns how long that took.
    pub async fn stop(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.wait().await?;
        }
        Ok(started.elapsed())
    }
}

impl Drop for InProcessGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An edge agent started in this process with [`edge_agent::start`].
#[derive(Debug)]
pub struct InProcessAgent {
    pub handle: AgentHandle,
    pub shutdown: CancellationToken,
    /// Its HTTP API (ingest, `/readyz`, `/metrics`).
    pub api: Api,
}

impl InProcessAgent {
    /// Starts the agent with `config` on a free loopback port, its API reached through `http`;
    /// returns once it listens, ready or not ([`Api::wait_ready`]). Without an
    /// `auth.operator_key_file` the agent is given the harness's operator key
    /// ([`crate::auth`]).
    pub async fn start(mut config: AgentConfig, http: reqwest::Client) -> anyhow::Result<Self> {
        if config.auth.operator_key_file.is_none() {
            config.auth.operator_key_file =
                Some(crate::auth::shared_operator_key_file().to_owned());
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let shutdown = CancellationToken::new();
        let handle = edge_agent::start(config, listener, shutdown.clone()).await?;
        let api = Api::new(http, format!("http://{}", handle.addr()));
        Ok(Self {
            handle,
            shutdown,
            api,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.api.base
    }

    /// `<base>/v1/events`.
    pub fn events_url(&self) -> String {
        self.api.url("/v1/events")
    }

    /// Cancels and waits (30 s at most) for the shutdown sequence.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle.wait())
            .await
            .context("agent shutdown timed out")??;
        Ok(())
    }
}
