//! Failed authentication attempts per client address: after `max_per_minute` failures in a
//! minute, the address is refused (`429` with `Retry-After`) until its minute ends, so keys
//! cannot be guessed quickly (they cannot be guessed at all: 256 random bits; this keeps a
//! scanner from costing CPU and log volume). At most [`MAX_TRACKED`] addresses are tracked;
//! beyond that, expired ones are forgotten first, then every new address shares one slot.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default of `auth.max_failed_per_minute` (gateway and edge agent).
pub const DEFAULT_MAX_FAILED_PER_MINUTE: u32 = 20;
/// Most client addresses tracked at once.
pub const MAX_TRACKED: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);
/// The slot shared by new addresses once [`MAX_TRACKED`] are tracked.
const OVERFLOW: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Counts failed attempts per address in fixed one-minute windows.
#[derive(Debug)]
pub struct FailedAuthLimiter {
    max_per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailedAuthLimiter {
    /// A limiter refusing an address after `max_per_minute` failures (0: never refuses).
    pub fn new(max_per_minute: u32) -> Self {
        Self {
            max_per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` while `ip` is refused.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(ip, Instant::now())
    }

    /// Counts a failed attempt of `ip`.
    pub fn failed(&self, ip: IpAddr) {
        self.failed_at(ip, Instant::now());
    }

    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.max_per_minute == 0 {
            return Ok(());
        }
        let Ok(windows) = self.windows.lock() else {
            return Ok(());
        };
        let slot = windows.get(&ip).or_else(|| windows.get(&OVERFLOW));
        match slot {
            Some((start, count)) if *count >= self.max_per_minute => {
                let elapsed = now.duration_since(*start);
                if elapsed < WINDOW {
                    Err((WINDOW - elapsed).max(Duration::from_secs(1)))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) {
        if self.max_per_minute == 0 {
            return;
        }
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        let mut key = ip;
        if !windows.contains_key(&ip) && windows.len() >= MAX_TRACKED {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if windows.len() >= MAX_TRACKED {
                key = OVERFLOW;
            }
        }
        let slot = windows.entry(key).or_insert((now, 0));
        if now.duration_since(slot.0) >= WINDOW {
            *slot = (now, 0);
        }
        slot.1 = slot.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_minute_ends() {
        let limiter = FailedAuthLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(a, t0).is_ok());
            limiter.failed_at(a, t0);
        }
        let retry = limiter
            .check_at(a, t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(retry, Duration::from_secs(50));
        assert!(
            limiter.check_at(b, t0).is_ok(),
            "another address is not refused"
        );
        assert!(limiter.check_at(a, t0 + WINDOW).is_ok(), "a new minute");
        limiter.failed_at(a, t0 + WINDOW);
        assert!(
            limiter.check_at(a, t0 + WINDOW).is_ok(),
            "the count restarted"
        );
        let open = FailedAuthLimiter::new(0);
        open.failed_at(a, t0);
        assert!(open.check_at(a, t0).is_ok());
    }
}
