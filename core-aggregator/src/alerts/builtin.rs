//! The built-in pipeline self-alert rules: one rule per pipeline series (late events, dead
//! letters, consumer lag, watermark delay), with the thresholds of `[alerts.self_alerts]`,
//! sent to `alerts.self_alert_webhook`. See `docs/alerts.md`.

use super::config::AlertsConfig;
use super::rules::ANY_TENANT;
use rtdash_shared::alert::{AlertRule, Condition, EvaluateOn};
use rtdash_shared::metric::{
    PIPELINE_CONSUMER_LAG_METRIC, PIPELINE_DLQ_METRIC, PIPELINE_LATE_AFTER_MS,
    PIPELINE_LATE_METRIC, PIPELINE_WATERMARK_DELAY_METRIC,
};
use rtdash_shared::stat::Stat;
use std::collections::BTreeMap;

/// Id of the built-in late-event rule.
pub const LATE_RATE_RULE: &str = "_pipeline_late_rate";
/// Id of the built-in dead-letter rule.
pub const DLQ_RATE_RULE: &str = "_pipeline_dlq_rate";
/// Id of the built-in consumer-lag rule.
pub const CONSUMER_LAG_RULE: &str = "_pipeline_consumer_lag";
/// Id of the built-in watermark-delay rule.
pub const WATERMARK_DELAY_RULE: &str = "_pipeline_watermark_delay";

/// The built-in self-alert rules in force (none without `alerts.self_alert_webhook`). Their
/// tenant is [`ANY_TENANT`]: they watch the series of every tenant.
pub fn rules(config: &AlertsConfig) -> Vec<AlertRule> {
    let Some(webhook) = config.self_alert_webhook.clone() else {
        return Vec::new();
    };
    let s = &config.self_alerts;
    let late_secs = PIPELINE_LATE_AFTER_MS / 1000;
    let specs: [(&str, &str, &str, Stat, f64, String); 4] = [
        (
            LATE_RATE_RULE,
            PIPELINE_LATE_METRIC,
            "source",
            Stat::Avg,
            s.late_rate,
            format!(
                "More than {}% of the events of source {{{{source}}}} arrived over {late_secs} s late",
                decimal(s.late_rate * 100.0)
            ),
        ),
        (
            DLQ_RATE_RULE,
            PIPELINE_DLQ_METRIC,
            "source",
            Stat::Avg,
            s.dlq_rate,
            format!(
                "More than {}% of the items of source {{{{source}}}} were dead-lettered",
                decimal(s.dlq_rate * 100.0)
            ),
        ),
        (
            CONSUMER_LAG_RULE,
            PIPELINE_CONSUMER_LAG_METRIC,
            "partition",
            Stat::Min,
            s.consumer_lag_messages,
            format!(
                "Partition {{{{partition}}}} stayed more than {} messages behind",
                decimal(s.consumer_lag_messages)
            ),
        ),
        (
            WATERMARK_DELAY_RULE,
            PIPELINE_WATERMARK_DELAY_METRIC,
            "partition",
            Stat::Min,
            s.watermark_delay_ms,
            format!(
                "The watermark of partition {{{{partition}}}} stayed more than {} s behind",
                decimal(s.watermark_delay_ms / 1000.0)
            ),
        ),
    ];
    specs
        .into_iter()
        .filter(|(id, ..)| !s.disabled.iter().any(|d| d == id))
        .map(
            |(id, metric, dimension, stat, threshold, summary)| AlertRule {
                id: id.to_owned(),
                tenant_id: ANY_TENANT.to_owned(),
                name: String::new(),
                description: String::new(),
                metric_name: metric.to_owned(),
                dimensions: BTreeMap::from([(dimension.to_owned(), "*".to_owned())]),
                stat,
                condition: Condition::Gt,
                threshold,
                notify_channel: webhook.clone(),
                for_windows: s.for_windows,
                evaluate_on: EvaluateOn::Final,
                labels: BTreeMap::from([
                    (
                        "alertname".to_owned(),
                        id.trim_start_matches('_').to_owned(),
                    ),
                    ("severity".to_owned(), "warning".to_owned()),
                    ("component".to_owned(), "pipeline".to_owned()),
                ]),
                annotations: BTreeMap::from([("summary".to_owned(), summary)]),
                created_at: 0,
                updated_at: 0,
            },
        )
        .collect()
}

/// A threshold as summaries show it: at most 6 decimals, no trailing zeros (`0.07 * 100.0` is
/// `7.000000000000001` in binary floating point; it reads `7`).
fn decimal(value: f64) -> String {
    let text = format!("{value:.6}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_need_a_webhook_and_can_be_disabled() {
        let mut config = AlertsConfig::default();
        assert!(rules(&config).is_empty());
        config.self_alert_webhook = Some("http://127.0.0.1:9/hook".into());
        let built = rules(&config);
        assert_eq!(built.len(), 4);
        for rule in &built {
            assert_eq!(rule.tenant_id, "*");
            let mut concrete = rule.clone();
            concrete.tenant_id = "t".into();
            concrete
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e}", rule.id));
        }
        let late = built.iter().find(|r| r.id == LATE_RATE_RULE).unwrap();
        assert_eq!((late.stat, late.threshold), (Stat::Avg, 0.02));
        assert_eq!(late.dimensions["source"], "*");
        assert_eq!(
            late.annotations["summary"],
            "More than 2% of the events of source {{source}} arrived over 60 s late"
        );
        config.self_alerts.late_rate = 0.07;
        config.self_alerts.dlq_rate = 0.035;
        let built = rules(&config);
        let summary =
            |id: &str| built.iter().find(|r| r.id == id).unwrap().annotations["summary"].clone();
        assert_eq!(
            summary(LATE_RATE_RULE),
            "More than 7% of the events of source {{source}} arrived over 60 s late"
        );
        assert_eq!(
            summary(DLQ_RATE_RULE),
            "More than 3.5% of the items of source {{source}} were dead-lettered"
        );
        assert_eq!(
            summary(WATERMARK_DELAY_RULE),
            "The watermark of partition {{partition}} stayed more than 300 s behind"
        );
        config.self_alerts.disabled = vec![WATERMARK_DELAY_RULE.into()];
        assert_eq!(rules(&config).len(), 3);
        assert!(config.validate(600_000).is_ok());
    }
}
