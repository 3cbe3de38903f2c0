//! The exact oracle of the soak: what every accepted event contributes to its window and
//! series, and the check of QuestDB's rows against it.
//!
//! Values are small integers (`v` in 1..=[`MAX_VALUE`], `u` one of [`UNIQUES`]), so a
//! window's aggregates are kept exactly in a few hundred bytes: a histogram of `v` (count,
//! sum, min, max and the rank of any percentile follow from it) and a bit set of `u`.
//!
//! A request whose answer never came (the agent was killed while answering) was taken either
//! entirely or not at all; its events all fall in one window. The check resolves each such
//! window by finding the subset of its unknown requests that makes every stored count and
//! sum exact; a window no subset explains counts as lost or duplicated.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use serde_json::Value;

use super::{MAX_VALUE, METRIC, TENANT, UNIQUES};
use crate::model::unique_within;
use crate::table::{stored_rows, StoredRow};
use crate::time::format_rfc3339;
use crate::QuestDb;

/// `(window start ms, k)`; `k` is empty for the window's total series.
pub type CellKey = (i64, String);

/// Exact aggregates of one window of one series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// Events.
    pub count: u64,
    /// Sum of `v`.
    pub sum: u64,
    /// `hist[v - 1]`: events with value `v`.
    pub hist: Vec<u64>,
    /// Bit `i`: `u<i>` was seen.
    pub uniques: u64,
}

impl Default for Cell {
    fn default() -> Self {
        Self {
            count: 0,
            sum: 0,
            hist: vec![0; MAX_VALUE as usize],
            uniques: 0,
        }
    }
}

impl Cell {
    /// Records one event with value `v` (1..=[`MAX_VALUE`]) and unique id `u` (< [`UNIQUES`]).
    pub fn add(&mut self, v: u64, u: u64) {
        debug_assert!((1..=MAX_VALUE).contains(&v) && u < UNIQUES);
        self.count += 1;
        self.sum += v;
        self.hist[(v - 1) as usize] += 1;
        self.uniques |= 1 << u;
    }

    /// Adds `other`.
    pub fn merge(&mut self, other: &Cell) {
        self.count += other.count;
        self.sum += other.sum;
        for (mine, theirs) in self.hist.iter_mut().zip(&other.hist) {
            *mine += theirs;
        }
        self.uniques |= other.uniques;
    }

    /// Smallest value.
    pub fn min(&self) -> Option<f64> {
        self.hist
            .iter()
            .position(|&n| n > 0)
            .map(|i| (i + 1) as f64)
    }

    /// Largest value.
    pub fn max(&self) -> Option<f64> {
        self.hist
            .iter()
            .rposition(|&n| n > 0)
            .map(|i| (i + 1) as f64)
    }

    /// Distinct `u`.
    pub fn distinct(&self) -> u64 {
        u64::from(self.uniques.count_ones())
    }

    /// Why `row` does not show these aggregates, or `None`: final, count, sum, min and max
    /// exact, the distinct count within HyperLogLog error (3 %, at least 2), each percentile
    /// within the t-digest's rank error (5 % + 1/n).
    pub fn mismatch(&self, row: &StoredRow) -> Option<String> {
        if !row.is_final {
            return Some("not final".to_owned());
        }
        if row.count != self.count || row.sum != Some(self.sum as f64) {
            return Some(format!(
                "count {} sum {:?} (want {} {})",
                row.count, row.sum, self.count, self.sum
            ));
        }
        if row.min != self.min() || row.max != self.max() {
            return Some(format!(
                "min/max {:?}/{:?} (want {:?}/{:?})",
                row.min,
                row.max,
                self.min(),
                self.max()
            ));
        }
        let uniq = row.uniq.unwrap_or(0) as f64;
        if !unique_within(uniq, self.distinct() as f64, 0.03, 2.0) {
            return Some(format!("uniq {uniq} (exact {})", self.distinct()));
        }
        self.quantile_problem(row)
    }

    fn quantile_problem(&self, row: &StoredRow) -> Option<String> {
        let n = self.count as f64;
        for (q, value) in [
            (0.5, row.p50),
            (0.9, row.p90),
            (0.95, row.p95),
            (0.99, row.p99),
        ] {
            let Some(value) = value else {
                return Some(format!("p{} missing", q * 100.0));
            };
            let (mut below, mut at_or_below) = (0u64, 0u64);
            for (i, &events) in self.hist.iter().enumerate() {
                let v = (i + 1) as f64;
                if v < value {
                    below += events;
                }
                if v <= value {
                    at_or_below += events;
                }
            }
            let tolerance = 0.05 + 1.0 / n;
            let in_range = self.min().is_some_and(|min| value >= min)
                && self.max().is_some_and(|max| value <= max);
            if !in_range
                || below as f64 / n > q + tolerance
                || (at_or_below as f64) / n < q - tolerance
            {
                return Some(format!(
                    "p{} = {value}: rank {below}..{at_or_below} of {n}",
                    q * 100.0
                ));
            }
        }
        None
    }
}

