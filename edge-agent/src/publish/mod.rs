//! Getting partial batches (and dead letters, and archived events) into JetStream without
//! losing or duplicating them.
//!
//! Three outboxes feed one kind of publisher:
//!
//! - [`spool`]: every partial batch from creation to acknowledgement, in memory then on disk;
//! - [`deadletter`]: rejected events and bodies, in memory then on disk;
//! - [`archive`]: accepted events as NDJSON chunks (optional, memory only);
//! - [`pipeline`]: the pipelined publisher each outbox has (many publishes in flight, retries
//!   with the same message id, backoff, pause while disconnected).
//!
//! Beneath them: [`seq`] (batch sequence numbers per partition, monotonic across restarts) and
//! [`segment`] (the append-only segment files the disk spools are made of).

pub mod archive;
pub mod deadletter;
pub mod pipeline;
pub mod segment;
pub mod seq;
pub mod spool;
