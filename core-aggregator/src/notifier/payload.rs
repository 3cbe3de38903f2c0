//! The webhook body: Alertmanager's webhook format (version 4), one alert per notification,
//! plus a top-level `text` that a Slack incoming webhook shows.
//!
//! ```json
//! {"version": "4", "status": "firing", "receiver": "rtdash", "groupKey": "rtdash/acme/<rule>:<fingerprint>",
//!  "truncatedAlerts": 0, "groupLabels": {"alertname": "...", "tenant": "acme"},
//!  "commonLabels": {...}, "commonAnnotations": {...}, "externalURL": "...",
//!  "alerts": [{"status": "firing", "labels": {...}, "annotations": {...},
//!              "startsAt": "...", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "...",
//!              "fingerprint": "<16 hex>"}],
//!  "text": "[FIRING] ..."}
//! ```
//!
//! Labels: `alertname` (the rule's `alertname` label, else its name, else its id), `tenant`, `metric`,
//! `rule_id`, one per series dimension (absent values are empty; a dimension named like one of
//! those four gets a `dim_` prefix), then the rule's labels. Annotations: the rule's (with
//! `{{label}}` replaced by the label's value), plus `summary` when the rule has none, and
//! `value`, `threshold`, `window_start`, `window_end`.

use rtdash_shared::alert::{AlertState, AlertTransition, Condition};
use rtdash_shared::time::format_rfc3339;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `endsAt` of an alert still firing (Alertmanager's zero time).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

const RESERVED: [&str; 4] = ["alertname", "tenant", "metric", "rule_id"];

/// The labels of a transition's alert.
pub fn labels(t: &AlertTransition) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(
        "alertname".to_owned(),
        t.labels.get("alertname").cloned().unwrap_or_else(|| {
            if t.rule_name.is_empty() {
                t.rule_id.clone()
            } else {
                t.rule_name.clone()
            }
        }),
    );
    labels.insert("tenant".to_owned(), t.tenant_id.clone());
    labels.insert("metric".to_owned(), t.metric_name.clone());
    labels.insert("rule_id".to_owned(), t.rule_id.clone());
    for (name, value) in &t.dimensions {
        let name = if RESERVED.contains(&name.as_str()) {
            format!("dim_{name}")
        } else {
            name.clone()
        };
        labels.insert(name, value.clone().unwrap_or_default());
    }
    for (name, value) in &t.labels {
        if name != "tenant" {
            labels.insert(name.clone(), value.clone());
        }
    }
    labels
}

fn symbol(condition: Condition) -> &'static str {
    match condition {
        Condition::Gt => ">",
        Condition::Lt => "<",
        Condition::Gte => ">=",
        Condition::Lte => "<=",
        Condition::Eq => "==",
    }
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value:.6}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// Replaces `{{name}}` by the label `name`.
fn expand(template: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = template.to_owned();
    for (name, value) in labels {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    out
}

/// The annotations of a transition's alert (see the module docs).
pub fn annotations(
    t: &AlertTransition,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> = t
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), expand(v, labels)))
        .collect();
    let value = t.value.map_or_else(|| "no value".to_owned(), number);
    annotations.entry("summary".to_owned()).or_insert_with(|| {
        format!(
            "{}: {} of {} is {value} ({} {})",
            labels["alertname"],
            t.stat,
            series_text(t),
            symbol(t.condition),
            number(t.threshold)
        )
    });
    annotations.insert("value".to_owned(), value);
    annotations.insert(
        "threshold".to_owned(),
        format!("{} {}", symbol(t.condition), number(t.threshold)),
    );
    annotations.insert("window_start".to_owned(), format_rfc3339(t.window_start));
    annotations.insert("window_end".to_owned(), format_rfc3339(t.window_end));
    annotations
}

fn series_text(t: &AlertTransition) -> String {
    let dims: Vec<String> = t
        .dimensions
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("")))
        .collect();
    if dims.is_empty() {
        format!("{}/{}", t.tenant_id, t.metric_name)
    } else {
        format!("{}/{}{{{}}}", t.tenant_id, t.metric_name, dims.join(","))
    }
}

