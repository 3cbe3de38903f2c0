//! The chaos soak: the distributed deployment under a steady load while a seeded schedule
//! kills, restarts and pauses its components, then every window checked against an exact
//! oracle and every alert transition against the webhook receiver's log
//! (`tests/tests/chaos_soak.rs`, `./deploy/chaos.sh`).
//!
//! - `chaos/stack.rs`: [`ChaosStack`]: 3-node NATS cluster (R3 streams and buckets), a
//!   private QuestDB (it is killed too), 2 core aggregators, 2 gateways behind a
//!   [`crate::fault::FailoverProxy`], 2 edge agents; every component addressable as a
//!   [`Component`] that can be killed, restarted, paused and resumed.
//! - `chaos/schedule.rs`: the seeded fault schedule ([`Schedule`]).
//! - `chaos/oracle.rs`: exact aggregates per window and series ([`Cell`]) and the check of
//!   QuestDB's rows against them, requests whose outcome is unknown (the agent died while
//!   answering) resolved as all-or-nothing.
//! - `chaos/load.rs`: the producers ([`ChaosLoad`]): steady events with late ones, and the
//!   square wave of the alert series.
//! - `chaos/alerts.rs`: the alert rule, the transitions read back from `RTDASH_ALERTS`, and
//!   the check of the receiver's log against them.
//! - `chaos/sampler.rs`: RSS and open file descriptors of every process over time.
//! - `chaos/soak.rs`: the driver ([`run_soak`]) and its [`SoakReport`].

mod alerts;
mod load;
mod oracle;
mod sampler;
mod schedule;
mod soak;
mod stack;

pub use alerts::{check_deliveries, AlertCheck};
pub use load::{ChaosLoad, LoadTally};
pub use oracle::{Cell, CellKey, OracleCheck};
pub use sampler::{ProcessStats, Sampler};
pub use schedule::{Action, Fault, Schedule, ScheduleOptions};
pub use soak::{run_soak, FaultRecord, SoakOptions, SoakReport};
pub use stack::{ChaosStack, Component};

/// Tenant of the soak's workload.
pub const TENANT: &str = "chaos";
/// The soak's metric: count/sum/min/max/percentiles of `v`, distinct `u`, by `k`.
pub const METRIC: &str = "chaos";
/// Event type of the workload.
pub const EVENT_TYPE: &str = "tick";
/// Window of [`METRIC`].
pub const WINDOW_MS: i64 = 2_000;
/// The aggregators' `windows.allowed_lateness_ms`.
pub const ALLOWED_LATENESS_MS: i64 = 2_000;
/// Partitions of the partials stream.
pub const PARTITIONS: u32 = 4;
/// Values of `v` are 1..=`MAX_VALUE`.
pub const MAX_VALUE: u64 = 100;
/// Distinct values of `u` (`u0`..).
pub const UNIQUES: u64 = 64;
/// Values of the dimension `k` of the steady series (`k0`..).
pub const KEYS: u64 = 8;
/// The alert series' value of `k`.
pub const ALERT_KEY: &str = "alert";
