//! The parts of a tenant's quota settings the agent enforces (`quota.<tenant>` of the keys
//! bucket, set with the gateway's `PUT /v1/tenants/{tenant}/quotas`; the other limits are the
//! gateway's): `events_per_second` ([`crate::ingest::tenant_rate`]) and
//! `max_series_per_window` ([`crate::aggregate::ceilings`]).

use serde::Deserialize;

/// What the agent reads of `quota.<tenant>`; the keys only the gateway enforces are ignored.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct AgentQuota {
    /// Events per second accepted for the tenant at each agent.
    #[serde(default)]
    pub events_per_second: Option<u64>,
    /// The most series per (metric, dimension set, window) of the tenant.
    #[serde(default)]
    pub max_series_per_window: Option<u32>,
}

impl AgentQuota {
    /// Decodes a stored value; `None` (enforce nothing) when it does not decode.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}