/// A request whose outcome is unknown: what it would have added, all in `window`.
#[derive(Clone, Debug)]
pub struct Unknown {
    /// Its window start.
    pub window: i64,
    /// Its events per `k`.
    pub cells: BTreeMap<String, Cell>,
}

/// The outcome of [`check`].
#[derive(Clone, Debug, Default)]
pub struct OracleCheck {
    /// Windows expected.
    pub windows: usize,
    /// (window, series) cells expected, totals included.
    pub cells: usize,
    /// Events expected in the series of `k` (acknowledged, plus unknown ones found stored).
    pub expected: u64,
    /// Events stored in the series of `k`.
    pub stored: u64,
    /// Expected events missing from the stored counts.
    pub lost: u64,
    /// Stored events beyond the expected ones.
    pub duplicated: u64,
    /// Requests of unknown outcome found stored entirely.
    pub unknown_taken: usize,
    /// Requests of unknown outcome found not stored at all.
    pub unknown_not_taken: usize,
    /// Whether every cell matched (and was final).
    pub exact: bool,
    /// What did not match (at most 12 problems).
    pub detail: String,
}

/// Most unknown requests in one window the check tries every subset of.
const MAX_UNKNOWN_PER_WINDOW: usize = 12;

/// The soak metric's rows of `table`, by cell.
pub fn fetch(db: &QuestDb, table: &str) -> anyhow::Result<BTreeMap<CellKey, StoredRow>> {
    let filter = format!("tenant = '{TENANT}' and metric = '{METRIC}'");
    let mut rows = BTreeMap::new();
    for row in stored_rows(db, table, &filter)? {
        let k = match row.dim_set.as_deref().unwrap_or_default() {
            "" => String::new(),
            "k" => {
                let series: Value = serde_json::from_str(&row.series)
                    .with_context(|| format!("series of {row:?}"))?;
                series["k"].as_str().unwrap_or_default().to_owned()
            }
            other => bail!("unexpected dim_set {other:?} in {row:?}"),
        };
        let start = row.start;
        if rows.insert((start, k.clone()), row).is_some() {
            bail!("two rows for window {} k {k:?}", format_rfc3339(start));
        }
    }
    Ok(rows)
}

/// Compares `rows` with the acknowledged events (`certain`) and the requests of unknown
/// outcome (see the module docs).
pub fn check(
    rows: &BTreeMap<CellKey, StoredRow>,
    certain: &BTreeMap<CellKey, Cell>,
    unknown: &[Unknown],
) -> OracleCheck {
    let mut by_window: BTreeMap<i64, Vec<&Unknown>> = BTreeMap::new();
    for request in unknown {
        by_window.entry(request.window).or_default().push(request);
    }
    let mut result = OracleCheck::default();
    let mut expected = certain.clone();
    for (window, requests) in &by_window {
        let taken = resolve(*window, requests, rows, certain);
        result.unknown_taken += taken.len();
        result.unknown_not_taken += requests.len() - taken.len();
        for request in taken {
            for (k, cell) in &request.cells {
                expected
                    .entry((*window, k.clone()))
                    .or_default()
                    .merge(cell);
            }
        }
    }
    // Totals per window.
    let mut totals: BTreeMap<i64, Cell> = BTreeMap::new();
    for ((window, _), cell) in &expected {
        totals.entry(*window).or_default().merge(cell);
    }
    let mut problems = Vec::new();
    for ((window, k), cell) in &expected {
        let row = rows.get(&(*window, k.clone()));
        let got = row.map_or(0, |r| r.count);
        result.expected += cell.count;
        result.stored += got;
        result.lost += cell.count.saturating_sub(got);
        result.duplicated += got.saturating_sub(cell.count);
        match row {
            None => problems.push(format!("{} {k}: no row", format_rfc3339(*window))),
            Some(row) => {
                if let Some(problem) = cell.mismatch(row) {
                    problems.push(format!("{} {k}: {problem}", format_rfc3339(*window)));
                }
            }
        }
    }
    for (window, cell) in &totals {
        match rows.get(&(*window, String::new())) {
            None => problems.push(format!("{} total: no row", format_rfc3339(*window))),
            Some(row) => {
                if let Some(problem) = cell.mismatch(row) {
                    problems.push(format!("{} total: {problem}", format_rfc3339(*window)));
                }
            }
        }
    }
    for ((window, k), row) in rows {
        let known = if k.is_empty() {
            totals.contains_key(window)
        } else {
            expected.contains_key(&(*window, k.clone()))
        };
        if !known {
            if !k.is_empty() {
                result.stored += row.count;
                result.duplicated += row.count;
            }
            problems.push(format!(
                "{} {k}: unexpected row ({} events)",
                format_rfc3339(*window),
                row.count
            ));
        }
    }
    result.windows = totals.len();
    result.cells = expected.len() + totals.len();
    result.exact = problems.is_empty();
    let shown: Vec<String> = problems.iter().take(12).cloned().collect();
    result.detail = if problems.len() > shown.len() {
        format!(
            "{} (and {} more)",
            shown.join("; "),
            problems.len() - shown.len()
        )
    } else {
        shown.join("; ")
    };
    result
}

