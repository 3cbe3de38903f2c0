//! The Segment routes: admission and body as for `POST /v1/events`, then the write key, the
//! tenant, one event per message, and an answer the SDKs understand.
//!
//! | case | status | body |
//! |---|---|---|
//! | messages taken (some may be rejected) | `200` | `{"success": true, "accepted", "duplicates", "rejected", "errors": [{"index", "code", "message"}]}` |
//! | every message rejected | `400` | the same with `"success": false, "code": "all_rejected"` |
//! | not JSON, not a batch | `400` | `{"success": false, "code", "message"}` |
//! | no write key | `401` | (`missing_credentials`) |
//! | a write key not in `segment.write_keys` (when set) | `401` | (`invalid_credentials`) |
//! | no tenant configured | `403` | (`no_tenant`) |
//! | call or batch too large | `413` | (`body_too_large`, `message_too_large`) |
//! | overload, shutting down | `429` / `503` + `Retry-After` | as `POST /v1/events` |
//!
//! The SDKs retry `429` and `5xx` with backoff (honouring `Retry-After`) and drop a batch on
//! other `4xx`, so an answer of `400` means "do not send this again".

use super::message::{to_event, Call, Kind};
use super::Segment;
use crate::ingest::admit::{admit, run_sized};
use crate::ingest::response::{ItemError, Reply};
use crate::ingest::Origin;
use crate::protocols::tenant::{basic_user, client_ip, Credential};
use crate::publish::deadletter::Rejected;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rtdash_shared::time::{now_millis, parse_rfc3339, UnixMillis};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// A `/v1/batch` body.
#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
    #[serde(rename = "sentAt", default)]
    sent_at: Option<String>,
    #[serde(rename = "writeKey", default)]
    write_key: Option<String>,
}

/// An answer in Segment's shape.
fn answer(status: StatusCode, body: Value, retry_after: Option<u64>) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    answer(
        status,
        json!({"success": false, "code": code, "message": message}),
        None,
    )
}

/// An `/v1/events` refusal (admission, body) in Segment's shape.
fn refusal(reply: Reply) -> Response {
    match reply {
        Reply::Error {
            status,
            code,
            message,
            retry_after,
        } => answer(
            status,
            json!({"success": false, "code": code, "message": message}),
            retry_after,
        ),
        other => failure(other.status(), "internal", "unexpected answer"),
    }
}

/// `POST /v1/batch`.
pub async fn post_batch(
    State(segment): State<Arc<Segment>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(segment, client_ip(&extensions), headers, body, None).await
}

/// `POST /v1/{track,identify,page,screen,group,alias}`: one message of the route's type.
pub async fn post_single(
    State((segment, kind)): State<(Arc<Segment>, Kind)>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(segment, client_ip(&extensions), headers, body, Some(kind)).await
}

async fn receive(
    segment: Arc<Segment>,
    ip: IpAddr,
    headers: HeaderMap,
    body: Body,
    kind: Option<Kind>,
) -> Response {
    let received_at = now_millis();
    let ingest = &segment.ingest;
    ingest.metrics.protocol_request("segment");
    let limit = segment.config.max_batch_bytes;
    let admitted = match admit(ingest, &headers, body, received_at, limit).await {
        Ok(admitted) => admitted,
        Err(reply) => return refusal(reply),
    };
    let body = admitted.body.clone();
    if body.len() as u64 > limit {
        let reply = ingest.reject_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the decompressed batch exceeds the limit of {limit} bytes"),
            &body,
            received_at,
        );
        return refusal(reply);
    }
    let header_key = basic_user(&headers);
    let worker = Arc::clone(&segment);
    let reply = run_sized(ingest, body.len(), move || {
        match worker.process(&body, kind, header_key.as_deref(), ip, received_at) {
            Ok(reply) => reply,
            Err(refused) => refused,
        }
    })
    .await;
    drop(admitted);
    respond(reply)
}

