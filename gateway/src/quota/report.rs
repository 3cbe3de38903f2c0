//! Every tenant's use against its limits on `/metrics`
//! (`rtdash_gateway_quota_used{tenant,quota}` and `rtdash_gateway_quota_limit{tenant,quota}`),
//! recomputed every [`REPORT_EVERY`] from this gateway's copy of the config bucket, so an
//! operator can alert on a tenant nearing a limit. The tenants are those with something
//! stored or a stream open; one that has nothing left reports 0 use once, then is dropped
//! from the report. The label set is bounded by the tenants, which the operator creates.

use crate::metrics::{QUOTA_LIMIT, QUOTA_USED};
use crate::state::AppState;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the gauges are recomputed.
pub const REPORT_EVERY: Duration = Duration::from_secs(15);

/// The tenants with something in the config bucket (global definitions left out).
fn tenants(state: &AppState) -> BTreeSet<String> {
    super::TENANT_PREFIXES
        .iter()
        .flat_map(|prefix| state.store.list(prefix))
        .filter_map(|(key, _)| key.split('.').nth(1).map(str::to_owned))
        .filter(|tenant| !tenant.starts_with('_'))
        .collect()
}

fn report(state: &AppState, tenant: &str, present: bool) {
    let quotas = crate::api::quotas::answer(state, tenant);
    for ((name, limit), (_, used)) in quotas.limits.named().into_iter().zip(quotas.used.named()) {
        let labels = [("tenant", tenant.to_owned()), ("quota", name.to_owned())];
        metrics::gauge!(QUOTA_LIMIT, &labels).set(limit as f64);
        metrics::gauge!(QUOTA_USED, &labels).set(if present { used as f64 } else { 0.0 });
    }
}

/// Recomputes the gauges every [`REPORT_EVERY`] until `stop`.
pub async fn run(state: AppState, stop: CancellationToken) {
    let mut reported = BTreeSet::new();
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !state.store.is_loaded() {
            continue;
        }
        let mut now = tenants(&state);
        now.extend(state.tenant_streams.keys());
        for tenant in reported.difference(&now) {
            report(&state, tenant, false);
        }
        for tenant in &now {
            report(&state, tenant, true);
        }
        reported = now;
    }
}
