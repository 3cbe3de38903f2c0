//! A window version as one ILP row of the windows table (the layout is
//! [`rtdash_shared::ilp::WindowRow`]'s, shared with the tools and tests that write windows).

use crate::state::WindowOutput;
use questdb::ingress::Buffer;
use rtdash_shared::ilp::WindowRow;

/// Appends one window row in the table's column layout (see [`rtdash_shared::schema`]): the
/// numbers and the state in one row, so the dedup upsert replaces them together.
pub fn append_row(buffer: &mut Buffer, table: &str, output: &WindowOutput) -> questdb::Result<()> {
    WindowRow {
        series: &output.key.series,
        start: output.key.start,
        end: output.key.end(),
        stats: &output.stats,
        revision: output.revision,
        is_final: output.is_final,
        late_count: output.late_count,
        updated_at: output.updated_at,
        state: output.state.as_deref(),
    }
    .append(buffer, table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{WindowId, WindowKey};
    use questdb::ingress::ProtocolVersion;
    use rtdash_shared::series::SeriesKey;
    use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec};
    use std::sync::Arc;

    fn output(sketch: &Sketch, state: bool) -> WindowOutput {
        WindowOutput {
            id: WindowId::default(),
            version: 1,
            key: Arc::new(WindowKey {
                series: SeriesKey::new(
                    "acme",
                    "checkout_latency",
                    [
                        ("region".to_owned(), Some("eu-west".to_owned())),
                        ("host".to_owned(), Some("host-1234".to_owned())),
                    ],
                ),
                start: 1_700_000_000_000,
                size_ms: 60_000,
            }),
            stats: sketch.stats(),
            revision: 0,
            is_final: true,
            late_count: 0,
            updated_at: 1_700_000_061_000,
            state: state.then(|| sketch.to_state()),
            live_state: false,
            tier: None,
            store: true,
            live: false,
        }
    }

    fn row_bytes(output: &WindowOutput) -> usize {
        let mut buffer = Buffer::new(ProtocolVersion::V2);
        append_row(&mut buffer, "metric_windows", output).unwrap();
        buffer.len()
    }

    /// ILP bytes of one row with and without its state, for the sketches a one-minute window
    /// of a series holds (BENCHMARKS.md quotes the table: `cargo test -p core-aggregator
    /// --lib ilp -- --nocapture`).
    #[test]
    fn a_row_carries_its_state_and_what_that_weighs() {
        println!("| window | row without state | row with state | state |");
        println!("|---|---|---|---|");
        for (name, spec, events) in [
            ("count only", SketchSpec::COUNT, 60),
            ("values, 5 events", SketchSpec::VALUES, 5),
            ("values, 60 events", SketchSpec::VALUES, 60),
            ("values, 1 000 events", SketchSpec::VALUES, 1_000),
            ("values + unique, 5 events", SketchSpec::ALL, 5),
            ("values + unique, 60 events", SketchSpec::ALL, 60),
            ("values + unique, 1 000 events", SketchSpec::ALL, 1_000),
        ] {
            let mut sketch = Sketch::new(spec);
            for i in 0..events as u64 {
                let value = ((i * 7_919) % 100_000) as f64 / 100.0;
                sketch.record(Some(value), Some(unique_hash(&(i % 500).to_le_bytes())));
            }
            let with = output(&sketch, true);
            let (bare, full) = (row_bytes(&output(&sketch, false)), row_bytes(&with));
            let state = with.state.as_ref().unwrap();
            println!("| {name} | {bare} | {full} | {} |", state.len());
            assert!(full > bare + state.len(), "{name}: the state is in the row");
        }
    }
}
