//! The message envelope: golden bytes for the hot-path message (partial batches) and the live
//! update, round trips in both formats, and decoding of random, truncated and mutated input
//! for every message kind (an error, never a panic).
//!
//! Regenerate the fixtures deliberately with `RTDASH_BLESS=1 cargo test -p rtdash-shared --test
//! wire_messages`, and bump `wire::ENVELOPE_VERSION` when old bytes no longer mean the same.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtdash_shared::alert::{AlertState, AlertTransition, Condition};
use rtdash_shared::messages::{
    DeadLetter, LateRecord, PartialBatch, PartialEntry, PartitionStatus, WindowUpdate,
};
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec};
use rtdash_shared::stat::Stat;
use rtdash_shared::wire::{decode, encode, peek_kind, Format, WireError, WireMessage};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn batch() -> PartialBatch {
    let mut sketch = Sketch::new(SketchSpec::ALL);
    for i in 0..5u32 {
        sketch.record(
            Some(f64::from(i) * 1.5),
            Some(unique_hash(format!("u{i}").as_bytes())),
        );
    }
    PartialBatch {
        agent_id: "edge-1".into(),
        partition: 3,
        seq: 1_700_000_000_000_000,
        acked_below: 1_699_999_999_999_990,
        watermark: 1_705_327_532_000,
        created_at: 1_705_327_532_010,
        entries: vec![
            PartialEntry {
                series: SeriesKey::new(
                    "acme",
                    "checkout_amount",
                    [
                        ("region".to_owned(), Some("us-east".to_owned())),
                        ("plan".to_owned(), None),
                    ],
                ),
                window_start: 1_705_327_500_000,
                window_ms: 60_000,
                sketch,
            },
            PartialEntry {
                series: SeriesKey::new("acme", "events", []),
                window_start: 1_705_327_500_000,
                window_ms: 60_000,
                sketch: {
                    let mut count = Sketch::new(SketchSpec::COUNT);
                    count.record(None, None);
                    count
                },
            },
        ],
    }
}

fn update() -> WindowUpdate {
    WindowUpdate {
        tenant_id: "acme".into(),
        metric: "checkout_amount".into(),
        dimensions: BTreeMap::from([("region".to_owned(), Some("us-east".to_owned()))]),
        window_start: 1_705_327_500_000,
        window_end: 1_705_327_560_000,
        stats: batch().entries[0].sketch.stats(),
        revision: 2,
        is_final: true,
        late_count: 7,
        updated_at: 1_705_327_600_000,
        state: None,
    }
}

fn check_golden<T: WireMessage + PartialEq + std::fmt::Debug>(
    name: &str,
    message: &T,
    format: Format,
) {
    let bytes = encode(message, format).expect("encodes");
    let path = fixture(name);
    if std::env::var_os("RTDASH_BLESS").is_some() {
        std::fs::write(&path, &bytes).expect("write fixture");
    }
    let golden = std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}; run with RTDASH_BLESS=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        bytes, golden,
        "{name}: the encoding changed; if deliberate, bump the envelope version and re-bless"
    );
    let decoded: T = decode(&golden).expect("golden bytes decode");
    assert_eq!(&decoded, message);
}

#[test]
fn partial_batch_golden_bytes() {
    check_golden("wire_v1_partial_batch.bin", &batch(), Format::Binary);
}

#[test]
fn window_update_golden_json() {
    check_golden("wire_v1_window_update.json.bin", &update(), Format::Json);
}

