//! The lease manager: membership, acquisition, renewal and release of partition leases, and
//! one worker per partition held.

use super::assignment::{Assignment, Stopped, WorkerFactory};
use super::fence::{spawn_watchdog, Fence};
use super::values::{member_key, LeaseValue, MemberValue};
use crate::error::Error;
use crate::metrics as m;
use async_nats::jetstream::kv;
use futures::StreamExt;
use rtdash_shared::names;
use rtdash_shared::time::{now_millis, UnixMillis};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Held {
    revision: u64,
    value: LeaseValue,
    stop: CancellationToken,
    fence: Fence,
    join: JoinHandle<Result<Stopped, Error>>,
}

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// This aggregator.
    pub instance: String,
    /// Partition count.
    pub partitions: u32,
    /// Lease lifetime.
    pub ttl: Duration,
    /// Fence margin.
    pub margin: Duration,
}

/// Acquires, renews and releases partition leases and runs a worker per owned partition.
pub struct LeaseManager {
    kv: kv::Store,
    settings: LeaseSettings,
    factory: WorkerFactory,
    /// Where workers run (the process's main runtime).
    workers: tokio::runtime::Handle,
    held: BTreeMap<u32, Held>,
    /// Partitions whose worker failed: not reacquired before the instant.
    cooldown: HashMap<u32, Instant>,
    /// Releases to rebalance, running while the manager renews the other leases.
    releases: TaskTracker,
}

impl LeaseManager {
    /// A manager for `settings.instance` whose workers run on `workers`.
    pub fn new(
        kv: kv::Store,
        settings: LeaseSettings,
        factory: WorkerFactory,
        workers: tokio::runtime::Handle,
    ) -> Self {
        Self {
            kv,
            settings,
            factory,
            workers,
            held: BTreeMap::new(),
            cooldown: HashMap::new(),
            releases: TaskTracker::new(),
        }
    }

