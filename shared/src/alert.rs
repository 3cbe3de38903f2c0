//! Alert rules (configuration, written by the gateway, evaluated by core aggregators) and
//! alert transitions (published by aggregators, delivered by the notifier).

use crate::stat::Stat;
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Comparison of a stat against the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
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
    /// Name shown in the UI and in notifications (`[FIRING] <name>`); the id when empty.
    #[serde(default)]
    pub name: String,
    /// What the rule is for, shown beside it and sent as the `description` annotation when the
    /// rule has none.
    #[serde(default)]
    pub description: String,
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
            && self
                .dimensions
                .iter()
                .all(|(name, wanted)| match dimensions.get(name) {
                    Some(value) => wanted == ANY_VALUE || value.as_deref() == Some(wanted.as_str()),
                    None => false,
                })
    }
}

/// State of a rule for one series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
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
    /// The rule's name at the time (empty: the rule has none, or the transition predates
    /// names).
    #[serde(default)]
    pub rule_name: String,
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
    /// Always empty in what rtdash publishes: the notifier looks the rule's webhook up, so
    /// its URL (which may hold a token) is never copied into the stream. Older transitions
    /// carried it; the notifier still delivers to it when present.
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
    /// Transition number of this (rule, series): increases by one per transition and never
    /// goes back (a new series state starts from the clock in microseconds), so two
    /// transitions of one series never share an id even when a window flaps.
    #[serde(default)]
    pub seq: u64,
    /// Revision of the window when it was evaluated (0 until closed, +1 per correction).
    #[serde(default)]
    pub window_revision: u32,
    /// Whether the window was still open (a `provisional` rule).
    #[serde(default)]
    pub provisional: bool,
}

impl AlertTransition {
    /// Deterministic id of this transition: rule, series, window, new state and the series'
    /// transition number ([`seq`](Self::seq)), e.g.
    /// `alert.<rule>.<series hex>.<window start>.firing.<seq>`. Used as `Nats-Msg-Id` and
    /// as the webhook's `Idempotency-Key`. The transition number keeps a window that flaps
    /// (firing, resolved, firing again after late data) from reusing an id that a
    /// deduplicating store would then drop.
    pub fn id(&self) -> String {
        format!(
            "alert.{}.{:016x}.{}.{}.{}",
            self.rule_id,
            self.series_id(),
            self.window_start,
            self.to.as_str(),
            self.seq
        )
        .to_lowercase()
    }

    /// Stable id of the series ([`crate::series::SeriesKey::id`]).
    pub fn series_id(&self) -> u64 {
        crate::series::SeriesKey::new(
            self.tenant_id.clone(),
            self.metric_name.clone(),
            self.dimensions.clone(),
        )
        .id()
    }

    /// Identity of the alert (rule and series) across its transitions, as 16 hex digits: the
    /// Alertmanager `fingerprint`.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.rule_id, self.series_id())
    }
}

/// The Alertmanager-style fingerprint of (rule, series): 16 hex digits, stable across
/// processes and releases.
pub fn fingerprint(rule_id: &str, series_id: u64) -> String {
    let mut bytes = Vec::with_capacity(rule_id.len() + 9);
    bytes.extend_from_slice(rule_id.as_bytes());
    bytes.push(0xff);
    bytes.extend_from_slice(&series_id.to_le_bytes());
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, crate::series::SERIES_HASH_SEED)
    )
}

impl AlertState {
    /// Lowercase name (`firing`).
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Ok => "ok",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }

    /// Whether a transition into this state is sent to the rule's webhook (firing and
    /// resolved); transitions into `pending` and `ok` are recorded only.
    pub const fn notifies(self) -> bool {
        matches!(self, AlertState::Firing | AlertState::Resolved)
    }
}

/// Largest `for_windows`.
pub const MAX_FOR_WINDOWS: u32 = 1000;
/// Most labels, and most annotations, on a rule.
pub const MAX_LABELS: usize = 64;
/// Longest `notify_channel`.
pub const MAX_URL_LEN: usize = 2048;
/// Longest rule name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest rule description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;