/// The unknown requests of `window` that were taken: the subset that makes every stored
/// count and sum of the window exact (the empty set when none does, or when there are too
/// many to try).
fn resolve<'a>(
    window: i64,
    requests: &[&'a Unknown],
    rows: &BTreeMap<CellKey, StoredRow>,
    certain: &BTreeMap<CellKey, Cell>,
) -> Vec<&'a Unknown> {
    if requests.len() > MAX_UNKNOWN_PER_WINDOW {
        return Vec::new();
    }
    let keys: BTreeSet<String> = requests
        .iter()
        .flat_map(|r| r.cells.keys().cloned())
        .chain(
            rows.range((window, String::new())..(window + 1, String::new()))
                .map(|((_, k), _)| k.clone())
                .filter(|k| !k.is_empty()),
        )
        .collect();
    'subsets: for mask in 0u32..(1 << requests.len()) {
        for k in &keys {
            let mut want = certain
                .get(&(window, k.clone()))
                .map_or((0, 0), |c| (c.count, c.sum));
            for (i, request) in requests.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    if let Some(cell) = request.cells.get(k) {
                        want.0 += cell.count;
                        want.1 += cell.sum;
                    }
                }
            }
            let got = rows
                .get(&(window, k.clone()))
                .map_or((0, 0), |r| (r.count, r.sum.unwrap_or(0.0) as u64));
            if got != want {
                continue 'subsets;
            }
        }
        return requests
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, r)| *r)
            .collect();
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cell: &Cell) -> StoredRow {
        StoredRow {
            tenant: TENANT.into(),
            metric: METRIC.into(),
            series: "{}".into(),
            start: 0,
            count: cell.count,
            sum: Some(cell.sum as f64),
            min: cell.min(),
            max: cell.max(),
            avg: None,
            p50: cell.min(),
            p90: cell.max(),
            p95: cell.max(),
            p99: cell.max(),
            uniq: Some(cell.distinct()),
            revision: 0,
            is_final: true,
            late_count: 0,
            window_end: 2_000,
            dim_set: Some("k".into()),
        }
    }

    fn cell(values: &[u64]) -> Cell {
        let mut cell = Cell::default();
        for &v in values {
            cell.add(v, v % UNIQUES);
        }
        cell
    }

    #[test]
    fn unknown_requests_resolve_to_the_subset_stored() {
        let certain_cell = cell(&[1, 1, 1]);
        let certain: BTreeMap<CellKey, Cell> = [((0, "k0".to_owned()), certain_cell.clone())]
            .into_iter()
            .collect();
        let taken = Unknown {
            window: 0,
            cells: [("k0".to_owned(), cell(&[1, 1]))].into_iter().collect(),
        };
        let not_taken = Unknown {
            window: 0,
            cells: [("k0".to_owned(), cell(&[1]))].into_iter().collect(),
        };
        let mut stored = certain_cell.clone();
        stored.merge(&taken.cells["k0"]);
        let rows: BTreeMap<CellKey, StoredRow> = [
            ((0, "k0".to_owned()), row(&stored)),
            ((0, String::new()), row(&stored)),
        ]
        .into_iter()
        .collect();
        let result = check(&rows, &certain, &[taken, not_taken]);
        assert!(result.exact, "{}", result.detail);
        assert_eq!((result.unknown_taken, result.unknown_not_taken), (1, 1));
        assert_eq!((result.lost, result.duplicated), (0, 0));

        // One event short: no subset explains it.
        let mut short = stored.clone();
        short.count -= 1;
        short.sum -= 1;
        short.hist[0] -= 1;
        let rows: BTreeMap<CellKey, StoredRow> = [
            ((0, "k0".to_owned()), row(&short)),
            ((0, String::new()), row(&short)),
        ]
        .into_iter()
        .collect();
        let result = check(&rows, &certain, &[]);
        assert!(!result.exact);
        assert_eq!((result.lost, result.duplicated), (0, 1));
    }

    #[test]
    fn a_cell_checks_every_statistic() {
        let c = cell(&[3, 5, 7]);
        assert_eq!((c.min(), c.max(), c.distinct()), (Some(3.0), Some(7.0), 3));
        assert!(c.mismatch(&row(&c)).is_none());
        let mut wrong = row(&c);
        wrong.max = Some(8.0);
        assert!(c.mismatch(&wrong).is_some());
        let mut open = row(&c);
        open.is_final = false;
        assert!(c.mismatch(&open).is_some());
    }
}
