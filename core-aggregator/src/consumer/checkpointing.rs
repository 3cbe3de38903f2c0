//! Checkpoints written in the background while the partition keeps consuming (one in flight
//! at a time), and the acknowledgement that follows each one saved.

use super::{Finished, InFlight, Step, Worker};
use crate::checkpoint::Saved;
use crate::error::{CheckpointError, Error};
use crate::lease::Stopped;
use std::ops::ControlFlow::{Break, Continue};

impl Worker {
    /// Captures the state and writes it in the background (unless a checkpoint is already
    /// being written or nothing changed).
    pub(super) fn start_checkpoint(&mut self) -> Step {
        if self.in_flight.is_some() || !self.state.has_unsaved_changes() {
            return Continue(());
        }
        if !self.fence.is_valid() {
            return Break(Stopped::Fenced);
        }
        let Some(mut store) = self.store.take() else {
            return Continue(());
        };
        let capture = self.state.capture(store.wants_full());
        let ack = self.to_ack.take();
        let join = tokio::spawn(async move {
            let result = store.save(&capture).await;
            (store, capture, result)
        });
        self.in_flight = Some(InFlight { join, ack });
        Continue(())
    }

    /// The checkpoint in flight is done: acknowledges what it covers once saved, or lists its
    /// windows again for the next one when it failed.
    pub(super) async fn checkpoint_finished(
        &mut self,
        finished: Result<Finished, tokio::task::JoinError>,
    ) -> Result<Step, Error> {
        let ack = self.in_flight.take().and_then(|in_flight| in_flight.ack);
        let (store, capture, result) = finished.map_err(|err| Error::Checkpoint {
            partition: self.partition,
            source: CheckpointError::Task(err),
        })?;
        self.store = Some(store);
        match result {
            Ok(Saved::Written(report)) => {
                let seq = capture.meta.stream_seq;
                self.state.capture_saved(capture);
                self.checkpointed_seq = seq;
                let bytes = report.data_bytes + report.manifest_bytes;
                self.metrics
                    .checkpoint_seconds
                    .record(report.duration.as_secs_f64());
                self.metrics.checkpoint_bytes.record(bytes as f64);
                tracing::debug!(
                    bytes,
                    windows = report.windows,
                    full = report.full,
                    ms = report.duration.as_millis() as u64,
                    stream_seq = seq,
                    "checkpoint"
                );
                if let Some(message) = ack {
                    if let Err(err) = message.ack().await {
                        tracing::debug!(%err, "ack not sent (it is repeated after the next checkpoint)");
                    }
                }
                // Evictions may have waited for this checkpoint.
                let counters = self.state.counters();
                self.metrics.record_counters(&self.reported, &counters);
                self.reported = counters;
                Ok(Continue(()))
            }
            Ok(Saved::Fenced) => Ok(Break(Stopped::Fenced)),
            Err(err) => {
                self.state.capture_failed(capture);
                if self.to_ack.is_none() {
                    self.to_ack = ack;
                }
                self.metrics.checkpoint_errors.increment(1);
                tracing::warn!(%err, "checkpoint failed; retrying at the next interval");
                Ok(Continue(()))
            }
        }
    }
}
