//! The validated event, its accessors and its seed-shaped JSON, and the identifier rule for
//! `tenant_id`, `source`, `event_type` (and metric names).

use super::scalar::Scalar;
use crate::time::{format_rfc3339, UnixMillis};
use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};
use std::borrow::Cow;

/// A validated event. Strings borrow from the request body where the JSON had no escapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Event<'a> {
    /// Producer-chosen id, if the producer sent one.
    pub id: Option<Cow<'a, str>>,
    /// Tenant the event belongs to.
    pub tenant_id: Cow<'a, str>,
    /// Emitting service or SDK, e.g. `checkout-service`.
    pub source: Cow<'a, str>,
    /// Kind of event, e.g. `payment_completed`.
    pub event_type: Cow<'a, str>,
    /// Scalar properties, in the order they appeared (keys are unique).
    pub properties: Vec<(Cow<'a, str>, Scalar<'a>)>,
    /// Event time.
    pub occurred_at: UnixMillis,
    /// How many events this one stands for (1 to [`MAX_WEIGHT`]; 1 unless the producer
    /// sampled, e.g. a StatsD counter sent at `@0.1` has weight 10): it adds `weight` to the
    /// count and `weight × value` to the sum, and enters percentiles `weight` times.
    pub weight: u32,
}

/// Largest event weight: a sample rate of one in a million. Kept below 2^31 so the
/// aggregator can keep a flag beside it, and small enough that `weight × value` stays finite.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Names that resolve to the event's top-level fields when used as a dimension.
pub const BUILTIN_DIMENSIONS: [&str; 3] = ["tenant_id", "source", "event_type"];

impl<'a> Event<'a> {
    /// The property named `name`, if present.
    pub fn property(&self, name: &str) -> Option<&Scalar<'a>> {
        self.properties
            .iter()
            .find(|(key, _)| key.as_ref() == name)
            .map(|(_, value)| value)
    }

    /// The value of a dimension: `tenant_id`, `source` and `event_type` name the top-level
    /// fields; any other name a property. `None` when absent or null.
    pub fn dimension(&self, name: &str) -> Option<Scalar<'_>> {
        match name {
            "tenant_id" => Some(Scalar::Str(Cow::Borrowed(self.tenant_id.as_ref()))),
            "source" => Some(Scalar::Str(Cow::Borrowed(self.source.as_ref()))),
            "event_type" => Some(Scalar::Str(Cow::Borrowed(self.event_type.as_ref()))),
            _ => match self.property(name) {
                None | Some(Scalar::Null) => None,
                Some(value) => Some(value.reborrow()),
            },
        }
    }

    /// A copy that owns all its strings.
    pub fn into_owned(self) -> Event<'static> {
        Event {
            id: self.id.map(|id| Cow::Owned(id.into_owned())),
            tenant_id: Cow::Owned(self.tenant_id.into_owned()),
            source: Cow::Owned(self.source.into_owned()),
            event_type: Cow::Owned(self.event_type.into_owned()),
            properties: self
                .properties
                .into_iter()
                .map(|(key, value)| (Cow::Owned(key.into_owned()), value.into_owned()))
                .collect(),
            occurred_at: self.occurred_at,
            weight: self.weight,
        }
    }

    /// The event as seed-shaped JSON (used by the raw-event archive).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

struct PropertiesRef<'e, 'a>(&'e [(Cow<'a, str>, Scalar<'a>)]);

impl Serialize for PropertiesRef<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key.as_ref(), value)?;
        }
        map.end()
    }
}

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = 5 + usize::from(self.id.is_some()) + usize::from(self.weight != 1);
        let mut out = serializer.serialize_struct("Event", fields)?;
        if let Some(id) = &self.id {
            out.serialize_field("id", id.as_ref())?;
        }
        out.serialize_field("tenant_id", self.tenant_id.as_ref())?;
        out.serialize_field("source", self.source.as_ref())?;
        out.serialize_field("event_type", self.event_type.as_ref())?;
        out.serialize_field("properties", &PropertiesRef(&self.properties))?;
        out.serialize_field("occurred_at", &format_rfc3339(self.occurred_at))?;
        if self.weight != 1 {
            out.serialize_field("weight", &self.weight)?;
        }
        out.end()
    }
}

/// Whether `text` is a valid identifier (`tenant_id`, `source`, `event_type`, metric names):
/// non-empty, at most `max_len` bytes, characters from `[A-Za-z0-9_-]`.
pub fn is_identifier(text: &str, max_len: usize) -> bool {
    !text.is_empty()
        && text.len() <= max_len
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
