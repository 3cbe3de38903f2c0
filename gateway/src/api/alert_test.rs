//! `POST /v1/alerts/{id}/test`: sends one test notification for a rule to its webhook, through
//! the notifier's webhook client (`rtdash_runtime::egress::webhook`: the destination policy
//! `webhook_allow_destinations` checked before the request and again on every address the
//! name resolves to, redirects not followed), and answers how it went: the HTTP status or
//! the class of error, never the receiver's body. The attempt is recorded in the rule's
//! history (`kind: "test"`) when the alert log accepts it.
//!
//! One attempt, no retry; at most [`MAX_CONCURRENT`] test requests in flight in the process
//! (`429` beyond), each within [`TIMEOUT`].

use super::{ApiQuery, TenantQuery};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::model::new_id;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use rtdash_runtime::egress::guard::Guard;
use rtdash_runtime::egress::webhook::{PostError, WebhookClient};
use rtdash_runtime::egress::Allowlist;
use rtdash_shared::alert::{AlertLogKind, AlertLogRecord, AlertRule, AlertState, DeliveryOutcome};
use rtdash_shared::auth::Role;
use rtdash_shared::names;
use rtdash_shared::time::{format_rfc3339, now_millis};
use serde::Serialize;
use serde_json::json;
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use utoipa::ToSchema;

/// How long one test request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Test requests in flight at once in this process.
pub const MAX_CONCURRENT: usize = 8;

static IN_FLIGHT: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(MAX_CONCURRENT));

/// How a test notification went.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestOutcome {
    /// The rule.
    pub alert_id: String,
    /// The test's id (the request's `Idempotency-Key`).
    pub test_id: String,
    /// `delivered` (a 2xx answer) or `failed`.
    pub outcome: DeliveryOutcome,
    /// The webhook's HTTP status, when it answered.
    #[schema(required = true)]
    pub http_status: Option<u16>,
    /// Why there was no answer: `refused` (the destination policy), `timeout`, `connect`,
    /// `request`, `bad_url`; `http_status` for a non-2xx answer; null when delivered.
    #[schema(required = true)]
    pub error_class: Option<String>,
    /// The error, without the receiver's body or the webhook's path.
    #[schema(required = true)]
    pub error: Option<String>,
    /// Duration of the request.
    pub duration_ms: u64,
    /// When it was sent (RFC 3339).
    pub at: String,
    /// Whether the attempt was written to the rule's history.
    pub recorded: bool,
}

/// The test body: Alertmanager's webhook format, as the notifier sends, with
/// `status: "firing"`, the label `test: "true"` and a `[TEST]` text.
fn body(rule: &AlertRule, test_id: &str, at: i64) -> serde_json::Value {
    let alertname = rule.labels.get("alertname").cloned().unwrap_or_else(|| {
        if rule.name.is_empty() {
            rule.id.clone()
        } else {
            rule.name.clone()
        }
    });
    let mut labels = rule.labels.clone();
    labels.insert("alertname".to_owned(), alertname.clone());
    labels.insert("tenant".to_owned(), rule.tenant_id.clone());
    labels.insert("metric".to_owned(), rule.metric_name.clone());
    labels.insert("rule_id".to_owned(), rule.id.clone());
    labels.insert("test".to_owned(), "true".to_owned());
    let summary = format!("{alertname}: test notification from rtdash (no alert is firing)");
    let annotations = json!({"summary": summary, "description": rule.description});
    json!({
        "version": "4",
        "groupKey": format!("rtdash/{}/{}:test-{test_id}", rule.tenant_id, rule.id),
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": rule.labels.get("receiver").cloned().unwrap_or_else(|| "rtdash".to_owned()),
        "groupLabels": {"alertname": alertname, "tenant": rule.tenant_id},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [{
            "status": "firing",
            "labels": labels,
            "annotations": annotations,
            "startsAt": format_rfc3339(at),
            "endsAt": format_rfc3339(at),
            "generatorURL": "",
            "fingerprint": format!("test-{test_id}"),
        }],
        "text": format!("[TEST] {summary}"),
    })
}

