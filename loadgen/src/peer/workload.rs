//! The canonical windowed-aggregation workload of `shared/bench/peer-workload.md`, the one
//! Spark Structured Streaming and Flink were measured on, mapped onto rtdash.
//!
//! | peer field   | rtdash                                                  |
//! |--------------|---------------------------------------------------------|
//! | `tenant_id`  | the event's `tenant_id`, `t0`..`t9` (10 values)          |
//! | `event_type` | the event's `event_type`, `e0`..`e4` (5 values)          |
//! | `region`     | property `region`, integer 0..3                          |
//! | `plan`       | property `plan`, integer 0..2                            |
//! | `amount`     | property `amount`, `exp(3 + N(0,1))`                     |
//! | `user_id`    | property `user_id`, integer uniform over 0..99,999       |
//! | `occurred_at`| generation time; 5 % late by a uniform 0..50 s           |
//!
//! The metric [`peer_metric`] groups by `(event_type, region, plan)` per tenant (tenant is part
//! of every rtdash series key), so there are 10 × 5 × 4 × 3 = 600 groups per window, with
//! `count`, `sum`/`min`/`max` (+ t-digest percentiles, so `p99`) of `amount` and a HyperLogLog
//! of `user_id`. Its only dimension set is the full one (`rollups: []`), as in the peers'
//! `GROUP BY`. rtdash's built-in `events` metric (count by event type and source, 4 dimension
//! sets) cannot be switched off and is maintained as well: that is extra work the peers do not
//! do.
//!
//! Every field is drawn from its own PRNG output (xoshiro256++), so the keys are independent.

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rtdash_shared::event::{Event, Scalar};
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::time::UnixMillis;
use std::borrow::Cow;

/// Tenants of the workload (10).
pub const TENANTS: [&str; 10] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"];
/// Event types of the workload (5).
pub const EVENT_TYPES: [&str; 5] = ["e0", "e1", "e2", "e3", "e4"];
/// Number of regions (values 0..4).
pub const REGIONS: u32 = 4;
/// Number of plans (values 0..3).
pub const PLANS: u32 = 3;
/// Distinct users (values 0..100,000).
pub const USERS: u32 = 100_000;
/// Share of late events.
pub const LATE_FRACTION: f64 = 0.05;
/// Late events are late by a uniform 0..=this many milliseconds.
pub const LATE_MAX_MS: u32 = 50_000;
/// Tumbling window size.
pub const WINDOW_MS: i64 = 60_000;
/// Watermark delay: watermark = max event time seen - this.
pub const WATERMARK_DELAY_MS: i64 = 30_000;
/// Groups per window: tenants × event types × regions × plans.
pub const GROUPS: usize = TENANTS.len() * EVENT_TYPES.len() * (REGIONS * PLANS) as usize;
/// The `source` every peer event carries (rtdash requires one).
pub const SOURCE: &str = "peer";
/// Name of the rtdash metric computing the peer aggregation.
pub const METRIC_NAME: &str = "peer";

/// The rtdash metric definition of the peer aggregation.
pub fn peer_metric() -> MetricDefinition {
    MetricDefinition {
        name: METRIC_NAME.to_owned(),
        tenant_id: None,
        event_type: "*".to_owned(),
        field: Some("amount".to_owned()),
        unique: Some("user_id".to_owned()),
        dimensions: vec!["event_type".into(), "region".into(), "plan".into()],
        rollups: Some(Vec::new()),
        window_secs: (WINDOW_MS / 1000) as u32,
        max_series_per_window: rtdash_shared::metric::DEFAULT_MAX_SERIES,
        description: Some(
            "Peer benchmark: count, sum/min/max/p99 of amount, distinct users by (tenant, event_type, region, plan)"
                .to_owned(),
        ),
    }
}

/// One generated event, before it is turned into an rtdash [`Event`] or JSON.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerEvent {
    /// Index into [`TENANTS`].
    pub tenant: u8,
    /// Index into [`EVENT_TYPES`].
    pub event_type: u8,
    /// 0..[`REGIONS`].
    pub region: u8,
    /// 0..[`PLANS`].
    pub plan: u8,
    /// `exp(3 + N(0,1))`.
    pub amount: f64,
    /// 0..[`USERS`].
    pub user_id: u32,
    /// Event time.
    pub occurred_at: UnixMillis,
    /// Whether the generator made this event late.
    pub late: bool,
}

/// Maps a uniform 64-bit value onto `0..n` (multiply-shift, no modulo correlation).
#[inline]
fn below(x: u64, n: u32) -> u32 {
    ((u128::from(x) * u128::from(n)) >> 64) as u32
}

/// Generates the workload's events.
#[derive(Clone, Debug)]
pub struct PeerGenerator {
    rng: SmallRng,
    late_threshold: u64,
}

