//! The partition state machine (pure: no I/O, no clock of its own) and its checkpoint forms.

pub mod borrowed;
pub mod dedup;
pub mod partition;
pub mod snapshot;
pub mod window;

#[cfg(test)]
mod tests;

pub use borrowed::{decode_batch, PartialBatchRef};
pub use dedup::SeqTracker;
pub use partition::{Capture, Counters, Effect, PartitionState, Settings, StoreRoom};
pub use snapshot::{PartitionMeta, Segment, SegmentError, WindowRecord};
pub use window::{WindowId, WindowKey, WindowOutput};
