//! rtdash's shared contract.
//!
//! Everything that crosses a process boundary lives here, so that the edge agent, the core
//! aggregator, the gateway and the replay tools agree on it by construction:
//!
//! - [`event`]: the raw event in the seed's shape, its parser and validation reasons;
//! - [`metric`]: metric definitions (which events feed which metric, grouped how);
//! - [`series`]: canonical series keys and the stable partition function;
//! - [`window`]: tumbling windows aligned to the Unix epoch and watermark helpers;
//! - [`sketch`]: the mergeable per-window summary (exact count/sum/min/max, HyperLogLog
//!   unique counts, t-digest percentiles);
//! - [`aggregate`]: the aggregation code shared by the live path and recomputation;
//! - [`messages`] and [`wire`]: what travels over NATS, in a versioned envelope;
//! - [`archive`]: the raw-event archive's chunks (NDJSON, optionally zstd-compressed);
//! - [`names`]: every subject, stream, bucket and config key name;
//! - [`schema`]: the QuestDB tables metric windows live in, and [`rollup`] the coarser tiers
//!   kept beside each metric's own window; `ilp` (feature `ilp`) a window as a row of them;
//! - [`stat`] and [`alert`]: served statistics, alert rules and transitions;
//! - [`auth`]: API keys, roles, principals, session tokens (no I/O); [`quota`] the limits a
//!   tenant is held to;
//! - [`discovery`]: the event types, properties and example values seen per tenant.
//!
//! This crate knows nothing of HTTP servers or NATS clients.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod alert;
pub mod archive;
pub mod auth;
pub mod backfill;
mod codec;
pub mod discovery;
pub mod event;
#[cfg(feature = "ilp")]
pub mod ilp;
pub mod messages;
pub mod metric;
pub mod names;
pub mod quota;
pub mod rollup;
pub mod schema;
pub mod series;
pub mod silence;
pub mod sketch;
pub mod stat;
pub mod time;
pub mod window;
pub mod wire;
