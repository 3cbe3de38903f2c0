//! A window as one ILP row of a windows table ([`crate::schema`]): the one place the row
//! layout is written, so the core aggregator, the benchmarks that seed history and the tests
//! that store windows cannot drift apart. Only with the `ilp` feature (it needs questdb-rs).

use crate::series::SeriesKey;
use crate::sketch::Stats;
use questdb::ingress::{Buffer, TimestampMicros};

/// One stored version of a window, as the row of the table it goes to (the base table or a
/// rollup tier's).
#[derive(Clone, Copy, Debug)]
pub struct WindowRow<'a> {
    /// Whose series.
    pub series: &'a SeriesKey,
    /// Window start (ms since the epoch).
    pub start: i64,
    /// Window end, exclusive (ms).
    pub end: i64,
    /// The served statistics.
    pub stats: &'a Stats,
    /// 0, then +1 per late correction.
    pub revision: u32,
    /// Whether the window is closed.
    pub is_final: bool,
    /// Late events folded in.
    pub late_count: u64,
    /// When this version was written (ms).
    pub updated_at: i64,
    /// The mergeable sketch ([`Sketch::to_state`](crate::sketch::Sketch::to_state)), if the
    /// row carries it.
    pub state: Option<&'a str>,
}

fn micros(ms: i64) -> TimestampMicros {
    TimestampMicros::new(ms.saturating_mul(1000))
}

fn long(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl WindowRow<'_> {
    /// Appends the row to `buffer` for `table`: the numbers and the state in one row, so the
    /// dedup upsert replaces them together; the total series (no dimensions) has no `dim_set`
    /// symbol, which QuestDB stores as NULL.
    pub fn append(&self, buffer: &mut Buffer, table: &str) -> questdb::Result<()> {
        let dim_set = self.series.dim_set();
        let stats = self.stats;
        buffer
            .table(table)?
            .symbol("tenant", self.series.tenant.as_str())?
            .symbol("metric", self.series.metric.as_str())?
            .symbol_opt("dim_set", (!dim_set.is_empty()).then_some(dim_set.as_str()))?
            .column_str("series", self.series.dims_json().as_str())?
            .column_ts("window_end", micros(self.end))?
            .column_i64("count", long(stats.count))?
            .column_f64_opt("sum", stats.sum)?
            .column_f64_opt("min", stats.min)?
            .column_f64_opt("max", stats.max)?
            .column_f64_opt("avg", stats.avg)?
            .column_f64_opt("p50", stats.p50)?
            .column_f64_opt("p90", stats.p90)?
            .column_f64_opt("p95", stats.p95)?
            .column_f64_opt("p99", stats.p99)?
            .column_i64_opt("uniq", stats.unique.map(long))?
            .column_i64("revision", i64::from(self.revision))?
            .column_bool("final", self.is_final)?
            .column_i64("late_count", long(self.late_count))?
            .column_ts("updated_at", micros(self.updated_at))?;
        if let Some(state) = self.state {
            buffer.column_str("state", state)?;
        }
        buffer.at(micros(self.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use questdb::ingress::ProtocolVersion;

    fn line(row: &WindowRow<'_>) -> String {
        let mut buffer = Buffer::new(ProtocolVersion::V1);
        row.append(&mut buffer, "metric_windows_1h").unwrap();
        String::from_utf8(buffer.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn a_row_holds_every_column_of_the_layout_and_the_total_has_no_dim_set() {
        let series = SeriesKey::new(
            "acme",
            "latency",
            [("region".to_owned(), Some("eu".to_owned()))],
        );
        let stats = Stats {
            count: 3,
            sum: Some(6.0),
            min: Some(1.0),
            max: Some(3.0),
            avg: Some(2.0),
            p50: None,
            p90: None,
            p95: None,
            p99: Some(3.0),
            unique: Some(2),
        };
        let row = WindowRow {
            series: &series,
            start: 3_600_000,
            end: 7_200_000,
            stats: &stats,
            revision: 1,
            is_final: true,
            late_count: 4,
            updated_at: 7_201_000,
            state: Some("AAE="),
        };
        assert_eq!(
            line(&row),
            "metric_windows_1h,tenant=acme,metric=latency,dim_set=region \
             series=\"{\\\"region\\\":\\\"eu\\\"}\",window_end=7200000000t,count=3i,sum=6.0,\
             min=1.0,max=3.0,avg=2.0,p99=3.0,uniq=2i,revision=1i,final=t,late_count=4i,\
             updated_at=7201000000t,state=\"AAE=\" 3600000000000\n"
        );
        let total = SeriesKey::new("acme", "latency", Vec::<(String, Option<String>)>::new());
        let row = WindowRow {
            series: &total,
            state: None,
            ..row
        };
        let text = line(&row);
        assert!(
            text.starts_with("metric_windows_1h,tenant=acme,metric=latency series=\"{}\","),
            "{text}"
        );
        assert!(!text.contains("state="), "no state column without a state");
    }
}
