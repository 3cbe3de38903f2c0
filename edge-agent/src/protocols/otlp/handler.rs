//! `POST /v1/logs` as the OTLP/HTTP specification defines it: the request and the answer in
//! one encoding, binary protobuf (`application/x-protobuf`) or OTLP/JSON
//! (`application/json`: lowerCamelCase fields, hex trace and span ids, enums as integers,
//! 64-bit integers as strings), optionally gzip.
//!
//! | case | status | body (the request's encoding) |
//! |---|---|---|
//! | records taken, some rejected | `200` | `ExportLogsServiceResponse` with `partial_success {rejected_log_records, error_message}` |
//! | every record taken | `200` | `ExportLogsServiceResponse` without `partial_success` |
//! | undecodable body | `400` | `google.rpc.Status` |
//! | no tenant configured | `403` | `google.rpc.Status` |
//! | body too large | `413` | `google.rpc.Status` |
//! | other content type | `415` | `google.rpc.Status` (JSON) |
//! | overload, shutting down | `429` / `503` + `Retry-After` | `google.rpc.Status` |
//!
//! OTLP exporters retry `429`, `502`, `503`, `504` (waiting `Retry-After`) and drop on other
//! errors; a record rejected in a `200` is never retried, as the specification says.

use super::mapping::{self, add_attributes, source_of, Context, MISSING_EVENT_NAME};
use super::Otlp;
use crate::ingest::admit::{admit, run_sized};
use crate::ingest::handler::idempotency_key;
use crate::ingest::response::Reply;
use crate::ingest::Origin;
use crate::protocols::tenant::{client_ip, Credential};
use crate::publish::deadletter::Rejected;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;
use rtdash_shared::time::{now_millis, UnixMillis};
use serde_json::Map;
use std::net::IpAddr;
use std::sync::Arc;

/// The encodings OTLP/HTTP defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn of(headers: &HeaderMap) -> Option<Self> {
        let media = headers
            .get(header::CONTENT_TYPE)?
            .to_str()
            .ok()?
            .split(';')
            .next()?
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" => Some(Self::Protobuf),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers (not an OTLP message, so not in
/// `opentelemetry-proto`).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn encoded<T: Message + serde::Serialize>(
    status: StatusCode,
    encoding: Encoding,
    message: &T,
    retry_after: Option<u64>,
) -> Response {
    let bytes = match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(message).unwrap_or_default(),
    };
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    if let Some(secs) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A refusal as `google.rpc.Status` (gRPC codes: 3 invalid argument, 7 permission denied,
/// 8 resource exhausted, 14 unavailable, 13 internal).
fn failure(encoding: Encoding, reply: Reply) -> Response {
    let (status, message, retry_after) = match reply {
        Reply::Error {
            status,
            code,
            message,
            retry_after,
        } => (status, format!("{code}: {message}"), retry_after),
        other => (other.status(), "unexpected answer".to_owned(), None),
    };
    let code = match status {
        StatusCode::FORBIDDEN => 7,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::PAYLOAD_TOO_LARGE => 8,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        s if s.is_client_error() => 3,
        _ => 13,
    };
    encoded(status, encoding, &RpcStatus { code, message }, retry_after)
}

/// `POST /v1/logs`.
pub async fn post_logs(
    State(otlp): State<Arc<Otlp>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip = client_ip(&extensions);
    let received_at = now_millis();
    let ingest = &otlp.ingest;
    ingest.metrics.protocol_request("otlp");
    let Some(encoding) = Encoding::of(&headers) else {
        return failure(
            Encoding::Json,
            Reply::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send application/x-protobuf or application/json",
            ),
        );
    };
    let key = match idempotency_key(&headers) {
        Ok(key) => key,
        Err(reply) => return failure(encoding, reply),
    };
    let credential = crate::ingest::auth::presented(&headers).map(str::to_owned);
    let admitted = match admit(
        ingest,
        &headers,
        body,
        received_at,
        ingest.config.max_body_bytes,
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(reply) => return failure(encoding, reply),
    };
    let body = admitted.body.clone();
    let worker = Arc::clone(&otlp);
    let reply = run_sized(ingest, body.len(), move || {
        worker.process(
            &body,
            encoding,
            key.as_deref(),
            credential.as_deref(),
            ip,
            received_at,
        )
    })
    .await;
    drop(admitted);
    match reply {
        Reply::Batch {
            accepted: _,
            duplicates: _,
            errors,
        } => {
            let partial_success = (!errors.is_empty()).then(|| ExportLogsPartialSuccess {
                rejected_log_records: errors.len() as i64,
                error_message: summary(&errors),
            });
            encoded(
                StatusCode::OK,
                encoding,
                &ExportLogsServiceResponse { partial_success },
                None,
            )
        }
        other => failure(encoding, other),
    }
}

