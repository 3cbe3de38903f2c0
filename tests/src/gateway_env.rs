//! The environment of a gateway test ([`GatewayEnv`]): the gateway in this process against a
//! real nats-server of its own and the shared QuestDB, a table per test, with the requests,
//! rows and live updates the tests make. The `amount` submodule holds the fixture the
//! live-stream tests share.

pub mod amount;

use std::time::Duration;

use gateway::config::GatewayConfig;
use rtdash_shared::messages::WindowUpdate;
use serde_json::{json, Value};

use crate::client::{decode, Api};
use crate::in_process::{gateway_config, InProcessGateway};
use crate::sse::{stream_url, Sse};
use crate::table::{insert_rows, tier_table, Row};
use crate::{unique_name, NatsServer, QuestDb};

/// A running gateway and what it talks to: its own nats-server (in-memory streams), the
/// shared QuestDB, a table of its own.
pub struct GatewayEnv {
    pub nats: NatsServer,
    pub db: &'static QuestDb,
    pub table: String,
    pub gateway: InProcessGateway,
    pub state: gateway::AppState,
    pub base: String,
    /// Sends the operator key ([`crate::auth`]); keeps up to 2,048 idle connections per host
    /// (the fan-out test's viewers).
    pub http: reqwest::Client,
    pub client: async_nats::Client,
}

impl GatewayEnv {
    /// Starts everything; `tune` adjusts the gateway configuration.
    pub async fn start(tune: impl FnOnce(&mut GatewayConfig)) -> GatewayEnv {
        let nats = NatsServer::start().expect("nats-server");
        let db = QuestDb::shared().expect("questdb");
        let table = unique_name("gw");
        let mut config = gateway_config(&nats.url(), &db.pg_addr().to_string(), &table);
        config.streams.storage = "memory".into();
        tune(&mut config);
        let gateway = InProcessGateway::start(config)
            .await
            .expect("gateway starts");
        let client = async_nats::connect(nats.url()).await.expect("nats client");
        GatewayEnv {
            nats,
            db,
            table,
            state: gateway.state.clone(),
            base: gateway.base.clone(),
            gateway,
            http: reqwest::Client::builder()
                .default_headers(crate::auth::bearer_headers(crate::auth::operator_key()))
                .pool_max_idle_per_host(2048)
                .build()
                .expect("client"),
            client,
        }
    }

    /// The gateway's API through [`http`](Self::http).
    pub fn api(&self) -> Api {
        Api::new(self.http.clone(), self.base.clone())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The body of `GET <path>` as text (pages, scripts, `/metrics`).
    pub async fn text(&self, path: &str) -> String {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("a text body")
    }

    /// `GET` answering (status, JSON body or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("request");
        decode(response).await.expect("an answer")
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send_with(method, path, body, &[]).await
    }

    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.api()
            .request(method, path, body, headers)
            .await
            .expect("request")
    }

    /// Creates a metric definition for `tenant`.
    pub async fn define(&self, tenant: &str, definition: Value) {
        let mut definition = definition;
        definition["tenant_id"] = json!(tenant);
        let (status, body) = self
            .send("POST", "/v1/metric-definitions", Some(definition))
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// Creates a dashboard with `widgets`; returns (dashboard id, widget ids).
    pub async fn dashboard(&self, tenant: &str, widgets: Vec<Value>) -> (String, Vec<String>) {
        let (status, body) = self
            .send(
                "POST",
                "/v1/dashboards",
                Some(json!({"tenant_id": tenant, "name": "test", "widgets": widgets})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["dashboard_id"].as_str().expect("id").to_owned();
        let widgets = body["widgets"]
            .as_array()
            .expect("widgets")
            .iter()
            .map(|w| w["widget_id"].as_str().expect("widget id").to_owned())
            .collect();
        (id, widgets)
    }

    /// Inserts rows into this test's table the way the core aggregator writes them, and waits
    /// until they are visible.
    pub fn insert(&self, rows: &[Row]) {
        insert_rows(self.db, &self.table, rows).expect("rows inserted and visible");
    }

    /// Publishes a live update the way the core aggregator does.
    pub async fn publish(&self, update: &WindowUpdate) {
        let bytes =
            rtdash_shared::wire::encode(update, rtdash_shared::wire::Format::Json).expect("encode");
        let subject = rtdash_shared::names::live_subject(&update.tenant_id, &update.metric);
        self.client
            .publish(subject, bytes.into())
            .await
            .expect("publish");
        self.client.flush().await.expect("flush");
    }

    /// Inserts rows into the table of the tier of `window_ms` (`<table>_1h`), as the
    /// aggregators write tier windows.
    pub fn insert_tier(&self, window_ms: i64, rows: &[Row]) {
        insert_rows(self.db, &tier_table(&self.table, window_ms), rows)
            .expect("tier rows inserted and visible");
    }

    /// Publishes live window versions as JSON values (with their `state`, see
    /// [`Row::live`]) in one message, the way the core aggregator batches a subject's
    /// versions.
    pub async fn publish_live(&self, versions: &[Value]) {
        let first = versions.first().expect("a version");
        let subject = rtdash_shared::names::live_subject(
            first["tenant_id"].as_str().expect("tenant"),
            first["metric"].as_str().expect("metric"),
        );
        let bytes = rtdash_shared::wire::encode_view::<rtdash_shared::messages::WindowUpdates, _>(
            versions,
            rtdash_shared::wire::Format::Json,
        )
        .expect("encode");
        self.client
            .publish(subject, bytes.into())
            .await
            .expect("publish");
        self.client.flush().await.expect("flush");
    }

    /// Opens a stream.
    pub async fn stream(&self, tenant: &str, dashboard: &str, last_event_id: Option<&str>) -> Sse {
        Sse::open(
            &self.http,
            &stream_url(&self.base, tenant, dashboard),
            last_event_id,
        )
        .await
        .expect("stream request answered 200")
    }

    /// Cancels the shutdown token and waits for the server to stop.
    pub async fn stop(&mut self) -> Duration {
        self.gateway.stop().await.expect("clean stop")
    }
}