#[test]
fn header_is_checked_before_the_body() {
    let bytes = encode(&batch(), Format::Binary).expect("encodes");
    assert_eq!(&bytes[..5], &[b'R', b'D', 1, 1, 0]);
    assert_eq!(peek_kind(&bytes), Ok((1, Format::Binary)));
    assert_eq!(
        decode::<PartialBatch>(&bytes[..3]),
        Err(WireError::Truncated(3))
    );
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(decode::<PartialBatch>(&bad), Err(WireError::BadMagic));
    let mut newer = bytes.clone();
    newer[2] = 2;
    assert_eq!(
        decode::<PartialBatch>(&newer),
        Err(WireError::UnsupportedVersion(2))
    );
    let mut format = bytes.clone();
    format[4] = 9;
    assert_eq!(
        decode::<PartialBatch>(&format),
        Err(WireError::UnknownFormat(9))
    );
    assert_eq!(
        decode::<WindowUpdate>(&bytes),
        Err(WireError::WrongKind {
            expected: 2,
            got: 1
        })
    );
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        decode::<PartialBatch>(&trailing),
        Err(WireError::Body(_))
    ));
}

#[test]
fn every_kind_round_trips_in_both_formats() {
    fn round_trip<T: WireMessage + PartialEq + std::fmt::Debug>(message: T) {
        for format in [Format::Binary, Format::Json] {
            let bytes = encode(&message, format).expect("encodes");
            let back: T = decode(&bytes).expect("decodes");
            if format == Format::Binary {
                assert_eq!(back, message);
            } else {
                // JSON floats may differ in the last bit; re-encoding is stable.
                assert_eq!(encode(&back, format).expect("re-encodes"), bytes);
            }
        }
    }
    round_trip(batch());
    round_trip(update());
    round_trip(LateRecord {
        agent_id: "edge-1".into(),
        seq: 9,
        watermark: 1,
        received_at: 2,
        entry: batch().entries.remove(1),
    });
    round_trip(DeadLetter::from_input(
        "malformed_json",
        "bad",
        b"{oops",
        3,
        Some(4),
        "edge-agent:x",
        5,
    ));
    round_trip(PartitionStatus {
        partition: 1,
        owner: "agg-1".into(),
        watermark: Some(7),
        lag_messages: 3,
        reported_at: 8,
        closed_through: Some(3),
    });
    round_trip(AlertTransition {
        rule_id: "r1".into(),
        tenant_id: "acme".into(),
        rule_name: String::new(),
        metric_name: "m".into(),
        dimensions: BTreeMap::new(),
        window_start: 0,
        window_end: 60_000,
        from: AlertState::Pending,
        to: AlertState::Firing,
        value: Some(3.0),
        threshold: 2.0,
        stat: Stat::Count,
        condition: Condition::Gt,
        notify_channel: "http://127.0.0.1:1/hook".into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        starts_at: 60_000,
        ends_at: None,
        evaluated_at: 61_000,
        seq: 1_700_000_000_000_001,
        window_revision: 0,
        provisional: false,
    });
}

/// Decodes `bytes` as every message kind; only errors or values may come out.
fn decode_all(bytes: &[u8]) {
    let _ = decode::<PartialBatch>(bytes);
    let _ = decode::<WindowUpdate>(bytes);
    let _ = decode::<LateRecord>(bytes);
    let _ = decode::<DeadLetter>(bytes);
    let _ = decode::<PartitionStatus>(bytes);
    let _ = decode::<AlertTransition>(bytes);
    let _ = SeriesKey::from_canonical(bytes);
}

#[test]
fn hostile_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(7);
    let valid = [
        encode(&batch(), Format::Binary).expect("encodes"),
        encode(&batch(), Format::Json).expect("encodes"),
        encode(&update(), Format::Binary).expect("encodes"),
        encode(&update(), Format::Json).expect("encodes"),
    ];
    for bytes in &valid {
        for end in 0..bytes.len() {
            decode_all(&bytes[..end]);
        }
        for _ in 0..2_000 {
            let mut mutated = bytes.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..mutated.len());
                mutated[at] = rng.random();
            }
            decode_all(&mutated);
        }
    }
    for _ in 0..5_000 {
        let len = rng.random_range(0..256);
        let mut random: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if random.len() >= 5 && rng.random_bool(0.7) {
            random[..5].copy_from_slice(&[
                b'R',
                b'D',
                1,
                rng.random_range(1..7),
                rng.random_range(0..2),
            ]);
        }
        decode_all(&random);
    }
}
