//! The edge agent against a real nats-server (started by the harness), in-process:
//!
//! - partials of events over several windows and dimension values merge to exactly the
//!   aggregates computed here;
//! - NATS stopped for 10 s under steady load and started again: every accepted event is in
//!   the partials exactly once;
//! - the bad-input matrix: status codes, reason codes, dead letters, and the agent keeps
//!   serving;
//! - a metric definition put into the config bucket applies without a restart;
//! - graceful shutdown flushes everything; a restart continues the sequence numbers and
//!   publishes what an outage left in the disk spool first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use async_nats::jetstream;
use edge_agent::AgentConfig;
use rtdash_shared::messages::{DeadLetter, PartialBatch};
use rtdash_shared::names;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::Sketch;
use rtdash_shared::wire;
use rtdash_tests::client::{http_client, Api};
use rtdash_tests::events::event_json;
use rtdash_tests::in_process::InProcessAgent;
use rtdash_tests::jetstream::{read_stream, stream_messages};
use rtdash_tests::model::{unique_within, Acc};
use rtdash_tests::rng::TestRng;
use rtdash_tests::time::{format_rfc3339, now_millis, window_start};
use rtdash_tests::NatsServer;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AGENT_ID: &str = "edge-test";
/// Where events are posted.
const EVENTS: &str = "/v1/events";
/// Request timeout of the test's HTTP client.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long reading a stream back may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

fn base_config(nats: &NatsServer, state_dir: &Path) -> AgentConfig {
    let mut config = AgentConfig::default();
    config.nats.url = nats.url();
    config.state_dir = state_dir.to_owned();
    config.agent_id = Some(AGENT_ID.to_owned());
    config.flush_interval_ms = 100;
    config.heartbeat_interval_ms = 500;
    config.streams.partitions = 4;
    config.publish.ack_timeout_ms = 2_000;
    config.publish.retry_backoff_max_ms = 500;
    config
}

/// Starts an agent in this process and waits (20 s at most) until it is ready.
async fn start_agent(config: AgentConfig) -> anyhow::Result<InProcessAgent> {
    let agent = InProcessAgent::start(config, http_client(Some(HTTP_TIMEOUT))).await?;
    agent.api.wait_ready(Duration::from_secs(20)).await?;
    Ok(agent)
}

/// Every partial batch in `RTDASH_PARTIALS`, checking that each message id matches its batch
/// and that no (agent, partition, seq) appears twice.
async fn partials(js: &jetstream::Context) -> anyhow::Result<Vec<PartialBatch>> {
    let mut seen = BTreeSet::new();
    let mut batches = Vec::new();
    let total = stream_messages(js, names::PARTIALS_STREAM).await? as usize;
    for message in read_stream(js, names::PARTIALS_STREAM, total, READ_TIMEOUT).await? {
        let batch: PartialBatch = wire::decode(&message.payload)?;
        let msg_id = message.msg_id;
        ensure!(
            msg_id == names::partial_msg_id(&batch.agent_id, batch.partition, batch.seq),
            "message id {msg_id} does not match its batch"
        );
        ensure!(
            message.subject.as_str() == names::partials_subject(batch.partition),
            "batch of partition {} on {}",
            batch.partition,
            message.subject
        );
        ensure!(
            seen.insert((batch.agent_id.clone(), batch.partition, batch.seq)),
            "duplicate batch {msg_id}"
        );
        batches.push(batch);
    }
    Ok(batches)
}

/// Merged sketches per (tenant, metric, dims, window start).
fn merge(batches: &[PartialBatch]) -> BTreeMap<(String, String, String, i64), Sketch> {
    let mut merged: BTreeMap<(String, String, String, i64), Sketch> = BTreeMap::new();
    for batch in batches {
        for entry in &batch.entries {
            let key = (
                entry.series.tenant.clone(),
                entry.series.metric.clone(),
                entry.series.dims_json(),
                entry.window_start,
            );
            merged
                .entry(key)
                .or_insert_with(|| Sketch::new(entry.sketch.spec()))
                .merge(&entry.sketch);
        }
    }
    merged
}

