//! [`Catalog`]: what the agent has seen of its accepted events, per tenant, event type and
//! property, within the bounds of [`SchemaConfig`]. Updated once per request batch under one
//! lock; read out by the publisher ([`Catalog::take_changes`]).

use crate::config::SchemaConfig;
use crate::metrics::{SCHEMA_DROPPED, SCHEMA_PROPERTIES};
use metrics::{counter, gauge, Counter, Gauge};
use rtdash_shared::discovery::{OverflowRecord, PropertyRecord, TypeRecord, MAX_EXAMPLES};
use rtdash_shared::event::{Event, Scalar};
use rtdash_shared::sketch::distinct::DistinctSketch;
use rtdash_shared::time::UnixMillis;
use std::collections::HashMap as StdHashMap;

/// A fast, seeded hasher: keys are producer-chosen, but a map is capped, so flooding it costs
/// a bounded number of entries whatever their hashes.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Mutex;

/// The schema of every tenant seen, bounded.
#[derive(Debug)]
pub struct Catalog {
    limits: SchemaConfig,
    inner: Mutex<Inner>,
    dropped_tenant: Counter,
    dropped_event_type: Counter,
    dropped_property: Counter,
    properties_gauge: Gauge,
}

#[derive(Debug, Default)]
struct Inner {
    tenants: HashMap<String, TenantSchema>,
    /// Properties recorded over every tenant and type (`max_total_properties`).
    properties: usize,
}

#[derive(Debug, Default)]
struct TenantSchema {
    types: HashMap<String, TypeState>,
    overflow: OverflowRecord,
    overflow_changed: bool,
}

#[derive(Debug)]
struct TypeState {
    events: u64,
    first_seen: UnixMillis,
    last_seen: UnixMillis,
    properties: Vec<PropertyState>,
    index: HashMap<String, usize>,
    properties_dropped: u64,
    changed: bool,
}

#[derive(Debug)]
struct PropertyState {
    name: String,
    numbers: u64,
    strings: u64,
    bools: u64,
    examples: Vec<String>,
    distinct: DistinctSketch,
}

/// What changed since the last [`Catalog::take_changes`], per tenant.
#[derive(Debug, Default)]
pub struct Changes {
    /// `(tenant, record)` of every event type with new events.
    pub types: Vec<(String, TypeRecord)>,
    /// `(tenant, record)` of every tenant whose overflow counts grew.
    pub overflows: Vec<(String, OverflowRecord)>,
}

impl Catalog {
    /// An empty catalog with the bounds of `limits`.
    pub fn new(limits: SchemaConfig) -> Self {
        Self {
            limits,
            inner: Mutex::new(Inner::default()),
            dropped_tenant: counter!(SCHEMA_DROPPED, "what" => "tenant"),
            dropped_event_type: counter!(SCHEMA_DROPPED, "what" => "event_type"),
            dropped_property: counter!(SCHEMA_DROPPED, "what" => "property"),
            properties_gauge: gauge!(SCHEMA_PROPERTIES),
        }
    }

