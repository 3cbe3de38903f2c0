//! Live push: the hub of shared upstream subscriptions, the snapshot cache, pipeline
//! freshness, and the Server-Sent Events endpoint.

pub mod hub;
pub mod snapshot;
pub mod sse;
pub mod status;
