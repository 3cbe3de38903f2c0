//! Writing window rows the way the core aggregator does (ILP over HTTP, see `append_row` in
//! `core-aggregator/src/sink/questdb.rs`: the empty dimension set is an absent `dim_set`
//! symbol, which QuestDB stores as NULL), for tests of what reads them (the gateway).
//!
//! Rows built from a sketch ([`Row::from_sketch`]) carry what issue #15's contract adds: the
//! `state` column, `base64(Sketch::encode())` in the same ILP row as the numbers, and rows of
//! a rollup tier (a window of the tier's length, written to `<table>_<tier>`, see
//! [`tier_table`]).

use std::collections::BTreeMap;
use std::time::Duration;

use questdb::ingress::{Buffer, Sender, TimestampMicros};
use rtdash_shared::messages::WindowUpdate;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::{Sketch, Stats};
use serde_json::Value;

use crate::QuestDb;

/// The table of a rollup tier next to `table`: `<table>_1h` (the contract's naming).
pub fn tier_table(table: &str, window_ms: i64) -> String {
    gateway::query::tiers::tier_table(table, window_ms)
}

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
    /// The served statistics as written, when the row comes from a sketch (else derived
    /// from the fields above).
    pub stats: Option<Stats>,
    /// `base64(Sketch::encode())`.
    pub state: Option<String>,
    pub late_count: u64,
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
            stats: None,
            state: None,
            late_count: 0,
        }
    }

    /// A window of `window_ms` (the base window or a tier's) whose numbers are `sketch`'s
    /// statistics and whose `state` is the sketch, as the aggregator writes it.
    pub fn from_sketch(
        tenant: &str,
        metric: &str,
        start: i64,
        window_ms: i64,
        dims: &[(&str, Option<&str>)],
        sketch: &Sketch,
    ) -> Row {
        let stats = sketch.stats();
        let mut row = Row::new(tenant, metric, start, &[], stats.count);
        row.window_ms = window_ms;
        row.dims = dims
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect();
        row.sum = stats.sum;
        row.min = stats.min;
        row.max = stats.max;
        row.p99 = stats.p99;
        row.uniq = stats.unique;
        row.state = Some(sketch.to_state());
        row.stats = Some(stats);
        row
    }

    fn served(&self) -> Stats {
        self.stats.clone().unwrap_or_else(|| Stats {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            avg: match self.sum {
                Some(sum) if self.count > 0 => Some(sum / self.count as f64),
                _ => None,
            },
            p50: None,
            p90: None,
            p95: None,
            p99: self.p99,
            unique: self.uniq,
        })
    }

    pub fn values(mut self, sum: f64, min: f64, max: f64, p99: f64) -> Row {
        self.sum = Some(sum);
        self.min = Some(min);
        self.max = Some(max);
        self.p99 = Some(p99);
        self
    }

    /// Appends the row in the aggregator's ILP layout (same columns, same symbol handling;
    /// `state` in the same row when the row has one).
    pub fn append(&self, buffer: &mut Buffer, table: &str) -> questdb::Result<()> {
        let series = SeriesKey::new(self.tenant.clone(), self.metric.clone(), self.dims.clone());
        let dim_set = series.dim_set();
        let stats = self.served();
        let micros = |ms: i64| TimestampMicros::new(ms * 1000);
        buffer
            .table(table)?
            .symbol("tenant", series.tenant.as_str())?
            .symbol("metric", series.metric.as_str())?
            .symbol_opt("dim_set", (!dim_set.is_empty()).then_some(dim_set.as_str()))?
            .column_str("series", series.dims_json().as_str())?
            .column_ts("window_end", micros(self.start + self.window_ms))?
            .column_i64("count", stats.count as i64)?
            .column_f64_opt("sum", stats.sum)?
            .column_f64_opt("min", stats.min)?
            .column_f64_opt("max", stats.max)?
            .column_f64_opt("avg", stats.avg)?
            .column_f64_opt("p50", stats.p50)?
            .column_f64_opt("p90", stats.p90)?
            .column_f64_opt("p95", stats.p95)?
            .column_f64_opt("p99", stats.p99)?
            .column_i64_opt("uniq", stats.unique.map(|u| u as i64))?
            .column_i64("revision", i64::from(self.revision))?
            .column_bool("final", self.is_final)?
            .column_i64("late_count", self.late_count as i64)?
            .column_ts("updated_at", micros(self.start + self.window_ms + 1_000))?;
        if let Some(state) = &self.state {
            buffer.column_str("state", state.as_str())?;
        }
        buffer.at(micros(self.start))
    }

    /// The same window as a live update.
    pub fn update(&self, updated_at: i64) -> WindowUpdate {
        WindowUpdate {
            tenant_id: self.tenant.clone(),
            metric: self.metric.clone(),
            dimensions: self.dims.clone(),
            window_start: self.start,
            window_end: self.start + self.window_ms,
            stats: self.served(),
            revision: self.revision,
            is_final: self.is_final,
            late_count: self.late_count,
            updated_at,
            state: None,
        }
    }

    /// The same window as a live update with its `state` (the field the aggregators add to
    /// `WindowUpdate`), as JSON.
    pub fn live(&self, updated_at: i64) -> Value {
        let mut value = serde_json::to_value(self.update(updated_at)).expect("serializable");
        if let Some(state) = &self.state {
            value["state"] = Value::String(state.clone());
        }
        value
    }
}
