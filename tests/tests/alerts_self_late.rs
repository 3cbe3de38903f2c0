//! The late-rate pipeline self-alert end to end, on real services: events posted over HTTP to
//! the real `edge-agent` binary, its `pipeline_late` series carried through real NATS
//! JetStream to the real `core-aggregator`, whose built-in rule `_pipeline_late_rate`
//! (`pipeline_late` avg per tenant and `source` > 2 %, the default) notifies a webhook
//! receiver on loopback (`alerts.self_alert_webhook`). Acceptance criterion of the alerts
//! issue: "a source sending 5 % of its events 90 s late triggers the late-rate self-alert".
//!
//! Three sources of one tenant post a request every 250 ms each, for four 10 s pipeline
//! windows (`PIPELINE_WINDOW_SECS`, by the agent's receive time):
//!
//! - `src-a`: 20 events per request; in the first two windows exactly 1 of them has an
//!   `occurred_at` 90 s in the past (5 %), in the last two none;
//! - `src-b`: 20 events per request, none late (some 30 s old: old, but not late);
//! - `src-c`: 100 events per request, exactly 1 of them 90 s late (1 %): the negative control.
//!
//! The test keeps its own model of what each window of each source holds (every request's
//! window is known from the clock before and after it; no request is sent within 300 ms
//! before or 50 ms after a window boundary, and a request that still straddles one is
//! accounted for in both windows as bounds), derives the expected notifications from the
//! rule's documented semantics (fires on the first window whose late share is above 2 %,
//! resolves on the first window after that at or below it), and checks that the receiver
//! got exactly those: one `firing` for `src-a` about the first window (Alertmanager body,
//! labels, annotations, value = the model's late share), delivered at most
//! [`NOTIFY_WITHIN_MS`] after that window closed, then one `resolved` for `src-a` about the
//! third window, and nothing else (nothing for `src-b` or `src-c`, no other self-alert). The
//! alert log must hold `src-a`'s transitions firing -> resolved -> ok and nothing else.
//!
//! Needs the service binaries: `cargo build --workspace --bins` first. About 45 s after the
//! stack is up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rtdash_shared::metric::{PIPELINE_LATE_METRIC, PIPELINE_WINDOW_SECS};
use rtdash_tests::alerts::alert_log;
use rtdash_tests::blocking;
use rtdash_tests::client::{http_client, Api};
use rtdash_tests::events::event_json;
use rtdash_tests::stack::{Stack, StackOptions};
use rtdash_tests::time::{format_rfc3339, now_millis, parse_rfc3339, window_start};
use rtdash_tests::webhook::{Received, Receiver};
use serde_json::{json, Value};

/// Tenant of every event.
const TENANT: &str = "acme";
/// Window of the agent's pipeline series.
const WINDOW_MS: i64 = PIPELINE_WINDOW_SECS as i64 * 1000;
/// Aggregator `windows.allowed_lateness_ms`: a window closes this long after its end.
const LATENESS_MS: i64 = 500;
/// How far in the past a late event's `occurred_at` is.
const LATE_BY_MS: i64 = 90_000;
/// The documented meaning of "late" for `pipeline_late`: arrived more than 60 s after
/// `occurred_at`.
const LATE_AFTER_MS: i64 = 60_000;
/// `alerts.self_alerts.late_rate` default: fires when the late share is above 2 %.
const LATE_RATE_THRESHOLD: f64 = 0.02;
/// The built-in rule.
const RULE_ID: &str = "_pipeline_late_rate";
/// Its `alertname` label (the id without the leading underscore).
const ALERTNAME: &str = "pipeline_late_rate";
/// Receiver path of the self-alert webhook.
const HOOK: &str = "pipeline";
/// A notification must arrive within this long after its window closed.
const NOTIFY_WITHIN_MS: i64 = 5_000;
/// Time between two rounds of requests.
const TICK: Duration = Duration::from_millis(250);
/// No request starts this long before a window boundary...
const GUARD_BEFORE_MS: i64 = 300;
/// ...nor this long after one.
const GUARD_AFTER_MS: i64 = 50;
/// Windows sent: the first `LATE_WINDOWS` with `src-a`'s late events, the rest without.
const WINDOWS: i64 = 4;
const LATE_WINDOWS: i64 = 2;

