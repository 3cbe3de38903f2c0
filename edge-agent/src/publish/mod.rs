//! Getting partial batches (and dead letters, and archived events) into JetStream without
//! losing or duplicating them.
//!
//! - [`seq`]: batch sequence numbers per partition, monotonic across restarts;
//! - [`spool`]: every batch from creation to acknowledgement, in memory then on disk;
//! - [`segment`]: the append-only segment files the disk spools are made of;
//! - [`pipeline`]: the pipelined publisher (many publishes in flight, retries with the same
//!   message id, backoff, pause while disconnected).

pub mod pipeline;
pub mod segment;
pub mod seq;
pub mod spool;
