//! Saving before publishing: each (rule, series) state is written (compare-and-set) with its
//! transition before the transition is published, then marked published (see the
//! [`super`] documentation for what that guarantees across crashes and takeovers).

use super::{seq_base, Ctx, Tracked};
use crate::alerts::state::SeriesAlert;
use crate::alerts::store::Written;
use crate::metrics as m;
use rtdash_shared::alert::AlertTransition;
use rtdash_shared::names;
use rtdash_shared::wire::{self, Format};
use std::time::Duration;
use tracing::Instrument;

impl Ctx {
    /// Moves `tracked` with `step`, saves it, publishes the transition (if any), and marks it
    /// published. A lost compare-and-set (another owner wrote the state) reloads the state
    /// and applies `step` to it again.
    pub(super) async fn apply(
        &self,
        tracked: &mut Tracked,
        step: impl Fn(&mut SeriesAlert) -> Option<AlertTransition>,
    ) -> Option<AlertTransition> {
        let mut transition = None;
        for attempt in 0..3 {
            let before = tracked.alert.clone();
            transition = step(&mut tracked.alert);
            if transition.is_none() && !tracked.alert.needs_write_after(&before) {
                return None;
            }
            match self.save(tracked).await {
                Written::Saved(_) => break,
                Written::Conflict if attempt < 2 => {
                    // Someone else (a deposed or a new owner) wrote it: start from theirs.
                    match self.store.read(&tracked.key).await {
                        Ok(Some(loaded)) => {
                            tracked.alert = loaded.alert;
                            tracked.revision = Some(loaded.revision);
                        }
                        Ok(None) => {
                            tracked.alert = SeriesAlert::new(
                                &before.rule_id,
                                &before.tenant_id,
                                &before.metric,
                                before.dimensions.clone(),
                                seq_base(),
                            );
                            tracked.revision = None;
                        }
                        Err(err) => {
                            tracing::warn!(key = %tracked.key, %err, "cannot reload alert state");
                            tracked.alert = before;
                            return None;
                        }
                    }
                }
                Written::Conflict => {
                    tracing::warn!(key = %tracked.key, "alert state keeps changing under us; window skipped");
                    tracked.alert = before;
                    return None;
                }
            }
        }
        let transition = transition?;
        self.publish(&transition).await;
        tracked.alert.published = true;
        let _ = self.save(tracked).await;
        metrics::counter!(m::ALERT_TRANSITIONS, "to" => transition.to.as_str()).increment(1);
        tracing::info!(
            id = %transition.id(),
            rule = %transition.rule_id,
            tenant = %transition.tenant_id,
            from = transition.from.as_str(),
            to = transition.to.as_str(),
            value = ?transition.value,
            "alert transition"
        );
        Some(transition)
    }

    /// Writes the state (compare-and-set), retrying other failures until it is written or the
    /// compare-and-set lost (another owner wrote the state first).
    pub(super) async fn save(&self, tracked: &mut Tracked) -> Written {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self
                .store
                .write(&tracked.key, &tracked.alert, tracked.revision)
                .await
            {
                Ok(Written::Saved(revision)) => {
                    tracked.revision = Some(revision);
                    self.metrics.state_writes.increment(1);
                    return Written::Saved(revision);
                }
                Ok(Written::Conflict) => {
                    self.metrics.state_conflicts.increment(1);
                    return Written::Conflict;
                }
                Err(err) => {
                    tracing::warn!(key = %tracked.key, %err, "cannot save alert state; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Publishes a transition with its id as `Nats-Msg-Id`, retrying until JetStream
    /// acknowledges it, in a `core.alert_publish` (producer) span.
    pub(super) async fn publish(&self, transition: &AlertTransition) {
        let payload: bytes::Bytes = match wire::encode(transition, Format::Json) {
            Ok(payload) => payload.into(),
            Err(err) => {
                tracing::error!(%err, "cannot encode an alert transition");
                return;
            }
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            transition.id().as_str(),
        );
        let subject = names::alerts_subject(&transition.tenant_id);
        let span = tracing::info_span!(
            "core.alert_publish",
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.operation.type = "send",
            messaging.destination.name = subject.as_str(),
            id = %transition.id(),
        );
        let mut backoff = Duration::from_millis(100);
        async {
            loop {
                let attempt = async {
                    let ack = self
                        .js
                        .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                        .await?;
                    ack.await
                };
                match attempt.await {
                    Ok(ack) => {
                        if ack.duplicate {
                            tracing::debug!(id = %transition.id(), "transition was published before");
                        }
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(%err, id = %transition.id(), "cannot publish an alert transition; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Deletes a state from the bucket (if saved).
    pub(super) async fn forget(&self, tracked: Tracked) {
        if let Some(revision) = tracked.revision {
            if let Err(err) = self.store.delete(&tracked.key, revision).await {
                tracing::debug!(key = %tracked.key, ?err, "alert state not deleted");
            }
        }
    }
}
