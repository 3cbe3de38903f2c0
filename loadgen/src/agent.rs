//! Client of the edge agent's ingest API (`POST /v1/events`), with the answers classified the
//! way the load generator counts them (see the agent's `ingest::response`):
//!
//! - `202` batch: `{"accepted": n, "rejected": m, ...}`; single event: `{"status": "accepted"}`;
//! - `400` with per-item counts (every item rejected) or without (the body as a whole);
//! - `413`: the whole batch rejected; `429` / `503` with `Retry-After`: overloaded, nothing
//!   taken; anything else: an error.

use bytes::Bytes;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use std::time::Duration;

/// Body encodings the agent accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BodyFormat {
    /// A JSON array of events (`application/json`).
    Json,
    /// One event per line (`application/x-ndjson`).
    Ndjson,
}

impl BodyFormat {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            BodyFormat::Json => "application/json",
            BodyFormat::Ndjson => "application/x-ndjson",
        })
    }
}

/// What the agent did with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The agent answered; `accepted + rejected` items were judged.
    Judged {
        /// Items taken.
        accepted: u64,
        /// Items refused (validation).
        rejected: u64,
    },
    /// `429` or `503`: nothing taken; retry after this long (if the agent said).
    Overloaded {
        /// HTTP status.
        status: u16,
        /// `Retry-After`, when present.
        retry_after: Option<Duration>,
    },
    /// Any other status.
    Failed {
        /// HTTP status.
        status: u16,
    },
}

#[derive(Deserialize)]
struct BatchAnswer {
    accepted: Option<u64>,
    rejected: Option<u64>,
    status: Option<String>,
}

/// A pooled HTTP client for one edge agent.
#[derive(Clone, Debug)]
pub struct AgentClient {
    client: reqwest::Client,
    url: String,
}

/// A `reqwest` client suited to load generation: HTTP/1.1, keep-alive pool large enough for
/// `connections` concurrent requests, no Nagle delay.
pub fn http_client(connections: usize, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections.max(1))
        .pool_idle_timeout(Duration::from_secs(90))
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .build()
}

impl AgentClient {
    /// A client for the agent at `base` (e.g. `http://127.0.0.1:8081`).
    pub fn new(base: &str, client: reqwest::Client) -> Self {
        Self {
            client,
            url: format!("{}/v1/events", base.trim_end_matches('/')),
        }
    }

    /// Posts one body of `items` events; transport errors are `Err`.
    pub async fn post(
        &self,
        body: Bytes,
        format: BodyFormat,
        items: u64,
    ) -> Result<Outcome, reqwest::Error> {
        let response = self
            .client
            .post(&self.url)
            .headers(crate::credentials::agent_headers())
            .header(CONTENT_TYPE, format.content_type())
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await?;
        Ok(classify(status, retry_after, &bytes, items))
    }
}

/// Classifies an answer (see the module docs).
pub fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    items: u64,
) -> Outcome {
    let answer: Option<BatchAnswer> = serde_json::from_slice(body).ok();
    match status.as_u16() {
        200..=299 => match answer {
            Some(BatchAnswer {
                accepted: Some(accepted),
                rejected,
                ..
            }) => Outcome::Judged {
                accepted,
                rejected: rejected.unwrap_or(0),
            },
            Some(BatchAnswer {
                status: Some(_), ..
            }) => Outcome::Judged {
                accepted: 1,
                rejected: 0,
            },
            _ => Outcome::Judged {
                accepted: items,
                rejected: 0,
            },
        },
        400 | 413 | 415 => match answer {
            Some(BatchAnswer {
                accepted: Some(accepted),
                rejected: Some(rejected),
                ..
            }) => Outcome::Judged { accepted, rejected },
            _ => Outcome::Judged {
                accepted: 0,
                rejected: items,
            },
        },
        429 | 503 => Outcome::Overloaded {
            status: status.as_u16(),
            retry_after,
        },
        other => Outcome::Failed { status: other },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        let ok = classify(
            StatusCode::ACCEPTED,
            None,
            br#"{"accepted":998,"rejected":2,"errors":[]}"#,
            1000,
        );
        assert_eq!(
            ok,
            Outcome::Judged {
                accepted: 998,
                rejected: 2
            }
        );
        let single = classify(
            StatusCode::ACCEPTED,
            None,
            br#"{"event_id":"x","status":"accepted"}"#,
            1,
        );
        assert_eq!(
            single,
            Outcome::Judged {
                accepted: 1,
                rejected: 0
            }
        );
        let all_bad = classify(StatusCode::BAD_REQUEST, None, br#"{"error":{}}"#, 5);
        assert_eq!(
            all_bad,
            Outcome::Judged {
                accepted: 0,
                rejected: 5
            }
        );
        let busy = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(1)),
            b"",
            5,
        );
        assert!(matches!(busy, Outcome::Overloaded { status: 429, .. }));
        assert_eq!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, None, b"", 5),
            Outcome::Failed { status: 500 }
        );
    }
}
