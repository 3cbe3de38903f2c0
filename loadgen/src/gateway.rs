//! Client of the gateway's REST API (`docs/api.md`): metric definitions, dashboards, and the
//! dashboard stream.

use anyhow::{bail, Context};
use reqwest::header::ACCEPT;
use rtdash_shared::metric::MetricDefinition;
use serde::Deserialize;
use serde_json::{json, Value};

/// A widget as the probes need it back: its id and metric.
#[derive(Clone, Debug, Deserialize)]
pub struct Widget {
    /// Id chosen by the gateway.
    pub widget_id: String,
    /// Metric the widget watches.
    pub metric_name: String,
}

/// A dashboard as the probes need it back.
#[derive(Clone, Debug, Deserialize)]
pub struct Dashboard {
    /// Id chosen by the gateway.
    pub dashboard_id: String,
    /// Name.
    pub name: String,
    /// Widgets, in order.
    #[serde(default)]
    pub widgets: Vec<Widget>,
}

#[derive(Deserialize)]
struct DashboardList {
    dashboards: Vec<Dashboard>,
}

/// A client for one gateway.
#[derive(Clone, Debug)]
pub struct GatewayClient {
    client: reqwest::Client,
    base: String,
}

impl GatewayClient {
    /// A client for the gateway at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, client: reqwest::Client) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Creates or replaces a tenant's metric definition (`PUT /v1/metric-definitions/{name}`,
    /// which creates it when missing). `def.tenant_id` must be set.
    pub async fn put_metric(&self, def: &MetricDefinition) -> anyhow::Result<()> {
        let url = format!("{}/v1/metric-definitions/{}", self.base, def.name);
        let response = self
            .client
            .put(&url)
            .headers(crate::credentials::gateway_headers())
            .json(def)
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("PUT {url}: {status}: {body}");
        }
        Ok(())
    }

    /// The tenant's dashboards.
    pub async fn dashboards(&self, tenant: &str) -> anyhow::Result<Vec<Dashboard>> {
        let url = format!("{}/v1/dashboards", self.base);
        let response = self
            .client
            .get(&url)
            .headers(crate::credentials::gateway_headers())
            .query(&[("tenant_id", tenant)])
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("GET {url}: {status}: {body}");
        }
        let list: DashboardList = response.json().await.context("dashboard list")?;
        Ok(list.dashboards)
    }

    /// Creates a dashboard with `widgets` (widget objects without ids, see docs/api.md).
    pub async fn create_dashboard(
        &self,
        tenant: &str,
        name: &str,
        description: &str,
        widgets: &[Value],
    ) -> anyhow::Result<Dashboard> {
        let url = format!("{}/v1/dashboards", self.base);
        let body = json!({
            "tenant_id": tenant,
            "name": name,
            "description": description,
            "widgets": widgets,
        });
        let response = self
            .client
            .post(&url)
            .headers(crate::credentials::gateway_headers())
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("POST {url}: {status}: {body}");
        }
        response.json().await.context("created dashboard")
    }

    /// The dashboard named `name`, created with `widgets` if the tenant has none of that name
    /// (idempotent: a second run reuses the first run's dashboard).
    pub async fn ensure_dashboard(
        &self,
        tenant: &str,
        name: &str,
        description: &str,
        widgets: &[Value],
    ) -> anyhow::Result<Dashboard> {
        if let Some(existing) = self
            .dashboards(tenant)
            .await?
            .into_iter()
            .find(|d| d.name == name)
        {
            return Ok(existing);
        }
        self.create_dashboard(tenant, name, description, widgets)
            .await
    }

    /// Deletes a dashboard (missing is fine).
    pub async fn delete_dashboard(&self, tenant: &str, id: &str) -> anyhow::Result<()> {
        let url = format!("{}/v1/dashboards/{id}", self.base);
        let response = self
            .client
            .delete(&url)
            .headers(crate::credentials::gateway_headers())
            .query(&[("tenant_id", tenant)])
            .send()
            .await
            .with_context(|| format!("DELETE {url}"))?;
        let status = response.status();
        if !status.is_success() && status != reqwest::StatusCode::NOT_FOUND {
            bail!("DELETE {url}: {status}");
        }
        Ok(())
    }

    /// Opens the dashboard's Server-Sent Events stream; the caller reads the body.
    pub async fn open_stream(
        &self,
        client: &reqwest::Client,
        dashboard_id: &str,
        tenant: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        client
            .get(format!("{}/v1/dashboards/{dashboard_id}/stream", self.base))
            .headers(crate::credentials::gateway_headers())
            .query(&[("tenant_id", tenant)])
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
    }
}