/// The answer to a processed call.
fn respond(reply: Reply) -> Response {
    match reply {
        Reply::Batch {
            accepted,
            duplicates,
            errors,
        } => {
            let taken = accepted + duplicates > 0 || errors.is_empty();
            let mut body = json!({
                "success": taken,
                "accepted": accepted,
                "duplicates": duplicates,
                "rejected": errors.len(),
                "errors": errors,
            });
            if !taken {
                body["code"] = json!("all_rejected");
                body["message"] = json!("every message was rejected; see `errors`");
            }
            let status = if taken {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            answer(status, body, None)
        }
        other => refusal(other),
    }
}

impl Segment {
    /// Maps and submits the messages of a decoded body: `Ok` with the per-message outcome,
    /// `Err` with a whole-call refusal.
    fn process(
        &self,
        body: &[u8],
        kind: Option<Kind>,
        header_key: Option<&str>,
        ip: IpAddr,
        received_at: UnixMillis,
    ) -> Result<Reply, Reply> {
        let ingest = &self.ingest;
        let malformed = |message: String| {
            ingest.reject_body(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                message,
                body,
                received_at,
            )
        };
        // (raw message, parsed), the batch's sentAt, the body's writeKey.
        let (messages, sent_at, body_key): (Vec<&[u8]>, Option<String>, Option<String>) = match kind
        {
            None => {
                let batch: BatchBody<'_> = serde_json::from_slice(body)
                    .map_err(|err| malformed(format!("the body is not a Segment batch: {err}")))?;
                let raws = batch.batch.iter().map(|raw| raw.get().as_bytes()).collect();
                (raws, batch.sent_at, batch.write_key)
            }
            Some(_) => {
                let value: Value = serde_json::from_slice(body)
                    .map_err(|err| malformed(format!("the body is not JSON: {err}")))?;
                let key = value
                    .get("writeKey")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if body.len() as u64 > self.config.max_message_bytes {
                    return Err(ingest.reject_body(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "message_too_large",
                        format!(
                            "the message exceeds the limit of {} bytes",
                            self.config.max_message_bytes
                        ),
                        body,
                        received_at,
                    ));
                }
                (vec![body], None, key)
            }
        };
        let key = header_key.or(body_key.as_deref()).filter(|k| !k.is_empty());
        let credential = key.map_or(Credential::None, Credential::WriteKey);
        let tenant = match self.tenants.resolve(credential, &ingest.auth, ip) {
            Ok(tenant) => tenant,
            Err(err) => return Err(err.reply("invalid_credentials")),
        };
        let tenant = tenant.as_str();
        let call = Call {
            tenant,
            source: self.config.source.as_deref(),
            received_at,
            sent_at: sent_at.as_deref().and_then(parse_rfc3339),
        };
        let mut ndjson = Vec::with_capacity(body.len());
        // Message index of each NDJSON line.
        let mut lines: Vec<usize> = Vec::with_capacity(messages.len());
        let mut errors: Vec<ItemError> = Vec::new();
        let mut dead = Vec::new();
        for (index, raw) in messages.iter().enumerate() {
            let mapped = if raw.len() as u64 > self.config.max_message_bytes {
                Err(super::message::Unmapped {
                    code: "message_too_large",
                    message: format!(
                        "the message exceeds the limit of {} bytes",
                        self.config.max_message_bytes
                    ),
                })
            } else {
                serde_json::from_slice::<Value>(raw)
                    .map_err(|err| super::message::Unmapped {
                        code: "malformed_json",
                        message: err.to_string(),
                    })
                    .and_then(|message| to_event(&message, kind, &call))
            };
            match mapped {
                Ok(event) => {
                    if serde_json::to_writer(&mut ndjson, &event).is_ok() {
                        ndjson.push(b'\n');
                        lines.push(index);
                    }
                }
                Err(unmapped) => {
                    dead.push((index, unmapped.code, unmapped.message.clone()));
                    errors.push(ItemError {
                        index,
                        code: unmapped.code,
                        message: unmapped.message,
                    });
                }
            }
        }
        if !dead.is_empty() {
            ingest
                .dlq
                .submit_all(dead.iter().map(|(index, code, message)| Rejected {
                    tenant: Some(tenant),
                    code,
                    message,
                    input: messages[*index],
                    index: Some(*index),
                    received_at,
                }));
            for (_, code, _) in &dead {
                ingest.metrics.rejected(code, 1);
            }
            ingest
                .metrics
                .protocol_events("segment", 0, dead.len() as u64, 0);
        }
        let (accepted, duplicates) = if lines.is_empty() {
            (0, 0)
        } else {
            let origin = Origin {
                protocol: "segment",
                idempotency_key: None,
                // The tenant comes from the entry point's credentials or configuration
                // (see `protocols::tenant`); every event of the batch names it.
                tenant: None,
            };
            match ingest.process_as(&ndjson, true, received_at, &origin) {
                Reply::Batch {
                    accepted,
                    duplicates,
                    errors: rejected,
                } => {
                    errors.extend(rejected.into_iter().map(|mut error| {
                        error.index = lines.get(error.index).copied().unwrap_or(error.index);
                        error
                    }));
                    (accepted, duplicates)
                }
                other => return Err(other),
            }
        };
        errors.sort_by_key(|e| e.index);
        Ok(Reply::Batch {
            accepted,
            duplicates,
            errors,
        })
    }
}
