//! Size of the stored sketch state (`Sketch::to_state`, what every window row carries in its
//! `state` column) for the sketches windows really hold, and the bound on the largest one.
//!
//! `cargo test -p rtdash-shared --test sketch_state -- --nocapture` prints the table that
//! BENCHMARKS.md quotes.

use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec, MAX_STATE_LEN};

/// A sketch of `events` events of `spec`: values spread like latencies (1 to 1 000 ms, two
/// decimals), unique keys drawn from `distinct` users.
fn window(spec: SketchSpec, events: u64, distinct: u64) -> Sketch {
    seeded(spec, events, distinct, 0)
}

/// [`window`] with its own random sequence (`seed`), as different windows see different events.
fn seeded(spec: SketchSpec, events: u64, distinct: u64, seed: u64) -> Sketch {
    let mut sketch = Sketch::new(spec);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0xff51_afd7_ed55_8ccd);
    for _ in 0..events {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let value = (x % 100_000) as f64 / 100.0 + 1.0;
        let user = (x >> 20) % distinct.max(1);
        sketch.record(Some(value), Some(unique_hash(&user.to_le_bytes())));
    }
    sketch
}

/// Merges `parts` windows of `events` each, as a tier window is made.
fn tier(spec: SketchSpec, parts: u64, events: u64, distinct: u64) -> Sketch {
    let mut total = Sketch::new(spec);
    for p in 0..parts {
        total.merge(&seeded(spec, events, distinct, p + 1));
    }
    total
}

#[test]
fn state_sizes_of_real_windows() {
    let cases: Vec<(&str, Sketch)> = vec![
        ("count only", window(SketchSpec::COUNT, 1_000, 1)),
        ("values, 5 events", window(SketchSpec::VALUES, 5, 1)),
        ("values, 60 events", window(SketchSpec::VALUES, 60, 1)),
        ("values, 1 000 events", window(SketchSpec::VALUES, 1_000, 1)),
        (
            "values + unique, 5 events",
            window(SketchSpec::ALL, 5, 1_000),
        ),
        (
            "values + unique, 60 events",
            window(SketchSpec::ALL, 60, 1_000),
        ),
        (
            "values + unique, 1 000 events (of 1 000 users)",
            window(SketchSpec::ALL, 1_000, 1_000),
        ),
        (
            "hour of 60/min (values + unique of 100 000 users)",
            tier(SketchSpec::ALL, 60, 60, 100_000),
        ),
        (
            "day of 60/min (values + unique of 100 000 users)",
            tier(SketchSpec::ALL, 1_440, 60, 100_000),
        ),
    ];
    println!("| window | encoded bytes | state (base64) bytes |");
    println!("|---|---|---|");
    for (name, sketch) in &cases {
        let state = sketch.to_state();
        println!("| {name} | {} | {} |", sketch.encode().len(), state.len());
        assert_eq!(&Sketch::from_state(&state).unwrap(), sketch, "{name}");
    }
    let size = |i: usize| cases[i].1.to_state().len();
    assert!(size(0) < 16, "a count-only state is a few bytes");
    assert!(
        size(1) < 160,
        "5 values: their 8 bytes each plus the sum's, min's, max's and digest's headers"
    );
    assert!(!cases[6].1.unique_is_dense(), "1 000 users stay sparse");
    assert!(cases[8].1.unique_is_dense());
}

#[test]
fn the_largest_state_fits_the_reading_limit() {
    // Dense HyperLogLog, a full digest with a nearly full buffer, a many-part exact sum.
    let mut sketch = Sketch::new(SketchSpec::ALL);
    for i in 0..200_000u64 {
        let magnitude = 10f64.powi((i % 570) as i32 - 285);
        let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
        sketch.record(
            Some(sign * magnitude * 1.2345),
            Some(unique_hash(&i.to_le_bytes())),
        );
    }
    // 255 values pending in the buffer (it folds at 256).
    let pending = 255 - (200_000 % 256);
    for i in 0..pending {
        sketch.record(Some(i as f64), None);
    }
    let state = sketch.to_state();
    println!(
        "largest: {} encoded bytes, {} state bytes (limit {MAX_STATE_LEN})",
        sketch.encode().len(),
        state.len()
    );
    assert!(sketch.unique_is_dense());
    assert!(state.len() < MAX_STATE_LEN / 2, "{}", state.len());
    assert_eq!(Sketch::from_state(&state).unwrap(), sketch);
}
