//! Rollup tiers as the gateway sees them: the deployment's `[rollups]` section (which tiers
//! the aggregators keep and how long QuestDB keeps each table), the table of each tier, and
//! which stored resolution (the metric's base windows or a tier) serves a window over a range.
//!
//! The aggregators keep, besides each metric's base windows (`<table>`), one table per tier
//! (`<table>_1h`, `<table>_1d`): the same columns, one row per series and tier window, the
//! merge of the base windows inside it. QuestDB drops whole partitions past each table's TTL,
//! so a table serves a range only while the range is younger than its retention.
//!
//! `rtdash_runtime::rollups` holds the same section and `rtdash_shared::schema` the same
//! tier-table naming, as the aggregators read them; [`RollupsConfig`] and [`tier_table`] are
//! the gateway's copies, with the same defaults, to be folded into those.

use rtdash_runtime::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::resolution::{format_duration, parse_duration};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// `[rollups]`: the tiers the aggregators maintain and the retention of each table.
///
/// ```toml
/// [rollups]
/// tiers = ["1h", "1d"]
/// base_retention_days = 7
/// tier_retention_days = { "1h" = 90, "1d" = 730 }
/// ```
///
/// A retention of 0 days means the table has no TTL (kept forever).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollupsConfig {
    /// Tier windows (`1h`, `1d`...), each a whole number of hours or days.
    pub tiers: Vec<String>,
    /// Days the base table (every metric's own windows) keeps; 0: forever.
    pub base_retention_days: u32,
    /// Days each tier's table keeps, by tier; a tier not listed keeps 90 days; 0: forever.
    pub tier_retention_days: BTreeMap<String, u32>,
}

impl Default for RollupsConfig {
    fn default() -> Self {
        Self {
            tiers: vec!["1h".to_owned(), "1d".to_owned()],
            base_retention_days: 7,
            tier_retention_days: BTreeMap::from([("1h".to_owned(), 90), ("1d".to_owned(), 730)]),
        }
    }
}

/// Retention of a tier not named in `tier_retention_days`.
const DEFAULT_TIER_RETENTION_DAYS: u32 = 90;

impl RollupsConfig {
    /// Checks the tiers: each parses, is a whole number of hours, divides a day or is whole
    /// days, and appears once; retention keys name configured tiers.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = Vec::new();
        for tier in &self.tiers {
            let Some(ms) = parse_duration(tier) else {
                return Err(ConfigError::invalid(
                    "rollups.tiers",
                    format!("{tier:?} is not a window such as 1h or 1d"),
                ));
            };
            if ms % 3_600_000 != 0 || (DAY_MS % ms != 0 && ms % DAY_MS != 0) {
                return Err(ConfigError::invalid(
                    "rollups.tiers",
                    format!("{tier} must be whole hours dividing a day, or whole days"),
                ));
            }
            if seen.contains(&ms) {
                return Err(ConfigError::invalid(
                    "rollups.tiers",
                    format!("{tier} appears twice"),
                ));
            }
            seen.push(ms);
        }
        for key in self.tier_retention_days.keys() {
            let known = parse_duration(key).is_some_and(|ms| seen.contains(&ms));
            if !known {
                return Err(ConfigError::invalid(
                    "rollups.tier_retention_days",
                    format!("{key:?} is not one of rollups.tiers"),
                ));
            }
        }
        Ok(())
    }

    /// The tiers with their retention, coarsest first.
    pub fn tiers(&self) -> Tiers {
        let mut tiers: Vec<Tier> = self
            .tiers
            .iter()
            .filter_map(|text| {
                let window_ms = parse_duration(text)?;
                let days = self
                    .tier_retention_days
                    .iter()
                    .find(|(key, _)| parse_duration(key) == Some(window_ms))
                    .map_or(DEFAULT_TIER_RETENTION_DAYS, |(_, days)| *days);
                Some(Tier {
                    window_ms,
                    retention_ms: i64::from(days) * DAY_MS,
                })
            })
            .collect();
        tiers.sort_by_key(|tier| std::cmp::Reverse(tier.window_ms));
        tiers.dedup_by_key(|tier| tier.window_ms);
        Tiers {
            tiers,
            base_retention_ms: i64::from(self.base_retention_days) * DAY_MS,
        }
    }
}

/// One tier: its window and how long its table keeps rows (0: forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tier {
    /// Window length.
    pub window_ms: i64,
    /// Retention; 0 means forever.
    pub retention_ms: i64,
}

/// The deployment's tiers (coarsest first) and the base table's retention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tiers {
    tiers: Vec<Tier>,
    base_retention_ms: i64,
}

impl Default for Tiers {
    fn default() -> Self {
        RollupsConfig::default().tiers()
    }
}

/// A stored resolution that can serve a window: the metric's base windows or a tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// Window length of its rows.
    pub window_ms: i64,
    /// Whether it is the base table.
    pub is_base: bool,
    /// Retention of its table; 0 means forever.
    pub retention_ms: i64,
}

