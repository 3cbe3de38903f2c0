//! DogStatsD/StatsD over UDP: what a service's StatsD client (the `datadog` package,
//! `hot-shots`, any StatsD library) sends to `127.0.0.1:8125`, received by the agent beside
//! it. The listener runs when `statsd.tenant` is set: a sidecar's StatsD port serves one
//! tenant, and UDP carries no credentials, so it listens on loopback
//! (`statsd.listen`, default `127.0.0.1:8125`).
//!
//! [`parse`] reads a line, [`map`] turns it into events (the mapping table is there),
//! [`listener`] receives, batches and submits, [`kernel`] reads the kernel's drop count. One
//! bad line is dropped, counted (`rtdash_agent_statsd_lines_dropped_total{reason}`) and
//! dead-lettered; the other lines of its packet are not affected.

pub mod kernel;
pub mod listener;
pub mod map;
pub mod parse;

pub use listener::{BindError, Listener};
