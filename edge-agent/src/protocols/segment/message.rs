//! One Segment message (a `track`, `identify`, `page`, `screen`, `group` or `alias` call, in
//! Segment's HTTP tracking API shape) mapped onto an rtdash event in the seed's shape.
//!
//! | Segment | rtdash |
//! |---|---|
//! | `type` `track`, `event` | `event_type` = `event` sanitised (`Order Completed` → `Order_Completed`) |
//! | `type` `identify`, `page`, `screen`, `group`, `alias` | `event_type` = the type itself |
//! | `properties` (track, page, screen); `traits` (identify, group) | `properties`; nested objects flattened with `.` (`product.sku`), arrays kept as their JSON text |
//! | `name`, `category` (page, screen) | properties `name`, `category` (unless `properties` has them) |
//! | `groupId` (group), `previousId` (alias) | properties `group_id`, `previous_id` |
//! | `userId`, `anonymousId` | properties `user_id`, `anonymous_id` (they win over properties of those names) |
//! | `messageId` | `id`: a retry within the idempotency horizon counts once |
//! | `timestamp`; else `originalTimestamp` corrected by `sentAt`; else the time received | `occurred_at` (below) |
//! | `segment.source`, else `context.library.name` sanitised, else `segment` | `source` |
//!
//! The event time, as Segment computes it: `timestamp` when the message has one; else
//! `originalTimestamp` corrected for the device's clock skew, `receivedAt - (sentAt -
//! originalTimestamp)` with `sentAt` of the message or of its batch; else the time the agent
//! received the call. Sanitising replaces every character outside `[A-Za-z0-9_-]` by `_`.

use rtdash_shared::time::{format_rfc3339, parse_rfc3339, UnixMillis};
use serde_json::{Map, Value};

/// The Segment call types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `track`: a named user action.
    Track,
    /// `identify`: who the user is (traits).
    Identify,
    /// `page`: a web page view.
    Page,
    /// `screen`: a mobile screen view.
    Screen,
    /// `group`: the user's account or organisation (traits).
    Group,
    /// `alias`: one identity merged into another.
    Alias,
}

impl Kind {
    /// The type named `name` (`"track"`...).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "track" => Self::Track,
            "identify" => Self::Identify,
            "page" => Self::Page,
            "screen" => Self::Screen,
            "group" => Self::Group,
            "alias" => Self::Alias,
            _ => return None,
        })
    }

    /// The type's name, also the event type of every type but `track`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Track => "track",
            Self::Identify => "identify",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Group => "group",
            Self::Alias => "alias",
        }
    }
}

/// What every message of a call shares.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The tenant resolved for the call.
    pub tenant: &'a str,
    /// `segment.source`, when configured.
    pub source: Option<&'a str>,
    /// When the agent received the call.
    pub received_at: UnixMillis,
    /// The batch's `sentAt`.
    pub sent_at: Option<UnixMillis>,
}

/// Why a message could not be mapped: a reason code and a message naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmapped {
    /// Reason code (dead letters, metrics).
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

fn unmapped(code: &'static str, message: impl Into<String>) -> Unmapped {
    Unmapped {
        code,
        message: message.into(),
    }
}

