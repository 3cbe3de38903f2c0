//! The sketch wire format: round trips, golden bytes, validation errors, and decoding of
//! random, truncated and mutated input (never a panic, never an unbounded allocation).
//!
//! Golden fixtures live in `tests/fixtures/sketch_v1_*`. A format change must be deliberate:
//! regenerate them with `RTDASH_BLESS=1 cargo test -p rtdash-shared --test sketch_wire` and bump
//! `SKETCH_FORMAT_VERSION` if old bytes no longer mean the same thing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtdash_shared::sketch::{
    unique_hash, Sketch, SketchDecodeError, SketchSpec, Stats, DIGEST_BUFFER, DIGEST_COMPRESSION,
    SKETCH_FORMAT_VERSION,
};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Allocation accounting (per thread, so parallel tests do not disturb each other).

struct CountingAllocator;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation(size: usize) {
    let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(size)));
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Decodes, returning the result with the bytes allocated (in total) and the largest single
/// allocation made on this thread while decoding.
fn decode_counting(bytes: &[u8]) -> (Result<Sketch, SketchDecodeError>, usize, usize) {
    ALLOCATED.with(|a| a.set(0));
    LARGEST.with(|l| l.set(0));
    let result = Sketch::decode(bytes);
    (result, ALLOCATED.with(Cell::get), LARGEST.with(Cell::get))
}

/// The allocation bound for decoding `len` input bytes: linear in the input (a dense register
/// array unpacks 3 bytes into 4, lists are copied once) plus a constant; far below what a
/// hostile length prefix would ask for.
fn allocation_bound(len: usize) -> usize {
    16 * len + 64 * 1024
}

// ---------------------------------------------------------------------------------------------
// Deterministic sketches (no RNG crate: fixtures must not change with a dependency's algorithm).

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A value with two decimals in [0, 1000).
    fn value(&mut self) -> f64 {
        (self.next() % 100_000) as f64 / 100.0
    }
}

/// How many distinct keys [`deterministic`] records (keys are drawn at random below `distinct`).
fn distinct_keys(events: usize, distinct: u64, seed: u64) -> usize {
    let mut rng = SplitMix(seed);
    let mut keys = std::collections::HashSet::new();
    for _ in 0..events {
        rng.value();
        keys.insert(rng.next() % distinct.max(1));
        rng.next();
    }
    keys.len()
}

fn deterministic(spec: SketchSpec, events: usize, distinct: u64, seed: u64) -> Sketch {
    let mut rng = SplitMix(seed);
    let mut s = Sketch::new(spec);
    for _ in 0..events {
        let v = rng.value();
        let k = rng.next() % distinct.max(1);
        let has_value = rng.next() % 10 > 0;
        s.record(
            has_value.then_some(v),
            Some(unique_hash(format!("user-{k}").as_bytes())),
        );
    }
    s
}

