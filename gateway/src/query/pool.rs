//! The QuestDB reader: a small pool of pipelined PostgreSQL-wire connections
//! (tokio-postgres) with the prepared statements of each cached, and the metric-query rows
//! shared through a [`SingleFlight`] cache.

use super::derive::WindowRow;
use super::plan::QueryPlan;
use super::single_flight::{Limits, SingleFlight};
use super::sql::{row_from_pg, RowQuery};
use super::QueryError;
use crate::config::QuestDbConfig;
use crate::metrics as names;
use crate::tasks::Tasks;
use rtdash_shared::time::UnixMillis;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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

/// The row-query cache: expired entries are swept beyond 256; beyond 4,096 a query is
/// answered uncached.
const ROW_CACHE_LIMITS: Limits = Limits {
    sweep_from: 256,
    max_entries: 4_096,
};
/// Largest answer (rows) kept in the row-query cache.
const CACHE_MAX_ROWS: usize = 100_000;

/// Rows shared by identical queries ([`QuestDb::fetch_rows_shared`]), with the HTTP answer
/// rendered from them once ([`QuestDb::fetch_rendered`]): at a high request rate the
/// rendering (formatting timestamps, JSON) costs more than everything else of a cached answer.
#[derive(Debug)]
pub struct SharedRows {
    /// The rows.
    pub rows: Vec<WindowRow>,
    rendered: OnceLock<bytes::Bytes>,
}

/// (plan, from, to) of a metric query.
type RowKey = (QueryPlan, UnixMillis, UnixMillis);

/// The QuestDB reader: a pool of PostgreSQL-wire connections.
pub struct QuestDb {
    config: QuestDbConfig,
    rows: SingleFlight<RowKey, Arc<SharedRows>, QueryError>,
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
    /// A pool for `config`; connections are opened on first use and reopened after errors,
    /// their I/O runs on `tasks` until [`QuestDb::close`].
    pub fn new(config: QuestDbConfig, tasks: Tasks) -> Self {
        let slots = (0..config.pool_size.max(1))
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        Self {
            rows: SingleFlight::new(
                Duration::from_millis(config.query_cache_ms),
                ROW_CACHE_LIMITS,
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

    /// Creates the table if it is missing.
    pub async fn ensure_table(&self) -> Result<(), QueryError> {
        let sql = rtdash_shared::schema::create_table_sql_for(&self.config.table);
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
        self.rows
            .get_or_fetch(
                (plan.clone(), from, to),
                || async {
                    let rows = self.fetch_rows(plan, from, to).await?;
                    Ok(Arc::new(SharedRows {
                        rows,
                        rendered: OnceLock::new(),
                    }))
                },
                |shared| shared.rows.len() <= CACHE_MAX_ROWS,
            )
            .await
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
        let query = RowQuery::rows(&self.config.table, plan, from, to);
        let sql = format!("EXPLAIN {}", query.sql);
        let rows = self.query(&sql, &query.params()).await?;
        rows.iter()
            .map(|row| row.try_get::<_, String>(0).map_err(QueryError::decode))
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
                    .map_err(QueryError::decode)
            })
            .collect()
    }
}
