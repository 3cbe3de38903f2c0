//! What the agent's memory budget counts.
//!
//! **With the allocator's figure** (the `edge-agent` binary, built with the default cargo
//! feature `jemalloc`): jemalloc is the global allocator, and a background thread reads its
//! `stats.allocated` (bytes in live allocations, the whole process: aggregation state,
//! spool, queues, HTTP and NATS buffers, everything) every [`REFRESH_INTERVAL`] into an
//! atomic. The budget compares that figure, plus the request bodies being read right now
//! (charged as their chunks arrive, so a burst of large bodies is seen before the next
//! refresh; for at most one refresh they may be counted twice, erring on the safe side), with
//! `memory_budget_bytes`.
//!
//! **With estimates** (built without `jemalloc`, or the library inside another program whose
//! global allocator is not jemalloc: tests, examples): the sum of per-component estimates,
//! aggregation state ([`rtdash_shared::aggregate::Aggregator::approx_bytes`], measured at
//! every drain), in-memory spool, dead-letter queue, archive queue (with the `backpressure`
//! policy) and bodies being read. Estimates miss what they do not model (allocator overhead
//! and fragmentation, buffers of the HTTP server and the NATS client) and run below the RSS.
//!
//! Either way the per-component estimates are exported as metrics
//! (`rtdash_agent_memory_estimate_bytes{component}`), and the allocator's figures as
//! `rtdash_agent_memory_allocated_bytes` and `rtdash_agent_memory_resident_bytes`.
//!
//! Whether jemalloc really serves the process is checked once, at startup, by allocating a
//! few megabytes and watching `stats.allocated` grow ([`AllocatorStats::start`]): linking the
//! crate is not enough (`tikv-jemalloc-sys` prefixes its symbols, so it only allocates when it
//! is the `#[global_allocator]`).
//!
//! `allocator.rs` holds the allocator's figures and the thread that refreshes them,
//! `budget.rs` the budget ingest checks and the per-component estimates.

mod allocator;
mod budget;

pub use allocator::{AllocatorStats, REFRESH_INTERVAL};
pub use budget::{BodyCharge, Estimates, MemoryBudget};
