//! Request bodies of the same synthetic events in each protocol's shape: rtdash NDJSON,
//! a Segment batch, an OTLP `ExportLogsServiceRequest` (protobuf), StatsD datagrams.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::json;

const EVENT_TYPES: [&str; 5] = ["checkout", "search", "signup", "view", "click"];
const REGIONS: [&str; 4] = ["us", "eu", "ap", "sa"];

/// The `i`-th synthetic event: (event type, region, amount, user).
fn nth(i: u64) -> (&'static str, &'static str, f64, u64) {
    (
        EVENT_TYPES[(i % 5) as usize],
        REGIONS[((i / 5) % 4) as usize],
        (i % 1000) as f64 / 10.0,
        i % 10_000,
    )
}

/// `n` events from `first`, as `POST /v1/events` NDJSON for `tenant` at `now_rfc3339`.
pub fn events_ndjson(tenant: &str, first: u64, n: u64, now_rfc3339: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for i in first..first + n {
        let (event_type, region, amount, user) = nth(i);
        let event = json!({
            "tenant_id": tenant, "source": "bench", "event_type": event_type,
            "occurred_at": now_rfc3339,
            "properties": {"region": region, "amount": amount, "user_id": format!("u{user}")},
        });
        let _ = serde_json::to_writer(&mut out, &event);
        out.push(b'\n');
    }
    out
}

/// `n` track calls from `first` as a Segment `/v1/batch` body, message ids `<run>-<i>`.
pub fn segment_batch(run: &str, first: u64, n: u64, now_rfc3339: &str) -> Vec<u8> {
    let batch: Vec<_> = (first..first + n)
        .map(|i| {
            let (event_type, region, amount, user) = nth(i);
            json!({
                "type": "track", "event": event_type, "userId": format!("u{user}"),
                "messageId": format!("{run}-{i}"), "timestamp": now_rfc3339,
                "properties": {"region": region, "amount": amount},
                "context": {"library": {"name": "bench", "version": "1"}},
            })
        })
        .collect();
    serde_json::to_vec(&json!({"batch": batch, "sentAt": now_rfc3339})).unwrap_or_default()
}

fn kv(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// `n` log records with event names from `first`, as an OTLP protobuf request.
pub fn otlp_logs(first: u64, n: u64, now_nanos: u64) -> Vec<u8> {
    let records = (first..first + n)
        .map(|i| {
            let (event_type, region, amount, user) = nth(i);
            LogRecord {
                time_unix_nano: now_nanos,
                event_name: event_type.into(),
                attributes: vec![
                    kv("region", Any::StringValue(region.into())),
                    kv("amount", Any::DoubleValue(amount)),
                    kv("user_id", Any::StringValue(format!("u{user}"))),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Any::StringValue("bench".into()))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// One StatsD datagram of `lines` lines from `first` (counters, timers, gauges).
pub fn statsd_datagram(first: u64, lines: u64) -> Vec<u8> {
    let mut out = String::new();
    for i in first..first + lines {
        let (event_type, region, amount, _) = nth(i);
        let kind = ["c", "ms", "g"][(i % 3) as usize];
        out.push_str(&format!(
            "{event_type}.{kind}:{amount}|{kind}|#region:{region}\n"
        ));
    }
    out.into_bytes()
}
