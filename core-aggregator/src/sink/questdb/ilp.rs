//! A window version as one ILP row of the windows table.

use crate::state::WindowOutput;
use questdb::ingress::{Buffer, TimestampMicros};

/// Appends one window row in the table's column layout (see [`rtdash_shared::schema`]).
pub fn append_row(buffer: &mut Buffer, table: &str, output: &WindowOutput) -> questdb::Result<()> {
    let series = &output.key.series;
    let stats = &output.stats;
    let dim_set = series.dim_set();
    buffer
        .table(table)?
        .symbol("tenant", series.tenant.as_str())?
        .symbol("metric", series.metric.as_str())?
        .symbol_opt("dim_set", (!dim_set.is_empty()).then_some(dim_set.as_str()))?
        .column_str("series", series.dims_json().as_str())?
        .column_ts(
            "window_end",
            TimestampMicros::new(output.key.end().saturating_mul(1000)),
        )?
        .column_i64("count", i64::try_from(stats.count).unwrap_or(i64::MAX))?
        .column_f64_opt("sum", stats.sum)?
        .column_f64_opt("min", stats.min)?
        .column_f64_opt("max", stats.max)?
        .column_f64_opt("avg", stats.avg)?
        .column_f64_opt("p50", stats.p50)?
        .column_f64_opt("p90", stats.p90)?
        .column_f64_opt("p95", stats.p95)?
        .column_f64_opt("p99", stats.p99)?
        .column_i64_opt(
            "uniq",
            stats.unique.map(|u| i64::try_from(u).unwrap_or(i64::MAX)),
        )?
        .column_i64("revision", i64::from(output.revision))?
        .column_bool("final", output.is_final)?
        .column_i64(
            "late_count",
            i64::try_from(output.late_count).unwrap_or(i64::MAX),
        )?
        .column_ts(
            "updated_at",
            TimestampMicros::new(output.updated_at.saturating_mul(1000)),
        )?
        .at(TimestampMicros::new(output.key.start.saturating_mul(1000)))
}
