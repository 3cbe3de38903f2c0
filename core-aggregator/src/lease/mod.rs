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
//! Files: `values.rs` (the values in the bucket), `assignment.rs` (what a worker is given and
//! how it stops), `fence.rs` (the fence and its watchdog), `manager.rs` (the manager).

mod assignment;
mod fence;
mod manager;
mod values;

pub use assignment::{Assignment, Stopped, WorkerFactory};
pub use fence::Fence;
pub use manager::{LeaseManager, LeaseSettings};
pub use values::{member_key, LeaseValue, MemberValue};
