//! Retried events counted once: the ids of accepted events are remembered for a horizon
//! (`idempotency.horizon_secs`, default 10 minutes), and an event whose id was seen within it
//! is acknowledged but not counted again.
//!
//! **What an id is.** Per tenant: an event's own id (`id` of `POST /v1/events`, Segment's
//! `messageId`), else, when the request carries an `Idempotency-Key` header, that key and the
//! event's position in the request (`POST /v1/events`, OTLP logs: a retried request is the
//! same request). Events with neither are never deduplicated (StatsD has no ids).
//!
//! **Memory.** Ids are kept as 64-bit hashes (xxh3, fixed seed: the same after a restart) in
//! [`GENERATIONS`] + 1 fixed-size tables ([`table`]), each covering a quarter of the horizon:
//! new ids go to the newest, lookups read all of them, and the oldest is dropped (its table
//! reused) once its newest id is older than the horizon. Each table holds
//! `max_ids / GENERATIONS` ids at 80 % fill, so the bound is `max_ids × 12.5` bytes (5 tables
//! of 8-byte slots over 4 quarters' ids), allocated as the horizon fills.
//!
//! **False positives.** Two different ids are confused when their 63 hashed bits agree: with
//! `n` ids remembered, a new id is wrongly taken for a retry with probability about
//! `13 × 5 × 2^-63` per lookup (the slots a miss compares), below 10^-17: at 100,000 events/s,
//! once in 30,000 years.
//!
//! **Past the horizon, and past the bound.** A retry later than the horizon counts again
//! (`rtdash_agent_idempotency_expired_total` counts nothing: the agent cannot know; the
//! horizon is the contract). When the newest table fills before its quarter is over (more
//! than `max_ids` ids within a horizon), a new one starts early and the oldest is dropped
//! early: the horizon shrinks for as long as the rate lasts, counted in
//! `rtdash_agent_idempotency_early_rotations_total` and shown in
//! `rtdash_agent_idempotency_horizon_seconds`. Events are never refused for it.
//!
//! **Restarts.** New ids are appended to `<state_dir>/idempotency/<start ms>.ids` every
//! `idempotency.persist_interval_ms` and at shutdown ([`store`]); a start loads the files
//! still within the horizon. Ids received since the last append are forgotten by a crash
//! (SIGKILL), like the events aggregated since the last flush.

mod store;
mod table;

use crate::metrics::AgentMetrics;
use rtdash_shared::time::UnixMillis;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use table::IdTable;

pub use store::StoreError;

/// Quarters of the horizon: tables whose ids are all within it.
pub const GENERATIONS: usize = 4;

/// Seed of the id hashes (part of the persisted format).
const ID_SEED: u64 = 0x7274_6461_7368_6964; // "rtdashid"

/// The hash remembered for an event id of `tenant`.
pub fn event_id_hash(tenant: &str, id: &str) -> u64 {
    let mut bytes = Vec::with_capacity(tenant.len() + id.len() + 2);
    bytes.extend_from_slice(tenant.as_bytes());
    bytes.extend_from_slice(b"\0i");
    bytes.extend_from_slice(id.as_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, ID_SEED)
}

/// The hash remembered for the `index`-th event of a request of `tenant` with idempotency
/// key `key`.
pub fn request_key_hash(tenant: &str, key: &str, index: usize) -> u64 {
    let mut bytes = Vec::with_capacity(tenant.len() + key.len() + 10);
    bytes.extend_from_slice(tenant.as_bytes());
    bytes.extend_from_slice(b"\0k");
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(&(index as u64).to_le_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, ID_SEED)
}

/// One table and the quarter it started.
#[derive(Debug)]
struct Generation {
    started_at: UnixMillis,
    table: IdTable,
    /// Ids not yet appended to the generation's file.
    fresh: Vec<u64>,
}

#[derive(Debug)]
struct Generations {
    /// Oldest first; the last takes new ids.
    live: VecDeque<Generation>,
    /// Start times of dropped generations whose files are still to be removed.
    dropped: Vec<UnixMillis>,
    /// A table's allocation kept for the next generation.
    spare: Option<IdTable>,
}

/// The remembered ids (see the module docs).
#[derive(Debug)]
pub struct Idempotency {
    generations: Mutex<Generations>,
    horizon_ms: i64,
    quarter_ms: i64,
    ids_per_table: usize,
    dir: PathBuf,
    metrics: AgentMetrics,
}

