//! Reading metric windows from QuestDB and deriving served values from them.
//!
//! Transport: the PostgreSQL wire protocol (tokio-postgres) with a small pool of pipelined
//! connections and prepared statements cached per connection, behind a short-lived
//! single-flight cache of answers ([`QuestDb::fetch_rows_shared`]). Dimension values and time
//! bounds are bind parameters. Tenant, metric and dimension-set names are put into the SQL as
//! literals, because QuestDB only JIT-compiles a symbol filter against a literal (see
//! [`RowQuery`] for why and how much); they are validated identifiers, and any text that is
//! not made of identifier characters is bound instead. Otherwise only the configured table
//! name (validated as an identifier at start) and numbers the gateway formats itself are put
//! into SQL.
//!
//! Derivation ([`plan`] then [`derive`]): a query names a metric, a dimension filter, a stat
//! and a window. If the metric keeps the dimension set equal to the filter's keys, that set's
//! rows are exact for every stat. Otherwise combinable stats (count, sum, min, max, avg) are
//! combined from the smallest kept set that contains the filter's keys; coarser windows
//! combine windows the same way. Anything else is refused with the reason: never a wrong
//! number.

use crate::config::QuestDbConfig;
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::sketch::Stats;
use rtdash_shared::stat::Stat;
use rtdash_shared::time::UnixMillis;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// Why a query could not be answered.
#[derive(Clone, Debug, thiserror::Error)]
pub enum QueryError {
    /// The request asks for something that cannot be derived correctly (answered `400`).
    #[error("{0}")]
    Invalid(String),
    /// QuestDB is unreachable (answered `503`).
    #[error("QuestDB unavailable: {0}")]
    Unavailable(String),
    /// QuestDB rejected a statement (a bug or a schema mismatch; answered `500`).
    #[error("QuestDB error: {0}")]
    Internal(String),
    /// The query took longer than `questdb.query_timeout_ms`.
    #[error("QuestDB query timed out")]
    Timeout,
}

/// One stored window of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRow {
    /// Window start.
    pub window_start: UnixMillis,
    /// Window end (exclusive).
    pub window_end: UnixMillis,
    /// The series' dimension values as canonical JSON.
    pub series: String,
    /// Statistics.
    pub stats: Stats,
    /// Revision.
    pub revision: u32,
    /// Closed.
    pub is_final: bool,
    /// Late events merged.
    pub late_count: u64,
    /// When this version was produced.
    pub updated_at: UnixMillis,
}

impl WindowRow {
    /// The row of a live update.
    pub fn from_update(update: &rtdash_shared::messages::WindowUpdate) -> Self {
        let series = serde_json::to_string(&update.dimensions).unwrap_or_else(|_| "{}".into());
        Self {
            window_start: update.window_start,
            window_end: update.window_end,
            series,
            stats: update.stats.clone(),
            revision: update.revision,
            is_final: update.is_final,
            late_count: update.late_count,
            updated_at: update.updated_at,
        }
    }

    /// Whether this version is at least as new as `other` (same series and window).
    pub fn supersedes(&self, other: &WindowRow) -> bool {
        (self.revision, self.is_final, self.updated_at)
            >= (other.revision, other.is_final, other.updated_at)
    }
}

/// Which rows a query reads and how it derives values from them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueryPlan {
    /// Tenant.
    pub tenant: String,
    /// Metric.
    pub metric: String,
    /// Stat served.
    pub stat: Stat,
    /// Dimension names of the rows read, sorted and comma-joined (`dim_set` column).
    pub dim_set: String,
    /// The one series read, when the filter names a kept dimension set exactly.
    pub exact_series: Option<String>,
    /// Filter applied to the rows of `dim_set` (empty when `exact_series` is set).
    pub filter: BTreeMap<String, String>,
    /// The metric's window, in milliseconds.
    pub base_window_ms: i64,
    /// The served window, in milliseconds (a multiple of the base).
    pub window_ms: i64,
}

impl QueryPlan {
    /// Whether a stored series (canonical JSON of its dimensions, of `dim_set`) feeds this
    /// plan.
    pub fn wants_series(&self, dim_set: &str, series: &str) -> bool {
        if dim_set != self.dim_set {
            return false;
        }
        match &self.exact_series {
            Some(exact) => exact == series,
            None => series_matches(series, &self.filter),
        }
    }

    /// The served window containing `at`.
    pub fn bucket_of(&self, at: UnixMillis) -> UnixMillis {
        at.div_euclid(self.window_ms) * self.window_ms
    }
}

