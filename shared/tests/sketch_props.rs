//! Property tests of sketch merging, plus the semantics and memory footprint of `Sketch`.

use proptest::prelude::*;
use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec, Stats, MAX_ABS_VALUE};

/// One event: an optional value and an optional unique key (drawn from a small range so that
/// keys repeat).
type Event = (Option<f64>, Option<u64>);

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
        4 => (-100_000_000i64..100_000_000).prop_map(|i| i as f64 / 100.0),
        3 => -1e12f64..1e12,
        2 => prop::num::f64::NORMAL.prop_filter("in range", |v| v.abs() <= MAX_ABS_VALUE),
        1 => prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
        // Not recorded as values (the events still count).
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(1e300), Just(-1e289)],
    ]
}

/// Values from continuous distributions (uniform, lognormal) and small integers (ties): the
/// data the percentile accuracy bound is stated for.
fn smooth_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1000.0f64..1000.0,
        (0.0f64..1.0, 0.0f64..1.0).prop_map(|(u1, u2)| {
            let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            (3.0 + 1.5 * z).exp()
        }),
        (0i32..100).prop_map(f64::from),
    ]
}

fn event_with(values: impl Strategy<Value = f64>) -> impl Strategy<Value = Event> {
    (
        prop::option::weighted(0.9, values),
        prop::option::weighted(0.7, 0u64..3_000),
    )
}

/// Events with adversarial values (any finite magnitude, subnormals, zeros, NaN, ±∞).
fn events(max: usize) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(event_with(value()), 0..max)
}

/// Events with smooth values.
fn smooth_events(max: usize) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(event_with(smooth_value()), 0..max)
}

fn spec() -> impl Strategy<Value = SketchSpec> {
    prop_oneof![
        4 => Just(SketchSpec::ALL),
        1 => Just(SketchSpec::VALUES),
        1 => Just(SketchSpec::UNIQUE),
        1 => Just(SketchSpec::COUNT),
    ]
}

fn sketch_of(spec: SketchSpec, events: &[Event]) -> Sketch {
    let mut s = Sketch::new(spec);
    for &(v, u) in events {
        s.record(v, u.map(|k| unique_hash(&k.to_le_bytes())));
    }
    s
}

fn merged(a: &Sketch, b: &Sketch) -> Sketch {
    let mut out = a.clone();
    out.merge(b);
    out
}

/// The values a sketch records from these events, sorted.
fn recorded_values(events: &[Event]) -> Vec<f64> {
    let mut v: Vec<f64> = events
        .iter()
        .filter_map(|e| e.0)
        .filter(|v| v.is_finite() && v.abs() <= MAX_ABS_VALUE)
        .collect();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// Distance from `q` to the exact rank interval of `estimate` in `sorted`.
fn rank_error(sorted: &[f64], estimate: f64, q: f64) -> f64 {
    let n = sorted.len() as f64;
    let below = sorted.partition_point(|&x| x < estimate) as f64 / n;
    let at_or_below = sorted.partition_point(|&x| x <= estimate) as f64 / n;
    if q < below {
        below - q
    } else if q > at_or_below {
        q - at_or_below
    } else {
        0.0
    }
}

/// Percentile estimates within 1 % rank error of the exact data, plus the resolution of a
/// small sample (a t-digest interpolates between neighbouring values).
fn assert_percentiles_close(stats: &Stats, sorted: &[f64]) -> Result<(), TestCaseError> {
    if sorted.is_empty() {
        prop_assert_eq!(stats.p50, None);
        return Ok(());
    }
    let tolerance = 0.01 + 1.0 / sorted.len() as f64;
    for (q, estimate) in [
        (0.5, stats.p50),
        (0.9, stats.p90),
        (0.95, stats.p95),
        (0.99, stats.p99),
    ] {
        let estimate = estimate.ok_or_else(|| TestCaseError::fail("missing percentile"))?;
        let error = rank_error(sorted, estimate, q);
        prop_assert!(
            error <= tolerance,
            "q={} estimate={} rank error={} (n={})",
            q,
            estimate,
            error,
            sorted.len()
        );
    }
    Ok(())
}

/// Whatever the data: percentiles are ordered and within [min, max].
fn assert_percentiles_sane(stats: &Stats) -> Result<(), TestCaseError> {
    let ps = [
        stats.min, stats.p50, stats.p90, stats.p95, stats.p99, stats.max,
    ];
    if stats.min.is_none() {
        prop_assert!(ps.iter().all(Option::is_none));
        return Ok(());
    }
    let values: Vec<f64> = ps.iter().map(|p| p.unwrap_or(f64::NAN)).collect();
    prop_assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "not ordered: {:?}",
        values
    );
    Ok(())
}

/// The statistics that merging keeps exactly: count, then sum/min/max/avg as bits (zeros of
/// either sign alike), then unique.
fn exact_part(s: &Stats) -> (u64, [Option<u64>; 4], Option<u64>) {
    let bits = |x: Option<f64>| x.map(|v| if v == 0.0 { 0 } else { v.to_bits() });
    (
        s.count,
        [bits(s.sum), bits(s.min), bits(s.max), bits(s.avg)],
        s.unique,
    )
}

