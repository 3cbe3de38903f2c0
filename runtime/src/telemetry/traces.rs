//! The OpenTelemetry side: the OTLP/HTTP span exporter, the sampler, and the resource that
//! says which process the spans come from.

use super::TelemetryConfig;
use crate::config::ConfigError;
use opentelemetry::{Key, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::resource::{EnvResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;

/// Standard OpenTelemetry variables that also turn trace export on (the first one set is
/// used).
pub(super) const OTEL_ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// An OTLP/HTTP endpoint must be an absolute `http://host[:port][/path]` URL.
pub(super) fn check_endpoint(endpoint: &str) -> Result<(), String> {
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

/// The tracer provider exporting spans of `resource` over OTLP/HTTP through a batch
/// processor; fails, naming the setting, when the endpoint or the exporter cannot be set up.
pub(super) fn tracer_provider(
    config: &TelemetryConfig,
    resource: Resource,
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
    let exporter = builder.build().map_err(|source| ConfigError::Setup {
        key: key.to_owned(),
        what: "the OTLP exporter",
        source: Box::new(source),
    })?;
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}

/// The resource attribute naming the service.
pub(super) const SERVICE_NAME: &str = "service.name";

/// Which process the spans come from: `service.name` ([`service_name`]), `service.version`,
/// `service.instance.id` (random per start), `host.name`, `process.pid` and the SDK's
/// `telemetry.sdk.*`; `OTEL_RESOURCE_ATTRIBUTES` adds attributes and overrides these (so a
/// deployment can give a stable `service.instance.id`), except `service.name`.
pub(super) fn resource(component: &str, version: &str, config: &TelemetryConfig) -> Resource {
    let mut process = vec![
        KeyValue::new("service.version", version.to_owned()),
        KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()),
        KeyValue::new("process.pid", i64::from(std::process::id())),
    ];
    if let Some(host) = host_name() {
        process.push(KeyValue::new("host.name", host));
    }
    let detected = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(process)
        .with_detector(Box::new(EnvResourceDetector::new()))
        .build();
    let name_from_attributes = detected
        .get(&Key::from_static_str(SERVICE_NAME))
        .map(|name| name.to_string());
    let attributes: Vec<KeyValue> = detected
        .iter()
        .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
        .collect();
    Resource::builder_empty()
        .with_attributes(attributes)
        .with_service_name(service_name(component, config, name_from_attributes))
        .build()
}

/// `service.name`: `telemetry.service_name`, else `OTEL_SERVICE_NAME`, else `service.name` in
/// `OTEL_RESOURCE_ATTRIBUTES`, else the component.
fn service_name(
    component: &str,
    config: &TelemetryConfig,
    from_attributes: Option<String>,
) -> String {
    config
        .service_name
        .clone()
        .or_else(|| {
            std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|name| !name.trim().is_empty())
        })
        .or(from_attributes.filter(|name| !name.trim().is_empty()))
        .unwrap_or_else(|| component.to_owned())
}

/// The kernel's host name (Linux), else `HOSTNAME`; `None` when neither is known.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(resource: &Resource, key: &'static str) -> Option<String> {
        resource
            .get(&Key::from_static_str(key))
            .map(|value| value.to_string())
    }

    #[test]
    fn the_resource_names_service_version_instance_host_and_process() {
        let config = TelemetryConfig {
            service_name: Some("edge-agent-7".to_owned()),
            ..TelemetryConfig::default()
        };
        let first = resource("edge-agent", "1.2.3", &config);
        assert_eq!(
            attribute(&first, "service.name").as_deref(),
            Some("edge-agent-7")
        );
        assert_eq!(
            attribute(&first, "service.version").as_deref(),
            Some("1.2.3")
        );
        assert_eq!(
            attribute(&first, "process.pid"),
            Some(std::process::id().to_string())
        );
        let instance = attribute(&first, "service.instance.id").expect("instance id");
        assert!(uuid::Uuid::parse_str(&instance).is_ok(), "{instance}");
        assert_ne!(
            attribute(
                &resource("edge-agent", "1.2.3", &config),
                "service.instance.id"
            ),
            Some(instance),
            "one per start"
        );
        if cfg!(target_os = "linux") {
            assert!(attribute(&first, "host.name").is_some_and(|host| !host.is_empty()));
        }
        assert!(attribute(&first, "telemetry.sdk.name").is_some());
    }
}
