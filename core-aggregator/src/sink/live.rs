//! Live window updates on core NATS `rtdash.live.<tenant>.<metric>` (JSON envelope), and the
//! alert hook. Core NATS publishes are fire-and-forget: a gateway that misses one gets the
//! next (the latest value of every window is always sent eventually) or reads QuestDB.

use crate::metrics as m;
use crate::observer::WindowObserver;
use crate::state::WindowOutput;
use rtdash_runtime::trace_context::TraceParent;
use rtdash_shared::names;
use rtdash_shared::wire::{self, Format};
use std::sync::Arc;

/// Publishes window versions to live subscribers and the observer.
#[derive(Clone)]
pub struct LiveSink {
    client: async_nats::Client,
    observer: Arc<dyn WindowObserver>,
}

impl std::fmt::Debug for LiveSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSink").finish_non_exhaustive()
    }
}

impl LiveSink {
    /// A sink publishing with `client`.
    pub fn new(client: async_nats::Client, observer: Arc<dyn WindowObserver>) -> Self {
        Self { client, observer }
    }

    /// The observer (for partition start and stop notices).
    pub fn observer(&self) -> &Arc<dyn WindowObserver> {
        &self.observer
    }

    /// Publishes one window version; with `trace` (only while traces are exported) it carries
    /// a `traceparent` header, which the gateway's fan-out span continues.
    pub async fn publish(
        &self,
        partition: u32,
        output: &WindowOutput,
        trace: Option<&TraceParent>,
    ) {
        let update = output.to_update();
        self.observer.window_changed(partition, &update);
        let payload = match wire::encode(&update, Format::Json) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::warn!(%err, "cannot encode a live update");
                return;
            }
        };
        let subject = names::live_subject(&update.tenant_id, &update.metric);
        let sent = match trace {
            Some(trace) => {
                self.client
                    .publish_with_headers(subject, trace.to_headers(), payload.into())
                    .await
            }
            None => self.client.publish(subject, payload.into()).await,
        };
        match sent {
            Ok(()) => metrics::counter!(m::LIVE_UPDATES).increment(1),
            Err(err) => tracing::debug!(%err, "live update not published"),
        }
    }
}
