//! Logs, metrics and traces: `tracing` to stderr (human-readable by default, JSON on request),
//! a Prometheus recorder behind the `metrics` facade, and, when an OTLP endpoint is configured,
//! the `tracing` spans exported as OpenTelemetry traces over OTLP/HTTP (protobuf).
//!
//! Traces are off by default: without `telemetry.otlp_endpoint` (or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) no exporter and no
//! OpenTelemetry layer is installed, and [`tracing_enabled`] is false, so the trace-context
//! helpers in [`crate::trace_context`] do nothing. With an endpoint, spans go through a batch
//! processor (its own thread, `OTEL_BSP_*` variables apply) and [`shutdown`] flushes them.

use crate::config::ConfigError;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

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
    /// `service.name` of the exported spans; default `OTEL_SERVICE_NAME`, else the component
    /// (`edge-agent`, `core-aggregator`, `gateway`).
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

/// Standard OpenTelemetry variables that also turn trace export on.
const OTEL_ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

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

/// An OTLP/HTTP endpoint must be an absolute `http://host[:port][/path]` URL.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = url::Url::parse(endpoint).map_err(|err| format!("is not a URL: {err}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "must be an http:// URL (got scheme {:?}; TLS is left to a local collector)",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    Ok(())
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();
static TRACER_PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);
static TRACING_ENABLED: AtomicBool = AtomicBool::new(false);

/// Installs the log subscriber, the trace exporter when configured (see the module docs) and
/// the metrics recorder (once per process; later calls only return the existing metrics
/// handle). `component` is the default `service.name`. Returns the handle `/metrics` renders
/// from; fails, naming the setting, when the trace exporter cannot be set up (exit code 64).
pub fn init(component: &str, config: &TelemetryConfig) -> Result<PrometheusHandle, ConfigError> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = if config.traces_configured() {
        Some(tracer_provider(component, config)?)
    } else {
        None
    };
    let otel_layer = provider.as_ref().map(|provider| {
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
    if let Some(provider) = provider {
        if installed {
            *TRACER_PROVIDER.lock().unwrap_or_else(|e| e.into_inner()) = Some(provider);
            TRACING_ENABLED.store(true, Ordering::Release);
            tracing::info!(service = %service_name(component, config), "exporting traces over OTLP");
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

fn service_name(component: &str, config: &TelemetryConfig) -> String {
    config
        .service_name
        .clone()
        .or_else(|| {
            std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|name| !name.trim().is_empty())
        })
        .unwrap_or_else(|| component.to_owned())
}

fn tracer_provider(
    component: &str,
    config: &TelemetryConfig,
) -> Result<SdkTracerProvider, ConfigError> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
    let key = match &config.otlp_endpoint {
        Some(endpoint) => {
            builder = builder.with_endpoint(endpoint.clone());
            "telemetry.otlp_endpoint"
        }
        None => OTEL_ENDPOINT_VARS
            .into_iter()
            .find(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()))
            .unwrap_or("OTEL_EXPORTER_OTLP_ENDPOINT"),
    };
    if config.otlp_endpoint.is_none() {
        if let Ok(endpoint) = std::env::var(key) {
            check_endpoint(&endpoint).map_err(|problem| {
                ConfigError::invalid(key, format!("{problem} ({endpoint:?})"))
            })?;
        }
    }
    let exporter = builder.build().map_err(|err| {
        ConfigError::invalid(key, format!("cannot set up the OTLP exporter: {err}"))
    })?;
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name(component, config))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn metrics_handle() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); ours still renders what it sees.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
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
