//! Reading the windows table back: every column the core aggregator writes, one
//! [`StoredRow`] per row.

use std::collections::BTreeMap;

use anyhow::bail;
use serde_json::Value;

use crate::QuestDb;

/// A window row read back from QuestDB.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRow {
    pub tenant: String,
    pub metric: String,
    /// The series' dimensions as JSON (`{}` for the total).
    pub series: String,
    /// Window start, Unix ms.
    pub start: i64,
    pub count: u64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub avg: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub uniq: Option<u64>,
    /// -1 when absent.
    pub revision: i64,
    pub is_final: bool,
    /// -1 when absent.
    pub late_count: i64,
    /// Window end, Unix ms.
    pub window_end: i64,
    /// The dimension names, comma-separated; `None` (NULL) for the total.
    pub dim_set: Option<String>,
}

/// The rows of `table` matching the SQL condition `filter`, in QuestDB's order.
pub fn stored_rows(db: &QuestDb, table: &str, filter: &str) -> anyhow::Result<Vec<StoredRow>> {
    let answer = db.exec(&format!(
        "select tenant, metric, series, cast(ts as long), count, sum, min, max, avg, \
         p50, p90, p95, p99, uniq, revision, final, late_count, cast(window_end as long), \
         dim_set from '{table}' where {filter}"
    ))?;
    let Some(dataset) = answer["dataset"].as_array() else {
        bail!("no dataset in {answer}");
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let f = |v: &Value| v.as_f64();
    Ok(dataset
        .iter()
        .map(|row| StoredRow {
            tenant: text(&row[0]),
            metric: text(&row[1]),
            series: text(&row[2]),
            start: row[3].as_i64().unwrap_or_default() / 1000,
            count: row[4].as_u64().unwrap_or_default(),
            sum: f(&row[5]),
            min: f(&row[6]),
            max: f(&row[7]),
            avg: f(&row[8]),
            p50: f(&row[9]),
            p90: f(&row[10]),
            p95: f(&row[11]),
            p99: f(&row[12]),
            uniq: row[13].as_u64(),
            revision: row[14].as_i64().unwrap_or(-1),
            is_final: row[15].as_bool().unwrap_or(false),
            late_count: row[16].as_i64().unwrap_or(-1),
            window_end: row[17].as_i64().unwrap_or_default() / 1000,
            dim_set: row[18].as_str().map(str::to_owned),
        })
        .collect())
}

/// Every row of `table` (one tenant and metric), by (series JSON, window start ms).
pub fn fetch_rows(db: &QuestDb, table: &str) -> anyhow::Result<BTreeMap<(String, i64), StoredRow>> {
    fetch_rows_where(db, table, "true")
}

/// The rows of `table` matching the SQL condition `filter` (one tenant and metric), by
/// (series JSON, window start ms); two rows for one key are an error.
pub fn fetch_rows_where(
    db: &QuestDb,
    table: &str,
    filter: &str,
) -> anyhow::Result<BTreeMap<(String, i64), StoredRow>> {
    let mut rows = BTreeMap::new();
    for row in stored_rows(db, table, filter)? {
        let key = (row.series.clone(), row.start);
        if rows.insert(key.clone(), row).is_some() {
            bail!("duplicate row for {key:?} (DEDUP UPSERT KEYS not in effect?)");
        }
    }
    Ok(rows)
}

/// The `state` column of every row of `table` (one tenant and metric), by (series JSON,
/// window start ms): the window's mergeable sketch as text, `None` where it is null.
pub fn fetch_states(
    db: &QuestDb,
    table: &str,
) -> anyhow::Result<BTreeMap<(String, i64), Option<String>>> {
    let answer = db.exec(&format!(
        "select series, cast(ts as long), state from '{table}'"
    ))?;
    let Some(dataset) = answer["dataset"].as_array() else {
        bail!("no dataset in {answer}");
    };
    Ok(dataset
        .iter()
        .map(|row| {
            let key = (
                row[0].as_str().unwrap_or_default().to_owned(),
                row[1].as_i64().unwrap_or_default() / 1000,
            );
            (key, row[2].as_str().map(str::to_owned))
        })
        .collect())
}
