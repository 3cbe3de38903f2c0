//! Checkpoint captures, restores, eviction and replays.

use super::*;

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
