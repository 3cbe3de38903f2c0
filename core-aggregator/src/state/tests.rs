//! Unit tests of the partition state machine.

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
        live_throttle_ms: 250,
        provisional_rows_per_s: 0,
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

#[test]
fn merges_agents_and_closes_on_the_minimum_watermark() {
    let mut state = PartitionState::new(0, settings());
    let fx = state.apply(
        batch("a", 0, 0, 500, 500, vec![entry("eu", 0, &[1.0, 2.0, 3.0])]),
        1,
    );
    assert!(fx.is_empty());
    state.apply(
        batch("b", 0, 0, 800, 800, vec![entry("eu", 0, &[10.0, 20.0])]),
        2,
    );
    assert_eq!(state.watermark(), Some(500));
    // a moves on; b still holds the watermark back.
    let fx = state.apply(
        batch("a", 1, 1, 3_500, 3_500, vec![entry("eu", 1_000, &[5.0])]),
        3,
    );
    assert_eq!(count(&fx, |e| matches!(e, Effect::Closed(_))), 0);
    assert_eq!(state.watermark(), Some(800));
    let fx = state.apply(batch("b", 1, 1, 3_200, 3_600, vec![]), 4);
    assert_eq!(state.watermark(), Some(3_200));
    assert_eq!(count(&fx, |e| matches!(e, Effect::Closed(_))), 1);
    assert_eq!(
        snapshot(&mut state),
        vec![
            ("eu".to_owned(), 0, 5, 36.0, 0, true, 0),
            ("eu".to_owned(), 1_000, 1, 5.0, 0, false, 0),
        ]
    );
    assert_eq!(state.stream_seq(), 4);
    let counters = state.counters();
    assert_eq!(counters.merged_entries, 3);
    assert_eq!(counters.closed, 1);
}

#[test]
fn duplicates_are_skipped_even_out_of_order() {
    let mut state = PartitionState::new(0, settings());
    // seq 1 lands before seq 0 (pipelined publishes), then both are retried.
    state.apply(batch("a", 1, 0, 0, 10, vec![entry("eu", 0, &[1.0])]), 1);
    state.apply(batch("a", 0, 0, 0, 10, vec![entry("eu", 0, &[2.0])]), 2);
    let fx = state.apply(batch("a", 1, 0, 0, 10, vec![entry("eu", 0, &[1.0])]), 3);
    assert!(matches!(fx.as_slice(), [Effect::Duplicate { seq: 1, .. }]));
    let fx = state.apply(batch("a", 0, 0, 0, 10, vec![entry("eu", 0, &[2.0])]), 4);
    assert!(matches!(fx.as_slice(), [Effect::Duplicate { seq: 0, .. }]));
    // seq 3 says everything below 3 was acked: seq 2 comes later (out of order) and counts...
    state.apply(batch("a", 3, 2, 0, 10, vec![entry("eu", 0, &[4.0])]), 5);
    state.apply(batch("a", 2, 2, 0, 10, vec![entry("eu", 0, &[8.0])]), 6);
    // ...but a copy of seq 1 published again much later does not.
    let fx = state.apply(batch("a", 1, 0, 0, 10, vec![entry("eu", 0, &[1.0])]), 7);
    assert_eq!(count(&fx, |e| matches!(e, Effect::Duplicate { .. })), 1);
    // Another agent's seq numbers are independent.
    state.apply(batch("b", 1, 0, 0, 10, vec![entry("eu", 0, &[16.0])]), 8);
    assert_eq!(
        snapshot(&mut state),
        vec![("eu".to_owned(), 0, 5, 31.0, 0, false, 0)]
    );
    assert_eq!(state.counters().duplicates, 3);
}

#[test]
fn late_data_within_the_horizon_corrects_the_window() {
    let mut state = PartitionState::new(0, settings());
    state.apply(batch("a", 0, 0, 500, 500, vec![entry("eu", 0, &[1.0])]), 1);
    let fx = state.apply(batch("a", 1, 1, 4_000, 4_000, vec![]), 2);
    assert_eq!(count(&fx, |e| matches!(e, Effect::Closed(_))), 1);
    let fx = state.apply(
        batch("a", 2, 2, 4_500, 4_500, vec![entry("eu", 0, &[2.0, 3.0])]),
        3,
    );
    assert!(matches!(
        fx.as_slice(),
        [Effect::Corrected { revision: 1, .. }]
    ));
    // A window first seen after its close is created closed, as a correction.
    let fx = state.apply(
        batch("a", 3, 3, 4_600, 4_600, vec![entry("us", 1_000, &[7.0])]),
        4,
    );
    assert!(matches!(
        fx.as_slice(),
        [Effect::Corrected { revision: 1, .. }]
    ));
    state.apply(
        batch("a", 4, 4, 4_700, 4_700, vec![entry("eu", 0, &[4.0])]),
        5,
    );
    assert_eq!(
        snapshot(&mut state),
        vec![
            ("eu".to_owned(), 0, 4, 10.0, 2, true, 3),
            ("us".to_owned(), 1_000, 1, 7.0, 1, true, 1),
        ]
    );
    assert_eq!(state.counters().corrections, 3);
}

