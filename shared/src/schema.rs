//! The QuestDB table metric windows are stored in. The core aggregator creates it and writes
//! it; the gateway reads it. Windows are upserted on (window start, tenant, metric, series), so
//! rewrites (provisional then final, late corrections), replays and retries are idempotent.

/// Table name.
pub const METRICS_TABLE: &str = "metric_windows";

/// `CREATE TABLE` statement for [`METRICS_TABLE`] (idempotent).
///
/// | column | meaning |
/// |---|---|
/// | `ts` | window start (designated timestamp) |
/// | `window_end` | window end (exclusive) |
/// | `tenant`, `metric` | whose and which metric |
/// | `dim_set` | the series' dimension names, comma-joined (`plan,region`; empty for the total) |
/// | `series` | the dimension values as canonical JSON (`{"plan":"pro","region":"us-east"}`) |
/// | `count` .. `p99` | statistics; null where the metric does not have them |
/// | `uniq` | distinct count (HyperLogLog) |
/// | `revision`, `final`, `late_count` | 0 and false while open; final when closed; +1 per late correction |
/// | `updated_at` | when this version was written |
pub fn create_table_sql() -> String {
    create_table_sql_for(METRICS_TABLE)
}

/// [`create_table_sql`] for a table of another name (tests and side-by-side deployments use
/// their own). `table` must be a plain identifier (`[A-Za-z0-9_]`); callers validate it.
pub fn create_table_sql_for(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (\
         ts TIMESTAMP, window_end TIMESTAMP, tenant SYMBOL CAPACITY 4096, metric SYMBOL CAPACITY 4096, \
         dim_set SYMBOL CAPACITY 4096, series VARCHAR, \
         count LONG, sum DOUBLE, min DOUBLE, max DOUBLE, avg DOUBLE, \
         p50 DOUBLE, p90 DOUBLE, p95 DOUBLE, p99 DOUBLE, uniq LONG, \
         revision INT, final BOOLEAN, late_count LONG, updated_at TIMESTAMP\
         ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, tenant, metric, series)"
    )
}
