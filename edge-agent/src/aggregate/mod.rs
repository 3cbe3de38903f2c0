//! Aggregation shards and the flusher.
//!
//! **Shards.** The shared [`Aggregator`](rtdash_shared::aggregate::Aggregator) is
//! single-threaded, so the agent keeps `N` of them, each behind its own mutex. A request takes
//! one shard (round robin, skipping locked ones) for all of its events, so a request costs one
//! lock. The deltas of one series can thus sit
//! in several shards; they are published as separate entries of the same batch and merged by
//! the aggregator (sketch merge is associative and commutative).
//!
//! **Flusher.** Every `flush_interval_ms` it drains every shard, groups the entries by
//! `series.partition(P)`, cuts each partition's entries into batches of about
//! `publish.max_batch_bytes` encoded, and hands them to the
//! [`Spool`](crate::publish::spool::Spool). A partition without data gets an empty heartbeat
//! batch when it has had no message for `heartbeat_interval_ms` (and nothing of it is waiting
//! in the spool), so windows close at the aggregator even when this agent sees no traffic for
//! them.
//!
//! **Watermark.** A batch carries the agent's watermark: the agent's clock when the flush
//! started, held back to the receive time of the oldest request still being processed (its
//! events are not in the shards yet and will go out with a later flush). It never goes back.
//!
//! **Durable acknowledgements** (`ingest.durable_ack`): a request answers `202` once the
//! flush carrying its events has written them to the disk spool (`durable.rs`).
//!
//! **Series ceilings.** A tenant's `max_series_per_window` quota lowers the series cap of
//! every metric of the tenant (`ceilings.rs`).
//!
//! `shards.rs` holds the shards, `in_flight.rs` the requests in progress that hold the
//! watermark back, `flusher.rs` the flusher, `durable.rs` the durable flush for waiting
//! requests.

pub mod ceilings;
mod durable;
mod flusher;
mod in_flight;
mod shards;

pub use durable::DurableAcks;
pub use flusher::{chunk_by_size, FlushConfig, FlushReport, Flusher};
pub use in_flight::{InFlightGuard, InFlightRequests};
pub use shards::{AddTotals, Shards};
