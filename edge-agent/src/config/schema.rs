//! `[schema]`: schema discovery (see [`crate::schema`]).

use serde::{Deserialize, Serialize};

/// Schema discovery: the event types, properties, kinds, example values and distinct counts
/// seen per tenant, published to the `rtdash_schema` bucket for `GET /v1/event-types`.
///
/// Every bound holds whatever producers send; what a bound turns away is counted
/// (`rtdash_agent_schema_dropped_total{what}`, and per tenant in the published overflow
/// record), never stored. Memory at the bounds: a property takes at most about 1.5 KiB
/// (a 1 KiB distinct sketch, five examples, its name), so the default `max_total_properties`
/// caps it near 30 MiB.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaConfig {
    /// Off: nothing is recorded or published.
    pub enabled: bool,
    /// An event type not seen for this long is forgotten, in seconds (the bucket's entries
    /// expire after `streams.schema_max_age_secs`, the same 24 h by default).
    pub horizon_secs: u64,
    /// How often changed event types are published, in milliseconds.
    pub publish_interval_ms: u64,
    /// Most tenants recorded at once.
    pub max_tenants: usize,
    /// Most event types per tenant.
    pub max_event_types: usize,
    /// Most properties per event type.
    pub max_properties: usize,
    /// Most properties over every tenant and event type.
    pub max_total_properties: usize,
    /// Longest example value kept, in characters (longer ones are cut).
    pub max_example_chars: usize,
}

impl Default for SchemaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            horizon_secs: 24 * 3600,
            publish_interval_ms: 10_000,
            max_tenants: 100,
            max_event_types: 200,
            max_properties: 100,
            max_total_properties: 20_000,
            max_example_chars: 64,
        }
    }
}
