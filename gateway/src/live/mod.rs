//! Live push: the hub of shared upstream subscriptions, the snapshot cache, pipeline
//! freshness, the repair of missed final updates, and the Server-Sent Events endpoint.

pub mod hub;
pub mod repair;
pub mod snapshot;
pub mod sse;
pub mod status;