/// Events counted by the built-in `events` metric (its total rollup), per tenant filter.
fn events_total(batches: &[PartialBatch], tenant: Option<&str>) -> u64 {
    batches
        .iter()
        .flat_map(|b| &b.entries)
        .filter(|e| e.series.metric == "events" && e.series.dims.is_empty())
        .filter(|e| tenant.is_none_or(|t| e.series.tenant == t))
        .map(|e| e.sketch.count())
        .sum()
}

/// Polls the partials until `events_total(tenant) >= expected` (30 s at most).
async fn wait_for_events(
    js: &jetstream::Context,
    tenant: Option<&str>,
    expected: u64,
) -> anyhow::Result<Vec<PartialBatch>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let batches = partials(js).await?;
        let total = events_total(&batches, tenant);
        if total >= expected {
            return Ok(batches);
        }
        ensure!(
            Instant::now() < deadline,
            "only {total} of {expected} events reached the partials"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn event(tenant: &str, event_type: &str, props: Value, occurred_at: i64) -> String {
    event_json(tenant, "checkout-service", event_type, props, occurred_at).to_string()
}

fn jetstream_for(
    nats: &NatsServer,
) -> impl std::future::Future<Output = anyhow::Result<jetstream::Context>> {
    let url = nats.url();
    async move {
        let client = async_nats::connect(url).await?;
        Ok(jetstream::new(client))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partials_merge_to_the_exact_aggregates() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let state = tempfile::tempdir()?;
    let metrics_file = state.path().join("metrics.toml");
    std::fs::write(
        &metrics_file,
        r#"
[[metric]]
name = "amount"
event_type = "pay"
field = "usd"
unique = "user"
dimensions = ["region", "plan"]
"#,
    )?;
    let mut config = base_config(&nats, &state.path().join("agent"));
    config.metrics_file = Some(metrics_file);
    config.shards = 3;
    let agent = start_agent(config).await?;
    let js = jetstream_for(&nats).await?;

    // 6,000 events over three windows, 3 regions x 2 plans, amounts in quarters (exact in
    // f64), 400 distinct users; a fifth are `view` events and some `pay` events lack `usd`.
    let now = now_millis();
    let mut rng = TestRng::seeded("partials_merge_to_the_exact_aggregates", 0x5eed);
    let regions = ["eu", "us", "ap"];
    let plans = ["free", "pro"];
    let mut expected: BTreeMap<(String, i64), Acc> = BTreeMap::new();
    let mut lines = Vec::new();
    let mut pay_without_field = 0;
    for _ in 0..6_000 {
        let at = now - 5_000 - rng.below(170_000) as i64;
        let window = window_start(at, 60_000);
        let region = regions[rng.below(3) as usize];
        let plan = plans[rng.below(2) as usize];
        let user = rng.below(400);
        match rng.below(10) {
            0 | 1 => lines.push(event("acme", "view", json!({"region": region}), at)),
            2 => {
                pay_without_field += 1;
                lines.push(event(
                    "acme",
                    "pay",
                    json!({"region": region, "plan": plan, "user": user}),
                    at,
                ));
            }
            _ => {
                let usd = rng.below(4_000) as f64 * 0.25;
                lines.push(event(
                    "acme",
                    "pay",
                    json!({"region": region, "plan": plan, "usd": usd, "user": user}),
                    at,
                ));
                let full = SeriesKey::new(
                    "acme",
                    "amount",
                    [
                        ("plan".to_owned(), Some(plan.to_owned())),
                        ("region".to_owned(), Some(region.to_owned())),
                    ],
                )
                .dims_json();
                expected
                    .entry((full, window))
                    .or_default()
                    .add(usd, Some(user.to_string()));
                expected
                    .entry(("{}".to_owned(), window))
                    .or_default()
                    .add(usd, Some(user.to_string()));
            }
        }
    }
    assert!(pay_without_field > 0);
    let windows: BTreeSet<i64> = expected.keys().map(|(_, w)| *w).collect();
    assert!(windows.len() >= 3, "events span several windows");

    // Send as JSON arrays and NDJSON, four requests at a time.
    let client = agent.api.clone();
    let chunks: Vec<Vec<String>> = lines.chunks(250).map(<[String]>::to_vec).collect();
    let mut accepted = 0;
    for group in chunks.chunks(4) {
        let requests = group.iter().enumerate().map(|(i, chunk)| {
            let (body, headers): (String, Vec<(&str, &str)>) = if i % 2 == 0 {
                (format!("[{}]", chunk.join(",")), vec![])
            } else {
                (
                    chunk.join("\n"),
                    vec![("content-type", "application/x-ndjson")],
                )
            };
            let client = client.clone();
            async move { client.post_raw(EVENTS, body, &headers).await }
        });
        for result in futures::future::join_all(requests).await {
            let (status, body) = result?;
            assert_eq!(status, 202, "{body}");
            assert_eq!(body["rejected"], 0);
            accepted += body["accepted"].as_u64().unwrap_or(0);
        }
    }
    assert_eq!(accepted, 6_000);

    let batches = wait_for_events(&js, Some("acme"), 6_000).await?;
    assert_eq!(
        events_total(&batches, Some("acme")),
        6_000,
        "no event twice"
    );
    for batch in &batches {
        assert_eq!(batch.agent_id, AGENT_ID);
        assert!(batch.partition < 4);
        assert!(batch.acked_below <= batch.seq);
        assert!(batch.watermark <= batch.created_at);
    }
    let merged = merge(&batches);
    let mut found = 0;
    for ((tenant, metric, dims, window), sketch) in &merged {
        if metric != "amount" {
            continue;
        }
        assert_eq!(tenant, "acme");
        let want = expected
            .get(&(dims.clone(), *window))
            .with_context(|| format!("unexpected series {dims} at {window}"))?;
        let stats = sketch.stats();
        assert_eq!(stats.count, want.count(), "count of {dims} at {window}");
        assert_eq!(stats.sum, Some(want.sum()), "sum of {dims} at {window}");
        assert_eq!(stats.min, want.min(), "min of {dims} at {window}");
        assert_eq!(stats.max, want.max(), "max of {dims} at {window}");
        let unique = stats.unique.unwrap_or(0) as f64;
        let exact = want.uniques.len() as f64;
        assert!(
            unique_within(unique, exact, 0.02, 1.0),
            "unique of {dims} at {window}: {unique} vs {exact}"
        );
        found += 1;
    }
    assert_eq!(found, expected.len(), "every expected series was published");
    // The built-in metric counts by event type too.
    let views: u64 = merged
        .iter()
        .filter(|((_, metric, dims, _), _)| {
            metric == "events" && dims == r#"{"event_type":"view"}"#
        })
        .map(|(_, sketch)| sketch.count())
        .sum();
    let pays: u64 = merged
        .iter()
        .filter(|((_, metric, dims, _), _)| metric == "events" && dims == r#"{"event_type":"pay"}"#)
        .map(|(_, sketch)| sketch.count())
        .sum();
    assert_eq!(views + pays, 6_000);
    agent.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    let mut nats = NatsServer::start()?;
    let state = tempfile::tempdir()?;
    let agent = start_agent(base_config(&nats, state.path())).await?;

    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (accepted, refused, stop) = (accepted.clone(), refused.clone(), stop.clone());
        let client = agent.api.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body: Vec<String> = (0..20)
                    .map(|i| {
                        n += 1;
                        event(
                            "outage",
                            if i % 2 == 0 { "a" } else { "b" },
                            json!({"n": n}),
                            now_millis(),
                        )
                    })
                    .collect();
                match client
                    .post_raw(
                        EVENTS,
                        body.join("\n"),
                        &[("content-type", "application/x-ndjson")],
                    )
                    .await
                {
                    Ok((202, json)) => {
                        accepted
                            .fetch_add(json["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                    }
                    Ok((429 | 503, _)) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok((status, json)) => panic!("unexpected answer {status}: {json}"),
                    Err(err) => panic!("request failed: {err}"),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_outage = accepted.load(Ordering::Relaxed);
    assert!(before_outage > 0, "load is flowing");
    tokio::task::block_in_place(|| nats.stop());
    let outage_started = Instant::now();
    // The agent keeps accepting while NATS is gone, and says it is not ready.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let readyz = agent.api.http.get(agent.api.url("/readyz")).send().await?;
    assert_eq!(readyz.status().as_u16(), 503);
    let remaining = Duration::from_secs(10).saturating_sub(outage_started.elapsed());
    tokio::time::sleep(remaining).await;
    let during_outage = accepted.load(Ordering::Relaxed) - before_outage;
    assert!(during_outage > 0, "events were accepted during the outage");
    tokio::task::block_in_place(|| nats.restart())?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    load.await?;
    let total = accepted.load(Ordering::Relaxed);

    let js = jetstream_for(&nats).await?;
    let batches = wait_for_events(&js, Some("outage"), total).await?;
    // `partials` already checked that no (agent, partition, seq) is there twice.
    assert_eq!(
        events_total(&batches, Some("outage")),
        total,
        "every accepted event exactly once ({during_outage} accepted during the outage, {} requests refused)",
        refused.load(Ordering::Relaxed)
    );
    agent.stop().await?;
    Ok(())
}

/// Sends a request head announcing `declared` bytes but only `sent` of them, over raw TCP,
/// and returns the status and body (reqwest may fail writing a body the server refused).
async fn post_truncated(
    addr: std::net::SocketAddr,
    declared: usize,
    sent: &[u8],
) -> anyhow::Result<(u16, Value)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n",
        rtdash_tests::auth::operator_key()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(sent).await?;
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
            if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if length.is_some_and(|len| response.len() >= end + 4 + len) {
                    break;
                }
            }
        }
        anyhow::Ok(())
    })
    .await;
    ensure!(read.is_ok(), "no response to the truncated request");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bad_input_matrix() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let state = tempfile::tempdir()?;
    let agent = start_agent(base_config(&nats, state.path())).await?;
    let client = agent.api.clone();
    let now = now_millis();
    let good = event("acme", "click", json!({"plan": "pro"}), now);

    // (name, body, headers, status, code, expected dead letters: (subject tenant, code, count))
    let mut dead_letters: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut expect_dlq = |tenant: &str, code: &str, n: u64| {
        *dead_letters
            .entry((names::dlq_subject(tenant), code.to_owned()))
            .or_default() += n;
    };

    let single_cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (
            "malformed JSON",
            br#"{"tenant_id": "acme", "source": "#.to_vec(),
            400,
            "malformed_json",
            "_unknown",
        ),
        (
            "wrong type",
            format!(
                r#"{{"tenant_id":"acme","source":5,"event_type":"e","occurred_at":"{}"}}"#,
                format_rfc3339(now)
            )
            .into_bytes(),
            400,
            "wrong_type",
            "acme",
        ),
        (
            "missing field",
            br#"{"tenant_id":"acme","source":"s"}"#.to_vec(),
            400,
            "missing_field",
            "acme",
        ),
        (
            "far-future timestamp",
            event("acme", "e", json!({}), now + 3_600_000).into_bytes(),
            400,
            "timestamp_in_future",
            "acme",
        ),
        (
            "non-UTF-8",
            b"{\"tenant_id\":\"acme\xff\xfe\",\"source\":\"s\"}".to_vec(),
            400,
            "invalid_utf8",
            "_unknown",
        ),
        (
            "not an object",
            b"42".to_vec(),
            400,
            "not_an_object",
            "_unknown",
        ),
        (
            "nested property",
            event("acme", "e", json!({"a": {"b": 1}}), now).into_bytes(),
            400,
            "property_not_scalar",
            "acme",
        ),
        ("empty body", Vec::new(), 400, "empty_body", "_unknown"),
    ];
    for (name, body, status, code, tenant) in single_cases {
        let (got, json) = client.post_raw(EVENTS, body, &[]).await?;
        assert_eq!(got, status, "{name}: {json}");
        assert_eq!(json["error"]["code"], code, "{name}: {json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        expect_dlq(tenant, code, 1);
    }

    // Oversized body: announced as 17 MiB, refused after the first bytes.
    let (status, json) =
        post_truncated(agent.handle.addr(), 17 * 1024 * 1024, &[b'['; 8192]).await?;
    assert_eq!(status, 413, "{json}");
    assert_eq!(json["error"]["code"], "body_too_large");
    expect_dlq("_unknown", "body_too_large", 1);

    // A 100,000-item batch of valid events is accepted...
    let at = format_rfc3339(now);
    let small =
        format!(r#"{{"tenant_id":"bulk","source":"s","event_type":"e","occurred_at":"{at}"}}"#);
    let big = format!("[{}]", vec![small.as_str(); 100_000].join(","));
    assert!(big.len() < 16 * 1024 * 1024);
    let started = Instant::now();
    let (status, json) = client.post_raw(EVENTS, big, &[]).await?;
    assert_eq!(status, 202, "{json}");
    assert_eq!(json["accepted"], 100_000);
    assert_eq!(json["rejected"], 0);
    eprintln!("100,000-item batch answered in {:?}", started.elapsed());
    // ... one more item is refused as a whole ...
    let too_many = format!("[{}]", vec!["1"; 100_001].join(","));
    let (status, json) = client.post_raw(EVENTS, too_many, &[]).await?;
    assert_eq!(status, 413, "{json}");
    assert_eq!(json["error"]["code"], "batch_too_large");
    expect_dlq("_unknown", "batch_too_large", 1);
    // ... and 100,000 invalid items get 100,000 answers and 100,000 dead letters.
    let all_bad = format!("[{}]", vec!["1"; 100_000].join(","));
    let (status, json) = client.post_raw(EVENTS, all_bad, &[]).await?;
    assert_eq!(status, 400, "all rejected");
    assert_eq!(json["accepted"], 0);
    assert_eq!(json["rejected"], 100_000);
    assert_eq!(json["errors"].as_array().map(Vec::len), Some(100_000));
    assert_eq!(json["errors"][99_999]["index"], 99_999);
    assert_eq!(json["errors"][0]["code"], "not_an_object");
    assert_eq!(json["error"]["code"], "all_rejected");
    expect_dlq("_unknown", "not_an_object", 100_000);
    eprintln!("100,000-item batches done after {:?}", started.elapsed());

    // gzip body.
    let ndjson = format!("{good}\n{good}\n{good}\n");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(ndjson.as_bytes())?;
    let (status, json) = client
        .post_raw(
            EVENTS,
            encoder.finish()?,
            &[
                ("content-encoding", "gzip"),
                ("content-type", "application/x-ndjson"),
            ],
        )
        .await?;
    assert_eq!(status, 202, "{json}");
    assert_eq!(json["accepted"], 3);

    // NDJSON with a bad line.
    let body = format!("{good}\n{{\"tenant_id\":\"acme\",oops\n{good}\n");
    let (status, json) = client
        .post_raw(EVENTS, body, &[("content-type", "application/x-ndjson")])
        .await?;
    assert_eq!(status, 202, "{json}");
    assert_eq!(json["accepted"], 2);
    assert_eq!(json["rejected"], 1);
    assert_eq!(json["errors"][0]["index"], 1);
    assert_eq!(json["errors"][0]["code"], "malformed_json");
    expect_dlq("_unknown", "malformed_json", 1);

    // A batch mixing good and bad items: per-item answers, the tenant of a bad item is kept.
    let bad_tenant_item = format!(
        r#"{{"tenant_id":"acme","source":"s","event_type":"e","occurred_at":"{}","extra":1}}"#,
        format_rfc3339(now)
    );
    let (status, json) = client
        .post_raw(EVENTS, format!("[{good},{bad_tenant_item}]"), &[])
        .await?;
    assert_eq!(status, 202, "{json}");
    assert_eq!(json["errors"][0]["code"], "unknown_field");
    expect_dlq("acme", "unknown_field", 1);

    // Still serving.
    let (status, json) = client.post_raw(EVENTS, good.clone(), &[]).await?;
    assert_eq!(status, 202, "{json}");
    let health = client.http.get(client.url("/healthz")).send().await?;
    assert_eq!(health.status().as_u16(), 200);

    // The dead letters, all of them, with their reasons and raw input.
    let js = jetstream_for(&nats).await?;
    let expected_total: u64 = dead_letters.values().sum();
    let phase = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let stored = js
            .get_stream(names::DLQ_STREAM)
            .await?
            .info()
            .await?
            .state
            .messages;
        if stored >= expected_total {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {stored} of {expected_total} dead letters stored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{expected_total} dead letters stored after {:?}",
        phase.elapsed()
    );
    let mut found: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut indexes = BTreeSet::new();
    let total = stream_messages(&js, names::DLQ_STREAM).await? as usize;
    for message in read_stream(&js, names::DLQ_STREAM, total, READ_TIMEOUT).await? {
        let letter: DeadLetter = wire::decode(&message.payload)?;
        assert!(letter.rejected_by.starts_with("edge-agent:"));
        assert!(letter.raw.len() <= 4096);
        assert!(letter.received_at > 0);
        match letter.code.as_str() {
            "invalid_utf8" => {
                assert!(!letter.raw_is_utf8);
            }
            "body_too_large" | "batch_too_large" => {
                assert!(letter.truncated, "{letter:?}");
                assert_eq!(letter.raw.len(), 4096);
            }
            "not_an_object" if letter.index.is_some() => {
                indexes.insert(letter.index.unwrap_or_default());
            }
            _ => {}
        }
        *found
            .entry((message.subject.to_string(), letter.code.clone()))
            .or_default() += 1;
    }
    assert_eq!(found, dead_letters);
    assert_eq!(indexes.len(), 100_000, "one dead letter per rejected item");
    eprintln!("dead letters read and checked after {:?}", phase.elapsed());

    let batches = wait_for_events(&js, Some("bulk"), 100_000).await?;
    assert_eq!(events_total(&batches, Some("bulk")), 100_000);
    let metrics = client
        .http
        .get(client.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("rtdash_agent_events_rejected_total"),
        "{metrics}"
    );
    assert_dlq_dropped_zero(&metrics);
    agent.stop().await?;
    Ok(())
}

fn assert_dlq_dropped_zero(metrics: &str) {
    for line in metrics.lines() {
        if line.starts_with("rtdash_agent_dlq_dropped_total") {
            let value: f64 = line
                .split_whitespace()
                .last()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            assert_eq!(value, 0.0, "{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_definition_put_into_kv_applies_without_restart() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let state = tempfile::tempdir()?;
    let agent = start_agent(base_config(&nats, state.path())).await?;
    let js = jetstream_for(&nats).await?;
    let kv = js.get_key_value(names::CONFIG_BUCKET).await?;
    let client = agent.api.clone();

    // An invalid definition is ignored (logged and counted), the agent goes on.
    kv.put("metric._all.broken", "{not json".into()).await?;
    kv.put(
        "metric._all.revenue",
        json!({"name": "revenue", "event_type": "pay", "field": "usd", "dimensions": ["region"]})
            .to_string()
            .into(),
    )
    .await?;

    // Rounds of events, each for a fresh tenant, until one round shows up in `revenue`.
    async fn round(
        client: &Api,
        js: &jetstream::Context,
        tenant: &str,
    ) -> anyhow::Result<BTreeMap<(String, String, String, i64), Sketch>> {
        let body: Vec<String> = (0..10)
            .map(|i| {
                event(
                    tenant,
                    "pay",
                    json!({"region": "eu", "plan": "pro", "usd": i}),
                    now_millis(),
                )
            })
            .collect();
        let (status, json) = client
            .post_raw(EVENTS, format!("[{}]", body.join(",")), &[])
            .await?;
        ensure!(status == 202, "{json}");
        let batches = wait_for_events(js, Some(tenant), 10).await?;
        Ok(merge(&batches)
            .into_iter()
            .filter(|((t, _, _, _), _)| t == tenant)
            .collect())
    }
    let started = Instant::now();
    let mut applied = None;
    for n in 0..50 {
        let tenant = format!("kv-{n}");
        let merged = round(&client, &js, &tenant).await?;
        let revenue: Vec<_> = merged
            .iter()
            .filter(|((_, metric, _, _), _)| metric == "revenue")
            .collect();
        if !revenue.is_empty() {
            let total = revenue
                .iter()
                .find(|((_, _, dims, _), _)| dims == "{}")
                .map(|(_, s)| s.stats())
                .context("revenue total")?;
            assert_eq!(total.count, 10);
            assert_eq!(total.sum, Some(45.0));
            assert!(revenue
                .iter()
                .any(|((_, _, dims, _), _)| dims == r#"{"region":"eu"}"#));
            applied = Some(started.elapsed());
            break;
        }
    }
    let applied = applied.context("the definition never applied")?;
    assert!(applied < Duration::from_secs(10), "took {applied:?}");

    // A changed definition applies too.
    kv.put(
        "metric._all.revenue",
        json!({"name": "revenue", "event_type": "pay", "field": "usd", "dimensions": ["plan"]})
            .to_string()
            .into(),
    )
    .await?;
    let mut changed = false;
    for n in 0..50 {
        let merged = round(&client, &js, &format!("kv2-{n}")).await?;
        if merged
            .keys()
            .any(|(_, metric, dims, _)| metric == "revenue" && dims == r#"{"plan":"pro"}"#)
        {
            changed = true;
            break;
        }
    }
    assert!(changed, "the changed definition never applied");

    // A deleted definition stops applying.
    kv.delete("metric._all.revenue").await?;
    let mut removed = false;
    for n in 0..50 {
        let merged = round(&client, &js, &format!("kv3-{n}")).await?;
        if !merged.keys().any(|(_, metric, _, _)| metric == "revenue") {
            removed = true;
            break;
        }
    }
    assert!(removed, "the deleted definition kept applying");
    let (status, _) = client
        .post_raw(EVENTS, event("kv", "pay", json!({}), now_millis()), &[])
        .await?;
    assert_eq!(status, 202);
    agent.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_flushes_everything_and_seqs_continue() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let state = tempfile::tempdir()?;
    let mut config = base_config(&nats, state.path());
    // Long flush interval: at shutdown most data is still in the shards.
    config.flush_interval_ms = 1_000;
    config.heartbeat_interval_ms = 1_000;
    let agent = start_agent(config.clone()).await?;
    let client = agent.api.clone();
    let mut sent = 0;
    for i in 0..20 {
        let body: Vec<String> = (0..100)
            .map(|j| event("bye", "e", json!({"k": (i * 100 + j) % 13}), now_millis()))
            .collect();
        let (status, json) = client
            .post_raw(EVENTS, format!("[{}]", body.join(",")), &[])
            .await?;
        assert_eq!(status, 202, "{json}");
        sent += json["accepted"].as_u64().unwrap_or(0);
    }
    agent.stop().await?;

    let js = jetstream_for(&nats).await?;
    let batches = partials(&js).await?;
    assert_eq!(
        events_total(&batches, Some("bye")),
        sent,
        "all flushed before exit"
    );
    let partitions: BTreeSet<u32> = batches.iter().map(|b| b.partition).collect();
    assert_eq!(
        partitions.len(),
        4,
        "the final flush reaches every partition"
    );
    let last_seq: HashMap<u32, u64> = batches.iter().fold(HashMap::new(), |mut m, b| {
        let e = m.entry(b.partition).or_insert(0);
        *e = (*e).max(b.seq);
        m
    });
    assert!(state.path().join("seq.json").exists());

    // A restart continues above every seq used before.
    let agent = start_agent(config).await?;
    let (status, _) = agent
        .api
        .post_raw(EVENTS, event("again", "e", json!({}), now_millis()), &[])
        .await?;
    assert_eq!(status, 202);
    let batches = wait_for_events(&js, Some("again"), 1).await?;
    let newest = batches
        .iter()
        .find(|b| b.entries.iter().any(|e| e.series.tenant == "again"))
        .context("the new batch")?;
    assert!(newest.seq > last_seq[&newest.partition]);
    agent.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_spooled_to_disk_are_published_first_after_a_restart() -> anyhow::Result<()> {
    let mut nats = NatsServer::start()?;
    let state = tempfile::tempdir()?;
    let mut config = base_config(&nats, state.path());
    config.shutdown_grace_ms = 1_000;
    // A tiny in-memory spool so batches go to disk segments while NATS is down.
    config.spool.memory_bytes = 1;
    let agent = start_agent(config.clone()).await?;
    tokio::task::block_in_place(|| nats.stop());
    let mut sent = 0;
    for _ in 0..10 {
        let body: Vec<String> = (0..50)
            .map(|i| event("spooled", "e", json!({"i": i}), now_millis()))
            .collect();
        let (status, json) = agent
            .api
            .post_raw(EVENTS, format!("[{}]", body.join(",")), &[])
            .await?;
        assert_eq!(status, 202, "{json}");
        sent += json["accepted"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    agent.stop().await?;
    let segments = std::fs::read_dir(state.path().join("spool"))?.count();
    assert!(segments > 0, "unacknowledged batches are on disk");

    tokio::task::block_in_place(|| nats.restart())?;
    let agent = start_agent(config).await?;
    let (status, _) = agent
        .api
        .post_raw(EVENTS, event("fresh", "e", json!({}), now_millis()), &[])
        .await?;
    assert_eq!(status, 202);
    let js = jetstream_for(&nats).await?;
    let batches = wait_for_events(&js, Some("spooled"), sent).await?;
    assert_eq!(events_total(&batches, Some("spooled")), sent);
    let batches = wait_for_events(&js, Some("fresh"), 1).await?;
    // In stream order, per partition, every spooled batch precedes the new run's batches.
    let mut newest_old: HashMap<u32, u64> = HashMap::new();
    let fresh = batches
        .iter()
        .find(|b| b.entries.iter().any(|e| e.series.tenant == "fresh"))
        .context("fresh batch")?;
    for batch in &batches {
        if batch.entries.iter().any(|e| e.series.tenant == "spooled") {
            let e = newest_old.entry(batch.partition).or_insert(0);
            *e = (*e).max(batch.seq);
        }
    }
    if let Some(old) = newest_old.get(&fresh.partition) {
        assert!(fresh.seq > *old);
        let position = |seq: u64| {
            batches
                .iter()
                .position(|b| b.partition == fresh.partition && b.seq == seq)
        };
        assert!(
            position(*old) < position(fresh.seq),
            "spooled batches go out first"
        );
    }
    agent.stop().await?;
    Ok(())
}
