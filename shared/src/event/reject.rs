//! Why an event was rejected: a stable machine-readable code and a human message.

use serde::Serialize;
use std::fmt;

/// Stable reason codes. They appear in API answers, dead letters and metrics labels, so they
/// never change meaning; new ones may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The request body was empty.
    EmptyBody,
    /// The request body exceeded the configured limit.
    BodyTooLarge,
    /// A batch held more items than allowed.
    BatchTooLarge,
    /// One event exceeded the configured size.
    EventTooLarge,
    /// The input was not valid UTF-8.
    InvalidUtf8,
    /// The input was not well-formed JSON.
    MalformedJson,
    /// The JSON value was not an object.
    NotAnObject,
    /// A required field was missing.
    MissingField,
    /// A field had the wrong JSON type.
    WrongType,
    /// A top-level field that the event shape does not have.
    UnknownField,
    /// A field appeared twice.
    DuplicateField,
    /// A required string was empty.
    EmptyValue,
    /// An identifier was longer than allowed.
    ValueTooLong,
    /// An identifier had characters outside `[A-Za-z0-9_-]`.
    InvalidCharacters,
    /// More properties than allowed.
    TooManyProperties,
    /// A property key was empty, too long or had control characters.
    InvalidPropertyKey,
    /// A property value was an object or an array.
    PropertyNotScalar,
    /// A string property value was longer than allowed.
    PropertyValueTooLong,
    /// `occurred_at` was not an RFC 3339 timestamp with an offset.
    InvalidTimestamp,
    /// `occurred_at` lay too far in the future.
    TimestampInFuture,
    /// `occurred_at` lay too far in the past.
    TimestampTooOld,
    /// The event names a tenant other than the one of the producer's key (or of a sidecar
    /// agent's configured tenant).
    TenantMismatch,
    /// `weight` was not an integer from 1 to [`MAX_WEIGHT`](super::MAX_WEIGHT).
    InvalidWeight,
}

impl RejectCode {
    /// Every code, for metrics registration and exhaustive tests.
    pub const ALL: [RejectCode; 23] = [
        Self::EmptyBody,
        Self::BodyTooLarge,
        Self::BatchTooLarge,
        Self::EventTooLarge,
        Self::InvalidUtf8,
        Self::MalformedJson,
        Self::NotAnObject,
        Self::MissingField,
        Self::WrongType,
        Self::UnknownField,
        Self::DuplicateField,
        Self::EmptyValue,
        Self::ValueTooLong,
        Self::InvalidCharacters,
        Self::TooManyProperties,
        Self::InvalidPropertyKey,
        Self::PropertyNotScalar,
        Self::PropertyValueTooLong,
        Self::InvalidTimestamp,
        Self::TimestampInFuture,
        Self::TimestampTooOld,
        Self::TenantMismatch,
        Self::InvalidWeight,
    ];

    /// The snake_case code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EmptyBody => "empty_body",
            Self::BodyTooLarge => "body_too_large",
            Self::BatchTooLarge => "batch_too_large",
            Self::EventTooLarge => "event_too_large",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::MalformedJson => "malformed_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::UnknownField => "unknown_field",
            Self::DuplicateField => "duplicate_field",
            Self::EmptyValue => "empty_value",
            Self::ValueTooLong => "value_too_long",
            Self::InvalidCharacters => "invalid_characters",
            Self::TooManyProperties => "too_many_properties",
            Self::InvalidPropertyKey => "invalid_property_key",
            Self::PropertyNotScalar => "property_not_scalar",
            Self::PropertyValueTooLong => "property_value_too_long",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::TimestampInFuture => "timestamp_in_future",
            Self::TimestampTooOld => "timestamp_too_old",
            Self::TenantMismatch => "tenant_mismatch",
            Self::InvalidWeight => "invalid_weight",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected event: the reason, and the tenant when one could be read (for dead-letter routing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Rejection {
    /// Machine-readable reason.
    pub code: RejectCode,
    /// Human-readable explanation naming the field.
    pub message: String,
    /// The event's tenant, when it was a valid identifier.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tenant: Option<String>,
}

impl Rejection {
    /// A rejection with no known tenant.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            tenant: None,
        }
    }

    /// The same rejection, attributed to `tenant`.
    pub fn with_tenant(mut self, tenant: Option<&str>) -> Self {
        self.tenant = tenant.map(str::to_owned);
        self
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Rejection {}