/// Cases per property: 64 keeps each test within seconds in a debug build; set
/// `PROPTEST_CASES` for a deeper run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn merge_is_commutative(spec in spec(), a in events(600), b in events(600)) {
        let (sa, sb) = (sketch_of(spec, &a), sketch_of(spec, &b));
        let ab = merged(&sa, &sb);
        let ba = merged(&sb, &sa);
        // Exactly, percentiles included: digest centroids are merged by sorting.
        prop_assert_eq!(ab.stats(), ba.stats());
        prop_assert_eq!(&ab, &ba);
    }

    #[test]
    fn merge_is_associative(spec in spec(), a in events(500), b in events(500), c in events(500)) {
        let (sa, sb, sc) = (sketch_of(spec, &a), sketch_of(spec, &b), sketch_of(spec, &c));
        let left = merged(&merged(&sa, &sb), &sc).stats();
        let right = merged(&sa, &merged(&sb, &sc)).stats();
        prop_assert_eq!(exact_part(&left), exact_part(&right));
        assert_percentiles_sane(&left)?;
        assert_percentiles_sane(&right)?;
    }

    #[test]
    fn merge_is_associative_within_percentile_bounds(
        a in smooth_events(1_000), b in smooth_events(1_000), c in smooth_events(1_000),
    ) {
        let spec = SketchSpec::ALL;
        let (sa, sb, sc) = (sketch_of(spec, &a), sketch_of(spec, &b), sketch_of(spec, &c));
        let left = merged(&merged(&sa, &sb), &sc).stats();
        let right = merged(&sa, &merged(&sb, &sc)).stats();
        prop_assert_eq!(exact_part(&left), exact_part(&right));
        let all: Vec<Event> = a.iter().chain(&b).chain(&c).copied().collect();
        let sorted = recorded_values(&all);
        assert_percentiles_close(&left, &sorted)?;
        assert_percentiles_close(&right, &sorted)?;
    }

    #[test]
    fn split_and_merge_equals_whole(
        spec in spec(),
        (all, smooth) in prop_oneof![events(3_000).prop_map(|e| (e, false)), smooth_events(3_000).prop_map(|e| (e, true))],
        k in 1usize..12,
        interleave in any::<bool>(),
    ) {
        let whole = sketch_of(spec, &all);
        let mut parts: Vec<Vec<Event>> = vec![Vec::new(); k];
        for (i, e) in all.iter().enumerate() {
            let slot = if interleave { i % k } else { i * k / all.len().max(1) };
            parts[slot].push(*e);
        }
        let mut total = Sketch::new(spec);
        for p in &parts {
            total.merge(&sketch_of(spec, p));
        }
        let (w, t) = (whole.stats(), total.stats());
        // count/sum/min/max (and avg, unique) exactly.
        prop_assert_eq!(exact_part(&w), exact_part(&t));
        prop_assert_eq!(t.count, all.len() as u64);
        if spec.values {
            let sorted = recorded_values(&all);
            prop_assert_eq!(t.min, sorted.first().copied());
            prop_assert_eq!(t.max, sorted.last().copied());
            prop_assert_eq!(total.value_count(), sorted.len() as u64);
            assert_percentiles_sane(&t)?;
            if smooth {
                assert_percentiles_close(&t, &sorted)?;
                assert_percentiles_close(&w, &sorted)?;
            }
        }
        if spec.unique {
            let distinct: std::collections::HashSet<u64> = all.iter().filter_map(|e| e.1).collect();
            let n = distinct.len() as f64;
            let estimate = total.unique_estimate().unwrap_or(-1.0);
            prop_assert!((estimate - n).abs() <= 0.02 * n + 0.5, "unique {} vs exact {}", estimate, n);
        }
    }

    #[test]
    fn sum_is_the_correctly_rounded_exact_sum(
        // Multiples of 2^-20 below 2^40: their exact sum fits an i128, computed independently.
        scaled in prop::collection::vec(-(1i64 << 60)..(1i64 << 60), 1..500),
        k in 1usize..8,
    ) {
        let scale = (1u64 << 20) as f64;
        let values: Vec<f64> = scaled.iter().map(|&s| s as f64 / scale).collect();
        let exact: i128 = values.iter().map(|&v| (v * scale) as i128).sum();
        let expected = exact as f64 / scale;
        let mut total = Sketch::new(SketchSpec::VALUES);
        for chunk in values.chunks(values.len().div_ceil(k)) {
            let mut part = Sketch::new(SketchSpec::VALUES);
            for &v in chunk.iter().rev() {
                part.record(Some(v), None);
            }
            total.merge(&part);
        }
        prop_assert_eq!(total.stats().sum, Some(expected));
    }

    #[test]
    fn different_specs_merge_to_their_intersection(
        sa in spec(), sb in spec(), a in events(200), b in events(200),
    ) {
        let (x, y) = (sketch_of(sa, &a), sketch_of(sb, &b));
        let xy = merged(&x, &y);
        let yx = merged(&y, &x);
        prop_assert_eq!(xy.stats(), yx.stats());
        let both = SketchSpec { values: sa.values && sb.values, unique: sa.unique && sb.unique };
        let expected = match (a.is_empty(), b.is_empty()) {
            (true, false) => sb,
            (false, true) => sa,
            _ => both,
        };
        prop_assert_eq!(xy.spec(), expected);
        prop_assert_eq!(xy.stats().sum.is_some(), expected.values);
        prop_assert_eq!(xy.stats().unique.is_some(), expected.unique);
        prop_assert_eq!(xy.count(), (a.len() + b.len()) as u64);
    }
}