#[test]
fn data_beyond_the_horizon_is_routed_late_and_the_window_is_unchanged() {
    let mut state = PartitionState::new(0, settings());
    state.apply(batch("a", 0, 0, 500, 500, vec![entry("eu", 0, &[1.0])]), 1);
    state.apply(batch("a", 1, 1, 11_000, 11_000, vec![]), 2);
    let before = snapshot(&mut state);
    let fx = state.apply(
        batch(
            "a",
            2,
            2,
            11_500,
            11_500,
            vec![entry("eu", 0, &[100.0]), entry("eu", 10_000, &[1.0])],
        ),
        3,
    );
    let late: Vec<&Effect> = fx.iter().filter(|e| matches!(e, Effect::Late(_))).collect();
    assert_eq!(late.len(), 1);
    if let Effect::Late(record) = late[0] {
        assert_eq!(record.entry.window_start, 0);
        assert_eq!(record.watermark, 11_000);
        assert_eq!(record.agent_id, "a");
        assert_eq!(record.seq, 2);
    }
    let after = snapshot(&mut state);
    assert_eq!(after[0], before[0]);
    assert_eq!(after.len(), 2);
    assert_eq!(state.counters().late, 1);
}

#[test]
fn idle_agents_stop_holding_the_watermark() {
    let mut state = PartitionState::new(0, settings());
    state.apply(batch("a", 0, 0, 100, 100, vec![entry("eu", 0, &[1.0])]), 1);
    state.apply(batch("b", 0, 0, 100, 100, vec![]), 2);
    // b goes silent; a's clock runs on past the idle timeout.
    state.apply(batch("a", 1, 1, 3_000, 3_000, vec![]), 3);
    assert_eq!(state.watermark(), Some(100));
    let fx = state.apply(batch("a", 2, 2, 6_000, 6_000, vec![]), 4);
    assert_eq!(state.watermark(), Some(6_000));
    assert_eq!(count(&fx, |e| matches!(e, Effect::Closed(_))), 1);
}

#[test]
fn a_silent_partition_still_closes_windows_on_the_wall_clock() {
    let mut state = PartitionState::new(0, settings());
    state.apply(
        batch("a", 0, 0, 500, 1_000, vec![entry("eu", 0, &[1.0])]),
        1,
    );
    state.apply(batch("b", 0, 0, 3_500, 1_000, vec![]), 2);
    assert_eq!(state.watermark(), Some(500));
    // Short silences change nothing (keeps busy partitions deterministic).
    assert!(state.tick(500).is_empty());
    assert_eq!(state.watermark(), Some(500));
    // Past the idle timeout both agents are idle: the newest promise (b's 3 500) holds.
    let fx = state.tick(IDLE + 1);
    assert_eq!(state.watermark(), Some(3_500));
    assert_eq!(count(&fx, |e| matches!(e, Effect::Closed(_))), 1);
}

#[test]
fn outputs_are_throttled_per_window_but_closes_go_at_once() {
    let mut state = PartitionState::new(0, settings());
    state.apply(batch("a", 0, 0, 0, 0, vec![entry("eu", 0, &[1.0])]), 1);
    let out = state.poll_outputs(10_000);
    assert_eq!(out.len(), 1);
    assert!(out[0].store && out[0].live && !out[0].is_final);
    state.apply(batch("a", 1, 1, 0, 0, vec![entry("eu", 0, &[2.0])]), 2);
    assert!(state.poll_outputs(10_100).is_empty());
    let out = state.poll_outputs(10_250);
    assert_eq!(out.len(), 1);
    assert!(out[0].live && !out[0].store);
    assert_eq!(out[0].stats.count, 2);
    assert!(state.poll_outputs(10_900).is_empty());
    let out = state.poll_outputs(11_000);
    assert!(out.len() == 1 && out[0].store && !out[0].live);
    // Nothing changed: nothing more.
    assert!(state.poll_outputs(20_000).is_empty());
    // A change, then the close: the final version goes out at once, to both.
    state.apply(batch("a", 2, 2, 0, 0, vec![entry("eu", 0, &[3.0])]), 3);
    state.apply(batch("a", 3, 3, 3_000, 3_000, vec![]), 4);
    let out = state.poll_outputs(20_001);
    assert_eq!(out.len(), 1);
    assert!(out[0].store && out[0].live && out[0].is_final);
    assert_eq!(out[0].stats.count, 3);
    // The throttled entries queued earlier find nothing new.
    assert!(state.poll_outputs(30_000).is_empty());
}

