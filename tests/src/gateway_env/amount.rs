//! The `amount` metric of tenant `acme` (`usd` by `region`), the fixture of the live-stream
//! tests: its definition and rows of its `region = us` series and of its total.

use serde_json::json;

use super::GatewayEnv;
use crate::table::Row;

/// Start of the minute `n` minutes before `base`, the test's fixed "now" (taken once per test
/// so a minute boundary crossed mid-test cannot move windows).
pub fn at(base: i64, n: i64) -> i64 {
    base - n * 60_000
}

/// Defines `amount` for `acme`.
pub async fn define(env: &GatewayEnv) {
    env.define(
        "acme",
        json!({"name": "amount", "event_type": "pay", "field": "usd",
                              "dimensions": ["region"]}),
    )
    .await;
}

/// The `region = us` window at `start` with `count` events (sum, min, max, p99 derived).
pub fn us(start: i64, count: u64) -> Row {
    let c = count as f64;
    Row::new("acme", "amount", start, &[("region", "us")], count).values(c * 2.0, 1.0, c, c - 0.5)
}

/// The total window at `start` with `count` events.
pub fn total(start: i64, count: u64) -> Row {
    let c = count as f64;
    Row::new("acme", "amount", start, &[], count).values(c * 2.0, 1.0, c, c - 0.25)
}

/// `row`, not final.
pub fn provisional(mut row: Row) -> Row {
    row.is_final = false;
    row
}
