//! Unit tests of the topic: plans fed from memory, seeding, bounds, tiers and groups.

use super::*;
use crate::fixtures::{self, update};
use crate::query::tiers::Tiers;
use crate::query::{self, Ask, WindowAsk};
use rtdash_shared::messages::WindowUpdate;
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::sketch::Sketch;
use rtdash_shared::stat::Stat;

fn apply(topic: &Topic, updates: Vec<WindowUpdate>) {
    topic.apply(updates.into_iter().map(LiveWindow::from).collect());
}

fn topic(config: LiveConfig) -> Arc<Topic> {
    let hub = Arc::new(HubShared::new(config, 1_000, FanoutMetrics::noop()));
    Arc::new(Topic::new(hub, "t", "m", CancellationToken::new()))
}

/// The `count` of metric `m` (kept by region and plan, by region, and in total) for
/// `filter`.
fn count_plan(filter: &[(&str, &str)]) -> QueryPlan {
    let def = MetricDefinition::from_json(
        br#"{"name":"m","event_type":"e","field":"v","dimensions":["region","plan"],"rollups":[["region"],[]]}"#,
    )
    .unwrap();
    let filter = fixtures::filter(filter);
    let ask = Ask::simple(&filter, Stat::Count, WindowAsk::Base, now_millis());
    query::plan(&def, "t", &Tiers::default(), &ask).unwrap()
}

#[test]
fn unfinished_windows_are_listed_per_dimension_set_and_repaired_by_newer_rows() {
    let topic = topic(LiveConfig::default());
    let now = now_millis();
    let minute = |n: i64| (now / 60_000 - n) * 60_000;
    let plan = count_plan(&[("region", "us")]);
    let handle = topic.register(plan);
    let mut final_one = update(minute(5), &[("region", "eu")], 3, now);
    final_one.is_final = true;
    apply(
        &topic,
        vec![
            update(minute(6), &[("region", "us")], 1, now),
            update(minute(4), &[("region", "us")], 2, now),
            final_one,
            update(minute(4), &[], 9, now),
            update(minute(1), &[("region", "us")], 4, now),
        ],
    );
    // Closed through the end of minute(3): minute(1) is still open, eu's is final.
    let ranges = topic.unfinished_before(minute(3));
    assert_eq!(
        ranges,
        vec![
            UnfinishedRange {
                dim_set: String::new(),
                window_ms: 60_000,
                from: minute(4),
                to: minute(3),
                windows: 1,
            },
            UnfinishedRange {
                dim_set: "region".into(),
                window_ms: 60_000,
                from: minute(6),
                to: minute(3),
                windows: 2,
            },
        ]
    );
    // Stored rows: one final (newer), one still provisional and older than memory's.
    let cursor = topic.cursor();
    let mut stored = WindowRow::from_update(&update(minute(6), &[("region", "us")], 1, now));
    stored.is_final = true;
    let stale = WindowRow::from_update(&update(minute(4), &[("region", "us")], 1, now - 10));
    assert_eq!(topic.merge_rows("region", vec![stored, stale]), 1);
    let (entries, _) = topic.entries_after(cursor).unwrap();
    assert_eq!(entries.len(), 1);
    assert!(Arc::ptr_eq(&entries[0].plan, &handle.reg));
    assert_eq!(entries[0].window.window_start, minute(6));
    assert!(entries[0].window.is_final);
    assert_eq!(entries[0].window.value, Some(1.0));
    let left = topic.unfinished_before(minute(3));
    assert_eq!(left[1].from, minute(4));
    assert_eq!(left[1].windows, 1);
}

#[test]
fn exact_plans_stream_at_once_combined_plans_after_seeding() {
    let topic = topic(LiveConfig::default());
    let now = now_millis() / 60_000 * 60_000;
    let exact = topic.register(count_plan(&[("region", "us")]));
    let combined = topic.register(count_plan(&[("plan", "pro")]));
    let cursor = topic.cursor();
    apply(
        &topic,
        vec![
            update(now, &[("region", "us")], 5, now),
            update(now, &[("plan", "pro"), ("region", "us")], 2, now),
        ],
    );
    let (entries, _) = topic.entries_after(cursor).unwrap();
    assert_eq!(entries.len(), 1, "the combined plan waits for its snapshot");
    assert!(Arc::ptr_eq(&entries[0].plan, &exact.reg));
    assert_eq!(entries[0].window.value, Some(5.0));
    // Seeding with the stored rows of the full set completes memory for the plan.
    let stored = WindowRow::from_update(&update(
        now,
        &[("plan", "pro"), ("region", "eu")],
        3,
        now - 1,
    ));
    topic.seed(&combined.reg, &[stored], now - 3_600_000, 0);
    let values = topic.memory_values(&combined.reg);
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].window.value, Some(5.0));
    let cursor = topic.cursor();
    apply(
        &topic,
        vec![update(
            now,
            &[("plan", "pro"), ("region", "us")],
            4,
            now + 1,
        )],
    );
    let (entries, _) = topic.entries_after(cursor).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].window.value, Some(7.0));
    // An older version never replaces a newer one.
    let cursor = topic.cursor();
    apply(
        &topic,
        vec![update(
            now,
            &[("plan", "pro"), ("region", "us")],
            1,
            now - 10,
        )],
    );
    assert!(topic.entries_after(cursor).unwrap().0.is_empty());
    // Another tenant's or metric's update is ignored.
    let mut foreign = update(now, &[("region", "us")], 99, now + 5);
    foreign.tenant_id = "x".into();
    apply(&topic, vec![foreign]);
    assert!(topic.entries_after(cursor).unwrap().0.is_empty());
}