/// The golden fixtures: name, sketch.
fn fixtures() -> Vec<(&'static str, Sketch)> {
    vec![
        ("empty", Sketch::new(SketchSpec::ALL)),
        ("count", deterministic(SketchSpec::COUNT, 3, 1, 1)),
        ("small", deterministic(SketchSpec::ALL, 12, 5, 2)),
        (
            "digest_sparse",
            deterministic(SketchSpec::ALL, 5_000, 1_000, 3),
        ),
        ("dense", deterministic(SketchSpec::ALL, 20_000, 15_000, 4)),
    ]
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn bless() -> bool {
    std::env::var_os("RTDASH_BLESS").is_some_and(|v| v == "1")
}

#[test]
fn golden_bytes() {
    for (name, sketch) in fixtures() {
        let path = fixture_path(&format!("sketch_v1_{name}.bin"));
        let encoded = sketch.encode();
        println!("fixture {name}: {} bytes, {:?}", encoded.len(), sketch);
        if bless() {
            std::fs::create_dir_all(path.parent().expect("fixture dir"))
                .expect("create fixture dir");
            std::fs::write(&path, &encoded).expect("write fixture");
        }
        let golden = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (bless with RTDASH_BLESS=1)", path.display()));
        assert_eq!(
            encoded, golden,
            "{name}: encoding changed; if deliberate, bump SKETCH_FORMAT_VERSION and bless"
        );
        let decoded = Sketch::decode(&golden).expect("golden decodes");
        assert_eq!(decoded, sketch, "{name}");
        assert_eq!(decoded.stats(), sketch.stats(), "{name}");
        assert_eq!(
            decoded.encode(),
            golden,
            "{name}: re-encoding is byte-identical"
        );
    }
}

#[test]
fn golden_json() {
    let (_, sketch) = fixtures()
        .into_iter()
        .find(|(n, _)| *n == "small")
        .expect("small fixture");
    let path = fixture_path("sketch_v1_small.json");
    let json = serde_json::to_string_pretty(&sketch).expect("json") + "\n";
    if bless() {
        std::fs::write(&path, &json).expect("write fixture");
    }
    let golden = std::fs::read_to_string(&path).expect("golden json (bless with RTDASH_BLESS=1)");
    assert_eq!(json, golden);
    let decoded: Sketch = serde_json::from_str(&golden).expect("golden json decodes");
    assert_eq!(decoded, sketch);
}

#[test]
fn golden_stats() {
    // What the fixtures say, independently of their bytes: small enough to check by hand.
    let small =
        Sketch::decode(&std::fs::read(fixture_path("sketch_v1_small.bin")).expect("fixture"))
            .expect("decodes");
    let stats = small.stats();
    assert_eq!(stats.count, 12);
    assert_eq!(stats.unique, Some(5));
    assert!(stats.sum.is_some() && stats.min <= stats.p50 && stats.p50 <= stats.max);
    let dense =
        Sketch::decode(&std::fs::read(fixture_path("sketch_v1_dense.bin")).expect("fixture"))
            .expect("decodes");
    assert!(dense.unique_is_dense());
    let unique = dense.stats().unique.unwrap_or(0) as f64;
    let exact = distinct_keys(20_000, 15_000, 4) as f64;
    assert!((unique - exact).abs() / exact < 0.02, "{unique} vs {exact}");
    let empty =
        Sketch::decode(&std::fs::read(fixture_path("sketch_v1_empty.bin")).expect("fixture"))
            .expect("decodes");
    assert_eq!(
        empty.stats(),
        Stats {
            sum: Some(0.0),
            unique: Some(0),
            ..Stats::default()
        }
    );
}

#[test]
fn encoded_sizes() {
    let one_count = deterministic(SketchSpec::COUNT, 1, 1, 5);
    let one_all = deterministic(SketchSpec::ALL, 1, 1, 5);
    let sizes = [
        ("empty", Sketch::new(SketchSpec::ALL).encode().len()),
        ("1 event, count only", one_count.encode().len()),
        ("1 event, value + unique", one_all.encode().len()),
        (
            "100 events / 50 distinct",
            deterministic(SketchSpec::ALL, 100, 50, 6).encode().len(),
        ),
        (
            "10k events / 2k distinct (sparse)",
            deterministic(SketchSpec::ALL, 10_000, 2_000, 7)
                .encode()
                .len(),
        ),
        (
            "100k events / 50k distinct (dense)",
            deterministic(SketchSpec::ALL, 100_000, 50_000, 8)
                .encode()
                .len(),
        ),
    ];
    for (what, size) in sizes {
        println!("encoded size: {what}: {size} bytes");
    }
    assert!(sizes[1].1 <= 8);
    assert!(sizes[2].1 <= 64, "{}", sizes[2].1);
    // Dense registers pack to 12 KiB; a full digest adds at most ~200 × 10 + 255 × 8 bytes.
    assert!(sizes[5].1 <= 12_288 + 4_500, "{}", sizes[5].1);
}

// ---------------------------------------------------------------------------------------------
// Round trips.

fn arbitrary_sketch() -> impl Strategy<Value = Sketch> {
    let spec = prop_oneof![
        Just(SketchSpec::ALL),
        Just(SketchSpec::VALUES),
        Just(SketchSpec::UNIQUE),
        Just(SketchSpec::COUNT)
    ];
    let size = prop_oneof![0usize..20, 20usize..600, Just(3_000usize)];
    (spec, size, 1u64..5_000, any::<u64>())
        .prop_map(|(spec, events, distinct, seed)| deterministic(spec, events, distinct, seed))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn binary_and_json_round_trips(sketch in arbitrary_sketch(), other in arbitrary_sketch()) {
        let mut s = sketch;
        s.merge(&other);
        let bytes = s.encode();
        let decoded = Sketch::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded, &s);
        prop_assert_eq!(decoded.stats(), s.stats());
        prop_assert_eq!(&decoded.encode(), &bytes);

        // JSON is for debugging: serde_json (without its `float_roundtrip` feature) may parse a
        // float one unit in the last place off, so compare with a tolerance.
        let json = serde_json::to_string(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let from_json: Sketch = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (a, b) = (from_json.stats(), s.stats());
        prop_assert_eq!((a.count, a.unique, a.min, a.max), (b.count, b.unique, b.min, b.max));
        for (x, y) in [(a.sum, b.sum), (a.avg, b.avg), (a.p50, b.p50), (a.p90, b.p90), (a.p95, b.p95), (a.p99, b.p99)] {
            let close = match (x, y) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
                (x, y) => x == y,
            };
            prop_assert!(close, "{:?} vs {:?}", x, y);
        }

        // Embedded in a postcard message, the sketch is its wire form without the version byte.
        let embedded = postcard::to_stdvec(&(7u8, &s, "after")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (a, back, b): (u8, Sketch, String) = postcard::from_bytes(&embedded).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((a, &back, b.as_str()), (7, &s, "after"));
        prop_assert_eq!(&embedded[1..bytes.len()], &bytes[1..]);

        // Decoded sketches keep working: merge and record into them.
        let mut continued = decoded;
        continued.merge(&s);
        continued.record(Some(1.0), Some(1));
        prop_assert_eq!(continued.count(), 2 * s.count() + 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Validation: a mirror of the wire schema, to build invalid sketches field by field. It also
// pins the schema: if `SketchWire` changes shape, `mirror_matches_the_schema` fails.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct W {
    spec: SketchSpec,
    count: u64,
    values: Option<V>,
    unique: Option<H>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct V {
    n: u64,
    min: f64,
    max: f64,
    sum: Vec<f64>,
    compression: u32,
    centroids: Vec<(f64, u64)>,
    pending: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct H {
    precision: u8,
    registers: R,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum R {
    Sparse(Vec<u32>),
    Dense(Vec<u8>),
}

fn mirror(sketch: &Sketch) -> W {
    let bytes = sketch.encode();
    postcard::from_bytes(&bytes[1..]).expect("mirror matches the wire schema")
}

fn encode_mirror(w: &W) -> Vec<u8> {
    postcard::to_extend(w, vec![SKETCH_FORMAT_VERSION]).expect("serialise mirror")
}

fn decode_mirror(w: &W) -> Result<Sketch, SketchDecodeError> {
    Sketch::decode(&encode_mirror(w))
}

#[test]
fn mirror_matches_the_schema() {
    for (name, sketch) in fixtures() {
        let w = mirror(&sketch);
        assert_eq!(encode_mirror(&w), sketch.encode(), "{name}");
        assert_eq!(decode_mirror(&w).as_ref(), Ok(&sketch), "{name}");
    }
}

fn with_values(f: impl FnOnce(&mut V)) -> Result<Sketch, SketchDecodeError> {
    let mut w = mirror(&deterministic(SketchSpec::ALL, 2_000, 100, 11));
    f(w.values.as_mut().expect("values"));
    decode_mirror(&w)
}

fn with_hll(
    events: usize,
    distinct: u64,
    f: impl FnOnce(&mut H),
) -> Result<Sketch, SketchDecodeError> {
    let mut w = mirror(&deterministic(SketchSpec::ALL, events, distinct, 12));
    f(w.unique.as_mut().expect("unique"));
    decode_mirror(&w)
}

#[test]
fn every_invalid_field_has_its_error() {
    use SketchDecodeError as E;
    let base = mirror(&deterministic(SketchSpec::ALL, 2_000, 100, 11));
    let check = |w: W, pred: fn(&SketchDecodeError) -> bool| {
        let result = decode_mirror(&w);
        assert!(matches!(&result, Err(e) if pred(e)), "{result:?}");
    };

    assert_eq!(Sketch::decode(&[]), Err(E::Empty));
    assert_eq!(Sketch::decode(&[2, 0, 0, 0]), Err(E::UnsupportedVersion(2)));
    let mut trailing = encode_mirror(&base);
    trailing.push(0);
    assert_eq!(Sketch::decode(&trailing), Err(E::TrailingBytes(1)));

    let mut w = base.clone();
    w.spec.values = false;
    check(w, |e| matches!(e, E::SpecMismatch(_)));
    let mut w = base.clone();
    w.spec.unique = false;
    check(w, |e| matches!(e, E::SpecMismatch(_)));
    let mut w = base.clone();
    w.count = 0;
    check(w, |e| matches!(e, E::CountMismatch(_)));

    let is = |r: Result<Sketch, E>, pred: fn(&E) -> bool| {
        assert!(matches!(&r, Err(e) if pred(e)), "{r:?}")
    };
    is(with_values(|v| v.n = 0), |e| {
        matches!(e, E::CountMismatch(_))
    });
    is(with_values(|v| v.n = 1_000_000), |e| {
        matches!(e, E::CountMismatch(_))
    });
    is(with_values(|v| v.n -= 1), |e| {
        matches!(e, E::CountMismatch(_))
    });
    is(with_values(|v| (v.min, v.max) = (v.max, v.min)), |e| {
        matches!(e, E::InvalidMinMax)
    });
    is(with_values(|v| v.min = f64::NAN), |e| {
        matches!(e, E::InvalidMinMax)
    });
    is(with_values(|v| v.max = f64::INFINITY), |e| {
        matches!(e, E::InvalidMinMax)
    });
    is(with_values(|v| v.min = -1e300), |e| {
        matches!(e, E::InvalidMinMax)
    });
    is(with_values(|v| v.sum = vec![1.0; 49]), |e| {
        matches!(e, E::TooManySumParts { len: 49, .. })
    });
    is(with_values(|v| v.sum = vec![f64::NAN]), |e| {
        matches!(e, E::InvalidSum)
    });
    is(
        with_values(|v| v.sum = vec![f64::INFINITY, f64::NEG_INFINITY]),
        |e| matches!(e, E::InvalidSum),
    );
    is(with_values(|v| v.sum = vec![1e305]), |e| {
        matches!(e, E::InvalidSum)
    });
    is(
        with_values(|v| v.sum = vec![v.max * v.n as f64 * 1.01]),
        |e| matches!(e, E::InvalidSum),
    );
    is(
        with_values(|v| v.sum = vec![v.min * v.n as f64 - 1.0]),
        |e| matches!(e, E::InvalidSum),
    );
    is(with_values(|v| v.compression = 100), |e| {
        matches!(e, E::Compression(100))
    });
    is(
        with_values(|v| v.centroids = vec![(1.0, 1); DIGEST_COMPRESSION + 1]),
        |e| matches!(e, E::TooManyCentroids { .. }),
    );
    is(with_values(|v| v.centroids[3].1 = 0), |e| {
        matches!(e, E::InvalidCentroid { index: 3 })
    });
    is(with_values(|v| v.centroids[0].0 = v.min - 1.0), |e| {
        matches!(e, E::InvalidCentroid { index: 0 })
    });
    is(with_values(|v| v.centroids[5].0 = f64::NAN), |e| {
        matches!(e, E::InvalidCentroid { index: 5 })
    });
    is(with_values(|v| v.centroids.swap(1, 2)), |e| {
        matches!(e, E::InvalidCentroid { index: 2 })
    });
    is(with_values(|v| v.centroids[0].1 = u64::MAX), |e| {
        matches!(e, E::InvalidCentroid { index: 0 })
    });
    is(
        with_values(|v| v.pending = vec![v.min; DIGEST_BUFFER]),
        |e| matches!(e, E::TooManyPending { .. }),
    );
    is(with_values(|v| v.pending[0] = f64::NAN), |e| {
        matches!(e, E::InvalidPending { index: 0 })
    });
    is(with_values(|v| v.pending[0] = v.max + 1.0), |e| {
        matches!(e, E::InvalidPending { index: 0 })
    });
    is(with_values(|v| v.pending.reverse()), |e| {
        matches!(e, E::InvalidPending { index: 1 })
    });

    // Sparse (100 distinct) and dense (20k distinct) HyperLogLogs.
    is(with_hll(200, 100, |h| h.precision = 3), |e| {
        matches!(e, E::InvalidPrecision(3))
    });
    is(with_hll(200, 100, |h| h.precision = 19), |e| {
        matches!(e, E::InvalidPrecision(19))
    });
    is(
        with_hll(200, 100, |h| {
            h.registers = R::Sparse(vec![1 << 6 | 1; 2_049])
        }),
        |e| matches!(e, E::SparseTooLong { len: 2_049, .. }),
    );
    is(
        with_hll(200, 100, |h| h.registers = R::Sparse(vec![1 << 6])),
        |e| matches!(e, E::SparseEntry { index: 0 }),
    );
    is(
        with_hll(200, 100, |h| h.registers = R::Sparse(vec![1 << 6 | 1, 1])),
        |e| matches!(e, E::SparseEntry { index: 1 }),
    );
    is(
        with_hll(200, 100, |h| h.registers = R::Sparse(vec![1 << 6 | 41])),
        |e| matches!(e, E::SparseEntry { index: 0 }),
    );
    is(
        with_hll(200, 100, |h| {
            h.registers = R::Sparse(vec![u32::MAX - 3, 64])
        }),
        |e| matches!(e, E::SparseEntry { index: 0 }),
    );
    is(
        with_hll(200, 100, |h| {
            h.registers = R::Sparse(vec![1 << 6 | 1, u32::MAX])
        }),
        |e| matches!(e, E::SparseEntry { index: 1 }),
    );
    is(
        with_hll(3, 3, |h| {
            h.registers = R::Sparse((1..=4).map(|i| i << 6 | 1).collect())
        }),
        |e| matches!(e, E::CountMismatch(_)),
    );
    is(
        with_hll(30_000, 20_000, |h| h.registers = R::Dense(vec![0; 100])),
        |e| {
            matches!(
                e,
                E::RegisterLength {
                    expected: 12_288,
                    actual: 100,
                    ..
                }
            )
        },
    );
    is(with_hll(30_000, 20_000, |h| h.precision = 13), |e| {
        matches!(e, E::RegisterLength { .. })
    });
    is(
        with_hll(30_000, 20_000, |h| {
            if let R::Dense(packed) = &mut h.registers {
                packed[0] = 52; // register 0 = 52 > 51 at precision 14
            }
        }),
        |e| {
            matches!(
                e,
                E::RegisterValue {
                    index: 0,
                    value: 52,
                    max: 51
                }
            )
        },
    );

    // Through serde (JSON) the same checks apply; the message carries the reason.
    let mut w = base.clone();
    w.count = 0;
    let json = serde_json::to_string(&w).expect("json");
    let err = serde_json::from_str::<Sketch>(&json).expect_err("invalid");
    assert!(err.to_string().contains("inconsistent counts"), "{err}");
}

#[test]
fn precisions_other_than_14_decode_and_merge_by_folding() {
    // A (future or foreign) sketch at precision 12 merges with ours at 14 into precision 12.
    let ours = deterministic(SketchSpec::UNIQUE, 50_000, 40_000, 21);
    let mut w = mirror(&ours);
    let Some(H {
        registers: R::Dense(packed),
        ..
    }) = &w.unique
    else {
        panic!("dense")
    };
    // Fold by hand: register i at p=14 → i >> 2 at p=12 with ρ + 2 when the dropped bits are 0.
    let registers: Vec<u8> = packed
        .chunks(3)
        .flat_map(|g| {
            let bits = u32::from(g[0]) | u32::from(g[1]) << 8 | u32::from(g[2]) << 16;
            (0..4).map(move |k| ((bits >> (6 * k)) & 0x3f) as u8)
        })
        .collect();
    let mut folded = vec![0u8; 1 << 12];
    for (i, &r) in registers.iter().enumerate() {
        if r == 0 {
            continue;
        }
        let low = i & 3;
        let rho = match low {
            0 => r + 2,
            1 => 2,
            _ => 1,
        };
        folded[i >> 2] = folded[i >> 2].max(rho);
    }
    let packed12: Vec<u8> = folded
        .chunks(4)
        .flat_map(|g| {
            let bits = u32::from(g[0])
                | u32::from(g[1]) << 6
                | u32::from(g[2]) << 12
                | u32::from(g[3]) << 18;
            bits.to_le_bytes()[..3].to_vec()
        })
        .collect();
    w.unique = Some(H {
        precision: 12,
        registers: R::Dense(packed12),
    });
    let foreign = decode_mirror(&w).expect("precision 12 decodes");
    let mut a = ours.clone();
    a.merge(&foreign);
    let mut b = foreign.clone();
    b.merge(&ours);
    assert_eq!(a.stats(), b.stats());
    assert_eq!(
        a.stats().unique,
        foreign.stats().unique,
        "same set of hashes"
    );
    let estimate = a.unique_estimate().unwrap_or(0.0);
    let exact = distinct_keys(50_000, 40_000, 21) as f64;
    assert!(
        (estimate - exact).abs() / exact < 0.03,
        "{estimate} vs {exact}"
    );
}

// ---------------------------------------------------------------------------------------------
// Fuzz-style decoding.

/// Decodes arbitrary bytes; must not panic, must stay within the allocation bound, and whatever
/// decodes must be a fully working sketch.
fn decode_untrusted(bytes: &[u8]) -> bool {
    let (result, allocated, largest) = decode_counting(bytes);
    assert!(
        allocated <= allocation_bound(bytes.len()),
        "decoding {} bytes allocated {allocated} (largest {largest})",
        bytes.len()
    );
    match result {
        Ok(sketch) => {
            let _ = sketch.stats();
            let _ = sketch.heap_bytes();
            let again = sketch.encode();
            assert_eq!(
                Sketch::decode(&again).as_ref(),
                Ok(&sketch),
                "accepted input re-encodes to itself"
            );
            let mut merged = sketch.clone();
            merged.merge(&deterministic(SketchSpec::ALL, 300, 100, 99));
            merged.merge(&sketch);
            merged.record(Some(1.0), Some(7));
            let _ = merged.stats();
            true
        }
        Err(e) => {
            let _ = e.to_string();
            false
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(0xf022);
    let mut accepted = 0;
    for i in 0..20_000 {
        let len = rng.random_range(0..96);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if i % 2 == 0 && !bytes.is_empty() {
            bytes[0] = SKETCH_FORMAT_VERSION;
        }
        accepted += usize::from(decode_untrusted(&bytes));
    }
    println!("random bytes: {accepted} of 20000 decoded");
}

#[test]
fn truncations_are_errors() {
    for (name, sketch) in fixtures() {
        let bytes = sketch.encode();
        let step = (bytes.len() / 2_000).max(1);
        for len in (0..bytes.len())
            .step_by(step)
            .chain(bytes.len().saturating_sub(64)..bytes.len())
        {
            let (result, allocated, _) = decode_counting(&bytes[..len]);
            assert!(result.is_err(), "{name}: prefix of {len} bytes decoded");
            assert!(
                allocated <= allocation_bound(len),
                "{name}: prefix of {len} allocated {allocated}"
            );
        }
    }
}

#[test]
fn mutations_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x3a7);
    let mut accepted = 0;
    let mut tried = 0;
    for (_, sketch) in fixtures() {
        let bytes = sketch.encode();
        let rounds = if bytes.len() > 4_000 { 300 } else { 3_000 };
        for _ in 0..rounds {
            let mut m = bytes.clone();
            for _ in 0..rng.random_range(1..4) {
                match rng.random_range(0..5) {
                    0 if !m.is_empty() => {
                        let i = rng.random_range(0..m.len());
                        m[i] ^= 1 << rng.random_range(0..8);
                    }
                    1 if !m.is_empty() => {
                        let i = rng.random_range(0..m.len());
                        m[i] = rng.random();
                    }
                    2 => {
                        let i = rng.random_range(0..=m.len());
                        m.insert(i, rng.random());
                    }
                    3 if !m.is_empty() => {
                        let i = rng.random_range(0..m.len());
                        m.remove(i);
                    }
                    _ => {
                        // A hostile length prefix: a huge var-int somewhere.
                        let i = rng.random_range(0..=m.len());
                        for b in [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f] {
                            m.insert(i, b);
                        }
                    }
                }
            }
            accepted += usize::from(decode_untrusted(&m));
            tried += 1;
        }
    }
    println!("mutations: {accepted} of {tried} decoded");
}

#[test]
fn hostile_lengths_allocate_nothing_large() {
    // version, spec {values, unique}, count, Some(values), n, min, max, then a sum list that
    // claims 2^63 parts.
    let mut bytes = vec![SKETCH_FORMAT_VERSION, 1, 1, 10, 1, 1];
    bytes.extend_from_slice(&1.0f64.to_le_bytes());
    bytes.extend_from_slice(&1.0f64.to_le_bytes());
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    let (result, allocated, largest) = decode_counting(&bytes);
    assert!(result.is_err());
    assert!(allocated < 1_024, "{allocated} bytes, largest {largest}");

    // A dense register list that claims more registers than exist, followed by plenty of bytes:
    // at most the cap (the largest valid precision) is kept.
    let mut bytes = vec![SKETCH_FORMAT_VERSION, 0, 1, 10, 0, 1, 14, 1];
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
    bytes.extend(std::iter::repeat_n(0u8, 400_000));
    let (result, allocated, largest) = decode_counting(&bytes);
    assert!(result.is_err());
    assert!(
        largest <= 196_608 && allocated <= 512 * 1024,
        "{allocated} bytes, largest {largest}"
    );
}

#[test]
fn json_mutations_never_panic() {
    let (_, sketch) = fixtures()
        .into_iter()
        .find(|(n, _)| *n == "digest_sparse")
        .expect("fixture");
    let json = serde_json::to_string(&sketch).expect("json");
    let mut rng = StdRng::seed_from_u64(0x15);
    let alphabet = b"0123456789-.,:[]{}\"e nultrfaSD";
    let mut accepted = 0;
    for _ in 0..2_000 {
        let mut m = json.clone().into_bytes();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..m.len());
            m[i] = alphabet[rng.random_range(0..alphabet.len())];
        }
        if let Ok(text) = std::str::from_utf8(&m) {
            if let Ok(s) = serde_json::from_str::<Sketch>(text) {
                let _ = s.stats();
                accepted += 1;
            }
        }
    }
    println!("json mutations: {accepted} of 2000 decoded");
}

/// An "interesting" float: edge values, or a plausible one.
fn interesting_f64(rng: &mut StdRng) -> f64 {
    const EDGES: [f64; 13] = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        1e-310,
        f64::MIN_POSITIVE,
        1e288,
        -1e288,
        1e289,
        f64::MAX,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    if rng.random_bool(0.5) {
        EDGES[rng.random_range(0..EDGES.len())]
    } else {
        rng.random_range(-1000.0..1000.0)
    }
}

fn interesting_u64(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..4) {
        0 => rng.random_range(0..4),
        1 => rng.random_range(0..3_000),
        2 => [u64::MAX, 1 << 53, (1 << 53) + 1, u64::MAX / 2][rng.random_range(0..4)],
        _ => rng.random(),
    }
}

/// Perturbs one field of a wire value (semantic fuzzing: most results stay close to valid, so
/// the validation and whatever survives it get exercised, not just the parser).
fn perturb(w: &mut W, rng: &mut StdRng) {
    match rng.random_range(0..12) {
        0 => w.count = interesting_u64(rng),
        1 => {
            w.spec = SketchSpec {
                values: rng.random(),
                unique: rng.random(),
            }
        }
        2..=6 => {
            let Some(v) = w.values.as_mut() else { return };
            match rng.random_range(0..9) {
                0 => v.n = interesting_u64(rng),
                1 => v.min = interesting_f64(rng),
                2 => v.max = interesting_f64(rng),
                3 => {
                    v.sum = (0..rng.random_range(0..4))
                        .map(|_| interesting_f64(rng))
                        .collect()
                }
                4 if !v.centroids.is_empty() => {
                    let i = rng.random_range(0..v.centroids.len());
                    v.centroids[i] = (interesting_f64(rng), interesting_u64(rng));
                }
                5 if !v.pending.is_empty() => {
                    let i = rng.random_range(0..v.pending.len());
                    v.pending[i] = interesting_f64(rng);
                }
                6 => v.pending.push(interesting_f64(rng)),
                7 => {
                    v.centroids.pop();
                }
                _ => v.compression = [0, 1, 199, 200, 201, u32::MAX][rng.random_range(0..6)],
            }
        }
        7 => w.values = None,
        _ => {
            let Some(h) = w.unique.as_mut() else { return };
            match (&mut h.registers, rng.random_range(0..5)) {
                (_, 0) => h.precision = rng.random_range(0..30),
                (R::Sparse(entries), 1) => entries.push(rng.random()),
                (R::Sparse(entries), _) if !entries.is_empty() => {
                    let i = rng.random_range(0..entries.len());
                    entries[i] = if rng.random() {
                        rng.random()
                    } else {
                        entries[i] ^ (1 << rng.random_range(0..32))
                    };
                }
                (R::Dense(packed), _) if !packed.is_empty() => {
                    let i = rng.random_range(0..packed.len());
                    packed[i] = rng.random();
                }
                _ => {
                    h.precision = 4;
                    h.registers = R::Dense((0..12).map(|_| rng.random()).collect());
                }
            }
        }
    }
}

#[test]
fn perturbed_fields_never_panic() {
    let bases: Vec<W> = [
        deterministic(SketchSpec::ALL, 1, 1, 31),
        deterministic(SketchSpec::ALL, 40, 20, 32),
        deterministic(SketchSpec::ALL, 3_000, 500, 33),
        deterministic(SketchSpec::ALL, 12_000, 9_000, 34),
    ]
    .iter()
    .map(mirror)
    .collect();
    let mut rng = StdRng::seed_from_u64(0xbeef);
    let mut accepted = 0;
    let rounds = 6_000;
    for i in 0..rounds {
        let mut w = bases[i % bases.len()].clone();
        for _ in 0..rng.random_range(1..4) {
            perturb(&mut w, &mut rng);
        }
        accepted += usize::from(decode_untrusted(&encode_mirror(&w)));
    }
    println!("perturbed fields: {accepted} of {rounds} decoded");
    assert!(
        accepted > 100,
        "the perturbations should leave some sketches valid"
    );
}
