//! Rollup tiers as the partition state sees them: which tiers a base window feeds
//! ([`TierSet`]), the key of its tier window, and the bound on series per tier window
//! ([`TierCap`]: beyond it, series fold into a per-partition overflow series). Pure; shared by
//! the live path ([`super::PartitionState`]) and `recompute` ([`fold_windows`]), so both fold
//! the same way.

use super::window::WindowKey;
use rtdash_runtime::rollups::RollupsConfig;
use rtdash_shared::metric::OVERFLOW_VALUE;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::Sketch;
use rtdash_shared::time::UnixMillis;
use rtdash_shared::window::window_start;
use std::collections::HashMap;

/// Most tiers a deployment may have.
pub const MAX_TIERS: usize = 8;

/// The tiers' lengths, shortest first (`Copy`, so [`super::Settings`] stays `Copy`). A tier is
/// named by its index here; the writer maps the index to its table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TierSet {
    lengths: [i64; MAX_TIERS],
    len: u8,
}

impl TierSet {
    /// No tier.
    pub const NONE: TierSet = TierSet {
        lengths: [0; MAX_TIERS],
        len: 0,
    };

    /// Tiers of these lengths (sorted, deduplicated; positive ones only, at most
    /// [`MAX_TIERS`]).
    pub fn new(lengths: impl IntoIterator<Item = i64>) -> Self {
        let mut all: Vec<i64> = lengths.into_iter().filter(|ms| *ms > 0).collect();
        all.sort_unstable();
        all.dedup();
        let mut set = TierSet::NONE;
        for ms in all.into_iter().take(MAX_TIERS) {
            set.lengths[usize::from(set.len)] = ms;
            set.len += 1;
        }
        set
    }

    /// The configured tiers.
    pub fn from_config(rollups: &RollupsConfig) -> Self {
        Self::new(rollups.tiers().iter().map(|tier| tier.ms()))
    }

    /// Number of tiers.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Length of tier `index`.
    pub fn ms(&self, index: u8) -> i64 {
        self.lengths[usize::from(index)]
    }

    /// The index of the tier of length `ms`.
    pub fn index_of(&self, ms: i64) -> Option<u8> {
        (0..self.len).find(|&i| self.ms(i) == ms)
    }

    /// The tiers base windows of `base_ms` feed (those it divides).
    pub fn fed_by(&self, base_ms: i64) -> impl Iterator<Item = u8> + '_ {
        (0..self.len).filter(move |&i| base_ms > 0 && self.ms(i) % base_ms == 0)
    }
}

/// The tier window of tier length `tier_ms` holding base window `base`, for `series` (the
/// base window's own or an overflow series).
pub fn tier_key(series: SeriesKey, base: &WindowKey, tier_ms: i64) -> WindowKey {
    WindowKey {
        series,
        start: window_start(base.start, tier_ms),
        size_ms: tier_ms,
    }
}

/// The series a partition folds a tier window's series into once the tier window holds
/// [`RollupsConfig::max_tier_series`] series of its (tenant, metric, dimension set): every
/// dimension value is `__overflow__.p<partition>`. One per partition, because partitions
/// write their tier rows independently and a shared key would make them overwrite each other.
pub fn overflow_series(series: &SeriesKey, partition: u32) -> SeriesKey {
    let value = format!("{OVERFLOW_VALUE}.p{partition}");
    SeriesKey {
        tenant: series.tenant.clone(),
        metric: series.metric.clone(),
        dims: series
            .dims
            .iter()
            .map(|(name, _)| (name.clone(), Some(value.clone())))
            .collect(),
    }
}

/// (tier index, tier window start, tenant, metric, dimension names).
type GroupKey = (u8, UnixMillis, String, String, String);

/// Counts the series of each (tier, tier window, tenant, metric, dimension set) and decides
/// when a new one folds into the overflow series instead.
#[derive(Debug)]
pub struct TierCap {
    max: u32,
    counts: HashMap<GroupKey, u32>,
}

impl TierCap {
    /// At most `max` series per group.
    pub fn new(max: u32) -> Self {
        Self {
            max: max.max(1),
            counts: HashMap::new(),
        }
    }

    fn group(tier: u8, start: UnixMillis, series: &SeriesKey) -> GroupKey {
        (
            tier,
            start,
            series.tenant.clone(),
            series.metric.clone(),
            series.dim_set(),
        )
    }

    /// Whether a new tier window of `series` may be created in (tier, start); counts it when
    /// it may. The overflow window itself is always admitted (it is counted too).
    pub fn admit(
        &mut self,
        tier: u8,
        start: UnixMillis,
        series: &SeriesKey,
        overflow: bool,
    ) -> bool {
        let count = self
            .counts
            .entry(Self::group(tier, start, series))
            .or_insert(0);
        if *count >= self.max && !overflow {
            return false;
        }
        *count += 1;
        true
    }

    /// Counts an existing tier window (restored from a checkpoint).
    pub fn count(&mut self, tier: u8, start: UnixMillis, series: &SeriesKey) {
        *self
            .counts
            .entry(Self::group(tier, start, series))
            .or_insert(0) += 1;
    }

    /// A tier window of `series` in (tier, start) is gone.
    pub fn release(&mut self, tier: u8, start: UnixMillis, series: &SeriesKey) {
        let group = Self::group(tier, start, series);
        if let Some(count) = self.counts.get_mut(&group) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.counts.remove(&group);
            }
        }
    }
}