/// The webhook body of a firing or resolved transition.
pub fn body(t: &AlertTransition, external_url: &str) -> Value {
    let labels = labels(t);
    let annotations = annotations(t, &labels);
    let status = if t.to == AlertState::Resolved {
        "resolved"
    } else {
        "firing"
    };
    let ends_at = match (t.to, t.ends_at) {
        (AlertState::Resolved, Some(at)) => format_rfc3339(at),
        _ => ZERO_TIME.to_owned(),
    };
    let base = external_url.trim_end_matches('/');
    let generator = if base.is_empty() {
        String::new()
    } else {
        format!("{base}/v1/alerts/{}?tenant_id={}", t.rule_id, t.tenant_id)
    };
    let fingerprint = t.fingerprint();
    let text = format!(
        "[{}] {}\n{} {} = {} (threshold {} {}), window {} to {}",
        status.to_uppercase(),
        annotations["summary"],
        series_text(t),
        t.stat,
        annotations["value"],
        symbol(t.condition),
        number(t.threshold),
        annotations["window_start"],
        annotations["window_end"],
    );
    json!({
        "version": "4",
        "groupKey": format!("rtdash/{}/{}:{fingerprint}", t.tenant_id, t.rule_id),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": t.labels.get("receiver").cloned().unwrap_or_else(|| "rtdash".to_owned()),
        "groupLabels": {"alertname": labels["alertname"], "tenant": t.tenant_id},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": base,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": format_rfc3339(t.starts_at),
            "endsAt": ends_at,
            "generatorURL": generator,
            "fingerprint": fingerprint,
        }],
        "text": text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::stat::Stat;

    fn transition(to: AlertState) -> AlertTransition {
        AlertTransition {
            rule_id: "r1".into(),
            tenant_id: "acme".into(),
            rule_name: String::new(),
            metric_name: "latency".into(),
            dimensions: BTreeMap::from([
                ("region".to_owned(), Some("eu".to_owned())),
                ("tenant".to_owned(), Some("x".to_owned())),
            ]),
            window_start: 60_000,
            window_end: 120_000,
            from: AlertState::Ok,
            to,
            value: Some(612.5),
            threshold: 500.0,
            stat: Stat::P99,
            condition: Condition::Gt,
            notify_channel: "http://127.0.0.1:1/".into(),
            labels: BTreeMap::from([("severity".to_owned(), "page".to_owned())]),
            annotations: BTreeMap::from([("runbook".to_owned(), "see {{region}}".to_owned())]),
            starts_at: 60_000,
            ends_at: (to == AlertState::Resolved).then_some(180_000),
            evaluated_at: 121_000,
            seq: 5,
            window_revision: 0,
            provisional: false,
        }
    }

    #[test]
    fn firing_body_is_alertmanager_shaped_with_slack_text() {
        let body = body(&transition(AlertState::Firing), "https://dash.example.com/");
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        let alert = &body["alerts"][0];
        assert_eq!(alert["labels"]["alertname"], "r1");
        assert_eq!(alert["labels"]["region"], "eu");
        assert_eq!(alert["labels"]["dim_tenant"], "x");
        assert_eq!(alert["labels"]["tenant"], "acme");
        assert_eq!(alert["labels"]["severity"], "page");
        assert_eq!(alert["annotations"]["runbook"], "see eu");
        assert_eq!(alert["annotations"]["value"], "612.5");
        assert_eq!(alert["endsAt"], ZERO_TIME);
        assert_eq!(alert["startsAt"], "1970-01-01T00:01:00.000Z");
        assert_eq!(
            alert["generatorURL"],
            "https://dash.example.com/v1/alerts/r1?tenant_id=acme"
        );
        assert_eq!(alert["fingerprint"].as_str().unwrap().len(), 16);
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with(
                "[FIRING] r1: p99 of acme/latency{region=eu,tenant=x} is 612.5 (> 500)"
            ),
            "{text}"
        );
        assert_eq!(body["commonLabels"], alert["labels"]);
    }

    #[test]
    fn resolved_body_has_an_end() {
        let body = body(&transition(AlertState::Resolved), "");
        assert_eq!(body["status"], "resolved");
        assert_eq!(body["alerts"][0]["endsAt"], "1970-01-01T00:03:00.000Z");
        assert_eq!(body["alerts"][0]["generatorURL"], "");
        assert!(body["text"].as_str().unwrap().starts_with("[RESOLVED]"));
    }

    #[test]
    fn the_rule_name_titles_the_notification() {
        let mut t = transition(AlertState::Firing);
        t.rule_name = "Checkout latency".into();
        let body = body(&t, "");
        assert_eq!(body["alerts"][0]["labels"]["alertname"], "Checkout latency");
        assert_eq!(body["alerts"][0]["labels"]["rule_id"], "r1");
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("[FIRING] Checkout latency: p99 of"),
            "{text}"
        );
    }
}
