//! The producers' own client libraries against a real stack (NATS, QuestDB, core-aggregator,
//! gateway, and the edge agent binary): segment-analytics-python, the OpenTelemetry SDK's
//! OTLP/HTTP log exporter and the `datadog` package's DogStatsD client, installed by the
//! harness ([`rtdash_tests::pyclients`]) and pointed at the agent. Each test checks the
//! counts of the built-in `events` metric (by `event_type` and `source`) exactly, in QuestDB
//! and through the gateway, and the agent's per-protocol counters:
//!
//! - Segment: track, identify, page, screen, group and alias calls, gzip batches, become
//!   events exactly; the same messages sent again (same `messageId`s) count once; and again
//!   after the agent restarted in between;
//! - OTLP: log records with an event name become events, those without are rejected and
//!   reported in `partial_success`;
//! - DogStatsD: a counter sampled at `@0.1` counts ten per line the client sent; gauges,
//!   timers, sets count one per line; sums are weighted; one malformed line in a packet is
//!   dropped and counted, the packet's other lines are not; the kernel dropped nothing.
//!
//! Needs the service binaries (`cargo build --workspace --bins`) and `python3` with `venv`;
//! the first run installs the clients from PyPI (about 20 s).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context};
use rtdash_tests::auth::create_key;
use rtdash_tests::client::{http_client, Api};
use rtdash_tests::pyclients;
use rtdash_tests::stack::{Stack, StackOptions};
use rtdash_tests::table::stored_rows;
use rtdash_tests::time::{format_rfc3339, now_millis};
use rtdash_tests::{blocking, eventually};
use serde_json::{json, Value};

const TENANT: &str = "acme";
const PATIENCE: Duration = Duration::from_secs(45);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// `(event_type, source)` -> count.
type Counts = BTreeMap<(String, String), u64>;