/// Whether the series JSON has every `(name, value)` of `filter`.
pub fn series_matches(series: &str, filter: &BTreeMap<String, String>) -> bool {
    if filter.is_empty() {
        return true;
    }
    let Ok(dims) = serde_json::from_str::<BTreeMap<String, Option<String>>>(series) else {
        return false;
    };
    filter
        .iter()
        .all(|(name, wanted)| dims.get(name).and_then(Option::as_deref) == Some(wanted))
}

/// The stats a metric has.
pub fn available_stats(def: &MetricDefinition) -> Vec<Stat> {
    Stat::ALL
        .into_iter()
        .filter(|stat| stat_available(def, *stat).is_ok())
        .collect()
}

fn stat_available(def: &MetricDefinition, stat: Stat) -> Result<(), String> {
    match stat {
        Stat::Count => Ok(()),
        Stat::Unique if def.unique.is_none() => Err(format!(
            "metric `{}` has no `unique` property, so it has no `unique` stat",
            def.name
        )),
        Stat::Unique => Ok(()),
        _ if def.field.is_none() => Err(format!(
            "metric `{}` has no numeric `field`, so it has no `{stat}` stat (only `count`{})",
            def.name,
            if def.unique.is_some() {
                " and `unique`"
            } else {
                ""
            }
        )),
        _ => Ok(()),
    }
}

/// Parses a window such as `30s`, `1m`, `5m`, `1h`, `1d` into milliseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        _ => return None,
    };
    n.checked_mul(unit_ms).filter(|ms| *ms > 0)
}

