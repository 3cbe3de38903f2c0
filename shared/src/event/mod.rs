//! The raw event in the seed's shape, parsed without copying where possible, and validated.
//!
//! ```json
//! { "tenant_id": "acme", "source": "checkout-service", "event_type": "payment_completed",
//!   "properties": { "region": "us-east", "plan": "pro", "amount_usd": 49.99 },
//!   "occurred_at": "2024-01-15T14:05:32Z" }
//! ```
//!
//! Rules (every violation is a [`Rejection`] with a stable [`RejectCode`] and a message naming
//! the field):
//! - `tenant_id`, `source`, `event_type`: required non-empty strings of at most
//!   [`EventLimits::max_identifier_len`] characters from `[A-Za-z0-9_-]`, so that they are safe
//!   as NATS subject tokens and key-value keys.
//! - `properties`: optional object of scalar values (string, number, boolean, null). Nested
//!   objects and arrays are rejected (`property_not_scalar`) rather than flattened or dropped:
//!   dimensions and numeric fields must be scalars, and a silently ignored value would be lost
//!   data. Bounded key count, key length and string-value length.
//! - `occurred_at`: optional RFC 3339 timestamp with an offset (absent or `null`: the time the
//!   event was received); when given, not further in the future than
//!   [`EventLimits::max_future_skew_ms`] (a producer with a fast clock must not close windows
//!   early) and not older than [`EventLimits::max_age_ms`].
//! - `id`: optional producer-chosen event id (string), echoed back as `event_id`; the edge
//!   agent counts an id it has seen within its idempotency horizon once.
//! - `weight`: optional integer from 1 to [`MAX_WEIGHT`] (default 1): how many events this
//!   one stands for when the producer sampled (see [`Event::weight`]).
//! - Unknown top-level fields are rejected (`unknown_field`): a typo such as `occured_at` must
//!   not pass unnoticed.

mod batch;
mod fields;
mod hints;
mod limits;
mod model;
mod parse;
mod reject;
mod scalar;
mod scan;
mod validate;
mod visit;

pub use batch::{parse_batch, parse_batch_as, split_batch, BatchItems, ParsedBatch};
pub use hints::ItemHints;
pub use limits::EventLimits;
pub use model::{is_identifier, Event, BUILTIN_DIMENSIONS, MAX_WEIGHT};
pub use parse::{parse_event, parse_event_as};
pub use reject::{RejectCode, Rejection};
pub use scalar::Scalar;