/// `text` with every character outside `[A-Za-z0-9_-]` replaced by `_`.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Maps `message` (of type `kind` when the route implies one) onto an event in the seed's
/// shape; validation proper (identifiers, property limits, time range) follows as for any
/// event.
pub fn to_event(message: &Value, kind: Option<Kind>, call: &Call<'_>) -> Result<Value, Unmapped> {
    let Some(fields) = message.as_object() else {
        return Err(unmapped(
            "invalid_message",
            "a message must be a JSON object",
        ));
    };
    let named = fields.get("type").and_then(Value::as_str);
    let kind = match (kind, named) {
        (Some(kind), _) => kind,
        (None, Some(name)) => Kind::from_name(name).ok_or_else(|| {
            unmapped(
                "unsupported_message",
                format!("message type {name:?} is not one of track, identify, page, screen, group, alias"),
            )
        })?,
        (None, None) => {
            return Err(unmapped(
                "unsupported_message",
                "a batched message needs a `type`",
            ))
        }
    };
    let event_type = match kind {
        Kind::Track => match fields.get("event").and_then(Value::as_str) {
            Some(event) if !event.is_empty() => sanitize(event),
            _ => {
                return Err(unmapped(
                    "missing_event_name",
                    "a track call needs a non-empty `event`",
                ))
            }
        },
        other => other.name().to_owned(),
    };
    let mut properties = Map::new();
    let bag = match kind {
        Kind::Identify | Kind::Group => "traits",
        _ => "properties",
    };
    match fields.get(bag) {
        None | Some(Value::Null) => {}
        Some(Value::Object(bag)) => flatten(&mut properties, "", bag, 0),
        Some(_) => {
            return Err(unmapped(
                "invalid_message",
                format!("`{bag}` must be an object"),
            ))
        }
    }
    let mut set = |key: &str, value: Option<&Value>, overwrite: bool| {
        if let Some(value) = value.filter(|v| !v.is_null()) {
            if overwrite || !properties.contains_key(key) {
                properties.insert(key.to_owned(), id_text(value));
            }
        }
    };
    match kind {
        Kind::Page | Kind::Screen => {
            set("name", fields.get("name"), false);
            set("category", fields.get("category"), false);
        }
        Kind::Group => set("group_id", fields.get("groupId"), true),
        Kind::Alias => set("previous_id", fields.get("previousId"), true),
        Kind::Track | Kind::Identify => {}
    }
    set("user_id", fields.get("userId"), true);
    set("anonymous_id", fields.get("anonymousId"), true);

    let source = match call.source {
        Some(source) => source.to_owned(),
        None => fields
            .get("context")
            .and_then(|c| c.get("library"))
            .and_then(|l| l.get("name"))
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map_or_else(|| "segment".to_owned(), sanitize),
    };
    let occurred_at = event_time(fields, call)?;
    let mut event = Map::new();
    if let Some(id) = fields.get("messageId").filter(|v| !v.is_null()) {
        event.insert("id".into(), id_text(id));
    }
    event.insert("tenant_id".into(), Value::from(call.tenant));
    event.insert("source".into(), Value::from(source));
    event.insert("event_type".into(), Value::from(event_type));
    event.insert("properties".into(), Value::Object(properties));
    event.insert(
        "occurred_at".into(),
        Value::from(format_rfc3339(occurred_at)),
    );
    Ok(Value::Object(event))
}

/// An id as text: strings as they are, numbers in decimal (Segment accepts both).
fn id_text(value: &Value) -> Value {
    match value {
        Value::String(_) | Value::Bool(_) | Value::Number(_) => value.clone(),
        other => Value::from(other.to_string()),
    }
}

/// Scalars of `bag` into `out`, nested objects flattened with `.` (4 levels, deeper ones as
/// JSON text), arrays as their JSON text.
fn flatten(out: &mut Map<String, Value>, prefix: &str, bag: &Map<String, Value>, depth: usize) {
    for (key, value) in bag {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) if depth < 4 => flatten(out, &name, inner, depth + 1),
            Value::Object(_) | Value::Array(_) => {
                out.insert(name, Value::from(value.to_string()));
            }
            scalar => {
                out.insert(name, scalar.clone());
            }
        }
    }
}

