//! Trace context across NATS: the W3C `traceparent` header (OpenTelemetry's
//! `TraceContextPropagator`) in `async_nats::HeaderMap`s, so that one partial batch can be
//! followed from the edge agent's flush to the aggregator's QuestDB write and the gateway's
//! SSE fan-out.
//!
//! Everything here is a no-op returning `None` while traces are off
//! ([`crate::telemetry::tracing_enabled`] is a relaxed atomic load): no header is allocated
//! and no span context is looked up, so hot paths may call it unconditionally.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";

/// The context of one span, to carry to another task or service and to continue there as a
/// parent or a link.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceParent(SpanContext);

/// True when traces are exported (see [`crate::telemetry`]).
#[inline]
pub fn enabled() -> bool {
    crate::telemetry::tracing_enabled()
}

impl TraceParent {
    /// The context of `span`, if traces are on and the span is recorded.
    pub fn of(span: &Span) -> Option<Self> {
        if !enabled() || span.is_disabled() {
            return None;
        }
        let context = span.context();
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then_some(Self(span_context))
    }

    /// The context of the current span (see [`TraceParent::of`]).
    pub fn current() -> Option<Self> {
        if !enabled() {
            return None;
        }
        Self::of(&Span::current())
    }

    /// The context carried by a message's `traceparent` header, if traces are on here and the
    /// header is present and well formed.
    pub fn from_headers(headers: Option<&HeaderMap>) -> Option<Self> {
        if !enabled() {
            return None;
        }
        let headers = headers?;
        headers.get(TRACEPARENT)?;
        let context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then_some(Self(span_context))
    }

    /// Adds the `traceparent` (and `tracestate`, when there is one) headers.
    pub fn inject(&self, headers: &mut HeaderMap) {
        let context = Context::new().with_remote_span_context(self.0.clone());
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }

    /// A header map holding only this context.
    pub fn to_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        self.inject(&mut headers);
        headers
    }

    /// Makes this context the parent of `span`, which must not have been entered yet (a
    /// remote parent replaces the span's local parent in the exported trace; the log output
    /// keeps the local one).
    pub fn set_parent_of(&self, span: &Span) {
        let context = Context::new().with_remote_span_context(self.0.clone());
        let _ = span.set_parent(context);
    }

    /// Links `span` to this context (for a span that serves many traces at once).
    pub fn link_from(&self, span: &Span) {
        span.add_link(self.0.clone());
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        self.0.trace_id().to_string()
    }
}

/// Headers carrying the current span's context; `None` (nothing allocated) when traces are
/// off or the current span is not recorded.
pub fn current_headers() -> Option<HeaderMap> {
    TraceParent::current().map(|parent| parent.to_headers())
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn headers_round_trip_and_nothing_happens_while_off() {
        let context = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("trace id"),
            SpanId::from_hex("00f067aa0ba902b7").expect("span id"),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let headers = TraceParent(context.clone()).to_headers();
        assert_eq!(
            headers.get(TRACEPARENT).map(|v| v.as_str()),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        let extracted = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
        assert_eq!(extracted.span().span_context(), &context);
        // Traces are off in this process: the helpers do nothing.
        assert!(TraceParent::from_headers(Some(&headers)).is_none());
        assert!(TraceParent::current().is_none());
        assert!(current_headers().is_none());
    }
}
