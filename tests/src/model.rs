//! The exact-count model: the oracle the tests compare windows against. A test records every
//! value it sends in an [`Acc`] per series window and compares what the pipeline stored or
//! served: count, sum, min and max exactly (the tests' values add up exactly in f64), the
//! average to rounding ([`approx_eq`]), distinct counts within the HyperLogLog's error
//! ([`unique_within`]) and percentiles within the t-digest's rank error.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::table::{fetch_rows, StoredRow};
use crate::QuestDb;

/// Exact aggregates of one series window, computed by the test.
#[derive(Clone, Debug, Default)]
pub struct Acc {
    /// Every value, in the order the test sent them.
    pub values: Vec<f64>,
    /// Distinct values of the metric's unique-counted property.
    pub uniques: BTreeSet<String>,
    /// Events that arrived after the window closed (corrections).
    pub late: u64,
    /// Correction batches applied (each late request on a series is one correction).
    pub revision: u32,
}

impl Acc {
    /// Records one event's value and, if the metric counts one, its unique property.
    pub fn add(&mut self, value: f64, unique: Option<String>) {
        self.values.push(value);
        self.uniques.extend(unique);
    }

    /// Adds `other` (a coarser window, or a filter combining several series).
    pub fn merge(&mut self, other: &Acc) {
        self.values.extend_from_slice(&other.values);
        self.uniques.extend(other.uniques.iter().cloned());
        self.late += other.late;
        self.revision = self.revision.max(other.revision);
    }

    pub fn count(&self) -> u64 {
        self.values.len() as u64
    }

    /// The sum in the order the values were sent (the order the pipeline adds them does not
    /// matter: the tests' values add up exactly).
    pub fn sum(&self) -> f64 {
        self.values.iter().sum()
    }

    pub fn min(&self) -> Option<f64> {
        self.values.iter().copied().reduce(f64::min)
    }

    pub fn max(&self) -> Option<f64> {
        self.values.iter().copied().reduce(f64::max)
    }

    /// The value of statistic `stat` as the gateway names it (`count`, `sum`, `min`, `max`,
    /// `avg`, `unique`); panics on another.
    pub fn stat(&self, stat: &str) -> f64 {
        match stat {
            "count" => self.count() as f64,
            "sum" => self.sum(),
            "min" => self.min().unwrap_or(f64::INFINITY),
            "max" => self.max().unwrap_or(f64::NEG_INFINITY),
            "avg" => self.sum() / self.count() as f64,
            "unique" => self.uniques.len() as f64,
            other => panic!("no expectation for stat {other}"),
        }
    }
}

