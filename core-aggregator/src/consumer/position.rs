//! Positioning the partition's durable consumer: deleted and recreated to deliver from a given
//! stream sequence (see the AckAll hazard in the [`super`] documentation).

use super::{Step, Worker};
use crate::config::Config;
use crate::error::Error;
use crate::lease::Stopped;
use async_nats::jetstream::{self, consumer};
use rtdash_shared::names;
use std::ops::ControlFlow::{Break, Continue};
use std::time::Duration;

impl Worker {
    /// Recreates the consumer after the last applied message, retrying until it works, the
    /// partition is lost or the worker is asked to stop.
    pub(super) async fn reposition(&mut self) -> Step {
        self.metrics.consumer_resets.increment(1);
        let mut backoff = Duration::from_millis(200);
        loop {
            if !self.fence.is_valid() {
                return Break(Stopped::Fenced);
            }
            let attempt = async {
                let consumer = position_consumer(
                    &self.stream,
                    self.partition,
                    self.state.stream_seq() + 1,
                    &self.ctx.config,
                )
                .await?;
                let messages = open_messages(&consumer, &self.ctx.config).await?;
                Ok::<_, Error>((consumer, messages))
            };
            match attempt.await {
                Ok((consumer, messages)) => {
                    self.consumer = consumer;
                    self.messages = messages;
                    self.last_delivery = None;
                    // Acknowledgements on the old consumer are moot.
                    self.to_ack = None;
                    return Continue(());
                }
                Err(err) => tracing::warn!(%err, "cannot reposition the consumer; retrying"),
            }
            tokio::select! {
                () = self.fence.lost() => return Break(Stopped::Fenced),
                () = self.stop.cancelled() => return Continue(()),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// Deletes and recreates the partition's durable consumer so it delivers from `start_seq`.
pub async fn position_consumer(
    stream: &jetstream::stream::Stream,
    partition: u32,
    start_seq: u64,
    config: &Config,
) -> Result<consumer::PullConsumer, Error> {
    let name = names::partition_consumer(partition);
    let _ = stream.delete_consumer(&name).await;
    let deliver_policy = if start_seq <= 1 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: start_seq,
        }
    };
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!(
                "rtdash core aggregator, partition {partition} (positioned by its owner)"
            )),
            filter_subject: names::partials_subject(partition),
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_millis(config.consumer.ack_wait_ms),
            max_ack_pending: config.consumer.max_ack_pending,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::js(format!("consumer {name}"), e))
}

pub(super) async fn open_messages(
    consumer: &consumer::PullConsumer,
    config: &Config,
) -> Result<consumer::pull::Stream, Error> {
    consumer
        .stream()
        .max_messages_per_batch(config.consumer.pull_batch)
        .max_bytes_per_batch(config.consumer.pull_max_bytes)
        .expires(Duration::from_secs(10))
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| Error::js("consumer messages", e))
}