    /// Runs a manager on a thread and runtime of its own with its own NATS connection (see
    /// the module documentation), its workers on the calling runtime. Resolves when
    /// [`LeaseManager::run`] has returned: every worker stopped and every lease released.
    pub async fn spawn(
        nats: rtdash_runtime::nats::NatsConfig,
        settings: LeaseSettings,
        factory: WorkerFactory,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<(), Error> {
        let workers = tokio::runtime::Handle::current();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let name = format!("core-aggregator {} leases", settings.instance);
        std::thread::Builder::new()
            .name("rtdash-leases".to_owned())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|source| Error::Thread {
                        what: "lease runtime",
                        source,
                    })
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            let client = rtdash_runtime::nats::connect(&nats, &name).await?;
                            let js = rtdash_runtime::nats::jetstream(client.clone(), &nats);
                            let kv = js
                                .get_key_value(names::LEASES_BUCKET)
                                .await
                                .map_err(|e| Error::js("bucket rtdash_leases", e))?;
                            LeaseManager::new(kv, settings, factory, workers)
                                .run(shutdown, grace)
                                .await;
                            let _ = client.flush().await;
                            Ok(())
                        })
                    });
                let _ = done_tx.send(result);
            })
            .map_err(|source| Error::Thread {
                what: "lease thread",
                source,
            })?;
        done_rx.await.unwrap_or(Err(Error::LeaseThread))
    }

    /// Runs until `shutdown`, then stops every worker gracefully (bounded by `grace`) and
    /// releases the leases and the membership.
    pub async fn run(mut self, shutdown: CancellationToken, grace: Duration) {
        let fences: Arc<Mutex<Vec<(u32, Fence)>>> = Arc::default();
        let watchdog = spawn_watchdog(Arc::clone(&fences), shutdown.clone());
        let mut ticker = tokio::time::interval(self.settings.ttl / 3);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    self.round().await;
                    if let Ok(mut list) = fences.lock() {
                        *list = self.held.iter().map(|(p, h)| (*p, h.fence.clone())).collect();
                    }
                }
            }
        }
        // Ask every worker to stop first, so they checkpoint concurrently.
        for held in self.held.values() {
            held.stop.cancel();
        }
        let partitions: Vec<u32> = self.held.keys().copied().collect();
        let releases: Vec<_> = partitions
            .into_iter()
            .map(|p| self.release_owned(p, grace))
            .collect();
        futures::future::join_all(releases).await;
        self.releases.close();
        self.releases.wait().await;
        let _ = self.kv.delete(member_key(&self.settings.instance)).await;
        // It stops with `shutdown`, which ended the loop above.
        let _ = watchdog.await;
        metrics::gauge!(m::PARTITIONS_OWNED).set(0.0);
    }

    async fn round(&mut self) {
        let now = now_millis();
        let ttl = self.settings.ttl.as_millis() as i64;
        let member = MemberValue {
            id: self.settings.instance.clone(),
            expires_at_ms: now + ttl,
        };
        if let Ok(bytes) = serde_json::to_vec(&member) {
            if let Err(err) = self
                .kv
                .put(member_key(&self.settings.instance), bytes.into())
                .await
            {
                tracing::warn!(%err, "cannot refresh membership");
            }
        }
        self.renew_all().await;
        self.reap_workers().await;
        let Some(members) = self.live_members().await else {
            return;
        };
        let p = self.settings.partitions as usize;
        let target = p.div_ceil(members.max(1));
        let owned = self.held.len();
        if owned > target {
            let mut extras: Vec<u32> = self.held.keys().copied().collect();
            extras.sort_by_key(|p| preference(&self.settings.instance, *p));
            let extras: Vec<u32> = extras.into_iter().take(owned - target).collect();
            for partition in extras {
                tracing::info!(
                    partition,
                    members,
                    target,
                    "releasing partition to rebalance"
                );
                // In the background: waiting here would hold up the renewal of the others.
                let release = self.release_owned(partition, self.settings.ttl);
                self.releases.spawn(release);
            }
        } else if owned < target {
            let mut candidates: Vec<u32> = (0..self.settings.partitions)
                .filter(|p| !self.held.contains_key(p))
                .filter(|p| {
                    self.cooldown
                        .get(p)
                        .is_none_or(|until| Instant::now() >= *until)
                })
                .collect();
            candidates.sort_by_key(|p| std::cmp::Reverse(preference(&self.settings.instance, *p)));
            for partition in candidates {
                if self.held.len() >= target {
                    break;
                }
                self.try_acquire(partition).await;
            }
        }
        metrics::gauge!(m::PARTITIONS_OWNED).set(self.held.len() as f64);
    }

    fn new_value(&self, epoch: u64, token: &str) -> LeaseValue {
        LeaseValue {
            owner: self.settings.instance.clone(),
            expires_at_ms: now_millis() + self.settings.ttl.as_millis() as i64,
            epoch,
            token: token.to_owned(),
        }
    }

    fn valid_until(&self, value: &LeaseValue) -> UnixMillis {
        value.expires_at_ms - self.settings.margin.as_millis() as i64
    }

    async fn renew_all(&mut self) {
        let partitions: Vec<u32> = self.held.keys().copied().collect();
        for partition in partitions {
            let Some(held) = self.held.get(&partition) else {
                continue;
            };
            if held.fence.token().is_cancelled() {
                continue; // reaped below
            }
            let value = self.new_value(held.value.epoch, &held.value.token);
            let Ok(bytes) = serde_json::to_vec(&value) else {
                continue;
            };
            let key = names::lease_key(partition);
            let mut expected = held.revision;
            let mut outcome = Err(false);
            for _ in 0..2 {
                match self
                    .kv
                    .update(key.as_str(), bytes.clone().into(), expected)
                    .await
                {
                    Ok(revision) => {
                        outcome = Ok(revision);
                        break;
                    }
                    Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        // Our own earlier renewal may have landed without its acknowledgement.
                        match self.kv.entry(key.as_str()).await {
                            Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                                let theirs: Option<LeaseValue> =
                                    serde_json::from_slice(&entry.value).ok();
                                if theirs.is_some_and(|v| v.token == held.value.token) {
                                    expected = entry.revision;
                                    continue;
                                }
                                outcome = Err(true);
                            }
                            Ok(_) => outcome = Err(true),
                            Err(_) => outcome = Err(false),
                        }
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(partition, %err, "lease renewal failed");
                        break;
                    }
                }
            }
            match outcome {
                Ok(revision) => {
                    let valid_until = self.valid_until(&value);
                    if let Some(held) = self.held.get_mut(&partition) {
                        held.revision = revision;
                        held.fence.extend(valid_until);
                        held.value = value;
                    }
                }
                Err(true) => {
                    tracing::warn!(
                        partition,
                        "lease lost to another aggregator; stopping at once"
                    );
                    if let Some(held) = self.held.get(&partition) {
                        held.fence.trip();
                    }
                    metrics::counter!(m::PARTITIONS_FENCED).increment(1);
                }
                Err(false) => {}
            }
        }
    }

    async fn reap_workers(&mut self) {
        let finished: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, h)| h.join.is_finished() || h.fence.token().is_cancelled())
            .map(|(p, _)| *p)
            .collect();
        for partition in finished {
            let Some(held) = self.held.remove(&partition) else {
                continue;
            };
            if held.fence.token().is_cancelled() {
                // Lost: the lease is someone else's (or about to be); the worker stops by
                // itself at its next await.
                tracing::warn!(partition, "partition lost");
                continue;
            }
            held.fence.trip();
            match held.join.await {
                Ok(Ok(Stopped::Fenced)) => {
                    metrics::counter!(m::PARTITIONS_FENCED).increment(1);
                    tracing::warn!(partition, "partition lost");
                }
                Ok(Ok(Stopped::Cancelled)) => {
                    self.delete_lease(partition, held.revision).await;
                }
                Err(panicked) => {
                    tracing::error!(partition, err = %panicked, "partition worker panicked; releasing it");
                    self.delete_lease(partition, held.revision).await;
                }
                Ok(Err(err)) => {
                    tracing::error!(partition, %err, "partition worker failed; releasing it for a while");
                    self.delete_lease(partition, held.revision).await;
                    self.cooldown
                        .insert(partition, Instant::now() + self.settings.ttl * 3);
                }
            }
        }
    }

    async fn delete_lease(&self, partition: u32, revision: u64) {
        if let Err(err) = self
            .kv
            .delete_expect_revision(names::lease_key(partition), Some(revision))
            .await
        {
            tracing::debug!(partition, %err, "lease not deleted (expired or taken over)");
        }
    }

    /// Stops the worker (already asked to stop, or asked here) and deletes the lease.
    fn release_owned(
        &mut self,
        partition: u32,
        grace: Duration,
    ) -> impl Future<Output = ()> + Send + 'static {
        let held = self.held.remove(&partition);
        let kv = self.kv.clone();
        async move {
            let Some(held) = held else { return };
            held.stop.cancel();
            let mut join = held.join;
            let finished = tokio::time::timeout(grace, &mut join).await;
            match finished {
                Ok(Ok(Ok(Stopped::Cancelled))) => {
                    held.fence.trip();
                    if let Err(err) = kv
                        .delete_expect_revision(names::lease_key(partition), Some(held.revision))
                        .await
                    {
                        tracing::debug!(partition, %err, "lease not deleted");
                    }
                    tracing::info!(partition, "partition released");
                }
                Ok(Ok(Ok(Stopped::Fenced))) => {
                    held.fence.trip();
                    tracing::warn!(
                        partition,
                        "partition lost while stopping; lease left to expire"
                    );
                }
                Ok(Ok(Err(err))) => {
                    held.fence.trip();
                    tracing::warn!(partition, %err, "worker stopped with an error; lease left to expire");
                }
                Ok(Err(_)) | Err(_) => {
                    held.fence.trip();
                    join.abort();
                    tracing::warn!(
                        partition,
                        "worker did not stop in time; lease left to expire"
                    );
                }
            }
        }
    }

    async fn live_members(&self) -> Option<usize> {
        let mut keys = match self.kv.keys().await {
            Ok(keys) => keys,
            Err(err) => {
                tracing::warn!(%err, "cannot list members");
                return None;
            }
        };
        let mut member_keys = Vec::new();
        while let Some(key) = keys.next().await {
            match key {
                Ok(key) if key.starts_with("member.") => member_keys.push(key),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(%err, "cannot list members");
                    return None;
                }
            }
        }
        let now = now_millis();
        let ttl = self.settings.ttl.as_millis() as i64;
        let mut alive = 0;
        let mut me = false;
        for key in member_keys {
            let Ok(Some(bytes)) = self.kv.get(key.as_str()).await else {
                continue;
            };
            let Ok(member) = serde_json::from_slice::<MemberValue>(&bytes) else {
                continue;
            };
            if member.expires_at_ms > now {
                alive += 1;
                me |= member.id == self.settings.instance;
            } else if member.expires_at_ms < now - 10 * ttl {
                // Long dead: tidy up.
                let _ = self.kv.delete(key.as_str()).await;
            }
        }
        Some(if me { alive } else { alive + 1 })
    }

    async fn try_acquire(&mut self, partition: u32) {
        let key = names::lease_key(partition);
        let entry = match self.kv.entry(key.as_str()).await {
            Ok(entry) => entry,
            Err(err) => {
                tracing::debug!(partition, %err, "cannot read lease");
                return;
            }
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let provisional = self.new_value(0, &token);
        let Ok(bytes) = serde_json::to_vec(&provisional) else {
            return;
        };
        let acquired = match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let current: Option<LeaseValue> = serde_json::from_slice(&entry.value).ok();
                let takeable = match &current {
                    None => true,
                    Some(lease) => {
                        lease.owner == self.settings.instance || lease.expires_at_ms < now_millis()
                    }
                };
                if !takeable {
                    return;
                }
                self.kv
                    .update(key.as_str(), bytes.into(), entry.revision)
                    .await
                    .ok()
            }
            _ => self.kv.create(key.as_str(), bytes.into()).await.ok(),
        };
        let Some(revision) = acquired else {
            return; // someone else was faster
        };
        // The epoch is the acquisition revision; write it into the value (the renewal).
        let value = self.new_value(revision, &token);
        let Ok(bytes) = serde_json::to_vec(&value) else {
            return;
        };
        let revision = match self.kv.update(key.as_str(), bytes.into(), revision).await {
            Ok(revision) => revision,
            Err(err) => {
                tracing::warn!(partition, %err, "lease acquired but not confirmed; will retry");
                let _ = self
                    .kv
                    .delete_expect_revision(key.as_str(), Some(revision))
                    .await;
                return;
            }
        };
        let fence = Fence::new(self.valid_until(&value));
        let stop = CancellationToken::new();
        let assignment = Assignment {
            partition,
            epoch: value.epoch,
            stop: stop.clone(),
            fence: fence.clone(),
        };
        tracing::info!(partition, epoch = value.epoch, "partition acquired");
        let join = self.workers.spawn((self.factory)(assignment));
        self.held.insert(
            partition,
            Held {
                revision,
                value,
                stop,
                fence,
                join,
            },
        );
    }
}

/// Rendezvous-hash preference of `instance` for `partition` (higher: preferred).
fn preference(instance: &str, partition: u32) -> u64 {
    let mut bytes = instance.as_bytes().to_vec();
    bytes.extend_from_slice(&partition.to_le_bytes());
    rtdash_shared::series::series_id(&bytes)
}