#[test]
fn ring_eviction_moves_the_floor_and_stops_resumption() {
    let topic = topic(LiveConfig {
        ring_capacity: 4,
        ..LiveConfig::default()
    });
    let now = now_millis() / 60_000 * 60_000;
    let handle = topic.register(count_plan(&[("region", "us")]));
    let start = topic.cursor();
    assert!(topic.can_resume(&handle.reg, start));
    for count in 1..=10 {
        apply(
            &topic,
            vec![update(now, &[("region", "us")], count, now + count as i64)],
        );
    }
    assert!(topic.entries_after(start).is_none(), "fell out of the ring");
    assert!(!topic.can_resume(&handle.reg, start));
    let recent = topic.cursor() - 2;
    let (entries, _) = topic.entries_after(recent).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].window.value, Some(10.0));
    // Memory still has the latest value for a resync.
    assert_eq!(topic.memory_values(&handle.reg)[0].window.value, Some(10.0));
}

#[test]
fn memory_is_bounded() {
    let topic = topic(LiveConfig {
        max_memory_entries: 10,
        ..LiveConfig::default()
    });
    let now = now_millis() / 60_000 * 60_000;
    for minute in 0..5 {
        let updates = (0..5)
            .map(|i| update(now - minute * 60_000, &[("region", &i.to_string())], 1, now))
            .collect();
        apply(&topic, updates);
    }
    let state = topic.state.read().unwrap();
    assert!(state.memory.len() <= 10, "{}", state.memory.len());
    assert!(state.memory.pruned_before(60_000) > now - 5 * 60_000);
    // Too old for the horizon: not kept at all.
    drop(state);
    apply(
        &topic,
        vec![update(now - 3 * 3_600_000, &[("region", "old")], 1, now)],
    );
    assert!(topic
        .state
        .read()
        .unwrap()
        .memory
        .window_starts()
        .iter()
        .all(|start| *start > now - 3_600_000));
}

const HOUR: i64 = 3_600_000;

/// The `amount` metric (1-minute windows; region, plan; rollups region and total).
fn amount_plan(
    filter: &[(&str, &str)],
    stat: Stat,
    window: WindowAsk,
    group_by: &[String],
) -> QueryPlan {
    let filter = fixtures::filter(filter);
    let mut ask = Ask::simple(&filter, stat, window, now_millis());
    ask.group_by = group_by;
    ask.limit = 1;
    query::plan(&fixtures::amount(), "t", &Tiers::default(), &ask).unwrap()
}

/// A live version of `amount` with its state: one event per value (user = value).
fn live(start: i64, window_ms: i64, dims: &[(&str, &str)], values: &[f64]) -> LiveWindow {
    let sketch = fixtures::sketch_of(values);
    let mut update: LiveWindow = update(start, dims, 0, now_millis()).into();
    update.tenant_id = "t".into();
    update.metric = "m".into();
    update.window_end = start + window_ms;
    update.stats = sketch.stats();
    update.state = Some(sketch.to_state());
    update
}

fn merged(values: &[&[f64]]) -> Sketch {
    fixtures::sketch_of(&values.concat())
}

fn values_after(topic: &Topic, cursor: u64) -> Vec<(Option<usize>, i64, Option<f64>)> {
    topic
        .entries_after(cursor)
        .unwrap()
        .0
        .iter()
        .map(|e| {
            (
                e.series.as_ref().map(|t| t.index),
                e.window.window_start,
                e.window.value,
            )
        })
        .collect()
}

#[test]
fn coarse_widgets_follow_their_tiers_live_versions() {
    let topic = topic(LiveConfig::default());
    let hour = now_millis() / HOUR * HOUR;
    // p99 per hour of region us: one 1h tier row per hour, no seeding needed.
    let hourly = topic.register(amount_plan(
        &[("region", "us")],
        Stat::P99,
        WindowAsk::Fixed(HOUR),
        &[],
    ));
    assert_eq!(hourly.reg.plan.source_window_ms, HOUR);
    let cursor = topic.cursor();
    topic.apply(vec![
        live(hour, 60_000, &[("region", "us")], &[1.0]),
        live(hour, HOUR, &[("region", "us")], &[1.0, 2.0, 500.0]),
    ]);
    let got = values_after(&topic, cursor);
    assert_eq!(
        got.len(),
        1,
        "the base window does not feed the hourly widget"
    );
    assert_eq!(got[0].2, merged(&[&[1.0, 2.0, 500.0]]).stats().p99);

    // Unique per 6 hours: merges the 1h tier windows of the day, after seeding.
    let six = topic.register(amount_plan(
        &[],
        Stat::Unique,
        WindowAsk::Fixed(6 * HOUR),
        &[],
    ));
    assert_eq!(six.reg.plan.source_window_ms, HOUR);
    let bucket = six.reg.plan.bucket_of(hour);
    let stored: Vec<WindowRow> = (bucket..hour)
        .step_by(HOUR as usize)
        .map(|start| {
            let update = live(start, HOUR, &[], &[start as f64, 1.0]);
            MemEntry::from_live(update, |_, _| true).row
        })
        .collect();
    let epoch = topic.epoch();
    topic.seed(&six.reg, stored.iter(), bucket, epoch);
    let cursor = topic.cursor();
    topic.apply(vec![live(hour, HOUR, &[], &[7.0, 1.0])]);
    let got = values_after(&topic, cursor);
    let hours_before = stored.len() as f64;
    assert_eq!(got, vec![(None, bucket, Some(hours_before + 2.0))]);
}

