//! Events per second per tenant at this agent (the `events_per_second` quota of issue #16): a
//! token bucket per tenant holding one second of its limit. A request is charged the events
//! it had accepted after it was processed (so a batch is never split), which may leave the
//! bucket in debt; while it is, the tenant's next requests are answered `429 quota_exceeded`
//! with `Retry-After` until the debt is paid back. Only requests whose credentials name a
//! tenant are limited (an ingest key, a sidecar's tenant, a protocol's resolved tenant); the
//! operator's key sends for the tenants its events name, and is trusted.
//!
//! The limit: the operator's `events_per_second` in `quota.<tenant>` of the keys bucket (the
//! gateway's `PUT /v1/tenants/{tenant}/quotas`), else `[quotas] events_per_second` of the
//! agent; 0 means no limit. The stored settings are decoded when the key store's quotas
//! changed (its generation moved), not per request, and outside the buckets' lock; a bucket
//! takes the new limit on its next request. Hand-written rather than a rate-limiting crate: the debt rule (charge
//! after, refuse while in debt) is the point, and it is a few lines.

use crate::tenant_quota;
use rtdash_runtime::keys::KeyStore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// At most this many tenants are tracked; idle ones are dropped first.
const MAX_TENANTS: usize = 10_000;
/// A bucket not refilled for this long is idle (dropped first when the tenants are too many).
const IDLE: Duration = Duration::from_secs(60);

/// The operator's `events_per_second` per tenant, decoded from the key store's quotas of one
/// generation.
#[derive(Debug, Default)]
struct StoredLimits {
    /// The key store's quota generation decoded; `None`: nothing read yet.
    generation: Option<u64>,
    by_tenant: HashMap<String, u64>,
}

impl StoredLimits {
    /// The limits set in `stored` (tenant, `quota.<tenant>` value) pairs of `generation`.
    fn decode(generation: u64, stored: Vec<(String, Vec<u8>)>) -> Self {
        let by_tenant = stored
            .into_iter()
            .filter_map(|(tenant, value)| {
                Some((tenant, tenant_quota::decode(&value)?.events_per_second?))
            })
            .collect();
        Self {
            generation: Some(generation),
            by_tenant,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    /// Events per second; 0: unlimited.
    limit: u64,
    /// The [`StoredLimits::generation`] `limit` was taken from.
    limit_generation: Option<u64>,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        let limit = self.limit as f64;
        self.tokens = (self.tokens + elapsed * limit).min(limit);
    }
}

/// A refusal: the limit in force and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    /// Events per second allowed.
    pub limit: u64,
    /// Seconds until the debt is paid back (at least 1).
    pub retry_after_secs: u64,
}

