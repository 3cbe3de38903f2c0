//! The QuestDB tables metric windows are stored in: the base table (each metric's own window)
//! and one table per rollup tier ([`tier_table`]: `<table>_1h`, `<table>_1d`), all with the
//! same columns. The core aggregator creates and upgrades them and writes them; the gateway
//! reads them. Windows are upserted on (window start, tenant, metric, series), so rewrites
//! (provisional then final, late corrections), replays and retries are idempotent, and a
//! window's numbers and `state` are always replaced together (they travel in one row).
//!
//! Retention is QuestDB's own: `TTL` on each table ([`ttl_clause`]), which drops whole
//! partitions once they are older than the TTL (measured from the newest row, capped at the
//! wall clock).

use crate::rollup::{Partitioning, Tier};

/// Table name.
pub const METRICS_TABLE: &str = "metric_windows";

/// The columns of every windows table, as in `CREATE TABLE`.
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
/// | `state` | the window's mergeable sketch: [`Sketch::to_state`](crate::sketch::Sketch::to_state) (base64 of the versioned binary encoding); null in rows written before it existed |
const COLUMNS: &str = "ts TIMESTAMP, window_end TIMESTAMP, tenant SYMBOL CAPACITY 4096, \
     metric SYMBOL CAPACITY 4096, dim_set SYMBOL CAPACITY 4096, series VARCHAR, \
     count LONG, sum DOUBLE, min DOUBLE, max DOUBLE, avg DOUBLE, \
     p50 DOUBLE, p90 DOUBLE, p95 DOUBLE, p99 DOUBLE, uniq LONG, \
     revision INT, final BOOLEAN, late_count LONG, updated_at TIMESTAMP, state VARCHAR";

/// `CREATE TABLE` statement for [`METRICS_TABLE`] (idempotent; no retention).
pub fn create_table_sql() -> String {
    create_table_sql_for(METRICS_TABLE)
}

/// [`create_table_sql`] for a table of another name (tests and side-by-side deployments use
/// their own). `table` must be a plain identifier (`[A-Za-z0-9_]`); callers validate it.
pub fn create_table_sql_for(table: &str) -> String {
    create_table_sql_with(table, Partitioning::Day, None)
}

/// `CREATE TABLE IF NOT EXISTS` for a windows table partitioned by `partitioning`, with a TTL
/// of `retention_days` (`None`: no TTL).
pub fn create_table_sql_with(
    table: &str,
    partitioning: Partitioning,
    retention_days: Option<u32>,
) -> String {
    let ttl = retention_days
        .map(|days| format!(" {}", ttl_clause(partitioning, days)))
        .unwrap_or_default();
    format!(
        "CREATE TABLE IF NOT EXISTS {table} ({COLUMNS}) TIMESTAMP(ts) PARTITION BY {}{ttl} \
         WAL DEDUP UPSERT KEYS(ts, tenant, metric, series)",
        partitioning.keyword()
    )
}

/// The table of `tier`'s windows beside the base table `base` (`metric_windows_1h`).
pub fn tier_table(base: &str, tier: &Tier) -> String {
    format!("{base}_{}", tier.name())
}

/// `TTL <n> DAYS` for a table partitioned by day; for one partitioned by month (QuestDB wants
/// a whole number of partitions) `TTL <n> MONTHS` with `n = ceil(days × 12 / 365)`, so at least
/// `retention_days` are kept (730 days: 24 months). At least one day (or month): QuestDB 9.3
/// cannot take a TTL off a table partitioned by month (`SET TTL 0` is refused), so rtdash has
/// no "forever"; a large number of days serves.
pub fn ttl_clause(partitioning: Partitioning, retention_days: u32) -> String {
    let days = retention_days.max(1);
    match partitioning {
        Partitioning::Day => format!("TTL {days} DAYS"),
        Partitioning::Month => {
            let months = (u64::from(days) * 12).div_ceil(365);
            format!("TTL {months} MONTHS")
        }
    }
}

/// `ALTER TABLE ... SET TTL` bringing an existing table to `retention_days`.
pub fn set_ttl_sql(table: &str, partitioning: Partitioning, retention_days: u32) -> String {
    format!(
        "ALTER TABLE {table} SET {}",
        ttl_clause(partitioning, retention_days)
    )
}

/// Adds the `state` column to a table created before it existed (a no-op when it has it).
pub fn add_state_column_sql(table: &str) -> String {
    format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS state VARCHAR")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        let base = create_table_sql_with("w", Partitioning::Day, Some(7));
        assert!(
            base.starts_with("CREATE TABLE IF NOT EXISTS w (ts TIMESTAMP,"),
            "{base}"
        );
        assert!(base.contains(", state VARCHAR) TIMESTAMP(ts) PARTITION BY DAY TTL 7 DAYS WAL DEDUP UPSERT KEYS(ts, tenant, metric, series)"), "{base}");
        let day_tier = create_table_sql_with("w_1d", Partitioning::Month, Some(730));
        assert!(
            day_tier.contains("PARTITION BY MONTH TTL 24 MONTHS WAL"),
            "{day_tier}"
        );
        assert!(create_table_sql().contains("PARTITION BY DAY WAL"));
        assert_eq!(
            tier_table("metric_windows", &Tier::parse("1h").unwrap()),
            "metric_windows_1h"
        );
        assert_eq!(ttl_clause(Partitioning::Month, 90), "TTL 3 MONTHS");
        assert_eq!(ttl_clause(Partitioning::Month, 1), "TTL 1 MONTHS");
        assert_eq!(ttl_clause(Partitioning::Day, 0), "TTL 1 DAYS");
        assert_eq!(
            set_ttl_sql("w", Partitioning::Day, 3),
            "ALTER TABLE w SET TTL 3 DAYS"
        );
        assert_eq!(
            add_state_column_sql("w"),
            "ALTER TABLE w ADD COLUMN IF NOT EXISTS state VARCHAR"
        );
    }
}