/// Formats milliseconds as the shortest window text (`60000` -> `1m`).
pub fn format_duration(ms: i64) -> String {
    for (unit, size) in [("d", DAY_MS), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Decides how to serve `stat` of `def` for `filter` at `window_ms` (default: the metric's
/// window), or says why it cannot be derived.
pub fn plan(
    def: &MetricDefinition,
    tenant: &str,
    filter: &BTreeMap<String, String>,
    stat: Stat,
    window_ms: Option<i64>,
) -> Result<QueryPlan, QueryError> {
    stat_available(def, stat).map_err(QueryError::Invalid)?;
    for name in filter.keys() {
        if !def.dimensions.contains(name) {
            return Err(QueryError::Invalid(format!(
                "metric `{}` has no dimension `{name}` (its dimensions: {})",
                def.name,
                list_or_none(&def.dimensions)
            )));
        }
    }
    let base = def.window_ms();
    let window = window_ms.unwrap_or(base);
    if window < base || window % base != 0 {
        return Err(QueryError::Invalid(format!(
            "window {} is not a multiple of metric `{}`'s window {}",
            format_duration(window),
            def.name,
            format_duration(base)
        )));
    }
    if DAY_MS % window != 0 && window % DAY_MS != 0 {
        return Err(QueryError::Invalid(format!(
            "window {} must divide a day or be a whole number of days",
            format_duration(window)
        )));
    }
    if window != base && !stat.is_combinable() {
        return Err(QueryError::Invalid(format!(
            "`{stat}` cannot be derived for {} windows: metric `{}` keeps {} windows, and {} of \
             several windows do not combine; use window={} or a combinable stat (count, sum, \
             min, max, avg)",
            format_duration(window),
            def.name,
            format_duration(base),
            stat_kind(stat),
            format_duration(base)
        )));
    }
    let keys: Vec<String> = filter.keys().cloned().collect();
    let sets = def.dimension_sets();
    let common = |dim_set: &[String], exact_series, filter| QueryPlan {
        tenant: tenant.to_owned(),
        metric: def.name.clone(),
        stat,
        dim_set: dim_set.join(","),
        exact_series,
        filter,
        base_window_ms: base,
        window_ms: window,
    };
    if sets.contains(&keys) {
        let exact: BTreeMap<&str, Option<&str>> = filter
            .iter()
            .map(|(name, value)| (name.as_str(), Some(value.as_str())))
            .collect();
        let series = serde_json::to_string(&exact).unwrap_or_else(|_| "{}".into());
        return Ok(common(&keys, Some(series), BTreeMap::new()));
    }
    if !stat.is_combinable() {
        return Err(QueryError::Invalid(format!(
            "`{stat}` cannot be derived for a filter on {{{}}}: metric `{}` keeps the dimension \
             sets {}, and {} of several series do not combine; filter on exactly one of those \
             sets, or add it to the metric's rollups",
            keys.join(", "),
            def.name,
            sets.iter()
                .map(|set| format!("{{{}}}", set.join(", ")))
                .collect::<Vec<_>>()
                .join(" "),
            stat_kind(stat)
        )));
    }
    // The smallest kept set containing every filter key (the full set always does).
    let source = sets
        .iter()
        .filter(|set| keys.iter().all(|key| set.contains(key)))
        .min_by_key(|set| set.len())
        .cloned()
        .unwrap_or_default();
    Ok(common(&source, None, filter.clone()))
}

fn stat_kind(stat: Stat) -> &'static str {
    if stat == Stat::Unique {
        "distinct counts"
    } else {
        "percentiles"
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// One served window.
#[derive(Clone, Debug, PartialEq)]
pub struct DerivedWindow {
    /// Window start.
    pub window_start: UnixMillis,
    /// Window end.
    pub window_end: UnixMillis,
    /// The stat's value (`None`: rows exist but the stat has no value).
    pub value: Option<f64>,
    /// Highest revision among the rows.
    pub revision: u32,
    /// Every row final and the window over.
    pub is_final: bool,
    /// Late events merged.
    pub late_count: u64,
    /// Latest row version.
    pub updated_at: UnixMillis,
}

/// Folds rows into one served window.
#[derive(Clone, Debug, Default)]
struct Acc {
    rows: usize,
    first: Option<Stats>,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    revision: u32,
    all_final: bool,
    last_final_end: UnixMillis,
    late_count: u64,
    updated_at: UnixMillis,
}

impl Acc {
    fn add(&mut self, row: &WindowRow) {
        if self.rows == 0 {
            self.first = Some(row.stats.clone());
            self.all_final = true;
        }
        self.rows += 1;
        let stats = &row.stats;
        self.count += stats.count;
        self.sum = add_opt(self.sum, stats.sum, |a, b| a + b);
        self.min = add_opt(self.min, stats.min, f64::min);
        self.max = add_opt(self.max, stats.max, f64::max);
        self.revision = self.revision.max(row.revision);
        self.all_final &= row.is_final;
        if row.is_final {
            self.last_final_end = self.last_final_end.max(row.window_end);
        }
        self.late_count += row.late_count;
        self.updated_at = self.updated_at.max(row.updated_at);
    }

    fn value(&self, stat: Stat, single_base_window: bool) -> Option<f64> {
        if self.rows == 1 && single_base_window {
            return self.first.as_ref().and_then(|stats| stat.value(stats));
        }
        match stat {
            Stat::Count => Some(self.count as f64),
            Stat::Sum => self.sum,
            Stat::Min => self.min,
            Stat::Max => self.max,
            Stat::Avg => match self.sum {
                Some(sum) if self.count > 0 => Some(sum / self.count as f64),
                _ => None,
            },
            // The plan only combines combinable stats; a single row is exact.
            _ => None,
        }
    }
}

fn add_opt(a: Option<f64>, b: Option<f64>, f: impl Fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// How long after its end a combined window counts as final even if its last base window
/// never got a row (no events in it).
const FINAL_GRACE_MS: i64 = 5 * 60_000;

/// Derives the served windows of `plan` from rows of its dimension set, sorted by start.
/// Rows not wanted by the plan are skipped.
pub fn derive<'r>(
    plan: &QueryPlan,
    rows: impl IntoIterator<Item = &'r WindowRow>,
    now: UnixMillis,
    closed_through: Option<UnixMillis>,
) -> Vec<DerivedWindow> {
    let mut buckets: BTreeMap<UnixMillis, Acc> = BTreeMap::new();
    for row in rows {
        if plan.exact_series.is_none() && !series_matches(&row.series, &plan.filter) {
            continue;
        }
        if let Some(exact) = &plan.exact_series {
            if exact != &row.series {
                continue;
            }
        }
        buckets
            .entry(plan.bucket_of(row.window_start))
            .or_default()
            .add(row);
    }
    buckets
        .into_iter()
        .map(|(start, acc)| derive_one(plan, start, &acc, now, closed_through))
        .collect()
}

/// `closed_through`: every window ending at or before it is closed in every partition (from
/// the aggregators' status reports), so a combined window ending there is complete even when
/// its last base windows have no row.
fn derive_one(
    plan: &QueryPlan,
    start: UnixMillis,
    acc: &Acc,
    now: UnixMillis,
    closed_through: Option<UnixMillis>,
) -> DerivedWindow {
    let end = start + plan.window_ms;
    let single = plan.window_ms == plan.base_window_ms;
    let complete = single
        || acc.last_final_end >= end
        || closed_through.is_some_and(|closed| end <= closed)
        || end + FINAL_GRACE_MS <= now;
    DerivedWindow {
        window_start: start,
        window_end: end,
        value: acc.value(plan.stat, single),
        revision: acc.revision,
        is_final: acc.all_final && complete,
        late_count: acc.late_count,
        updated_at: acc.updated_at,
    }
}

/// Derives one served window (starting at `bucket`) from rows the caller selected for
/// `plan` (right dimension set, matching the filter, inside the bucket). `None` when there
/// are none.
pub fn derive_bucket<'r>(
    plan: &QueryPlan,
    bucket: UnixMillis,
    rows: impl IntoIterator<Item = &'r WindowRow>,
    now: UnixMillis,
) -> Option<DerivedWindow> {
    let mut acc = Acc::default();
    for row in rows {
        acc.add(row);
    }
    (acc.rows > 0).then(|| derive_one(plan, bucket, &acc, now, None))
}

/// A pooled connection with its prepared statements.
struct Conn {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
}

/// Prepared statements kept per connection; the cache is emptied when it would grow past
/// this (statements differ by tenant, metric and dimension set, see [`RowQuery`]).
const MAX_STATEMENTS: usize = 512;

/// Entries of the row-query cache beyond which expired ones are swept on insert.
const CACHE_SWEEP_LEN: usize = 256;
/// Most entries in the row-query cache; queries beyond it are answered uncached.
const CACHE_MAX_ENTRIES: usize = 4_096;
/// Largest answer (rows) kept in the row-query cache.
const CACHE_MAX_ROWS: usize = 100_000;

/// An answer of the row-query cache: filled once by the first caller.
type CacheCell = Arc<tokio::sync::OnceCell<Result<Arc<SharedRows>, QueryError>>>;

/// Rows shared by identical queries ([`QuestDb::fetch_rows_shared`]), with the HTTP answer
/// rendered from them once ([`QuestDb::fetch_rendered`]): at a high request rate the
/// rendering (formatting timestamps, JSON) costs more than everything else of a cached answer.
#[derive(Debug)]
pub struct SharedRows {
    /// The rows.
    pub rows: Vec<WindowRow>,
    rendered: std::sync::OnceLock<bytes::Bytes>,
}

type CacheKey = (QueryPlan, UnixMillis, UnixMillis);

struct CacheEntry {
    cell: CacheCell,
    /// When the query was started: the answer is reused until `created + query_cache_ms`.
    created: tokio::time::Instant,
}

/// Removes a cache entry that did not produce a reusable answer (failed, cancelled, or
/// caching disabled) when the caller that registered it is done.
struct Settle<'m> {
    map: &'m Mutex<HashMap<CacheKey, CacheEntry>>,
    key: CacheKey,
    cell: CacheCell,
    keep: bool,
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        let keep = self.keep && matches!(self.cell.get(), Some(Ok(_)));
        if keep {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|entry| Arc::ptr_eq(&entry.cell, &self.cell))
        {
            map.remove(&self.key);
        }
    }
}

/// The QuestDB reader: a pool of PostgreSQL-wire connections.
pub struct QuestDb {
    config: QuestDbConfig,
    cache: Mutex<HashMap<CacheKey, CacheEntry>>,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next: AtomicUsize,
    healthy: AtomicBool,
    row_queries: AtomicU64,
}

impl std::fmt::Debug for QuestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuestDb")
            .field("pg_addr", &self.config.pg_addr)
            .field("table", &self.config.table)
            .finish_non_exhaustive()
    }
}

