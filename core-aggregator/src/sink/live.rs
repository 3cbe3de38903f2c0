//! Live window updates on core NATS `rtdash.live.<tenant>.<metric>` (JSON envelope), and the
//! alert hook. Core NATS publishes are fire-and-forget: a gateway that misses one gets the
//! next (the latest value of every window is always sent eventually) or reads QuestDB.
//!
//! The versions of one emit are grouped by subject: a subject with one version gets a single
//! [`WindowUpdate`] message, one with more a [`WindowUpdates`] batch (at most
//! [`MAX_BATCH_UPDATES`] versions per message, in emit order). With tens of thousands of
//! series per metric that is a few messages per subject and emit instead of one per series.

use crate::metrics::LiveMetrics;
use crate::observer::WindowObserver;
use crate::state::WindowOutput;
use rtdash_runtime::trace_context::TraceParent;
use rtdash_shared::messages::{WindowUpdate, WindowUpdateView, WindowUpdates};
use rtdash_shared::names;
use rtdash_shared::wire::{self, Format};
use std::collections::HashMap;
use std::sync::Arc;

/// Most window versions in one live message (about 150 to 300 KiB of JSON, well under NATS'
/// default 1 MiB payload limit).
pub const MAX_BATCH_UPDATES: usize = 500;

/// Publishes window versions to live subscribers and the observer.
#[derive(Clone)]
pub struct LiveSink {
    client: async_nats::Client,
    observer: Arc<dyn WindowObserver>,
    metrics: LiveMetrics,
}

impl std::fmt::Debug for LiveSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSink").finish_non_exhaustive()
    }
}

impl LiveSink {
    /// A sink publishing with `client`.
    pub fn new(client: async_nats::Client, observer: Arc<dyn WindowObserver>) -> Self {
        Self {
            client,
            observer,
            metrics: LiveMetrics::new(),
        }
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
        self.publish_all(
            partition,
            std::iter::once(output),
            &tracing::Span::none(),
            trace,
        )
        .await;
    }

    /// Publishes the window versions of one emit, grouped by subject (see the module docs);
    /// every base window version (not a tier window's) is handed to the observer first, in
    /// order. `span` (the emit's producer
    /// span, or `Span::none()`) gets the subject when there is only one, and the message
    /// count.
    pub async fn publish_all<'a>(
        &self,
        partition: u32,
        outputs: impl IntoIterator<Item = &'a WindowOutput>,
        span: &tracing::Span,
        trace: Option<&TraceParent>,
    ) {
        // Subjects in the order of their first version; versions in emit order. The
        // observer gets an owned update only for what it wants (alert rules); subscribers get
        // the versions encoded straight from the outputs.
        let mut groups: Vec<Vec<WindowUpdateView<'_>>> = Vec::new();
        let mut by_subject: HashMap<(&str, &str), usize> = HashMap::new();
        for output in outputs {
            let (tenant, metric) = (
                output.key.series.tenant.as_str(),
                output.key.series.metric.as_str(),
            );
            // Alert rules are about a metric's own windows, not its rollup tiers'.
            if output.tier.is_none() && self.observer.wants(tenant, metric, output.is_final) {
                self.observer.window_changed(partition, &output.to_update());
            }
            let group = *by_subject.entry((tenant, metric)).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[group].push(output.view());
        }
        if groups.len() == 1 && !span.is_disabled() {
            if let Some(first) = groups[0].first() {
                let subject = names::live_subject(first.tenant_id, first.metric);
                span.record("messaging.destination.name", subject.as_str());
            }
        }
        let mut messages = 0u64;
        for updates in groups {
            let subject = match updates.first() {
                Some(first) => names::live_subject(first.tenant_id, first.metric),
                None => continue,
            };
            for chunk in updates.chunks(MAX_BATCH_UPDATES) {
                let count = chunk.len();
                let encoded = if count == 1 {
                    wire::encode_view::<WindowUpdate, _>(&chunk[0], Format::Json)
                } else {
                    wire::encode_view::<WindowUpdates, _>(chunk, Format::Json)
                };
                let payload = match encoded {
                    Ok(payload) => payload,
                    Err(err) => {
                        tracing::warn!(%err, "cannot encode a live update");
                        continue;
                    }
                };
                let sent = match trace {
                    Some(trace) => {
                        self.client
                            .publish_with_headers(
                                subject.clone(),
                                trace.to_headers(),
                                payload.into(),
                            )
                            .await
                    }
                    None => self.client.publish(subject.clone(), payload.into()).await,
                };
                match sent {
                    Ok(()) => {
                        self.metrics.updates.increment(count as u64);
                        self.metrics.messages.increment(1);
                        messages += 1;
                    }
                    Err(err) => tracing::debug!(%err, "live update not published"),
                }
            }
        }
        span.record("messaging.batch.message_count", messages);
    }
}
