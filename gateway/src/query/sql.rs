//! The SQL of the queries the gateway sends to QuestDB, and the decoding of their rows.

use super::derive::WindowRow;
use super::plan::QueryPlan;
use super::QueryError;
use crate::metrics as names;
use rtdash_runtime::error_chain::ErrorChain;
use rtdash_shared::sketch::{Sketch, Stats};
use rtdash_shared::time::UnixMillis;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_postgres::types::ToSql;

/// The row columns, in the order [`row_from_pg`] reads them (aliased so an outer query can
/// name them).
const ROW_COLUMNS: &str = "cast(ts AS LONG) ts_us, cast(window_end AS LONG) end_us, series, \
     count, sum, min, max, avg, p50, p90, p95, p99, uniq, revision, final, late_count, \
     cast(updated_at AS LONG) updated_us";
/// The same columns read from a subquery of [`ROW_COLUMNS`].
const OUTER_COLUMNS: &str = "ts_us, end_us, series, count, sum, min, max, avg, p50, p90, p95, \
     p99, uniq, revision, final, late_count, updated_us";
/// Index of the `state` column, read after [`ROW_COLUMNS`] when a plan merges states.
const STATE_INDEX: usize = 17;

fn micros_param(ms: UnixMillis) -> time::PrimitiveDateTime {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    time::PrimitiveDateTime::new(at.date(), at.time())
}

/// The rows of one dimension set of a tenant's metric whose windows start in `[from, to)`.
#[derive(Clone, Copy, Debug)]
pub struct SeriesScope<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The metric's name.
    pub metric: &'a str,
    /// The dimension set (names joined by `,`, empty for the total).
    pub dim_set: &'a str,
    /// Start of the range (inclusive).
    pub from: UnixMillis,
    /// End of the range (exclusive).
    pub to: UnixMillis,
}

/// A bind parameter of a [`RowQuery`].
#[derive(Debug)]
enum Param {
    Text(String),
    Time(time::PrimitiveDateTime),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(text) => text,
            Param::Time(at) => at,
        }
    }
}

/// A statement with its parameters.
///
/// Why the SQL looks the way it does (QuestDB 9, measured on a table holding every tenant's
/// windows, see `BENCHMARKS.md`):
///
/// - `ts >= $a AND ts < $b` on the designated timestamp: an interval scan of the range only
///   (bind parameters are fine here: QuestDB evaluates them once per execution).
/// - Symbol columns (`tenant`, `metric`, `dim_set`) are compared with **literals**: QuestDB
///   resolves a literal to the symbol's integer key once and JIT-compiles the filter, while a
///   bind parameter is compared as text on every row and disables the JIT (about 30 times
///   slower on 3 million rows). Only text made of identifier characters is inlined (tenants,
///   metric and dimension names are validated identifiers); anything else stays bound.
/// - The empty dimension set (the total) is `dim_set IS NULL`: the aggregator writes it with
///   ILP, where an absent symbol is stored as NULL (and `= ''` would not be JIT-compiled).
/// - The `series` filter (a VARCHAR, never JIT-compiled) is applied outside a subquery that
///   has a `LIMIT`, so QuestDB does not merge it into the JIT-compiled symbol filter: the
///   text comparison then only runs on the rows of the wanted (tenant, metric, dimension set).
///   The total has one series only, so it needs no series filter at all.
#[derive(Debug)]
pub(super) struct RowQuery {
    /// The statement.
    pub(super) sql: String,
    params: Vec<Param>,
}

impl RowQuery {
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    /// `column = 'value'` (or `IS NULL` for an empty value), binding unusual text.
    fn symbol_eq(&mut self, column: &str, value: &str) -> String {
        if value.is_empty() {
            format!("{column} IS NULL")
        } else if literal_safe(value) {
            format!("{column} = '{value}'")
        } else {
            let param = self.bind(Param::Text(value.to_owned()));
            format!("{column} = {param}")
        }
    }

    /// `WHERE` conditions selecting the rows of `scope`.
    fn scope(&mut self, scope: &SeriesScope<'_>) -> String {
        let tenant = self.symbol_eq("tenant", scope.tenant);
        let metric = self.symbol_eq("metric", scope.metric);
        let dim_set = self.symbol_eq("dim_set", scope.dim_set);
        let from = self.bind(Param::Time(micros_param(scope.from)));
        let to = self.bind(Param::Time(micros_param(scope.to)));
        format!("{tenant} AND {metric} AND {dim_set} AND ts >= {from} AND ts < {to}")
    }

    /// The statement `sql` makes of the `WHERE` conditions selecting `scope`.
    fn scoped(scope: &SeriesScope<'_>, sql: impl FnOnce(&str) -> String) -> Self {
        let mut query = RowQuery {
            sql: String::new(),
            params: Vec::new(),
        };
        let conditions = query.scope(scope);
        query.sql = sql(&conditions);
        query
    }

