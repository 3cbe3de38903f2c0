//! Rollup tiers: coarser windows (an hour, a day by default) that the core aggregators keep
//! beside every metric's base window by merging the base windows' sketches, each in a table of
//! its own with its own retention, so that wide ranges are read from few rows.
//!
//! A tier is named `<n><unit>` (`s`, `m`, `h` or `d`: `1h`, `1d`, `10m`); the name is part of
//! its table's name ([`crate::schema::tier_table`]). Tier windows are aligned to the Unix epoch
//! like base windows. A metric's base windows feed a tier when the base window divides the
//! tier's length (a 1-minute metric feeds `1h` and `1d`; a 7-minute one feeds neither); a
//! metric whose window does not divide a tier has no rows in it.
//!
//! The deployment's tiers and retentions are the `[rollups]` section every component shares
//! (`rtdash_runtime::rollups`).

use crate::time::UnixMillis;
use crate::window::window_start;

/// Shortest tier (one second).
pub const MIN_TIER_MS: i64 = 1_000;
/// Longest tier (seven days, the longest window the aggregators accept).
pub const MAX_TIER_MS: i64 = 7 * 24 * 3_600_000;
/// One day in milliseconds.
const DAY_MS: i64 = 24 * 3_600_000;

/// One rollup tier.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tier {
    /// Length in milliseconds (first, so tiers sort by length).
    ms: i64,
    /// `<n><unit>`, as configured.
    name: String,
}

/// Why a tier name is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TierError {
    /// Not `<n><unit>`.
    #[error("`{0}` is not a tier: write a whole number and a unit s, m, h or d (`1h`, `10m`)")]
    Syntax(String),
    /// Shorter than a second or longer than seven days.
    #[error("tier `{0}` must be between 1s and 7d")]
    Range(String),
}

/// How a windows table is partitioned (and so in which unit its retention is expressed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partitioning {
    /// One partition per day: base windows and tiers shorter than a day.
    Day,
    /// One partition per month: tiers of a day or longer (a day partition would hold one row
    /// per series).
    Month,
}

impl Partitioning {
    /// The SQL keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Partitioning::Day => "DAY",
            Partitioning::Month => "MONTH",
        }
    }
}

impl Tier {
    /// Parses `<n><unit>` (`s`, `m`, `h`, `d`; `n` a whole number without leading zeros).
    pub fn parse(name: &str) -> Result<Tier, TierError> {
        let syntax = || TierError::Syntax(name.to_owned());
        let unit_at = name.len().checked_sub(1).ok_or_else(syntax)?;
        let (digits, unit) = name.split_at(unit_at);
        let unit_ms: i64 = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => DAY_MS,
            _ => return Err(syntax()),
        };
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(syntax());
        }
        let ms = digits
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_ms))
            .ok_or_else(|| TierError::Range(name.to_owned()))?;
        if !(MIN_TIER_MS..=MAX_TIER_MS).contains(&ms) {
            return Err(TierError::Range(name.to_owned()));
        }
        Ok(Tier {
            ms,
            name: name.to_owned(),
        })
    }

    /// Its name (`1h`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its length in milliseconds.
    pub fn ms(&self) -> i64 {
        self.ms
    }

    /// Whether base windows of `base_ms` feed this tier (the base window divides it).
    pub fn is_fed_by(&self, base_ms: i64) -> bool {
        base_ms > 0 && self.ms % base_ms == 0
    }

    /// Start of the tier window holding `at`.
    pub fn window_start(&self, at: UnixMillis) -> UnixMillis {
        window_start(at, self.ms)
    }

    /// How its table is partitioned.
    pub fn partitioning(&self) -> Partitioning {
        if self.ms < DAY_MS {
            Partitioning::Day
        } else {
            Partitioning::Month
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_refuses_others() {
        let hour = Tier::parse("1h").unwrap();
        assert_eq!((hour.name(), hour.ms()), ("1h", 3_600_000));
        assert_eq!(Tier::parse("10m").unwrap().ms(), 600_000);
        assert_eq!(Tier::parse("1d").unwrap().ms(), 86_400_000);
        assert_eq!(Tier::parse("90s").unwrap().ms(), 90_000);
        for bad in ["", "h", "1", "01h", "1H", "1.5h", "-1h", "1w", " 1h", "1hh"] {
            assert_eq!(
                Tier::parse(bad),
                Err(TierError::Syntax(bad.to_owned())),
                "{bad}"
            );
        }
        for out in ["8d", "999999999999999999d"] {
            assert_eq!(
                Tier::parse(out),
                Err(TierError::Range(out.to_owned())),
                "{out}"
            );
        }
    }

    #[test]
    fn feeding_alignment_and_partitioning() {
        let hour = Tier::parse("1h").unwrap();
        assert!(hour.is_fed_by(60_000));
        assert!(hour.is_fed_by(3_600_000));
        assert!(!hour.is_fed_by(7 * 60_000));
        assert!(!hour.is_fed_by(0));
        assert_eq!(hour.window_start(3_600_000 * 5 + 1_234), 3_600_000 * 5);
        assert_eq!(hour.window_start(-1), -3_600_000);
        assert_eq!(hour.partitioning(), Partitioning::Day);
        assert_eq!(
            Tier::parse("1d").unwrap().partitioning(),
            Partitioning::Month
        );
        let mut tiers = [
            Tier::parse("1d").unwrap(),
            Tier::parse("10m").unwrap(),
            hour,
        ];
        tiers.sort();
        let names: Vec<&str> = tiers.iter().map(Tier::name).collect();
        assert_eq!(names, ["10m", "1h", "1d"]);
    }
}
