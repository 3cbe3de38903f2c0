//! Merging, duplicates, lateness and corrections, watermarks and invalid entries.

use super::*;

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
