//! JSON to [`Event`]: a single pass that files the six known fields into fixed slots
//! (properties straight into their final vector), then validation in plain Rust so that every
//! problem gets its own [`RejectCode`]. The pass is the hand-written scanner of
//! [`super::scan`] for the common shape, serde_json for everything else (and for every
//! malformed input, so rejections and their messages are serde's).

use super::{is_identifier, Event, EventLimits, RejectCode, Rejection, Scalar};
use crate::time::{parse_rfc3339, UnixMillis};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Parses and validates one event from its JSON bytes. `now` is the receiver's clock, used for
/// the future-skew and age bounds.
pub fn parse_event<'a>(
    bytes: &'a [u8],
    limits: &EventLimits,
    now: UnixMillis,
) -> Result<Event<'a>, Rejection> {
    match parse_event_fast(bytes, limits, now) {
        Some(result) => result,
        None => parse_event_serde(bytes, limits, now),
    }
}

/// [`parse_event`] through the scanner; `None` when it does not take the input.
pub(super) fn parse_event_fast<'a>(
    bytes: &'a [u8],
    limits: &EventLimits,
    now: UnixMillis,
) -> Option<Result<Event<'a>, Rejection>> {
    if bytes.len() > limits.max_event_bytes {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut fields = TopFields::default();
    if !super::scan::fill(text, &mut fields) {
        return None;
    }
    Some(validate(fields, limits, now))
}

/// [`parse_event`] through serde_json.
pub(super) fn parse_event_serde<'a>(
    bytes: &'a [u8],
    limits: &EventLimits,
    now: UnixMillis,
) -> Result<Event<'a>, Rejection> {
    if bytes.len() > limits.max_event_bytes {
        return Err(Rejection::new(
            RejectCode::EventTooLarge,
            format!(
                "event is {} bytes, the limit is {}",
                bytes.len(),
                limits.max_event_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|err| {
        Rejection::new(
            RejectCode::InvalidUtf8,
            format!("input is not valid UTF-8 (at byte {})", err.valid_up_to()),
        )
    })?;
    let top: Top<'a> = serde_json::from_str(text).map_err(|err| {
        Rejection::new(RejectCode::MalformedJson, format!("malformed JSON: {err}"))
    })?;
    match top {
        Top::Object(fields) => validate(*fields, limits, now),
        Top::Other(kind) => Err(Rejection::new(
            RejectCode::NotAnObject,
            format!("an event must be a JSON object, got {kind}"),
        )),
    }
}

/// A JSON value as the validator sees it: scalars kept, containers only noted, except that a
/// first-level object (`properties`) is collected as scalar entries.
pub(super) enum Any<'a> {
    Scalar(Scalar<'a>),
    Array,
    /// An object: its scalar entries (only collected at the properties level), and the first
    /// entry that was not a scalar, with the JSON kind it had.
    Object(
        Vec<(Cow<'a, str>, Scalar<'a>)>,
        Option<(Cow<'a, str>, &'static str)>,
    ),
}

impl Any<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Any::Scalar(scalar) => scalar_kind(scalar),
            Any::Array => "an array",
            Any::Object(..) => "an object",
        }
    }
}

fn scalar_kind(scalar: &Scalar<'_>) -> &'static str {
    match scalar {
        Scalar::Null => "null",
        Scalar::Bool(_) => "a boolean",
        Scalar::Int(_) | Scalar::UInt(_) | Scalar::Float(_) => "a number",
        Scalar::Str(_) => "a string",
    }
}

/// Visits any JSON value; `collect` says whether an object's entries are kept.
struct AnyVisitor {
    collect: bool,
}

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Any<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Any::Scalar(match i64::try_from(v) {
            Ok(v) => Scalar::Int(v),
            Err(_) => Scalar::UInt(v),
        }))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Float(v)))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Str(Cow::Owned(v))))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Null))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Any::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if !self.collect {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Any::Object(Vec::new(), None));
        }
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        let mut first_non_scalar = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match map.next_value_seed(AnySeed { collect: false })? {
                Any::Scalar(scalar) => entries.push((key.0, scalar)),
                other => {
                    if first_non_scalar.is_none() {
                        first_non_scalar = Some((key.0, other.kind()));
                    }
                }
            }
        }
        Ok(Any::Object(entries, first_non_scalar))
    }
}