/// The first rejections, for `error_message`.
fn summary(errors: &[crate::ingest::response::ItemError]) -> String {
    let mut text = format!("{} log records rejected", errors.len());
    for error in errors.iter().take(3) {
        text.push_str(&format!(
            "; record {}: {}: {}",
            error.index, error.code, error.message
        ));
    }
    text
}

impl Otlp {
    /// Decodes, maps and submits a request body.
    fn process(
        &self,
        body: &[u8],
        encoding: Encoding,
        key: Option<&str>,
        credential: Option<&str>,
        ip: IpAddr,
        received_at: UnixMillis,
    ) -> Reply {
        let ingest = &self.ingest;
        let request = match encoding {
            Encoding::Protobuf => {
                ExportLogsServiceRequest::decode(body).map_err(|err| err.to_string())
            }
            Encoding::Json => serde_json::from_slice::<ExportLogsServiceRequest>(body)
                .map_err(|err| err.to_string()),
        };
        let request = match request {
            Ok(request) => request,
            Err(problem) => {
                return ingest.reject_body(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("the body is not an OTLP ExportLogsServiceRequest: {problem}"),
                    body,
                    received_at,
                )
            }
        };
        let credential = credential.map_or(Credential::None, Credential::ApiKey);
        let tenant = match self.tenants.resolve(credential, &ingest.auth, ip) {
            Ok(tenant) => tenant,
            Err(err) => return err.reply("unauthorized"),
        };
        let tenant = tenant.as_str();
        let mut ndjson = Vec::with_capacity(body.len() * 2);
        let mut lines: Vec<usize> = Vec::new();
        let mut errors = Vec::new();
        let mut index = 0usize;
        for resource_logs in &request.resource_logs {
            let resource = resource_logs
                .resource
                .as_ref()
                .map_or(&[][..], |r| &r.attributes[..]);
            for scope_logs in &resource_logs.scope_logs {
                let mut shared = Map::new();
                add_attributes(&mut shared, resource);
                if let Some(scope) = &scope_logs.scope {
                    add_attributes(&mut shared, &scope.attributes);
                }
                let context = Context {
                    tenant,
                    shared,
                    source: source_of(resource, &self.config.default_source),
                    default_event_type: self.config.default_event_type.as_deref(),
                    received_at,
                };
                for record in &scope_logs.log_records {
                    match mapping::to_event(record, &context) {
                        Ok(event) => {
                            if serde_json::to_writer(&mut ndjson, &event).is_ok() {
                                ndjson.push(b'\n');
                                lines.push(index);
                            }
                        }
                        Err(message) => errors.push(crate::ingest::response::ItemError {
                            index,
                            code: MISSING_EVENT_NAME,
                            message,
                        }),
                    }
                    index += 1;
                }
            }
        }
        if !errors.is_empty() {
            // The record as OTLP/JSON, for the dead letter.
            let raws: Vec<Vec<u8>> = errors
                .iter()
                .map(|e| record_json(&request, e.index))
                .collect();
            ingest
                .dlq
                .submit_all(errors.iter().zip(&raws).map(|(error, raw)| Rejected {
                    tenant: Some(tenant),
                    code: error.code,
                    message: &error.message,
                    input: raw,
                    index: Some(error.index),
                    received_at,
                }));
            ingest
                .metrics
                .rejected(MISSING_EVENT_NAME, errors.len() as u64);
            ingest
                .metrics
                .protocol_events("otlp", 0, errors.len() as u64, 0);
        }
        let (accepted, duplicates) = if lines.is_empty() {
            (0, 0)
        } else {
            let origin = Origin {
                protocol: "otlp",
                idempotency_key: key,
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
                other => return other,
            }
        };
        errors.sort_by_key(|e| e.index);
        Reply::Batch {
            accepted,
            duplicates,
            errors,
        }
    }
}

/// The `index`-th record of `request` as OTLP/JSON.
fn record_json(request: &ExportLogsServiceRequest, index: usize) -> Vec<u8> {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .nth(index)
        .and_then(|record| serde_json::to_vec(record).ok())
        .unwrap_or_default()
}
