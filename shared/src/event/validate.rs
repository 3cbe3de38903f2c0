//! Validation of the filed fields into an [`Event`], in plain Rust so that every problem gets
//! its own [`RejectCode`] and a message naming the field.

use super::fields::{Any, TopFields};
use super::limits::EventLimits;
use super::model::{is_identifier, Event, MAX_WEIGHT};
use super::reject::{RejectCode, Rejection};
use super::scalar::Scalar;
use crate::time::{parse_rfc3339, UnixMillis};
use std::borrow::Cow;

/// The event the filed fields make, or the first problem: an unknown or repeated field, then
/// each field in [`FIELDS`](super::fields::FIELDS) order; the rejection carries the tenant when
/// it is a valid one.
pub(super) fn validate<'a>(
    fields: TopFields<'a>,
    limits: &EventLimits,
    now: UnixMillis,
    default_tenant: Option<&'a str>,
) -> Result<Event<'a>, Rejection> {
    let TopFields { slots, structural } = fields;
    // Cloning a borrowed Cow copies a pointer; only an escaped tenant allocates.
    let tenant_hint: Option<Cow<'a, str>> = match &slots[1] {
        Some(Any::Scalar(Scalar::Str(tenant)))
            if is_identifier(tenant, limits.max_identifier_len) =>
        {
            Some(tenant.clone())
        }
        None => default_tenant.map(Cow::Borrowed),
        _ => None,
    };
    let fail = |rejection: Rejection| rejection.with_tenant(tenant_hint.as_deref());
    if let Some(rejection) = structural {
        return Err(fail(rejection));
    }
    let [id, tenant_id, source, event_type, properties, occurred_at, weight] = slots;

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
    let tenant_id = match (tenant_id, default_tenant) {
        (None, Some(tenant)) => Cow::Borrowed(tenant),
        (tenant_id, _) => identifier("tenant_id", tenant_id, limits).map_err(fail)?,
    };
    let source = identifier("source", source, limits).map_err(fail)?;
    let event_type = identifier("event_type", event_type, limits).map_err(fail)?;
    let properties = properties_of(properties, limits).map_err(fail)?;
    let occurred_at = timestamp(occurred_at, limits, now).map_err(fail)?;
    let weight = weight_of(weight).map_err(fail)?;
    Ok(Event {
        id,
        tenant_id,
        source,
        event_type,
        properties,
        occurred_at,
        weight,
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

/// `weight`: absent or null is 1; else an integer from 1 to [`MAX_WEIGHT`].
fn weight_of(value: Option<Any<'_>>) -> Result<u32, Rejection> {
    let invalid = || {
        Rejection::new(
            RejectCode::InvalidWeight,
            format!("`weight` must be an integer from 1 to {MAX_WEIGHT}"),
        )
    };
    match value {
        None | Some(Any::Scalar(Scalar::Null)) => Ok(1),
        Some(Any::Scalar(Scalar::Int(w))) => u32::try_from(w)
            .ok()
            .filter(|w| (1..=MAX_WEIGHT).contains(w))
            .ok_or_else(invalid),
        Some(Any::Scalar(Scalar::UInt(_) | Scalar::Float(_))) => Err(invalid()),
        Some(other) => Err(wrong_type("weight", "an integer", &other)),
    }
}

/// `occurred_at`, or `now` (the time of receipt) when it is absent or `null`; a present value
/// must be a valid timestamp within the accepted skew and age.
fn timestamp(
    value: Option<Any<'_>>,
    limits: &EventLimits,
    now: UnixMillis,
) -> Result<UnixMillis, Rejection> {
    let text = match value {
        None | Some(Any::Scalar(Scalar::Null)) => return Ok(now),
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

/// `text` cut to at most `max` bytes at a character boundary, for quoting input in messages.
pub(super) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