#[test]
fn empty_sketches_of_different_specs_merge_commutatively() {
    let all = Sketch::new(SketchSpec::ALL);
    let count = Sketch::new(SketchSpec::COUNT);
    assert_eq!(merged(&all, &count), merged(&count, &all));
    assert_eq!(merged(&all, &count).spec(), SketchSpec::COUNT);
}

#[test]
fn an_empty_sketch_is_the_identity_whatever_its_spec() {
    let s = sketch_of(
        SketchSpec::ALL,
        &[(Some(1.0), Some(1)), (Some(2.0), Some(2))],
    );
    let mut e = Sketch::new(SketchSpec::COUNT);
    e.merge(&s);
    assert_eq!(e, s);
    let mut s2 = s.clone();
    s2.merge(&Sketch::new(SketchSpec::COUNT));
    assert_eq!(s2, s);
}

#[test]
fn stats_of_each_spec() {
    let events = [
        (Some(4.0), Some(1)),
        (None, Some(1)),
        (Some(1.0), None),
        (Some(f64::NAN), Some(2)),
    ];
    let all = sketch_of(SketchSpec::ALL, &events).stats();
    assert_eq!(all.count, 4);
    assert_eq!(all.sum, Some(5.0));
    assert_eq!(all.min, Some(1.0));
    assert_eq!(all.max, Some(4.0));
    assert_eq!(all.avg, Some(2.5), "avg is over the values, not the events");
    assert_eq!(all.p50, Some(2.5));
    assert_eq!(all.p99, Some(4.0));
    assert_eq!(all.unique, Some(2));

    let count = sketch_of(SketchSpec::COUNT, &events).stats();
    assert_eq!(
        count,
        Stats {
            count: 4,
            ..Stats::default()
        }
    );

    let empty_values = sketch_of(SketchSpec::ALL, &[(None, None)]).stats();
    assert_eq!(
        empty_values,
        Stats {
            count: 1,
            sum: Some(0.0),
            unique: Some(0),
            ..Stats::default()
        }
    );

    let empty = Sketch::new(SketchSpec::ALL);
    assert!(empty.is_empty());
    assert_eq!(
        empty.stats(),
        Stats {
            count: 0,
            sum: Some(0.0),
            unique: Some(0),
            ..Stats::default()
        }
    );
}

#[test]
fn unique_never_exceeds_count_and_small_sets_are_exact() {
    for n in [1u64, 2, 3, 17, 250, 1_000] {
        let events: Vec<Event> = (0..n).map(|i| (None, Some(i))).collect();
        assert_eq!(
            sketch_of(SketchSpec::UNIQUE, &events).stats().unique,
            Some(n)
        );
    }
}

#[test]
fn hash_is_fixed_across_processes_and_versions() {
    // Golden values: changing the seed or the hash is a wire-format change.
    assert_eq!(unique_hash(b""), 0x00b0_3e31_f698_7f29);
    assert_eq!(unique_hash(b"user-42"), 0x33b3_1723_3a00_3847);
}

#[test]
fn memory_footprint() {
    let size = std::mem::size_of::<Sketch>();
    let mut count_only = Sketch::new(SketchSpec::COUNT);
    count_only.record(Some(1.0), Some(1));
    let mut one_value = Sketch::new(SketchSpec::VALUES);
    one_value.record(Some(12.5), None);
    let mut one_all = Sketch::new(SketchSpec::ALL);
    one_all.record(Some(12.5), Some(unique_hash(b"u")));
    let mut big = Sketch::new(SketchSpec::ALL);
    for i in 0..100_000u64 {
        big.record(Some(i as f64), Some(unique_hash(&i.to_le_bytes())));
    }
    println!(
        "size_of::<Sketch>() = {size}; heap: count-only {}, 1 value {}, 1 value + 1 unique {}, 100k values + uniques {}",
        count_only.heap_bytes(),
        one_value.heap_bytes(),
        one_all.heap_bytes(),
        big.heap_bytes()
    );
    assert!(size <= 32, "size_of::<Sketch>() = {size}");
    assert_eq!(count_only.heap_bytes(), 0);
    assert!(one_value.heap_bytes() <= 128, "{}", one_value.heap_bytes());
    assert!(one_all.heap_bytes() <= 200, "{}", one_all.heap_bytes());
    assert!(
        big.heap_bytes() <= 16_384 + 4_096 + 4_096,
        "{}",
        big.heap_bytes()
    );
}
