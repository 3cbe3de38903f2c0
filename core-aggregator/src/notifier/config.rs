//! `[alerts.notifier]`: webhook delivery of alert transitions.

use rtdash_runtime::config::ConfigError;
use rtdash_runtime::egress::Allowlist;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[alerts.notifier]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifierConfig {
    /// Deliver transitions from this process (it joins the shared durable consumer
    /// `rtdash-notifier`). Default true.
    pub enabled: bool,
    /// How long a transition is retried after it was published (5xx, 408, 429, timeouts,
    /// refused connections), in seconds; then it is recorded as `gave_up`. Default 3 600.
    pub retry_for_secs: u64,
    /// First retry delay; doubles per attempt, with ±20 % jitter. Default 1 000 ms.
    pub initial_backoff_ms: u64,
    /// Longest retry delay. Default 60 000 ms.
    pub max_backoff_ms: u64,
    /// Timeout of one webhook request (connect, TLS, send, answer). Default 10 000 ms.
    pub request_timeout_ms: u64,
    /// JetStream redelivers a transition not acknowledged (nor marked in progress) within
    /// this. Deliveries being retried are marked in progress every third of it, so a
    /// crashed notifier's transitions go to another one this long after. Default 30 000 ms.
    pub ack_wait_ms: u64,
    /// Transitions being delivered (or waiting for a retry) at once by this process; also
    /// the consumer's `max_ack_pending`. Default 256.
    pub max_in_flight: usize,
    /// Bytes of an answer's body read (then dropped: receivers' answers are not shown to
    /// tenants). Default 512.
    pub response_excerpt_bytes: usize,
    /// Destinations allowed although they are not on the public internet: `"host"`,
    /// `"host:port"`, `"ip"`, `"ip:port"` or `"cidr"` entries, e.g. `["alertmanager.ops:9093",
    /// "10.20.0.0/16"]`. Without an entry, webhooks to loopback, link-local (cloud metadata),
    /// private, shared (CGNAT), multicast or unspecified addresses, or to names resolving
    /// there, are refused at every delivery. Default empty. See `docs/security.md`.
    pub allow_destinations: Vec<String>,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            retry_for_secs: 3_600,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            request_timeout_ms: 10_000,
            ack_wait_ms: 30_000,
            max_in_flight: 256,
            response_excerpt_bytes: 512,
            allow_destinations: Vec::new(),
        }
    }
}

impl NotifierConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.initial_backoff_ms == 0 || self.max_backoff_ms < self.initial_backoff_ms {
            return Err(ConfigError::invalid(
                "alerts.notifier.max_backoff_ms",
                "initial_backoff_ms must be positive and at most max_backoff_ms",
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "alerts.notifier.request_timeout_ms",
                "must be positive",
            ));
        }
        if self.ack_wait_ms < 3_000 {
            return Err(ConfigError::invalid(
                "alerts.notifier.ack_wait_ms",
                "must be at least 3000",
            ));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::invalid(
                "alerts.notifier.max_in_flight",
                "must be positive",
            ));
        }
        self.allowlist()?;
        Ok(())
    }

    /// [`Self::allow_destinations`], parsed.
    pub fn allowlist(&self) -> Result<Allowlist, ConfigError> {
        Allowlist::parse(&self.allow_destinations).map_err(|err| {
            ConfigError::invalid("alerts.notifier.allow_destinations", err.to_string())
        })
    }

    /// The retry period.
    pub fn retry_for(&self) -> Duration {
        Duration::from_secs(self.retry_for_secs)
    }
}
