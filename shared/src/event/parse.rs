//! JSON to [`Event`]: a single pass that files the six known fields into fixed slots
//! ([`super::fields`]), then validation in plain Rust so that every problem gets its own
//! [`RejectCode`] ([`super::validate`]). The pass is the hand-written scanner of
//! [`super::scan`] for the common shape, serde_json through the visitors of [`super::visit`]
//! for everything else (and for every malformed input, so rejections and their messages are
//! serde's).

use super::fields::TopFields;
use super::limits::EventLimits;
use super::model::Event;
use super::reject::{RejectCode, Rejection};
use super::validate::validate;
use super::visit::Top;
use crate::time::UnixMillis;

/// Parses and validates one event from its JSON bytes. `now` is the receiver's clock, used for
/// the future-skew and age bounds.
pub fn parse_event<'a>(
    bytes: &'a [u8],
    limits: &EventLimits,
    now: UnixMillis,
) -> Result<Event<'a>, Rejection> {
    parse_event_as(bytes, limits, now, None)
}

/// [`parse_event`] where an event without `tenant_id` belongs to `default_tenant` (the tenant
/// of the producer's key) when one is given.
pub fn parse_event_as<'a>(
    bytes: &'a [u8],
    limits: &EventLimits,
    now: UnixMillis,
    default_tenant: Option<&'a str>,
) -> Result<Event<'a>, Rejection> {
    match parse_event_fast(bytes, limits, now, default_tenant) {
        Some(result) => result,
        None => parse_event_serde(bytes, limits, now, default_tenant),
    }
}

/// [`parse_event`] through the scanner; `None` when it does not take the input.
pub(super) fn parse_event_fast<'a>(
    bytes: &'a [u8],
    limits: &EventLimits,
    now: UnixMillis,
    default_tenant: Option<&'a str>,
) -> Option<Result<Event<'a>, Rejection>> {
    if bytes.len() > limits.max_event_bytes {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut fields = TopFields::default();
    if !super::scan::fill(text, &mut fields) {
        return None;
    }
    Some(validate(fields, limits, now, default_tenant))
}

/// [`parse_event`] through serde_json.
pub(super) fn parse_event_serde<'a>(
    bytes: &'a [u8],
    limits: &EventLimits,
    now: UnixMillis,
    default_tenant: Option<&'a str>,
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
        Top::Object(fields) => validate(*fields, limits, now, default_tenant),
        Top::Other(kind) => Err(Rejection::new(
            RejectCode::NotAnObject,
            format!("an event must be a JSON object, got {kind}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::scalar::Scalar;
    use super::*;
    use std::borrow::Cow;

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
    fn a_missing_or_null_occurred_at_is_the_time_of_receipt() {
        for json in [
            r#"{"tenant_id":"acme","source":"s","event_type":"e"}"#,
            r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":null}"#,
        ] {
            let event = parse(json).expect("valid without occurred_at");
            assert_eq!(event.occurred_at, NOW, "{json}");
            let slow = parse_event_serde(json.as_bytes(), &EventLimits::default(), NOW, None)
                .expect("valid through serde");
            assert_eq!(slow.occurred_at, NOW, "{json}");
        }
        // A present value is still checked: wrong type, format, skew and age.
        for (json, expected) in [
            (
                r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":""}"#,
                RejectCode::InvalidTimestamp,
            ),
            (
                r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":0}"#,
                RejectCode::WrongType,
            ),
            (
                r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2024-01-15T15:05:30Z"}"#,
                RejectCode::TimestampInFuture,
            ),
            (
                r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2023-01-15T15:05:30Z"}"#,
                RejectCode::TimestampTooOld,
            ),
        ] {
            assert_eq!(code(json), expected, "{json}");
        }
    }

    #[test]
    fn a_missing_tenant_is_the_default_one_when_given() {
        let json = r#"{"source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#;
        let limits = EventLimits::default();
        assert_eq!(
            parse_event(json.as_bytes(), &limits, NOW).unwrap_err().code,
            RejectCode::MissingField
        );
        let event = parse_event_as(json.as_bytes(), &limits, NOW, Some("acme")).unwrap();
        assert_eq!(event.tenant_id, "acme");
        let named = GOOD.replace("acme", "other");
        let event = parse_event_as(named.as_bytes(), &limits, NOW, Some("acme")).unwrap();
        assert_eq!(
            event.tenant_id, "other",
            "a named tenant is kept (the caller checks it)"
        );
        let slow = parse_event_serde(json.as_bytes(), &limits, NOW, Some("acme")).unwrap();
        assert_eq!(slow.tenant_id, "acme");
        let bad = r#"{"source":"s","event_type":"e","occurred_at":"soon"}"#;
        let rejection = parse_event_as(bad.as_bytes(), &limits, NOW, Some("acme")).unwrap_err();
        assert_eq!(rejection.tenant.as_deref(), Some("acme"));
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

    #[test]
    fn a_weight_is_an_integer_from_1_to_the_maximum() {
        let with = |weight: &str| {
            let json = format!(
                r#"{{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z","weight":{weight}}}"#
            );
            parse(&json).map(Event::into_owned)
        };
        assert_eq!(with("10").expect("valid").weight, 10);
        assert_eq!(with("null").expect("valid").weight, 1);
        for bad in ["0", "-1", "1.5", "1000001", "1e3"] {
            assert_eq!(
                with(bad).expect_err(bad).code,
                RejectCode::InvalidWeight,
                "{bad}"
            );
        }
        assert_eq!(
            with(r#""2""#).expect_err("string").code,
            RejectCode::WrongType
        );
        let event = with("7").expect("valid");
        let json: serde_json::Value = serde_json::from_slice(&event.to_json()).expect("json");
        assert_eq!(json["weight"], 7, "the archive keeps the weight");
        let plain = parse(r#"{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#).expect("valid");
        assert!(
            serde_json::from_slice::<serde_json::Value>(&plain.to_json())
                .expect("json")
                .get("weight")
                .is_none()
        );
    }
}
