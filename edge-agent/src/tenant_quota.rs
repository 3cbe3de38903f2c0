//! The parts of a tenant's quota settings the agent enforces (`quota.<tenant>` of the keys
//! bucket, set with the gateway's `PUT /v1/tenants/{tenant}/quotas`; the other limits are the
//! gateway's): `events_per_second` ([`crate::ingest::tenant_rate`]) and
//! `max_series_per_window` ([`crate::aggregate::ceilings`]).

use rtdash_shared::quota::QuotaSettings;

/// Decodes a stored `quota.<tenant>` value; keys this agent does not know (a newer gateway's)
/// are ignored, and a value that does not decode is `None` (enforce nothing).
pub fn decode(bytes: &[u8]) -> Option<QuotaSettings> {
    QuotaSettings::from_json_lenient(bytes).ok()
}