    /// Records the accepted events of one request, received at `now`.
    pub fn observe<'e, 'a: 'e>(
        &self,
        events: impl Iterator<Item = &'e Event<'a>>,
        now: UnixMillis,
    ) {
        let limits = &self.limits;
        let mut dropped = [0u64; 3];
        let mut text = String::new();
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let Inner {
            tenants,
            properties,
        } = &mut *inner;
        for event in events {
            if !tenants.contains_key(event.tenant_id.as_ref()) {
                if tenants.len() >= limits.max_tenants {
                    dropped[0] += 1;
                    continue;
                }
                tenants.insert(event.tenant_id.to_string(), TenantSchema::default());
            }
            let Some(tenant) = tenants.get_mut(event.tenant_id.as_ref()) else {
                continue;
            };
            if !tenant.types.contains_key(event.event_type.as_ref()) {
                if tenant.types.len() >= limits.max_event_types {
                    dropped[1] += 1;
                    tenant.overflow.event_types_dropped += 1;
                    tenant.overflow_changed = true;
                    continue;
                }
                tenant
                    .types
                    .insert(event.event_type.to_string(), TypeState::new(now));
            }
            let Some(kind) = tenant.types.get_mut(event.event_type.as_ref()) else {
                continue;
            };
            kind.events += 1;
            kind.last_seen = kind.last_seen.max(now);
            kind.changed = true;
            let mut total_cap_hit = false;
            for (position, (name, value)) in event.properties.iter().enumerate() {
                // Events of a type mostly carry the same properties in the same order: the
                // property at the same position is tried before the hash lookup.
                let hint = kind
                    .properties
                    .get(position)
                    .is_some_and(|p| p.name == name.as_ref())
                    .then_some(position);
                let slot = match hint.or_else(|| kind.index.get(name.as_ref()).copied()) {
                    Some(i) => &mut kind.properties[i],
                    None if kind.properties.len() >= limits.max_properties => {
                        kind.properties_dropped += 1;
                        dropped[2] += 1;
                        continue;
                    }
                    None if *properties >= limits.max_total_properties => {
                        total_cap_hit = true;
                        dropped[2] += 1;
                        continue;
                    }
                    None => {
                        *properties += 1;
                        kind.index.insert(name.to_string(), kind.properties.len());
                        kind.properties.push(PropertyState::new(name));
                        let last = kind.properties.len() - 1;
                        &mut kind.properties[last]
                    }
                };
                match value {
                    Scalar::Null => continue,
                    Scalar::Bool(v) => {
                        slot.bools += 1;
                        slot.distinct.insert(&[u8::from(*v)]);
                    }
                    Scalar::Str(v) => {
                        slot.strings += 1;
                        slot.distinct.insert(v.as_bytes());
                    }
                    Scalar::Int(_) | Scalar::UInt(_) | Scalar::Float(_) => {
                        slot.numbers += 1;
                        // The value's bits, not its text: text is made only while examples are
                        // missing (formatting every value cost about 5 % of ingest throughput
                        // in process_bench).
                        let bits = value.as_f64().unwrap_or_default().to_bits();
                        slot.distinct.insert(&bits.to_le_bytes());
                    }
                }
                if slot.examples.len() < MAX_EXAMPLES {
                    text.clear();
                    value.write_canonical(&mut text);
                    let example = cut(&text, limits.max_example_chars);
                    if !slot.examples.iter().any(|e| e == example) {
                        slot.examples.push(example.to_owned());
                    }
                }
            }
            if total_cap_hit {
                tenant.overflow.properties_dropped += 1;
                tenant.overflow_changed = true;
            }
        }
        let total = *properties;
        drop(inner);
        for (counter, n) in [
            (&self.dropped_tenant, dropped[0]),
            (&self.dropped_event_type, dropped[1]),
            (&self.dropped_property, dropped[2]),
        ] {
            if n > 0 {
                counter.increment(n);
            }
        }
        self.properties_gauge.set(total as f64);
    }

    /// Forgets event types not seen since `now - horizon_secs` (and tenants left with none),
    /// then returns the records of what changed since the last call.
    pub fn take_changes(&self, now: UnixMillis) -> Changes {
        let horizon =
            i64::try_from(self.limits.horizon_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let oldest = now.saturating_sub(horizon);
        let mut changes = Changes::default();
        let Ok(mut inner) = self.inner.lock() else {
            return changes;
        };
        let Inner {
            tenants,
            properties,
        } = &mut *inner;
        tenants.retain(|tenant_id, tenant| {
            tenant.types.retain(|_, kind| {
                let keep = kind.last_seen >= oldest;
                if !keep {
                    *properties -= kind.properties.len();
                }
                keep
            });
            for (event_type, kind) in tenant.types.iter_mut().filter(|(_, k)| k.changed) {
                kind.changed = false;
                changes
                    .types
                    .push((tenant_id.clone(), kind.record(event_type)));
            }
            if tenant.overflow_changed {
                tenant.overflow_changed = false;
                changes
                    .overflows
                    .push((tenant_id.clone(), tenant.overflow.clone()));
            }
            !tenant.types.is_empty()
        });
        self.properties_gauge.set(*properties as f64);
        changes
    }

    /// Properties recorded over every tenant and event type.
    pub fn properties(&self) -> usize {
        self.inner.lock().map(|inner| inner.properties).unwrap_or(0)
    }
}

impl TypeState {
    fn new(now: UnixMillis) -> Self {
        Self {
            events: 0,
            first_seen: now,
            last_seen: now,
            properties: Vec::new(),
            index: HashMap::default(),
            properties_dropped: 0,
            changed: true,
        }
    }

