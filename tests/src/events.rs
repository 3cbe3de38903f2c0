//! Events as a producing service posts them to an edge agent.

use serde_json::{json, Value};

use crate::time::format_rfc3339;

/// `{tenant_id, source, event_type, properties, occurred_at}` with `occurred_at` (Unix ms) in
/// RFC 3339.
pub fn event_json(
    tenant: &str,
    source: &str,
    event_type: &str,
    properties: Value,
    occurred_at: i64,
) -> Value {
    json!({
        "tenant_id": tenant,
        "source": source,
        "event_type": event_type,
        "properties": properties,
        "occurred_at": format_rfc3339(occurred_at),
    })
}
