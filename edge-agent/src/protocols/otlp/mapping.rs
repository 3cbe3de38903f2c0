//! One OTLP log record mapped onto an rtdash event in the seed's shape.
//!
//! | OTLP | rtdash |
//! |---|---|
//! | the record's `event_name`, else its `event.name` attribute, else `otlp.default_event_type` | `event_type`, sanitised (`checkout.completed` → `checkout_completed`); none: rejected (`missing_event_name`) |
//! | the resource's `service.name` | `source`, sanitised; absent: `otlp.default_source` (`otlp`) |
//! | resource attributes, then scope attributes, then the body's entries (a map body), then the record's attributes | `properties`, later ones winning on equal keys; nested maps flattened with `.`, arrays and bytes as text; `event.name` left out |
//! | `severity_text` (when set), `trace_id`, `span_id` (when valid, hex) | properties `severity`, `trace_id`, `span_id` (the record's attributes win) |
//! | `time_unix_nano`, else `observed_time_unix_nano`, else the time received | `occurred_at` (milliseconds) |
//!
//! Sanitising replaces every character outside `[A-Za-z0-9_-]` by `_`.

use crate::protocols::segment::message::sanitize;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use rtdash_shared::time::{format_rfc3339, UnixMillis};
use serde_json::{Map, Value};

/// What the records of one resource and scope share.
#[derive(Debug)]
pub struct Context<'a> {
    /// The resolved tenant.
    pub tenant: &'a str,
    /// Resource and scope attributes, flattened, scope winning.
    pub shared: Map<String, Value>,
    /// `source` of the resource's records.
    pub source: String,
    /// `otlp.default_event_type`.
    pub default_event_type: Option<&'a str>,
    /// When the agent received the request.
    pub received_at: UnixMillis,
}

/// The `source` for a resource's attributes.
pub fn source_of(resource: &[KeyValue], default: &str) -> String {
    resource
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(name) if !name.is_empty() => Some(sanitize(name)),
            _ => None,
        })
        .unwrap_or_else(|| default.to_owned())
}

/// `attributes` flattened into `out` (later keys win).
pub fn add_attributes(out: &mut Map<String, Value>, attributes: &[KeyValue]) {
    for kv in attributes {
        add_value(out, &kv.key, kv.value.as_ref(), 0);
    }
}

fn add_value(out: &mut Map<String, Value>, key: &str, value: Option<&AnyValue>, depth: usize) {
    let Some(value) = value.and_then(|v| v.value.as_ref()) else {
        out.insert(key.to_owned(), Value::Null);
        return;
    };
    let scalar = match value {
        Any::StringValue(text) => Value::from(text.as_str()),
        Any::BoolValue(b) => Value::from(*b),
        Any::IntValue(i) => Value::from(*i),
        Any::DoubleValue(d) if d.is_finite() => Value::from(*d),
        Any::DoubleValue(d) => Value::from(d.to_string()),
        Any::BytesValue(bytes) => Value::from(hex(bytes)),
        Any::ArrayValue(array) => {
            let items: Vec<Value> = array.values.iter().map(json_of).collect();
            Value::from(Value::Array(items).to_string())
        }
        Any::KvlistValue(list) if depth < 4 => {
            for kv in &list.values {
                add_value(
                    out,
                    &format!("{key}.{}", kv.key),
                    kv.value.as_ref(),
                    depth + 1,
                );
            }
            return;
        }
        Any::KvlistValue(_) => Value::from(
            json_of(&AnyValue {
                value: Some(value.clone()),
            })
            .to_string(),
        ),
        Any::StringValueStrindex(index) => Value::from(*index),
    };
    out.insert(key.to_owned(), scalar);
}

/// An attribute value as plain JSON (inside arrays and too-deep maps).
fn json_of(value: &AnyValue) -> Value {
    match &value.value {
        None => Value::Null,
        Some(Any::StringValue(text)) => Value::from(text.as_str()),
        Some(Any::BoolValue(b)) => Value::from(*b),
        Some(Any::IntValue(i)) => Value::from(*i),
        Some(Any::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        Some(Any::BytesValue(bytes)) => Value::from(hex(bytes)),
        Some(Any::ArrayValue(array)) => Value::Array(array.values.iter().map(json_of).collect()),
        Some(Any::KvlistValue(list)) => Value::Object(
            list.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(Value::Null, json_of),
                    )
                })
                .collect(),
        ),
        Some(Any::StringValueStrindex(index)) => Value::from(*index),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a record was not mapped.
pub const MISSING_EVENT_NAME: &str = "missing_event_name";