/// The row columns, in the order [`row_from_pg`] reads them (aliased so an outer query can
/// name them).
const ROW_COLUMNS: &str = "cast(ts AS LONG) ts_us, cast(window_end AS LONG) end_us, series, \
     count, sum, min, max, avg, p50, p90, p95, p99, uniq, revision, final, late_count, \
     cast(updated_at AS LONG) updated_us";
/// The same columns read from a subquery of [`ROW_COLUMNS`].
const OUTER_COLUMNS: &str = "ts_us, end_us, series, count, sum, min, max, avg, p50, p90, p95, \
     p99, uniq, revision, final, late_count, updated_us";

fn micros_param(ms: UnixMillis) -> time::PrimitiveDateTime {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    time::PrimitiveDateTime::new(at.date(), at.time())
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
struct RowQuery {
    sql: String,
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

    /// `WHERE` conditions selecting (tenant, metric, dim_set) rows in `[from, to)`.
    fn scope(
        &mut self,
        tenant: &str,
        metric: &str,
        dim_set: &str,
        from: UnixMillis,
        to: UnixMillis,
    ) -> String {
        let tenant = self.symbol_eq("tenant", tenant);
        let metric = self.symbol_eq("metric", metric);
        let dim_set = self.symbol_eq("dim_set", dim_set);
        let from = self.bind(Param::Time(micros_param(from)));
        let to = self.bind(Param::Time(micros_param(to)));
        format!("{tenant} AND {metric} AND {dim_set} AND ts >= {from} AND ts < {to}")
    }

    /// The rows `plan` reads in `[from, to)`.
    fn rows(table: &str, plan: &QueryPlan, from: UnixMillis, to: UnixMillis) -> Self {
        let mut query = RowQuery {
            sql: String::new(),
            params: Vec::new(),
        };
        let scope = query.scope(&plan.tenant, &plan.metric, &plan.dim_set, from, to);
        let inner = format!("SELECT {ROW_COLUMNS} FROM {table} WHERE {scope}");
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
                "SELECT {OUTER_COLUMNS} FROM ({inner} LIMIT {}) WHERE {}",
                i64::MAX,
                series_filters.join(" AND ")
            )
        };
        query
    }

    /// Distinct series of `dim_set` in `[from, to)`, at most `limit`.
    fn distinct_series(
        table: &str,
        tenant: &str,
        metric: &str,
        dim_set: &str,
        from: UnixMillis,
        to: UnixMillis,
        limit: usize,
    ) -> Self {
        let mut query = RowQuery {
            sql: String::new(),
            params: Vec::new(),
        };
        let scope = query.scope(tenant, metric, dim_set, from, to);
        query.sql = format!("SELECT DISTINCT series FROM {table} WHERE {scope} LIMIT {limit}");
        query
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(Param::as_sql).collect()
    }
}