impl PeerGenerator {
    /// A generator seeded with `seed` (each worker uses its own seed).
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            late_threshold: (LATE_FRACTION * u64::MAX as f64) as u64,
        }
    }

    /// The next event, generated at `now`.
    #[inline]
    pub fn next_event(&mut self, now: UnixMillis) -> PeerEvent {
        let rng = &mut self.rng;
        let tenant = below(rng.next_u64(), TENANTS.len() as u32) as u8;
        let event_type = below(rng.next_u64(), EVENT_TYPES.len() as u32) as u8;
        let region = below(rng.next_u64(), REGIONS) as u8;
        let plan = below(rng.next_u64(), PLANS) as u8;
        let normal: f64 = StandardNormal.sample(rng);
        let amount = (3.0 + normal).exp();
        let user_id = below(rng.next_u64(), USERS);
        let late = rng.next_u64() < self.late_threshold;
        let occurred_at = if late {
            now - i64::from(below(rng.next_u64(), LATE_MAX_MS + 1))
        } else {
            now
        };
        PeerEvent {
            tenant,
            event_type,
            region,
            plan,
            amount,
            user_id,
            occurred_at,
            late,
        }
    }
}

/// A reusable rtdash [`Event`] that generated events are written into without allocating.
#[derive(Debug)]
pub struct EventSlot {
    event: Event<'static>,
}

const REGION: usize = 0;
const PLAN: usize = 1;
const AMOUNT: usize = 2;
const USER: usize = 3;

impl Default for EventSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl EventSlot {
    /// An empty slot.
    pub fn new() -> Self {
        let properties = vec![
            (Cow::Borrowed("region"), Scalar::Int(0)),
            (Cow::Borrowed("plan"), Scalar::Int(0)),
            (Cow::Borrowed("amount"), Scalar::Float(0.0)),
            (Cow::Borrowed("user_id"), Scalar::Int(0)),
        ];
        Self {
            event: Event {
                id: None,
                tenant_id: Cow::Borrowed(TENANTS[0]),
                source: Cow::Borrowed(SOURCE),
                event_type: Cow::Borrowed(EVENT_TYPES[0]),
                properties,
                occurred_at: 0,
                weight: 1,
            },
        }
    }

    /// Writes `e` into the slot and returns the event.
    #[inline]
    pub fn fill(&mut self, e: &PeerEvent) -> &Event<'static> {
        let event = &mut self.event;
        event.tenant_id = Cow::Borrowed(TENANTS[usize::from(e.tenant)]);
        event.event_type = Cow::Borrowed(EVENT_TYPES[usize::from(e.event_type)]);
        event.properties[REGION].1 = Scalar::Int(i64::from(e.region));
        event.properties[PLAN].1 = Scalar::Int(i64::from(e.plan));
        event.properties[AMOUNT].1 = Scalar::Float(e.amount);
        event.properties[USER].1 = Scalar::Int(i64::from(e.user_id));
        event.occurred_at = e.occurred_at;
        &self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::metric::MetricSet;

    #[test]
    fn metric_is_valid_with_one_dimension_set() {
        let def = peer_metric();
        def.validate().expect("valid");
        assert_eq!(def.dimension_sets().len(), 1);
    }

    #[test]
    fn distributions_follow_the_spec() {
        let mut generator = PeerGenerator::new(7);
        let n = 200_000;
        let now = 1_000_000_000;
        let mut late = 0;
        let mut amounts = Vec::with_capacity(n);
        let mut tenants = [0u32; 10];
        let mut max_user = 0;
        for _ in 0..n {
            let e = generator.next_event(now);
            tenants[usize::from(e.tenant)] += 1;
            assert!(e.event_type < 5 && e.region < 4 && e.plan < 3);
            max_user = max_user.max(e.user_id);
            if e.late {
                late += 1;
                assert!(e.occurred_at <= now && e.occurred_at >= now - 50_000);
            } else {
                assert_eq!(e.occurred_at, now);
            }
            amounts.push(e.amount);
        }
        let late_share = f64::from(late) / n as f64;
        assert!((0.045..0.055).contains(&late_share), "{late_share}");
        amounts.sort_by(f64::total_cmp);
        let median = amounts[n / 2];
        assert!((19.0..21.5).contains(&median), "median {median}");
        for count in tenants {
            assert!((19_000..21_000).contains(&count));
        }
        assert!(max_user > 99_000 && max_user < USERS);
    }

    #[test]
    fn slot_events_feed_the_peer_metric() {
        let set = MetricSet::new([peer_metric()]);
        let mut slot = EventSlot::new();
        let e = PeerGenerator::new(1).next_event(1_000_000);
        let mut names = Vec::new();
        set.for_each_match(slot.fill(&e), |m| names.push(m.def.name.clone()));
        names.sort();
        assert_eq!(names, ["events", "peer"]);
    }
}