/// What [`Idempotency::persist`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Persisted {
    /// Ids appended.
    pub ids: usize,
    /// Files of dropped generations removed.
    pub removed: usize,
}

impl Idempotency {
    /// Remembers ids for `horizon_secs`, at most `max_ids` of them, persisted under
    /// `state_dir/idempotency`: loads what a previous run left there within the horizon.
    pub fn open(
        state_dir: &Path,
        horizon_secs: u64,
        max_ids: u64,
        now: UnixMillis,
        metrics: AgentMetrics,
    ) -> Result<Self, StoreError> {
        let horizon_ms = (horizon_secs as i64).saturating_mul(1000);
        let this = Self {
            generations: Mutex::new(Generations {
                live: VecDeque::new(),
                dropped: Vec::new(),
                spare: None,
            }),
            horizon_ms,
            quarter_ms: (horizon_ms / GENERATIONS as i64).max(1),
            ids_per_table: (max_ids as usize).div_ceil(GENERATIONS),
            dir: state_dir.join("idempotency"),
            metrics,
        };
        let loaded = store::load(&this.dir, now - horizon_ms - this.quarter_ms)?;
        {
            let mut generations = this.lock();
            for (started_at, ids, stale) in loaded {
                if stale {
                    generations.dropped.push(started_at);
                    continue;
                }
                let mut table = IdTable::with_capacity(this.ids_per_table);
                for id in ids {
                    table.insert(id);
                }
                generations.live.push_back(Generation {
                    started_at,
                    table,
                    fresh: Vec::new(),
                });
            }
            while generations.live.len() > GENERATIONS + 1 {
                if let Some(old) = generations.live.pop_front() {
                    generations.dropped.push(old.started_at);
                }
            }
            let remembered: usize = generations.live.iter().map(|g| g.table.len()).sum();
            if remembered > 0 {
                tracing::info!(
                    ids = remembered,
                    generations = generations.live.len(),
                    "event ids of the previous run loaded (retries of them count once)"
                );
            }
        }
        this.rotate(now);
        Ok(this)
    }

    fn lock(&self) -> MutexGuard<'_, Generations> {
        self.generations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// For each hash, whether it was seen before (within the horizon, or earlier in
    /// `hashes`); remembers the new ones.
    pub fn seen_before(&self, hashes: &[u64], now: UnixMillis) -> Vec<bool> {
        if hashes.is_empty() {
            return Vec::new();
        }
        self.rotate(now);
        let mut generations = self.lock();
        let mut seen = Vec::with_capacity(hashes.len());
        let mut duplicates = 0u64;
        for &hash in hashes {
            if generations.live.iter().any(|g| g.table.contains(hash)) {
                seen.push(true);
                duplicates += 1;
                continue;
            }
            if generations.live.back().is_none_or(|g| g.table.is_full()) {
                self.start_generation(&mut generations, now, true);
            }
            if let Some(newest) = generations.live.back_mut() {
                if newest.table.insert(hash) {
                    newest.fresh.push(hash);
                }
            }
            seen.push(false);
        }
        drop(generations);
        if duplicates > 0 {
            self.metrics.idempotency_duplicates.increment(duplicates);
        }
        seen
    }

    /// Starts a new generation when the newest one's quarter is over, and drops the ones
    /// entirely older than the horizon.
    fn rotate(&self, now: UnixMillis) {
        let mut generations = self.lock();
        let due = generations
            .live
            .back()
            .is_none_or(|g| now >= g.started_at + self.quarter_ms);
        if due {
            self.start_generation(&mut generations, now, false);
        }
    }

    fn start_generation(&self, generations: &mut Generations, now: UnixMillis, early: bool) {
        // A generation's newest id is older than its successor's start.
        while generations.live.len() >= 2 && generations.live[1].started_at < now - self.horizon_ms
        {
            self.drop_oldest(generations);
        }
        if generations.live.len() > GENERATIONS {
            // Full before its quarter was over: the horizon shrinks.
            self.drop_oldest(generations);
        }
        if early {
            self.metrics.idempotency_early_rotations.increment(1);
        }
        let table = match generations.spare.take() {
            Some(mut table) => {
                table.clear();
                table
            }
            None => IdTable::with_capacity(self.ids_per_table),
        };
        // Unique start times: they name the files.
        let started_at = generations
            .live
            .back()
            .map_or(now, |g| now.max(g.started_at + 1));
        generations.live.push_back(Generation {
            started_at,
            table,
            fresh: Vec::new(),
        });
        let oldest = generations.live.front().map_or(now, |g| g.started_at);
        self.metrics
            .idempotency_horizon
            .set(((now - oldest).min(self.horizon_ms) / 1000) as f64);
        let bytes: usize = generations.live.iter().map(|g| g.table.bytes()).sum();
        self.metrics.idempotency_bytes.set(bytes as f64);
    }