/// The event time (see the module docs).
fn event_time(fields: &Map<String, Value>, call: &Call<'_>) -> Result<UnixMillis, Unmapped> {
    let time = |name: &str| -> Result<Option<UnixMillis>, Unmapped> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => parse_rfc3339(text).map(Some).ok_or_else(|| {
                unmapped(
                    "invalid_timestamp",
                    format!("`{name}` {text:?} is not an ISO 8601 time with an offset"),
                )
            }),
            Some(_) => Err(unmapped(
                "invalid_timestamp",
                format!("`{name}` must be an ISO 8601 string"),
            )),
        }
    };
    if let Some(at) = time("timestamp")? {
        return Ok(at);
    }
    let Some(original) = time("originalTimestamp")? else {
        return Ok(call.received_at);
    };
    Ok(match time("sentAt")?.or(call.sent_at) {
        Some(sent) => call.received_at - (sent - original),
        None => original,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RECEIVED: UnixMillis = 1_768_485_932_000; // 2026-01-15T14:05:32Z

    fn call() -> Call<'static> {
        Call {
            tenant: "acme",
            source: None,
            received_at: RECEIVED,
            sent_at: None,
        }
    }

    #[test]
    fn a_track_call_becomes_an_event_of_its_name() {
        let message = json!({
            "type": "track", "event": "Order Completed", "userId": 42,
            "messageId": "m-1", "timestamp": "2026-01-15T14:05:00.000+00:00",
            "properties": {"revenue": 9.5, "product": {"sku": "A1", "tags": ["x"]}, "userId": "no"},
            "context": {"library": {"name": "analytics-python", "version": "2.4.0"}}
        });
        let event = to_event(&message, None, &call()).expect("mapped");
        assert_eq!(
            event,
            json!({
                "id": "m-1", "tenant_id": "acme", "source": "analytics-python",
                "event_type": "Order_Completed",
                "properties": {"revenue": 9.5, "product.sku": "A1", "product.tags": "[\"x\"]",
                               "userId": "no", "user_id": 42},
                "occurred_at": "2026-01-15T14:05:00.000Z"
            })
        );
    }

    #[test]
    fn the_route_gives_the_type_and_traits_are_properties() {
        let message = json!({"userId": "u1", "traits": {"plan": "pro"}, "groupId": "g7"});
        let event = to_event(&message, Some(Kind::Group), &call()).expect("mapped");
        assert_eq!(event["event_type"], "group");
        assert_eq!(event["source"], "segment");
        assert_eq!(
            event["properties"],
            json!({"plan": "pro", "group_id": "g7", "user_id": "u1"})
        );
        let page = json!({"name": "Home", "properties": {"path": "/"}, "anonymousId": "a"});
        let event = to_event(&page, Some(Kind::Page), &call()).expect("mapped");
        assert_eq!(event["event_type"], "page");
        assert_eq!(
            event["properties"],
            json!({"path": "/", "name": "Home", "anonymous_id": "a"})
        );
    }

    #[test]
    fn without_a_timestamp_the_original_one_is_corrected_for_clock_skew() {
        // The device's clock is 60 s fast: it stamped the event at 14:06:00 and sent it at
        // 14:06:30 by its clock; received at 14:05:32, so the event happened at 14:05:02.
        let message = json!({
            "type": "track", "event": "e",
            "originalTimestamp": "2026-01-15T14:06:00Z", "sentAt": "2026-01-15T14:06:30Z"
        });
        let event = to_event(&message, None, &call()).expect("mapped");
        assert_eq!(event["occurred_at"], "2026-01-15T14:05:02.000Z");
        // The batch's sentAt applies to messages without their own.
        let message =
            json!({"type": "track", "event": "e", "originalTimestamp": "2026-01-15T14:06:00Z"});
        let batch = Call {
            sent_at: parse_rfc3339("2026-01-15T14:06:10Z"),
            ..call()
        };
        let event = to_event(&message, None, &batch).expect("mapped");
        assert_eq!(event["occurred_at"], "2026-01-15T14:05:22.000Z");
        // Neither: the time received.
        let event =
            to_event(&json!({"type": "track", "event": "e"}), None, &call()).expect("mapped");
        assert_eq!(event["occurred_at"], format_rfc3339(RECEIVED));
    }

    #[test]
    fn what_cannot_be_mapped_says_why() {
        let no_event = to_event(&json!({"type": "track"}), None, &call()).expect_err("no event");
        assert_eq!(no_event.code, "missing_event_name");
        let unknown = to_event(&json!({"type": "screenshot"}), None, &call()).expect_err("type");
        assert_eq!(unknown.code, "unsupported_message");
        let bad_time = to_event(
            &json!({"type": "track", "event": "e", "timestamp": "yesterday"}),
            None,
            &call(),
        )
        .expect_err("time");
        assert_eq!(bad_time.code, "invalid_timestamp");
    }
}
