//! Clock and RFC 3339 helpers for the tests: the clock and formats of
//! [`rtdash_shared::time`] (so what a test writes is what the services parse, and what it
//! expects is what they serve: `2024-01-15T14:05:32.250Z`), plus the window and sleep
//! arithmetic the tests repeat.

use std::time::Duration;

pub use rtdash_shared::time::{format_rfc3339, now_millis, parse_rfc3339};
pub use rtdash_shared::window::window_start;

/// Start of the minute `minutes_ago` minutes before now.
pub fn minute(minutes_ago: i64) -> i64 {
    (now_millis() / 60_000 - minutes_ago) * 60_000
}

/// Sleeps until the wall clock is `at` (Unix ms); returns at once when that is past.
pub async fn sleep_until_ms(at: i64) {
    let left = at - now_millis();
    if left > 0 {
        tokio::time::sleep(Duration::from_millis(left as u64)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_millis() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            format_rfc3339(1_705_327_532_250),
            "2024-01-15T14:05:32.250Z"
        );
        assert_eq!(
            parse_rfc3339(&format_rfc3339(1_705_327_532_250)),
            Some(1_705_327_532_250)
        );
        assert_eq!(window_start(1_705_327_532_250, 60_000), 1_705_327_500_000);
    }
}