/// One source and what it sends per request.
struct Source {
    name: &'static str,
    events: usize,
    /// Late events per request while it sends late events.
    late: usize,
    /// Whether it stops sending late events after `LATE_WINDOWS`.
    recovers: bool,
}

const SOURCES: [Source; 3] = [
    Source {
        name: "src-a",
        events: 20,
        late: 1,
        recovers: true,
    },
    Source {
        name: "src-b",
        events: 20,
        late: 0,
        recovers: false,
    },
    Source {
        name: "src-c",
        events: 100,
        late: 1,
        recovers: false,
    },
];

/// One request as sent: its source, events, late events (by the test's own clock), and the
/// windows of the clock just before it was sent and just after it was answered.
#[derive(Clone, Debug)]
struct Sent {
    source: &'static str,
    events: u64,
    late: u64,
    windows: (i64, i64),
}

/// Late events over events of one (source, window), as bounds: requests whose window is
/// uncertain count in the numerator of the upper and the denominator of the lower bound only.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    events: u64,
    late: u64,
    uncertain_events: u64,
    uncertain_late: u64,
}

impl Tally {
    fn low(&self) -> f64 {
        self.late as f64 / (self.events + self.uncertain_events) as f64
    }

    fn high(&self) -> f64 {
        if self.events == 0 {
            return 1.0;
        }
        (self.late + self.uncertain_late) as f64 / self.events as f64
    }

    /// Whether the window breaches the rule: `Some` when the bounds decide it.
    fn breaches(&self) -> Option<bool> {
        if self.low() > LATE_RATE_THRESHOLD {
            Some(true)
        } else if self.high() <= LATE_RATE_THRESHOLD {
            Some(false)
        } else {
            None
        }
    }
}

