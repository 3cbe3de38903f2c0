//! Unit tests of the partition state machine: the batches and helpers they share here, the
//! tests by concern in `apply.rs` (merging, lateness, watermarks), `outputs.rs` (throttling
//! and store room), `capture.rs` (checkpoints, restore, eviction) and `tiers.rs` (rollup tier
//! windows).

mod apply;
mod capture;
mod outputs;
mod tiers;

use super::*;
use rtdash_shared::messages::{PartialBatch, PartialEntry};
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::{Sketch, SketchSpec};

const LATENESS: i64 = 2_000;
const HORIZON: i64 = 10_000;
const IDLE: i64 = 5_000;

fn settings() -> Settings {
    Settings {
        allowed_lateness_ms: LATENESS,
        correction_horizon_ms: HORIZON,
        idle_timeout_ms: IDLE,
        forget_agents_after_ms: 60_000,
        provisional_interval_ms: 1_000,
        tier_interval_ms: 1_000,
        live_throttle_ms: 250,
        provisional_rows_per_s: 0,
        write_state: true,
        tiers: TierSet::NONE,
        max_tier_series: 1_000,
    }
}

fn series(region: &str) -> SeriesKey {
    SeriesKey::new(
        "acme",
        "latency",
        [("region".to_owned(), Some(region.to_owned()))],
    )
}

fn sketch(values: &[f64]) -> Sketch {
    let mut sketch = Sketch::new(SketchSpec::VALUES);
    for v in values {
        sketch.record(Some(*v), None);
    }
    sketch
}

fn entry(region: &str, start: i64, values: &[f64]) -> PartialEntry {
    PartialEntry {
        series: series(region),
        window_start: start,
        window_ms: 1_000,
        sketch: sketch(values),
    }
}

fn batch(
    agent: &str,
    seq: u64,
    acked_below: u64,
    watermark: i64,
    created_at: i64,
    entries: Vec<PartialEntry>,
) -> PartialBatch {
    PartialBatch {
        agent_id: agent.to_owned(),
        partition: 0,
        seq,
        acked_below,
        watermark,
        created_at,
        entries,
    }
}

/// All outputs due far in the future (ignores throttling), by (region, start).
fn snapshot(state: &mut PartitionState) -> Vec<(String, i64, u64, f64, u32, bool, u64)> {
    let mut rows: Vec<_> = state
        .outputs_in_range(i64::MIN, i64::MAX, None, 0)
        .into_iter()
        .map(|o| {
            (
                o.key.series.dims[0].1.clone().unwrap_or_default(),
                o.key.start,
                o.stats.count,
                o.stats.sum.unwrap_or(0.0),
                o.revision,
                o.is_final,
                o.late_count,
            )
        })
        .collect();
    rows.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
    rows
}

fn count(effects: &[Effect], pred: impl Fn(&Effect) -> bool) -> usize {
    effects.iter().filter(|e| pred(e)).count()
}
