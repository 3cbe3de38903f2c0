//! The peer workload sent through a real edge agent over HTTP: events generated in this
//! process (as the peers generate theirs in-engine), serialised as JSON arrays of 1,000 and
//! posted by [`crate::openloop`]. The agent parses, validates and aggregates them with the same
//! [`Aggregator`](rtdash_shared::aggregate::Aggregator) and publishes partials to JetStream.
//! Unlike the peers' runs, this one pays for JSON, HTTP and the generator sharing the machine's
//! two cores with the agent (and NATS, and whatever else the stack runs).

use super::workload::{peer_metric, PeerGenerator, EVENT_TYPES, SOURCE, TENANTS};
use crate::agent::BodyFormat;
use crate::jsonw::{self, Timestamps};
use crate::openloop::BatchSource;
use bytes::Bytes;
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::time::now_millis;

/// The peer metric defined for one tenant (the gateway API defines metrics per tenant).
pub fn peer_metric_for(tenant: &str) -> MetricDefinition {
    MetricDefinition {
        tenant_id: Some(tenant.to_owned()),
        ..peer_metric()
    }
}

/// Batches of peer events as JSON.
pub struct PeerSource {
    generator: PeerGenerator,
    timestamps: Timestamps,
    batch_size: usize,
    format: BodyFormat,
    capacity: usize,
}

impl PeerSource {
    /// A source seeded with `seed`.
    pub fn new(seed: u64, batch_size: usize, format: BodyFormat) -> Self {
        Self {
            generator: PeerGenerator::new(seed),
            timestamps: Timestamps::new(),
            batch_size,
            format,
            capacity: batch_size * 200,
        }
    }

    /// Appends one batch generated now.
    pub fn write_batch(&mut self, out: &mut Vec<u8>) {
        let now = now_millis();
        let json = self.format == BodyFormat::Json;
        if json {
            out.push(b'[');
        }
        for i in 0..self.batch_size {
            if i > 0 {
                out.push(if json { b',' } else { b'\n' });
            }
            let e = self.generator.next_event(now);
            out.extend_from_slice(br#"{"tenant_id":""#);
            out.extend_from_slice(TENANTS[usize::from(e.tenant)].as_bytes());
            out.extend_from_slice(br#"","source":""#);
            out.extend_from_slice(SOURCE.as_bytes());
            out.extend_from_slice(br#"","event_type":""#);
            out.extend_from_slice(EVENT_TYPES[usize::from(e.event_type)].as_bytes());
            out.extend_from_slice(br#"","properties":{"region":"#);
            jsonw::uint(out, u64::from(e.region));
            out.extend_from_slice(br#","plan":"#);
            jsonw::uint(out, u64::from(e.plan));
            out.extend_from_slice(br#","amount":"#);
            jsonw::fixed2(out, e.amount);
            out.extend_from_slice(br#","user_id":"#);
            jsonw::uint(out, u64::from(e.user_id));
            out.extend_from_slice(br#"},"occurred_at":"#);
            self.timestamps.write(out, e.occurred_at);
            out.push(b'}');
        }
        out.push(if json { b']' } else { b'\n' });
    }
}

impl BatchSource for PeerSource {
    fn next_batch(&mut self) -> Option<(Bytes, u64)> {
        let mut out = Vec::with_capacity(self.capacity);
        self.write_batch(&mut out);
        self.capacity = self.capacity.max(out.len() + 1024);
        Some((Bytes::from(out), self.batch_size as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::event::{parse_event, split_batch, EventLimits};
    use rtdash_shared::metric::MetricSet;

    #[test]
    fn batches_parse_and_feed_the_peer_metric() {
        let mut source = PeerSource::new(5, 100, BodyFormat::Json);
        let mut out = Vec::new();
        source.write_batch(&mut out);
        let items = split_batch(&out, false, 1000).expect("batch");
        assert_eq!(items.as_slice().len(), 100);
        let set = MetricSet::new([peer_metric_for("t3")]);
        let now = now_millis();
        let mut matched = 0;
        for raw in items.as_slice() {
            let event = parse_event(raw, &EventLimits::default(), now).expect("valid");
            set.for_each_match(&event, |m| {
                if m.def.name == "peer" {
                    matched += 1;
                }
            });
        }
        assert!(matched > 0 && matched < 100, "{matched}");
        // average event size, for the report
        assert!(out.len() / 100 < 200, "{}", out.len() / 100);
    }
}
