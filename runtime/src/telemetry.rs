//! Logs, metrics and traces: `tracing` to stderr (human-readable by default, JSON on request),
//! a Prometheus recorder behind the `metrics` facade, and, when an OTLP endpoint is configured,
//! the `tracing` spans exported as OpenTelemetry traces over OTLP/HTTP (protobuf).
//!
//! Traces are off by default: without `telemetry.otlp_endpoint` (or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) no exporter and no
//! OpenTelemetry layer is installed, and [`tracing_enabled`] is false, so the trace-context
//! helpers in [`crate::trace_context`] do nothing. With an endpoint, spans go through a batch
//! processor (its own thread, `OTEL_BSP_*` variables apply) and [`shutdown`] flushes them.
//! Their resource names the process: `service.name`, `service.version`, `service.instance.id`,
//! `host.name`, `process.pid`, plus `OTEL_RESOURCE_ATTRIBUTES`.

use crate::config::ConfigError;
use metrics_exporter_prometheus::PrometheusHandle;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

mod traces;

use traces::{check_endpoint, OTEL_ENDPOINT_VARS};

/// The process-wide Prometheus handle (see [`crate::prometheus::handle`]).
pub use crate::prometheus::handle as metrics_handle;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Telemetry settings shared by every component (`[telemetry]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `info,edge_agent=debug` (`RUST_LOG` wins if set).
    /// It also selects the spans exported as traces.
    pub log_level: String,
    /// OTLP/HTTP (protobuf) traces endpoint, used as given (include the path, usually
    /// `http://127.0.0.1:4318/v1/traces`). Unset: traces are off, unless the standard
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as given) or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (a base URL, `/v1/traces` appended) is set. Plain `http://` only: send to a collector
    /// beside the service for TLS and fan-out.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans; default `OTEL_SERVICE_NAME`, else `service.name`
    /// in `OTEL_RESOURCE_ATTRIBUTES`, else the component (`edge-agent`, `core-aggregator`,
    /// `gateway`).
    pub service_name: Option<String>,
    /// Fraction of new traces sampled (0 to 1); a span continuing a trace from another
    /// service follows that trace's decision (parent-based).
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            otlp_endpoint: None,
            service_name: None,
            sample_ratio: 1.0,
        }
    }
}

impl TelemetryConfig {
    /// Checks the telemetry keys (called by each component's `Validate`); errors name the key
    /// under `telemetry.`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.otlp_endpoint {
            check_endpoint(endpoint).map_err(|problem| {
                ConfigError::invalid(
                    "telemetry.otlp_endpoint",
                    format!("{problem} ({endpoint:?})"),
                )
            })?;
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError::invalid(
                "telemetry.sample_ratio",
                "must be between 0 and 1",
            ));
        }
        if self
            .service_name
            .as_deref()
            .is_some_and(|name| name.trim().is_empty())
        {
            return Err(ConfigError::invalid(
                "telemetry.service_name",
                "must not be empty",
            ));
        }
        Ok(())
    }

    /// Whether traces are exported, given the process environment.
    pub fn traces_configured(&self) -> bool {
        self.otlp_endpoint.is_some()
            || OTEL_ENDPOINT_VARS
                .iter()
                .any(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()))
    }
}

static TRACER_PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);
static TRACING_ENABLED: AtomicBool = AtomicBool::new(false);

/// Installs the log subscriber, the trace exporter when configured (see the module docs) and
/// the metrics recorder (once per process; later calls only return the existing metrics
/// handle). `component` is the default `service.name`, `version` the `service.version` of the
/// spans. Returns the handle `/metrics` renders from; fails, naming the setting, when the
/// trace exporter cannot be set up (exit code 64).
pub fn init(
    component: &str,
    version: &str,
    config: &TelemetryConfig,
) -> Result<PrometheusHandle, ConfigError> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = if config.traces_configured() {
        let resource = traces::resource(component, version, config);
        let name = resource
            .get(&opentelemetry::Key::from_static_str(traces::SERVICE_NAME))
            .map(|name| name.to_string())
            .unwrap_or_default();
        Some((traces::tracer_provider(config, resource)?, name))
    } else {
        None
    };
    let otel_layer = provider.as_ref().map(|(provider, _)| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("rtdash"))
            .with_threads(false)
            .with_tracked_inactivity(false)
    });
    let fmt_layer = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(fmt_layer)
        .try_init()
        .is_ok();
    if let Some((provider, service)) = provider {
        if installed {
            *TRACER_PROVIDER.lock().unwrap_or_else(|e| e.into_inner()) = Some(provider);
            TRACING_ENABLED.store(true, Ordering::Release);
            tracing::info!(service = %service, "exporting traces over OTLP");
        } else {
            let _ = provider.shutdown();
        }
    }
    Ok(metrics_handle())
}

/// True when spans are exported as traces (an OTLP endpoint was configured and installed).
/// Hot paths check this before touching trace context.
#[inline]
pub fn tracing_enabled() -> bool {
    TRACING_ENABLED.load(Ordering::Relaxed)
}

/// Flushes and stops the trace exporter (waits up to 5 s); call once at graceful shutdown.
/// Does nothing when traces are off.
pub fn shutdown() {
    let provider = TRACER_PROVIDER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(provider) = provider {
        TRACING_ENABLED.store(false, Ordering::Release);
        if let Err(err) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
            eprintln!("trace exporter shutdown: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_settings_are_checked_and_name_the_key() {
        let ok = TelemetryConfig {
            otlp_endpoint: Some("http://127.0.0.1:4318/v1/traces".to_owned()),
            sample_ratio: 0.25,
            ..TelemetryConfig::default()
        };
        ok.validate().expect("valid");
        for (endpoint, needle) in [
            ("127.0.0.1:4318", "telemetry.otlp_endpoint"),
            ("not a url", "telemetry.otlp_endpoint"),
            ("https://collector:4318/v1/traces", "http://"),
            ("ftp://collector/v1/traces", "http://"),
        ] {
            let config = TelemetryConfig {
                otlp_endpoint: Some(endpoint.to_owned()),
                ..TelemetryConfig::default()
            };
            let err = config.validate().expect_err(endpoint).to_string();
            assert!(err.contains(needle), "{endpoint}: {err}");
            assert!(err.contains("telemetry.otlp_endpoint"), "{err}");
        }
        let ratio = TelemetryConfig {
            sample_ratio: 1.5,
            ..TelemetryConfig::default()
        };
        assert!(ratio
            .validate()
            .expect_err("ratio")
            .to_string()
            .contains("telemetry.sample_ratio"));
        assert!(TelemetryConfig::default().validate().is_ok());
        assert!(!tracing_enabled());
    }
}
