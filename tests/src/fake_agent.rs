//! A fake edge agent: real `PartialBatch`es in the real wire format, published to
//! `RTDASH_PARTIALS` with the agent's `Nats-Msg-Id` scheme and sequence numbers, so the core
//! aggregator's tests choose exactly what reaches it.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, publish::PublishAck};
use rtdash_shared::messages::{PartialBatch, PartialEntry};
use rtdash_shared::names;
use rtdash_shared::time::{now_millis, UnixMillis};
use rtdash_shared::wire::{self, Format};

use crate::workload::Workload;

/// A fake edge agent: allocates sequence numbers per partition, publishes real batches.
#[derive(Clone, Debug)]
pub struct FakeAgent {
    pub id: String,
    pub js: jetstream::Context,
    pub partitions: u32,
    next_seq: HashMap<u32, u64>,
}

impl FakeAgent {
    pub fn new(id: &str, js: jetstream::Context, partitions: u32) -> Self {
        Self {
            id: id.to_owned(),
            js,
            partitions,
            next_seq: HashMap::new(),
        }
    }

    /// The next batch of `partition` (not published). `acked_below` is the batch's own seq:
    /// this agent awaits every publish before the next.
    pub fn batch(
        &mut self,
        partition: u32,
        watermark: UnixMillis,
        entries: Vec<PartialEntry>,
    ) -> PartialBatch {
        let seq = self.next_seq.entry(partition).or_insert(1);
        let batch = PartialBatch {
            agent_id: self.id.clone(),
            partition,
            seq: *seq,
            acked_below: *seq,
            watermark,
            created_at: now_millis(),
            entries,
        };
        *seq += 1;
        batch
    }

    /// Publishes `batch` with `msg_id` (the agent's id scheme by default) and awaits the ack.
    pub async fn publish_as(
        &self,
        batch: &PartialBatch,
        msg_id: &str,
    ) -> anyhow::Result<PublishAck> {
        let payload = wire::encode(batch, Format::Binary)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        let mut backoff = Duration::from_millis(50);
        for attempt in 0.. {
            let result = async {
                self.js
                    .publish_with_headers(
                        names::partials_subject(batch.partition),
                        headers.clone(),
                        payload.clone().into(),
                    )
                    .await?
                    .await
                    .map_err(anyhow::Error::from)
            }
            .await;
            match result {
                Ok(ack) => return Ok(ack),
                Err(err) if attempt < 50 => {
                    let _ = err;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(err) => return Err(err),
            }
        }
        unreachable!()
    }

    /// Publishes `batch` under its own message id.
    pub async fn publish(&self, batch: &PartialBatch) -> anyhow::Result<PublishAck> {
        let id = names::partial_msg_id(&batch.agent_id, batch.partition, batch.seq);
        self.publish_as(batch, &id).await
    }

    /// Builds and publishes the next batch of `partition`.
    pub async fn send(
        &mut self,
        partition: u32,
        watermark: UnixMillis,
        entries: Vec<PartialEntry>,
    ) -> anyhow::Result<PartialBatch> {
        let batch = self.batch(partition, watermark, entries);
        self.publish(&batch).await?;
        Ok(batch)
    }

    /// One flush of `work` for window `start`: the next batch of every partition it touches,
    /// in partition order, `start` as the watermark. Returns the entries sent.
    pub async fn send_flush(
        &mut self,
        work: &mut Workload,
        start: UnixMillis,
    ) -> anyhow::Result<usize> {
        let mut sent = 0;
        for (partition, entries) in work.flush(start) {
            sent += entries.len();
            self.send(partition, start, entries).await?;
        }
        Ok(sent)
    }

    /// An empty batch on every partition: the watermark moves.
    pub async fn heartbeat(&mut self, watermark: UnixMillis) -> anyhow::Result<()> {
        for partition in 0..self.partitions {
            self.send(partition, watermark, Vec::new()).await?;
        }
        Ok(())
    }
}
