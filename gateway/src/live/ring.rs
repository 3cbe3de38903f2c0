//! A topic's ring: the last `ring_capacity` derived widget values, in id order, that streams
//! read from their cursors; `floor` says which ids it still covers.

use crate::query::group::GroupKey;
use crate::query::{DerivedWindow, Dims, QueryPlan};
use rtdash_shared::time::UnixMillis;
use std::collections::VecDeque;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, RwLock};

/// Which series of a grouped widget a value belongs to.
#[derive(Debug, PartialEq, Eq)]
pub struct SeriesTag {
    /// Position in the widget's series (`other` last).
    pub index: usize,
    /// The grouped dimensions' values (`{}` for `other`).
    pub dimensions: Dims,
    /// The merge of every group beyond the top ones.
    pub other: bool,
}

/// The series of a grouped plan, fixed by its first snapshot (ranked by the stat over that
/// snapshot's range) while the plan stays registered: live values of the top groups update
/// their series, every other group's go to `other`; while fewer than `limit` groups are
/// ranked, a new group gets a series of its own (appended, see
/// [`PlanReg::groups_admitting`]).
#[derive(Debug)]
pub struct Groups {
    /// The top groups, in rank order.
    pub top: Vec<GroupKey>,
    /// One tag per top group, then `other`'s.
    pub tags: Vec<Arc<SeriesTag>>,
}

impl Groups {
    /// The groups of `top` (keys in rank order) for `plan`.
    pub fn new(plan: &QueryPlan, top: Vec<GroupKey>) -> Self {
        let mut tags: Vec<Arc<SeriesTag>> = top
            .iter()
            .enumerate()
            .map(|(index, key)| {
                Arc::new(SeriesTag {
                    index,
                    dimensions: crate::query::group::group_dimensions(plan, key),
                    other: false,
                })
            })
            .collect();
        tags.push(Arc::new(SeriesTag {
            index: top.len(),
            dimensions: Dims::new(),
            other: true,
        }));
        Self { top, tags }
    }

    /// The tag of the series `key` feeds: its own, or `other`.
    pub fn tag_of(&self, key: &GroupKey) -> &Arc<SeriesTag> {
        let index = self
            .top
            .iter()
            .position(|top| top == key)
            .unwrap_or(self.top.len());
        &self.tags[index]
    }

    /// `other`'s tag.
    pub fn other(&self) -> &Arc<SeriesTag> {
        &self.tags[self.top.len()]
    }
}

/// A value of a plan for one served window (and, when grouped, one series).
#[derive(Clone, Debug, PartialEq)]
pub struct LiveValue {
    /// The series, for a grouped plan.
    pub series: Option<Arc<SeriesTag>>,
    /// The value.
    pub window: DerivedWindow,
}

/// One derived widget value in a topic's ring.
#[derive(Debug)]
pub struct RingEntry {
    /// Id (hub-wide, increasing).
    pub id: u64,
    /// The plan it is a value of.
    pub plan: Arc<PlanReg>,
    /// The series, for a grouped plan.
    pub series: Option<Arc<SeriesTag>>,
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
    /// (`i64::MAX` until one did; `i64::MIN` for a plan one stored row per window serves):
    /// windows from there on are complete in memory. Raised when memory drops windows.
    pub seeded_from: AtomicI64,
    /// The series of a grouped plan, once its first snapshot ranked them.
    pub groups: RwLock<Option<Arc<Groups>>>,
}

impl PlanReg {
    /// A registration of `plan` at `registered_at`, complete from `seeded_from`.
    pub fn new(plan: QueryPlan, registered_at: u64, seeded_from: i64) -> Self {
        Self {
            plan,
            registered_at,
            seeded_from: AtomicI64::new(seeded_from),
            groups: RwLock::new(None),
        }
    }

    /// The grouped plan's series, if ranked yet.
    pub fn groups(&self) -> Option<Arc<Groups>> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The grouped plan's series (if ranked yet), with `key` admitted as a series of its own
    /// when it is new and fewer than the plan's `limit` groups are ranked (a widget whose
    /// snapshot held few groups shows a new one as its own series, not as `other`).
    pub fn groups_admitting(&self, key: &GroupKey) -> Option<Arc<Groups>> {
        let admit =
            |groups: &Groups| !groups.top.contains(key) && groups.top.len() < self.plan.limit;
        let current = self.groups()?;
        if !admit(&current) {
            return Some(current);
        }
        let mut slot = self.groups.write().unwrap_or_else(|e| e.into_inner());
        let current = slot.as_ref()?.clone();
        if !admit(&current) {
            return Some(current);
        }
        let mut top = current.top.clone();
        top.push(key.clone());
        let next = Arc::new(Groups::new(&self.plan, top));
        *slot = Some(next.clone());
        Some(next)
    }

    /// The grouped plan's series: those already fixed, else `rank()`'s top keys (fixed from
    /// now on).
    pub fn groups_or(&self, rank: impl FnOnce() -> Vec<GroupKey>) -> Arc<Groups> {
        let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
        groups
            .get_or_insert_with(|| Arc::new(Groups::new(&self.plan, rank())))
            .clone()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_groups_get_series_of_their_own_up_to_the_limit() {
        let mut plan = QueryPlan::raw("t", "m", "region", 60_000);
        plan.group_by = vec!["region".to_owned()];
        plan.limit = 2;
        let reg = PlanReg::new(plan, 0, 0);
        let key = |region: &str| vec![Some(region.to_owned())];
        assert!(reg.groups_admitting(&key("eu")).is_none(), "not ranked yet");
        reg.groups_or(Vec::new);
        let groups = reg.groups_admitting(&key("eu")).unwrap();
        assert_eq!(groups.top, vec![key("eu")]);
        assert_eq!(reg.groups_admitting(&key("eu")).unwrap().top.len(), 1);
        let groups = reg.groups_admitting(&key("us")).unwrap();
        assert_eq!(groups.top, vec![key("eu"), key("us")]);
        let groups = reg.groups_admitting(&key("ap")).unwrap();
        assert_eq!(groups.top.len(), 2, "the limit is reached");
        assert!(groups.tag_of(&key("ap")).other);
        assert_eq!(groups.tag_of(&key("us")).index, 1);
    }
}
