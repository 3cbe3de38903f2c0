//! A topic's ring: the last `ring_capacity` derived widget values, in id order, that streams
//! read from their cursors; `floor` says which ids it still covers.

use crate::query::{DerivedWindow, QueryPlan};
use rtdash_shared::time::UnixMillis;
use std::collections::VecDeque;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

/// One derived widget value in a topic's ring.
#[derive(Debug)]
pub struct RingEntry {
    /// Id (hub-wide, increasing).
    pub id: u64,
    /// The plan it is a value of.
    pub plan: Arc<PlanReg>,
    /// The value.
    pub window: DerivedWindow,
    /// When the gateway received the update behind it.
    pub received_at: UnixMillis,
    /// Serialized `update` event data per (widget id, stale flag), shared by every viewer of
    /// the same widget so a fan-out to thousands serializes once.
    pub rendered: Mutex<Vec<(String, bool, Arc<str>)>>,
}

impl RingEntry {
    /// The event data for `widget_id`, rendered by `render` on first use.
    pub fn rendered(
        &self,
        widget_id: &str,
        stale: bool,
        render: impl FnOnce() -> String,
    ) -> Arc<str> {
        let mut cache = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, json)) = cache
            .iter()
            .find(|(id, flag, _)| id == widget_id && *flag == stale)
        {
            return json.clone();
        }
        let json: Arc<str> = Arc::from(render());
        if cache.len() < 64 {
            cache.push((widget_id.to_owned(), stale, json.clone()));
        }
        json
    }
}

/// A plan registered on a topic by one or more viewers.
#[derive(Debug)]
pub struct PlanReg {
    /// The plan.
    pub plan: QueryPlan,
    /// Hub counter when the plan was registered: the ring holds every value of this plan
    /// with a larger id (while `floor` allows).
    pub registered_at: u64,
    /// Start of the earliest range a snapshot seeded into memory for this plan
    /// (`i64::MAX` until one did): windows from there on are complete in memory.
    pub seeded_from: AtomicI64,
}

/// The ring of one topic.
#[derive(Debug)]
pub(super) struct Ring {
    entries: VecDeque<Arc<RingEntry>>,
    /// Every entry with a larger id is still in the ring.
    floor: u64,
}

impl Ring {
    /// An empty ring covering every id above `floor`.
    pub(super) fn new(floor: u64) -> Self {
        Self {
            entries: VecDeque::new(),
            floor,
        }
    }

    /// Every entry with a larger id is still in the ring.
    pub(super) fn floor(&self) -> u64 {
        self.floor
    }

    /// Entries with id > `cursor`, or `None` when some were already evicted (`cursor` is
    /// below the floor).
    pub(super) fn after(&self, cursor: u64) -> Option<Vec<Arc<RingEntry>>> {
        if cursor < self.floor {
            return None;
        }
        let start = self.entries.partition_point(|entry| entry.id <= cursor);
        Some(self.entries.range(start..).cloned().collect())
    }

    /// Appends `entry` (its id above every other), evicting the oldest beyond `capacity`.
    pub(super) fn push(&mut self, entry: Arc<RingEntry>, capacity: usize) {
        self.entries.push_back(entry);
        while self.entries.len() > capacity {
            if let Some(evicted) = self.entries.pop_front() {
                self.floor = evicted.id;
            }
        }
    }
}