/// Whether `got` equals `want` to rounding: 1e-9 relative (absolute below 1).
pub fn approx_eq(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

/// Whether a distinct count `got` is within a HyperLogLog's error of `exact`: `relative`
/// of it, and at least `at_least` (the tests' windows are small: 2 %/1 or 3 %/2).
pub fn unique_within(got: f64, exact: f64, relative: f64, at_least: f64) -> bool {
    (got - exact).abs() <= (exact * relative).max(at_least)
}

/// Expected windows of one tenant and metric, by (series JSON, window start).
pub type Expected = BTreeMap<(String, i64), Acc>;

/// `expected` at a coarser window (a rollup tier): every window merged into the one of
/// `window_ms` holding it.
pub fn coarsen(expected: &Expected, window_ms: i64) -> Expected {
    let mut coarse = Expected::new();
    for ((series, start), acc) in expected {
        coarse
            .entry((series.clone(), start.div_euclid(window_ms) * window_ms))
            .or_default()
            .merge(acc);
    }
    coarse
}

/// Why `rows` do not (yet) match `expected` exactly, or `None` when they do: the same windows,
/// every one final, count/sum/min/max exact, avg to rounding, unique within HLL error (3 %,
/// at least 2), percentiles within t-digest rank error, late counts as expected, each window
/// `window_ms` long.
pub fn mismatch(
    rows: &BTreeMap<(String, i64), StoredRow>,
    expected: &Expected,
    window_ms: i64,
) -> Option<String> {
    let missing: Vec<_> = expected.keys().filter(|k| !rows.contains_key(*k)).collect();
    if !missing.is_empty() {
        return Some(format!(
            "{} of {} windows missing, e.g. {:?}",
            missing.len(),
            expected.len(),
            missing[0]
        ));
    }
    let extra: Vec<_> = rows.keys().filter(|k| !expected.contains_key(*k)).collect();
    if !extra.is_empty() {
        return Some(format!("unexpected rows, e.g. {:?}", extra[0]));
    }
    for (key, acc) in expected {
        let row = &rows[key];
        let mut values = acc.values.clone();
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let problem = if !row.is_final {
            Some("not final".to_owned())
        } else if row.count != acc.count() {
            Some(format!("count {} != {}", row.count, acc.count()))
        } else if row.sum != Some(acc.sum()) {
            Some(format!("sum {:?} != {}", row.sum, acc.sum()))
        } else if row.min != values.first().copied() || row.max != values.last().copied() {
            Some(format!(
                "min/max {:?}/{:?} != {:?}/{:?}",
                row.min,
                row.max,
                values.first(),
                values.last()
            ))
        } else if row
            .avg
            .is_none_or(|avg| !approx_eq(avg, acc.sum() / n as f64))
        {
            Some(format!("avg {:?}", row.avg))
        } else if row.late_count != acc.late as i64 {
            Some(format!("late_count {} != {}", row.late_count, acc.late))
        } else if row.window_end != key.1 + window_ms {
            Some(format!("window_end {}", row.window_end))
        } else {
            let distinct = acc.uniques.len() as f64;
            let uniq = row.uniq.unwrap_or(0) as f64;
            if !unique_within(uniq, distinct, 0.03, 2.0) {
                Some(format!("uniq {uniq} vs exact {distinct}"))
            } else {
                quantile_problem(&values, row)
            }
        };
        if let Some(problem) = problem {
            return Some(format!("window {key:?}: {problem} (row {row:?})"));
        }
    }
    None
}

/// Checks each percentile's rank against the exact values (t-digest error bound, generous for
/// the small windows the tests use).
fn quantile_problem(sorted: &[f64], row: &StoredRow) -> Option<String> {
    let n = sorted.len() as f64;
    for (q, value) in [
        (0.5, row.p50),
        (0.9, row.p90),
        (0.95, row.p95),
        (0.99, row.p99),
    ] {
        let Some(value) = value else {
            return Some(format!("p{} missing", q * 100.0));
        };
        if value < sorted[0] || value > sorted[sorted.len() - 1] {
            return Some(format!("p{} = {value} outside the values", q * 100.0));
        }
        let below = sorted.iter().filter(|v| **v < value).count() as f64;
        let at_or_below = sorted.iter().filter(|v| **v <= value).count() as f64;
        let tolerance = 0.05 + 1.0 / n;
        if below / n > q + tolerance || at_or_below / n < q - tolerance {
            return Some(format!(
                "p{} = {value}: rank {below}..{at_or_below} of {n}",
                q * 100.0
            ));
        }
    }
    None
}

/// Waits until the rows of `table` match `expected` exactly (see [`mismatch`]), polling every
/// 250 ms after the WAL is applied.
pub async fn wait_exact(
    db: &QuestDb,
    table: &str,
    expected: &Expected,
    window_ms: i64,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<(String, i64), StoredRow>> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = db
            .wait_wal_applied(table, Duration::from_secs(10))
            .and_then(|()| fetch_rows(db, table));
        let last = match attempt {
            Ok(rows) => match mismatch(&rows, expected, window_ms) {
                None => return Ok(rows),
                Some(problem) => problem,
            },
            Err(err) => format!("{err:#}"),
        };
        if Instant::now() >= deadline {
            bail!("QuestDB rows never matched the expected aggregates: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acc_computes_the_exact_statistics() {
        let mut acc = Acc::default();
        for (value, user) in [(2.5, "a"), (0.25, "b"), (7.0, "a")] {
            acc.add(value, Some(user.to_owned()));
        }
        assert_eq!(acc.count(), 3);
        assert_eq!((acc.min(), acc.max()), (Some(0.25), Some(7.0)));
        assert_eq!(acc.stat("sum"), 9.75);
        assert_eq!(acc.stat("avg"), 3.25);
        assert_eq!(acc.stat("unique"), 2.0);
        assert!(approx_eq(3.25 + 1e-12, 3.25) && !approx_eq(3.26, 3.25));
        assert!(unique_within(102.0, 100.0, 0.02, 1.0) && !unique_within(103.0, 100.0, 0.02, 1.0));
    }
}