impl Source {
    /// Whether its table still holds windows starting at `from` (the first served window
    /// of `window_ms` must end after the retention edge).
    pub fn retains(&self, from: i64, window_ms: i64, now: i64) -> bool {
        self.retention_ms == 0 || from + window_ms > now - self.retention_ms
    }

    /// `7 days`, `forever`.
    pub fn retention_text(&self) -> String {
        if self.retention_ms == 0 {
            "forever".to_owned()
        } else {
            format!("{} days", self.retention_ms / DAY_MS)
        }
    }
}

impl Tiers {
    /// No tiers, and the base table kept forever (unit tests).
    pub fn none() -> Self {
        Self {
            tiers: Vec::new(),
            base_retention_ms: 0,
        }
    }

    /// Tiers as configured, coarsest first.
    pub fn list(&self) -> &[Tier] {
        &self.tiers
    }

    /// The base table's retention (0: forever).
    pub fn base_retention_ms(&self) -> i64 {
        self.base_retention_ms
    }

    /// The stored resolutions that can serve `window_ms` of a metric whose windows are
    /// `base_ms`, coarsest first: every tier that is a multiple of the base and divides the
    /// window, then the base itself.
    pub fn sources(&self, base_ms: i64, window_ms: i64) -> Vec<Source> {
        let mut sources: Vec<Source> = self
            .tiers
            .iter()
            .filter(|tier| {
                tier.window_ms > base_ms
                    && tier.window_ms % base_ms == 0
                    && window_ms % tier.window_ms == 0
            })
            .map(|tier| Source {
                window_ms: tier.window_ms,
                is_base: false,
                retention_ms: tier.retention_ms,
            })
            .collect();
        sources.push(Source {
            window_ms: base_ms,
            is_base: true,
            retention_ms: self.base_retention_ms,
        });
        sources
    }

    /// Every stored resolution of a metric whose windows are `base_ms`, coarsest first.
    pub fn all_sources(&self, base_ms: i64) -> Vec<Source> {
        // The product of every tier is a multiple of each.
        let every = self.tiers.iter().fold(base_ms, |acc, tier| {
            acc * tier.window_ms / gcd(acc, tier.window_ms)
        });
        self.sources(base_ms, every)
    }

    /// The table holding rows of `source_ms`-long windows for a metric whose windows are
    /// `base_ms`.
    pub fn table_of(&self, base_table: &str, base_ms: i64, source_ms: i64) -> String {
        if source_ms == base_ms {
            base_table.to_owned()
        } else {
            tier_table(base_table, source_ms)
        }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The table of the tier of `window_ms` next to `base_table`: `metric_windows_1h`.
pub fn tier_table(base_table: &str, window_ms: i64) -> String {
    format!("{base_table}_{}", format_duration(window_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_sources() {
        let config = RollupsConfig::default();
        config.validate().expect("defaults valid");
        let tiers = config.tiers();
        assert_eq!(
            tiers.list(),
            &[
                Tier {
                    window_ms: DAY_MS,
                    retention_ms: 730 * DAY_MS
                },
                Tier {
                    window_ms: 3_600_000,
                    retention_ms: 90 * DAY_MS
                }
            ]
        );
        let windows = |base, window| -> Vec<i64> {
            tiers
                .sources(base, window)
                .iter()
                .map(|s| s.window_ms)
                .collect()
        };
        assert_eq!(windows(60_000, 7 * DAY_MS), vec![DAY_MS, 3_600_000, 60_000]);
        assert_eq!(windows(60_000, 6 * 3_600_000), vec![3_600_000, 60_000]);
        assert_eq!(windows(60_000, 300_000), vec![60_000]);
        // A 7-minute... not allowed; a 2-hour base has no 1h tier.
        assert_eq!(windows(7_200_000, DAY_MS), vec![DAY_MS, 7_200_000]);
        assert_eq!(tier_table("metric_windows", 3_600_000), "metric_windows_1h");
        assert_eq!(tiers.table_of("t", 60_000, 60_000), "t");
        assert_eq!(tiers.table_of("t", 60_000, DAY_MS), "t_1d");
    }

    #[test]
    fn bad_tiers_name_the_key() {
        for tiers in [vec!["5m"], vec!["1h", "60m"], vec!["5h"], vec!["x"]] {
            let config = RollupsConfig {
                tiers: tiers.iter().map(|t| t.to_string()).collect(),
                tier_retention_days: BTreeMap::new(),
                ..RollupsConfig::default()
            };
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("rollups.tiers"), "{tiers:?}: {err}");
        }
        let config = RollupsConfig {
            tier_retention_days: BTreeMap::from([("6h".to_owned(), 3)]),
            ..RollupsConfig::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn retention() {
        let now = 100 * DAY_MS;
        let base = Tiers::default().sources(60_000, 60_000)[0];
        assert!(base.is_base);
        assert!(base.retains(now - 7 * DAY_MS, 60_000, now));
        assert!(!base.retains(now - 7 * DAY_MS - 60_000, 60_000, now));
        assert!(Tiers::none().sources(60_000, 60_000)[0].retains(0, 60_000, now));
    }
}
