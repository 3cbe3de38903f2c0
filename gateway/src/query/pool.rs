//! The QuestDB reader: a small pool of pipelined PostgreSQL-wire connections
//! (tokio-postgres) with the prepared statements of each cached, the row cache of windows
//! that no longer change (`super::rows`), and metric-query answers shared through a
//! [`SingleFlight`] cache.

use super::cache::RowCache;
use super::derive::WindowRow;
use super::plan::QueryPlan;
use super::single_flight::{Limits, SingleFlight};
use super::sql::{row_from_pg, tier_table_sql, RowQuery, SeriesScope};
use super::tiers::{tier_table, RollupsConfig, Tiers};
use super::QueryError;
use crate::config::{QueryConfig, QuestDbConfig};
use crate::metrics as names;
use crate::tasks::Tasks;
use bytes::Bytes;
use rtdash_shared::time::UnixMillis;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A pooled connection with its prepared statements.
struct Conn {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
}

/// Prepared statements kept per connection; the cache is emptied when it would grow past
/// this (statements differ by tenant, metric and dimension set, see [`RowQuery`]).
const MAX_STATEMENTS: usize = 512;

/// The answer cache: expired entries are swept beyond 256; beyond 4,096 a query is
/// answered uncached.
const ANSWER_CACHE_LIMITS: Limits = Limits {
    sweep_from: 256,
    max_entries: 4_096,
};
/// Largest answer (bytes) kept in the answer cache.
const CACHE_MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// What identifies a rendered answer: the plan, the aligned range, and the request's flags
/// that change the text (`window=auto`).
pub type AnswerKey = (QueryPlan, UnixMillis, UnixMillis, bool);

/// The QuestDB reader: a pool of PostgreSQL-wire connections.
pub struct QuestDb {
    config: QuestDbConfig,
    tiers: Tiers,
    cache: RowCache,
    answers: SingleFlight<AnswerKey, Bytes, QueryError>,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next: AtomicUsize,
    healthy: AtomicBool,
    row_queries: AtomicU64,
    /// Runs the connections' I/O tasks.
    tasks: Tasks,
    /// Cancelled by [`QuestDb::close`]: connections close, no new one opens.
    closed: CancellationToken,
}

impl std::fmt::Debug for QuestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuestDb")
            .field("pg_addr", &self.config.pg_addr)
            .field("table", &self.config.table)
            .finish_non_exhaustive()
    }
}

impl QuestDb {
    /// A pool for `config` reading the tables of `rollups`, with a row cache as `query`
    /// says; connections are opened on first use and reopened after errors, their I/O runs
    /// on `tasks` until [`QuestDb::close`].
    pub fn new(
        config: QuestDbConfig,
        rollups: &RollupsConfig,
        query: &QueryConfig,
        tasks: Tasks,
    ) -> Self {
        let slots = (0..config.pool_size.max(1))
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        Self {
            answers: SingleFlight::new(
                Duration::from_millis(config.query_cache_ms),
                ANSWER_CACHE_LIMITS,
            ),
            tiers: rollups.tiers(),
            cache: RowCache::new(
                query.row_cache_bytes,
                Duration::from_secs(query.row_cache_max_age_secs),
            ),
            config,
            slots,
            next: AtomicUsize::new(0),
            healthy: AtomicBool::new(false),
            row_queries: AtomicU64::new(0),
            tasks,
            closed: CancellationToken::new(),
        }
    }

    /// The per-query timeout, in milliseconds.
    pub fn query_timeout_ms(&self) -> u64 {
        self.config.query_timeout_ms
    }

    /// The base table read.
    pub fn table(&self) -> &str {
        &self.config.table
    }

    /// The deployment's tiers.
    pub fn tiers(&self) -> &Tiers {
        &self.tiers
    }

    /// The table holding `plan`'s source windows.
    pub fn table_of(&self, plan: &QueryPlan) -> String {
        self.tiers.table_of(
            &self.config.table,
            plan.base_window_ms,
            plan.source_window_ms,
        )
    }

    pub(super) fn cache(&self) -> &RowCache {
        &self.cache
    }

