//! Partition ownership through leases in KV `rtdash_leases`.
//!
//! - **Lease**: key `partition.<p>`, JSON [`LeaseValue`] `{owner, expires_at_ms, epoch, token}`.
//!   Acquired with `create` when absent (or deleted), or with a compare-and-set `update` on the
//!   revision when expired (or left by a previous process with the same instance id). Renewed
//!   by compare-and-set every `ttl / 3`. The epoch is the KV revision at acquisition: it
//!   names the owner's checkpoint objects and fences its QuestDB rows.
//! - **Membership**: every aggregator keeps `member.<id>` = `{expires_at_ms}` fresh, and targets
//!   `ceil(P / live members)` partitions: it acquires free or expired partitions up to the
//!   target (in its rendezvous-hash preference order), and releases extras gracefully (the
//!   worker checkpoints and acknowledges, then the lease is deleted).
//! - **Self-fencing**: a [`Fence`] per owned partition holds `expires_at - margin`; when that
//!   passes without a renewal (NATS unreachable, process stalled), the watchdog cancels it and
//!   the worker stops at once, dropping its in-memory state; the next owner resumes from the
//!   checkpoint. The checkpoint's own compare-and-set fences a deposed owner that wakes up
//!   late, even if its clock is wrong.
//!
//! - **Own thread**: the manager (renewals, membership, watchdog) runs on a thread and runtime of
//!   its own with its own NATS connection ([`LeaseManager::spawn`]); workers run on the
//!   process's main runtime. Busy partition workers (closing tens of thousands of windows,
//!   draining backlogs) then cannot delay a renewal until the lease expires, which would fence
//!   healthy partitions and make them restore and replay: more load, more fences.
//!
//! Clocks: expiry times are wall-clock milliseconds of the writer; aggregators' clocks must
//! agree within the fence margin (NTP).
//!
//! Files: this one (the values in the bucket and what a worker is given), `fence.rs` (the
//! fence and its watchdog), `manager.rs` (the manager).

mod fence;
mod manager;

pub use fence::Fence;
pub use manager::LeaseManager;

use crate::error::Error;
use rtdash_shared::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Value of a partition lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseValue {
    /// Owning aggregator.
    pub owner: String,
    /// Wall-clock expiry.
    pub expires_at_ms: UnixMillis,
    /// Ownership epoch (KV revision at acquisition).
    pub epoch: u64,
    /// Random per acquisition: tells our own write from another owner's.
    pub token: String,
}

/// Value of a membership key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberValue {
    /// Aggregator id.
    pub id: String,
    /// Wall-clock expiry.
    pub expires_at_ms: UnixMillis,
}

/// Membership key of `id`.
pub fn member_key(id: &str) -> String {
    format!("member.{id}")
}

/// What a worker is given for a partition it now owns.
#[derive(Clone, Debug)]
pub struct Assignment {
    /// The partition.
    pub partition: u32,
    /// The ownership epoch.
    pub epoch: u64,
    /// Cancelled to ask for a graceful stop (checkpoint, acknowledge, return).
    pub stop: CancellationToken,
    /// Lost ownership: stop at once.
    pub fence: Fence,
}

/// How a partition worker ended, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Asked to stop ([`Assignment::stop`]): it emitted, checkpointed and acknowledged first,
    /// so the lease can be released.
    Cancelled,
    /// It lost the partition (its fence tripped, or another owner wrote the checkpoint): it
    /// stopped at once and wrote nothing more.
    Fenced,
}

/// Starts the worker of an assignment; it resolves to how the worker stopped, or why it failed.
pub type WorkerFactory = Arc<
    dyn Fn(Assignment) -> Pin<Box<dyn Future<Output = Result<Stopped, Error>> + Send>>
        + Send
        + Sync,
>;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// This aggregator.
    pub instance: String,
    /// Partition count.
    pub partitions: u32,
    /// Lease lifetime.
    pub ttl: Duration,
    /// Fence margin.
    pub margin: Duration,
}
