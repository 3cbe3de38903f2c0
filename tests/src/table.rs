//! The metric windows table a test or stack writes to (one per test, in the shared QuestDB):
//! rows written the way the core aggregator writes them (`table/write.rs`) and read back
//! (`table/read.rs`).

mod read;
mod write;

pub use read::{fetch_rows, fetch_rows_where, fetch_states, stored_rows, StoredRow};
pub use write::{insert_rows, tier_table, Row};
