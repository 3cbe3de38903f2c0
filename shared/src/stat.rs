//! The statistics a metric window serves, by name.

use crate::sketch::Stats;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One served statistic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    /// Number of events.
    #[default]
    Count,
    /// Sum of the metric's field.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Mean value.
    Avg,
    /// Median (t-digest).
    P50,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// Distinct count (HyperLogLog).
    Unique,
}

impl Stat {
    /// Every stat.
    pub const ALL: [Stat; 10] = [
        Stat::Count,
        Stat::Sum,
        Stat::Min,
        Stat::Max,
        Stat::Avg,
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::Unique,
    ];

    /// Lowercase name (`p99`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Stat::Count => "count",
            Stat::Sum => "sum",
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::Avg => "avg",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Unique => "unique",
        }
    }

    /// The QuestDB column holding it (see [`crate::schema`]).
    pub const fn column(self) -> &'static str {
        match self {
            Stat::Unique => "uniq",
            other => other.as_str(),
        }
    }

    /// Whether values of several windows or series combine exactly into a coarser one
    /// (count and sum add up, min and max take the extreme, avg is sum over count). Percentiles
    /// and distinct counts do not.
    pub const fn is_combinable(self) -> bool {
        matches!(
            self,
            Stat::Count | Stat::Sum | Stat::Min | Stat::Max | Stat::Avg
        )
    }

    /// The value of this stat in `stats`.
    pub fn value(self, stats: &Stats) -> Option<f64> {
        match self {
            Stat::Count => Some(stats.count as f64),
            Stat::Sum => stats.sum,
            Stat::Min => stats.min,
            Stat::Max => stats.max,
            Stat::Avg => stats.avg,
            Stat::P50 => stats.p50,
            Stat::P90 => stats.p90,
            Stat::P95 => stats.p95,
            Stat::P99 => stats.p99,
            Stat::Unique => stats.unique.map(|u| u as f64),
        }
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown stat name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown stat {0:?}; expected one of count, sum, min, max, avg, p50, p90, p95, p99, unique"
)]
pub struct UnknownStat(pub String);

impl FromStr for Stat {
    type Err = UnknownStat;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Stat::ALL
            .into_iter()
            .find(|stat| stat.as_str() == text)
            .ok_or_else(|| UnknownStat(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for stat in Stat::ALL {
            assert_eq!(stat.as_str().parse::<Stat>(), Ok(stat));
        }
        assert!("p42".parse::<Stat>().is_err());
        assert_eq!(Stat::Unique.column(), "uniq");
    }
}
