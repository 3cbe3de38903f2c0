//! Issue #15 in the gateway, against a real QuestDB and NATS: metric queries answered by
//! merging stored sketch states (`state`, written by the harness in the contract's layout:
//! base windows in `<table>`, rollup tiers in `<table>_1h` and `<table>_1d`), checked against
//! exact answers computed here from the raw values: count/sum/min/max/avg exact, distinct
//! counts within 2 %, percentiles within 1 % rank error; the same answers whichever stored
//! resolution serves them; tier selection and `window=auto`; group-by with `limit` and
//! `other`; refusals naming why; a coarse live widget merging the open hour's states.

use std::collections::BTreeMap;
use std::time::Duration;

use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec};
use rtdash_tests::gateway_env::GatewayEnv;
use rtdash_tests::in_process::{gateway_config, InProcessGateway};
use rtdash_tests::model::{approx_eq, unique_within};
use rtdash_tests::rng::TestRng;
use rtdash_tests::table::Row;
use rtdash_tests::time::{format_rfc3339, now_millis, parse_rfc3339};
use serde_json::{json, Value};

const TENANT: &str = "acme";
const METRIC: &str = "latency";
const BASE_MS: i64 = 900_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
const REGIONS: [&str; 4] = ["eu", "us", "ap", "sa"];
const T: Duration = Duration::from_secs(15);

/// One raw event: base window start, region index, value, user.
#[derive(Clone, Copy, Debug)]
struct Event {
    window: i64,
    region: usize,
    value: f64,
    user: u64,
}

fn user_hash(user: u64) -> u64 {
    unique_hash(format!("user-{user}").as_bytes())
}

/// Events of the 7 whole days before today (UTC), 15-minute windows, four regions whose
/// values differ in scale (sa > ap > us > eu, so every ordering by a stat is clear), users
/// drawn from 20,000 (over 1,000 distinct a day).
fn events(day0: i64) -> Vec<Event> {
    let mut rng = TestRng::seeded("gateway_tiers", 0x15_7133);
    let mut events = Vec::new();
    let mut window = day0;
    while window < day0 + 7 * DAY_MS {
        for (region, _) in REGIONS.iter().enumerate() {
            let n = 5 + rng.below(20);
            for _ in 0..n {
                let scale = (region + 1) as f64 * 10.0;
                let value = scale * (1.0 + rng.below(1_000_000) as f64 / 10_000.0);
                events.push(Event {
                    window,
                    region,
                    value,
                    user: rng.below(20_000),
                });
            }
        }
        window += BASE_MS;
    }
    events
}

/// The state of `events`.
fn sketch_of<'e>(events: impl IntoIterator<Item = &'e Event>) -> Sketch {
    let mut sketch = Sketch::new(SketchSpec::ALL);
    for event in events {
        sketch.record(Some(event.value), Some(user_hash(event.user)));
    }
    sketch
}

/// Rows of `len`-long windows (the base window or a tier's) of every region, each the sketch
/// of its events, as the aggregator writes them.
fn rows(events: &[Event], len: i64) -> Vec<Row> {
    let mut groups: BTreeMap<(i64, usize), Vec<&Event>> = BTreeMap::new();
    for event in events {
        let start = event.window.div_euclid(len) * len;
        groups.entry((start, event.region)).or_default().push(event);
    }
    groups
        .into_iter()
        .map(|((start, region), events)| {
            Row::from_sketch(
                TENANT,
                METRIC,
                start,
                len,
                &[("region", Some(REGIONS[region]))],
                &sketch_of(events),
            )
        })
        .collect()
}

/// The exact stat of `events`.
struct Exact {
    values: Vec<f64>,
    users: std::collections::HashSet<u64>,
}

