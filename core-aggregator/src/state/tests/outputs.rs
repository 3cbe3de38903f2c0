//! Output throttling, the provisional budget and the store's room.

use super::*;

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
