//! A parsed StatsD line mapped onto rtdash events in the seed's shape, one per value:
//!
//! | StatsD | rtdash |
//! |---|---|
//! | metric name | `event_type`, sanitised (`api.latency` → `api_latency`) |
//! | `statsd.source` (`statsd`) | `source` |
//! | `statsd.tenant` | `tenant_id` |
//! | tags `key:value` / bare `key` | properties `key` = `"value"` / `true` (`value`, `statsd_type` and `container_id` are renamed `tag_value`, ...) |
//! | the value | property `value`: a number, a set member's text |
//! | the type | property `statsd_type`: `c`, `g`, `ms`, `h`, `d`, `s` |
//! | `\|c:<id>` | property `container_id` |
//! | `@rate` of `c`, `ms`, `h`, `d` | `weight` = 1/rate rounded (`@0.1` → 10, `@0.3` → 3): count += weight, sum += value × weight |
//! | `\|T<seconds>` | `occurred_at`; else the time received |
//!
//! So with a metric definition over `event_type` = the name: a counter's total is the `sum`
//! of `value` and its `count` the (weighted) number of increments; a gauge serves
//! `min`/`max`/`avg` of the levels reported in a window (the last level is not kept:
//! sketches merge in any order); timers, histograms and distributions serve percentiles of
//! `value`; a set's size is the `unique` count of `value`. The built-in `events` metric
//! counts every line (weighted) by name.

use super::parse::{Line, Type, Value as Sample};
use crate::protocols::segment::message::sanitize;
use rtdash_shared::event::MAX_WEIGHT;
use rtdash_shared::time::{format_rfc3339, UnixMillis};
use serde_json::{Map, Value};
use std::io::Write;

/// What every line of a listener shares.
#[derive(Clone, Debug)]
pub struct Target {
    /// `statsd.tenant`.
    pub tenant: String,
    /// `statsd.source`.
    pub source: String,
}

/// The weight of a sample at `rate` for `kind`.
pub fn weight(kind: Type, rate: f64) -> u32 {
    if !kind.is_sampled() || rate >= 1.0 {
        return 1;
    }
    (1.0 / rate).round().clamp(1.0, f64::from(MAX_WEIGHT)) as u32
}

/// Appends the events of `line` to `out` as NDJSON; returns how many.
pub fn write_events(
    out: &mut Vec<u8>,
    line: &Line<'_>,
    target: &Target,
    received_at: UnixMillis,
) -> usize {
    let mut properties = Map::new();
    for (key, value) in &line.tags {
        let key = match *key {
            "value" | "statsd_type" | "container_id" => format!("tag_{key}"),
            other => other.to_owned(),
        };
        properties.insert(key, value.map_or(Value::Bool(true), Value::from));
    }
    properties.insert("statsd_type".into(), Value::from(line.kind.code()));
    if let Some(container) = line.container {
        properties.insert("container_id".into(), Value::from(container));
    }
    let occurred_at = line
        .timestamp
        .map_or(received_at, |seconds| seconds.saturating_mul(1000));
    let weight = weight(line.kind, line.rate);
    let event_type = sanitize(line.name);
    let at = format_rfc3339(occurred_at);
    for sample in &line.values {
        let value = match sample {
            Sample::Number(n) => {
                serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
            }
            Sample::Member(member) => Value::from(*member),
        };
        properties.insert("value".into(), value);
        let mut event = Map::new();
        event.insert("tenant_id".into(), Value::from(target.tenant.as_str()));
        event.insert("source".into(), Value::from(target.source.as_str()));
        event.insert("event_type".into(), Value::from(event_type.as_str()));
        event.insert("properties".into(), Value::Object(properties.clone()));
        event.insert("occurred_at".into(), Value::from(at.as_str()));
        if weight != 1 {
            event.insert("weight".into(), Value::from(weight));
        }
        if serde_json::to_writer(&mut *out, &Value::Object(event)).is_ok() {
            let _ = out.write_all(b"\n");
        }
    }
    line.values.len()
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_line;
    use super::*;
    use serde_json::json;

    fn events(text: &str) -> Vec<Value> {
        let target = Target {
            tenant: "acme".into(),
            source: "statsd".into(),
        };
        let mut out = Vec::new();
        let line = parse_line(text).expect("valid");
        let n = write_events(&mut out, &line, &target, 1_768_485_932_000);
        let parsed: Vec<Value> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("json"))
            .collect();
        assert_eq!(parsed.len(), n);
        parsed
    }

    #[test]
    fn a_sampled_counter_weighs_the_inverse_of_its_rate() {
        assert_eq!(
            events("page.views:1|c|@0.1|#route:/home,beta"),
            vec![json!({
                "tenant_id": "acme", "source": "statsd", "event_type": "page_views",
                "properties": {"route": "/home", "beta": true, "statsd_type": "c", "value": 1.0},
                "occurred_at": "2026-01-15T14:05:32.000Z", "weight": 10
            })]
        );
        assert_eq!(weight(Type::Counter, 0.3), 3);
        assert_eq!(weight(Type::Gauge, 0.1), 1, "a sampled gauge is one level");
        assert_eq!(weight(Type::Set, 0.5), 1);
        assert_eq!(weight(Type::Timer, 1e-9), MAX_WEIGHT);
    }

    #[test]
    fn sets_timestamps_and_reserved_tags() {
        let sets = events("users:u-7|s|#value:x|T1768485900");
        assert_eq!(sets[0]["properties"]["value"], "u-7");
        assert_eq!(sets[0]["properties"]["tag_value"], "x");
        assert_eq!(sets[0]["occurred_at"], "2026-01-15T14:05:00.000Z");
        assert!(sets[0].get("weight").is_none());
        let many = events("lat:1:2|d|c:ctr");
        assert_eq!(many.len(), 2);
        assert_eq!(many[1]["properties"]["value"], 2.0);
        assert_eq!(many[1]["properties"]["container_id"], "ctr");
    }
}
