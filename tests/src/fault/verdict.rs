//! The check of a fault run: QuestDB's rows of [`FAULT_METRIC`] against the exact tally of
//! the accepted events, lost and duplicated events counted per window and series.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::Value;

use super::{Expected, Tally, FAULT_METRIC, FAULT_TENANT};
use crate::table::stored_rows;
use crate::time::format_rfc3339;
use crate::QuestDb;

/// The outcome of [`check_exact`].
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Events counted in the stored rows of the full dimension set.
    pub stored: u64,
    /// Accepted events missing from the stored counts (summed over windows and series).
    pub lost: u64,
    /// Stored events beyond the accepted ones (summed over windows and series).
    pub duplicated: u64,
    /// Windows expected.
    pub windows: usize,
    /// Rows (window, series) expected in the full dimension set.
    pub series_windows: usize,
    /// Whether every count, sum and total matched and every window was final.
    pub exact: bool,
    /// What did not match (empty when exact).
    pub detail: String,
}

impl Verdict {
    /// `FAULT-RESULT scenario=<name> sent=.. accepted=.. stored=.. lost=.. duplicated=..
    /// [key=value ...] pass|FAIL`.
    pub fn line(
        &self,
        scenario: &str,
        tally: &Tally,
        pass: bool,
        extra: &[(&str, String)],
    ) -> String {
        let mut line = format!(
            "FAULT-RESULT scenario={scenario} sent={} accepted={} stored={} lost={} duplicated={} \
             windows={} retried={} unknown={}",
            tally.sent,
            tally.accepted,
            self.stored,
            self.lost,
            self.duplicated,
            self.windows,
            tally.retried,
            tally.unknown + tally.given_up,
        );
        for (key, value) in extra {
            line += &format!(" {key}={value}");
        }
        line += if pass { " pass" } else { " FAIL" };
        line
    }
}

/// One stored row of [`FAULT_METRIC`].
#[derive(Clone, Debug)]
struct Row {
    count: u64,
    sum: f64,
    is_final: bool,
}

/// The rows of [`FAULT_METRIC`] in `table`: `(window start ms, k)` for the full set, `(window
/// start ms, "")` for the total.
fn fetch_rows(db: &QuestDb, table: &str) -> anyhow::Result<BTreeMap<(i64, String), Row>> {
    let filter = format!("tenant = '{FAULT_TENANT}' and metric = '{FAULT_METRIC}'");
    let mut rows = BTreeMap::new();
    for row in stored_rows(db, table, &filter)? {
        let key = match row.dim_set.as_deref().unwrap_or_default() {
            "" => String::new(),
            "k" => {
                let series: Value = serde_json::from_str(&row.series)
                    .with_context(|| format!("series of {row:?}"))?;
                series["k"].as_str().unwrap_or_default().to_owned()
            }
            other => bail!("unexpected dim_set {other:?} in {row:?}"),
        };
        rows.insert(
            (row.start, key),
            Row {
                count: row.count,
                sum: row.sum.unwrap_or(f64::NAN),
                is_final: row.is_final,
            },
        );
    }
    Ok(rows)
}