impl Exact {
    fn of<'e>(events: impl IntoIterator<Item = &'e Event>) -> Exact {
        let mut exact = Exact {
            values: Vec::new(),
            users: Default::default(),
        };
        for event in events {
            exact.values.push(event.value);
            exact.users.insert(event.user);
        }
        exact.values.sort_by(f64::total_cmp);
        exact
    }

    /// Whether `got` is the stat of these events: exact, to rounding, or within the
    /// sketch's bounds.
    fn accepts(&self, stat: &str, got: f64) -> Result<(), String> {
        let n = self.values.len() as f64;
        let sum: f64 = self.values.iter().sum();
        let exact = |want: f64| {
            if approx_eq(got, want) {
                Ok(())
            } else {
                Err(format!("{stat}: got {got}, want {want}"))
            }
        };
        match stat {
            "count" => exact(n),
            "sum" => exact(sum),
            "min" => exact(self.values[0]),
            "max" => exact(*self.values.last().unwrap()),
            "avg" => exact(sum / n),
            "unique" => {
                let want = self.users.len() as f64;
                if unique_within(got, want, 0.02, 2.0) {
                    Ok(())
                } else {
                    Err(format!("unique: got {got}, exact {want}"))
                }
            }
            percentile => {
                let q: f64 = percentile[1..].parse::<f64>().unwrap() / 100.0;
                let below = self.values.iter().filter(|v| **v < got).count() as f64 / n;
                let at_most = self.values.iter().filter(|v| **v <= got).count() as f64 / n;
                // 1 % of the rank, or one value when a window holds under 100 (the digest
                // interpolates between neighbouring values).
                let slack = 0.01f64.max(1.0 / n);
                if below - slack <= q && q <= at_most + slack {
                    Ok(())
                } else {
                    Err(format!(
                        "{stat}: got {got}, ranks {below:.4}..{at_most:.4} (n = {n})"
                    ))
                }
            }
        }
    }
}

const STATS: [&str; 9] = [
    "count", "sum", "min", "max", "avg", "p50", "p95", "p99", "unique",
];

struct Fixture {
    env: GatewayEnv,
    events: Vec<Event>,
    /// Midnight UTC 7 days ago: the data are the 7 days from it to today's midnight.
    day0: i64,
}

/// A gateway with the default tiers (1 h for 90 days, 1 d for 2 years, base 7 days), the
/// metric (15-minute windows, one kept dimension set: region) and 7 days of rows in its base
/// table and both tiers, each row's state the sketch of its events.
async fn fixture() -> Fixture {
    let env = GatewayEnv::start(|_| {}).await;
    env.define(
        TENANT,
        json!({"name": METRIC, "event_type": "req", "field": "ms", "unique": "user",
               "window_secs": 900, "dimensions": ["region"], "rollups": []}),
    )
    .await;
    let day0 = now_millis().div_euclid(DAY_MS) * DAY_MS - 7 * DAY_MS;
    let events = events(day0);
    env.insert(&rows(&events, BASE_MS));
    env.insert_tier(HOUR_MS, &rows(&events, HOUR_MS));
    env.insert_tier(DAY_MS, &rows(&events, DAY_MS));
    Fixture { env, events, day0 }
}

