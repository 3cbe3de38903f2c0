//! The union of many agents' records for one tenant: counts add up, distinct sketches merge
//! (HyperLogLog union), examples are the union in order, capped at [`MAX_EXAMPLES`].

use super::record::{OverflowRecord, TypeRecord, MAX_EXAMPLES};
use crate::sketch::distinct::DistinctSketch;
use crate::time::format_rfc3339;
use serde::Serialize;
use std::collections::BTreeMap;

/// The event types of a tenant, as `GET /v1/event-types` serves them.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct EventTypes {
    /// Tenant.
    pub tenant_id: String,
    /// Event types seen within the horizon, by name.
    pub event_types: Vec<EventTypeInfo>,
    /// Events of event types not kept (beyond the per-tenant cap of an agent).
    pub event_types_dropped: u64,
    /// Events whose properties were not kept (beyond an agent's total property cap).
    pub properties_dropped: u64,
    /// Agents whose records were merged.
    pub agents: usize,
}

/// One event type.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct EventTypeInfo {
    /// The event type.
    pub event_type: String,
    /// Events accepted.
    pub events: u64,
    /// First seen (RFC 3339).
    pub first_seen: String,
    /// Last seen (RFC 3339).
    pub last_seen: String,
    /// Properties, by name.
    pub properties: Vec<PropertyInfo>,
    /// Property occurrences not kept (names beyond the per-type cap).
    pub properties_dropped: u64,
}

/// One property of an event type.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct PropertyInfo {
    /// The property name.
    pub name: String,
    /// Kinds observed (`number`, `string`, `bool`), most frequent first.
    pub kinds: Vec<String>,
    /// Events per kind.
    pub kind_counts: KindCounts,
    /// Up to five distinct example values (canonical text, cut to the agents' example
    /// length).
    pub examples: Vec<String>,
    /// Approximate number of distinct values (HyperLogLog, standard error about 3 %).
    pub distinct_estimate: u64,
}

/// Events per observed kind.
#[derive(Debug, Default, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct KindCounts {
    /// As a JSON number.
    pub number: u64,
    /// As a JSON string.
    pub string: u64,
    /// As a JSON boolean.
    pub bool: u64,
}

#[derive(Default)]
struct TypeAcc {
    events: u64,
    first_seen: i64,
    last_seen: i64,
    properties: Vec<(String, KindCounts, Vec<String>, DistinctSketch)>,
    properties_dropped: u64,
}

/// Merges every agent's records of `tenant` (`types`: one per agent and event type;
/// `overflows`: one per agent). An undecodable distinct sketch counts as empty. At most
/// `max_types` event types are answered (the rest count as dropped).
pub fn merge(
    tenant: &str,
    types: impl IntoIterator<Item = TypeRecord>,
    overflows: impl IntoIterator<Item = OverflowRecord>,
    agents: usize,
    max_types: usize,
) -> EventTypes {
    let mut by_type: BTreeMap<String, TypeAcc> = BTreeMap::new();
    let mut event_types_dropped = 0u64;
    let mut properties_dropped = 0u64;
    for record in types {
        if !by_type.contains_key(&record.event_type) && by_type.len() >= max_types {
            event_types_dropped += record.events;
            continue;
        }
        let acc = by_type.entry(record.event_type).or_default();
        acc.first_seen = if acc.events == 0 {
            record.first_seen
        } else {
            acc.first_seen.min(record.first_seen)
        };
        acc.last_seen = acc.last_seen.max(record.last_seen);
        acc.events += record.events;
        acc.properties_dropped += record.properties_dropped;
        for property in record.properties {
            let distinct = DistinctSketch::decode(&property.distinct).unwrap_or_default();
            let slot = match acc.properties.iter().position(|p| p.0 == property.name) {
                Some(i) => &mut acc.properties[i],
                None => {
                    acc.properties.push((
                        property.name,
                        KindCounts::default(),
                        Vec::new(),
                        DistinctSketch::new(),
                    ));
                    let last = acc.properties.len() - 1;
                    &mut acc.properties[last]
                }
            };
            slot.1.number += property.numbers;
            slot.1.string += property.strings;
            slot.1.bool += property.bools;
            for example in property.examples {
                if slot.2.len() < MAX_EXAMPLES && !slot.2.contains(&example) {
                    slot.2.push(example);
                }
            }
            slot.3.merge(&distinct);
        }
    }
    for overflow in overflows {
        event_types_dropped += overflow.event_types_dropped;
        properties_dropped += overflow.properties_dropped;
    }
    let event_types = by_type
        .into_iter()
        .map(|(event_type, acc)| {
            let mut properties: Vec<PropertyInfo> = acc
                .properties
                .into_iter()
                .map(|(name, counts, examples, distinct)| PropertyInfo {
                    name,
                    kinds: kinds_of(&counts),
                    kind_counts: counts,
                    examples,
                    distinct_estimate: distinct.estimate().round() as u64,
                })
                .collect();
            properties.sort_by(|a, b| a.name.cmp(&b.name));
            EventTypeInfo {
                event_type,
                events: acc.events,
                first_seen: format_rfc3339(acc.first_seen),
                last_seen: format_rfc3339(acc.last_seen),
                properties,
                properties_dropped: acc.properties_dropped,
            }
        })
        .collect();
    EventTypes {
        tenant_id: tenant.to_owned(),
        event_types,
        event_types_dropped,
        properties_dropped,
        agents,
    }
}