impl AlertRule {
    /// Checks what can be checked without the metric definition: identifiers, a finite
    /// threshold, an `http://` or `https://` notify channel, `for_windows` in 1 to
    /// [`MAX_FOR_WINDOWS`], at most [`MAX_LABELS`] labels and annotations. The message names
    /// the field.
    pub fn validate(&self) -> Result<(), String> {
        use crate::event::is_identifier;
        if !is_identifier(&self.tenant_id, 128) {
            return Err("`tenant_id` must be 1 to 128 characters from [A-Za-z0-9_-]".into());
        }
        if !is_identifier(&self.id, 128) {
            return Err("`id` must be 1 to 128 characters from [A-Za-z0-9_-]".into());
        }
        if !is_identifier(&self.metric_name, 128) {
            return Err("`metric_name` must be 1 to 128 characters from [A-Za-z0-9_-]".into());
        }
        if self.name.chars().count() > MAX_NAME_CHARS || self.name.chars().any(char::is_control) {
            return Err(format!(
                "`name` must be at most {MAX_NAME_CHARS} characters without control characters"
            ));
        }
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(format!(
                "`description` must be at most {MAX_DESCRIPTION_CHARS} characters"
            ));
        }
        if !self.threshold.is_finite() {
            return Err("`threshold` must be a finite number".into());
        }
        if !is_webhook_url(&self.notify_channel) {
            return Err(format!(
                "`notify_channel` must be an http:// or https:// URL (at most {MAX_URL_LEN} bytes)"
            ));
        }
        if !(1..=MAX_FOR_WINDOWS).contains(&self.for_windows) {
            return Err(format!("`for_windows` must be 1 to {MAX_FOR_WINDOWS}"));
        }
        if self.labels.len() > MAX_LABELS || self.annotations.len() > MAX_LABELS {
            return Err(format!(
                "at most {MAX_LABELS} labels and {MAX_LABELS} annotations"
            ));
        }
        Ok(())
    }
}

/// Whether `url` is an `http://` or `https://` URL with a host, without whitespace, at most
/// [`MAX_URL_LEN`] bytes.
pub fn is_webhook_url(url: &str) -> bool {
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or_default();
    !host.is_empty()
        && !host.starts_with('/')
        && url.len() <= MAX_URL_LEN
        && !url.chars().any(char::is_whitespace)
}

/// What a record of the alert log (`rtdash.alertlog.<tenant>.<rule>`) describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertLogKind {
    /// A state transition (every one, notified or not).
    Transition,
    /// One delivery attempt of a transition to the rule's webhook.
    Delivery,
    /// A test notification sent on request (`POST /v1/alerts/{id}/test`): no transition,
    /// no state change.
    Test,
}

/// How a delivery attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// 2xx: delivered.
    Delivered,
    /// 5xx, 408, 429, timeout or connection error: retried later.
    Retrying,
    /// 4xx (other than 408 and 429): not retried.
    Failed,
    /// Still failing when the retry period ran out.
    GaveUp,
    /// Not sent: delivered before (a redelivery), superseded by a newer transition of the
    /// same alert, or no notify channel.
    Skipped,
    /// Not sent: a silence matched it (the transition is recorded and the state kept).
    Silenced,
}

impl DeliveryOutcome {
    /// Lowercase name (`gave_up`), also the metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retrying => "retrying",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::GaveUp => "gave_up",
            DeliveryOutcome::Skipped => "skipped",
            DeliveryOutcome::Silenced => "silenced",
        }
    }
}

