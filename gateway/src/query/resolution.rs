//! Resolutions: window texts (`5m`, `1h`), which served window `window=auto` picks for a
//! range, and which stored resolution (the metric's base windows or a tier, see
//! [`super::tiers`]) serves a window over a range, or why none can. Pure: no I/O.

use super::tiers::{Source, Tiers, DAY_MS};
use super::QueryError;
use rtdash_shared::time::UnixMillis;

/// Most windows in one answer (`400` beyond).
pub const MAX_WINDOWS: i64 = 10_000;

/// `window=auto` keeps an answer at or under this many windows when it can.
pub const AUTO_MAX_WINDOWS: i64 = 500;

/// The windows `window=auto` chooses from (besides the metric's own), finest first.
pub const AUTO_WINDOWS: [i64; 6] = [
    300_000,
    900_000,
    3_600_000,
    6 * 3_600_000,
    DAY_MS,
    7 * DAY_MS,
];

/// Parses a window such as `30s`, `1m`, `5m`, `1h`, `1d` into milliseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        _ => return None,
    };
    n.checked_mul(unit_ms).filter(|ms| *ms > 0)
}

/// Formats milliseconds as the shortest window text (`60000` -> `1m`).
pub fn format_duration(ms: i64) -> String {
    for (unit, size) in [("d", DAY_MS), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// `[from, to)` widened to whole windows of `window_ms`.
pub fn align(from: UnixMillis, to: UnixMillis, window_ms: i64) -> (UnixMillis, UnixMillis) {
    let from = from.div_euclid(window_ms) * window_ms;
    let down = to.div_euclid(window_ms) * window_ms;
    let to = if down == to { to } else { down + window_ms };
    (from, to)
}

/// Windows of `window_ms` in `[from, to)` once aligned.
pub fn windows_in(from: UnixMillis, to: UnixMillis, window_ms: i64) -> i64 {
    let (from, to) = align(from, to, window_ms);
    (to - from) / window_ms
}

/// Checks that `window_ms` can be served for a metric of `base_ms` windows at all: a
/// multiple of the base that divides a day or is whole days.
pub fn check_window(metric: &str, base_ms: i64, window_ms: i64) -> Result<(), QueryError> {
    if window_ms < base_ms || window_ms % base_ms != 0 {
        return Err(QueryError::Invalid(format!(
            "window {} is not a multiple of metric `{metric}`'s window {}",
            format_duration(window_ms),
            format_duration(base_ms)
        )));
    }
    if DAY_MS % window_ms != 0 && window_ms % DAY_MS != 0 {
        return Err(QueryError::Invalid(format!(
            "window {} must divide a day or be a whole number of days",
            format_duration(window_ms)
        )));
    }
    Ok(())
}

/// The stored resolution serving `window_ms` over `[from, ..)`: the coarsest source that
/// divides the window and still retains the range; else a `400` naming every candidate's
/// retention and what would work instead.
pub fn choose_source(
    metric: &str,
    tiers: &Tiers,
    base_ms: i64,
    window_ms: i64,
    from: UnixMillis,
    now: UnixMillis,
) -> Result<Source, QueryError> {
    let (from, _) = align(from, from + 1, window_ms);
    let candidates = tiers.sources(base_ms, window_ms);
    if let Some(source) = candidates
        .iter()
        .find(|source| source.retains(from, window_ms, now))
    {
        return Ok(*source);
    }
    let kept = candidates
        .iter()
        .map(|source| {
            format!(
                "{} windows ({})",
                format_duration(source.window_ms),
                source.retention_text()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let alternative = tiers
        .all_sources(base_ms)
        .into_iter()
        .filter(|source| !source.is_base && source.retains(from, source.window_ms, now))
        .min_by_key(|source| source.window_ms)
        .map(|source| {
            format!(
                "; a window that is a multiple of {} (kept {}) can serve it",
                format_duration(source.window_ms),
                source.retention_text()
            )
        })
        .unwrap_or_default();
    let age_days = (now - from) / DAY_MS;
    Err(QueryError::Invalid(format!(
        "the range starts {age_days} days ago, older than what is kept for {} windows of \
         metric `{metric}`: {kept}{alternative}",
        format_duration(window_ms),
    )))
}

/// What `window=auto` picks for `[from, to)`: the finest of the metric's window and
/// [`AUTO_WINDOWS`] (multiples of it) that keeps the answer at or under
/// [`AUTO_MAX_WINDOWS`] windows and that some stored resolution retains; the coarsest
/// servable one when none keeps it that small. The error is the coarsest candidate's.
pub fn choose_auto(
    metric: &str,
    tiers: &Tiers,
    base_ms: i64,
    from: UnixMillis,
    to: UnixMillis,
    now: UnixMillis,
) -> Result<(i64, Source), QueryError> {
    let mut candidates = vec![base_ms];
    candidates.extend(
        AUTO_WINDOWS
            .iter()
            .copied()
            .filter(|w| *w > base_ms && w % base_ms == 0),
    );
    let mut last_servable = None;
    let mut last_error = None;
    for window_ms in candidates {
        match choose_source(metric, tiers, base_ms, window_ms, from, now) {
            Ok(source) => {
                if windows_in(from, to, window_ms) <= AUTO_MAX_WINDOWS {
                    return Ok((window_ms, source));
                }
                last_servable = Some((window_ms, source));
            }
            Err(err) => last_error = Some(err),
        }
    }
    match (last_servable, last_error) {
        (Some(found), _) => Ok(found),
        (None, Some(err)) => Err(err),
        (None, None) => Err(QueryError::Invalid(format!(
            "no window can serve metric `{metric}` over this range"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("1d"), Some(DAY_MS));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(format_duration(3_600_000), "1h");
        assert_eq!(format_duration(90_000), "90s");
        assert_eq!(align(61_000, 119_000, 60_000), (60_000, 120_000));
        assert_eq!(align(60_000, 120_000, 60_000), (60_000, 120_000));
        assert_eq!(windows_in(0, 3 * H + 1, H), 4);
    }

    #[test]
    fn auto_picks_the_finest_window_within_500() {
        let tiers = Tiers::default();
        let now = 1_000 * DAY_MS + 13 * H + 1_234;
        let pick = |range: i64| {
            let (window, source) =
                choose_auto("m", &tiers, 60_000, now - range, now, now).expect("servable");
            (format_duration(window), format_duration(source.window_ms))
        };
        assert_eq!(pick(H), ("1m".into(), "1m".into()));
        assert_eq!(pick(6 * H), ("1m".into(), "1m".into()));
        assert_eq!(pick(24 * H), ("5m".into(), "1m".into()));
        assert_eq!(pick(7 * DAY_MS), ("1h".into(), "1h".into()));
        assert_eq!(pick(30 * DAY_MS), ("6h".into(), "1h".into()));
        assert_eq!(pick(365 * DAY_MS), ("1d".into(), "1d".into()));
        // Older than every tier: the coarsest candidate's reason.
        let err = choose_auto("m", &tiers, 60_000, now - 3_000 * DAY_MS, now, now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("730 days"), "{err}");
    }

    #[test]
    fn sources_are_the_coarsest_retaining_the_range() {
        let tiers = Tiers::default();
        let now = 1_000 * DAY_MS;
        let source = |window: i64, age: i64| {
            choose_source("m", &tiers, 60_000, window, now - age, now)
                .map(|s| format_duration(s.window_ms))
        };
        assert_eq!(source(DAY_MS, 10 * DAY_MS).unwrap(), "1d");
        assert_eq!(source(2 * H, 10 * DAY_MS).unwrap(), "1h");
        assert_eq!(source(5 * 60_000, 2 * DAY_MS).unwrap(), "1m");
        let err = source(5 * 60_000, 10 * DAY_MS).unwrap_err().to_string();
        assert!(
            err.contains("1m windows (7 days)") && err.contains("multiple of 1h (kept 90 days)"),
            "{err}"
        );
        let err = source(H, 100 * DAY_MS).unwrap_err().to_string();
        assert!(err.contains("1h windows (90 days)"), "{err}");
        assert!(err.contains("multiple of 1d"), "{err}");
    }

    #[test]
    fn windows_must_be_multiples_dividing_a_day() {
        assert!(check_window("m", 60_000, 90_000).is_err());
        assert!(check_window("m", 60_000, 7 * 60_000).is_err());
        assert!(check_window("m", 60_000, 30_000).is_err());
        assert!(check_window("m", 60_000, 7 * DAY_MS).is_ok());
    }
}