#[test]
fn many_open_windows_stretch_the_provisional_interval_but_not_closes() {
    // 2 store outputs per second for 8 open windows: each is stored every 4 s.
    let mut state = PartitionState::new(
        0,
        Settings {
            provisional_rows_per_s: 2,
            ..settings()
        },
    );
    let regions = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let entries = |v: f64| regions.iter().map(|r| entry(r, 0, &[v])).collect();
    state.apply(batch("a", 0, 0, 0, 0, entries(1.0)), 1);
    assert_eq!(state.provisional_interval_ms(), 4_000);
    let out = state.poll_outputs(10_000);
    assert!(out.len() == 8 && out.iter().all(|o| o.store && o.live));
    state.apply(batch("a", 1, 1, 0, 0, entries(2.0)), 2);
    // Live at the live throttle; the store waits for the stretched interval.
    let out = state.poll_outputs(11_000);
    assert!(out.len() == 8 && out.iter().all(|o| o.live && !o.store));
    assert!(state.poll_outputs(13_999).is_empty());
    let out = state.poll_outputs(14_000);
    assert!(out.len() == 8 && out.iter().all(|o| o.store && !o.live));
    // The close goes out at once to both.
    state.apply(batch("a", 2, 2, 0, 0, entries(3.0)), 3);
    state.apply(batch("a", 3, 3, 3_000, 3_000, vec![]), 4);
    assert_eq!(state.open_count(), 0);
    assert_eq!(state.provisional_interval_ms(), 1_000);
    let out = state.poll_outputs(14_001);
    assert!(out.len() == 8 && out.iter().all(|o| o.store && o.live && o.is_final));
}

#[test]
fn a_backlogged_store_defers_provisional_rows_but_not_live_updates_or_closes() {
    let full = StoreRoom {
        rows: 100,
        provisional: 0,
    };
    let mut state = PartitionState::new(0, settings());
    let both = vec![entry("eu", 0, &[1.0]), entry("us", 0, &[1.0])];
    state.apply(batch("a", 0, 0, 0, 0, both), 1);
    let out = state.poll_outputs_within(10_000, full);
    assert!(out.len() == 2 && out.iter().all(|o| o.live && !o.store));
    assert_eq!(state.counters().provisional_deferred, 2);
    // Put off by one interval, and again while the store stays backlogged.
    assert!(state.poll_outputs_within(10_999, full).is_empty());
    assert!(state.poll_outputs_within(11_000, full).is_empty());
    assert_eq!(state.counters().provisional_deferred, 4);
    // The store catches up: the deferred rows go out at their next turn.
    let out = state.poll_outputs_within(12_000, StoreRoom::UNLIMITED);
    assert!(out.len() == 2 && out.iter().all(|o| o.store && !o.live && !o.is_final));
    // Closes go to the store even while provisional rows wait.
    state.apply(batch("a", 1, 1, 0, 0, vec![entry("eu", 0, &[2.0])]), 2);
    state.apply(batch("a", 2, 2, 3_000, 3_000, vec![]), 3);
    let out = state.poll_outputs_within(12_001, full);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| o.store && o.live && o.is_final));
    let eu = out
        .iter()
        .find(|o| o.key.series.dims[0].1.as_deref() == Some("eu"))
        .expect("eu closed");
    assert_eq!(eu.stats.count, 2);
}