fn kinds_of(counts: &KindCounts) -> Vec<String> {
    let mut kinds = [
        ("number", counts.number),
        ("string", counts.string),
        ("bool", counts.bool),
    ];
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    kinds
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(kind, _)| (*kind).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::PropertyRecord;

    fn record(agent_values: &[&str], first: i64) -> TypeRecord {
        let mut distinct = DistinctSketch::new();
        for v in agent_values {
            distinct.insert(v.as_bytes());
        }
        TypeRecord {
            event_type: "click".into(),
            events: agent_values.len() as u64,
            first_seen: first,
            last_seen: first + 10,
            properties: vec![PropertyRecord {
                name: "user".into(),
                numbers: 0,
                strings: agent_values.len() as u64,
                bools: 0,
                examples: agent_values
                    .iter()
                    .take(5)
                    .map(|v| (*v).to_owned())
                    .collect(),
                distinct: distinct.encode(),
            }],
            properties_dropped: 1,
        }
    }

    #[test]
    fn agents_records_add_up_and_their_examples_and_sketches_unite() {
        let a = record(&["u1", "u2", "u3"], 1_000);
        let b = record(&["u3", "u4", "u5", "u6"], 500);
        let overflow = OverflowRecord {
            event_types_dropped: 4,
            properties_dropped: 2,
        };
        let merged = merge("acme", [a, b], [overflow], 2, 200);
        assert_eq!(merged.event_types.len(), 1);
        let click = &merged.event_types[0];
        assert_eq!(click.events, 7);
        assert_eq!(click.properties_dropped, 2);
        assert_eq!(click.first_seen, format_rfc3339(500));
        assert_eq!(click.last_seen, format_rfc3339(1_010));
        let user = &click.properties[0];
        assert_eq!(user.kinds, ["string"]);
        assert_eq!(user.kind_counts.string, 7);
        assert_eq!(user.examples, ["u1", "u2", "u3", "u4", "u5"]);
        assert_eq!(user.distinct_estimate, 6);
        assert_eq!(merged.event_types_dropped, 4);
        assert_eq!(merged.properties_dropped, 2);
    }

    #[test]
    fn event_types_beyond_the_cap_are_counted_not_answered() {
        let mut other = record(&["x"], 1);
        other.event_type = "view".into();
        let merged = merge("acme", [record(&["u"], 1), other], [], 1, 1);
        assert_eq!(merged.event_types.len(), 1);
        assert_eq!(merged.event_types_dropped, 1);
    }
}