/// The tier windows lying wholly in `[from, to)` made of base `windows`, folded as the
/// partitions fold them (the bound counted per partition, further series into the partition's
/// overflow series; windows taken in key order, so the result does not depend on the input's
/// order): what `recompute` writes besides the base windows. Returns (key, tier, sketch).
pub fn fold_windows<'a>(
    windows: impl IntoIterator<Item = (&'a WindowKey, &'a Sketch)>,
    tiers: TierSet,
    max_series: u32,
    partitions: u32,
    (from, to): (UnixMillis, UnixMillis),
) -> Vec<(WindowKey, u8, Sketch)> {
    let mut sorted: Vec<(&WindowKey, &Sketch)> = windows.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut caps: HashMap<u32, TierCap> = HashMap::new();
    let mut folded: HashMap<(u8, WindowKey), Sketch> = HashMap::new();
    for (base, sketch) in sorted {
        for tier in tiers.fed_by(base.size_ms) {
            let ms = tiers.ms(tier);
            let own = tier_key(base.series.clone(), base, ms);
            if own.start < from || own.end() > to {
                continue;
            }
            let key = if folded.contains_key(&(tier, own.clone())) {
                own
            } else {
                let partition = base.series.partition(partitions);
                let cap = caps
                    .entry(partition)
                    .or_insert_with(|| TierCap::new(max_series));
                if cap.admit(tier, own.start, &base.series, false) {
                    own
                } else {
                    let overflow = tier_key(overflow_series(&base.series, partition), base, ms);
                    if !folded.contains_key(&(tier, overflow.clone())) {
                        cap.admit(tier, overflow.start, &overflow.series, true);
                    }
                    overflow
                }
            };
            folded
                .entry((tier, key))
                .or_insert_with(|| Sketch::new(sketch.spec()))
                .merge(sketch);
        }
    }
    let mut out: Vec<(WindowKey, u8, Sketch)> = folded
        .into_iter()
        .map(|((tier, key), sketch)| (key, tier, sketch))
        .collect();
    out.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(region: &str) -> SeriesKey {
        SeriesKey::new("t", "m", [("region".to_owned(), Some(region.to_owned()))])
    }

    #[test]
    fn tier_sets_and_keys() {
        let set = TierSet::new([86_400_000, 3_600_000, 3_600_000, 0]);
        assert_eq!(set.len(), 2);
        assert_eq!((set.ms(0), set.ms(1)), (3_600_000, 86_400_000));
        assert_eq!(set.fed_by(60_000).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(set.fed_by(7 * 60_000).count(), 0);
        assert_eq!(set.fed_by(3_600_000).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(set.index_of(86_400_000), Some(1));
        assert!(TierSet::NONE.is_empty());
        let base = WindowKey {
            series: series("eu"),
            start: 3_600_000 * 30 + 120_000,
            size_ms: 60_000,
        };
        let key = tier_key(base.series.clone(), &base, 3_600_000);
        assert_eq!((key.start, key.size_ms), (3_600_000 * 30, 3_600_000));
        let overflow = overflow_series(
            &SeriesKey::new(
                "t",
                "m",
                [("a".to_owned(), None), ("b".to_owned(), Some("x".into()))],
            ),
            3,
        );
        assert_eq!(
            overflow.dims_json(),
            r#"{"a":"__overflow__.p3","b":"__overflow__.p3"}"#
        );
    }

    #[test]
    fn fold_windows_makes_the_tier_windows_wholly_in_the_range() {
        let sketch = |n: u64| {
            let mut s = Sketch::new(rtdash_shared::sketch::SketchSpec::VALUES);
            for i in 0..n {
                s.record(Some(i as f64), None);
            }
            s
        };
        let base = |region: &str, start: i64| WindowKey {
            series: series(region),
            start,
            size_ms: 60_000,
        };
        let hour = 3_600_000;
        let windows = [
            (base("a", hour), sketch(1)),
            (base("a", hour + 60_000), sketch(2)),
            (base("b", hour), sketch(3)),
            (base("c", hour), sketch(4)),
            // In a tier window only partly in the range: left out.
            (base("a", 2 * hour), sketch(5)),
        ];
        let tiers = TierSet::new([hour]);
        let out = fold_windows(
            windows.iter().map(|(k, s)| (k, s)),
            tiers,
            2,
            1,
            (hour, 2 * hour + 60_000),
        );
        let rows: Vec<(String, i64, u64)> = out
            .iter()
            .map(|(key, tier, sketch)| {
                assert_eq!((*tier, key.size_ms), (0, hour));
                (
                    key.series.dims[0].1.clone().unwrap(),
                    key.start,
                    sketch.count(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("__overflow__.p0".to_owned(), hour, 4),
                ("a".to_owned(), hour, 3),
                ("b".to_owned(), hour, 3),
            ]
        );
    }

    #[test]
    fn the_cap_counts_per_group_and_releases() {
        let mut cap = TierCap::new(2);
        assert!(cap.admit(0, 0, &series("a"), false));
        assert!(cap.admit(0, 0, &series("b"), false));
        assert!(
            !cap.admit(0, 0, &series("c"), false),
            "third series of the group"
        );
        assert!(
            cap.admit(0, 0, &series("c"), true),
            "the overflow window is admitted"
        );
        assert!(cap.admit(1, 0, &series("c"), false), "another tier");
        assert!(
            cap.admit(0, 3_600_000, &series("c"), false),
            "another tier window"
        );
        let total = SeriesKey::new("t", "m", []);
        assert!(cap.admit(0, 0, &total, false), "another dimension set");
        cap.release(0, 0, &series("a"));
        cap.release(0, 0, &series("a"));
        assert!(cap.admit(0, 0, &series("d"), false));
    }
}
