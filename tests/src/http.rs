//! Blocking HTTP for readiness probes and QuestDB's `/exec`, over loopback.

use std::sync::OnceLock;
use std::time::Duration;

/// A shared agent: non-2xx answers are responses, not errors (QuestDB explains a bad query in
/// a 400 body); a request never hangs longer than 30 s.
pub(crate) fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into()
    })
}

/// True when `url` answers 2xx.
pub(crate) fn is_ok(url: &str) -> bool {
    agent()
        .get(url)
        .call()
        .is_ok_and(|response| response.status().is_success())
}
