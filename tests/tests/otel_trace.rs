//! OpenTelemetry traces across the pipeline, on real services: with
//! `RTDASH_TELEMETRY__OTLP_ENDPOINT` pointing at a minimal OTLP/HTTP collector run by this test
//! (axum on loopback, `POST /v1/traces`, protobuf decoded with `opentelemetry-proto`), events
//! posted to the real `edge-agent` produce one trace that holds
//!
//! - the agent's `edge.flush` span (the root: the batch's trace starts at the flush),
//! - the aggregator's `core.apply_batch` span, a child of `edge.flush` through the
//!   `traceparent` header of the JetStream message, then `core.emit` and
//!   `core.questdb_write` (the QuestDB write of the window versions),
//! - the gateway's `gateway.live_fanout` span, a child of `core.emit` through the
//!   `traceparent` header of the live update on core NATS, while an SSE viewer watches,
//!
//! each under its own `service.name`. The services then stop gracefully (exit status 0),
//! flushing their exporters.
//!
//! Needs the service binaries: `cargo build --workspace --bins` first. About 15 s.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use rtdash_tests::blocking;
use rtdash_tests::client::{http_client, Api};
use rtdash_tests::events::event_json;
use rtdash_tests::sse::{stream_url, Sse};
use rtdash_tests::stack::{Stack, StackOptions};
use rtdash_tests::time::now_millis;
use serde_json::{json, Value};

/// Longest wait for anything the pipeline does.
const PATIENCE: Duration = Duration::from_secs(30);
const TENANT: &str = "traced";

