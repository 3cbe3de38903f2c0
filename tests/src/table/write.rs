//! Writing window rows the way the core aggregator does (ILP over HTTP, see `append_row` in
//! `core-aggregator/src/sink/questdb.rs`: the empty dimension set is an absent `dim_set`
//! symbol, which QuestDB stores as NULL), for tests of what reads them (the gateway).

use std::collections::BTreeMap;
use std::time::Duration;

use questdb::ingress::{Buffer, Sender, TimestampMicros};
use rtdash_shared::messages::WindowUpdate;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::Stats;

use crate::QuestDb;

/// Inserts `rows` into `table` of `db` and waits (30 s at most) until they are visible.
pub fn insert_rows(db: &QuestDb, table: &str, rows: &[Row]) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sender = Sender::from_conf(db.ilp_http_conf())?;
    let mut buffer = sender.new_buffer();
    for row in rows {
        row.append(&mut buffer, table)?;
    }
    sender.flush(&mut buffer)?;
    db.wait_wal_applied(table, Duration::from_secs(30))
}

/// One metric window to store, the way the core aggregator writes it.
#[derive(Clone, Debug)]
pub struct Row {
    pub start: i64,
    pub window_ms: i64,
    pub tenant: String,
    pub metric: String,
    pub dims: BTreeMap<String, Option<String>>,
    pub count: u64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub p99: Option<f64>,
    pub uniq: Option<u64>,
    pub revision: u32,
    pub is_final: bool,
}

impl Row {
    pub fn new(tenant: &str, metric: &str, start: i64, dims: &[(&str, &str)], count: u64) -> Row {
        Row {
            start,
            window_ms: 60_000,
            tenant: tenant.into(),
            metric: metric.into(),
            dims: dims
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
            count,
            sum: None,
            min: None,
            max: None,
            p99: None,
            uniq: None,
            revision: 0,
            is_final: true,
        }
    }

    pub fn values(mut self, sum: f64, min: f64, max: f64, p99: f64) -> Row {
        self.sum = Some(sum);
        self.min = Some(min);
        self.max = Some(max);
        self.p99 = Some(p99);
        self
    }

    /// Appends the row in the aggregator's ILP layout (same columns, same symbol handling).
    pub fn append(&self, buffer: &mut Buffer, table: &str) -> questdb::Result<()> {
        let series = SeriesKey::new(self.tenant.clone(), self.metric.clone(), self.dims.clone());
        let dim_set = series.dim_set();
        let avg = match self.sum {
            Some(sum) if self.count > 0 => Some(sum / self.count as f64),
            _ => None,
        };
        let micros = |ms: i64| TimestampMicros::new(ms * 1000);
        buffer
            .table(table)?
            .symbol("tenant", series.tenant.as_str())?
            .symbol("metric", series.metric.as_str())?
            .symbol_opt("dim_set", (!dim_set.is_empty()).then_some(dim_set.as_str()))?
            .column_str("series", series.dims_json().as_str())?
            .column_ts("window_end", micros(self.start + self.window_ms))?
            .column_i64("count", self.count as i64)?
            .column_f64_opt("sum", self.sum)?
            .column_f64_opt("min", self.min)?
            .column_f64_opt("max", self.max)?
            .column_f64_opt("avg", avg)?
            .column_f64_opt("p50", None)?
            .column_f64_opt("p90", None)?
            .column_f64_opt("p95", None)?
            .column_f64_opt("p99", self.p99)?
            .column_i64_opt("uniq", self.uniq.map(|u| u as i64))?
            .column_i64("revision", i64::from(self.revision))?
            .column_bool("final", self.is_final)?
            .column_i64("late_count", 0)?
            .column_ts("updated_at", micros(self.start + self.window_ms + 1_000))?
            .at(micros(self.start))
    }

    /// The same window as a live update.
    pub fn update(&self, updated_at: i64) -> WindowUpdate {
        WindowUpdate {
            tenant_id: self.tenant.clone(),
            metric: self.metric.clone(),
            dimensions: self.dims.clone(),
            window_start: self.start,
            window_end: self.start + self.window_ms,
            stats: Stats {
                count: self.count,
                sum: self.sum,
                min: self.min,
                max: self.max,
                avg: self.sum.map(|s| s / self.count.max(1) as f64),
                p50: None,
                p90: None,
                p95: None,
                p99: self.p99,
                unique: self.uniq,
            },
            revision: self.revision,
            is_final: self.is_final,
            late_count: 0,
            updated_at,
            state: None,
        }
    }
}
