//! Size and time bounds applied while validating events.

/// Bounds on a single event. The defaults suit a sidecar on a laptop and in production.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventLimits {
    /// Largest encoded event, in bytes.
    pub max_event_bytes: usize,
    /// Longest `tenant_id`, `source` or `event_type`, in bytes.
    pub max_identifier_len: usize,
    /// Most properties on one event.
    pub max_properties: usize,
    /// Longest property key, in bytes.
    pub max_property_key_len: usize,
    /// Longest string property value, in bytes.
    pub max_property_value_len: usize,
    /// How far `occurred_at` may lie ahead of the receiver's clock, in milliseconds.
    pub max_future_skew_ms: i64,
    /// How far `occurred_at` may lie behind the receiver's clock, in milliseconds.
    pub max_age_ms: i64,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_event_bytes: 64 * 1024,
            max_identifier_len: 128,
            max_properties: 64,
            max_property_key_len: 128,
            max_property_value_len: 1024,
            max_future_skew_ms: 5 * 60 * 1000,
            max_age_ms: 7 * 24 * 3600 * 1000,
        }
    }
}
