//! The alert log: every transition and delivery attempt of a rule, as JSON
//! [`AlertLogRecord`]s on `rtdash.alertlog.<tenant>.<rule>` (stream `RTDASH_ALERT_EVENTS`,
//! `alerts.log_max_per_rule` records kept per rule), read by the gateway's
//! `GET /v1/alerts/{id}/events`. Writing it is best effort: a record that cannot be written
//! (NATS down) is logged and does not hold up the delivery.

use crate::notifier::http::{Answer, PostError};
use async_nats::jetstream;
use rtdash_shared::alert::{AlertLogKind, AlertLogRecord, AlertTransition, DeliveryOutcome};
use rtdash_shared::names;
use rtdash_shared::time::now_millis;
use std::time::Duration;

/// Writes alert log records.
#[derive(Clone)]
pub struct AlertLog {
    js: jetstream::Context,
}

impl std::fmt::Debug for AlertLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertLog").finish_non_exhaustive()
    }
}

/// What one attempt produced, for its record.
#[derive(Clone, Debug, Default)]
pub struct AttemptReport {
    /// HTTP status, if answered.
    pub status: Option<u16>,
    /// Never set: a receiver's answer is not shown to tenants (a webhook pointed at an
    /// internal service would otherwise read it back). Kept for the record's shape.
    pub response: Option<String>,
    /// Error or reason.
    pub error: Option<String>,
    /// Duration.
    pub duration: Duration,
}

impl AttemptReport {
    /// From an exchange's outcome: the status or the error, never the answer's body.
    pub fn from_result(result: &Result<Answer, PostError>, duration: Duration) -> Self {
        match result {
            Ok(answer) => Self {
                status: Some(answer.status),
                response: None,
                error: None,
                duration,
            },
            Err(err) => Self {
                status: None,
                response: None,
                error: Some(err.to_string()),
                duration,
            },
        }
    }
}

impl AlertLog {
    /// A log writer.
    pub fn new(js: jetstream::Context) -> Self {
        Self { js }
    }

    /// Records a transition (deduplicated by its id within the stream's duplicate window).
    pub async fn transition(&self, transition: &AlertTransition) {
        let record = AlertLogRecord::transition(transition, now_millis());
        self.write(&record, Some(format!("log.{}", record.transition_id)))
            .await;
    }

    /// Records one delivery attempt.
    pub async fn attempt(
        &self,
        transition: &AlertTransition,
        attempt: u32,
        outcome: DeliveryOutcome,
        report: AttemptReport,
    ) {
        let mut record = AlertLogRecord::transition(transition, now_millis());
        record.kind = AlertLogKind::Delivery;
        record.attempt = Some(attempt);
        record.outcome = Some(outcome);
        record.http_status = report.status;
        record.response = report.response;
        record.error = report.error;
        record.duration_ms = Some(report.duration.as_millis() as u64);
        self.write(&record, None).await;
    }

    async fn write(&self, record: &AlertLogRecord, msg_id: Option<String>) {
        let Ok(payload) = serde_json::to_vec(record) else {
            return;
        };
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = msg_id {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        }
        let subject = names::alertlog_subject(&record.tenant_id, &record.rule_id);
        for attempt in 0..3 {
            let result = async {
                let ack = self
                    .js
                    .publish_with_headers(subject.clone(), headers.clone(), payload.clone().into())
                    .await?;
                ack.await
            }
            .await;
            match result {
                Ok(_) => return,
                Err(err) if attempt == 2 => {
                    tracing::warn!(%err, transition = %record.transition_id, "alert log record not written");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200 << attempt)).await,
            }
        }
    }
}