/// Compares `rows` with `expected`.
fn compare(rows: &BTreeMap<(i64, String), Row>, expected: &Expected) -> Verdict {
    let mut verdict = Verdict::default();
    let mut problems = Vec::new();
    let mut totals: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for ((start, k), (count, sum)) in expected {
        let total = totals.entry(*start).or_default();
        total.0 += count;
        total.1 += sum;
        let got = rows.get(&(*start, k.clone()));
        let got_count = got.map_or(0, |r| r.count);
        verdict.stored += got_count;
        verdict.lost += count.saturating_sub(got_count);
        verdict.duplicated += got_count.saturating_sub(*count);
        match got {
            None => problems.push(format!(
                "{} {k}: no row (want {count})",
                format_rfc3339(*start)
            )),
            Some(row) if row.count != *count || row.sum != *sum as f64 => problems.push(format!(
                "{} {k}: count {} sum {} (want {count} {sum})",
                format_rfc3339(*start),
                row.count,
                row.sum
            )),
            Some(row) if !row.is_final => {
                problems.push(format!("{} {k}: not final yet", format_rfc3339(*start)))
            }
            Some(_) => {}
        }
    }
    for ((start, k), row) in rows {
        if k.is_empty() {
            match totals.get(start) {
                Some((count, sum)) if row.count == *count && row.sum == *sum as f64 => {}
                Some((count, sum)) => problems.push(format!(
                    "{} total: count {} sum {} (want {count} {sum})",
                    format_rfc3339(*start),
                    row.count,
                    row.sum
                )),
                None => {
                    verdict.duplicated += row.count;
                    problems.push(format!("{} total: unexpected row", format_rfc3339(*start)));
                }
            }
        } else if !expected.contains_key(&(*start, k.clone())) {
            verdict.stored += row.count;
            verdict.duplicated += row.count;
            problems.push(format!(
                "{} {k}: unexpected row ({})",
                format_rfc3339(*start),
                row.count
            ));
        }
    }
    for start in totals.keys() {
        if !rows.contains_key(&(*start, String::new())) {
            problems.push(format!("{} total: no row", format_rfc3339(*start)));
        }
    }
    verdict.windows = totals.len();
    verdict.series_windows = expected.len();
    verdict.exact = problems.is_empty();
    let shown: Vec<String> = problems.iter().take(12).cloned().collect();
    verdict.detail = if problems.len() > shown.len() {
        format!(
            "{} (and {} more)",
            shown.join("; "),
            problems.len() - shown.len()
        )
    } else {
        shown.join("; ")
    };
    verdict
}

/// Reads [`FAULT_METRIC`]'s rows of `table` every 500 ms until every expected window and
/// series is stored, final, and equal in count and sum (and the per-window totals too), or
/// `timeout` passes; returns the last comparison.
pub fn check_exact(
    db: &QuestDb,
    table: &str,
    expected: &Expected,
    timeout: Duration,
) -> anyhow::Result<Verdict> {
    ensure!(!expected.is_empty(), "nothing was accepted");
    let deadline = Instant::now() + timeout;
    loop {
        let verdict = match fetch_rows(db, table) {
            Ok(rows) => compare(&rows, expected),
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Err(err) => return Err(err),
        };
        if verdict.exact || Instant::now() >= deadline {
            return Ok(verdict);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Prints the summary line, and fails (with the detail and the services' logs) unless the
/// verdict is exact, nothing was lost or duplicated and every batch was answered.
pub fn report(
    scenario: &str,
    tally: &Tally,
    verdict: &Verdict,
    extra: &[(&str, String)],
    logs: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let pass = verdict.exact
        && verdict.lost == 0
        && verdict.duplicated == 0
        && tally.unknown == 0
        && tally.given_up == 0
        && tally.accepted > 0;
    println!("{}", verdict.line(scenario, tally, pass, extra));
    if pass {
        return Ok(());
    }
    bail!(
        "{scenario}: not exact: {}; {} batch(es) unanswered, {} given up\n{}",
        verdict.detail,
        tally.unknown,
        tally.given_up,
        logs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_counts_lost_and_duplicated() {
        let mut expected = Expected::new();
        expected.insert((0, "k0".into()), (3, 6));
        expected.insert((0, "k1".into()), (2, 2));
        let row = |count: u64, sum: f64| Row {
            count,
            sum,
            is_final: true,
        };
        let mut rows = BTreeMap::new();
        rows.insert((0, "k0".to_owned()), row(3, 6.0));
        rows.insert((0, "k1".to_owned()), row(2, 2.0));
        rows.insert((0, String::new()), row(5, 8.0));
        let verdict = compare(&rows, &expected);
        assert!(verdict.exact, "{}", verdict.detail);
        assert_eq!(
            (verdict.stored, verdict.lost, verdict.duplicated),
            (5, 0, 0)
        );
        rows.insert((0, "k0".to_owned()), row(4, 7.0));
        rows.insert((0, "k1".to_owned()), row(1, 1.0));
        let verdict = compare(&rows, &expected);
        assert!(!verdict.exact);
        assert_eq!((verdict.lost, verdict.duplicated), (1, 1));
    }
}
