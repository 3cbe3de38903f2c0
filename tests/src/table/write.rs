//! Writing window rows the way the core aggregator does (ILP over HTTP with the aggregator's
//! own row builder, `rtdash_shared::ilp::WindowRow`: the empty dimension set is an absent
//! `dim_set` symbol, which QuestDB stores as NULL), for tests of what reads them (the gateway).
//!
//! Rows built from a sketch ([`Row::from_sketch`]) carry what issue #15's contract adds: the
//! `state` column, `base64(Sketch::encode())` in the same ILP row as the numbers, and rows of
//! a rollup tier (a window of the tier's length, written to `<table>_<tier>`, see
//! [`tier_table`]).

use std::collections::BTreeMap;
use std::time::Duration;

use questdb::ingress::{Buffer, Sender};
use rtdash_shared::ilp::WindowRow;
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

    /// Appends the row in the aggregator's ILP layout ([`WindowRow`]: the row builder the
    /// aggregator writes with; `state` in the same row when the row has one).
    pub fn append(&self, buffer: &mut Buffer, table: &str) -> questdb::Result<()> {
        let series = SeriesKey::new(self.tenant.clone(), self.metric.clone(), self.dims.clone());
        let end = self.start + self.window_ms;
        WindowRow {
            series: &series,
            start: self.start,
            end,
            stats: &self.served(),
            revision: self.revision,
            is_final: self.is_final,
            late_count: self.late_count,
            updated_at: end + 1_000,
            state: self.state.as_deref(),
        }
        .append(buffer, table)
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
