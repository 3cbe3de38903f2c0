//! Blocking HTTP over loopback, for the synchronous harness: readiness probes, QuestDB's
//! `/exec`, monitoring endpoints, `/metrics`, and the fault load. (Async tests use
//! [`crate::client::Api`].)

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context};

/// A blocking client: non-2xx answers are responses, not errors (QuestDB explains a bad query
/// in a 400 body); connecting may take 2 s, a whole request `timeout`.
pub fn client(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(2)))
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// The shared [`client`] with a 30 s request timeout.
pub(crate) fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| client(Duration::from_secs(30)))
}

/// True when `url` answers 2xx.
pub(crate) fn is_ok(url: &str) -> bool {
    agent()
        .get(url)
        .call()
        .is_ok_and(|response| response.status().is_success())
}

/// The JSON answer of `GET url`; a non-2xx answer is an error.
pub(crate) fn get_json(url: &str) -> anyhow::Result<serde_json::Value> {
    let mut response = agent()
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        bail!("GET {url}: {}", response.status());
    }
    response
        .body_mut()
        .read_json()
        .with_context(|| format!("GET {url}: not JSON"))
}
