//! What partition workers hand to the writer: rows in a bounded channel (with room reserved
//! up front), each tagged with its partition's ownership epoch, and the confirmations of the
//! final rows written, routed back to their worker.

use crate::error::Error;
use crate::state::{StoreRoom, WindowId, WindowOutput};
use rtdash_runtime::trace_context::TraceParent;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::mpsc;

/// Epoch meaning "not fenced" (rows from `replay`).
pub const UNFENCED: u64 = 0;

/// One window version to write.
#[derive(Debug)]
pub struct Row {
    /// Partition the window belongs to.
    pub partition: u32,
    /// Ownership epoch the row was produced under ([`UNFENCED`] for replay).
    pub epoch: u64,
    /// Confirm the write to the partition worker.
    pub confirm: bool,
    /// The window version.
    pub output: WindowOutput,
    /// The trace the version was emitted in (only while traces are exported): the write
    /// span continues it.
    pub trace: Option<TraceParent>,
}

impl Row {
    /// About how many bytes the row takes in an ILP request: its state plus the rest (names,
    /// numbers and timestamps take 200 to 300 bytes).
    pub fn estimated_bytes(&self) -> usize {
        320 + self.output.state.as_ref().map_or(0, String::len)
    }
}

/// Which ownership epoch of each partition this process currently holds.
#[derive(Debug)]
pub struct Ownership {
    epochs: Vec<AtomicU64>,
}

impl Ownership {
    /// No partition owned.
    pub fn new(partitions: u32) -> Self {
        Self {
            epochs: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Starts owning `partition` under `epoch`.
    pub fn set(&self, partition: u32, epoch: u64) {
        if let Some(slot) = self.epochs.get(partition as usize) {
            slot.store(epoch, Ordering::SeqCst);
        }
    }

    /// Stops owning `partition` if it is still owned under `epoch`.
    pub fn clear(&self, partition: u32, epoch: u64) {
        if let Some(slot) = self.epochs.get(partition as usize) {
            let _ = slot.compare_exchange(epoch, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Whether a row produced under `epoch` may still be written.
    pub fn is_current(&self, partition: u32, epoch: u64) -> bool {
        epoch == UNFENCED
            || self
                .epochs
                .get(partition as usize)
                .is_some_and(|slot| slot.load(Ordering::SeqCst) == epoch)
    }
}

/// Written window versions, per partition worker.
pub type Confirmation = Vec<(WindowId, u64)>;

/// Routes confirmations to the worker of each partition (registered per epoch).
#[derive(Debug, Default)]
pub struct ConfirmRouter {
    routes: Mutex<HashMap<u32, (u64, mpsc::UnboundedSender<Confirmation>)>>,
}

impl ConfirmRouter {
    /// Registers the worker of `partition` under `epoch`; returns its receiver.
    ///
    /// Unbounded, because the writer must never wait for a worker (the worker may itself be
    /// waiting for room in the row channel); it holds at most one entry per written batch
    /// while the worker is busy.
    pub fn register(&self, partition: u32, epoch: u64) -> mpsc::UnboundedReceiver<Confirmation> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(partition, (epoch, tx));
        }
        rx
    }

    /// Removes the route of `partition` if it is still the one of `epoch`.
    pub fn unregister(&self, partition: u32, epoch: u64) {
        if let Ok(mut routes) = self.routes.lock() {
            if routes.get(&partition).is_some_and(|(e, _)| *e == epoch) {
                routes.remove(&partition);
            }
        }
    }

    /// Hands `confirmation` to the worker of `partition` if it still runs under `epoch`.
    pub(super) fn send(&self, partition: u32, epoch: u64, confirmation: Confirmation) {
        if let Ok(routes) = self.routes.lock() {
            if let Some((e, tx)) = routes.get(&partition) {
                if *e == epoch {
                    let _ = tx.send(confirmation);
                }
            }
        }
    }
}

/// Handle for sending rows to the writer.
#[derive(Clone, Debug)]
pub struct RowSender {
    tx: mpsc::Sender<Row>,
}

impl RowSender {
    /// A handle on the writer's channel.
    pub(super) fn new(tx: mpsc::Sender<Row>) -> Self {
        Self { tx }
    }

    /// Queues a row, waiting while the channel is full (backpressure). Fails only when the
    /// writer has stopped.
    pub async fn send(&self, row: Row) -> Result<(), Error> {
        self.tx.send(row).await.map_err(|_| Error::WriterStopped)
    }

    /// Rows waiting in the channel.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Room for more rows now: what the channel has free, and for provisional versions only
    /// up to a quarter of it filled, so that a writer falling behind gets the finals first
    /// and the optional rows wait.
    pub fn room(&self) -> StoreRoom {
        let capacity = self.tx.max_capacity();
        StoreRoom {
            rows: self.tx.capacity(),
            provisional: (capacity / 4).saturating_sub(self.queued()),
        }
    }

    /// The channel's size in rows.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Reserves up to `wanted` slots in the channel without waiting: as many as are free now,
    /// or none if another partition took them first. Slots not used are given back on drop.
    pub fn try_reserve(&self, wanted: usize) -> Reserved<'_> {
        let wanted = wanted.min(self.tx.capacity());
        let permits = if wanted == 0 {
            None
        } else {
            self.tx.try_reserve_many(wanted).ok()
        };
        Reserved { permits }
    }
}

/// Slots reserved in the row channel by [`RowSender::try_reserve`].
pub struct Reserved<'a> {
    permits: Option<mpsc::PermitIterator<'a, Row>>,
}

impl Reserved<'_> {
    /// Slots left.
    pub fn len(&self) -> usize {
        self.permits.as_ref().map_or(0, ExactSizeIterator::len)
    }

    /// Whether no slot is left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `row` in a reserved slot; gives it back when none is left.
    pub fn send(&mut self, row: Row) -> Option<Row> {
        match self.permits.as_mut().and_then(Iterator::next) {
            Some(permit) => {
                permit.send(row);
                None
            }
            None => Some(row),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_fences_old_epochs() {
        let own = Ownership::new(4);
        assert!(own.is_current(1, UNFENCED));
        assert!(!own.is_current(1, 7));
        own.set(1, 7);
        assert!(own.is_current(1, 7));
        own.clear(1, 6);
        assert!(own.is_current(1, 7));
        own.clear(1, 7);
        assert!(!own.is_current(1, 7));
        assert!(!own.is_current(9, 7));
    }
}