/// Whether `text` can be put into SQL as a string literal as is: identifier characters only
/// (no quote, no backslash, nothing QuestDB could read as anything but text).
fn literal_safe(text: &str) -> bool {
    text.len() <= 1024
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b',' | b'.'))
}

impl QuestDb {
    /// A pool for `config`; connections are opened on first use and reopened after errors.
    pub fn new(config: QuestDbConfig) -> Self {
        let slots = (0..config.pool_size.max(1))
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        Self {
            config,
            cache: Mutex::new(HashMap::new()),
            slots,
            next: AtomicUsize::new(0),
            healthy: AtomicBool::new(false),
            row_queries: AtomicU64::new(0),
        }
    }

    /// The table read.
    pub fn table(&self) -> &str {
        &self.config.table
    }

    /// Whether the last health check (or query) succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Row queries sent to QuestDB so far (metric queries and snapshots).
    pub fn row_queries(&self) -> u64 {
        self.row_queries.load(Ordering::Relaxed)
    }

    async fn conn(&self) -> Result<Arc<Conn>, QueryError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[index].lock().await;
        if let Some(conn) = slot.as_ref() {
            if !conn.client.is_closed() {
                return Ok(conn.clone());
            }
        }
        let (host, port) =
            self.config.pg_addr.rsplit_once(':').ok_or_else(|| {
                QueryError::Unavailable("questdb.pg_addr is not host:port".into())
            })?;
        let mut pg = tokio_postgres::Config::new();
        pg.host(host)
            .port(port.parse().unwrap_or(8812))
            .user(&self.config.user)
            .password(&self.config.password)
            .dbname(&self.config.database)
            .application_name("rtdash-gateway")
            .connect_timeout(Duration::from_millis(self.config.query_timeout_ms));
        let connect = pg.connect(NoTls);
        let (client, connection) =
            tokio::time::timeout(Duration::from_millis(self.config.query_timeout_ms), connect)
                .await
                .map_err(|_| QueryError::Unavailable("connect timed out".into()))?
                .map_err(|err| {
                    self.healthy.store(false, Ordering::Relaxed);
                    QueryError::Unavailable(format!("{}: {err}", self.config.pg_addr))
                })?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "QuestDB connection closed");
            }
        });
        let conn = Arc::new(Conn {
            client,
            statements: Mutex::new(HashMap::new()),
        });
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, QueryError> {
        let timeout = Duration::from_millis(self.config.query_timeout_ms);
        let work = async {
            let conn = self.conn().await?;
            let cached = conn
                .statements
                .lock()
                .ok()
                .and_then(|statements| statements.get(sql).cloned());
            let statement = match cached {
                Some(statement) => statement,
                None => {
                    let statement = conn.client.prepare(sql).await.map_err(pg_error)?;
                    if let Ok(mut statements) = conn.statements.lock() {
                        if statements.len() >= MAX_STATEMENTS {
                            statements.clear();
                        }
                        statements.insert(sql.to_owned(), statement.clone());
                    }
                    statement
                }
            };
            conn.client
                .query(&statement, params)
                .await
                .map_err(pg_error)
        };
        let result = tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| QueryError::Timeout)?;
        match &result {
            Ok(_) | Err(QueryError::Internal(_)) => self.healthy.store(true, Ordering::Relaxed),
            Err(_) => self.healthy.store(false, Ordering::Relaxed),
        }
        result
    }

    /// Creates the table if it is missing.
    pub async fn ensure_table(&self) -> Result<(), QueryError> {
        let sql = rtdash_shared::schema::create_table_sql_for(&self.config.table);
        let conn = self.conn().await?;
        conn.client.batch_execute(&sql).await.map_err(pg_error)
    }

    /// Runs `SELECT 1`; updates the health flag.
    pub async fn ping(&self) -> bool {
        self.query("SELECT 1", &[]).await.is_ok()
    }

    /// [`QuestDb::fetch_rows`] through a short-lived cache: an identical query (same plan
    /// and range) started less than `questdb.query_cache_ms` ago, or still in flight, answers
    /// for this one. So QuestDB sees at most one query per distinct (plan, range) per
    /// interval whatever the request rate, and an answer is at most that much older than the
    /// request. Failures are not kept.
    pub async fn fetch_rows_shared(
        &self,
        plan: &QueryPlan,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Arc<SharedRows>, QueryError> {
        let ttl = Duration::from_millis(self.config.query_cache_ms);
        let key = (plan.clone(), from, to);
        let now = tokio::time::Instant::now();
        let (cell, leader) = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let reusable = cache.get(&key).filter(|entry| {
                // In flight, or answered within the interval.
                entry.cell.get().is_none() || now.duration_since(entry.created) < ttl
            });
            match reusable {
                Some(entry) => (entry.cell.clone(), false),
                None => {
                    if cache.len() >= CACHE_SWEEP_LEN {
                        cache.retain(|_, entry| {
                            entry.cell.get().is_none() || now.duration_since(entry.created) < ttl
                        });
                    }
                    let cell: CacheCell = Arc::new(tokio::sync::OnceCell::new());
                    if cache.len() < CACHE_MAX_ENTRIES {
                        cache.insert(
                            key.clone(),
                            CacheEntry {
                                cell: cell.clone(),
                                created: now,
                            },
                        );
                    }
                    (cell, true)
                }
            }
        };
        let mut settle = leader.then(|| Settle {
            map: &self.cache,
            key,
            cell: cell.clone(),
            keep: !ttl.is_zero(),
        });
        let result = cell
            .get_or_init(|| async {
                self.fetch_rows(plan, from, to).await.map(|rows| {
                    Arc::new(SharedRows {
                        rows,
                        rendered: std::sync::OnceLock::new(),
                    })
                })
            })
            .await
            .clone();
        if let (Some(settle), Ok(rows)) = (settle.as_mut(), &result) {
            settle.keep &= rows.rows.len() <= CACHE_MAX_ROWS;
        }
        result
    }

    /// [`QuestDb::fetch_rows_shared`], then `render` of the rows, rendered once per shared
    /// answer: every request the cache answers gets the same bytes. `render` must depend on
    /// nothing but the rows and the plan and range (it may read the clock: the answer is then
    /// as old as the rows, at most `questdb.query_cache_ms`).
    pub async fn fetch_rendered(
        &self,
        plan: &QueryPlan,
        from: UnixMillis,
        to: UnixMillis,
        render: impl FnOnce(&[WindowRow]) -> bytes::Bytes,
    ) -> Result<bytes::Bytes, QueryError> {
        let shared = self.fetch_rows_shared(plan, from, to).await?;
        Ok(shared.rendered.get_or_init(|| render(&shared.rows)).clone())
    }

    /// The rows `plan` reads in `[from, to)`.
    pub async fn fetch_rows(
        &self,
        plan: &QueryPlan,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Vec<WindowRow>, QueryError> {
        let query = RowQuery::rows(&self.config.table, plan, from, to);
        self.row_queries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::QUESTDB_ROW_QUERIES).increment(1);
        let rows = self.query(&query.sql, &query.params()).await?;
        rows.iter().map(row_from_pg).collect()
    }

    /// QuestDB's plan (`EXPLAIN`) of the statement [`QuestDb::fetch_rows`] runs, one line
    /// per row: how tests check that it scans the time interval only and JIT-compiles the
    /// symbol filter.
    pub async fn explain_rows(
        &self,
        plan: &QueryPlan,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Vec<String>, QueryError> {
        let query = RowQuery::rows(&self.config.table, plan, from, to);
        let sql = format!("EXPLAIN {}", query.sql);
        let rows = self.query(&sql, &query.params()).await?;
        rows.iter()
            .map(|row| {
                row.try_get::<_, String>(0)
                    .map_err(|err| QueryError::Internal(err.to_string()))
            })
            .collect()
    }

    /// Distinct series (canonical JSON) of `dim_set` in `[from, to)`, at most `limit`.
    pub async fn distinct_series(
        &self,
        tenant: &str,
        metric: &str,
        dim_set: &str,
        from: UnixMillis,
        to: UnixMillis,
        limit: usize,
    ) -> Result<Vec<String>, QueryError> {
        let query =
            RowQuery::distinct_series(&self.config.table, tenant, metric, dim_set, from, to, limit);
        let rows = self.query(&query.sql, &query.params()).await?;
        rows.iter()
            .map(|row| {
                row.try_get::<_, Option<String>>(0)
                    .map(Option::unwrap_or_default)
                    .map_err(|err| QueryError::Internal(err.to_string()))
            })
            .collect()
    }
}