    /// Whether the last health check (or query) succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Row queries sent to QuestDB so far (metric queries and snapshots).
    pub fn row_queries(&self) -> u64 {
        self.row_queries.load(Ordering::Relaxed)
    }

    /// Closes every connection (queries still running on them fail) and opens no new one:
    /// the last step of shutdown, once nothing queries any more.
    pub fn close(&self) {
        self.closed.cancel();
    }

    async fn conn(&self) -> Result<Arc<Conn>, QueryError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[index].lock().await;
        if let Some(conn) = slot.as_ref() {
            if !conn.client.is_closed() {
                return Ok(conn.clone());
            }
        }
        if self.closed.is_cancelled() {
            return Err(QueryError::unavailable("the gateway is shutting down"));
        }
        let addr = &self.config.pg_addr;
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| {
            QueryError::unavailable(format!("questdb.pg_addr {addr} is not host:port"))
        })?;
        let timeout = Duration::from_millis(self.config.query_timeout_ms);
        let mut pg = tokio_postgres::Config::new();
        pg.host(host)
            .port(port.parse().unwrap_or(8812))
            .user(&self.config.user)
            .password(self.config.password.expose())
            .dbname(&self.config.database)
            .application_name("rtdash-gateway")
            .connect_timeout(timeout);
        let (client, connection) = tokio::time::timeout(timeout, pg.connect(NoTls))
            .await
            .map_err(|_| QueryError::unavailable(format!("connecting to {addr} timed out")))?
            .map_err(|err| {
                self.healthy.store(false, Ordering::Relaxed);
                QueryError::Unavailable {
                    reason: format!("cannot connect to {addr}"),
                    source: Some(Arc::new(err)),
                }
            })?;
        let closed = self.closed.clone();
        self.tasks.spawn("questdb connection", async move {
            tokio::select! {
                result = connection => if let Err(err) = result {
                    tracing::debug!(error = %err, "QuestDB connection closed");
                },
                () = closed.cancelled() => {}
            }
        });
        let conn = Arc::new(Conn {
            client,
            statements: Mutex::new(HashMap::new()),
        });
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `sql` on a pooled connection (prepared once per connection), within
    /// `questdb.query_timeout_ms`; updates the health flag.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, QueryError> {
        let timeout = Duration::from_millis(self.config.query_timeout_ms);
        let span = tracing::debug_span!(
            "questdb.query",
            otel.kind = "client",
            db.system.name = "questdb",
            db.namespace = %self.config.database,
            db.collection.name = %self.config.table,
            db.operation.name = sql.split(' ').next().unwrap_or_default(),
            server.address = %self.config.pg_addr,
        );
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
                    let statement = conn
                        .client
                        .prepare(sql)
                        .await
                        .map_err(QueryError::from_statement)?;
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
                .map_err(QueryError::from_statement)
        };
        let result = tokio::time::timeout(timeout, work.instrument(span))
            .await
            .map_err(|_| QueryError::Timeout)?;
        match &result {
            Ok(_) | Err(QueryError::Internal { .. }) => self.healthy.store(true, Ordering::Relaxed),
            Err(_) => self.healthy.store(false, Ordering::Relaxed),
        }
        result
    }

    /// Creates the base table and every tier's table when missing. Upgrading a table of an
    /// older release (the `state` column) and retention (TTL) are the aggregators' to do.
    pub async fn ensure_tables(&self) -> Result<(), QueryError> {
        let base = &self.config.table;
        // The shared schema has the `state` column; a table of an older release gets it
        // from the aggregators, which upgrade tables in place.
        let mut sql = rtdash_shared::schema::create_table_sql_for(base);
        for tier in self.tiers.list() {
            sql.push_str(";\n");
            sql.push_str(&tier_table_sql(
                &tier_table(base, tier.window_ms),
                tier.window_ms,
            ));
        }
        let conn = self.conn().await?;
        conn.client
            .batch_execute(&sql)
            .await
            .map_err(QueryError::from_statement)
    }

    /// Runs `SELECT 1`; updates the health flag.
    pub async fn ping(&self) -> bool {
        self.query("SELECT 1", &[]).await.is_ok()
    }

    /// The answer of `key` through a short-lived cache: an identical query (same plan,
    /// range and flags) started less than `questdb.query_cache_ms` ago, or still in flight,
    /// answers for this one, so identical concurrent queries cost one computation per
    /// interval and an answer is at most that much older than its request. Failures are
    /// not kept.
    pub async fn shared_answer<F>(
        &self,
        key: AnswerKey,
        make: impl FnOnce() -> F,
    ) -> Result<Bytes, QueryError>
    where
        F: std::future::Future<Output = Result<Bytes, QueryError>>,
    {
        self.answers
            .get_or_fetch(key, make, |bytes| bytes.len() <= CACHE_MAX_ANSWER_BYTES)
            .await
    }

    /// The rows `plan` reads in `[from, to)`, uncached, with their states when the plan
    /// merges them.
    pub async fn fetch_rows(
        &self,
        plan: &QueryPlan,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Vec<WindowRow>, QueryError> {
        self.fetch_rows_with(plan, from, to, plan.needs_state())
            .await
    }

    /// The rows `plan` reads in `[from, to)`, uncached, with their states if `with_state`.
    pub async fn fetch_rows_with(
        &self,
        plan: &QueryPlan,
        from: UnixMillis,
        to: UnixMillis,
        with_state: bool,
    ) -> Result<Vec<WindowRow>, QueryError> {
        let table = self.table_of(plan);
        self.fetch_from(&table, plan, from, to, with_state).await
    }

    /// The rows `plan` selects in `[from, to)` of `table`.
    pub(super) async fn fetch_from(
        &self,
        table: &str,
        plan: &QueryPlan,
        from: UnixMillis,
        to: UnixMillis,
        with_state: bool,
    ) -> Result<Vec<WindowRow>, QueryError> {
        let query = RowQuery::rows(table, plan, from, to, with_state);
        self.row_queries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::QUESTDB_ROW_QUERIES).increment(1);
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
        let query = RowQuery::rows(&self.table_of(plan), plan, from, to, plan.needs_state());
        let sql = format!("EXPLAIN {}", query.sql);
        let rows = self.query(&sql, &query.params()).await?;
        rows.iter()
            .map(|row| row.try_get::<_, String>(0).map_err(QueryError::decode))
            .collect()
    }

    /// Distinct series (canonical JSON) of `scope`, at most `limit`.
    pub async fn distinct_series(
        &self,
        scope: &SeriesScope<'_>,
        limit: usize,
    ) -> Result<Vec<String>, QueryError> {
        let query = RowQuery::distinct_series(&self.config.table, scope, limit);
        let rows = self.query(&query.sql, &query.params()).await?;
        rows.iter()
            .map(|row| {
                row.try_get::<_, Option<String>>(0)
                    .map(Option::unwrap_or_default)
                    .map_err(QueryError::decode)
            })
            .collect()
    }

    /// Per series (canonical JSON) of `scope` in the base table, the sum of `count` and of
    /// `sum` (0 when absent); at most `limit` series.
    pub async fn series_totals(
        &self,
        scope: &SeriesScope<'_>,
        limit: usize,
    ) -> Result<Vec<SeriesTotal>, QueryError> {
        let query = RowQuery::series_totals(&self.config.table, scope, limit);
        let rows = self.query(&query.sql, &query.params()).await?;
        rows.iter()
            .map(|row| {
                Ok(SeriesTotal {
                    series: row
                        .try_get::<_, Option<String>>(0)
                        .map_err(QueryError::decode)?
                        .unwrap_or_default(),
                    count: row
                        .try_get::<_, Option<i64>>(1)
                        .map_err(QueryError::decode)?
                        .unwrap_or(0),
                    sum: row
                        .try_get::<_, Option<f64>>(2)
                        .map_err(QueryError::decode)?
                        .unwrap_or(0.0),
                })
            })
            .collect()
    }
}

/// A series' totals over a range (see [`QuestDb::series_totals`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesTotal {
    /// The series' dimensions, canonical JSON.
    pub series: String,
    /// Sum of the windows' `count`.
    pub count: i64,
    /// Sum of the windows' `sum`.
    pub sum: f64,
}