/// The buckets of the tenants seen.
#[derive(Debug)]
pub struct TenantRates {
    default_limit: u64,
    keys: Option<KeyStore>,
    stored: Mutex<Arc<StoredLimits>>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl TenantRates {
    /// `default_limit` for tenants the operator set nothing for (0: unlimited); `keys`: where
    /// the operator's settings are (none for a sidecar without a key store).
    pub fn new(default_limit: u64, keys: Option<KeyStore>) -> Self {
        Self {
            default_limit,
            keys,
            stored: Mutex::default(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The stored limits, decoded again only when the key store's quotas changed.
    fn stored_limits(&self) -> Arc<StoredLimits> {
        let held = Arc::clone(&lock(&self.stored));
        let Some(keys) = &self.keys else {
            return held;
        };
        if held.generation == Some(keys.quota_generation()) {
            return held;
        }
        let (generation, stored) = keys.quotas();
        let fresh = Arc::new(StoredLimits::decode(generation, stored));
        *lock(&self.stored) = Arc::clone(&fresh);
        fresh
    }

    fn limit_of(&self, stored: &StoredLimits, tenant: &str) -> u64 {
        stored
            .by_tenant
            .get(tenant)
            .copied()
            .unwrap_or(self.default_limit)
    }

    fn with_bucket<T>(&self, tenant: &str, now: Instant, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let stored = self.stored_limits();
        let mut buckets = lock(&self.buckets);
        if !buckets.contains_key(tenant) && buckets.len() >= MAX_TENANTS {
            // Full buckets of idle tenants hold no information.
            buckets
                .retain(|_, b| b.limit > 0 && b.tokens < b.limit as f64 && now - b.refilled < IDLE);
            if buckets.len() >= MAX_TENANTS {
                if let Some(oldest) = buckets
                    .iter()
                    .min_by_key(|(_, b)| b.refilled)
                    .map(|(k, _)| k.clone())
                {
                    buckets.remove(&oldest);
                }
            }
        }
        let bucket = buckets.entry(tenant.to_owned()).or_insert_with(|| {
            let limit = self.limit_of(&stored, tenant);
            Bucket {
                limit,
                limit_generation: stored.generation,
                tokens: limit as f64,
                refilled: now,
            }
        });
        if bucket.limit_generation != stored.generation {
            bucket.limit = self.limit_of(&stored, tenant);
            bucket.limit_generation = stored.generation;
        }
        bucket.refill(now);
        f(bucket)
    }

    /// `Err` while `tenant` is in debt.
    pub fn check(&self, tenant: &str) -> Result<(), OverQuota> {
        self.check_at(tenant, Instant::now())
    }

    fn check_at(&self, tenant: &str, now: Instant) -> Result<(), OverQuota> {
        self.with_bucket(tenant, now, |bucket| {
            if bucket.limit == 0 || bucket.tokens >= 0.0 {
                return Ok(());
            }
            let debt_secs = -bucket.tokens / bucket.limit as f64;
            Err(OverQuota {
                limit: bucket.limit,
                retry_after_secs: (debt_secs.ceil() as u64).max(1),
            })
        })
    }

    /// Charges `events` accepted for `tenant`.
    pub fn charge(&self, tenant: &str, events: u64) {
        self.charge_at(tenant, events, Instant::now());
    }

    fn charge_at(&self, tenant: &str, events: u64, now: Instant) {
        if events == 0 {
            return;
        }
        self.with_bucket(tenant, now, |bucket| {
            if bucket.limit > 0 {
                bucket.tokens -= events as f64;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_over_its_rate_is_refused_until_its_debt_is_paid() {
        let rates = TenantRates::new(100, None);
        let t0 = Instant::now();
        assert!(rates.check_at("a", t0).is_ok());
        rates.charge_at("a", 100, t0);
        assert!(
            rates.check_at("a", t0).is_ok(),
            "exactly its second's worth"
        );
        rates.charge_at("a", 150, t0);
        assert_eq!(
            rates.check_at("a", t0),
            Err(OverQuota {
                limit: 100,
                retry_after_secs: 2
            })
        );
        assert!(
            rates.check_at("b", t0).is_ok(),
            "another tenant is not affected"
        );
        assert!(
            rates
                .check_at("a", t0 + Duration::from_millis(1_400))
                .is_err(),
            "still 10 events in debt"
        );
        assert!(rates
            .check_at("a", t0 + Duration::from_millis(1_600))
            .is_ok());
    }

    #[test]
    fn zero_is_unlimited() {
        let rates = TenantRates::new(0, None);
        let t0 = Instant::now();
        rates.charge_at("a", 10_000_000, t0);
        assert!(rates.check_at("a", t0).is_ok());
    }

    #[test]
    fn the_number_of_tenants_tracked_is_bounded() {
        let rates = TenantRates::new(10, None);
        let t0 = Instant::now();
        for i in 0..MAX_TENANTS + 50 {
            rates.charge_at(&format!("t{i}"), 1, t0);
        }
        let tracked = rates.buckets.lock().unwrap().len();
        assert!(tracked <= MAX_TENANTS, "{tracked}");
    }

    #[test]
    fn stored_limits_apply_from_their_generation_on() {
        let stored = |generation, a: &[u8]| {
            StoredLimits::decode(
                generation,
                vec![
                    ("a".to_owned(), a.to_vec()),
                    ("b".to_owned(), br#"{"dashboards": 2}"#.to_vec()),
                    ("c".to_owned(), b"not json".to_vec()),
                ],
            )
        };
        let first = stored(1, br#"{"events_per_second": 10, "a_newer_limit": 1}"#);
        assert_eq!(first.by_tenant, HashMap::from([("a".to_owned(), 10)]));
        let rates = TenantRates::new(100, None);
        *rates.stored.lock().unwrap() = Arc::new(first);
        let t0 = Instant::now();
        rates.charge_at("a", 11, t0);
        let refusal = rates.check_at("a", t0).unwrap_err();
        assert_eq!((refusal.limit, refusal.retry_after_secs), (10, 1));
        rates.charge_at("b", 100, t0);
        assert!(rates.check_at("b", t0).is_ok(), "b has the default");
        rates.charge_at("c", 101, t0);
        assert!(
            rates.check_at("c", t0).is_err(),
            "c's value does not decode: the default"
        );
        *rates.stored.lock().unwrap() = Arc::new(stored(2, br#"{"events_per_second": 1000}"#));
        assert_eq!(
            rates.check_at("a", t0).map_err(|over| over.limit),
            Err(1000),
            "the new limit, the debt kept"
        );
        assert!(rates.check_at("a", t0 + Duration::from_millis(2)).is_ok());
    }
}
