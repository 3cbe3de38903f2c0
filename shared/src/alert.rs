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
    /// Which series the rule watches: the series of the metric whose dimension set is exactly
    /// these keys, with these values; the value `*` matches any value, so
    /// `{"region": "*"}` evaluates every region's series separately, `{"region": "eu"}` only
    /// the `eu` series, and `{}` the metric's total. The dimension set must be one the metric
    /// keeps (its full set or a rollup).
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

/// Dimension value in [`AlertRule::dimensions`] that matches any value.
pub const ANY_VALUE: &str = "*";

impl AlertRule {
    /// Whether the rule watches the series with these dimension values.
    pub fn watches(&self, dimensions: &BTreeMap<String, Option<String>>) -> bool {
        dimensions.len() == self.dimensions.len()
            && self.dimensions.iter().all(|(name, wanted)| {
                match dimensions.get(name) {
                    Some(value) => wanted == ANY_VALUE || value.as_deref() == Some(wanted.as_str()),
                    None => false,
                }
            })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(dimensions: &[(&str, &str)]) -> AlertRule {
        AlertRule {
            id: "r".into(),
            tenant_id: "t".into(),
            metric_name: "m".into(),
            dimensions: dimensions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stat: Stat::Count,
            condition: Condition::Gt,
            threshold: 1.0,
            notify_channel: "http://127.0.0.1:1/".into(),
            for_windows: 1,
            evaluate_on: EvaluateOn::Final,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn series(dimensions: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        dimensions
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn rules_watch_series_by_dimension_set_and_values() {
        let eu = series(&[("region", Some("eu"))]);
        let total = series(&[]);
        let full = series(&[("plan", Some("pro")), ("region", Some("eu"))]);
        assert!(rule(&[("region", "eu")]).watches(&eu));
        assert!(!rule(&[("region", "us")]).watches(&eu));
        assert!(rule(&[("region", "*")]).watches(&eu));
        assert!(!rule(&[("region", "*")]).watches(&full), "another dimension set");
        assert!(rule(&[("region", "*")]).watches(&series(&[("region", None)])), "`*` matches an absent value too");
        assert!(rule(&[]).watches(&total));
        assert!(!rule(&[]).watches(&eu));
    }

    #[test]
    fn conditions_compare_against_the_threshold() {
        assert!(Condition::Gt.breached(2.0, 1.0));
        assert!(!Condition::Gt.breached(1.0, 1.0));
        assert!(Condition::Gte.breached(1.0, 1.0));
        assert!(Condition::Lt.breached(0.5, 1.0));
        assert!(Condition::Lte.breached(1.0, 1.0));
        assert!(Condition::Eq.breached(1.0, 1.0));
    }
}
