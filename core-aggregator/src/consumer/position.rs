//! Repositioning the partition's consumer after a delivery gap or a consumer error: it is
//! recreated after the last applied message (see [`super::position_consumer`]).

use super::{open_messages, position_consumer, Step, Worker};
use crate::error::Error;
use crate::lease::Stopped;
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
