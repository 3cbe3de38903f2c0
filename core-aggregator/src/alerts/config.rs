//! `[alerts]`: alert evaluation, the alert log, the thresholds of the pipeline self-alerts
//! (the rules themselves are built in [`super::builtin`]), and (in `[alerts.notifier]`) webhook
//! delivery.

use crate::notifier::config::NotifierConfig;
use rtdash_runtime::config::ConfigError;
use rtdash_shared::alert::is_webhook_url;
use serde::{Deserialize, Serialize};

/// `[alerts]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Evaluate alert rules in this process (for the partitions it owns). Default true.
    pub enabled: bool,
    /// Window updates waiting for evaluation above which *provisional* updates are dropped
    /// (counted in `rtdash_core_alert_updates_dropped_total`); closes and corrections are
    /// never dropped. Default 100 000.
    pub queue_limit: usize,
    /// Windows that ended longer ago than this (wall clock) are not evaluated, and the state
    /// of a series quiet (ok, no breach) for this long is forgotten; a firing series without
    /// any window for this long is resolved (`resolved_reason: no data`). 0 means the
    /// correction horizon plus 5 minutes. Default 0.
    pub evaluation_horizon_ms: i64,
    /// Webhook URL the built-in pipeline self-alerts are sent to. Without one the
    /// self-alert rules are off. Default none.
    pub self_alert_webhook: Option<String>,
    /// Shown as `externalURL` in notifications, and the base of their `generatorURL`
    /// (`<external_url>/v1/alerts/<id>?tenant_id=<tenant>`), e.g. the gateway's public URL.
    /// Default empty.
    pub external_url: String,
    /// Alert log records kept per rule (`RTDASH_ALERT_EVENTS`, `max_msgs_per_subject`).
    /// Default 1 000.
    pub log_max_per_rule: i64,
    /// How long the alert log is kept, in seconds. Default 7 days.
    pub log_max_age_secs: u64,
    /// `[alerts.self_alerts]`: thresholds of the built-in pipeline rules.
    pub self_alerts: SelfAlertsConfig,
    /// `[alerts.notifier]`: webhook delivery.
    pub notifier: NotifierConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue_limit: 100_000,
            evaluation_horizon_ms: 0,
            self_alert_webhook: None,
            external_url: String::new(),
            log_max_per_rule: 1_000,
            log_max_age_secs: 7 * 24 * 3600,
            self_alerts: SelfAlertsConfig::default(),
            notifier: NotifierConfig::default(),
        }
    }
}

/// `[alerts.self_alerts]`: the built-in rules that watch the pipeline itself. Each fires per
/// series; its notification goes to `alerts.self_alert_webhook`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfAlertsConfig {
    /// `_pipeline_late_rate`: share of a source's events arriving more than 60 s after their
    /// `occurred_at` in a window (`pipeline_late` avg) above this. Default 0.02 (2 %).
    pub late_rate: f64,
    /// `_pipeline_dlq_rate`: share of a source's items dead-lettered in a window
    /// (`pipeline_dlq` avg) above this. Default 0.01.
    pub dlq_rate: f64,
    /// `_pipeline_consumer_lag`: a partition's unprocessed messages stayed above this for a
    /// whole window (`pipeline_consumer_lag` min). Default 100 000.
    pub consumer_lag_messages: f64,
    /// `_pipeline_watermark_delay`: a partition's watermark stayed more than this many
    /// milliseconds behind the aggregator's clock for a whole window
    /// (`pipeline_watermark_delay_ms` min): data stopped flowing or is stuck. Default 300 000.
    pub watermark_delay_ms: f64,
    /// Window of the aggregator's own series (consumer lag, watermark delay), in
    /// milliseconds. Default 60 000.
    pub window_ms: i64,
    /// Consecutive breaching windows before a self-alert fires. Default 1.
    pub for_windows: u32,
    /// Built-in rule ids to turn off (e.g. `["_pipeline_watermark_delay"]`). Default none.
    pub disabled: Vec<String>,
}

impl Default for SelfAlertsConfig {
    fn default() -> Self {
        Self {
            late_rate: 0.02,
            dlq_rate: 0.01,
            consumer_lag_messages: 100_000.0,
            watermark_delay_ms: 300_000.0,
            window_ms: 60_000,
            for_windows: 1,
            disabled: Vec::new(),
        }
    }
}

impl AlertsConfig {
    /// The effective evaluation horizon for a correction horizon of `correction_horizon_ms`.
    pub fn horizon_ms(&self, correction_horizon_ms: i64) -> i64 {
        if self.evaluation_horizon_ms > 0 {
            self.evaluation_horizon_ms
        } else {
            correction_horizon_ms.saturating_add(300_000)
        }
    }

    /// Checks the values; the error names the key.
    pub fn validate(&self, correction_horizon_ms: i64) -> Result<(), ConfigError> {
        if self.queue_limit == 0 {
            return Err(ConfigError::invalid(
                "alerts.queue_limit",
                "must be positive",
            ));
        }
        if self.evaluation_horizon_ms < 0
            || (self.evaluation_horizon_ms > 0
                && self.evaluation_horizon_ms < correction_horizon_ms)
        {
            return Err(ConfigError::invalid(
                "alerts.evaluation_horizon_ms",
                "must be 0 (default) or at least windows.correction_horizon_ms",
            ));
        }
        if let Some(url) = &self.self_alert_webhook {
            if !is_webhook_url(url) {
                return Err(ConfigError::invalid(
                    "alerts.self_alert_webhook",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if self.log_max_per_rule < 1 {
            return Err(ConfigError::invalid(
                "alerts.log_max_per_rule",
                "must be at least 1",
            ));
        }
        let s = &self.self_alerts;
        if s.window_ms < 1_000 {
            return Err(ConfigError::invalid(
                "alerts.self_alerts.window_ms",
                "must be at least 1000",
            ));
        }
        if !(1..=rtdash_shared::alert::MAX_FOR_WINDOWS).contains(&s.for_windows) {
            return Err(ConfigError::invalid(
                "alerts.self_alerts.for_windows",
                "must be 1 to 1000",
            ));
        }
        for value in [
            s.late_rate,
            s.dlq_rate,
            s.consumer_lag_messages,
            s.watermark_delay_ms,
        ] {
            if !value.is_finite() {
                return Err(ConfigError::invalid(
                    "alerts.self_alerts",
                    "thresholds must be finite numbers",
                ));
            }
        }
        self.notifier.validate()
    }
}