#[test]
fn percentiles_merge_across_series_from_live_states() {
    let topic = topic(LiveConfig::default());
    let minute = now_millis() / 60_000 * 60_000;
    let pro = topic.register(amount_plan(
        &[("plan", "pro")],
        Stat::P50,
        WindowAsk::Base,
        &[],
    ));
    assert!(pro.reg.plan.needs_state());
    let epoch = topic.epoch();
    topic.seed(&pro.reg, std::iter::empty(), minute - HOUR, epoch);
    let cursor = topic.cursor();
    topic.apply(vec![
        live(
            minute,
            60_000,
            &[("plan", "pro"), ("region", "eu")],
            &[1.0, 2.0],
        ),
        live(
            minute,
            60_000,
            &[("plan", "pro"), ("region", "us")],
            &[3.0, 4.0, 5.0],
        ),
        live(
            minute,
            60_000,
            &[("plan", "free"), ("region", "us")],
            &[100.0],
        ),
    ]);
    let got = values_after(&topic, cursor);
    let want = merged(&[&[1.0, 2.0], &[3.0, 4.0, 5.0]]).stats().p50;
    assert_eq!(got.last().map(|v| v.2), Some(want));
    assert!(topic.state.read().unwrap().memory.state_bytes() > 0);
}

#[test]
fn grouped_widgets_update_their_series_and_other() {
    let topic = topic(LiveConfig::default());
    let minute = now_millis() / 60_000 * 60_000;
    let region = ["region".to_owned()];
    let handle = topic.register(amount_plan(&[], Stat::Count, WindowAsk::Base, &region));
    let epoch = topic.epoch();
    topic.seed(&handle.reg, std::iter::empty(), minute - HOUR, epoch);
    let cursor = topic.cursor();
    topic.apply(vec![live(minute, 60_000, &[("region", "us")], &[1.0])]);
    assert!(
        values_after(&topic, cursor).is_empty(),
        "no values before a snapshot ranked the series"
    );
    let groups = handle.reg.groups_or(|| vec![vec![Some("us".to_owned())]]);
    assert_eq!(groups.tags.len(), 2);
    let cursor = topic.cursor();
    topic.apply(vec![
        live(minute, 60_000, &[("region", "us")], &[1.0, 2.0]),
        live(minute, 60_000, &[("region", "eu")], &[1.0]),
        live(minute, 60_000, &[("region", "ap")], &[1.0, 2.0, 3.0]),
    ]);
    let mut got = values_after(&topic, cursor);
    got.sort_by_key(|v| v.0);
    assert_eq!(
        got,
        vec![(Some(0), minute, Some(2.0)), (Some(1), minute, Some(4.0))]
    );
    let memory: Vec<(Option<usize>, Option<f64>)> = topic
        .memory_values(&handle.reg)
        .iter()
        .map(|v| (v.series.as_ref().map(|t| t.index), v.window.value))
        .collect();
    assert_eq!(memory, vec![(Some(0), Some(2.0)), (Some(1), Some(4.0))]);
}

#[test]
fn states_are_bounded_in_bytes_and_dropping_them_costs_completeness() {
    let topic = topic(LiveConfig {
        max_state_bytes: 20_000,
        ..LiveConfig::default()
    });
    let minute = now_millis() / 60_000 * 60_000;
    let pro = topic.register(amount_plan(
        &[("plan", "pro")],
        Stat::P99,
        WindowAsk::Base,
        &[],
    ));
    let epoch = topic.epoch();
    topic.seed(&pro.reg, std::iter::empty(), minute - HOUR, epoch);
    let values: Vec<f64> = (0..300).map(f64::from).collect();
    for n in (0..10).rev() {
        topic.apply(vec![live(
            minute - n * 60_000,
            60_000,
            &[("plan", "pro"), ("region", "eu")],
            &values,
        )]);
    }
    let state = topic.state.read().unwrap();
    assert!(
        state.memory.state_bytes() <= 20_000,
        "{}",
        state.memory.state_bytes()
    );
    let dropped = state.memory.pruned_before(60_000);
    assert!(dropped > minute - 9 * 60_000);
    assert!(pro.reg.seeded_from.load(Ordering::SeqCst) >= dropped);
}
