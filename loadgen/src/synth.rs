//! The synthetic events of `rtdash-loadgen load`: about 200 bytes each, three dimensions
//! (`region`, `plan`, and `key` with a configurable cardinality up to millions), a numeric
//! field `value` and a unique field `user_id`, optionally late.
//!
//! ```json
//! {"tenant_id":"tenant-0","source":"loadgen","event_type":"type-1","properties":{"region":"region-3",
//!  "plan":"plan-1","key":"k000417","value":31.27,"user_id":"u48213","pad":"xxxx"},
//!  "occurred_at":"2024-01-15T14:05:32.123Z"}
//! ```

use crate::agent::BodyFormat;
use crate::jsonw::{self, Timestamps};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::time::{now_millis, UnixMillis};

/// Number of `region` values.
pub const REGIONS: u32 = 8;
/// Number of `plan` values.
pub const PLANS: u32 = 3;
/// Name of the metric `load` can create for its events.
pub const LOAD_METRIC: &str = "load";

/// Shape of the generated events.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// Tenants `tenant-0`..
    pub tenants: u32,
    /// Event types `type-0`..
    pub event_types: u32,
    /// Distinct values of the `key` dimension.
    pub cardinality: u32,
    /// Distinct `user_id` values.
    pub users: u32,
    /// Share of events that are late.
    pub late_fraction: f64,
    /// Late events are late by a uniform 1..=this many seconds.
    pub late_max_secs: u32,
    /// Pad each event to about this many bytes (0: no padding).
    pub payload_bytes: usize,
}

/// The metric definition over the synthetic events for `tenant` (created through the gateway
/// with `load --gateway`): `value` by `region`, `plan` and `key`, distinct `user_id`.
pub fn load_metric(tenant: &str) -> MetricDefinition {
    MetricDefinition {
        name: LOAD_METRIC.to_owned(),
        tenant_id: Some(tenant.to_owned()),
        event_type: "*".to_owned(),
        field: Some("value".to_owned()),
        unique: Some("user_id".to_owned()),
        dimensions: vec!["region".into(), "plan".into(), "key".into()],
        rollups: Some(vec![vec!["region".into()], Vec::new()]),
        window_secs: 60,
        max_series_per_window: rtdash_shared::metric::DEFAULT_MAX_SERIES,
        description: Some("rtdash-loadgen load: value by region, plan, key".to_owned()),
    }
}

#[inline]
fn below(x: u64, n: u32) -> u32 {
    ((u128::from(x) * u128::from(n.max(1))) >> 64) as u32
}

/// Writes synthetic events.
#[derive(Clone, Debug)]
pub struct SynthGen {
    config: SynthConfig,
    rng: SmallRng,
    late_threshold: u64,
    timestamps: Timestamps,
    tenants: Vec<String>,
    event_types: Vec<String>,
    key_width: usize,
    pad: String,
}