struct AnySeed {
    collect: bool,
}

impl<'de> de::DeserializeSeed<'de> for AnySeed {
    type Value = Any<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Any<'de>, D::Error> {
        deserializer.deserialize_any(AnyVisitor {
            collect: self.collect,
        })
    }
}

/// An object key, borrowed when it had no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

pub(super) const FIELDS: [&str; 6] = [
    "id",
    "tenant_id",
    "source",
    "event_type",
    "properties",
    "occurred_at",
];

/// The top-level fields, filed into slots in [`FIELDS`] order as they are parsed.
#[derive(Default)]
pub(super) struct TopFields<'a> {
    pub(super) slots: [Option<Any<'a>>; 6],
    /// The first unknown or repeated field, reported after the whole object was read (so the
    /// tenant is known for dead-letter routing).
    pub(super) structural: Option<Rejection>,
}

/// The top-level JSON value.
enum Top<'a> {
    Object(Box<TopFields<'a>>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Box::<TopFields<'de>>::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let index = FIELDS.iter().position(|name| *name == key.0.as_ref());
                    match index {
                        Some(index) if fields.slots[index].is_none() => {
                            fields.slots[index] = Some(map.next_value_seed(AnySeed {
                                collect: index == 4,
                            })?);
                        }
                        Some(_) => {
                            map.next_value::<IgnoredAny>()?;
                            fields.structural.get_or_insert_with(|| {
                                Rejection::new(
                                    RejectCode::DuplicateField,
                                    format!("field `{}` appears more than once", key.0),
                                )
                            });
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                            fields.structural.get_or_insert_with(|| Rejection::new(
                                RejectCode::UnknownField,
                                format!(
                                    "unknown field `{}`; an event has id, tenant_id, source, event_type, properties, occurred_at",
                                    truncate(&key.0, 64)
                                ),
                            ));
                        }
                    }
                }
                Ok(Top::Object(fields))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Top::Other("an array"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Top::Other("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Top::Other("a string"))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Top::Other("null"))
            }
        }
        deserializer.deserialize_any(TopVisitor)
    }
}

pub(super) fn validate<'a>(
    fields: TopFields<'a>,
    limits: &EventLimits,
    now: UnixMillis,
) -> Result<Event<'a>, Rejection> {
    let TopFields { slots, structural } = fields;
    // Cloning a borrowed Cow copies a pointer; only an escaped tenant allocates.
    let tenant_hint: Option<Cow<'a, str>> = match &slots[1] {
        Some(Any::Scalar(Scalar::Str(tenant)))
            if is_identifier(tenant, limits.max_identifier_len) =>
        {
            Some(tenant.clone())
        }
        _ => None,
    };
    let fail = |rejection: Rejection| rejection.with_tenant(tenant_hint.as_deref());
    if let Some(rejection) = structural {
        return Err(fail(rejection));
    }
    let [id, tenant_id, source, event_type, properties, occurred_at] = slots;

    let id = match id {
        None | Some(Any::Scalar(Scalar::Null)) => None,
        Some(Any::Scalar(Scalar::Str(id))) if id.len() <= limits.max_identifier_len => Some(id),
        Some(Any::Scalar(Scalar::Str(_))) => {
            return Err(fail(Rejection::new(
                RejectCode::ValueTooLong,
                format!("`id` is longer than {} bytes", limits.max_identifier_len),
            )))
        }
        Some(other) => return Err(fail(wrong_type("id", "a string", &other))),
    };
    let tenant_id = identifier("tenant_id", tenant_id, limits).map_err(fail)?;
    let source = identifier("source", source, limits).map_err(fail)?;
    let event_type = identifier("event_type", event_type, limits).map_err(fail)?;
    let properties = properties_of(properties, limits).map_err(fail)?;
    let occurred_at = timestamp(occurred_at, limits, now).map_err(fail)?;
    Ok(Event {
        id,
        tenant_id,
        source,
        event_type,
        properties,
        occurred_at,
    })
}

fn wrong_type(field: &str, expected: &str, got: &Any<'_>) -> Rejection {
    Rejection::new(
        RejectCode::WrongType,
        format!("`{field}` must be {expected}, got {}", got.kind()),
    )
}

