//! The settings of the partition state machine (timing, output throttling, rollup tiers) and
//! the store room one poll may use.

use super::tiers::TierSet;

/// How many store outputs one poll may make
/// ([`PartitionState::poll_outputs_within`](super::PartitionState::poll_outputs_within)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreRoom {
    /// Store outputs in all.
    pub rows: usize,
    /// Of which outputs of open windows (provisional versions).
    pub provisional: usize,
}

impl StoreRoom {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        rows: usize::MAX,
        provisional: usize::MAX,
    };
}

/// Settings of the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// See [`crate::config::WindowsConfig::allowed_lateness_ms`].
    pub allowed_lateness_ms: i64,
    /// See [`crate::config::WindowsConfig::correction_horizon_ms`].
    pub correction_horizon_ms: i64,
    /// See [`crate::config::WindowsConfig::idle_timeout_ms`].
    pub idle_timeout_ms: i64,
    /// See [`crate::config::WindowsConfig::forget_agents_after_ms`].
    pub forget_agents_after_ms: i64,
    /// Minimum time between two store outputs of an open window.
    pub provisional_interval_ms: i64,
    /// Minimum time between two outputs (store and live together) of an open tier window.
    pub tier_interval_ms: i64,
    /// Minimum time between two live outputs of a window.
    pub live_throttle_ms: i64,
    /// Provisional store outputs per second this partition makes at most (0 = no limit):
    /// with more open windows than this, each is stored every `open / this` seconds instead
    /// of every `provisional_interval_ms`.
    pub provisional_rows_per_s: i64,
    /// Whether store outputs carry the window's state (see
    /// [`crate::config::WriterConfig::write_state`]).
    pub write_state: bool,
    /// The rollup tiers kept beside the base windows.
    pub tiers: TierSet,
    /// See [`rtdash_runtime::rollups::RollupsConfig::max_tier_series`].
    pub max_tier_series: u32,
}

impl Settings {
    /// Settings from the configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            allowed_lateness_ms: config.windows.allowed_lateness_ms,
            correction_horizon_ms: config.windows.correction_horizon_ms,
            idle_timeout_ms: config.windows.idle_timeout_ms,
            forget_agents_after_ms: config.windows.forget_agents_after_ms,
            provisional_interval_ms: config.writer.provisional_interval_ms,
            tier_interval_ms: config.writer.tier_interval_ms,
            live_throttle_ms: config.live.throttle_ms,
            provisional_rows_per_s: match config.writer.provisional_rows_per_s {
                0 => 0,
                total => (total / u64::from(config.streams.partitions.max(1))).max(1) as i64,
            },
            write_state: config.writer.write_state,
            tiers: TierSet::from_config(&config.rollups),
            max_tier_series: config.rollups.max_tier_series,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::from_config(&crate::config::Config::default())
    }
}