    fn drop_oldest(&self, generations: &mut Generations) {
        if let Some(old) = generations.live.pop_front() {
            generations.dropped.push(old.started_at);
            generations.spare = Some(old.table);
        }
    }

    /// Appends the ids remembered since the last call to their files and removes the files
    /// of dropped generations (I/O outside the lock).
    pub fn persist(&self) -> Result<Persisted, StoreError> {
        let (fresh, dropped) = {
            let mut generations = self.lock();
            let fresh: Vec<(UnixMillis, Vec<u64>)> = generations
                .live
                .iter_mut()
                .filter(|g| !g.fresh.is_empty())
                .map(|g| (g.started_at, std::mem::take(&mut g.fresh)))
                .collect();
            (fresh, std::mem::take(&mut generations.dropped))
        };
        store::append(&self.dir, &fresh)?;
        store::remove(&self.dir, &dropped)?;
        Ok(Persisted {
            ids: fresh.iter().map(|(_, ids)| ids.len()).sum(),
            removed: dropped.len(),
        })
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.lock().live.iter().map(|g| g.table.len()).sum()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appends new ids every `every` until `stop`, then once more.
pub async fn persist_loop(
    idempotency: std::sync::Arc<Idempotency>,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            _ = interval.tick() => false,
        };
        let worker = std::sync::Arc::clone(&idempotency);
        match tokio::task::spawn_blocking(move || worker.persist()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(
                error = %rtdash_runtime::error_chain::ErrorChain(&err),
                "cannot persist event ids; a restart would count their retries again"
            ),
            Err(err) => tracing::warn!(error = %err, "persisting event ids failed"),
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn open(dir: &Path, max_ids: u64, now: UnixMillis) -> Idempotency {
        Idempotency::open(dir, 600, max_ids, now, AgentMetrics::new()).expect("open")
    }

    #[test]
    fn an_id_is_seen_again_within_the_horizon_and_forgotten_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t0 = 1_700_000_000_000;
        let ids = open(dir.path(), 100_000, t0);
        let a = event_id_hash("acme", "m-1");
        let b = event_id_hash("globex", "m-1");
        assert_ne!(a, b, "ids are per tenant");
        assert_eq!(ids.seen_before(&[a, b, a], t0), vec![false, false, true]);
        for minute in 1..=10 {
            assert_eq!(ids.seen_before(&[a], t0 + minute * MIN - 1), vec![true]);
        }
        // Past the horizon plus a quarter, the generation that held it is gone.
        assert_eq!(ids.seen_before(&[a], t0 + 13 * MIN), vec![false]);
    }

    #[test]
    fn the_bound_shortens_the_horizon_instead_of_growing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t0 = 1_700_000_000_000;
        let ids = open(dir.path(), 4096, t0);
        let hashes: Vec<u64> = (0..20_000)
            .map(|i| request_key_hash("acme", "k", i))
            .collect();
        assert!(ids.seen_before(&hashes, t0).iter().all(|seen| !seen));
        assert!(
            ids.len() <= 5 * 1024,
            "at most 5 tables of 1024: {}",
            ids.len()
        );
        // The newest ids are still remembered.
        assert!(ids.seen_before(&hashes[19_000..], t0).iter().all(|s| *s));
    }

    #[test]
    fn ids_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t0 = 1_700_000_000_000;
        let first = open(dir.path(), 100_000, t0);
        let hashes: Vec<u64> = (0..1000)
            .map(|i| request_key_hash("acme", "k", i))
            .collect();
        first.seen_before(&hashes[..500], t0);
        first.seen_before(&hashes[500..], t0 + 4 * MIN);
        assert_eq!(first.persist().expect("persist").ids, 1000);
        drop(first);
        let second = open(dir.path(), 100_000, t0 + 5 * MIN);
        assert_eq!(second.len(), 1000);
        assert!(second.seen_before(&hashes, t0 + 5 * MIN).iter().all(|s| *s));
        // Later, the first generation's file is stale and removed.
        let third = open(dir.path(), 100_000, t0 + 14 * MIN);
        assert_eq!(third.len(), 500);
        assert_eq!(third.persist().expect("persist").removed, 1);
    }
}