fn pg_error(err: tokio_postgres::Error) -> QueryError {
    if let Some(db) = err.as_db_error() {
        QueryError::Internal(db.message().to_owned())
    } else {
        QueryError::Unavailable(err.to_string())
    }
}

fn row_from_pg(row: &tokio_postgres::Row) -> Result<WindowRow, QueryError> {
    let internal = |err: tokio_postgres::Error| QueryError::Internal(err.to_string());
    let micros = |index: usize| -> Result<i64, QueryError> {
        Ok(row
            .try_get::<_, Option<i64>>(index)
            .map_err(internal)?
            .unwrap_or(0)
            / 1000)
    };
    let f = |index: usize| -> Result<Option<f64>, QueryError> {
        row.try_get::<_, Option<f64>>(index).map_err(internal)
    };
    let long = |index: usize| -> Result<Option<i64>, QueryError> {
        row.try_get::<_, Option<i64>>(index).map_err(internal)
    };
    Ok(WindowRow {
        window_start: micros(0)?,
        window_end: micros(1)?,
        series: row
            .try_get::<_, Option<String>>(2)
            .map_err(internal)?
            .unwrap_or_else(|| "{}".to_owned()),
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
            .map_err(internal)?
            .unwrap_or(0)
            .max(0) as u32,
        is_final: row
            .try_get::<_, Option<bool>>(14)
            .map_err(internal)?
            .unwrap_or(false),
        late_count: long(15)?.unwrap_or(0).max(0) as u64,
        updated_at: micros(16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(json: &str) -> MetricDefinition {
        MetricDefinition::from_json(json.as_bytes()).expect("valid definition")
    }

    fn amount() -> MetricDefinition {
        def(
            r#"{"name":"amount","event_type":"pay","field":"usd","unique":"user",
                "dimensions":["region","plan"],"rollups":[["region"],[]]}"#,
        )
    }

    fn filter(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn row(start: i64, series: &str, count: u64, sum: f64, min: f64, max: f64) -> WindowRow {
        WindowRow {
            window_start: start,
            window_end: start + 60_000,
            series: series.to_owned(),
            stats: Stats {
                count,
                sum: Some(sum),
                min: Some(min),
                max: Some(max),
                avg: Some(sum / count as f64),
                p50: Some(1.0),
                p90: None,
                p95: None,
                p99: Some(9.0),
                unique: Some(3),
            },
            revision: 0,
            is_final: true,
            late_count: 0,
            updated_at: start + 61_000,
        }
    }

    #[test]
    fn exact_rollups_serve_every_stat() {
        let plan = plan(
            &amount(),
            "t",
            &filter(&[("region", "eu")]),
            Stat::P99,
            None,
        )
        .unwrap();
        assert_eq!(plan.dim_set, "region");
        assert_eq!(plan.exact_series.as_deref(), Some(r#"{"region":"eu"}"#));
        let total = super::plan(&amount(), "t", &BTreeMap::new(), Stat::Unique, None).unwrap();
        assert_eq!(total.dim_set, "");
        assert_eq!(total.exact_series.as_deref(), Some("{}"));
        let full = super::plan(
            &amount(),
            "t",
            &filter(&[("region", "eu"), ("plan", "pro")]),
            Stat::P50,
            None,
        )
        .unwrap();
        assert_eq!(full.dim_set, "plan,region");
        assert_eq!(
            full.exact_series.as_deref(),
            Some(r#"{"plan":"pro","region":"eu"}"#)
        );
    }

    #[test]
    fn non_derivable_stats_are_refused_with_the_reason() {
        let err = plan(&amount(), "t", &filter(&[("plan", "pro")]), Stat::P99, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("p99") && err.contains("plan"), "{err}");
        let err = plan(
            &amount(),
            "t",
            &BTreeMap::new(),
            Stat::Unique,
            Some(300_000),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("5m"), "{err}");
        let err = plan(
            &amount(),
            "t",
            &filter(&[("color", "x")]),
            Stat::Count,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("color"), "{err}");
        let counts = def(r#"{"name":"c","event_type":"e"}"#);
        assert!(plan(&counts, "t", &BTreeMap::new(), Stat::Sum, None).is_err());
        assert!(plan(&counts, "t", &BTreeMap::new(), Stat::Count, Some(90_000)).is_err());
        assert!(plan(
            &counts,
            "t",
            &BTreeMap::new(),
            Stat::Count,
            Some(7 * 60_000)
        )
        .is_err());
        assert!(plan(
            &counts,
            "t",
            &BTreeMap::new(),
            Stat::Count,
            Some(DAY_MS * 7)
        )
        .is_ok());
    }

    #[test]
    fn combining_across_series_and_windows() {
        let plan = plan(&amount(), "t", &filter(&[("plan", "pro")]), Stat::Avg, None).unwrap();
        assert_eq!(plan.dim_set, "plan,region");
        assert!(plan.exact_series.is_none());
        let rows = vec![
            row(0, r#"{"plan":"pro","region":"eu"}"#, 2, 10.0, 1.0, 9.0),
            row(0, r#"{"plan":"pro","region":"us"}"#, 3, 20.0, 0.5, 7.0),
            row(0, r#"{"plan":"free","region":"us"}"#, 100, 1.0, 0.0, 100.0),
            row(60_000, r#"{"plan":"pro","region":"us"}"#, 1, 4.0, 4.0, 4.0),
        ];
        let got = derive(&plan, &rows, 10_000_000, None);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].value, Some(30.0 / 5.0));
        assert_eq!(got[1].value, Some(4.0));
        let mut five = plan.clone();
        five.window_ms = 300_000;
        for (stat, want) in [
            (Stat::Count, 6.0),
            (Stat::Sum, 34.0),
            (Stat::Min, 0.5),
            (Stat::Max, 9.0),
            (Stat::Avg, 34.0 / 6.0),
        ] {
            five.stat = stat;
            let got = derive(&five, &rows, 10_000_000, None);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].window_end, 300_000);
            assert_eq!(got[0].value, Some(want), "{stat}");
            assert!(got[0].is_final);
        }
    }

    #[test]
    fn a_combined_window_without_rows_at_its_end_is_final_once_closed_everywhere() {
        let mut five = plan(
            &amount(),
            "t",
            &filter(&[("plan", "pro")]),
            Stat::Count,
            None,
        )
        .unwrap();
        five.window_ms = 300_000;
        // Only the first minute of [0, 5 min) has a row; it is final.
        let rows = vec![row(0, r#"{"plan":"pro","region":"eu"}"#, 2, 10.0, 1.0, 9.0)];
        assert!(rows[0].is_final);
        let now = 300_000 + 1_000;
        assert!(
            !derive(&five, &rows, now, None)[0].is_final,
            "not known closed"
        );
        assert!(!derive(&five, &rows, now, Some(299_999))[0].is_final);
        assert!(derive(&five, &rows, now, Some(300_000))[0].is_final);
        assert!(derive(&five, &rows, 300_000 + FINAL_GRACE_MS, None)[0].is_final);
    }

    #[test]
    fn json_fragments_in_values_do_not_fool_the_filter() {
        let f = filter(&[("region", "us")]);
        assert!(series_matches(r#"{"plan":null,"region":"us"}"#, &f));
        assert!(!series_matches(
            r#"{"plan":"\"region\":\"us\"","region":"eu"}"#,
            &f
        ));
        assert!(!series_matches(r#"{"plan":"x","region":null}"#, &f));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("1d"), Some(DAY_MS));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(format_duration(3_600_000), "1h");
        assert_eq!(format_duration(90_000), "90s");
    }
}
