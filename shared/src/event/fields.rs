//! The slots a parse files an event's top-level fields into, in [`FIELDS`] order, whichever
//! path parsed it (the scanner of [`super::scan`] or the serde visitors of [`super::visit`]),
//! so that one validation ([`super::validate`]) runs on either.

use super::reject::Rejection;
use super::scalar::Scalar;
use std::borrow::Cow;

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
    pub(super) fn kind(&self) -> &'static str {
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

/// The top-level field names: the index of a name is its slot in [`TopFields::slots`].
pub(super) const FIELDS: [&str; 7] = [
    "id",
    "tenant_id",
    "source",
    "event_type",
    "properties",
    "occurred_at",
    "weight",
];

/// The top-level fields, filed into slots in [`FIELDS`] order as they are parsed.
#[derive(Default)]
pub(super) struct TopFields<'a> {
    pub(super) slots: [Option<Any<'a>>; 7],
    /// The first unknown or repeated field, reported after the whole object was read (so the
    /// tenant is known for dead-letter routing).
    pub(super) structural: Option<Rejection>,
}
