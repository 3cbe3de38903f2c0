//! The checks [`AgentConfig`] passes at start: a bad value stops the agent with one line
//! naming the key (exit 64).

use super::sections::{KIB, MIB};
use super::AgentConfig;
use rtdash_runtime::config::{ConfigError, Validate};
use rtdash_shared::event::is_identifier;
use rtdash_shared::names;

/// Whether `site` is a valid edge site id: 1 to 32 of `a-z 0-9 -`, not starting or ending
/// with `-` (it is a subject token and part of the JetStream domain `edge-<site>`).
fn is_site_id(site: &str) -> bool {
    !site.is_empty()
        && site.len() <= 32
        && site
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !site.starts_with('-')
        && !site.ends_with('-')
}

/// Whether `prefix` can start a subject: dot-separated tokens of `[A-Za-z0-9_-]`.
fn is_subject_prefix(prefix: &str) -> bool {
    prefix.len() <= 128
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

impl Validate for AgentConfig {
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        self.nats.read_secret_files()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.telemetry.validate()?;
        self.auth.validate(&self.listen)?;
        self.http.validate("http")?;
        if let Some(id) = &self.agent_id {
            if !is_identifier(id, 64) {
                return Err(ConfigError::invalid(
                    "agent_id",
                    "must be 1 to 64 characters from [A-Za-z0-9_-]",
                ));
            }
        }
        if let Some(site) = &self.site {
            if !is_site_id(site) {
                return Err(ConfigError::invalid(
                    "site",
                    "must be 1 to 32 of a-z, 0-9 and '-', not starting or ending with '-'",
                ));
            }
            if let Some(prefix) = &self.subject_prefix {
                if *prefix != names::edge_subject_prefix(site) {
                    return Err(ConfigError::invalid(
                        "subject_prefix",
                        format!(
                            "must be `{}` with site = \"{site}\" (the site's streams capture only that), or left out",
                            names::edge_subject_prefix(site)
                        ),
                    ));
                }
            }
        }
        if let Some(prefix) = &self.subject_prefix {
            if !is_subject_prefix(prefix) {
                return Err(ConfigError::invalid(
                    "subject_prefix",
                    "must be dot-separated tokens of [A-Za-z0-9_-] (no wildcards), at most 128 bytes",
                ));
            }
        }
        if !(10..=1000).contains(&self.flush_interval_ms) {
            return Err(ConfigError::invalid(
                "flush_interval_ms",
                "must be 10 to 1000 (windows must see deltas at least every second)",
            ));
        }
        if self.heartbeat_interval_ms < self.flush_interval_ms
            || self.heartbeat_interval_ms > 60_000
        {
            return Err(ConfigError::invalid(
                "heartbeat_interval_ms",
                "must be at least flush_interval_ms and at most 60000",
            ));
        }
        if self.shards > 256 {
            return Err(ConfigError::invalid("shards", "must be at most 256"));
        }
        if self.memory_budget_bytes < 16 * MIB {
            return Err(ConfigError::invalid(
                "memory_budget_bytes",
                "must be at least 16 MiB",
            ));
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("state_dir", "must not be empty"));
        }
        let ingest = &self.ingest;
        positive("ingest.max_body_bytes", ingest.max_body_bytes)?;
        if ingest.max_decompressed_bytes < ingest.max_body_bytes {
            return Err(ConfigError::invalid(
                "ingest.max_decompressed_bytes",
                "must be at least ingest.max_body_bytes",
            ));
        }
        positive("ingest.max_batch_items", ingest.max_batch_items as u64)?;
        positive(
            "ingest.max_concurrent_requests",
            ingest.max_concurrent_requests as u64,
        )?;
        positive("ingest.retry_after_secs", ingest.retry_after_secs)?;
        if !(4 * KIB..=4 * MIB).contains(&self.publish.max_batch_bytes) {
            return Err(ConfigError::invalid(
                "publish.max_batch_bytes",
                "must be 4 KiB to 4 MiB (the partials stream accepts messages up to 8 MiB)",
            ));
        }
        positive("publish.max_in_flight", self.publish.max_in_flight as u64)?;
        if self.publish.ack_timeout_ms < 100 {
            return Err(ConfigError::invalid(
                "publish.ack_timeout_ms",
                "must be at least 100",
            ));
        }
        positive(
            "publish.retry_backoff_max_ms",
            self.publish.retry_backoff_max_ms,
        )?;
        if self.spool.max_bytes < self.spool.memory_bytes {
            return Err(ConfigError::invalid(
                "spool.max_bytes",
                "must be at least spool.memory_bytes",
            ));
        }
        if self.spool.memory_bytes >= self.memory_budget_bytes {
            return Err(ConfigError::invalid(
                "spool.memory_bytes",
                "must be below memory_budget_bytes",
            ));
        }
        if self.spool.segment_bytes < MIB {
            return Err(ConfigError::invalid(
                "spool.segment_bytes",
                "must be at least 1 MiB",
            ));
        }
        positive(
            "spool.seq_persist_interval_ms",
            self.spool.seq_persist_interval_ms,
        )?;
        positive("dlq.max_raw_bytes", self.dlq.max_raw_bytes as u64)?;
        positive("dlq.queue_bytes", self.dlq.queue_bytes)?;
        if !(KIB as usize..=16 * MIB as usize).contains(&self.archive.effective_chunk_bytes()) {
            return Err(ConfigError::invalid(
                "archive.chunk_bytes",
                "must be 1 KiB to 16 MiB",
            ));
        }
        if self.archive.max_queue_bytes < self.archive.effective_chunk_bytes() as u64 {
            return Err(ConfigError::invalid(
                "archive.max_queue_bytes",
                "must be at least archive.chunk_bytes",
            ));
        }
        if !(-7..=19).contains(&self.archive.zstd_level) {
            return Err(ConfigError::invalid(
                "archive.zstd_level",
                "must be -7 to 19",
            ));
        }
        if self.limits.max_event_bytes == 0 {
            return Err(ConfigError::invalid(
                "limits.max_event_bytes",
                "must be positive",
            ));
        }
        self.nats.validate()?;
        self.validate_protocols()?;
        self.streams.validate()
    }
}

