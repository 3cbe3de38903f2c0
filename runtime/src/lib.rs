//! Service plumbing shared by rtdash's binaries, so that each `main.rs` stays thin:
//!
//! - [`bootstrap`]: the one start-up and exit sequence of every binary (command line, config,
//!   runtime, telemetry, signals, exit codes), and [`jemalloc_global_allocator!`];
//! - [`config`]: layered configuration (defaults, then a TOML file, then `RTDASH_...`
//!   environment variables) with errors that name the key; exit code 64 on bad config;
//! - [`telemetry`]: `tracing` logs (human or JSON) and, when configured, OpenTelemetry traces
//!   over OTLP;
//! - [`prometheus`]: the metrics recorder every service records to, and its content type;
//! - [`trace_context`]: W3C `traceparent` in NATS headers, so a trace crosses services;
//! - [`admin`]: `/healthz`, `/readyz` and `/metrics`;
//! - [`shutdown`]: SIGINT/SIGTERM into a `CancellationToken`, and a bounded grace period;
//! - [`net`]: binding listeners with errors that name the address;
//! - [`http`]: the HTTP server loop of every listener, with slow-client limits (`[http]`);
//! - [`ipnet`]: IP address ranges (CIDR) in operators' lists;
//! - [`egress`]: where tenant-chosen outbound requests (webhooks) may go;
//! - [`error_chain`]: an error and its causes on one line, for exit lines and logs;
//! - [`nats`]: connecting to NATS and creating rtdash's streams and buckets;
//! - [`keys`]: API keys, dashboard links and sessions verified from memory (issue #16);
//! - [`nats_access`]: a service's NATS credentials, TLS and reply prefix;
//! - [`kv`]: the current values of a bucket's keys under a pattern, and following them;
//! - [`kv_watch`]: watching one key prefix of a bucket in a way subject permissions can limit;
//! - [`secret`]: passwords and tokens in configs, never printed;
//! - [`rollups`]: the `[rollups]` section (tiers and retention) aggregators and gateways share.
#![forbid(unsafe_code)]

pub mod admin;
mod allocator;
pub mod bootstrap;
pub mod config;
pub mod egress;
pub mod error_chain;
pub mod http;
pub mod ipnet;
pub mod keys;
pub mod kv;
pub mod kv_watch;
pub mod nats;
pub mod nats_access;
pub mod net;
pub mod prometheus;
pub mod rollups;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
pub mod trace_context;

/// Exit code for a configuration problem (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;
/// Exit code for a runtime failure (a dependency missing, a port taken).
pub const EXIT_FAILURE: i32 = 1;