#[test]
fn store_outputs_beyond_the_room_wait_in_the_state_and_none_is_lost() {
    let mut state = PartitionState::new(0, settings());
    let regions = ["a", "b", "c", "d", "e"];
    let entries = regions.iter().map(|r| entry(r, 0, &[1.0])).collect();
    state.apply(batch("a", 0, 0, 0, 0, entries), 1);
    state.apply(batch("a", 1, 1, 3_000, 3_000, vec![]), 2);
    let room = StoreRoom {
        rows: 2,
        provisional: 2,
    };
    // Every live update goes out at once; the store gets 2 finals per poll.
    let first = state.poll_outputs_within(10_000, room);
    assert_eq!(first.len(), 5);
    assert!(first.iter().all(|o| o.live && o.is_final));
    assert_eq!(first.iter().filter(|o| o.store).count(), 2);
    assert_eq!(state.store_backlog(), 3);
    let mut stored: Vec<String> = first
        .iter()
        .filter(|o| o.store)
        .map(|o| o.key.series.dims[0].1.clone().unwrap_or_default())
        .collect();
    for now in [10_001, 10_002] {
        let out = state.poll_outputs_within(now, room);
        assert!(out.iter().all(|o| o.store && !o.live && o.is_final));
        stored.extend(
            out.iter()
                .map(|o| o.key.series.dims[0].1.clone().unwrap_or_default()),
        );
    }
    assert_eq!(state.store_backlog(), 0);
    stored.sort();
    assert_eq!(stored, regions);
    assert!(state.poll_outputs_within(20_000, room).is_empty());
}

#[test]
fn invalid_entries_are_reported() {
    let mut state = PartitionState::new(0, settings());
    let mut bad = entry("eu", 500, &[1.0]);
    let mut bad_tenant = entry("eu", 0, &[1.0]);
    bad_tenant.series.tenant = "a.b".to_owned();
    let fx = state.apply(batch("a", 0, 0, 0, 0, vec![bad.clone(), bad_tenant]), 1);
    assert_eq!(count(&fx, |e| matches!(e, Effect::Invalid { .. })), 2);
    bad.window_ms = 0;
    bad.window_start = 0;
    let fx = state.apply(batch("a", 1, 0, 0, 0, vec![bad]), 2);
    assert_eq!(count(&fx, |e| matches!(e, Effect::Invalid { .. })), 1);
    assert_eq!(state.window_count(), 0);
}

fn busy_state() -> PartitionState {
    let mut state = PartitionState::new(3, settings());
    for seq in 0..20u64 {
        let t = seq as i64 * 500;
        state.apply(
            batch(
                "a",
                seq,
                seq.saturating_sub(2),
                t,
                t,
                vec![
                    entry("eu", t / 1_000 * 1_000, &[seq as f64]),
                    entry("us", t / 1_000 * 1_000, &[1.0, 2.0]),
                ],
            ),
            100 + seq,
        );
    }
    state
}

#[test]
fn checkpoints_restore_the_same_state() {
    let mut state = busy_state();
    let capture = state.capture(true);
    let (full, windows) = capture.data.clone().expect("windows");
    assert_eq!(windows, state.window_count());
    let meta = capture.meta.clone();
    state.capture_saved(capture);
    assert!(!state.has_unsaved_changes());

    // More changes, saved as a delta.
    state.apply(
        batch(
            "a",
            20,
            18,
            10_000,
            10_000,
            vec![entry("eu", 9_000, &[1.5])],
        ),
        200,
    );
    state.apply(batch("b", 0, 0, 9_900, 10_000, vec![]), 201);
    assert!(state.has_unsaved_changes());
    let capture = state.capture(false);
    let (delta, changed) = capture.data.clone().expect("changes");
    assert!(changed >= 1 && changed < state.window_count());
    let meta2 = capture.meta.clone();
    state.capture_saved(capture);

    let mut restored = PartitionState::restore(
        3,
        settings(),
        meta2.clone(),
        [
            Segment::decode(&full).unwrap(),
            Segment::decode(&delta).unwrap(),
        ],
    );
    assert_eq!(snapshot(&mut restored), snapshot(&mut state));
    assert_eq!(restored.meta(), meta2);
    assert_eq!(restored.watermark(), state.watermark());
    // Restored windows are all due for output at once.
    assert_eq!(restored.poll_outputs(0).len(), restored.window_count());
    // Dedup survives: a redelivered batch is skipped by both.
    let dup = batch("a", 19, 17, 9_500, 9_500, vec![entry("eu", 9_000, &[1.0])]);
    assert!(matches!(
        restored.apply(dup.clone(), 300).as_slice(),
        [Effect::Duplicate { .. }]
    ));
    assert!(matches!(
        state.apply(dup, 300).as_slice(),
        [Effect::Duplicate { .. }]
    ));
    // The first checkpoint alone restores the first state.
    let first = PartitionState::restore(
        3,
        settings(),
        meta.clone(),
        [Segment::decode(&full).unwrap()],
    );
    assert_eq!(first.meta(), meta);
}

