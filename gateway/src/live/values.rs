//! A registered plan's values derived from a topic's memory: the value of one served window
//! (per series for a grouped plan, `other` merging the groups beyond the top), and every
//! value memory is complete for (what a snapshot overlays and a viewer that fell behind
//! gets). Pure: no I/O, no locking.

use super::memory::{MemEntry, Memories};
use super::ring::{Groups, LiveValue, PlanReg, SeriesTag};
use crate::query::group::{group_key, GroupKey};
use crate::query::QueryPlan;
use rtdash_shared::time::UnixMillis;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Which values of a plan a changed series-window makes stale.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Part {
    /// The plan's single series.
    Whole,
    /// One series of a grouped plan (by its tag's index; `other` is the last).
    Series(usize),
}

/// The part of `reg`'s values `entry` feeds (`None` for a grouped plan not ranked yet).
pub(super) fn part_of(reg: &PlanReg, entry: &MemEntry) -> Option<Part> {
    if !reg.plan.is_grouped() {
        return Some(Part::Whole);
    }
    let key = group_key(&reg.plan, &entry.row);
    let groups = reg.groups_admitting(&key)?;
    Some(Part::Series(groups.tag_of(&key).index))
}

/// `reg`'s value for `part` of the served window starting at `bucket`.
pub(super) fn value(
    memories: &Memories,
    reg: &PlanReg,
    bucket: UnixMillis,
    part: &Part,
    now: UnixMillis,
) -> Option<LiveValue> {
    let plan = &reg.plan;
    let memory = memories.get(plan.source_window_ms)?;
    match part {
        Part::Whole => memory
            .derive_where(plan, bucket, now, |_| true)
            .map(|window| LiveValue {
                series: None,
                window,
            }),
        Part::Series(index) => {
            let groups = reg.groups()?;
            let tag = groups.tags.get(*index)?.clone();
            memory
                .derive_where(plan, bucket, now, in_series(plan, &groups, &tag))
                .map(|window| LiveValue {
                    series: Some(tag),
                    window,
                })
        }
    }
}

/// Whether an entry belongs to the series of `tag`.
fn in_series<'a>(
    plan: &'a QueryPlan,
    groups: &'a Groups,
    tag: &'a SeriesTag,
) -> impl Fn(&MemEntry) -> bool + 'a {
    move |entry: &MemEntry| {
        let key: GroupKey = group_key(plan, &entry.row);
        if tag.other {
            !groups.top.contains(&key)
        } else {
            groups.top.get(tag.index) == Some(&key)
        }
    }
}

/// Every value of `reg` memory is complete for, oldest window first.
pub(super) fn memory_values(memories: &Memories, reg: &PlanReg, now: UnixMillis) -> Vec<LiveValue> {
    let plan = &reg.plan;
    let Some(memory) = memories.get(plan.source_window_ms) else {
        return Vec::new();
    };
    let from = reg.seeded_from.load(Ordering::SeqCst);
    let mut values = Vec::new();
    let groups = if plan.is_grouped() {
        match reg.groups() {
            Some(groups) => Some(groups),
            None => return Vec::new(),
        }
    } else {
        None
    };
    for bucket in memory.buckets_from(plan, from) {
        match &groups {
            None => values.extend(value(memories, reg, bucket, &Part::Whole, now)),
            Some(groups) => {
                let mut tags: Vec<&Arc<SeriesTag>> = memory
                    .groups_in(plan, bucket)
                    .iter()
                    .map(|key| groups.tag_of(key))
                    .collect();
                tags.sort_by_key(|tag| tag.index);
                tags.dedup_by_key(|tag| tag.index);
                for tag in tags {
                    values.extend(value(memories, reg, bucket, &Part::Series(tag.index), now));
                }
            }
        }
    }
    values
}
