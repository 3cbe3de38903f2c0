//! A webhook receiver on loopback for the alert tests: it records every request (time, path,
//! `Idempotency-Key`, JSON body) and answers as the test tells it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use rtdash_shared::time::now_millis;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// When (Unix ms).
    pub at: i64,
    /// Path without the leading `/`.
    pub path: String,
    /// `Idempotency-Key`.
    pub key: String,
    /// JSON body.
    pub body: Value,
    /// What it answered.
    pub answered: u16,
}

impl Received {
    /// `status` of the body (`firing` / `resolved`).
    pub fn status(&self) -> &str {
        self.body["status"].as_str().unwrap_or_default()
    }

    /// A label of the (only) alert.
    pub fn label(&self, name: &str) -> &str {
        self.body["alerts"][0]["labels"][name]
            .as_str()
            .unwrap_or_default()
    }

    /// An annotation of the (only) alert.
    pub fn annotation(&self, name: &str) -> &str {
        self.body["alerts"][0]["annotations"][name]
            .as_str()
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Received>>,
    /// Status answered on every path without its own.
    status: AtomicU16,
    /// Path -> (status, body).
    per_path: Mutex<HashMap<String, (u16, String)>>,
}

/// A webhook receiver on `127.0.0.1:<port>`.
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    inner: Arc<Inner>,
    stop: CancellationToken,
}

async fn hook(
    State(inner): State<Arc<Inner>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let (status, text) = inner
        .per_path
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or_else(|| (inner.status.load(Ordering::SeqCst), "ok".to_owned()));
    inner.requests.lock().unwrap().push(Received {
        at: now_millis(),
        path,
        key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        answered: status,
    });
    (StatusCode::from_u16(status).unwrap(), text)
}

impl Receiver {
    /// Starts a receiver answering 200.
    pub async fn start() -> Receiver {
        let inner = Arc::new(Inner::default());
        inner.status.store(200, Ordering::SeqCst);
        let app = Router::new()
            .route("/{*path}", post(hook))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await;
        });
        Receiver { base, inner, stop }
    }

    /// The URL of hook `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// Answers `status` from now on (paths without their own answer).
    pub fn answer(&self, status: u16) {
        self.inner.status.store(status, Ordering::SeqCst);
    }

    /// Answers `status` with `body` on `path`.
    pub fn answer_on(&self, path: &str, status: u16, body: &str) {
        self.inner
            .per_path
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, body.to_owned()));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Requests on `path` whose body has `status`.
    pub fn with_status(&self, path: &str, status: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path && r.status() == status)
            .collect()
    }

    /// Waits until `count` requests on `path` with body `status` arrived.
    pub async fn wait_for(
        &self,
        path: &str,
        status: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Received>> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.with_status(path, status);
            if found.len() >= count {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{count} `{status}` notification(s) on /{path} not received within {timeout:?}; got: {:#?}",
                    self.requests()
                        .iter()
                        .map(|r| (r.path.clone(), r.status().to_owned(), r.answered))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
