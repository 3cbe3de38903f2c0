//! Live push: the hub of shared upstream subscriptions ([`hub`], [`subscription`], [`link`])
//! and the per-topic state they feed ([`topic`], its [`ring`] and [`memory`]), the snapshot
//! cache, pipeline freshness, the repair of missed final updates, and the Server-Sent Events
//! endpoint ([`sse`]).

pub mod hub;
pub mod link;
pub mod memory;
pub mod repair;
pub mod ring;
pub mod snapshot;
pub mod sse;
pub mod status;
mod subscription;
pub mod topic;
pub mod update;
mod values;
