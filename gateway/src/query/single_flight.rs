//! A short-lived single-flight cache: identical requests share one fetch while it runs and
//! its answer for a while after, so a dependency sees at most one fetch per key and interval
//! whatever the request rate. Failures are never kept: the next request fetches again.
//!
//! Used for metric query rows ([`super::QuestDb::fetch_rows_shared`]) and widget snapshots
//! (`live::snapshot`).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// How many entries a cache holds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Entries beyond which expired ones are swept when a new one is inserted.
    pub sweep_from: usize,
    /// Most entries; a request beyond it is fetched uncached (still answered).
    pub max_entries: usize,
}

/// An answer, filled once by the request that started the fetch.
type Cell<T, E> = Arc<OnceCell<Result<T, E>>>;

struct Entry<T, E> {
    cell: Cell<T, E>,
    /// When the fetch started: its answer is reused until `started + ttl`.
    started: Instant,
}

type Entries<K, T, E> = Mutex<HashMap<K, Entry<T, E>>>;

/// The cache; `T` and `E` are cheap to clone (`Arc`s).
pub struct SingleFlight<K, T, E> {
    ttl: Duration,
    limits: Limits,
    entries: Entries<K, T, E>,
}

impl<K, T, E> std::fmt::Debug for SingleFlight<K, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<K, T, E> SingleFlight<K, T, E>
where
    K: Clone + Eq + Hash,
    T: Clone,
    E: Clone,
{
    /// A cache reusing answers for `ttl` (zero: only fetches in flight are shared).
    pub fn new(ttl: Duration, limits: Limits) -> Self {
        Self {
            ttl,
            limits,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The answer for `key`: the one in flight or fetched less than `ttl` ago, else what
    /// `fetch` answers. `reusable` decides whether a successful answer may serve later
    /// requests (a failure never does).
    pub async fn get_or_fetch<F>(
        &self,
        key: K,
        fetch: impl FnOnce() -> F,
        reusable: impl FnOnce(&T) -> bool,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let now = Instant::now();
        let (cell, leader) = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let live = |entry: &Entry<T, E>| {
                // In flight, or answered within the interval.
                entry.cell.get().is_none() || now.duration_since(entry.started) < self.ttl
            };
            match entries.get(&key).filter(|entry| live(entry)) {
                Some(entry) => (entry.cell.clone(), false),
                None => {
                    if entries.len() >= self.limits.sweep_from {
                        entries.retain(|_, entry| live(entry));
                    }
                    let cell: Cell<T, E> = Arc::new(OnceCell::new());
                    if entries.len() < self.limits.max_entries {
                        entries.insert(
                            key.clone(),
                            Entry {
                                cell: cell.clone(),
                                started: now,
                            },
                        );
                    }
                    (cell, true)
                }
            }
        };
        let mut settle = leader.then(|| Settle {
            entries: &self.entries,
            key,
            cell: cell.clone(),
            keep: !self.ttl.is_zero(),
        });
        let result = cell.get_or_init(fetch).await.clone();
        if let (Some(settle), Ok(answer)) = (settle.as_mut(), &result) {
            settle.keep &= reusable(answer);
        }
        result
    }
}

/// Removes an entry that did not produce a reusable answer (failed, cancelled, not reusable,
/// or caching disabled) when the request that registered it is done.
struct Settle<'m, K: Eq + Hash, T, E> {
    entries: &'m Entries<K, T, E>,
    key: K,
    cell: Cell<T, E>,
    keep: bool,
}

impl<K: Eq + Hash, T, E> Drop for Settle<'_, K, T, E> {
    fn drop(&mut self) {
        if self.keep && matches!(self.cell.get(), Some(Ok(_))) {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries
            .get(&self.key)
            .is_some_and(|entry| Arc::ptr_eq(&entry.cell, &self.cell))
        {
            entries.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const LIMITS: Limits = Limits {
        sweep_from: 4,
        max_entries: 8,
    };

    async fn counted(
        fetches: &AtomicUsize,
        answer: Result<u32, &'static str>,
    ) -> Result<u32, &'static str> {
        fetches.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        answer
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_fetch_and_its_answer_within_the_ttl() {
        let cache = SingleFlight::new(Duration::from_millis(500), LIMITS);
        let fetches = AtomicUsize::new(0);
        let get = || cache.get_or_fetch(1, || counted(&fetches, Ok(7)), |_| true);
        let (a, b) = tokio::join!(get(), get());
        assert_eq!((a, b), (Ok(7), Ok(7)));
        assert_eq!(get().await, Ok(7));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(get().await, Ok(7));
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_and_unreusable_answers_are_not_kept() {
        let cache = SingleFlight::new(Duration::from_secs(60), LIMITS);
        let fetches = AtomicUsize::new(0);
        assert_eq!(
            cache
                .get_or_fetch(1, || counted(&fetches, Err("down")), |_| true)
                .await,
            Err("down")
        );
        assert_eq!(
            cache
                .get_or_fetch(1, || counted(&fetches, Ok(1)), |_| false)
                .await,
            Ok(1)
        );
        assert_eq!(
            cache
                .get_or_fetch(1, || counted(&fetches, Ok(2)), |_| true)
                .await,
            Ok(2)
        );
        assert_eq!(
            cache
                .get_or_fetch(1, || counted(&fetches, Ok(3)), |_| true)
                .await,
            Ok(2)
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_ttl_shares_only_fetches_in_flight_and_the_cache_stays_bounded() {
        let cache = SingleFlight::new(Duration::ZERO, LIMITS);
        let fetches = AtomicUsize::new(0);
        let get = || cache.get_or_fetch(1, || counted(&fetches, Ok(7)), |_| true);
        let (a, b) = tokio::join!(get(), get());
        assert_eq!((a, b), (Ok(7), Ok(7)));
        assert_eq!(get().await, Ok(7));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        assert!(cache.entries.lock().unwrap().is_empty());
        let cache = SingleFlight::new(Duration::from_secs(60), LIMITS);
        for key in 0..20 {
            assert_eq!(
                cache
                    .get_or_fetch(key, || counted(&fetches, Ok(key)), |_| true)
                    .await,
                Ok(key)
            );
        }
        assert_eq!(cache.entries.lock().unwrap().len(), LIMITS.max_entries);
    }
}