    fn record(&self, event_type: &str) -> TypeRecord {
        TypeRecord {
            event_type: event_type.to_owned(),
            events: self.events,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            properties: self
                .properties
                .iter()
                .map(|p| PropertyRecord {
                    name: p.name.clone(),
                    numbers: p.numbers,
                    strings: p.strings,
                    bools: p.bools,
                    examples: p.examples.clone(),
                    distinct: p.distinct.encode(),
                })
                .collect(),
            properties_dropped: self.properties_dropped,
        }
    }
}

impl PropertyState {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            numbers: 0,
            strings: 0,
            bools: 0,
            examples: Vec::new(),
            distinct: DistinctSketch::new(),
        }
    }
}

/// `text` cut to at most `chars` characters.
fn cut(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn event<'a>(tenant: &'a str, kind: &'a str, props: Vec<(&'a str, Scalar<'a>)>) -> Event<'a> {
        Event {
            id: None,
            tenant_id: Cow::Borrowed(tenant),
            source: Cow::Borrowed("svc"),
            event_type: Cow::Borrowed(kind),
            properties: props
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), v))
                .collect(),
            occurred_at: 0,
            weight: 1,
        }
    }

    fn limits() -> SchemaConfig {
        SchemaConfig {
            max_tenants: 2,
            max_event_types: 2,
            max_properties: 2,
            max_total_properties: 3,
            max_example_chars: 4,
            horizon_secs: 60,
            ..SchemaConfig::default()
        }
    }

    #[test]
    fn kinds_examples_and_distinct_values_are_recorded() {
        let catalog = Catalog::new(SchemaConfig::default());
        let events: Vec<Event<'_>> = (0..20)
            .map(|i| {
                event(
                    "acme",
                    "order",
                    vec![
                        ("amount", Scalar::Int(i % 7)),
                        ("paid", Scalar::Bool(i % 2 == 0)),
                        ("note", Scalar::Null),
                    ],
                )
            })
            .collect();
        catalog.observe(events.iter(), 1_000);
        let changes = catalog.take_changes(1_000);
        let (tenant, record) = &changes.types[0];
        assert_eq!(tenant, "acme");
        assert_eq!(record.events, 20);
        let amount = &record.properties[0];
        assert_eq!((amount.numbers, amount.strings), (20, 0));
        assert_eq!(amount.examples, ["0", "1", "2", "3", "4"]);
        let distinct = DistinctSketch::decode(&amount.distinct).expect("sketch");
        assert_eq!(distinct.estimate().round(), 7.0);
        assert_eq!(record.properties[1].bools, 20);
        assert_eq!(record.properties[2].name, "note");
        assert!(catalog.take_changes(1_000).types.is_empty(), "nothing new");
    }

    #[test]
    fn every_bound_holds_and_what_it_turns_away_is_counted() {
        let catalog = Catalog::new(limits());
        let long = Scalar::Str(Cow::Borrowed("ééééééé"));
        let mut events = Vec::new();
        for tenant in ["t1", "t2", "t3"] {
            for kind in ["a", "b", "c"] {
                events.push(event(
                    tenant,
                    kind,
                    vec![
                        ("p", long.clone()),
                        ("q", Scalar::Int(1)),
                        ("r", Scalar::Int(2)),
                    ],
                ));
            }
        }
        catalog.observe(events.iter(), 1_000);
        assert_eq!(catalog.properties(), 3, "the total cap");
        let changes = catalog.take_changes(1_000);
        assert_eq!(changes.types.len(), 4, "t1 and t2: a and b");
        let t1a = changes
            .types
            .iter()
            .find(|(t, r)| t == "t1" && r.event_type == "a")
            .expect("t1 a");
        assert_eq!(t1a.1.properties.len(), 2);
        assert_eq!(t1a.1.properties_dropped, 1, "r beyond two per type");
        assert_eq!(t1a.1.properties[0].examples, ["éééé"]);
        let t1 = changes
            .overflows
            .iter()
            .find(|(t, _)| t == "t1")
            .expect("t1 overflow");
        assert_eq!(t1.1.event_types_dropped, 1);
        let t2 = changes
            .overflows
            .iter()
            .find(|(t, _)| t == "t2")
            .expect("t2 overflow");
        assert_eq!(t2.1.event_types_dropped, 1);
        assert!(t2.1.properties_dropped >= 1);
        assert!(
            changes.overflows.iter().all(|(t, _)| t != "t3"),
            "t3 not tracked"
        );
        // Past the horizon everything is forgotten and the room is free again.
        assert!(catalog.take_changes(1_000 + 61_000).types.is_empty());
        assert_eq!(catalog.properties(), 0);
    }
}
