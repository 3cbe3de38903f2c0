//! Tenant quotas (issue #16): per-tenant limits on what a tenant may create and hold open,
//! defaults from `[quotas]`, the operator's settings per tenant in the keys bucket
//! (`quota.<tenant>`, see [`QuotaSettings`]), checked where things are created.
//!
//! - [`Limits`]: the `[quotas]` section (the defaults of every tenant), a tenant's effective
//!   limits (settings over defaults), and its use against them; [`QuotaSettings`] the
//!   operator's settings of one tenant (both from [`rtdash_shared::quota`], which the edge
//!   agents read too);
//! - [`streams`]: open live streams per tenant, held by a guard while a stream is open;
//! - [`report`]: every tenant's use against its limits on `/metrics`.
//!
//! Counts are read from this gateway's copy of the config bucket at the time of a create, so
//! creates racing on several gateways can exceed a count limit by the number of such
//! concurrent creates; the limits exist to stop a tenant growing without bound, not to be
//! exact to the unit.

pub mod report;
pub mod streams;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::ConfigStore;
use rtdash_runtime::keys::KeyStore;
use rtdash_shared::names::{
    alert_config_key, dashboard_config_key, metric_config_key, silence_config_key,
};

pub use rtdash_shared::quota::{Limits, QuotaSettings};

/// The operator's settings of `tenant` (none when there are none, or they do not decode: then
/// the defaults hold, and the problem is logged).
pub fn settings(keys: &KeyStore, tenant: &str) -> QuotaSettings {
    let Some(bytes) = keys.quota(tenant) else {
        return QuotaSettings::default();
    };
    QuotaSettings::from_json(&bytes).unwrap_or_else(|err| {
        tracing::warn!(%tenant, error = %err, "stored quota settings do not decode; defaults hold");
        QuotaSettings::default()
    })
}

/// The effective limits of `tenant`.
pub fn limits(keys: &KeyStore, defaults: &Limits, tenant: &str) -> Limits {
    settings(keys, tenant).over(*defaults)
}

/// `429 quota_exceeded` naming the limit, unless `used + adding` stays within `limit`.
pub fn check(name: &str, used: usize, adding: usize, limit: u64) -> Result<(), ApiError> {
    let after = u64::try_from(used.saturating_add(adding)).unwrap_or(u64::MAX);
    if after > limit {
        Err(ApiError::quota_exceeded(name, limit))
    } else {
        Ok(())
    }
}

/// How many keys of the config bucket begin with `prefix`.
fn count(store: &ConfigStore, prefix: &str) -> usize {
    store.list(prefix).len()
}

/// The tenant's dashboards.
pub fn dashboards(store: &ConfigStore, tenant: &str) -> usize {
    count(store, &dashboard_config_key(tenant, ""))
}

/// The tenant's alert rules.
pub fn alert_rules(store: &ConfigStore, tenant: &str) -> usize {
    count(store, &alert_config_key(tenant, ""))
}

/// The tenant's own metric definitions.
pub fn metric_definitions(store: &ConfigStore, tenant: &str) -> usize {
    count(store, &metric_config_key(Some(tenant), ""))
}

/// Config-bucket key prefixes that name a tenant as their second part.
pub const TENANT_PREFIXES: [&str; 4] = ["dashboard.", "alert.", "metric.", "silence."];

/// Bytes (keys and values) the tenant's entries take in the config bucket.
pub fn config_bytes(store: &ConfigStore, tenant: &str) -> usize {
    TENANT_PREFIXES
        .iter()
        .flat_map(|prefix| store.list(&format!("{prefix}{tenant}.")))
        .map(|(key, stored)| key.len() + stored.value.len())
        .sum()
}

/// `value`, to be stored under `key` of `tenant`, unless the tenant's entries would then take
/// more than its `config_bytes` (`429 quota_exceeded`).
pub fn within_config_bytes(
    state: &AppState,
    tenant: &str,
    key: &str,
    value: bytes::Bytes,
) -> Result<bytes::Bytes, ApiError> {
    let limit = limits(&state.auth.keys, &state.config.quotas, tenant).config_bytes;
    let replaced = state
        .store
        .get(key)
        .map_or(0, |stored| key.len() + stored.value.len());
    let used = config_bytes(&state.store, tenant).saturating_sub(replaced);
    check("config_bytes", used, key.len() + value.len(), limit)?;
    Ok(value)
}

/// The tenant's silences (not yet purged).
pub fn silences(store: &ConfigStore, tenant: &str) -> usize {
    count(store, &silence_config_key(tenant, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_limit() {
        assert!(check("dashboards", 1, 1, 2).is_ok());
        let err = check("dashboards", 2, 1, 2).unwrap_err();
        assert_eq!(err.status(), 429);
        assert_eq!(err.code(), "quota_exceeded");
        assert_eq!(err.to_string(), "dashboards is 2");
    }
}