/// The stack with every protocol on for [`TENANT`], StatsD on `statsd_port`.
fn start_stack(statsd_port: u16) -> anyhow::Result<Stack> {
    Stack::start(
        StackOptions::default()
            // Segment's tenant by its write key (a key not in the table is refused).
            .agent("SEGMENT__WRITE_KEYS__WK_TEST", TENANT)
            .agent("OTLP__TENANT", TENANT)
            .agent("STATSD__TENANT", TENANT)
            .agent("STATSD__LISTEN", format!("127.0.0.1:{statsd_port}"))
            .agent("IDEMPOTENCY__PERSIST_INTERVAL_MS", 200),
    )
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `events` metric's counts of [`TENANT`] in QuestDB: full-set rows summed over windows.
fn stored_counts(stack: &Stack) -> anyhow::Result<Counts> {
    let rows = stored_rows(
        stack.db,
        &stack.table,
        &format!("tenant = '{TENANT}' and metric = 'events' and dim_set = 'event_type,source'"),
    )?;
    let mut counts = Counts::new();
    for row in rows {
        let series: Value = serde_json::from_str(&row.series)?;
        let key = (
            series["event_type"].as_str().unwrap_or_default().to_owned(),
            series["source"].as_str().unwrap_or_default().to_owned(),
        );
        *counts.entry(key).or_default() += row.count;
    }
    Ok(counts)
}

/// Waits until QuestDB holds exactly `want`, then checks the gateway serves the same.
async fn expect_counts(stack: &Stack, want: &Counts) -> anyhow::Result<()> {
    let last = std::cell::RefCell::new(Counts::new());
    let reached = eventually(PATIENCE, "the events counts in QuestDB", || {
        let got = stored_counts(stack)?;
        let done = got == *want;
        *last.borrow_mut() = got;
        Ok(done.then_some(()))
    });
    if let Err(err) = reached {
        anyhow::bail!(
            "{err:#}\nwant {want:?}\ngot  {:?}\n{}",
            last.borrow(),
            stack.logs(20)
        );
    }
    let api = Api::new(
        http_client(Some(Duration::from_secs(30))),
        stack.gateway_url(),
    );
    let from = format_rfc3339(now_millis() - 3_600_000);
    for ((event_type, source), count) in want {
        let dimensions = json!({"event_type": event_type, "source": source}).to_string();
        let (status, body) = api
            .get_query(
                "/v1/metrics/events",
                &[
                    ("tenant_id", TENANT.to_owned()),
                    ("dimensions", dimensions),
                    ("from", from.clone()),
                    ("stat", "count".to_owned()),
                ],
            )
            .await?;
        ensure!(status == 200, "gateway answered {status}: {body}");
        let served: f64 = body["windows"]
            .as_array()
            .context("windows")?
            .iter()
            .filter_map(|w| w["value"].as_f64())
            .sum();
        ensure!(
            served == *count as f64,
            "gateway serves {served} for {event_type}/{source}, want {count}"
        );
    }
    Ok(())
}

/// The agent's `name{labels...}` sample (0 when absent).
fn labelled(stack: &Stack, name: &str, labels: &[&str]) -> anyhow::Result<f64> {
    let text = stack.agent.metrics_text()?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

fn add(counts: &mut Counts, event_type: &str, source: &str, n: u64) {
    *counts
        .entry((event_type.to_owned(), source.to_owned()))
        .or_default() += n;
}

/// 60 track calls of 3 events, and one of each other call type, with fixed message ids.
fn segment_messages() -> (Vec<Value>, Counts) {
    let mut messages = Vec::new();
    let mut want = Counts::new();
    let source = "analytics-python";
    for i in 0..60 {
        let event = ["Order Completed", "Product Viewed", "Signed Up"][i % 3];
        messages.push(json!({
            "type": "track", "user_id": format!("u{}", i % 7), "event": event,
            "properties": {"revenue": i as f64 * 1.5, "plan": "pro", "cart": {"items": i % 4}},
            "message_id": format!("msg-track-{i}"),
        }));
        add(&mut want, &event.replace(' ', "_"), source, 1);
    }
    for (kind, extra) in [
        (
            "identify",
            json!({"traits": {"plan": "pro", "email": "a@example.com"}}),
        ),
        ("page", json!({"name": "Home", "properties": {"path": "/"}})),
        (
            "screen",
            json!({"name": "Cart", "properties": {"items": 2}}),
        ),
        (
            "group",
            json!({"group_id": "org-1", "traits": {"seats": 5}}),
        ),
        ("alias", json!({"previous_id": "anon-1"})),
    ] {
        let mut message =
            json!({"type": kind, "user_id": "u1", "message_id": format!("msg-{kind}")});
        if let (Some(target), Some(fields)) = (message.as_object_mut(), extra.as_object()) {
            target.extend(fields.clone());
        }
        messages.push(message);
        add(&mut want, kind, source, 1);
    }
    (messages, want)
}

/// Sends `messages` with `write_key`; answers what the client's `on_error` reported.
fn send_segment_with(
    stack: &Stack,
    write_key: &str,
    messages: &[Value],
) -> anyhow::Result<Vec<Value>> {
    let spec = json!({
        "host": stack.agent_url(), "write_key": write_key, "gzip": true, "upload_size": 25,
        "messages": messages,
    });
    let result = pyclients::run("segment_send.py", &spec, CLIENT_TIMEOUT)?;
    result["errors"]
        .as_array()
        .cloned()
        .with_context(|| format!("errors in {result}"))
}

fn send_segment(stack: &Stack, messages: &[Value]) -> anyhow::Result<()> {
    let errors = send_segment_with(stack, "wk_test", messages)?;
    ensure!(
        errors.is_empty(),
        "the Segment client reported errors: {errors:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_sdk_calls_count_exactly_and_a_retried_batch_counts_once() -> anyhow::Result<()> {
    blocking(pyclients::venv).await?;
    let port = free_udp_port()?;
    let stack = blocking(move || start_stack(port)).await?;
    let (messages, want) = segment_messages();
    let first = messages.clone();
    let stack = blocking(move || send_segment(&stack, &first).map(|()| stack)).await?;
    expect_counts(&stack, &want).await?;
    let accepted = labelled(
        &stack,
        "rtdash_agent_protocol_events_total",
        &["protocol=\"segment\"", "outcome=\"accepted\""],
    )?;
    ensure!(accepted == messages.len() as f64, "accepted {accepted}");

    // The same messages again, as a client retrying after a lost answer would.
    let again = messages.clone();
    let stack = blocking(move || send_segment(&stack, &again).map(|()| stack)).await?;
    let duplicates = eventually(PATIENCE, "duplicates counted", || {
        let n = labelled(
            &stack,
            "rtdash_agent_protocol_events_total",
            &["protocol=\"segment\"", "outcome=\"duplicate\""],
        )?;
        Ok((n == messages.len() as f64).then_some(n))
    })?;
    ensure!(duplicates == messages.len() as f64);

    // A write key that maps to no tenant is refused (401), and nothing is counted.
    let stranger = vec![json!({
        "type": "track", "user_id": "u1", "event": "Order Completed", "message_id": "msg-x",
    })];
    let (stack, errors) = blocking(move || {
        send_segment_with(&stack, "wk_unknown", &stranger).map(|errors| (stack, errors))
    })
    .await?;
    ensure!(
        errors.len() == 1 && errors[0]["messages"] == 1,
        "the client reports the refused batch: {errors:?}"
    );
    // Let the duplicates' flush go by (nothing must move), then check again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    expect_counts(&stack, &want).await?;

    // An ingest key of the tenant is a write key too (no configuration needed).
    let key = create_key(&stack.gateway_url(), TENANT, "ingest", "segment").await?;
    let by_key = vec![json!({
        "type": "track", "user_id": "u1", "event": "Order Completed", "message_id": "msg-key",
    })];
    let (stack, errors) =
        blocking(move || send_segment_with(&stack, &key, &by_key).map(|errors| (stack, errors)))
            .await?;
    ensure!(errors.is_empty(), "sent with an ingest key: {errors:?}");
    let mut want = want;
    add(&mut want, "Order_Completed", "analytics-python", 1);
    expect_counts(&stack, &want).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_an_agent_restart_counts_once() -> anyhow::Result<()> {
    blocking(pyclients::venv).await?;
    let port = free_udp_port()?;
    let stack = blocking(move || start_stack(port)).await?;
    let (messages, want) = segment_messages();
    let first = messages.clone();
    let stack = blocking(move || send_segment(&stack, &first).map(|()| stack)).await?;
    expect_counts(&stack, &want).await?;
    let mut stack = stack;
    let stack = blocking(move || stack.agent.restart().map(|()| stack)).await?;
    let again = messages.clone();
    let stack = blocking(move || send_segment(&stack, &again).map(|()| stack)).await?;
    let duplicates = eventually(PATIENCE, "duplicates counted after the restart", || {
        let n = labelled(
            &stack,
            "rtdash_agent_protocol_events_total",
            &["protocol=\"segment\"", "outcome=\"duplicate\""],
        )?;
        Ok((n == messages.len() as f64).then_some(n))
    })?;
    ensure!(duplicates == messages.len() as f64);
    tokio::time::sleep(Duration::from_secs(2)).await;
    expect_counts(&stack, &want).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_log_records_with_an_event_name_count_exactly() -> anyhow::Result<()> {
    blocking(pyclients::venv).await?;
    let port = free_udp_port()?;
    let stack = blocking(move || start_stack(port)).await?;
    let mut records = Vec::new();
    let mut want = Counts::new();
    for i in 0..90 {
        let name = ["checkout.completed", "cart.abandoned", "search.performed"][i % 3];
        let region = ["us", "eu"][i % 2];
        records.push(json!({
            "event_name": name, "severity_text": "INFO",
            "attributes": {"amount": i as f64, "region": region},
        }));
        add(&mut want, &name.replace('.', "_"), "checkout-svc", 1);
    }
    // Plain logs: no event name, rejected in partial_success.
    for i in 0..7 {
        records.push(json!({"body": format!("plain log line {i}"), "severity_text": "WARN"}));
    }
    // The exporter authenticates with an ingest key in its headers; without one (or with
    // a key of another role) the agent refuses the export and counts nothing.
    let gateway = stack.gateway_url();
    let key = create_key(&gateway, TENANT, "ingest", "otlp exporter").await?;
    let viewer = create_key(&gateway, TENANT, "viewer", "not for ingest").await?;
    for headers in [
        json!({}),
        json!({"authorization": format!("Bearer {viewer}")}),
    ] {
        let spec = json!({
            "endpoint": format!("{}/v1/logs", stack.agent_url()),
            "service_name": "checkout-svc", "compression": "gzip", "records": records,
            "headers": headers,
        });
        let result =
            blocking(move || pyclients::run("otlp_logs.py", &spec, CLIENT_TIMEOUT)).await?;
        ensure!(
            result["exports"] == json!(["FAILURE"]),
            "refused export: {result}"
        );
    }
    for compression in ["gzip", "none"] {
        let spec = json!({
            "endpoint": format!("{}/v1/logs", stack.agent_url()),
            "service_name": "checkout-svc", "compression": compression, "records": records,
            "headers": {"authorization": format!("Bearer {key}")},
        });
        let result =
            blocking(move || pyclients::run("otlp_logs.py", &spec, CLIENT_TIMEOUT)).await?;
        ensure!(
            result["result"] == "SUCCESS" && result["exports"] == json!(["SUCCESS"]),
            "exporter: {result}"
        );
    }
    for count in want.values_mut() {
        *count *= 2;
    }
    expect_counts(&stack, &want).await?;
    let rejected = labelled(
        &stack,
        "rtdash_agent_protocol_events_total",
        &["protocol=\"otlp\"", "outcome=\"rejected\""],
    )?;
    ensure!(rejected == 14.0, "rejected {rejected}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dogstatsd_lines_count_with_their_sample_rates() -> anyhow::Result<()> {
    blocking(pyclients::venv).await?;
    let port = free_udp_port()?;
    let stack = blocking(move || start_stack(port)).await?;
    let calls = json!([
        {"method": "increment", "metric": "page.views", "value": 1, "tags": ["route:home"], "sample_rate": 0.1, "repeat": 2000},
        {"method": "increment", "metric": "jobs.done", "value": 3, "tags": ["queue:mail"], "repeat": 150},
        {"method": "gauge", "metric": "queue.depth", "value": 17, "repeat": 40},
        {"method": "timing", "metric": "api.latency", "value": 12.5, "sample_rate": 0.5, "repeat": 400},
        {"method": "histogram", "metric": "payload.size", "value": 512, "repeat": 30},
        {"method": "distribution", "metric": "render.ms", "value": 8, "repeat": 25},
        {"method": "set", "metric": "users.seen", "value": "u1", "repeat": 12},
    ]);
    let spec =
        json!({"host": "127.0.0.1", "port": port, "seed": 7, "buffering": true, "calls": calls});
    let result =
        blocking(move || pyclients::run("dogstatsd_send.py", &spec, CLIENT_TIMEOUT)).await?;
    let sent = |metric: &str| result["sent_lines"][metric].as_u64().unwrap_or(0);
    let page_views = sent("page.views");
    ensure!(
        (100..=300).contains(&page_views),
        "the client sampled {page_views} of 2000 at 0.1"
    );
    let mut want = Counts::new();
    add(&mut want, "page_views", "statsd", page_views * 10);
    add(&mut want, "jobs_done", "statsd", sent("jobs.done"));
    add(&mut want, "queue_depth", "statsd", sent("queue.depth"));
    add(&mut want, "api_latency", "statsd", sent("api.latency") * 2);
    add(&mut want, "payload_size", "statsd", sent("payload.size"));
    add(&mut want, "render_ms", "statsd", sent("render.ms"));
    add(&mut want, "users_seen", "statsd", sent("users.seen"));
    ensure!(
        sent("jobs.done") == 150 && sent("users.seen") == 12,
        "unsampled: {result}"
    );

    // One packet with a malformed line between two good ones.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket.send_to(
        b"jobs.done:1|c\nthis is not statsd\njobs.done:1|c|#queue:mail\n",
        ("127.0.0.1", port),
    )?;
    add(&mut want, "jobs_done", "statsd", 2);

    expect_counts(&stack, &want).await?;
    let malformed = labelled(
        &stack,
        "rtdash_agent_statsd_lines_dropped_total",
        &["reason=\"malformed\""],
    )?;
    ensure!(malformed == 1.0, "malformed lines counted: {malformed}");
    let dropped = rtdash_tests::prometheus::metric_sum(
        &stack.agent.metrics_text()?,
        "rtdash_agent_statsd_lines_dropped_total",
    );
    ensure!(dropped == 1.0, "lines dropped: {dropped}");
    let kernel = stack
        .agent
        .metric("rtdash_agent_statsd_kernel_drops_total")?;
    ensure!(kernel == 0.0, "the kernel dropped {kernel} datagrams");
    Ok(())
}