fn missing(field: &str) -> Rejection {
    Rejection::new(
        RejectCode::MissingField,
        format!("missing required field `{field}`"),
    )
}

fn identifier<'a>(
    field: &str,
    value: Option<Any<'a>>,
    limits: &EventLimits,
) -> Result<Cow<'a, str>, Rejection> {
    let text = match value {
        None => return Err(missing(field)),
        Some(Any::Scalar(Scalar::Str(text))) => text,
        Some(other) => return Err(wrong_type(field, "a string", &other)),
    };
    if text.is_empty() {
        return Err(Rejection::new(
            RejectCode::EmptyValue,
            format!("`{field}` must not be empty"),
        ));
    }
    if text.len() > limits.max_identifier_len {
        return Err(Rejection::new(
            RejectCode::ValueTooLong,
            format!(
                "`{field}` is {} bytes, the limit is {}",
                text.len(),
                limits.max_identifier_len
            ),
        ));
    }
    if !is_identifier(&text, limits.max_identifier_len) {
        return Err(Rejection::new(
            RejectCode::InvalidCharacters,
            format!(
                "`{field}` may only contain letters, digits, `_` and `-`, got {:?}",
                truncate(&text, 64)
            ),
        ));
    }
    Ok(text)
}

fn properties_of<'a>(
    value: Option<Any<'a>>,
    limits: &EventLimits,
) -> Result<Vec<(Cow<'a, str>, Scalar<'a>)>, Rejection> {
    let (entries, first_non_scalar) = match value {
        None | Some(Any::Scalar(Scalar::Null)) => return Ok(Vec::new()),
        Some(Any::Object(entries, first_non_scalar)) => (entries, first_non_scalar),
        Some(other) => return Err(wrong_type("properties", "an object", &other)),
    };
    let count = entries.len() + usize::from(first_non_scalar.is_some());
    if count > limits.max_properties {
        return Err(Rejection::new(
            RejectCode::TooManyProperties,
            format!(
                "`properties` has at least {count} keys, the limit is {}",
                limits.max_properties
            ),
        ));
    }
    if let Some((key, kind)) = first_non_scalar {
        return Err(Rejection::new(
            RejectCode::PropertyNotScalar,
            format!(
                "property `{}` is {kind}; properties must be strings, numbers, booleans or null",
                truncate(&key, 64)
            ),
        ));
    }
    for (index, (key, scalar)) in entries.iter().enumerate() {
        if key.is_empty()
            || key.len() > limits.max_property_key_len
            || key.chars().any(char::is_control)
        {
            return Err(Rejection::new(
                RejectCode::InvalidPropertyKey,
                format!(
                    "property key {:?} must be 1 to {} bytes without control characters",
                    truncate(key, 64),
                    limits.max_property_key_len
                ),
            ));
        }
        if entries[..index].iter().any(|(seen, _)| seen == key) {
            return Err(Rejection::new(
                RejectCode::DuplicateField,
                format!("property `{key}` appears more than once"),
            ));
        }
        match scalar {
            Scalar::Str(text) if text.len() > limits.max_property_value_len => {
                return Err(Rejection::new(
                    RejectCode::PropertyValueTooLong,
                    format!(
                        "property `{key}` is {} bytes, the limit is {}",
                        text.len(),
                        limits.max_property_value_len
                    ),
                ))
            }
            Scalar::Float(number) if !number.is_finite() => {
                return Err(Rejection::new(
                    RejectCode::WrongType,
                    format!("property `{key}` is not a finite number"),
                ))
            }
            _ => {}
        }
    }
    Ok(entries)
}

