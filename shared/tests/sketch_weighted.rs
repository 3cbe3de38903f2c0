//! `Sketch::record_weighted`: one event standing for `weight` events is the same as `weight`
//! events, in count, value count, sum (exactly), min, max and percentiles; and the unique
//! hash counts once.

use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec};

fn repeated(value: f64, unique: u64, times: u32) -> Sketch {
    let mut sketch = Sketch::new(SketchSpec::ALL);
    for _ in 0..times {
        sketch.record(Some(value), Some(unique));
    }
    sketch
}

#[test]
fn a_weight_is_that_many_events() {
    for (value, weight) in [
        (2.5, 10),
        (0.1, 3),
        (-7.25, 64),
        (1e-3, 65),
        (123.456, 1000),
    ] {
        let mut weighted = Sketch::new(SketchSpec::ALL);
        weighted.record_weighted(Some(value), Some(unique_hash(b"u")), weight);
        let plain = repeated(value, unique_hash(b"u"), weight);
        let (w, p) = (weighted.stats(), plain.stats());
        assert_eq!(w.count, u64::from(weight), "{value} x {weight}");
        assert_eq!(weighted.value_count(), u64::from(weight));
        assert_eq!(w.sum, p.sum, "the sum is exact: {value} x {weight}");
        assert_eq!((w.min, w.max), (p.min, p.max));
        assert_eq!(w.p50, p.p50);
        assert_eq!(w.p99, p.p99);
        assert_eq!(w.unique, Some(1));
        // It survives the wire.
        let decoded = Sketch::decode(&weighted.encode()).expect("decodes");
        assert_eq!(decoded.stats(), w);
    }
}

#[test]
fn weights_mix_with_single_events() {
    let mut mixed = Sketch::new(SketchSpec::VALUES);
    let mut plain = Sketch::new(SketchSpec::VALUES);
    for i in 0..500u32 {
        let value = f64::from(i % 37);
        let weight = 1 + i % 5;
        mixed.record_weighted(Some(value), None, weight);
        for _ in 0..weight {
            plain.record(Some(value), None);
        }
    }
    let (m, p) = (mixed.stats(), plain.stats());
    assert_eq!(m.count, p.count);
    assert_eq!(m.sum, p.sum);
    assert_eq!((m.min, m.max), (p.min, p.max));
    assert_eq!(m.p50, p.p50);
    mixed.record_weighted(None, None, 10);
    assert_eq!(
        mixed.count(),
        p.count + 10,
        "an event without a value still counts"
    );
}
