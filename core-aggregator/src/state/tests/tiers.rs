//! Rollup tier windows: folding, closing, corrections, checkpoints, the series bound, output
//! priority and eviction. Base windows are 1 s (see `entry`), the tier 10 s.

use super::*;
use crate::state::WindowOutput;

const TIER: i64 = 10_000;

fn tiered() -> Settings {
    Settings {
        tiers: TierSet::new([TIER]),
        ..settings()
    }
}

/// (region, start, count, sum, revision, final, late_count) of the tier outputs in `out`.
fn tier_rows(out: &[WindowOutput]) -> Vec<(String, i64, u64, f64, u32, bool, u64)> {
    let mut rows: Vec<_> = out
        .iter()
        .filter(|o| o.tier.is_some())
        .map(|o| {
            assert_eq!(o.tier, Some(0));
            assert_eq!(o.key.size_ms, TIER);
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

/// Every tier window now, as replay writes them.
fn all_tiers(state: &mut PartitionState) -> Vec<(String, i64, u64, f64, u32, bool, u64)> {
    state.link_open_windows();
    tier_rows(&state.tier_outputs_in_range(i64::MIN / 4, i64::MAX / 4, None, 0))
}

#[test]
fn a_tier_window_is_its_closed_base_windows_plus_the_open_ones() {
    let mut state = PartitionState::new(0, tiered());
    state.apply(
        batch(
            "a",
            0,
            0,
            0,
            0,
            vec![entry("eu", 0, &[1.0, 2.0]), entry("eu", 1_000, &[3.0])],
        ),
        1,
    );
    assert_eq!(state.tier_window_count(), 0, "apply does no tier work");
    let out = state.poll_outputs(100_000);
    assert_eq!(out.iter().filter(|o| o.tier.is_none()).count(), 2);
    assert_eq!(tier_rows(&out), [("eu".into(), 0, 3, 6.0, 0, false, 0)]);
    let tier = out.iter().find(|o| o.tier.is_some()).unwrap();
    assert!(tier.store && tier.live);
    // Its state is the merged sketch: it decodes to the same numbers.
    let merged = Sketch::from_state(tier.state.as_deref().unwrap()).unwrap();
    assert_eq!(merged.stats(), tier.stats);
    // Window 0 closes (watermark 3 000 = end 1 000 + lateness); 1 000 stays open.
    state.apply(
        batch("a", 1, 1, 3_000, 3_000, vec![entry("eu", 2_000, &[4.0])]),
        2,
    );
    assert_eq!(
        all_tiers(&mut state),
        [("eu".into(), 0, 4, 10.0, 0, false, 0)]
    );
    // Every base window closes, then the tier window (end 10 000 + lateness).
    state.apply(
        batch("a", 2, 2, 9_000, 9_000, vec![entry("eu", 9_000, &[5.0])]),
        3,
    );
    assert_eq!(
        all_tiers(&mut state),
        [("eu".into(), 0, 5, 15.0, 0, false, 0)]
    );
    state.apply(batch("a", 3, 3, 12_000, 12_000, vec![]), 4);
    assert_eq!(state.counters().tier_closed, 1);
    let out = state.poll_outputs(200_000);
    assert_eq!(tier_rows(&out), [("eu".into(), 0, 5, 15.0, 0, true, 0)]);
    let tier = out.iter().find(|o| o.tier.is_some()).unwrap();
    assert!(tier.store && tier.live, "the close goes out at once");
}

#[test]
fn corrections_revise_a_closed_tier_window_like_a_base_window() {
    let mut state = PartitionState::new(0, tiered());
    state.apply(batch("a", 0, 0, 0, 0, vec![entry("eu", 5_000, &[1.0])]), 1);
    state.apply(batch("a", 1, 1, 12_000, 12_000, vec![]), 2);
    assert_eq!(
        all_tiers(&mut state),
        [("eu".into(), 0, 1, 1.0, 0, true, 0)]
    );
    let _ = state.poll_outputs(100_000);
    // Within the horizon (window 5 000 ends 6 000; horizon 10 000): a correction of the base
    // window and of its (closed) tier window.
    state.apply(
        batch(
            "a",
            2,
            2,
            12_000,
            12_000,
            vec![entry("eu", 5_000, &[2.0, 3.0])],
        ),
        3,
    );
    let out = state.poll_outputs(100_001);
    let base = out
        .iter()
        .find(|o| o.tier.is_none())
        .expect("base corrected");
    assert_eq!(
        (base.revision, base.late_count, base.stats.count),
        (1, 2, 3)
    );
    assert_eq!(tier_rows(&out), [("eu".into(), 0, 3, 6.0, 1, true, 2)]);
    assert_eq!(state.counters().tier_corrections, 1);
    // A series first seen after both closed: its base and tier windows are created closed,
    // revision 1.
    state.apply(
        batch("a", 3, 3, 12_000, 12_000, vec![entry("us", 7_000, &[9.0])]),
        4,
    );
    let out = state.poll_outputs(100_002);
    assert_eq!(tier_rows(&out), [("us".into(), 0, 1, 9.0, 1, true, 1)]);
    // A correction of an open tier window's closed base window is no revision.
    state.apply(
        batch("a", 4, 4, 13_000, 13_000, vec![entry("eu", 10_000, &[1.0])]),
        5,
    );
    state.apply(batch("a", 5, 5, 14_000, 14_000, vec![]), 6);
    state.apply(
        batch("a", 6, 6, 14_000, 14_000, vec![entry("eu", 10_000, &[1.0])]),
        7,
    );
    let rows = all_tiers(&mut state);
    assert_eq!(rows[1], ("eu".into(), 10_000, 2, 2.0, 0, false, 0));
}

#[test]
fn a_restore_in_the_middle_of_a_tier_window_keeps_it_exact() {
    let first_half = |state: &mut PartitionState| {
        for (seq, (watermark, start)) in [(0, 0), (1_000, 1_000), (3_500, 2_000)]
            .into_iter()
            .enumerate()
        {
            state.apply(
                batch(
                    "a",
                    seq as u64,
                    seq as u64,
                    watermark,
                    watermark,
                    vec![
                        entry("eu", start, &[seq as f64 + 1.0]),
                        entry("us", start, &[2.0]),
                    ],
                ),
                seq as u64 + 1,
            );
        }
    };
    let second_half = |state: &mut PartitionState| {
        state.apply(
            batch("a", 3, 3, 4_000, 4_000, vec![entry("eu", 2_000, &[10.0])]),
            4,
        );
        state.apply(batch("a", 4, 4, 12_500, 12_500, vec![]), 5);
    };
    let mut live = PartitionState::new(0, tiered());
    first_half(&mut live);
    let _ = live.poll_outputs(50_000);
    let capture = live.capture(true);
    let (bytes, _) = capture.data.clone().unwrap();
    let meta = capture.meta.clone();
    live.capture_saved(capture);
    let mut restored =
        PartitionState::restore(0, tiered(), meta, [Segment::decode(&bytes).unwrap()]);
    assert_eq!(restored.tier_window_count(), 2);
    assert_eq!(all_tiers(&mut restored), all_tiers(&mut live));
    second_half(&mut live);
    second_half(&mut restored);
    let expected = vec![
        ("eu".to_owned(), 0, 4, 16.0, 0, true, 0),
        ("us".to_owned(), 0, 3, 6.0, 0, true, 0),
    ];
    assert_eq!(all_tiers(&mut live), expected);
    assert_eq!(all_tiers(&mut restored), expected);
}

#[test]
fn a_change_of_an_open_base_window_is_no_tier_checkpoint_a_fold_is() {
    let mut state = PartitionState::new(0, tiered());
    state.apply(batch("a", 0, 0, 0, 0, vec![entry("eu", 0, &[1.0])]), 1);
    let _ = state.poll_outputs(10_000);
    let full = state.capture(true);
    assert_eq!(
        full.data.as_ref().map(|d| d.1),
        Some(2),
        "base and tier window"
    );
    state.capture_saved(full);
    // The open base window changes: its tier window's output changes, its folded state not.
    state.apply(batch("a", 1, 1, 0, 0, vec![entry("eu", 0, &[2.0])]), 2);
    let out = state.poll_outputs(20_000);
    assert_eq!(tier_rows(&out), [("eu".into(), 0, 2, 3.0, 0, false, 0)]);
    let delta = state.capture(false);
    assert_eq!(
        delta.data.as_ref().map(|d| d.1),
        Some(1),
        "the base window only"
    );
    state.capture_saved(delta);
    // The base window closes and is folded in: both are saved.
    state.apply(batch("a", 2, 2, 3_000, 3_000, vec![]), 3);
    let delta = state.capture(false);
    let (bytes, count) = delta.data.clone().unwrap();
    assert_eq!(count, 2);
    let segment = Segment::decode(&bytes).unwrap();
    assert_eq!(segment.tiers.len(), 1);
    assert_eq!(segment.tiers[0].sketch.count(), 2);
    // A failed capture is captured again, with the tier window.
    state.capture_failed(delta);
    assert_eq!(state.capture(false).data.map(|d| d.1), Some(2));
}

#[test]
fn series_beyond_the_bound_fold_into_the_partitions_overflow_series() {
    let mut state = PartitionState::new(
        7,
        Settings {
            max_tier_series: 2,
            ..tiered()
        },
    );
    let entries = ["a", "b", "c", "d"]
        .iter()
        .map(|r| entry(r, 0, &[1.0]))
        .collect();
    state.apply(batch("a", 0, 0, 0, 0, entries), 1);
    let out = state.poll_outputs(10_000);
    let rows = tier_rows(&out);
    assert_eq!(
        rows,
        [
            ("__overflow__.p7".into(), 0, 2, 2.0, 0, false, 0),
            ("a".into(), 0, 1, 1.0, 0, false, 0),
            ("b".into(), 0, 1, 1.0, 0, false, 0),
        ]
    );
    assert_eq!(state.counters().tier_overflowed, 2);
    // Another tier window has room again.
    state.apply(batch("a", 1, 1, 0, 0, vec![entry("d", TIER, &[1.0])]), 2);
    let out = state.poll_outputs(20_000);
    assert_eq!(tier_rows(&out)[0].0, "d");
}

#[test]
fn tier_rows_get_the_room_base_rows_leave_and_live_once_a_second() {
    let mut state = PartitionState::new(0, tiered());
    let both = vec![entry("eu", 0, &[1.0]), entry("us", 0, &[1.0])];
    state.apply(batch("a", 0, 0, 0, 0, both), 1);
    let room = StoreRoom {
        rows: 2,
        provisional: 2,
    };
    let out = state.poll_outputs_within(10_000, room);
    let stored: Vec<_> = out.iter().filter(|o| o.store).collect();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|o| o.tier.is_none()), "base rows first");
    assert_eq!(
        out.iter().filter(|o| o.live).count(),
        4,
        "live is not limited"
    );
    assert_eq!(state.store_backlog(), 2);
    let out = state.poll_outputs_within(10_001, room);
    assert_eq!(
        out.iter().filter(|o| o.store && o.tier.is_some()).count(),
        2
    );
    // A change: the base window is published at the live throttle, its tier window a second
    // after its last output (the store's, at 10 001).
    state.apply(batch("a", 1, 1, 0, 0, vec![entry("eu", 0, &[2.0])]), 2);
    let out = state.poll_outputs(10_250);
    assert!(out.iter().all(|o| o.tier.is_none() && o.live));
    let out = state.poll_outputs(11_000);
    assert!(out.iter().all(|o| o.tier.is_none()), "the base row only");
    let out = state.poll_outputs(11_001);
    assert_eq!(tier_rows(&out), [("eu".into(), 0, 2, 3.0, 0, false, 0)]);
    let tiers: Vec<_> = out.iter().filter(|o| o.tier.is_some()).collect();
    assert_eq!(tiers.len(), 1, "one output");
    assert!(
        tiers[0].store && tiers[0].live,
        "stored and published together"
    );
}

#[test]
fn tier_windows_are_evicted_once_final_stored_and_checkpointed() {
    let mut state = PartitionState::new(0, tiered());
    state.apply(batch("a", 0, 0, 0, 0, vec![entry("eu", 0, &[1.0])]), 1);
    // The tier window (end 10 000) closes at 12 000; past the horizon at 20 000.
    state.apply(batch("a", 1, 1, 20_000, 20_000, vec![]), 2);
    assert_eq!(state.tier_window_count(), 1);
    for o in state.poll_outputs(0) {
        assert!(o.is_final);
        state.confirm_stored(o.id, o.version);
    }
    state.tick(0);
    assert_eq!(state.tier_window_count(), 1, "not checkpointed yet");
    let capture = state.capture(true);
    state.capture_saved(capture);
    assert_eq!((state.window_count(), state.tier_window_count()), (0, 0));
    assert_eq!(state.counters().tier_evicted, 1);
    let capture = state.capture(false);
    let segment = Segment::decode(&capture.data.unwrap().0).unwrap();
    assert_eq!(
        (segment.tombstones.len(), segment.tier_tombstones.len()),
        (1, 1)
    );
}

#[test]
fn a_tier_as_long_as_the_base_window_is_stored_not_published_again() {
    let mut state = PartitionState::new(
        0,
        Settings {
            tiers: TierSet::new([1_000]),
            ..settings()
        },
    );
    state.apply(batch("a", 0, 0, 0, 0, vec![entry("eu", 0, &[1.0])]), 1);
    let out = state.poll_outputs(10_000);
    let tier = out.iter().find(|o| o.tier.is_some()).expect("tier row");
    assert!(tier.store && !tier.live);
    assert_eq!(tier.key.size_ms, 1_000);
    assert_eq!(out.iter().filter(|o| o.tier.is_none()).count(), 1);
}

#[test]
fn checkpoints_of_the_format_before_tiers_still_restore() {
    // Format 1: (windows, tombstones), no tier lists.
    let mut state = PartitionState::new(0, settings());
    state.apply(batch("a", 0, 0, 0, 0, vec![entry("eu", 0, &[1.0])]), 1);
    let capture = state.capture(true);
    let bytes = capture.data.unwrap().0;
    let segment = Segment::decode(&bytes).unwrap();
    let mut v1 = vec![1u8];
    postcard::to_io(&(&segment.windows, &segment.tombstones), &mut v1).unwrap();
    let decoded = Segment::decode(&v1).unwrap();
    assert_eq!(decoded, segment);
    let mut restored = PartitionState::restore(0, tiered(), capture.meta, [decoded]);
    assert_eq!(
        all_tiers(&mut restored),
        [("eu".into(), 0, 1, 1.0, 0, false, 0)]
    );
}