    /// The rows `plan` reads in `[from, to)` from `table` (its source's), with their
    /// `state` when `with_state`.
    pub(super) fn rows(
        table: &str,
        plan: &QueryPlan,
        from: UnixMillis,
        to: UnixMillis,
        with_state: bool,
    ) -> Self {
        let mut query = RowQuery {
            sql: String::new(),
            params: Vec::new(),
        };
        let scope = query.scope(&SeriesScope {
            tenant: &plan.tenant,
            metric: &plan.metric,
            dim_set: &plan.dim_set,
            from,
            to,
        });
        let (columns, outer) = if with_state {
            (
                format!("{ROW_COLUMNS}, state"),
                format!("{OUTER_COLUMNS}, state"),
            )
        } else {
            (ROW_COLUMNS.to_owned(), OUTER_COLUMNS.to_owned())
        };
        let inner = format!("SELECT {columns} FROM {table} WHERE {scope}");
        let mut series_filters = Vec::new();
        match &plan.exact_series {
            // The empty set has one series (`{}`); `derive` checks it anyway.
            Some(_) if plan.dim_set.is_empty() => {}
            Some(series) => {
                let param = query.bind(Param::Text(series.clone()));
                series_filters.push(format!("series = {param}"));
            }
            None => {
                // Pre-filter on the `"name":"value"` fragments of the canonical JSON (bound,
                // so no escaping issue); the exact check happens in `derive`.
                for (name, value) in &plan.filter {
                    let mut one = BTreeMap::new();
                    one.insert(name.as_str(), value.as_str());
                    let json = serde_json::to_string(&one).unwrap_or_default();
                    let fragment = json
                        .trim_start_matches('{')
                        .trim_end_matches('}')
                        .to_owned();
                    let param = query.bind(Param::Text(fragment));
                    series_filters.push(format!("strpos(series, {param}) > 0"));
                }
            }
        }
        query.sql = if series_filters.is_empty() {
            inner
        } else {
            format!(
                "SELECT {outer} FROM ({inner} LIMIT {}) WHERE {}",
                i64::MAX,
                series_filters.join(" AND ")
            )
        };
        query
    }

    /// Distinct series of `scope`, at most `limit`.
    pub(super) fn distinct_series(table: &str, scope: &SeriesScope<'_>, limit: usize) -> Self {
        Self::scoped(scope, |conditions| {
            format!("SELECT DISTINCT series FROM {table} WHERE {conditions} LIMIT {limit}")
        })
    }

    /// Per series of `scope`: the sums of `count` and of `sum`, at most `limit` series.
    pub(super) fn series_totals(table: &str, scope: &SeriesScope<'_>, limit: usize) -> Self {
        Self::scoped(scope, |conditions| {
            format!(
                "SELECT series, sum(count) total_count, sum(sum) total_sum FROM {table} \
                 WHERE {conditions} GROUP BY series LIMIT {limit}"
            )
        })
    }

    /// The bind parameters, in order.
    pub(super) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(Param::as_sql).collect()
    }
}

/// `CREATE TABLE IF NOT EXISTS` for a tier's table: the base table's columns plus `state`,
/// partitioned by day (by month for tiers of a day or more), the same dedup keys. The
/// aggregators create tier tables too (with their TTL); this lets a gateway that starts
/// first answer empty results instead of errors.
pub(super) fn tier_table_sql(table: &str, window_ms: i64) -> String {
    let partition = if window_ms >= 86_400_000 {
        "MONTH"
    } else {
        "DAY"
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (\
         ts TIMESTAMP, window_end TIMESTAMP, tenant SYMBOL CAPACITY 4096, metric SYMBOL CAPACITY 4096, \
         dim_set SYMBOL CAPACITY 4096, series VARCHAR, \
         count LONG, sum DOUBLE, min DOUBLE, max DOUBLE, avg DOUBLE, \
         p50 DOUBLE, p90 DOUBLE, p95 DOUBLE, p99 DOUBLE, uniq LONG, \
         revision INT, final BOOLEAN, late_count LONG, updated_at TIMESTAMP, state VARCHAR\
         ) TIMESTAMP(ts) PARTITION BY {partition} WAL DEDUP UPSERT KEYS(ts, tenant, metric, series)"
    )
}

/// Whether `text` can be put into SQL as a string literal as is: identifier characters only
/// (no quote, no backslash, nothing QuestDB could read as anything but text).
fn literal_safe(text: &str) -> bool {
    text.len() <= 1024
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b',' | b'.'))
}

