//! Schema discovery: per tenant, the event types the agent accepted and, per type, the
//! property names with their observed kinds, up to five example values and an approximate
//! distinct count, over a recent horizon (`[schema]`, see [`crate::config::SchemaConfig`]).
//!
//! - [`catalog`]: the bounded in-memory record, updated once per request batch (one lock,
//!   a hash lookup per property and a HyperLogLog insert per value);
//! - [`publisher`]: every `schema.publish_interval_ms`, the event types that changed go to
//!   the `rtdash_schema` bucket, one key per (tenant, agent, event type), plus one overflow
//!   record per (tenant, agent); the gateway merges every agent's keys of a tenant for
//!   `GET /v1/event-types` (see [`rtdash_shared::discovery`]).
//!
//! What a bound turns away is counted, never stored. A restarted agent starts from an empty
//! record and overwrites its keys at its first publish; an agent at an edge site writes to the
//! hub's bucket through the hub's API prefix (its own domain has no such bucket).

pub mod catalog;
pub mod publisher;

pub use catalog::Catalog;
