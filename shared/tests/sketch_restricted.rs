//! `Sketch::restricted`: a reader that serves some statistics keeps only the structures they
//! need, and merges into the restricted copy give exactly those statistics of the full merge.

use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec};

fn sketch(offset: u64, n: u64) -> Sketch {
    let mut sketch = Sketch::new(SketchSpec::ALL);
    for i in 0..n {
        let key = unique_hash(&(offset + i % 5_000).to_le_bytes());
        sketch.record(Some((offset + i) as f64 * 0.5), Some(key));
    }
    sketch
}

#[test]
fn restricted_merges_serve_the_same_statistics_as_full_merges() {
    let parts: Vec<Sketch> = (0..10).map(|i| sketch(i * 1_000, 3_000)).collect();
    let mut full = parts[0].clone();
    let mut values = parts[0].restricted(SketchSpec::VALUES);
    let mut unique = parts[0].restricted(SketchSpec::UNIQUE);
    for part in &parts[1..] {
        full.merge(part);
        values.merge(part);
        unique.merge(part);
    }
    let (full, values, unique) = (full.stats(), values.stats(), unique.stats());
    assert_eq!(values.count, full.count);
    assert_eq!(
        (values.sum, values.min, values.max, values.avg),
        (full.sum, full.min, full.max, full.avg)
    );
    assert_eq!(
        (values.p50, values.p90, values.p95, values.p99),
        (full.p50, full.p90, full.p95, full.p99)
    );
    assert_eq!(values.unique, None, "the HyperLogLog was left out");
    assert!(full.unique.is_some());
    assert_eq!(unique.unique, full.unique);
    assert_eq!(
        (unique.p99, unique.sum),
        (None, None),
        "the values were left out"
    );
    // Restricting to more than a sketch carries adds nothing.
    let count_only = Sketch::new(SketchSpec::COUNT).restricted(SketchSpec::ALL);
    assert_eq!(count_only.stats().p99, None);
}