fn timestamp(
    value: Option<Any<'_>>,
    limits: &EventLimits,
    now: UnixMillis,
) -> Result<UnixMillis, Rejection> {
    let text = match value {
        None => return Err(missing("occurred_at")),
        Some(Any::Scalar(Scalar::Str(text))) => text,
        Some(other) => {
            return Err(wrong_type(
                "occurred_at",
                "an RFC 3339 timestamp string",
                &other,
            ))
        }
    };
    let at = parse_rfc3339(&text).ok_or_else(|| {
        Rejection::new(
            RejectCode::InvalidTimestamp,
            format!(
                "`occurred_at` {:?} is not an RFC 3339 timestamp with an offset, such as 2024-01-15T14:05:32Z",
                truncate(&text, 64)
            ),
        )
    })?;
    if at > now.saturating_add(limits.max_future_skew_ms) {
        return Err(Rejection::new(
            RejectCode::TimestampInFuture,
            format!(
                "`occurred_at` is {} s ahead of the receiver's clock, the limit is {} s",
                (at - now) / 1000,
                limits.max_future_skew_ms / 1000
            ),
        ));
    }
    if at < now.saturating_sub(limits.max_age_ms) {
        return Err(Rejection::new(
            RejectCode::TimestampTooOld,
            format!(
                "`occurred_at` is {} s behind the receiver's clock, the limit is {} s",
                (now - at) / 1000,
                limits.max_age_ms / 1000
            ),
        ));
    }
    Ok(at)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = 1_705_327_532_000; // 2024-01-15T14:05:32Z

    fn parse(json: &str) -> Result<Event<'_>, Rejection> {
        parse_event(json.as_bytes(), &EventLimits::default(), NOW)
    }

    fn code(json: &str) -> RejectCode {
        match parse(json) {
            Ok(event) => panic!("expected a rejection, got {event:?}"),
            Err(rejection) => rejection.code,
        }
    }

    const GOOD: &str = r#"{"tenant_id":"acme","source":"checkout-service","event_type":"payment_completed","properties":{"region":"us-east","plan":"pro","amount_usd":49.99,"user_id":42,"vip":true,"note":null},"occurred_at":"2024-01-15T14:05:30Z"}"#;

    #[test]
    fn parses_the_seed_shape_without_copying() {
        let event = parse(GOOD).expect("valid event");
        assert_eq!(event.tenant_id, "acme");
        assert!(matches!(event.tenant_id, Cow::Borrowed(_)));
        assert_eq!(event.source, "checkout-service");
        assert_eq!(event.event_type, "payment_completed");
        assert_eq!(event.occurred_at, NOW - 2000);
        assert_eq!(
            event.property("amount_usd").and_then(Scalar::as_f64),
            Some(49.99)
        );
        assert_eq!(event.property("user_id"), Some(&Scalar::Int(42)));
        assert_eq!(event.dimension("note"), None);
        assert_eq!(
            event
                .dimension("event_type")
                .map(|v| v.canonical().into_owned()),
            Some("payment_completed".into())
        );
    }

    #[test]
    fn serialises_back_to_the_seed_shape() {
        let event = parse(GOOD).expect("valid event");
        let json: serde_json::Value = serde_json::from_slice(&event.to_json()).expect("json");
        assert_eq!(json["tenant_id"], "acme");
        assert_eq!(json["properties"]["amount_usd"], 49.99);
        assert_eq!(json["occurred_at"], "2024-01-15T14:05:30.000Z");
        let again = parse_event(&event.to_json(), &EventLimits::default(), NOW)
            .expect("reparse")
            .into_owned();
        assert_eq!(again, event.into_owned());
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let event = parse(r#"{"tenant_id":"acme","source":"s","event_type":"e","properties":{"city":"Z\u00fcrich"},"occurred_at":"2024-01-15T14:05:30Z"}"#).expect("valid");
        assert_eq!(
            event.dimension("city").map(|v| v.canonical().into_owned()),
            Some("Zürich".into())
        );
    }

    #[test]
    fn producer_id_is_kept() {
        let event = parse(r#"{"id":"evt_1","tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#).expect("valid");
        assert_eq!(event.id.as_deref(), Some("evt_1"));
        assert!(event.properties.is_empty());
    }

    #[test]
    fn every_reason_code_is_reachable() {
        let base = |extra: &str| {
            format!(
                r#"{{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"{extra}}}"#
            )
        };
        assert_eq!(
            parse_event(&[0xff, 0xfe], &EventLimits::default(), NOW)
                .map(|_| ())
                .unwrap_err()
                .code,
            RejectCode::InvalidUtf8
        );
        assert_eq!(code(r#"{"tenant_id": "#), RejectCode::MalformedJson);
        assert_eq!(code("[1,2]"), RejectCode::NotAnObject);
        assert_eq!(code(r#""text""#), RejectCode::NotAnObject);
        assert_eq!(
            code(r#"{"source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#),
            RejectCode::MissingField
        );
        assert_eq!(
            code(r#"{"tenant_id":"acme","source":"s","event_type":"e"}"#),
            RejectCode::MissingField
        );
        assert_eq!(
            code(
                r#"{"tenant_id":7,"source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#
            ),
            RejectCode::WrongType
        );
        assert_eq!(
            code(&base(r#","occured_at":"x""#)),
            RejectCode::UnknownField
        );
        assert_eq!(code(&base(r#","source":"t""#)), RejectCode::DuplicateField);
        assert_eq!(
            code(
                r#"{"tenant_id":"","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#
            ),
            RejectCode::EmptyValue
        );
        let long = "a".repeat(200);
        assert_eq!(
            code(&format!(
                r#"{{"tenant_id":"{long}","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}}"#
            )),
            RejectCode::ValueTooLong
        );
        assert_eq!(
            code(
                r#"{"tenant_id":"a.b","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#
            ),
            RejectCode::InvalidCharacters
        );
        let many: Vec<String> = (0..65).map(|i| format!(r#""k{i}":1"#)).collect();
        assert_eq!(
            code(&base(&format!(r#","properties":{{{}}}"#, many.join(",")))),
            RejectCode::TooManyProperties
        );
        assert_eq!(
            code(&base(r#","properties":{"":1}"#)),
            RejectCode::InvalidPropertyKey
        );
        assert_eq!(
            code(&base(r#","properties":{"a":{"b":1}}"#)),
            RejectCode::PropertyNotScalar
        );
        assert_eq!(
            code(&base(r#","properties":{"a":[1,2]}"#)),
            RejectCode::PropertyNotScalar
        );
        assert_eq!(
            code(&base(&format!(
                r#","properties":{{"a":"{}"}}"#,
                "x".repeat(2000)
            ))),
            RejectCode::PropertyValueTooLong
        );
        assert_eq!(
            code(&base(r#","properties":{"a":1,"a":2}"#)),
            RejectCode::DuplicateField
        );
        assert_eq!(code(&base(r#","properties":[1]"#)), RejectCode::WrongType);
        assert_eq!(
            code(
                r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2024-01-15 14:05"}"#
            ),
            RejectCode::InvalidTimestamp
        );
        assert_eq!(
            code(
                r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30"}"#
            ),
            RejectCode::InvalidTimestamp
        );
        assert_eq!(
            code(r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":1705327530}"#),
            RejectCode::WrongType
        );
        assert_eq!(
            code(
                r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2024-01-15T15:05:30Z"}"#
            ),
            RejectCode::TimestampInFuture
        );
        assert_eq!(
            code(
                r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2023-01-15T15:05:30Z"}"#
            ),
            RejectCode::TimestampTooOld
        );
        let limits = EventLimits {
            max_event_bytes: 50,
            ..EventLimits::default()
        };
        assert_eq!(
            parse_event(GOOD.as_bytes(), &limits, NOW).unwrap_err().code,
            RejectCode::EventTooLarge
        );
    }

    #[test]
    fn rejections_name_the_field_and_keep_the_tenant() {
        let rejection =
            parse(r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"soon"}"#)
                .unwrap_err();
        assert!(
            rejection.message.contains("occurred_at"),
            "{}",
            rejection.message
        );
        assert_eq!(rejection.tenant.as_deref(), Some("acme"));
        let rejection = parse(r#"{"tenant_id":"acme","source":"s","occured_at":"x"}"#).unwrap_err();
        assert_eq!(rejection.code, RejectCode::UnknownField);
        assert_eq!(
            rejection.tenant.as_deref(),
            Some("acme"),
            "known even for structural problems"
        );
        let rejection = parse(r#"{"tenant_id":"bad tenant","source":"s"}"#).unwrap_err();
        assert_eq!(rejection.tenant, None);
    }

    #[test]
    fn deep_nesting_does_not_recurse_unboundedly_into_memory() {
        let deep = format!(
            r#"{{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z","properties":{{"a":{}1{}}}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(code(&deep), RejectCode::PropertyNotScalar);
        // Containers below `properties` are skipped iteratively, however deep.
        let too_deep = format!(
            r#"{{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z","properties":{}1{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(code(&too_deep), RejectCode::WrongType);
        let unbalanced = format!(r#"{{"properties":{}"#, "[".repeat(10_000));
        assert_eq!(code(&unbalanced), RejectCode::MalformedJson);
    }
}