/// One span as the collector received it.
#[derive(Clone, Debug)]
struct SpanRecord {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

type Received = Arc<Mutex<Vec<SpanRecord>>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /v1/traces`: an OTLP/HTTP protobuf export request.
async fn collect(State(received): State<Received>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut spans = received.lock().expect("collector lock");
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|resource| resource.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(|value| match value {
                any_value::Value::StringValue(name) => name.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push(SpanRecord {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                });
            }
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

/// Starts the collector on a free loopback port; returns its `/v1/traces` URL.
async fn start_collector(received: Received) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/v1/traces", post(collect))
        .with_state(received);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/v1/traces"))
}

/// A trace holding the whole chain, one span of each step: the edge agent's root
/// `edge.flush`, a `core.apply_batch` child of it, a `core.emit` child of that, and a
/// `core.questdb_write` and a `gateway.live_fanout` child of one of the chain's emits (each
/// partition applies and emits its own batch of the flush; one QuestDB write may carry rows of
/// several partitions).
fn complete_trace(spans: &[SpanRecord]) -> Option<Vec<SpanRecord>> {
    let mut traces: BTreeMap<&str, Vec<&SpanRecord>> = BTreeMap::new();
    for span in spans {
        traces.entry(span.trace_id.as_str()).or_default().push(span);
    }
    for trace in traces.values() {
        let named = |service: &str, name: &str| -> Vec<&SpanRecord> {
            trace
                .iter()
                .copied()
                .filter(|s| s.service == service && s.name == name)
                .collect()
        };
        let children = |spans: Vec<&SpanRecord>, parents: &[&SpanRecord]| -> Vec<SpanRecord> {
            spans
                .into_iter()
                .filter(|s| parents.iter().any(|p| p.span_id == s.parent_span_id))
                .cloned()
                .collect()
        };
        for flush in named("edge-agent", "edge.flush") {
            if !flush.parent_span_id.is_empty() {
                continue;
            }
            let applies = children(named("core-aggregator", "core.apply_batch"), &[flush]);
            let apply_refs: Vec<&SpanRecord> = applies.iter().collect();
            let emits = children(named("core-aggregator", "core.emit"), &apply_refs);
            let emit_refs: Vec<&SpanRecord> = emits.iter().collect();
            let writes = children(named("core-aggregator", "core.questdb_write"), &emit_refs);
            let fanouts = children(named("gateway", "gateway.live_fanout"), &emit_refs);
            if let (Some(emit), Some(write), Some(fanout)) =
                (emits.first(), writes.first(), fanouts.first())
            {
                let apply = applies
                    .iter()
                    .find(|a| a.span_id == emit.parent_span_id)
                    .expect("the emit's parent is one of the applies");
                return Some(vec![
                    flush.clone(),
                    apply.clone(),
                    emit.clone(),
                    write.clone(),
                    fanout.clone(),
                ]);
            }
        }
    }
    None
}

async fn scenario(stack: &Stack, received: &Received) -> anyhow::Result<()> {
    let http = http_client(None);
    let gateway = Api::new(http.clone(), stack.gateway_url());

    // A viewer of the built-in `events` metric, so the gateway subscribes to its live updates.
    let body = json!({
        "tenant_id": TENANT,
        "name": "traced",
        "widgets": [{
            "metric_name": "events",
            "dimensions": {},
            "stat": "count",
            "time_window": "last_15m",
            "viz_type": "line_chart",
        }],
    });
    let (status, dashboard) = gateway
        .post_json("/v1/dashboards", &body)
        .await
        .context("create dashboard")?;
    ensure!(status == 201, "create dashboard: {status}");
    let dashboard_id = dashboard["dashboard_id"].as_str().unwrap_or_default();
    let mut stream = Sse::open(
        &http,
        &stream_url(&gateway.base, TENANT, dashboard_id),
        None,
    )
    .await?;
    // The snapshot comes after the upstream subscription is in place.
    stream
        .next_named("snapshot", PATIENCE)
        .await
        .ok_or_else(|| anyhow!("no snapshot on the stream (or it ended)"))?;

    let now = now_millis();
    let events: Vec<Value> = (0..5)
        .map(|i| event_json(TENANT, "web", "page_view", json!({"n": i}), now - i))
        .collect();
    let (status, _) = Api::new(http.clone(), stack.agent_url())
        .post_json("/v1/events", &json!(events))
        .await?;
    ensure!(status == 202, "ingest answered {status}");

    // Keep reading the stream (the viewer gets the update) while the spans arrive.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut got_update = false;
    let trace = loop {
        let found = complete_trace(&received.lock().expect("collector lock"));
        if let Some(trace) = found {
            break trace;
        }
        if tokio::time::Instant::now() >= deadline {
            let spans = received.lock().expect("collector lock");
            let names: Vec<String> = spans
                .iter()
                .map(|s| {
                    format!(
                        "{}/{} trace {} span {} parent {:?}",
                        s.service, s.name, s.trace_id, s.span_id, s.parent_span_id
                    )
                })
                .collect();
            return Err(anyhow!(
                "no trace holds the whole chain; received {} spans:\n{}",
                names.len(),
                names.join("\n")
            ));
        }
        if let Some(event) = stream.next(Duration::from_millis(100)).await {
            got_update |= event.event == "update";
        }
    };
    // The viewer got the update the fan-out span covers.
    while !got_update {
        let event = stream
            .next_until(Some(deadline))
            .await
            .ok_or_else(|| anyhow!("no update on the stream (or it ended)"))?;
        got_update = event.event == "update";
    }
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for span in received.lock().expect("collector lock").iter() {
        *names
            .entry(format!("{}/{}", span.service, span.name))
            .or_default() += 1;
    }
    eprintln!("otel_trace: spans received: {names:?}");
    eprintln!(
        "otel_trace: trace {}: {}",
        trace[0].trace_id,
        trace
            .iter()
            .map(|s| format!("{}/{} {}", s.service, s.name, s.span_id))
            .collect::<Vec<_>>()
            .join(" -> ")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_is_traced_from_edge_ingest_to_questdb_and_sse() {
    let started = Instant::now();
    let received: Received = Arc::default();
    let endpoint = start_collector(Arc::clone(&received))
        .await
        .expect("start the collector");
    let options = StackOptions::default()
        .env("RTDASH_TELEMETRY__OTLP_ENDPOINT", &endpoint)
        // Export every 200 ms rather than every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", 200);
    let mut stack = blocking(move || Stack::start(options))
        .await
        .unwrap_or_else(|err| panic!("stack did not start: {err:#}"));
    if let Err(err) = scenario(&stack, &received).await {
        panic!("{err:#}\n\nservice logs:\n{}", stack.logs(40));
    }
    blocking(move || stack.stop())
        .await
        .unwrap_or_else(|err| panic!("graceful stop: {err:#}"));
    eprintln!("otel_trace: passed in {:?}", started.elapsed());
}