/// The error's class and a message that names neither the webhook's path (reqwest's errors
/// carry the URL) nor anything the receiver sent.
fn describe(err: &PostError) -> (&'static str, String) {
    match err {
        PostError::BadUrl { source, .. } => ("bad_url", format!("invalid webhook URL: {source}")),
        PostError::Refused(refusal) => ("refused", format!("destination refused: {refusal}")),
        PostError::Timeout(after) => ("timeout", format!("timed out after {after:?}")),
        PostError::Connect(e) => ("connect", format!("connection failed{}", causes(e))),
        PostError::Request(e) => ("request", format!("request failed{}", causes(e))),
    }
}

/// `: cause: cause` of a reqwest error, leaving out the top error (it names the URL).
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !line.contains("://") && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// Sends a test notification to the rule's webhook.
#[utoipa::path(post, path = "/v1/alerts/{id}/test", operation_id = "test_alert",
    tag = "alerts",
    params(("id" = String, Path, description = "Alert id"), TenantQuery),
    responses((status = 200, body = TestOutcome, description = "Sent (or refused by the \
               destination policy): `outcome` says how it went"),
              (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<TestOutcome>, ApiError> {
    let tenant = caller.tenant(query.requested(), Role::Editor)?;
    let (rule, _) = super::alerts::fetch(&state, &tenant, &id).await?;
    let _permit = IN_FLIGHT
        .try_acquire()
        .map_err(|_| ApiError::TooManyRequests {
            message: format!("{MAX_CONCURRENT} test notifications are in flight; retry shortly"),
            retry_after_secs: 1,
        })?;
    let allow = Allowlist::parse(&state.config.webhook_allow_destinations)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    // A client per test (they are rare): the body is never read (excerpt 0).
    let client = WebhookClient::new(TIMEOUT, 0, Guard::new(allow))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let test_id = new_id();
    let at = now_millis();
    let payload = serde_json::to_vec(&body(&rule, &test_id, at))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let started = Instant::now();
    let result = client
        .post(
            &rule.notify_channel,
            &[("Idempotency-Key", &test_id)],
            payload.into(),
        )
        .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let (outcome, http_status, error_class, error) = match &result {
        Ok(answer) if (200..300).contains(&answer.status) => {
            (DeliveryOutcome::Delivered, Some(answer.status), None, None)
        }
        Ok(answer) => (
            DeliveryOutcome::Failed,
            Some(answer.status),
            Some("http_status".to_owned()),
            Some(format!("the webhook answered {}", answer.status)),
        ),
        Err(err) => {
            let (class, message) = describe(err);
            (
                DeliveryOutcome::Failed,
                None,
                Some(class.to_owned()),
                Some(message),
            )
        }
    };
    tracing::info!(tenant = %tenant, alert = %id, outcome = outcome.as_str(), ?http_status,
        error_class = error_class.as_deref().unwrap_or(""), "test notification sent");
    let record = AlertLogRecord {
        kind: AlertLogKind::Test,
        at,
        rule_id: rule.id.clone(),
        tenant_id: tenant.clone(),
        transition_id: test_id.clone(),
        fingerprint: format!("test-{test_id}"),
        dimensions: Default::default(),
        from: AlertState::Ok,
        to: AlertState::Ok,
        window_start: at,
        window_end: at,
        value: None,
        threshold: rule.threshold,
        attempt: Some(1),
        outcome: Some(outcome),
        http_status,
        response: None,
        error: error.clone(),
        duration_ms: Some(duration_ms),
    };
    let recorded = record_attempt(&state.js, &record).await;
    Ok(Json(TestOutcome {
        alert_id: rule.id,
        test_id,
        outcome,
        http_status,
        error_class,
        error,
        duration_ms,
        at: format_rfc3339(at),
        recorded,
    }))
}

/// Writes the attempt to the alert log; false when it cannot (no stream yet, no permission,
/// NATS down): the answer still says how the test went.
async fn record_attempt(js: &async_nats::jetstream::Context, record: &AlertLogRecord) -> bool {
    let Ok(payload) = serde_json::to_vec(record) else {
        return false;
    };
    let subject = names::alertlog_subject(&record.tenant_id, &record.rule_id);
    let written = tokio::time::timeout(Duration::from_secs(5), async {
        js.publish(subject, payload.into()).await?.await
    })
    .await;
    match written {
        Ok(Ok(_)) => true,
        Ok(Err(err)) => {
            tracing::warn!(%err, alert = %record.rule_id, "test notification not recorded");
            false
        }
        Err(_) => {
            tracing::warn!(alert = %record.rule_id, "test notification not recorded: timed out");
            false
        }
    }
}
