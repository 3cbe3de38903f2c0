//! Alert rules (configuration, written by the gateway, evaluated by core aggregators) and
//! alert transitions (published by aggregators, delivered by the notifier).

use crate::stat::Stat;
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Comparison of a stat against the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// value > threshold
    Gt,
    /// value < threshold
    Lt,
    /// value >= threshold
    Gte,
    /// value <= threshold
    Lte,
    /// value == threshold
    Eq,
}

impl Condition {
    /// Whether `value` breaches `threshold`.
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Condition::Gt => value > threshold,
            Condition::Lt => value < threshold,
            Condition::Gte => value >= threshold,
            Condition::Lte => value <= threshold,
            Condition::Eq => value == threshold,
        }
    }
}

/// When a rule looks at a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvaluateOn {
    /// When the window closes (and again when a late correction revises it).
    #[default]
    Final,
    /// On every provisional update too: faster, noisier.
    Provisional,
}

const fn one() -> u32 {
    1
}

/// An alert rule in the seed's shape plus `stat`, `for_windows`, `evaluate_on`, labels and
/// annotations. Stored in the config bucket under `alert.<tenant>.<id>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Rule id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Metric the rule watches.
    pub metric_name: String,
    /// Dimension filter: the rule applies to each series of the metric whose dimensions are
    /// exactly these keys with these values... see the alerts docs; empty means the total.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// Statistic compared.
    #[serde(default)]
    pub stat: Stat,
    /// Comparison.
    pub condition: Condition,
    /// Threshold.
    pub threshold: f64,
    /// Webhook URL notified of transitions.
    pub notify_channel: String,
    /// Consecutive breaching windows before firing.
    #[serde(default = "one")]
    pub for_windows: u32,
    /// Final (default) or provisional evaluation.
    #[serde(default)]
    pub evaluate_on: EvaluateOn,
    /// Extra labels on notifications.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on notifications (summary, description, runbook_url).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: UnixMillis,
    /// Last change.
    #[serde(default)]
    pub updated_at: UnixMillis,
}

/// State of a rule for one series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Not breaching.
    #[default]
    Ok,
    /// Breaching for fewer than `for_windows` windows.
    Pending,
    /// Breaching for at least `for_windows` windows; notified.
    Firing,
    /// Was firing, no longer breaching; notified.
    Resolved,
}

/// A state change of a rule for one series, published on `rtdash.alerts.<tenant>` with a
/// deterministic message id so it is delivered once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertTransition {
    /// The rule.
    pub rule_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Metric.
    pub metric_name: String,
    /// The series' dimensions.
    pub dimensions: BTreeMap<String, Option<String>>,
    /// The window that caused the transition.
    pub window_start: UnixMillis,
    /// Window end.
    pub window_end: UnixMillis,
    /// State before.
    pub from: AlertState,
    /// State after.
    pub to: AlertState,
    /// Stat value in that window.
    pub value: Option<f64>,
    /// Rule threshold at the time.
    pub threshold: f64,
    /// Stat compared.
    pub stat: Stat,
    /// Condition.
    pub condition: Condition,
    /// Webhook URL.
    pub notify_channel: String,
    /// Labels copied from the rule.
    pub labels: BTreeMap<String, String>,
    /// Annotations copied from the rule.
    pub annotations: BTreeMap<String, String>,
    /// When the series started firing (for the resolved notification too).
    pub starts_at: UnixMillis,
    /// When it resolved, if it did.
    pub ends_at: Option<UnixMillis>,
    /// When the transition was evaluated.
    pub evaluated_at: UnixMillis,
}

impl AlertTransition {
    /// Deterministic id of this transition: rule, series, window and new state. Used as
    /// `Nats-Msg-Id` and as the webhook's `Idempotency-Key`.
    pub fn id(&self) -> String {
        let series = crate::series::SeriesKey::new(
            self.tenant_id.clone(),
            self.metric_name.clone(),
            self.dimensions.clone(),
        );
        format!(
            "alert.{}.{:016x}.{}.{:?}",
            self.rule_id,
            series.id(),
            self.window_start,
            self.to
        )
        .to_lowercase()
    }
}