/// One record of a rule's alert log, the source of `GET /v1/alerts/{id}/events`: a
/// transition, or a delivery attempt of one. JSON on `rtdash.alertlog.<tenant>.<rule>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertLogRecord {
    /// Transition or delivery attempt.
    pub kind: AlertLogKind,
    /// When it happened.
    pub at: UnixMillis,
    /// The rule.
    pub rule_id: String,
    /// The series' tenant.
    pub tenant_id: String,
    /// The transition ([`AlertTransition::id`]).
    pub transition_id: String,
    /// The alert ([`AlertTransition::fingerprint`]).
    pub fingerprint: String,
    /// The series' dimensions.
    pub dimensions: BTreeMap<String, Option<String>>,
    /// State before.
    pub from: AlertState,
    /// State after.
    pub to: AlertState,
    /// The window evaluated.
    pub window_start: UnixMillis,
    /// Its end.
    pub window_end: UnixMillis,
    /// The stat's value in it.
    pub value: Option<f64>,
    /// The threshold.
    pub threshold: f64,
    /// Delivery: attempt number (1, 2, ...) within this delivery run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Delivery: outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<DeliveryOutcome>,
    /// Delivery: HTTP status answered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Delivery: the start of the response body (failures only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Delivery: the error (timeout, connection refused...) or why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Delivery: how long the attempt took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl AlertLogRecord {
    /// A transition record.
    pub fn transition(transition: &AlertTransition, at: UnixMillis) -> Self {
        Self {
            kind: AlertLogKind::Transition,
            at,
            rule_id: transition.rule_id.clone(),
            tenant_id: transition.tenant_id.clone(),
            transition_id: transition.id(),
            fingerprint: transition.fingerprint(),
            dimensions: transition.dimensions.clone(),
            from: transition.from,
            to: transition.to,
            window_start: transition.window_start,
            window_end: transition.window_end,
            value: transition.value,
            threshold: transition.threshold,
            attempt: None,
            outcome: None,
            http_status: None,
            response: None,
            error: None,
            duration_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(dimensions: &[(&str, &str)]) -> AlertRule {
        AlertRule {
            id: "r".into(),
            tenant_id: "t".into(),
            name: String::new(),
            description: String::new(),
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
        assert!(
            !rule(&[("region", "*")]).watches(&full),
            "another dimension set"
        );
        assert!(
            rule(&[("region", "*")]).watches(&series(&[("region", None)])),
            "`*` matches an absent value too"
        );
        assert!(rule(&[]).watches(&total));
        assert!(!rule(&[]).watches(&eu));
    }

    fn transition(to: AlertState, seq: u64) -> AlertTransition {
        AlertTransition {
            rule_id: "r".into(),
            tenant_id: "t".into(),
            rule_name: String::new(),
            metric_name: "m".into(),
            dimensions: series(&[("region", Some("eu"))]),
            window_start: 60_000,
            window_end: 120_000,
            from: AlertState::Ok,
            to,
            value: Some(2.0),
            threshold: 1.0,
            stat: Stat::Count,
            condition: Condition::Gt,
            notify_channel: "http://127.0.0.1:1/".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            starts_at: 60_000,
            ends_at: None,
            evaluated_at: 121_000,
            seq,
            window_revision: 0,
            provisional: false,
        }
    }

    #[test]
    fn transition_ids_name_rule_series_window_state_and_seq() {
        let a = transition(AlertState::Firing, 7);
        let id = a.id();
        assert!(id.starts_with("alert.r."), "{id}");
        assert!(id.ends_with(".60000.firing.7"), "{id}");
        assert_eq!(id, transition(AlertState::Firing, 7).id(), "deterministic");
        assert_ne!(
            id,
            transition(AlertState::Firing, 8).id(),
            "a flapping window gets new ids"
        );
        assert_ne!(id, transition(AlertState::Resolved, 7).id());
        assert_eq!(
            a.fingerprint(),
            transition(AlertState::Resolved, 9).fingerprint()
        );
        assert_eq!(a.fingerprint().len(), 16);
    }

    #[test]
    fn validation_names_the_field() {
        let mut r = rule(&[]);
        assert_eq!(r.validate(), Ok(()));
        r.notify_channel = "ftp://x".into();
        assert!(r.validate().unwrap_err().contains("notify_channel"));
        r.notify_channel = "https://hooks.example.com/x".into();
        r.threshold = f64::NAN;
        assert!(r.validate().unwrap_err().contains("threshold"));
        r.threshold = 1.0;
        r.for_windows = 0;
        assert!(r.validate().unwrap_err().contains("for_windows"));
        r.for_windows = 3;
        r.tenant_id = "a.b".into();
        assert!(r.validate().unwrap_err().contains("tenant_id"));
        assert!(!is_webhook_url("http:///path"));
        assert!(is_webhook_url("http://127.0.0.1:9/hook"));
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
