//! Backfill jobs: computing a new (or changed) metric over the past kept in the raw-event
//! archive. A gateway stores a `queued` job under `<tenant>.<metric>` of
//! [`crate::names::BACKFILL_BUCKET`]; one aggregator claims it (compare-and-set on the key's
//! revision), runs it and writes its progress back to the same key, which the gateways read.
//!
//! A job covers the base windows of `[from, boundary)`: `boundary` is the first window the
//! edge agents count completely live (the definition's activation plus a margin for it to
//! reach every agent). Windows already past the aggregators' correction horizon are
//! recomputed at once (phase `past`); the rest once the horizon has passed them too
//! (`recent`, at `recent_complete_at`); then the rollup tier windows holding recomputed
//! windows are rebuilt from the stored base windows once the horizon has passed them
//! (`tiers`, at `tiers_complete_at`). All times are Unix milliseconds.

use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BackfillState {
    /// Waiting for an aggregator to claim it.
    Queued,
    /// Claimed; windows are being recomputed or waiting for the correction horizon.
    Running,
    /// Every window of the range and every tier window holding one is rewritten.
    Done,
    /// Stopped; `error` says why.
    Failed,
}

/// Which part of the work a running job is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BackfillPhase {
    /// Recomputing the windows already past the correction horizon.
    Past,
    /// Waiting for (then recomputing) the windows up to the boundary.
    Recent,
    /// Waiting for (then rebuilding) the tier windows that hold recomputed windows.
    Tiers,
}

/// A backfill job and its progress, as stored and as answered by the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct BackfillJob {
    /// Job id (unique per request).
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Metric.
    pub metric: String,
    /// Base window length of the metric, ms.
    pub window_ms: i64,
    /// First window start recomputed.
    pub from: UnixMillis,
    /// First window not recomputed: counted completely live by the edge agents.
    pub boundary: UnixMillis,
    /// When the definition was stored.
    pub defined_at: UnixMillis,
    /// When the job was requested.
    pub requested_at: UnixMillis,
    /// State.
    pub state: BackfillState,
    /// Part of the work (absent while queued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackfillPhase>,
    /// Base windows of `[from, boundary)` recomputed so far.
    pub windows_done: u64,
    /// Base windows of `[from, boundary)`.
    pub windows_total: u64,
    /// Archived events folded in so far.
    pub events: u64,
    /// Rows written so far (base and tier).
    pub rows: u64,
    /// When the windows up to the boundary are complete (the boundary plus the correction
    /// horizon and a settling margin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_complete_at: Option<UnixMillis>,
    /// When the tier windows holding recomputed windows are complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers_complete_at: Option<UnixMillis>,
    /// Aggregator running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    /// Last progress write of the running aggregator (a running job not updated for a minute
    /// is marked failed by any aggregator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<UnixMillis>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BackfillJob {
    /// Whether the job still has base windows to rewrite (queued, or running before its tier
    /// phase): what the limits of one job per metric and `max_active_per_tenant` count. A job
    /// only waiting to rebuild its tier windows (up to a day for the `1d` tier) holds neither
    /// up: it reads the base windows back from the store when it rebuilds them, whoever wrote
    /// them last.
    pub fn is_computing(&self) -> bool {
        match self.state {
            BackfillState::Queued => true,
            BackfillState::Running => self.phase != Some(BackfillPhase::Tiers),
            BackfillState::Done | BackfillState::Failed => false,
        }
    }

    /// A queued job over the base windows of `[from, boundary)` (both aligned to `window_ms`).
    pub fn queued(
        id: String,
        (tenant, metric): (&str, &str),
        window_ms: i64,
        (from, boundary): (UnixMillis, UnixMillis),
        defined_at: UnixMillis,
        now: UnixMillis,
    ) -> Self {
        Self {
            id,
            tenant: tenant.to_owned(),
            metric: metric.to_owned(),
            window_ms,
            from,
            boundary,
            defined_at,
            requested_at: now,
            state: BackfillState::Queued,
            phase: None,
            windows_done: 0,
            windows_total: windows_between(from, boundary, window_ms),
            events: 0,
            rows: 0,
            recent_complete_at: None,
            tiers_complete_at: None,
            claimed_by: None,
            heartbeat_at: None,
            finished_at: None,
            error: None,
        }
    }
}

/// Number of `window_ms` windows starting in `[from, to)` (both aligned).
pub fn windows_between(from: UnixMillis, to: UnixMillis, window_ms: i64) -> u64 {
    if to <= from || window_ms <= 0 {
        return 0;
    }
    ((to - from) / window_ms) as u64
}

/// `at` rounded up to a multiple of `window_ms`.
pub fn align_up(at: UnixMillis, window_ms: i64) -> UnixMillis {
    let rem = at.rem_euclid(window_ms);
    if rem == 0 {
        at
    } else {
        at - rem + window_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_job_counts_its_windows_and_round_trips() {
        let job = BackfillJob::queued(
            "j1".into(),
            ("acme", "orders"),
            60_000,
            (600_000, 900_000),
            850_000,
            851_000,
        );
        assert_eq!(job.windows_total, 5);
        let json = serde_json::to_string(&job).unwrap();
        assert!(json.contains(r#""state":"queued""#), "{json}");
        assert!(!json.contains("phase"), "{json}");
        assert_eq!(serde_json::from_str::<BackfillJob>(&json).unwrap(), job);
    }

    #[test]
    fn a_job_waiting_for_its_tier_windows_is_no_longer_computing() {
        let mut job = BackfillJob::queued(
            "j1".into(),
            ("acme", "orders"),
            60_000,
            (600_000, 900_000),
            850_000,
            851_000,
        );
        assert!(job.is_computing(), "queued");
        job.state = BackfillState::Running;
        for (phase, computing) in [
            (BackfillPhase::Past, true),
            (BackfillPhase::Recent, true),
            (BackfillPhase::Tiers, false),
        ] {
            job.phase = Some(phase);
            assert_eq!(job.is_computing(), computing, "{phase:?}");
        }
        for state in [BackfillState::Done, BackfillState::Failed] {
            job.state = state;
            assert!(!job.is_computing(), "{state:?}");
        }
    }

    #[test]
    fn alignment() {
        assert_eq!(align_up(120_000, 60_000), 120_000);
        assert_eq!(align_up(120_001, 60_000), 180_000);
        assert_eq!(align_up(-1, 60_000), 0);
        assert_eq!(windows_between(0, 0, 1_000), 0);
        assert_eq!(windows_between(5_000, 0, 1_000), 0);
    }
}
