//! The QuestDB writer: a dedicated OS thread (questdb-rs' `Sender` is blocking) fed by a
//! bounded channel of rows, writing ILP over HTTP into the WAL table with
//! `DEDUP UPSERT KEYS(ts, tenant, metric, series)`, so every rewrite is an idempotent upsert.
//!
//! - **Batching**: a batch starts with the first row received and is sent once it holds
//!   `writer.batch_rows` rows or `writer.flush_ms` after its first row.
//! - **Full channel**: [`RowSender::send`] waits, so the partition consumers stop pulling from
//!   JetStream (backpressure). Nothing is dropped.
//! - **Errors**: a failed request is retried with the same rows, backing off from 100 ms to
//!   `writer.max_backoff_ms`, for as long as it takes. A batch QuestDB rejects as invalid
//!   three times in a row is retried row by row, and rows it rejects alone are logged and
//!   dropped (a schema problem must not stall every partition).
//! - **Fencing**: each row carries its partition's ownership epoch; rows of a partition this
//!   process no longer owns are dropped before every attempt, so a deposed owner does not
//!   overwrite its successor's rows with older versions.
//! - **Confirmations**: after a successful request the final rows are confirmed to their
//!   partition worker (closed windows are evicted only once their final row is confirmed).
//!
//! Files: `rows.rs` (the row channel, ownership epochs, confirmations), `writer.rs` (the
//! writer thread), `ilp.rs` (a window as an ILP row), `table.rs` (the tables, `/exec`, the
//! readiness probe).

mod ilp;
mod rows;
mod table;
mod writer;

pub use ilp::append_row;
pub use rows::{ConfirmRouter, Confirmation, Ownership, Reserved, Row, RowSender, UNFENCED};
pub use table::{create_table_statement, ensure_table, exec, probe, table_names, table_statements};
pub use writer::QuestDbWriter;