impl SynthGen {
    /// A generator; `seed` makes runs repeatable.
    pub fn new(config: SynthConfig, seed: u64) -> Self {
        let key_width = config
            .cardinality
            .max(1)
            .saturating_sub(1)
            .to_string()
            .len()
            .max(6);
        let tenants = (0..config.tenants.max(1))
            .map(|i| format!("tenant-{i}"))
            .collect();
        let event_types = (0..config.event_types.max(1))
            .map(|i| format!("type-{i}"))
            .collect();
        let mut gen = Self {
            late_threshold: (config.late_fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64,
            config,
            rng: SmallRng::seed_from_u64(seed),
            timestamps: Timestamps::new(),
            tenants,
            event_types,
            key_width,
            pad: String::new(),
        };
        // Measure one unpadded event and pad the rest up to the requested size.
        let mut probe = Vec::new();
        gen.write_event(&mut probe, now_millis());
        let overhead = r#","pad":"""#.len();
        if gen.config.payload_bytes > probe.len() + overhead {
            gen.pad = "x".repeat(gen.config.payload_bytes - probe.len() - overhead);
        }
        gen
    }

    /// Tenants the generator uses.
    pub fn tenants(&self) -> &[String] {
        &self.tenants
    }

    /// Appends one event generated at `now`.
    pub fn write_event(&mut self, out: &mut Vec<u8>, now: UnixMillis) {
        let rng = &mut self.rng;
        let tenant = below(rng.next_u64(), self.tenants.len() as u32) as usize;
        let event_type = below(rng.next_u64(), self.event_types.len() as u32) as usize;
        let region = below(rng.next_u64(), REGIONS);
        let plan = below(rng.next_u64(), PLANS);
        let key = below(rng.next_u64(), self.config.cardinality);
        let normal: f64 = StandardNormal.sample(rng);
        let value = (3.0 + normal).exp();
        let user = below(rng.next_u64(), self.config.users);
        let occurred_at = if rng.next_u64() < self.late_threshold {
            let max_ms = u64::from(self.config.late_max_secs.max(1)) * 1000;
            now - 1000 - (rng.next_u64() % max_ms.saturating_sub(999).max(1)) as i64
        } else {
            now
        };
        out.extend_from_slice(br#"{"tenant_id":"#);
        jsonw::string(out, &self.tenants[tenant]);
        out.extend_from_slice(br#","source":"loadgen","event_type":"#);
        jsonw::string(out, &self.event_types[event_type]);
        out.extend_from_slice(br#","properties":{"region":"region-"#);
        jsonw::uint(out, u64::from(region));
        out.extend_from_slice(br#"","plan":"plan-"#);
        jsonw::uint(out, u64::from(plan));
        out.extend_from_slice(br#"","key":"k"#);
        let mut digits = Vec::with_capacity(12);
        jsonw::uint(&mut digits, u64::from(key));
        for _ in digits.len()..self.key_width {
            out.push(b'0');
        }
        out.extend_from_slice(&digits);
        out.extend_from_slice(br#"","value":"#);
        jsonw::fixed2(out, value);
        out.extend_from_slice(br#","user_id":"u"#);
        jsonw::uint(out, u64::from(user));
        out.push(b'"');
        if !self.pad.is_empty() {
            out.extend_from_slice(br#","pad":""#);
            out.extend_from_slice(self.pad.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(br#"},"occurred_at":"#);
        self.timestamps.write(out, occurred_at);
        out.push(b'}');
    }

    /// Appends a batch of `n` events in `format`.
    pub fn write_batch(&mut self, out: &mut Vec<u8>, n: usize, format: BodyFormat) {
        let now = now_millis();
        if format == BodyFormat::Json {
            out.push(b'[');
        }
        for i in 0..n {
            if i > 0 {
                out.push(if format == BodyFormat::Json {
                    b','
                } else {
                    b'\n'
                });
            }
            self.write_event(out, now);
        }
        out.push(if format == BodyFormat::Json {
            b']'
        } else {
            b'\n'
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::event::{parse_event, split_batch, EventLimits};

    fn config() -> SynthConfig {
        SynthConfig {
            tenants: 3,
            event_types: 4,
            cardinality: 1_000_000,
            users: 1000,
            late_fraction: 0.5,
            late_max_secs: 90,
            payload_bytes: 200,
        }
    }

    #[test]
    fn events_are_valid_and_about_the_requested_size() {
        let mut gen = SynthGen::new(config(), 3);
        let now = now_millis();
        let mut late = 0;
        for _ in 0..1000 {
            let mut out = Vec::new();
            gen.write_event(&mut out, now);
            assert!((195..=210).contains(&out.len()), "{}", out.len());
            let event = parse_event(&out, &EventLimits::default(), now).expect("valid");
            assert_eq!(event.property("key").map(|v| v.canonical().len()), Some(7));
            if event.occurred_at < now {
                late += 1;
                assert!(event.occurred_at <= now - 1000 && event.occurred_at >= now - 90_000);
            }
        }
        assert!((400..600).contains(&late), "{late}");
    }

    #[test]
    fn batches_split_into_every_event() {
        let mut gen = SynthGen::new(config(), 4);
        for format in [BodyFormat::Json, BodyFormat::Ndjson] {
            let mut out = Vec::new();
            gen.write_batch(&mut out, 50, format);
            let items = split_batch(&out, format == BodyFormat::Ndjson, 1000).expect("batch");
            assert_eq!(items.as_slice().len(), 50);
        }
        load_metric("tenant-0").validate().expect("valid metric");
    }
}