async fn query(base: &str, http: &reqwest::Client, params: &str) -> (u16, Value) {
    let url = format!("{base}/v1/metrics/{METRIC}?tenant_id={TENANT}&{params}");
    let response = http.get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

fn range(from: i64, to: i64) -> String {
    format!(
        "from={}&to={}",
        format_rfc3339(from).replace(':', "%3A"),
        format_rfc3339(to).replace(':', "%3A")
    )
}

fn enc(text: &str) -> String {
    text.replace('{', "%7B")
        .replace('}', "%7D")
        .replace('"', "%22")
        .replace(':', "%3A")
}

/// (window start, value) of each window of an answer or a series.
fn windows(windows: &Value) -> Vec<(i64, Option<f64>)> {
    windows
        .as_array()
        .unwrap_or_else(|| panic!("windows: {windows}"))
        .iter()
        .map(|w| {
            (
                parse_rfc3339(w["window_start"].as_str().unwrap()).unwrap(),
                w["value"].as_f64(),
            )
        })
        .collect()
}

/// Checks that every window of `got` (and only windows with events) is the exact `stat` of the
/// events of `regions` in it.
fn check_windows(
    events: &[Event],
    regions: &[usize],
    stat: &str,
    window_ms: i64,
    from: i64,
    to: i64,
    got: &[(i64, Option<f64>)],
) {
    let mut want: BTreeMap<i64, Vec<&Event>> = BTreeMap::new();
    for event in events {
        if event.window >= from && event.window < to && regions.contains(&event.region) {
            want.entry(event.window.div_euclid(window_ms) * window_ms)
                .or_default()
                .push(event);
        }
    }
    let starts: Vec<i64> = got.iter().map(|(start, _)| *start).collect();
    assert_eq!(
        starts,
        want.keys().copied().collect::<Vec<_>>(),
        "{stat} per {window_ms} ms"
    );
    for ((start, value), events) in got.iter().zip(want.values()) {
        let value = value.unwrap_or_else(|| panic!("{stat} at {start}: null"));
        if let Err(why) = Exact::of(events.iter().copied()).accepts(stat, value) {
            panic!("{stat}, window at {}: {why}", format_rfc3339(*start));
        }
    }
}

const ALL: [usize; 4] = [0, 1, 2, 3];

/// Every stat per 1 d over 7 days (the 1 d tier), per 1 h over 7 days (the 1 h tier), per
/// 15 m over the last day (the base table) and as one 7-day window, each equal to the exact
/// answer; the stored resolution read is the one the contract names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stat_from_every_tier_equals_the_exact_answer() {
    let Fixture { env, events, day0 } = fixture().await;
    let end = day0 + 7 * DAY_MS;
    let last_day = end - DAY_MS;
    for (window, from, source) in [
        ("1d", day0, "1d"),
        ("7d", day0, "1d"),
        ("1h", day0, "1h"),
        ("6h", day0, "1h"),
        ("15m", last_day, "15m"),
        ("30m", last_day, "15m"),
    ] {
        let window_ms = gateway::query::parse_duration(window).unwrap();
        // Windows are aligned to the epoch: 7-day ones start on Thursdays.
        let served = ((end - 1).div_euclid(window_ms) - from.div_euclid(window_ms) + 1) as usize;
        for stat in STATS {
            let (status, answer) = query(
                &env.base,
                &env.http,
                &format!("stat={stat}&window={window}&{}", range(from, end)),
            )
            .await;
            assert_eq!(status, 200, "{stat} per {window}: {answer}");
            assert_eq!(answer["window"], window, "{answer}");
            assert_eq!(answer["window_auto"], false, "{answer}");
            assert_eq!(answer["source_window"], source, "{window}: {answer}");
            let got = windows(&answer["windows"]);
            assert_eq!(got.len(), served, "{stat} per {window}");
            check_windows(&events, &ALL, stat, window_ms, from, end, &got);
        }
    }
    // A filter on the kept dimension reads its one series: p99 per hour and unique per day
    // of one region.
    let eu = enc(r#"{"region":"eu"}"#);
    for (stat, window) in [("p99", "1h"), ("unique", "1d"), ("sum", "1d")] {
        let (status, answer) = query(
            &env.base,
            &env.http,
            &format!(
                "stat={stat}&window={window}&dimensions={eu}&{}",
                range(day0, end)
            ),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let window_ms = gateway::query::parse_duration(window).unwrap();
        check_windows(
            &events,
            &[0],
            stat,
            window_ms,
            day0,
            end,
            &windows(&answer["windows"]),
        );
    }
}

/// The same range answered from the base table (a gateway without tiers, reading the same
/// table) and from the 1 h and 1 d tiers: counts, minima, maxima and distinct counts
/// identical (HyperLogLog merges are exact), sums and averages to rounding, percentiles both
/// within the digest's bounds of the exact answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_the_same_whichever_tier_serves_them() {
    let Fixture { env, events, day0 } = fixture().await;
    let mut config = gateway_config(&env.nats.url(), &env.db.pg_addr().to_string(), &env.table);
    config.streams.storage = "memory".into();
    config.rollups.tiers.clear();
    config.rollups.tier_retention_days.clear();
    config.rollups.base_retention_days = 0;
    let base_only = InProcessGateway::start(config)
        .await
        .expect("second gateway");
    let end = day0 + 7 * DAY_MS;
    let from = end - 2 * DAY_MS;
    for window in ["1h", "1d"] {
        for stat in STATS {
            let params = format!("stat={stat}&window={window}&{}", range(from, end));
            let (status, tiered) = query(&env.base, &env.http, &params).await;
            assert_eq!(status, 200, "{tiered}");
            let (status, based) = query(&base_only.base, &env.http, &params).await;
            assert_eq!(status, 200, "{based}");
            assert_eq!(tiered["source_window"], window, "{tiered}");
            assert_eq!(based["source_window"], "15m", "{based}");
            let (tiered, based) = (windows(&tiered["windows"]), windows(&based["windows"]));
            assert_eq!(tiered.len(), based.len(), "{stat} per {window}");
            for ((start, a), (start_b, b)) in tiered.iter().zip(&based) {
                assert_eq!(start, start_b);
                let (a, b) = (a.unwrap(), b.unwrap());
                match stat {
                    "count" | "min" | "max" | "unique" => {
                        assert_eq!(a, b, "{stat} per {window} at {start}")
                    }
                    "sum" | "avg" => assert!(approx_eq(a, b), "{stat}: {a} vs {b}"),
                    _ => {}
                }
            }
            let window_ms = gateway::query::parse_duration(window).unwrap();
            check_windows(&events, &ALL, stat, window_ms, from, end, &tiered);
            check_windows(&events, &ALL, stat, window_ms, from, end, &based);
        }
    }
}

/// `window=auto` picks the finest of (base, 5m, 15m, 1h, 6h, 1d, 7d...) keeping the range at
/// or under ~500 windows and says so; what cannot be answered is a 400 naming why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_windows_and_refusals() {
    let Fixture { env, events, day0 } = fixture().await;
    let end = day0 + 7 * DAY_MS;
    for (from, window, source) in [
        (end - DAY_MS, "15m", "15m"),
        (day0, "1h", "1h"),
        (end - 30 * DAY_MS, "6h", "1h"),
        (end - 365 * DAY_MS, "1d", "1d"),
    ] {
        let (status, answer) = query(
            &env.base,
            &env.http,
            &format!("stat=p99&window=auto&{}", range(from, end)),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["window"], window, "{answer}");
        assert_eq!(answer["window_auto"], true, "{answer}");
        assert_eq!(answer["source_window"], source, "{answer}");
        let window_ms = gateway::query::parse_duration(window).unwrap();
        check_windows(
            &events,
            &ALL,
            "p99",
            window_ms,
            from.max(day0),
            end,
            &windows(&answer["windows"]),
        );
    }
    let week = range(day0, end);
    for (params, mention) in [
        // 15-minute windows are kept 7 days: the first of this range (a day before the
        // data, so whatever the time of day) is gone.
        (
            format!("window=15m&{}", range(day0 - DAY_MS, end)),
            "7 days",
        ),
        (format!("window=7m&{week}"), "7m"),
        (format!("window=1h&group_by=colour&{week}"), "colour"),
        (
            format!("window=1h&dimensions={}&{week}", enc(r#"{"colour":"red"}"#)),
            "colour",
        ),
        (format!("window=1h&stat=p42&{week}"), "p42"),
    ] {
        let (status, answer) = query(&env.base, &env.http, &params).await;
        assert_eq!(status, 400, "{params}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(mention), "{params}: {message}");
    }
}

/// `group_by=region&limit=2`: the two regions with the largest stat over the range, in
/// order, each per window; then `other`, flagged, merging the other two (any stat: states
/// merge); counts exact, percentiles and distinct counts within bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_orders_series_and_merges_the_rest_into_other() {
    let Fixture { env, events, day0 } = fixture().await;
    let end = day0 + 7 * DAY_MS;
    for stat in ["p99", "count", "unique", "max"] {
        let (status, answer) = query(
            &env.base,
            &env.http,
            &format!(
                "stat={stat}&window=1d&group_by=region&limit=2&{}",
                range(day0, end)
            ),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["group_by"], json!(["region"]), "{answer}");
        let series = answer["series"].as_array().expect("series");
        assert_eq!(series.len(), 3, "{answer}");
        // Ordered by the stat over the whole range, descending.
        let totals: Vec<(usize, f64)> = {
            let mut totals: Vec<(usize, f64)> = ALL
                .iter()
                .map(|&region| {
                    let exact = Exact::of(events.iter().filter(|e| e.region == region));
                    let value = match stat {
                        "p99" => exact.values[(exact.values.len() * 99) / 100],
                        "count" => exact.values.len() as f64,
                        "unique" => exact.users.len() as f64,
                        _ => *exact.values.last().unwrap(),
                    };
                    (region, value)
                })
                .collect();
            totals.sort_by(|a, b| b.1.total_cmp(&a.1));
            totals
        };
        for (rank, (region, _)) in totals.iter().take(2).enumerate() {
            let s = &series[rank];
            assert_eq!(s["other"], false, "{s}");
            assert_eq!(
                s["dimensions"],
                json!({"region": REGIONS[*region]}),
                "{stat}"
            );
            let whole = s["value"].as_f64().expect("value over the range");
            Exact::of(events.iter().filter(|e| e.region == *region))
                .accepts(stat, whole)
                .unwrap_or_else(|why| panic!("{stat} of {}: {why}", REGIONS[*region]));
            check_windows(
                &events,
                &[*region],
                stat,
                DAY_MS,
                day0,
                end,
                &windows(&s["windows"]),
            );
        }
        let other = &series[2];
        assert_eq!(other["other"], true, "{other}");
        let rest: Vec<usize> = totals.iter().skip(2).map(|(region, _)| *region).collect();
        check_windows(
            &events,
            &rest,
            stat,
            DAY_MS,
            day0,
            end,
            &windows(&other["windows"]),
        );
        assert!(answer["windows"].as_array().is_none_or(Vec::is_empty));
    }
}

/// A widget of p99 per hour: its snapshot comes from the 1 h tier; as the aggregators publish
/// the open hour's tier versions of two regions (with their states), the widget's value is
/// the merge of both states, and a newer version of one region replaces its part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coarse_live_widget_merges_the_open_hour() {
    let Fixture { env, events, day0 } = fixture().await;
    let (dashboard, widgets) = env
        .dashboard(
            TENANT,
            vec![json!({"metric_name": METRIC, "stat": "p99", "window": "1h",
                        "time_window": "last_24h"})],
        )
        .await;
    let mut sse = env.stream(TENANT, &dashboard, None).await;
    let snapshot = sse.next_named("snapshot", T).await.expect("snapshot");
    assert_eq!(snapshot.data["widget_id"], widgets[0].as_str());
    assert_eq!(snapshot.data["source_window"], "1h", "{}", snapshot.data);
    let now = now_millis();
    let snapshot_from = (now - DAY_MS).div_euclid(HOUR_MS) * HOUR_MS;
    check_windows(
        &events,
        &ALL,
        "p99",
        HOUR_MS,
        snapshot_from.max(day0),
        day0 + 7 * DAY_MS,
        &windows(&snapshot.data["windows"]),
    );

    // The open hour: live tier versions of eu and us with their states.
    let hour = now.div_euclid(HOUR_MS) * HOUR_MS;
    let mut rng = TestRng::seeded("gateway_tiers live", 0x15_0001);
    let mut live = |region: usize, n: usize| -> Vec<Event> {
        (0..n)
            .map(|_| Event {
                window: hour,
                region,
                value: (region + 1) as f64 * (1.0 + rng.below(100_000) as f64 / 100.0),
                user: rng.below(1_000_000),
            })
            .collect()
    };
    let eu = live(0, 400);
    let us = live(1, 300);
    let version = |events: &[Event], region: usize, updated_at: i64| -> Value {
        let mut row = Row::from_sketch(
            TENANT,
            METRIC,
            hour,
            HOUR_MS,
            &[("region", Some(REGIONS[region]))],
            &sketch_of(events),
        );
        row.is_final = false;
        row.live(updated_at)
    };
    env.publish_live(&[version(&eu, 0, now_millis()), version(&us, 1, now_millis())])
        .await;
    let both: Vec<Event> = eu.iter().chain(&us).copied().collect();
    let value = wait_for_hour(&mut sse, hour, |value| {
        Exact::of(&both).accepts("p99", value).is_ok()
    })
    .await;
    Exact::of(&both).accepts("p99", value).unwrap();

    // eu grows by values ten times larger: its newer version replaces its part.
    let mut eu_grown = eu.clone();
    eu_grown.extend(live(0, 400).into_iter().map(|mut e| {
        e.value *= 10.0;
        e
    }));
    env.publish_live(&[version(&eu_grown, 0, now_millis() + 1)])
        .await;
    let grown: Vec<Event> = eu_grown.iter().chain(&us).copied().collect();
    let value = wait_for_hour(&mut sse, hour, |value| {
        Exact::of(&grown).accepts("p99", value).is_ok()
    })
    .await;
    Exact::of(&grown).accepts("p99", value).unwrap();
}

/// Waits for an update of the window at `hour` whose value `accept`s; returns it (or the last
/// value seen for that window, to fail with).
async fn wait_for_hour(
    sse: &mut rtdash_tests::sse::Sse,
    hour: i64,
    accept: impl Fn(f64) -> bool,
) -> f64 {
    let start = format_rfc3339(hour);
    let mut last = None;
    let deadline = std::time::Instant::now() + T;
    while std::time::Instant::now() < deadline {
        let Some(event) = sse.next_named("update", Duration::from_secs(5)).await else {
            continue;
        };
        if event.data["window_start"] != start.as_str() {
            continue;
        }
        let value = event.data["value"].as_f64().expect("a value");
        if accept(value) {
            return value;
        }
        last = Some(value);
    }
    last.unwrap_or_else(|| panic!("no update of the open hour {start}"))
}

/// The row cache: rows of windows that can no longer change (older than the correction
/// horizon) are read once and then served from memory, so a rewrite of such an old row
/// (which the aggregators never make) stays unseen - a day old, or just past the horizon
/// (after the last whole cached chunk) - while a correction of a recent window (within the
/// horizon) is served at once, never stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_rows_are_old_ones_and_recent_corrections_are_not_stale() {
    let env = GatewayEnv::start(|config| config.questdb.query_cache_ms = 0).await;
    env.define(
        TENANT,
        json!({"name": "amount", "event_type": "pay", "dimensions": ["region"], "rollups": []}),
    )
    .await;
    let old = rtdash_tests::time::minute(24 * 60);
    // Closed 16 minutes ago: past the horizon (10 min) and the 5 min margin without status
    // reports.
    let settled = rtdash_tests::time::minute(17);
    let recent = rtdash_tests::time::minute(2);
    let row = |start: i64, count: u64, revision: u32| {
        let mut row = Row::new(TENANT, "amount", start, &[("region", "eu")], count);
        row.revision = revision;
        row
    };
    env.insert(&[row(old, 5, 0), row(settled, 3, 0), row(recent, 7, 0)]);
    let ask = format!("stat=count&window=1m&{}", range(old, now_millis()));
    let counts = |answer: &Value| -> Vec<f64> {
        windows(&answer["windows"])
            .into_iter()
            .map(|(_, value)| value.expect("a count"))
            .collect()
    };
    let url = |params: &str| format!("/v1/metrics/amount?tenant_id={TENANT}&{params}");
    let (status, answer) = env.get(&url(&ask)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(counts(&answer), vec![5.0, 3.0, 7.0], "{answer}");
    assert!(env.state.db.row_cache().bytes() > 0, "old rows cached");

    env.insert(&[row(old, 50, 1), row(settled, 30, 1), row(recent, 70, 1)]);
    let (_, answer) = env.get(&url(&ask)).await;
    assert_eq!(counts(&answer), vec![5.0, 3.0, 70.0], "{answer}");
    // Another plan (a filter) reads the old window afresh: the rewrite is in QuestDB.
    let (_, answer) = env
        .get(&url(&format!(
            "{ask}&dimensions={}",
            enc(r#"{"region":"eu"}"#)
        )))
        .await;
    assert_eq!(counts(&answer), vec![50.0, 30.0, 70.0], "{answer}");
}

/// A grouped widget (count per hour by region): its snapshot has one series per region from
/// the 1 h tier, and a live tier version of the open hour updates the series of its region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouped_live_widget_updates_the_series_of_the_version() {
    let Fixture { env, events, day0 } = fixture().await;
    let (dashboard, _) = env
        .dashboard(
            TENANT,
            vec![
                json!({"metric_name": METRIC, "stat": "count", "window": "1h",
                        "time_window": "last_24h", "group_by": ["region"]}),
            ],
        )
        .await;
    let mut sse = env.stream(TENANT, &dashboard, None).await;
    let snapshot = sse.next_named("snapshot", T).await.expect("snapshot");
    let series = snapshot.data["series"]
        .as_array()
        .unwrap_or_else(|| panic!("series: {}", snapshot.data));
    assert_eq!(series.len(), REGIONS.len(), "{}", snapshot.data);
    let now = now_millis();
    let from = ((now - DAY_MS).div_euclid(HOUR_MS) * HOUR_MS).max(day0);
    for s in series {
        let region = REGIONS
            .iter()
            .position(|r| s["dimensions"]["region"] == *r)
            .expect("a region");
        check_windows(
            &events,
            &[region],
            "count",
            HOUR_MS,
            from,
            day0 + 7 * DAY_MS,
            &windows(&s["windows"]),
        );
    }

    let hour = now.div_euclid(HOUR_MS) * HOUR_MS;
    let live: Vec<Event> = (0..123)
        .map(|i| Event {
            window: hour,
            region: 2,
            value: f64::from(i),
            user: i as u64,
        })
        .collect();
    let mut row = Row::from_sketch(
        TENANT,
        METRIC,
        hour,
        HOUR_MS,
        &[("region", Some("ap"))],
        &sketch_of(&live),
    );
    row.is_final = false;
    env.publish_live(&[row.live(now_millis())]).await;
    let deadline = std::time::Instant::now() + T;
    loop {
        assert!(std::time::Instant::now() < deadline, "no update for ap");
        let Some(update) = sse.next_named("update", Duration::from_secs(5)).await else {
            continue;
        };
        if update.data["window_start"] != format_rfc3339(hour).as_str() {
            continue;
        }
        assert_eq!(
            update.data["series"],
            json!({"dimensions": {"region": "ap"}, "other": false}),
            "{}",
            update.data
        );
        assert_eq!(update.data["value"], 123.0, "{}", update.data);
        break;
    }
}
