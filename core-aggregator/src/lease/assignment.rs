//! The contract between the lease manager and a partition worker: what the worker is given
//! for a partition it now owns, and how it reports that it stopped.

use super::fence::Fence;
use crate::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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
