//! `[rollups]`: the rollup tiers and the retention of every windows table, a section the core
//! aggregators (which write the tiers and set the retention) and the gateways (which choose
//! the table a query reads) share, so both see the same deployment setting:
//! `RTDASH_ROLLUPS__TIERS='["1h","1d"]'`, `RTDASH_ROLLUPS__TIER_RETENTION_DAYS__1H=90`.
//!
//! See [`rtdash_shared::rollup`] for what a tier is.

use crate::config::ConfigError;
use rtdash_shared::rollup::Tier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[rollups]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollupsConfig {
    /// The tiers kept beside each metric's base window, `<n><unit>` with unit `s`, `m`, `h` or
    /// `d`, at most 7 days each (`[]`: none). Each has its table, `<questdb.table>_<tier>`.
    /// Default `["1h", "1d"]`.
    pub tiers: Vec<String>,
    /// Days the base table (`questdb.table`) keeps windows (QuestDB `TTL`), at least 1.
    /// Default 7.
    pub base_retention_days: u32,
    /// Days each tier's table keeps windows, by tier name; every tier in `tiers` needs an
    /// entry (entries of other tiers are ignored), at least 1. Tables of tiers of a day or
    /// more are partitioned by month, so their retention rounds up to whole months
    /// (`ceil(days × 12 / 365)`). Default `{"1h" = 90, "1d" = 730}`.
    pub tier_retention_days: BTreeMap<String, u32>,
    /// Most series one aggregator partition keeps per (tenant, metric, dimension set) in one
    /// tier window; the windows of further series fold into that tier window's overflow
    /// series (see docs/aggregator.md). Default 40 000 (4 × the default
    /// `max_series_per_window` of a metric, which an hour of churning series can exceed).
    pub max_tier_series: u32,
}

impl Default for RollupsConfig {
    fn default() -> Self {
        Self {
            tiers: vec!["1h".to_owned(), "1d".to_owned()],
            base_retention_days: 7,
            tier_retention_days: BTreeMap::from([("1h".to_owned(), 90), ("1d".to_owned(), 730)]),
            max_tier_series: 40_000,
        }
    }
}

impl RollupsConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let tiers = self.parsed_tiers()?;
        for pair in tiers.windows(2) {
            if pair[0].ms() == pair[1].ms() {
                return Err(ConfigError::invalid(
                    "rollups.tiers",
                    format!("`{}` and `{}` are the same length", pair[0], pair[1]),
                ));
            }
        }
        if self.base_retention_days == 0 {
            return Err(ConfigError::invalid(
                "rollups.base_retention_days",
                "must be at least 1",
            ));
        }
        for tier in &tiers {
            match self.tier_retention_days.get(tier.name()) {
                None => {
                    return Err(ConfigError::invalid(
                        "rollups.tier_retention_days",
                        format!("has no entry for tier `{tier}`"),
                    ))
                }
                Some(0) => {
                    return Err(ConfigError::invalid(
                        format!("rollups.tier_retention_days.{tier}"),
                        "must be at least 1",
                    ))
                }
                Some(_) => {}
            }
        }
        if self.max_tier_series == 0 {
            return Err(ConfigError::invalid(
                "rollups.max_tier_series",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The tiers, shortest first (call after [`RollupsConfig::validate`]; names that do not
    /// parse are left out).
    pub fn tiers(&self) -> Vec<Tier> {
        let mut tiers: Vec<Tier> = self
            .tiers
            .iter()
            .filter_map(|name| Tier::parse(name).ok())
            .collect();
        tiers.sort();
        tiers.dedup();
        tiers
    }

    /// Days `tier`'s table keeps windows (the base retention for a tier without an entry,
    /// which [`RollupsConfig::validate`] refuses).
    pub fn retention_days(&self, tier: &Tier) -> u32 {
        self.tier_retention_days
            .get(tier.name())
            .copied()
            .unwrap_or(self.base_retention_days)
    }

    fn parsed_tiers(&self) -> Result<Vec<Tier>, ConfigError> {
        let mut tiers = self
            .tiers
            .iter()
            .map(|name| Tier::parse(name))
            .collect::<Result<Vec<Tier>, _>>()
            .map_err(|err| ConfigError::invalid("rollups.tiers", err.to_string()))?;
        tiers.sort();
        Ok(tiers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_from, Validate};

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        rollups: RollupsConfig,
    }

    impl Validate for Sample {
        fn validate(&self) -> Result<(), ConfigError> {
            self.rollups.validate()
        }
    }

    fn load(env: &[(&str, &str)]) -> Result<RollupsConfig, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        load_from::<Sample>("core-aggregator", None, env).map(|s| s.rollups)
    }

    #[test]
    fn defaults_and_the_shared_environment() {
        let defaults = load(&[]).unwrap();
        let names: Vec<String> = defaults.tiers().iter().map(|t| t.to_string()).collect();
        assert_eq!(names, ["1h", "1d"]);
        assert_eq!(defaults.retention_days(&Tier::parse("1d").unwrap()), 730);
        let custom = load(&[
            ("RTDASH_ROLLUPS__TIERS", r#"["10m", "2m"]"#),
            ("RTDASH_ROLLUPS__TIER_RETENTION_DAYS__2M", "1"),
            ("RTDASH_ROLLUPS__TIER_RETENTION_DAYS__10M", "2"),
            ("RTDASH_ROLLUPS__BASE_RETENTION_DAYS", "3"),
        ])
        .unwrap();
        let names: Vec<String> = custom.tiers().iter().map(|t| t.to_string()).collect();
        assert_eq!(names, ["2m", "10m"]);
        assert_eq!(custom.retention_days(&Tier::parse("10m").unwrap()), 2);
        assert_eq!(custom.base_retention_days, 3);
        assert!(load(&[("RTDASH_ROLLUPS__TIERS", "[]")])
            .unwrap()
            .tiers()
            .is_empty());
    }

    #[test]
    fn bad_values_name_the_key() {
        for (env, needle) in [
            (
                vec![("RTDASH_ROLLUPS__TIERS", r#"["1w"]"#)],
                "`rollups.tiers`",
            ),
            (
                vec![("RTDASH_ROLLUPS__TIERS", r#"["1h","60m"]"#)],
                "same length",
            ),
            (
                vec![("RTDASH_ROLLUPS__TIERS", r#"["2m"]"#)],
                "has no entry for tier `2m`",
            ),
            (
                vec![("RTDASH_ROLLUPS__TIER_RETENTION_DAYS__1H", "0")],
                "`rollups.tier_retention_days.1h` must be at least 1",
            ),
            (
                vec![("RTDASH_ROLLUPS__BASE_RETENTION_DAYS", "0")],
                "base_retention_days",
            ),
            (
                vec![("RTDASH_ROLLUPS__MAX_TIER_SERIES", "0")],
                "max_tier_series",
            ),
            (vec![("RTDASH_ROLLUPS__BOGUS", "1")], "bogus"),
        ] {
            let err = load(&env).unwrap_err().to_string();
            assert!(err.contains(needle), "{env:?}: {err}");
        }
    }
}
