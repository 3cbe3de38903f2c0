//! Tenants' series ceilings at this agent: the operator's `max_series_per_window` of
//! `quota.<tenant>` caps every metric the agent aggregates for the tenant (built-in ones, and
//! definitions stored before the ceiling was lowered, included) at the lower of the
//! definition's `max_series_per_window` and the ceiling, with the definition cap's own
//! overflow series ([`rtdash_shared::aggregate`]). Tenants without the setting keep their
//! definitions' caps (which the gateway checks against its default ceiling when they are
//! stored).
//!
//! The key store's copy of the bucket is polled for changes every [`REFRESH`] (a counter
//! read); the ceilings are rebuilt and handed to every shard only when a quota changed.

use super::Shards;
use crate::tenant_quota;
use rtdash_runtime::keys::KeyStore;
use rtdash_shared::aggregate::SeriesCeilings;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the key store is checked for changed quotas.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Keeps the shards' ceilings equal to the stored quotas until `shutdown`.
pub async fn follow(keys: KeyStore, shards: Arc<Shards>, shutdown: CancellationToken) {
    let mut applied = None;
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if applied == Some(keys.quota_generation()) {
            continue;
        }
        let (generation, stored) = keys.quotas();
        let ceilings = ceilings_of(stored);
        tracing::debug!(tenants = ceilings.len(), "series ceilings applied");
        shards.set_series_ceilings(Arc::new(ceilings));
        applied = Some(generation);
    }
}

/// The ceilings set in `stored` (tenant, `quota.<tenant>` value) pairs.
fn ceilings_of(stored: Vec<(String, Vec<u8>)>) -> SeriesCeilings {
    stored
        .into_iter()
        .filter_map(|(tenant, value)| {
            let ceiling = tenant_quota::decode(&value)?.max_series_per_window?;
            Some((tenant, u32::try_from(ceiling).unwrap_or(u32::MAX)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tenants_with_a_ceiling_are_listed() {
        let stored = vec![
            (
                "a".to_owned(),
                br#"{"max_series_per_window": 3, "dashboards": 2, "a_newer_limit": 1}"#.to_vec(),
            ),
            ("b".to_owned(), br#"{"events_per_second": 10}"#.to_vec()),
            ("c".to_owned(), b"not json".to_vec()),
            (
                "d".to_owned(),
                br#"{"max_series_per_window": 70000}"#.to_vec(),
            ),
        ];
        assert_eq!(
            ceilings_of(stored),
            SeriesCeilings::from([("a".to_owned(), 3), ("d".to_owned(), 70_000)])
        );
    }
}
