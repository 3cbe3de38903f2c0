//! The notifier: delivers alert transitions from `RTDASH_ALERTS` to their rules' webhooks.
//! It runs as its own task in every core aggregator; all of them share the durable pull
//! consumer `rtdash-notifier`, so each transition is delivered by one of them, and one that
//! dies leaves its unacknowledged transitions to the others. See `docs/alerts.md`.
//!
//! Modules: [`config`] (`[alerts.notifier]`), [`deliver`] (consume, dedupe, post, retry,
//! acknowledge), [`retry`] (what an answer means, how long to wait), [`payload`] (the
//! Alertmanager-compatible body), [`http`] (the webhook client) and [`guard`] (where webhooks
//! may go), both `rtdash_runtime::egress`, [`log`] (the alert log read by
//! `GET /v1/alerts/{id}/events`), [`silences`] (the silences in force), [`destinations`] (the
//! rules' webhooks, which transitions do not carry, looked up from the evaluator's rule book
//! when evaluation runs in the same process).

pub mod config;
pub mod deliver;
pub mod destinations;
/// Where webhooks may go (shared with the gateway's test notifications).
pub use rtdash_runtime::egress::guard;
/// The webhook client (shared with the gateway's test notifications).
pub use rtdash_runtime::egress::webhook as http;
pub mod log;
pub mod payload;
pub mod retry;
pub mod silences;

pub use deliver::Notifier;
