//! The HTTP ingest API: `POST /v1/events` (see [`response`] for every answer).
//!
//! - [`body`]: content type and encoding, bounded reading, bounded gzip decompression;
//! - [`handler`]: admission control, validation, dead letters, aggregation, archive;
//! - [`response`]: the answers and their status codes;
//! - [`auth`]: who may send, and the tenant their events must be of.
//!
//! Bodies: one JSON object (the seed's one-event shape), a JSON array of events, or NDJSON
//! (`Content-Type: application/x-ndjson`); optionally `Content-Encoding: gzip`. Limits:
//! `ingest.max_body_bytes` as sent and `ingest.max_decompressed_bytes` after gzip (`413`),
//! `ingest.max_batch_items` items (`413`), `ingest.max_concurrent_requests` at once (`429`),
//! and `503` while the memory budget or the spool is exhausted, both with `Retry-After`.

pub mod admit;
pub mod auth;
pub mod body;
pub mod handler;
pub mod origin;
pub mod response;
pub mod tenant_rate;

pub use auth::{IngestAuth, IngestScope};
pub use handler::Ingest;
pub use origin::Origin;

use axum::routing::post;
use axum::Router;
use std::sync::Arc;

/// The ingest routes (merge the admin routes in beside them).
pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route(handler::ROUTE, post(handler::post_events))
        .with_state(ingest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{InFlightRequests, Shards};
    use crate::config::{AgentConfig, IngestConfig};
    use crate::memory::MemoryBudget;
    use crate::metrics::AgentMetrics;
    use crate::publish::deadletter::{DeadLetters, DlqSettings};
    use crate::publish::pipeline::Outbox;
    use crate::publish::spool::Spool;
    use axum::body::{to_bytes, Body};
    use axum::http::{header, Request, StatusCode};
    use rtdash_shared::messages::DeadLetter;
    use rtdash_shared::metric::MetricSet;
    use rtdash_shared::time::{format_rfc3339, now_millis, UnixMillis};
    use rtdash_shared::wire;
    use serde_json::Value;
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::Semaphore;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt;

    struct Fixture {
        _dir: tempfile::TempDir,
        ingest: Arc<Ingest>,
    }

    fn fixture(config: IngestConfig) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = AgentMetrics::new();
        let shards = Arc::new(Shards::new(2, Arc::new(MetricSet::new([]))));
        let defaults = AgentConfig::default();
        let (spool, _) = Spool::open(
            &dir.path().join("spool"),
            "edge-t",
            1 << 20,
            1 << 30,
            1 << 20,
            metrics.clone(),
        )
        .expect("spool");
        let spool = Arc::new(spool);
        let dlq = Arc::new(
            DeadLetters::open(
                &dir.path().join("dlq"),
                "edge-t",
                DlqSettings {
                    max_raw_bytes: 64,
                    queue_bytes: 1 << 20,
                    spool_max_bytes: 1 << 20,
                },
                metrics.clone(),
            )
            .expect("dlq"),
        );
        let budget = MemoryBudget::new(
            defaults.memory_budget_bytes,
            Arc::clone(&shards),
            Arc::clone(&spool),
            Arc::clone(&dlq),
            None,
        );
        let ingest = Arc::new(Ingest {
            limits: defaults.limits.clone(),
            concurrency: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            config,
            shards,
            dlq,
            archive: None,
            spool,
            budget,
            in_flight: Arc::new(InFlightRequests::default()),
            metrics,
            shutdown: CancellationToken::new(),
            max_raw_bytes: 64,
            auth: IngestAuth::Sidecar {
                tenant: "acme".into(),
            },
            durable: None,
            idempotency: None,
            definitions_loaded: Arc::new(AtomicBool::new(true)),
            tenant_rates: tenant_rate::TenantRates::new(0, None),
            schema: None,
        });
        Fixture { _dir: dir, ingest }
    }

    fn event(extra: &str) -> String {
        format!(
            r#"{{"tenant_id":"acme","source":"svc","event_type":"click","occurred_at":"{}"{extra}}}"#,
            format_rfc3339(now_millis())
        )
    }

    async fn post(
        ingest: &Arc<Ingest>,
        body: impl Into<Body>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, Value) {
        let mut request = Request::post("/v1/events");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router(Arc::clone(ingest))
            .oneshot(request.body(body.into()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, retry, json)
    }

    fn dead_letters(ingest: &Ingest) -> Vec<(String, DeadLetter)> {
        let mut out = Vec::new();
        while let Some(item) = ingest.dlq.next() {
            out.push((
                item.subject.clone(),
                wire::decode::<DeadLetter>(&item.payload).expect("dead letter"),
            ));
        }
        out
    }

    /// The fixture with remembered ids.
    fn idempotent_fixture() -> Fixture {
        let f = fixture(IngestConfig::default());
        let ids = crate::protocols::idempotency::Idempotency::open(
            f._dir.path(),
            600,
            100_000,
            now_millis(),
            f.ingest.metrics.clone(),
        )
        .expect("ids");
        let mut ingest = Arc::try_unwrap(f.ingest)
            .map_err(|_| "shared")
            .expect("unique");
        ingest.idempotency = Some(Arc::new(ids));
        Fixture {
            _dir: f._dir,
            ingest: Arc::new(ingest),
        }
    }

    fn counted(ingest: &Ingest) -> u64 {
        ingest
            .shards
            .drain_all(0)
            .iter()
            .filter(|e| e.series.metric == "events" && e.series.dims.is_empty())
            .map(|e| e.sketch.count())
            .sum()
    }

    #[tokio::test]
    async fn a_retried_request_counts_once_by_event_id_or_idempotency_key() {
        let f = idempotent_fixture();
        // By the events' own ids.
        let batch = format!("[{},{}]", event(r#","id":"e-1""#), event(r#","id":"e-2""#));
        let (status, _, json) = post(&f.ingest, batch.clone(), &[]).await;
        assert_eq!(
            (status, json["accepted"].as_u64()),
            (StatusCode::ACCEPTED, Some(2))
        );
        let (status, _, json) = post(&f.ingest, batch, &[]).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "a retry is acknowledged: {json}"
        );
        assert_eq!(
            (json["accepted"].as_u64(), json["duplicates"].as_u64()),
            (Some(0), Some(2))
        );
        let (_, _, json) = post(&f.ingest, event(r#","id":"e-1""#), &[]).await;
        assert_eq!(json["status"], "duplicate");
        assert_eq!(counted(&f.ingest), 2);

        // By the request's Idempotency-Key: the same key counts once, another key again.
        let plain = format!("[{},{},{}]", event(""), event(""), event(""));
        for (key, accepted, duplicates) in [("k-1", 3, 0), ("k-1", 0, 3), ("k-2", 3, 0)] {
            let (status, _, json) =
                post(&f.ingest, plain.clone(), &[("idempotency-key", key)]).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{key}: {json}");
            assert_eq!(
                (json["accepted"].as_u64(), json["duplicates"].as_u64()),
                (Some(accepted), Some(duplicates)),
                "{key}"
            );
        }
        assert_eq!(counted(&f.ingest), 6);
        let (status, _, _) = post(&f.ingest, plain, &[("idempotency-key", "")]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "an empty key is refused");
    }

    #[tokio::test]
    async fn a_single_event_is_accepted_with_an_id() {
        let f = fixture(IngestConfig::default());
        let (status, _, json) = post(&f.ingest, event(""), &[]).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(json["status"], "accepted");
        let id = json["event_id"].as_str().expect("id");
        assert_eq!(
            uuid::Uuid::parse_str(id).expect("uuid").get_version_num(),
            7
        );
        let (_, _, json) = post(&f.ingest, event(r#","id":"evt-9""#), &[]).await;
        assert_eq!(json["event_id"], "evt-9");
        let total: u64 = f
            .ingest
            .shards
            .drain_all(0)
            .iter()
            .filter(|e| e.series.dims.is_empty())
            .map(|e| e.sketch.count())
            .sum();
        assert_eq!(total, 2, "both events were aggregated");
    }

    #[tokio::test]
    async fn an_event_without_occurred_at_counts_in_the_window_of_its_receipt() {
        let f = fixture(IngestConfig::default());
        let before = now_millis();
        let (status, _, json) = post(
            &f.ingest,
            r#"{"tenant_id":"acme","source":"svc","event_type":"click"}"#,
            &[],
        )
        .await;
        let after = now_millis();
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        let entries: Vec<_> = f
            .ingest
            .shards
            .drain_all(0)
            .into_iter()
            .filter(|e| e.series.dims.is_empty())
            .collect();
        assert_eq!(entries.len(), 1);
        let entry = &entries[0];
        assert_eq!(entry.sketch.count(), 1);
        let window = |at: UnixMillis| at - at.rem_euclid(entry.window_ms);
        assert!(
            (window(before)..=window(after)).contains(&entry.window_start),
            "window {} is not the one of {before}..{after}",
            entry.window_start
        );
        // A present but invalid value is still refused.
        let (status, _, json) = post(&f.ingest, event(r#","occurred_at":"soon""#), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    }

    #[tokio::test]
    async fn a_single_invalid_event_is_400_with_a_code_and_a_dead_letter() {
        let f = fixture(IngestConfig::default());
        let (status, _, json) =
            post(&f.ingest, r#"{"tenant_id":"acme","source":"svc"}"#, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["error"]["code"], "missing_field");
        assert!(json["error"]["message"]
            .as_str()
            .expect("message")
            .contains("event_type"));
        let letters = dead_letters(&f.ingest);
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].0, "rtdash.dlq.acme");
        assert_eq!(letters[0].1.code, "missing_field");
        assert_eq!(letters[0].1.index, None);
    }

    #[tokio::test]
    async fn batches_answer_per_item() {
        let f = fixture(IngestConfig::default());
        let body = format!("[{},{{\"bad\":1}},{}]", event(""), event(""));
        let (status, _, json) = post(&f.ingest, body, &[]).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(json["accepted"], 2);
        assert_eq!(json["rejected"], 1);
        assert_eq!(json["errors"][0]["index"], 1);
        assert_eq!(json["errors"][0]["code"], "unknown_field");
        assert!(json.get("error").is_none());

        let ndjson = format!("{}\n\nnot json\n{}\n", event(""), event(""));
        let (status, _, json) = post(
            &f.ingest,
            ndjson,
            &[("content-type", "application/x-ndjson")],
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(json["accepted"], 2);
        assert_eq!(json["errors"][0]["index"], 1);
        assert_eq!(json["errors"][0]["code"], "malformed_json");
        let letters = dead_letters(&f.ingest);
        assert_eq!(letters.len(), 2);
        assert_eq!(letters[1].0, "rtdash.dlq._unknown");
        assert_eq!(letters[1].1.raw, "not json");
        assert_eq!(letters[1].1.index, Some(1));
    }

    #[tokio::test]
    async fn an_all_rejected_batch_is_400_with_the_item_list() {
        let f = fixture(IngestConfig::default());
        let (status, _, json) = post(&f.ingest, "[1, {\"tenant_id\": 5}]", &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["accepted"], 0);
        assert_eq!(json["rejected"], 2);
        assert_eq!(json["errors"][0]["code"], "not_an_object");
        assert_eq!(json["errors"][1]["code"], "wrong_type");
        assert_eq!(json["error"]["code"], "all_rejected");
    }

    #[tokio::test]
    async fn whole_body_problems() {
        let f = fixture(IngestConfig {
            max_body_bytes: 1000,
            max_decompressed_bytes: 2000,
            max_batch_items: 3,
            ..IngestConfig::default()
        });
        type Case = (
            Vec<u8>,
            Vec<(&'static str, &'static str)>,
            StatusCode,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (b"".to_vec(), vec![], StatusCode::BAD_REQUEST, "empty_body"),
            (
                b"[{\"a\":1},".to_vec(),
                vec![],
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                // An array is split without decoding; its non-UTF-8 item is rejected on its own.
                b"[\"\xff\"]".to_vec(),
                vec![],
                StatusCode::BAD_REQUEST,
                "all_rejected",
            ),
            (
                b"{\"tenant_id\":\"\xff\"}".to_vec(),
                vec![],
                StatusCode::BAD_REQUEST,
                "invalid_utf8",
            ),
            (
                vec![b' '; 1001],
                vec![],
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
            ),
            (
                b"[1,2,3,4]".to_vec(),
                vec![],
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
            ),
            (
                b"xx".to_vec(),
                vec![("content-encoding", "br")],
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
            ),
            (
                b"not gzip".to_vec(),
                vec![("content-encoding", "gzip")],
                StatusCode::BAD_REQUEST,
                "invalid_encoding",
            ),
            (
                gzip(&vec![b' '; 3000]),
                vec![("content-encoding", "gzip")],
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
            ),
        ];
        for (body, headers, expected_status, expected_code) in cases {
            let (status, _, json) = post(&f.ingest, body, &headers).await;
            assert_eq!(status, expected_status, "{expected_code}: {json}");
            assert_eq!(json["error"]["code"], expected_code);
        }
        let letters = dead_letters(&f.ingest);
        assert_eq!(letters.len(), 9, "every rejected body is a dead letter");
        assert!(letters
            .iter()
            .all(|(subject, _)| subject == "rtdash.dlq._unknown"));
        let too_large = &letters[4].1;
        assert_eq!(too_large.raw.len(), 64);
        assert!(too_large.truncated);
        assert!(!letters[2].1.raw_is_utf8);
        // Still serving.
        let (status, _, _) = post(&f.ingest, event(""), &[]).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn gzip_bodies_are_accepted() {
        let f = fixture(IngestConfig::default());
        let body = gzip(format!("{}\n{}", event(""), event("")).as_bytes());
        let (status, _, json) = post(
            &f.ingest,
            body,
            &[
                ("content-encoding", "gzip"),
                ("content-type", "application/x-ndjson"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        assert_eq!(json["accepted"], 2);
    }

    #[tokio::test]
    async fn overload_answers_carry_retry_after() {
        let f = fixture(IngestConfig {
            max_concurrent_requests: 1,
            ..IngestConfig::default()
        });
        let _held = Arc::clone(&f.ingest.concurrency)
            .try_acquire_owned()
            .expect("permit");
        let (status, retry, json) = post(&f.ingest, event(""), &[]).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(json["error"]["code"], "too_many_requests");
        drop(_held);

        f.ingest.shutdown.cancel();
        let (status, retry, json) = post(&f.ingest, event(""), &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(json["error"]["code"], "shutting_down");
    }

    #[tokio::test]
    async fn the_budget_counts_the_allocator_figure_when_there_is_one() {
        use crate::memory::AllocatorStats;
        let f = fixture(IngestConfig::default());
        let limit = f.ingest.budget.limit;
        let over = MemoryBudget::new(
            limit,
            Arc::clone(&f.ingest.shards),
            Arc::clone(&f.ingest.spool),
            Arc::clone(&f.ingest.dlq),
            None,
        )
        .with_allocator(Some(AllocatorStats::fixed(limit)));
        assert!(over.exhausted(), "allocated bytes at the limit");
        assert_eq!(over.estimates().aggregation, 0, "the estimates see nothing");
        let under = MemoryBudget::new(
            limit,
            Arc::clone(&f.ingest.shards),
            Arc::clone(&f.ingest.spool),
            Arc::clone(&f.ingest.dlq),
            None,
        )
        .with_allocator(Some(AllocatorStats::fixed(limit / 2)));
        assert!(!under.exhausted());
        assert_eq!(under.used(), limit / 2);

        let ingest = Arc::new(Ingest {
            limits: f.ingest.limits.clone(),
            config: f.ingest.config.clone(),
            shards: Arc::clone(&f.ingest.shards),
            dlq: Arc::clone(&f.ingest.dlq),
            archive: None,
            spool: Arc::clone(&f.ingest.spool),
            budget: over,
            in_flight: Arc::clone(&f.ingest.in_flight),
            concurrency: Arc::clone(&f.ingest.concurrency),
            metrics: f.ingest.metrics.clone(),
            shutdown: CancellationToken::new(),
            max_raw_bytes: 64,
            auth: IngestAuth::Sidecar {
                tenant: "acme".into(),
            },
            durable: None,
            idempotency: None,
            definitions_loaded: Arc::new(AtomicBool::new(true)),
            tenant_rates: tenant_rate::TenantRates::new(0, None),
            schema: None,
        });
        let (status, retry, json) = post(&ingest, event(""), &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(json["error"]["code"], "memory_budget_exceeded");
    }

    #[tokio::test]
    async fn until_the_definitions_are_loaded_ingest_answers_503_and_counts_nothing() {
        let f = fixture(IngestConfig::default());
        f.ingest.definitions_loaded.store(false, Ordering::Release);
        for body in [event(""), format!("[{},{}]", event(""), event(""))] {
            let (status, retry, json) = post(&f.ingest, body, &[]).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
            assert_eq!(retry.as_deref(), Some("1"));
            assert_eq!(json["error"]["code"], "definitions_not_loaded");
        }
        // Nothing of the refused requests reached a shard.
        assert!(f.ingest.shards.drain_all(0).is_empty());
        let admission = f.ingest.admission().expect("refused");
        assert_eq!(admission.status(), StatusCode::SERVICE_UNAVAILABLE);

        f.ingest.definitions_loaded.store(true, Ordering::Release);
        assert!(f.ingest.admission().is_none());
        let (status, retry, json) = post(&f.ingest, event(""), &[]).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        assert_eq!(retry, None);
        assert!(!f.ingest.shards.drain_all(0).is_empty());
    }

    #[tokio::test]
    async fn a_sidecar_takes_its_tenant_and_rejects_others_per_item() {
        let f = fixture(IngestConfig::default());
        let now = format_rfc3339(now_millis());
        let unnamed = format!(r#"{{"source":"s","event_type":"e","occurred_at":"{now}"}}"#);
        let other = event("").replace("acme", "globex");
        let body = format!("[{unnamed},{other},{}]", event(""));
        let (status, _, json) = post(&f.ingest, body, &[]).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        assert_eq!(json["accepted"], 2, "{json}");
        assert_eq!(json["errors"][0]["index"], 1);
        assert_eq!(json["errors"][0]["code"], "tenant_mismatch");
        let letters = dead_letters(&f.ingest);
        assert_eq!(letters.len(), 1);
        assert_eq!(
            letters[0].0, "rtdash.dlq.acme",
            "never into the other tenant's dead letters"
        );
        assert_eq!(letters[0].1.code, "tenant_mismatch");
        let tenants: Vec<String> = f
            .ingest
            .shards
            .drain_all(0)
            .iter()
            .map(|e| e.series.tenant.to_string())
            .collect();
        assert!(
            !tenants.is_empty() && tenants.iter().all(|t| t == "acme"),
            "{tenants:?}"
        );
    }

    #[tokio::test]
    async fn large_bodies_are_processed_off_the_async_workers() {
        let f = fixture(IngestConfig {
            blocking_threshold_bytes: 100,
            ..IngestConfig::default()
        });
        let body = format!("[{}]", vec![event(""); 10].join(","));
        let (status, _, json) = post(&f.ingest, body, &[]).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(json["accepted"], 10);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("write");
        encoder.finish().expect("finish")
    }
}
