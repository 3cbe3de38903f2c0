//! Async HTTP to the services under test (gateway REST, edge agent ingest, `/metrics`,
//! `/readyz`), answering `(status, JSON body)`: what every test asserts on.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::prometheus::metric_sum;

/// A reqwest client for loopback sending the operator key ([`crate::auth`]): no proxy,
/// requests time out after `timeout` (`None`: never, for streams). Operator calls name their
/// tenant (`tenant_id`); tests about access control use [`crate::auth::key_client`] or
/// [`anonymous_client`].
pub fn http_client(timeout: Option<Duration>) -> reqwest::Client {
    crate::auth::key_client(crate::auth::operator_key(), timeout)
}

/// A reqwest client for loopback sending no credential.
pub fn anonymous_client(timeout: Option<Duration>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().no_proxy();
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    builder.build().expect("an HTTP client")
}

/// `(status, body)` of `response`: the body as JSON, a JSON string when it is not JSON, `null`
/// when empty.
pub async fn decode(response: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let text = response.text().await.context("read the answer")?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, body))
}

/// One service's HTTP API at a base URL (`http://127.0.0.1:<port>`).
#[derive(Clone, Debug)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    /// `base` through `http`.
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
        }
    }

    /// `<base><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET <path>`.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.request("GET", path, None, &[]).await
    }

    /// `GET <path>` with `query` encoded.
    pub async fn get_query(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<(u16, Value)> {
        let url = reqwest::Url::parse_with_params(&self.url(path), query)?;
        let response = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        decode(response).await
    }

    /// `POST <path>` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.request("POST", path, Some(body.clone()), &[]).await
    }

    /// `<method> <path>` with an optional JSON body and extra headers.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let verb = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self.http.request(verb, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        decode(response).await
    }

    /// `POST <path>` with a raw body (NDJSON, gzip, bytes that are not JSON) and headers.
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.post(self.url(path)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        decode(response).await
    }

    /// The sum over every label set of metric `name` in `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .bearer_auth(crate::auth::operator_key())
            .send()
            .await
            .context("GET /metrics")?
            .text()
            .await?;
        Ok(metric_sum(&text, name))
    }

    /// Waits (polling every 50 ms) until `/readyz` answers 2xx; fails after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let ready = self
                .http
                .get(self.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{} not ready within {timeout:?}", self.base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