#[test]
fn eviction_waits_for_the_store_and_the_checkpoint_and_leaves_a_tombstone() {
    let mut state = PartitionState::new(0, settings());
    state.apply(batch("a", 0, 0, 0, 0, vec![entry("eu", 0, &[1.0])]), 1);
    state.apply(
        batch("a", 1, 1, 1_000, 1_000, vec![entry("eu", 1_000, &[1.0])]),
        2,
    );
    let capture = state.capture(true);
    let full = capture.data.clone().unwrap().0;
    let meta = capture.meta.clone();
    state.capture_saved(capture);
    // Past the horizon of window 0 (end 1 000 + 10 000), not of window 1 000.
    state.apply(batch("a", 2, 2, 11_500, 11_500, vec![]), 3);
    state.tick(0);
    assert_eq!(
        state.window_count(),
        2,
        "final version neither stored nor checkpointed"
    );
    let out = state.poll_outputs(0);
    for o in &out {
        state.confirm_stored(o.id, o.version);
    }
    state.tick(0);
    assert_eq!(
        state.window_count(),
        2,
        "final version not checkpointed yet"
    );
    let capture = state.capture(false);
    let delta = capture.data.clone().unwrap().0;
    let meta2 = capture.meta.clone();
    assert_eq!(state.window_count(), 2, "capture not saved yet");
    state.capture_saved(capture);
    assert_eq!(state.window_count(), 1);
    assert_eq!(state.counters().evicted, 1);
    // The next delta carries the tombstone.
    let capture = state.capture(false);
    let (tomb, windows) = capture.data.clone().expect("tombstone");
    assert_eq!(windows, 0);
    let meta3 = capture.meta.clone();
    state.capture_saved(capture);
    let restored = PartitionState::restore(
        0,
        settings(),
        meta3,
        [
            Segment::decode(&full).unwrap(),
            Segment::decode(&delta).unwrap(),
            Segment::decode(&tomb).unwrap(),
        ],
    );
    assert_eq!(restored.window_count(), 1);
    // Without the tombstone the window would come back, final.
    let mut without = PartitionState::restore(
        0,
        settings(),
        meta2,
        [
            Segment::decode(&full).unwrap(),
            Segment::decode(&delta).unwrap(),
        ],
    );
    let rows = snapshot(&mut without);
    assert_eq!(rows.len(), 2);
    assert!(rows[0].5, "window 0 is final in the second checkpoint");
    let _ = meta;
}

#[test]
fn replaying_the_same_messages_gives_the_same_rows() {
    let messages: Vec<(PartialBatch, u64)> = (0..50u64)
        .map(|i| {
            let t = i as i64 * 300;
            let agent = if i % 2 == 0 { "a" } else { "b" };
            (
                batch(
                    agent,
                    i / 2,
                    (i / 2).saturating_sub(1),
                    t - 200,
                    t,
                    vec![entry(
                        if i % 3 == 0 { "eu" } else { "us" },
                        (t - if i % 7 == 0 { 4_000 } else { 500 }).max(0) / 1_000 * 1_000,
                        &[i as f64],
                    )],
                ),
                i + 1,
            )
        })
        .collect();
    let run = |messages: &[(PartialBatch, u64)]| {
        let mut state = PartitionState::new(0, settings());
        for (batch, seq) in messages {
            state.apply(batch.clone(), *seq);
            // Redeliveries change nothing.
            state.apply(batch.clone(), *seq);
        }
        snapshot(&mut state)
    };
    let first = run(&messages);
    assert_eq!(first, run(&messages));
    assert!(first.iter().any(|r| r.4 > 0), "some corrections: {first:?}");
}

#[test]
fn failed_or_overtaken_captures_are_captured_again() {
    let mut state = busy_state();
    let first = state.capture(true);
    state.capture_saved(first);
    // A change, captured; more changes while that capture is being written; then it fails.
    state.apply(
        batch("a", 30, 30, 9_000, 10_000, vec![entry("eu", 9_000, &[1.0])]),
        400,
    );
    let in_flight = state.capture(false);
    assert_eq!(in_flight.data.as_ref().map(|d| d.1), Some(1));
    state.apply(
        batch("a", 31, 31, 9_000, 10_000, vec![entry("us", 9_000, &[1.0])]),
        401,
    );
    state.capture_failed(in_flight);
    assert!(state.has_unsaved_changes());
    // The next capture holds both windows, each once.
    let next = state.capture(false);
    assert_eq!(next.data.as_ref().map(|d| d.1), Some(2));
    assert_eq!(next.meta.stream_seq, 401);
    state.capture_saved(next);
    assert!(!state.has_unsaved_changes());
    assert!(state.capture(false).data.is_none());
}
