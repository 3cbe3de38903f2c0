//! The Prometheus side of the `metrics` facade, the one way every rtdash service exposes
//! metrics: one process-wide recorder with the histogram buckets below, rendered by
//! `/metrics` ([`crate::admin`]) with [`CONTENT_TYPE`].
//!
//! Each service keeps its metric names, descriptions and units in its own `metrics.rs`, whose
//! `describe()` runs after [`handle`] has installed the recorder (a description given to no
//! recorder is lost), and creates handles (`metrics::Counter`...) once for hot paths.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// The content type of the Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of every histogram's buckets, in the histogram's unit (seconds for the
/// `_seconds` histograms): 0.5 ms to 10 s.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus handle, installing the recorder on first use (libraries call
/// it before creating metric handles, so handles made in tests record too).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); ours still renders what it sees.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
