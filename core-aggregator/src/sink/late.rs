//! Publishing to the side streams: data beyond the correction horizon to `rtdash.late.<tenant>`
//! and unusable input to `rtdash.dlq.<tenant>` (`_unknown` when no tenant could be read).
//!
//! Both are JetStream publishes whose acknowledgement is awaited before the message that
//! produced them can be checkpointed and acknowledged, so nothing is lost in between. Each
//! carries a deterministic `Nats-Msg-Id` (derived from the source batch), so reprocessing the
//! same message after a restart does not store it twice within the duplicate window. A failed
//! publish is retried with backoff until it succeeds or the partition stops ([`Sent`]).

use crate::error::Error;
use async_nats::jetstream;
use rtdash_shared::messages::{DeadLetter, LateRecord, PartialEntry};
use rtdash_shared::names;
use rtdash_shared::time::now_millis;
use rtdash_shared::wire::{self, Format};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Largest raw input copied into a dead letter.
pub const MAX_DEAD_LETTER_RAW: usize = 64 * 1024;

/// How a side-stream publish ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Sent {
    /// JetStream stored it.
    Stored,
    /// The partition stopped (its stop token was cancelled) before JetStream stored it.
    Stopped,
}

/// Publisher for the late and dead-letter streams.
#[derive(Clone, Debug)]
pub struct SidePublisher {
    js: jetstream::Context,
    rejected_by: String,
}

impl SidePublisher {
    /// A publisher identifying itself as `core-aggregator:<instance>` in dead letters.
    pub fn new(js: jetstream::Context, instance: &str) -> Self {
        Self {
            js,
            rejected_by: format!("core-aggregator:{instance}"),
        }
    }

    /// Publishes a late record; `index` is the entry's position in its batch.
    pub async fn late(
        &self,
        partition: u32,
        record: &LateRecord,
        index: usize,
        stop: &CancellationToken,
    ) -> Result<Sent, Error> {
        let payload = wire::encode(record, Format::Json).map_err(|source| Error::Encode {
            what: "late record",
            source,
        })?;
        let id = format!(
            "late.{}.{partition}.{}.{index}",
            record.agent_id, record.seq
        );
        let subject = names::late_subject(&record.entry.series.tenant);
        self.publish(subject, id, payload, stop).await
    }

    /// Publishes a message that could not be decoded.
    pub async fn undecodable(
        &self,
        partition: u32,
        stream_seq: u64,
        payload: &[u8],
        problem: &str,
        stop: &CancellationToken,
    ) -> Result<Sent, Error> {
        let body = self.dead_letter(
            "undecodable_partial",
            &format!("partition {partition}, stream sequence {stream_seq}: {problem}"),
            payload,
            None,
        )?;
        let id = format!("dlq.agg.{partition}.{stream_seq}");
        let subject = names::dlq_subject(names::UNKNOWN_TENANT);
        self.publish(subject, id, body, stop).await
    }

    /// Publishes an entry that cannot be a window.
    #[allow(clippy::too_many_arguments)]
    pub async fn invalid_entry(
        &self,
        partition: u32,
        agent_id: &str,
        seq: u64,
        index: usize,
        entry: &PartialEntry,
        reason: &str,
        stop: &CancellationToken,
    ) -> Result<Sent, Error> {
        let raw = serde_json::to_vec(entry).unwrap_or_default();
        let body = self.dead_letter(
            "invalid_partial",
            &format!("agent {agent_id} batch {seq} entry {index}: {reason}"),
            &raw,
            Some(index),
        )?;
        let tenant = if rtdash_shared::event::is_identifier(&entry.series.tenant, 128) {
            entry.series.tenant.as_str()
        } else {
            names::UNKNOWN_TENANT
        };
        let id = format!("dlq.agg.{agent_id}.{partition}.{seq}.{index}");
        self.publish(names::dlq_subject(tenant), id, body, stop)
            .await
    }

    /// A dead letter of `kind` for `raw` (its first [`MAX_DEAD_LETTER_RAW`] bytes), encoded.
    fn dead_letter(
        &self,
        kind: &str,
        reason: &str,
        raw: &[u8],
        index: Option<usize>,
    ) -> Result<Vec<u8>, Error> {
        let letter = DeadLetter::from_input(
            kind,
            reason,
            raw,
            MAX_DEAD_LETTER_RAW,
            index,
            &self.rejected_by,
            now_millis(),
        );
        wire::encode(&letter, Format::Json).map_err(|source| Error::Encode {
            what: "dead letter",
            source,
        })
    }

    async fn publish(
        &self,
        subject: String,
        id: String,
        payload: Vec<u8>,
        stop: &CancellationToken,
    ) -> Result<Sent, Error> {
        let payload = bytes::Bytes::from(payload);
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            let attempt = async {
                let ack = self
                    .js
                    .publish_with_headers(subject.clone(), headers, payload.clone())
                    .await?;
                ack.await
            };
            match attempt.await {
                Ok(_) => return Ok(Sent::Stored),
                Err(err) => {
                    tracing::warn!(%subject, %err, "side-stream publish failed; retrying");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(Sent::Stopped),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