/// (source, window start) -> tally.
fn tallies(sent: &[Sent]) -> BTreeMap<(&'static str, i64), Tally> {
    let mut out: BTreeMap<(&'static str, i64), Tally> = BTreeMap::new();
    for request in sent {
        let (before, after) = request.windows;
        if before == after {
            let tally = out.entry((request.source, before)).or_default();
            tally.events += request.events;
            tally.late += request.late;
        } else {
            for window in [before, after] {
                let tally = out.entry((request.source, window)).or_default();
                tally.uncertain_events += request.events;
                tally.uncertain_late += request.late;
            }
        }
    }
    out
}

/// A notification the model expects.
#[derive(Clone, Debug, PartialEq)]
struct Expected {
    source: &'static str,
    status: &'static str,
    window: i64,
}

/// The notifications the rule's semantics ask for (`for_windows` 1, evaluated on closed
/// windows): firing on a breaching window unless already firing, resolved on the first
/// window without breach after firing. Windows without events of a source are not evaluated.
fn expected_notifications(
    tallies: &BTreeMap<(&'static str, i64), Tally>,
) -> anyhow::Result<Vec<Expected>> {
    let mut out = Vec::new();
    for source in SOURCES.iter().map(|s| s.name) {
        let mut firing = false;
        for (&(_, window), tally) in tallies.range((source, i64::MIN)..=(source, i64::MAX)) {
            let Some(breach) = tally.breaches() else {
                bail!(
                    "window {} of {source} is undecided ({tally:?}): requests straddled window \
                     boundaries",
                    format_rfc3339(window)
                );
            };
            if breach && !firing {
                out.push(Expected {
                    source,
                    status: "firing",
                    window,
                });
            } else if !breach && firing {
                out.push(Expected {
                    source,
                    status: "resolved",
                    window,
                });
            }
            firing = breach;
        }
    }
    Ok(out)
}

fn event(source: &str, occurred_at: i64, n: usize) -> Value {
    event_json(
        TENANT,
        source,
        "page_view",
        json!({"n": n as f64}),
        occurred_at,
    )
}

/// Sends the schedule: a round of requests (one per source) every `TICK` from window `w0` for
/// `WINDOWS` windows, outside the guard bands around window boundaries.
async fn send(agent: String, w0: i64) -> anyhow::Result<Vec<Sent>> {
    let agent = Api::new(http_client(None), agent);
    let mut sent = Vec::new();
    let end = w0 + WINDOWS * WINDOW_MS;
    loop {
        let now = now_millis();
        if now >= end - GUARD_BEFORE_MS {
            return Ok(sent);
        }
        let offset = now.rem_euclid(WINDOW_MS);
        if !(GUARD_AFTER_MS..WINDOW_MS - GUARD_BEFORE_MS).contains(&offset) {
            // In a guard band: wait until GUARD_AFTER_MS into the (next) window.
            let boundary = if offset < GUARD_AFTER_MS {
                window_start(now, WINDOW_MS)
            } else {
                window_start(now, WINDOW_MS) + WINDOW_MS
            };
            let next = boundary + GUARD_AFTER_MS;
            tokio::time::sleep(Duration::from_millis((next - now) as u64)).await;
            continue;
        }
        let index = (window_start(now, WINDOW_MS) - w0) / WINDOW_MS;
        for source in &SOURCES {
            let late = if source.recovers && index >= LATE_WINDOWS {
                0
            } else {
                source.late
            };
            let before = now_millis();
            let items: Vec<Value> = (0..source.events)
                .map(|n| {
                    let occurred_at = if n < late {
                        before - LATE_BY_MS
                    } else if n % 4 == 1 {
                        before - 30_000 // old, not late
                    } else {
                        before - 200
                    };
                    event(source.name, occurred_at, n)
                })
                .collect();
            let (status, body) = agent.post_json("/v1/events", &json!(items)).await?;
            let after = now_millis();
            ensure!(
                (200..300).contains(&status) && body["accepted"] == source.events,
                "the agent answered {status}: {body}"
            );
            // By the test's clock (the agent shares it), every late event is more than
            // LATE_AFTER_MS old when received, every other one is not (received within
            // 30 s of being sent).
            ensure!(
                after - before < LATE_AFTER_MS - 30_000,
                "a request took 30 s"
            );
            sent.push(Sent {
                source: source.name,
                events: source.events as u64,
                late: late as u64,
                windows: (
                    window_start(before, WINDOW_MS),
                    window_start(after, WINDOW_MS),
                ),
            });
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Checks one notification against its expectation.
fn check_notification(
    got: &Received,
    want: &Expected,
    tally: &Tally,
    fingerprint: Option<&Value>,
) -> anyhow::Result<()> {
    let body = &got.body;
    let alert = &body["alerts"][0];
    ensure!(body["version"] == "4", "version: {body}");
    ensure!(body["status"] == want.status, "status: {body}");
    ensure!(alert["status"] == want.status, "alert status: {body}");
    ensure!(
        body["alerts"].as_array().map(Vec::len) == Some(1),
        "one alert per notification: {body}"
    );
    for (label, value) in [
        ("alertname", ALERTNAME),
        ("rule_id", RULE_ID),
        ("tenant", TENANT),
        ("metric", PIPELINE_LATE_METRIC),
        ("source", want.source),
        ("severity", "warning"),
        ("component", "pipeline"),
    ] {
        ensure!(
            got.label(label) == value,
            "label {label} is {:?}, expected {value:?}: {body}",
            got.label(label)
        );
    }
    ensure!(
        got.annotation("summary")
            == format!(
                "More than 2% of the events of source {} arrived over 60 s late",
                want.source
            ),
        "summary: {body}"
    );
    let start = parse_rfc3339(got.annotation("window_start"));
    let end = parse_rfc3339(got.annotation("window_end"));
    ensure!(
        (start, end) == (Some(want.window), Some(want.window + WINDOW_MS)),
        "about window {} expected, got {:?}..{:?}: {body}",
        format_rfc3339(want.window),
        got.annotation("window_start"),
        got.annotation("window_end")
    );
    let value: f64 = got
        .annotation("value")
        .parse()
        .with_context(|| format!("value annotation: {body}"))?;
    // The annotation is rounded to 6 decimals.
    ensure!(
        value >= tally.low() - 1e-6 && value <= tally.high() + 1e-6,
        "value {value}, the model says {}..{} ({tally:?})",
        tally.low(),
        tally.high()
    );
    let closed_at = want.window + WINDOW_MS + LATENESS_MS;
    ensure!(
        got.at >= want.window + WINDOW_MS,
        "notified at {} before its window ended",
        format_rfc3339(got.at)
    );
    ensure!(
        got.at - closed_at <= NOTIFY_WITHIN_MS,
        "{} notified {} ms after its window closed",
        want.status,
        got.at - closed_at
    );
    println!(
        "{} {} about {} (late share {value}) {} ms after the window closed",
        want.status,
        want.source,
        format_rfc3339(want.window),
        got.at - closed_at
    );
    match want.status {
        "firing" => ensure!(alert["endsAt"] == "0001-01-01T00:00:00Z", "{body}"),
        _ => ensure!(
            alert["endsAt"]
                .as_str()
                .is_some_and(|t| !t.starts_with("0001")),
            "a resolved alert has an end: {body}"
        ),
    }
    if let Some(fingerprint) = fingerprint {
        ensure!(
            &alert["fingerprint"] == fingerprint,
            "the same alert: {body}"
        );
    }
    ensure!(
        got.key.starts_with(&format!("alert.{RULE_ID}.")),
        "Idempotency-Key {}",
        got.key
    );
    Ok(())
}

async fn scenario(stack: &Stack, receiver: &Receiver) -> anyhow::Result<()> {
    // Start in a window with at least 2 s left, so the first window has requests.
    let now = now_millis();
    let mut w0 = window_start(now, WINDOW_MS);
    if w0 + WINDOW_MS - now < 2_000 {
        w0 += WINDOW_MS;
        tokio::time::sleep(Duration::from_millis((w0 + GUARD_AFTER_MS - now) as u64)).await;
    }
    let sender = tokio::spawn(send(stack.agent_url(), w0));

    // The firing notification is due once the first window closed.
    let first_closed = w0 + WINDOW_MS + LATENESS_MS;
    let wait = (first_closed + NOTIFY_WITHIN_MS + 1_000 - now_millis()).max(0) as u64;
    let firing = receiver
        .wait_for(HOOK, "firing", 1, Duration::from_millis(wait))
        .await?;
    println!(
        "first firing notification {} ms after the first window closed",
        firing[0].at - first_closed
    );

    let sent = sender.await.context("sender task")??;
    // Every notification of the last window is due by now + NOTIFY_WITHIN_MS.
    let last_closed = w0 + WINDOWS * WINDOW_MS + LATENESS_MS;
    let settle = (last_closed + NOTIFY_WITHIN_MS - now_millis()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(settle)).await;

    let tallies = tallies(&sent);
    for ((source, window), tally) in &tallies {
        println!(
            "{source} {}: {} + {} uncertain events, {} + {} late",
            format_rfc3339(*window),
            tally.events,
            tally.uncertain_events,
            tally.late,
            tally.uncertain_late
        );
    }
    let expected = expected_notifications(&tallies)?;
    // The scenario itself: src-a fires on the first window and resolves on the third;
    // src-b and src-c never notify.
    ensure!(
        expected
            == [
                Expected {
                    source: "src-a",
                    status: "firing",
                    window: w0
                },
                Expected {
                    source: "src-a",
                    status: "resolved",
                    window: w0 + LATE_WINDOWS * WINDOW_MS
                },
            ],
        "the schedule did not produce the intended windows: {expected:?}"
    );

    let got = receiver.requests();
    let summary: Vec<String> = got
        .iter()
        .map(|r| {
            format!(
                "/{} {} {} source={} {}..{}",
                r.path,
                r.status(),
                r.label("alertname"),
                r.label("source"),
                r.annotation("window_start"),
                r.annotation("window_end")
            )
        })
        .collect();
    ensure!(
        got.len() == expected.len(),
        "expected exactly {expected:?}, the receiver got {summary:#?}"
    );
    let mut fingerprint = None;
    for (received, want) in got.iter().zip(&expected) {
        ensure!(received.path == HOOK, "path /{}", received.path);
        ensure!(
            received.answered == 200,
            "a delivery was repeated: {summary:#?}"
        );
        let tally = &tallies[&(want.source, want.window)];
        check_notification(received, want, tally, fingerprint.as_ref())
            .with_context(|| format!("{want:?}; all: {summary:#?}"))?;
        fingerprint = Some(received.body["alerts"][0]["fingerprint"].clone());
    }

    // The alert log: src-a's transitions only, firing -> resolved -> ok (the fourth window,
    // clear again, settles the resolved alert without a notification).
    let client = async_nats::connect(stack.nats.url()).await?;
    let js = async_nats::jetstream::new(client);
    let log = alert_log(&js, TENANT, RULE_ID).await?;
    let transitions: Vec<(String, String, i64)> = log
        .iter()
        .filter(|r| r["kind"] == "transition")
        .map(|r| {
            (
                r["dimensions"]["source"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r["to"].as_str().unwrap_or_default().to_owned(),
                r["window_start"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    let want: Vec<(String, String, i64)> = [
        ("firing", w0),
        ("resolved", w0 + LATE_WINDOWS * WINDOW_MS),
        ("ok", w0 + (LATE_WINDOWS + 1) * WINDOW_MS),
    ]
    .into_iter()
    .map(|(to, window)| ("src-a".to_owned(), to.to_owned(), window))
    .collect();
    ensure!(
        transitions == want,
        "alert log transitions: {transitions:?}"
    );
    Ok(())
}

/// A source with 5 % of its events 90 s late fires `_pipeline_late_rate` once, for that source
/// only, and resolves once it stops; 0 % and 1 % sources do not fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_late_events_fire_the_late_rate_self_alert() {
    let started = Instant::now();
    let receiver = Receiver::start().await;
    let options = StackOptions::default()
        .aggregator("WINDOWS__ALLOWED_LATENESS_MS", LATENESS_MS)
        .aggregator("ALERTS__SELF_ALERT_WEBHOOK", receiver.url(HOOK))
        .aggregator("ALERTS__NOTIFIER__INITIAL_BACKOFF_MS", 500)
        .aggregator("ALERTS__NOTIFIER__MAX_BACKOFF_MS", 2_000)
        .aggregator("ALERTS__NOTIFIER__REQUEST_TIMEOUT_MS", 3_000);
    let mut stack = blocking(move || Stack::start(options))
        .await
        .unwrap_or_else(|err| panic!("stack did not start: {err:#}"));
    eprintln!(
        "alerts_self_late: stack up in {:?} (logs in {})",
        started.elapsed(),
        stack.dir().display()
    );
    let run = Instant::now();
    if let Err(err) = scenario(&stack, &receiver).await {
        let log = std::fs::read_to_string(stack.aggregator.log_path()).unwrap_or_default();
        let alerts: Vec<&str> = log.lines().filter(|l| l.contains("alert")).collect();
        panic!(
            "{err:#}\n\ncore-aggregator alert log lines:\n{}\n\nservice logs:\n{}",
            alerts[alerts.len().saturating_sub(40)..].join("\n"),
            stack.logs(40)
        );
    }
    blocking(move || stack.stop())
        .await
        .unwrap_or_else(|err| panic!("graceful stop: {err:#}"));
    eprintln!("alerts_self_late: scenario passed in {:?}", run.elapsed());
}
