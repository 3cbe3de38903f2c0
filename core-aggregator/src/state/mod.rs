//! The partition state machine (pure: no I/O, no clock of its own) and its checkpoint forms.

pub mod borrowed;
pub mod dedup;
pub mod partition;
pub mod settings;
pub mod snapshot;
pub mod tiers;
pub mod window;

#[cfg(test)]
mod tests;

pub use borrowed::{decode_batch, PartialBatchRef};
pub use dedup::SeqTracker;
pub use partition::{Capture, Counters, Effect, PartitionState};
pub use settings::{Settings, StoreRoom};
pub use snapshot::{PartitionMeta, Segment, SegmentError, WindowRecord};
pub use tiers::{TierSet, MAX_TIERS};
pub use window::{WindowId, WindowKey, WindowOutput};
