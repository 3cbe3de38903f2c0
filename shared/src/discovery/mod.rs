//! Schema discovery: what the edge agents learn of the events they accept, per tenant.
//!
//! Each agent keeps, per tenant and event type, the property names with the kinds observed,
//! a few example values and an approximate distinct count, and publishes one
//! [`TypeRecord`] per (tenant, agent, event type) to the `rtdash_schema` bucket
//! ([`crate::names::SCHEMA_BUCKET`], key [`crate::names::schema_type_key`]) and one
//! [`OverflowRecord`] per (tenant, agent) with what it did not keep. The gateway merges the
//! records of every agent of a tenant ([`merge`]) for `GET /v1/event-types`.
//!
//! - [`record`]: the records and their versioned postcard encoding;
//! - [`merge`]: the union of many agents' records, and the answer's shape.

pub mod merge;
pub mod record;

pub use merge::{merge, EventTypeInfo, EventTypes, KindCounts, PropertyInfo};
pub use record::{
    DiscoveryDecodeError, OverflowRecord, PropertyRecord, TypeRecord, DISCOVERY_FORMAT_VERSION,
    MAX_EXAMPLES,
};