impl AgentConfig {
    /// `[segment]`, `[otlp]`, `[statsd]`, `[idempotency]`.
    fn validate_protocols(&self) -> Result<(), ConfigError> {
        let max = self.limits.max_identifier_len;
        let tenants = [
            ("segment.tenant", &self.segment.tenant),
            ("otlp.tenant", &self.otlp.tenant),
            ("statsd.tenant", &self.statsd.tenant),
            ("segment.source", &self.segment.source),
            ("otlp.default_event_type", &self.otlp.default_event_type),
        ];
        for (key, value) in tenants {
            if value.as_deref().is_some_and(|v| !is_identifier(v, max)) {
                return Err(ConfigError::invalid(
                    key,
                    "must be 1 to 128 of [A-Za-z0-9_-]",
                ));
            }
        }
        if let Some(tenant) = self
            .segment
            .write_keys
            .values()
            .find(|tenant| !is_identifier(tenant, max))
        {
            return Err(ConfigError::invalid(
                "segment.write_keys",
                format!("tenant `{tenant}` must be 1 to 128 of [A-Za-z0-9_-]"),
            ));
        }
        for (key, value) in [
            ("otlp.default_source", &self.otlp.default_source),
            ("statsd.source", &self.statsd.source),
        ] {
            if !is_identifier(value, max) {
                return Err(ConfigError::invalid(
                    key,
                    "must be 1 to 128 of [A-Za-z0-9_-]",
                ));
            }
        }
        if self.segment.max_message_bytes < 32 * KIB
            || self.segment.max_batch_bytes < 500 * KIB
            || self.segment.max_batch_bytes > self.ingest.max_decompressed_bytes
        {
            return Err(ConfigError::invalid(
                "segment.max_batch_bytes",
                "segment.max_message_bytes must be at least 32 KiB and segment.max_batch_bytes \
                 500 KiB to ingest.max_decompressed_bytes (what Segment SDKs send)",
            ));
        }
        if self.statsd.tenant.is_some()
            && self.statsd.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(ConfigError::invalid(
                "statsd.listen",
                "must be an IP address and port, such as 127.0.0.1:8125",
            ));
        }
        positive("statsd.batch_lines", self.statsd.batch_lines as u64)?;
        if self.idempotency.horizon_secs < 60 {
            return Err(ConfigError::invalid(
                "idempotency.horizon_secs",
                "must be at least 60",
            ));
        }
        if !(1024..=1 << 32).contains(&self.idempotency.max_ids) {
            return Err(ConfigError::invalid(
                "idempotency.max_ids",
                "must be 1024 to 4294967296",
            ));
        }
        positive(
            "idempotency.persist_interval_ms",
            self.idempotency.persist_interval_ms,
        )?;
        let schema = &self.schema;
        positive("schema.horizon_secs", schema.horizon_secs)?;
        if schema.publish_interval_ms < 100 {
            return Err(ConfigError::invalid(
                "schema.publish_interval_ms",
                "must be at least 100",
            ));
        }
        for (key, value, max) in [
            ("schema.max_tenants", schema.max_tenants, 100_000),
            ("schema.max_event_types", schema.max_event_types, 10_000),
            ("schema.max_properties", schema.max_properties, 1_000),
            (
                "schema.max_total_properties",
                schema.max_total_properties,
                10_000_000,
            ),
            ("schema.max_example_chars", schema.max_example_chars, 1_024),
        ] {
            if !(1..=max).contains(&value) {
                return Err(ConfigError::invalid(key, format!("must be 1 to {max}")));
            }
        }
        Ok(())
    }
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be positive"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ArchiveCompression;
    use rtdash_runtime::config::load_from;

    fn env(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_listen_on_loopback() {
        let config: AgentConfig = load_from("edge-agent", None, env(&[])).expect("defaults");
        assert_eq!(config.listen, "127.0.0.1:8081");
        assert_eq!(config.flush_interval_ms, 500);
        assert_eq!(config.ingest.max_batch_items, 100_000);
        assert!(!config.archive_events);
        assert_eq!(config.archive.compression, ArchiveCompression::None);
        assert_eq!(config.archive.effective_chunk_bytes(), 256 * 1024);
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let config: AgentConfig = load_from(
            "edge-agent",
            None,
            env(&[
                ("RTDASH_EDGE_AGENT__INGEST__MAX_BODY_BYTES", "1048576"),
                ("RTDASH_EDGE_AGENT__ARCHIVE_EVENTS", "true"),
                ("RTDASH_EDGE_AGENT__AGENT_ID", "edge-7"),
                ("RTDASH_EDGE_AGENT__ARCHIVE__COMPRESSION", "zstd"),
                ("RTDASH_NATS__URL", "nats://10.1.2.3:4222"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.archive.compression, ArchiveCompression::Zstd);
        assert_eq!(config.archive.effective_chunk_bytes(), 1024 * 1024);
        assert_eq!(config.ingest.max_body_bytes, 1_048_576);
        assert!(config.archive_events);
        assert_eq!(config.agent_id.as_deref(), Some("edge-7"));
        assert_eq!(config.nats.url, "nats://10.1.2.3:4222");
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (key, value, expected) in [
            (
                "RTDASH_EDGE_AGENT__FLUSH_INTERVAL_MS",
                "5000",
                "flush_interval_ms",
            ),
            ("RTDASH_EDGE_AGENT__AGENT_ID", "a.b", "agent_id"),
            (
                "RTDASH_EDGE_AGENT__PUBLISH__MAX_BATCH_BYTES",
                "10",
                "publish.max_batch_bytes",
            ),
            ("RTDASH_EDGE_AGENT__FLUSH_INTERVAL", "5", "flush_interval"),
            ("RTDASH_EDGE_AGENT__SITE", "S1", "site"),
            (
                "RTDASH_EDGE_AGENT__ARCHIVE__ZSTD_LEVEL",
                "30",
                "archive.zstd_level",
            ),
            ("RTDASH_EDGE_AGENT__SITE", "s1-", "site"),
            (
                "RTDASH_EDGE_AGENT__SUBJECT_PREFIX",
                "rtdash.*",
                "subject_prefix",
            ),
            (
                "RTDASH_EDGE_AGENT__SUBJECT_PREFIX",
                "a..b",
                "subject_prefix",
            ),
        ] {
            let err =
                load_from::<AgentConfig>("edge-agent", None, env(&[(key, value)])).expect_err(key);
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn a_site_implies_the_prefix_and_no_topology() {
        let direct: AgentConfig = load_from("edge-agent", None, env(&[])).expect("defaults");
        assert_eq!(direct.resolved_subject_prefix(), "rtdash");
        assert!(direct.creates_topology());

        let site: AgentConfig = load_from(
            "edge-agent",
            None,
            env(&[("RTDASH_EDGE_AGENT__SITE", "eu-west-1")]),
        )
        .expect("valid");
        assert_eq!(site.resolved_subject_prefix(), "rtdash.edge.eu-west-1");
        assert!(!site.creates_topology());

        let explicit: AgentConfig = load_from(
            "edge-agent",
            None,
            env(&[
                ("RTDASH_EDGE_AGENT__SITE", "s1"),
                ("RTDASH_EDGE_AGENT__SUBJECT_PREFIX", "rtdash.edge.s1"),
            ]),
        )
        .expect("the implied prefix may be spelled out");
        assert_eq!(explicit.resolved_subject_prefix(), "rtdash.edge.s1");
        let err = load_from::<AgentConfig>(
            "edge-agent",
            None,
            env(&[
                ("RTDASH_EDGE_AGENT__SITE", "s1"),
                ("RTDASH_EDGE_AGENT__SUBJECT_PREFIX", "rtdash.edge.s2"),
            ]),
        )
        .expect_err("a prefix the site's streams do not capture");
        assert!(err.to_string().contains("rtdash.edge.s1"), "{err}");

        let custom: AgentConfig = load_from(
            "edge-agent",
            None,
            env(&[("RTDASH_EDGE_AGENT__SUBJECT_PREFIX", "acme.rtdash")]),
        )
        .expect("valid");
        assert!(
            !custom.creates_topology(),
            "streams for another prefix are not rtdash's"
        );
        for ok in ["s1", "a", "eu-west-1", &"x".repeat(32)] {
            assert!(is_site_id(ok), "{ok}");
        }
        for bad in ["", "S1", "a.b", "a_b", "-a", "a-", &"x".repeat(33)] {
            assert!(!is_site_id(bad), "{bad}");
        }
    }
}