/// The event `record` maps onto, or why it has none (see the module docs).
pub fn to_event(record: &LogRecord, context: &Context<'_>) -> Result<Value, String> {
    let attribute_name = record.attributes.iter().find_map(|kv| {
        (kv.key == "event.name").then(|| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(name) => Some(name.as_str()),
            _ => None,
        })?
    });
    let name = [
        Some(record.event_name.as_str()),
        attribute_name,
        context.default_event_type,
    ]
    .into_iter()
    .flatten()
    .find(|name| !name.is_empty())
    .ok_or_else(|| {
        "the log record has no event name (`event_name` or an `event.name` attribute) and \
             the agent has no `otlp.default_event_type`"
            .to_owned()
    })?;
    let mut properties = context.shared.clone();
    if !record.severity_text.is_empty() {
        properties.insert(
            "severity".into(),
            Value::from(record.severity_text.as_str()),
        );
    }
    if record.trace_id.len() == 16 && record.trace_id.iter().any(|b| *b != 0) {
        properties.insert("trace_id".into(), Value::from(hex(&record.trace_id)));
    }
    if record.span_id.len() == 8 && record.span_id.iter().any(|b| *b != 0) {
        properties.insert("span_id".into(), Value::from(hex(&record.span_id)));
    }
    if let Some(Any::KvlistValue(body)) = record.body.as_ref().and_then(|b| b.value.as_ref()) {
        add_attributes(&mut properties, &body.values);
    }
    add_attributes(&mut properties, &record.attributes);
    properties.remove("event.name");
    let nanos = if record.time_unix_nano != 0 {
        record.time_unix_nano
    } else {
        record.observed_time_unix_nano
    };
    let occurred_at = if nanos == 0 {
        context.received_at
    } else {
        (nanos / 1_000_000) as UnixMillis
    };
    let mut event = Map::new();
    event.insert("tenant_id".into(), Value::from(context.tenant));
    event.insert("source".into(), Value::from(context.source.as_str()));
    event.insert("event_type".into(), Value::from(sanitize(name)));
    event.insert("properties".into(), Value::Object(properties));
    event.insert(
        "occurred_at".into(),
        Value::from(format_rfc3339(occurred_at)),
    );
    Ok(Value::Object(event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::KeyValueList;
    use serde_json::json;

    fn kv(key: &str, value: Any) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn context(shared: &[KeyValue]) -> Context<'static> {
        let mut map = Map::new();
        add_attributes(&mut map, shared);
        Context {
            tenant: "acme",
            shared: map,
            source: "checkout".into(),
            default_event_type: None,
            received_at: 1_768_485_932_000,
        }
    }

    #[test]
    fn a_record_with_an_event_name_becomes_an_event() {
        let record = LogRecord {
            time_unix_nano: 1_768_485_900_123_456_789,
            event_name: "checkout.completed".into(),
            severity_text: "INFO".into(),
            attributes: vec![
                kv("amount", Any::DoubleValue(9.5)),
                kv("region", Any::StringValue("eu".into())),
                kv(
                    "user",
                    Any::KvlistValue(KeyValueList {
                        values: vec![kv("id", Any::IntValue(7))],
                    }),
                ),
            ],
            ..Default::default()
        };
        let ctx = context(&[
            kv("service.name", Any::StringValue("checkout".into())),
            kv("region", Any::StringValue("us".into())),
        ]);
        let event = to_event(&record, &ctx).expect("mapped");
        assert_eq!(
            event,
            json!({
                "tenant_id": "acme", "source": "checkout", "event_type": "checkout_completed",
                "properties": {"service.name": "checkout", "region": "eu", "severity": "INFO",
                               "amount": 9.5, "user.id": 7},
                "occurred_at": "2026-01-15T14:05:00.123Z"
            })
        );
    }

    #[test]
    fn the_event_name_attribute_and_the_default_type_stand_in() {
        let record = LogRecord {
            observed_time_unix_nano: 1_768_485_901_000_000_000,
            attributes: vec![kv("event.name", Any::StringValue("signup".into()))],
            ..Default::default()
        };
        let event = to_event(&record, &context(&[])).expect("mapped");
        assert_eq!(event["event_type"], "signup");
        assert_eq!(event["properties"], json!({}));
        assert_eq!(event["occurred_at"], "2026-01-15T14:05:01.000Z");
        let plain = LogRecord::default();
        assert!(to_event(&plain, &context(&[])).is_err());
        let mut ctx = context(&[]);
        ctx.default_event_type = Some("log");
        assert_eq!(to_event(&plain, &ctx).expect("mapped")["event_type"], "log");
    }

    #[test]
    fn the_source_is_the_service_name() {
        let resource = [kv(
            "service.name",
            Any::StringValue("unknown_service:python".into()),
        )];
        assert_eq!(source_of(&resource, "otlp"), "unknown_service_python");
        assert_eq!(source_of(&[], "otlp"), "otlp");
    }
}
