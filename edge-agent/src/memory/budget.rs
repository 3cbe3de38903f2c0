//! The memory budget ingest checks before it takes a request, and the per-component
//! estimates it counts when the allocator's figure is not available.

use super::allocator::AllocatorStats;
use crate::aggregate::Shards;
use crate::publish::archive::Archive;
use crate::publish::deadletter::DeadLetters;
use crate::publish::spool::Spool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The memory budget (see [the module docs](super)): with the allocator's figure, the bytes jemalloc
/// has allocated plus the request bodies being read; otherwise the sum of the per-component
/// estimates: aggregation state, in-memory spool, dead-letter queue, the archive queue (with
/// the `backpressure` policy) and request bodies being read.
#[derive(Debug)]
pub struct MemoryBudget {
    /// The budget in bytes.
    pub limit: u64,
    shards: Arc<Shards>,
    spool: Arc<Spool>,
    dlq: Arc<DeadLetters>,
    archive: Option<Arc<Archive>>,
    bodies: AtomicU64,
    allocator: Option<Arc<AllocatorStats>>,
}

impl MemoryBudget {
    /// A budget of `limit` bytes counted with estimates of these parts (the archive's only
    /// with its `backpressure` policy).
    pub fn new(
        limit: u64,
        shards: Arc<Shards>,
        spool: Arc<Spool>,
        dlq: Arc<DeadLetters>,
        archive: Option<Arc<Archive>>,
    ) -> Self {
        Self {
            limit,
            shards,
            spool,
            dlq,
            archive,
            bodies: AtomicU64::new(0),
            allocator: None,
        }
    }

    /// Counts the allocator's figure instead of the estimates.
    pub fn with_allocator(mut self, allocator: Option<Arc<AllocatorStats>>) -> Self {
        self.allocator = allocator;
        self
    }

    /// The allocator's statistics, when the budget counts them.
    pub fn allocator(&self) -> Option<&Arc<AllocatorStats>> {
        self.allocator.as_ref()
    }

    /// The per-component estimates (the archive's queue whatever its policy).
    pub fn estimates(&self) -> Estimates {
        Estimates {
            aggregation: self.shards.approx_bytes(),
            spool: self.spool.stats().memory_bytes.load(Ordering::Relaxed),
            dlq: self.dlq.memory_bytes(),
            archive: self.archive.as_ref().map_or(0, |a| a.queued_bytes()),
            bodies: self.bodies.load(Ordering::Relaxed),
        }
    }

    /// Bytes counted against the budget.
    pub fn used(&self) -> u64 {
        let bodies = self.bodies.load(Ordering::Relaxed);
        if let Some(allocator) = &self.allocator {
            return allocator.allocated() + bodies;
        }
        let archive = self
            .archive
            .as_ref()
            .filter(|a| a.counts_in_budget())
            .map_or(0, |a| a.queued_bytes());
        self.shards.approx_bytes()
            + self.spool.stats().memory_bytes.load(Ordering::Relaxed)
            + self.dlq.memory_bytes()
            + archive
            + bodies
    }

    /// Whether the budget is exhausted.
    pub fn exhausted(&self) -> bool {
        self.used() >= self.limit
    }

    /// A charge for the body of one request, empty until it [adds](BodyCharge::add) bytes.
    pub fn charge(&self) -> BodyCharge<'_> {
        BodyCharge {
            budget: self,
            bytes: 0,
        }
    }
}

/// The body bytes one request counts against the budget, released when dropped.
#[derive(Debug)]
pub struct BodyCharge<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl BodyCharge<'_> {
    /// Counts `bytes` more; false when the budget is now exhausted.
    pub fn add(&mut self, bytes: u64) -> bool {
        self.bytes += bytes;
        self.budget.bodies.fetch_add(bytes, Ordering::Relaxed);
        !self.budget.exhausted()
    }
}

impl Drop for BodyCharge<'_> {
    fn drop(&mut self) {
        self.budget.bodies.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The per-component estimates (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimates {
    /// Aggregation state: pending deltas and series-cap bookkeeping.
    pub aggregation: u64,
    /// Partial batches held in memory by the spool.
    pub spool: u64,
    /// Dead letters queued in memory.
    pub dlq: u64,
    /// Archive chunks buffered and queued (counted in the estimate-based budget only with the
    /// `backpressure` policy).
    pub archive: u64,
    /// Request bodies being read.
    pub bodies: u64,
}

impl Estimates {
    /// The components as `(label, bytes)`.
    pub fn components(&self) -> [(&'static str, u64); 5] {
        [
            ("aggregation", self.aggregation),
            ("spool", self.spool),
            ("dlq", self.dlq),
            ("archive", self.archive),
            ("bodies", self.bodies),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_component_has_its_gauge() {
        let labels: Vec<&str> = Estimates::default()
            .components()
            .iter()
            .map(|(label, _)| *label)
            .collect();
        assert_eq!(labels, crate::metrics::MEMORY_COMPONENTS);
    }
}