/// Decodes a row of [`ROW_COLUMNS`] (or [`OUTER_COLUMNS`]), and its `state` when the
/// statement read it. A state that does not decode is left out (counted): the row's own
/// numbers stay right, merges that need it answer `null`.
pub(super) fn row_from_pg(row: &tokio_postgres::Row) -> Result<WindowRow, QueryError> {
    let decode = QueryError::decode;
    let micros = |index: usize| -> Result<i64, QueryError> {
        Ok(row
            .try_get::<_, Option<i64>>(index)
            .map_err(decode)?
            .unwrap_or(0)
            / 1000)
    };
    let f = |index: usize| -> Result<Option<f64>, QueryError> {
        row.try_get::<_, Option<f64>>(index).map_err(decode)
    };
    let long = |index: usize| -> Result<Option<i64>, QueryError> {
        row.try_get::<_, Option<i64>>(index).map_err(decode)
    };
    let series = row
        .try_get::<_, Option<String>>(2)
        .map_err(decode)?
        .unwrap_or_else(|| "{}".to_owned());
    let state = if row.len() > STATE_INDEX {
        match row
            .try_get::<_, Option<&str>>(STATE_INDEX)
            .map_err(decode)?
        {
            Some(text) if !text.is_empty() => match Sketch::from_state(text) {
                Ok(sketch) => Some(Arc::new(sketch)),
                Err(err) => {
                    metrics::counter!(names::STATE_DECODE_ERRORS).increment(1);
                    tracing::debug!(error = %ErrorChain(&err), "stored state ignored");
                    None
                }
            },
            _ => None,
        }
    } else {
        None
    };
    Ok(WindowRow {
        window_start: micros(0)?,
        window_end: micros(1)?,
        dims: WindowRow::parse_dims(&series),
        series,
        state,
        stats: Stats {
            count: long(3)?.unwrap_or(0).max(0) as u64,
            sum: f(4)?,
            min: f(5)?,
            max: f(6)?,
            avg: f(7)?,
            p50: f(8)?,
            p90: f(9)?,
            p95: f(10)?,
            p99: f(11)?,
            unique: long(12)?.map(|u| u.max(0) as u64),
        },
        revision: row
            .try_get::<_, Option<i32>>(13)
            .map_err(decode)?
            .unwrap_or(0)
            .max(0) as u32,
        is_final: row
            .try_get::<_, Option<bool>>(14)
            .map_err(decode)?
            .unwrap_or(false),
        late_count: long(15)?.unwrap_or(0).max(0) as u64,
        updated_at: micros(16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::stat::Stat;

    fn plan(dim_set: &str, exact_series: Option<&str>, filter: &[(&str, &str)]) -> QueryPlan {
        let mut plan = QueryPlan::raw("acme", "amount", dim_set, 60_000);
        plan.stat = Stat::Count;
        plan.exact_series = exact_series.map(str::to_owned);
        plan.filter = filter
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan
    }

    #[test]
    fn symbols_are_literals_and_the_series_filter_stays_outside_the_scan() {
        let total = RowQuery::rows("t", &plan("", Some("{}"), &[]), 0, 60_000, false);
        assert!(total
            .sql
            .contains("tenant = 'acme' AND metric = 'amount' AND dim_set IS NULL"));
        assert!(!total.sql.contains("series ="), "{}", total.sql);
        assert_eq!(total.params.len(), 2, "the two time bounds");
        let exact = RowQuery::rows(
            "t",
            &plan("region", Some(r#"{"region":"eu"}"#), &[]),
            0,
            1,
            false,
        );
        assert!(exact.sql.contains("dim_set = 'region'"));
        assert!(exact.sql.ends_with("WHERE series = $3"), "{}", exact.sql);
        let combined = RowQuery::rows(
            "t",
            &plan("plan,region", None, &[("plan", "pro")]),
            0,
            1,
            true,
        );
        assert!(combined
            .sql
            .contains("LIMIT 9223372036854775807) WHERE strpos(series, $3) > 0"));
        assert!(
            combined.sql.starts_with("SELECT ts_us, end_us")
                && combined.sql.contains("updated_us, state FROM"),
            "{}",
            combined.sql
        );
        assert!(matches!(&combined.params[2], Param::Text(text) if text == r#""plan":"pro""#));
    }

    #[test]
    fn text_that_is_not_an_identifier_is_bound() {
        let mut odd = plan("region", None, &[]);
        odd.tenant = "x' OR '1'='1".into();
        let query = RowQuery::rows("t", &odd, 0, 1, false);
        assert!(query.sql.starts_with("SELECT"));
        assert!(
            query.sql.contains("tenant = $1 AND metric = 'amount'"),
            "{}",
            query.sql
        );
        assert!(!query.sql.contains("OR"));
        assert!(literal_safe("tenant-1_a.b,c"));
        assert!(!literal_safe("it's"));
        assert!(!literal_safe(r"back\slash"));
    }
}
