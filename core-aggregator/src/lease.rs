//! Partition ownership through leases in KV `rtdash_leases`.
//!
//! - **Lease**: key `partition.<p>`, JSON [`LeaseValue`] `{owner, expires_at_ms, epoch, token}`.
//!   Acquired with `create` when absent (or deleted), or with a compare-and-set `update` on the
//!   revision when expired (or left by a previous process with the same instance id). Renewed
//!   by compare-and-set every `ttl / 3`. The epoch is the KV revision at acquisition: it
//!   names the owner's checkpoint objects and fences its QuestDB rows.
//! - **Membership**: every aggregator keeps `member.<id>` = `{expires_at_ms}` fresh, and targets
//!   `ceil(P / live members)` partitions: it acquires free or expired partitions up to the
//!   target (in its rendezvous-hash preference order), and releases extras gracefully (the
//!   worker checkpoints and acknowledges, then the lease is deleted).
//! - **Self-fencing**: a [`Fence`] per owned partition holds `expires_at - margin`; when that
//!   passes without a renewal (NATS unreachable, process stalled), the watchdog cancels it and
//!   the worker stops at once, dropping its in-memory state; the next owner resumes from the
//!   checkpoint. The checkpoint's own compare-and-set fences a deposed owner that wakes up
//!   late, even if its clock is wrong.
//!
//! - **Own thread**: the manager (renewals, membership, watchdog) runs on a thread and runtime of
//!   its own with its own NATS connection ([`LeaseManager::spawn`]); workers run on the
//!   process's main runtime. Busy partition workers (closing tens of thousands of windows,
//!   draining backlogs) then cannot delay a renewal until the lease expires, which would fence
//!   healthy partitions and make them restore and replay: more load, more fences.
//!
//! Clocks: expiry times are wall-clock milliseconds of the writer; aggregators' clocks must
//! agree within the fence margin (NTP).

use crate::error::Error;
use crate::metrics as m;
use async_nats::jetstream::kv;
use futures::StreamExt;
use rtdash_shared::names;
use rtdash_shared::time::{now_millis, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Value of a partition lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseValue {
    /// Owning aggregator.
    pub owner: String,
    /// Wall-clock expiry.
    pub expires_at_ms: UnixMillis,
    /// Ownership epoch (KV revision at acquisition).
    pub epoch: u64,
    /// Random per acquisition: tells our own write from another owner's.
    pub token: String,
}

/// Value of a membership key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberValue {
    /// Aggregator id.
    pub id: String,
    /// Wall-clock expiry.
    pub expires_at_ms: UnixMillis,
}

/// Membership key of `id`.
pub fn member_key(id: &str) -> String {
    format!("member.{id}")
}

/// Tells a worker whether it may still act as the partition's owner.
#[derive(Clone, Debug)]
pub struct Fence {
    token: CancellationToken,
    valid_until: Arc<AtomicI64>,
}

impl Fence {
    fn new(valid_until: UnixMillis) -> Self {
        Self {
            token: CancellationToken::new(),
            valid_until: Arc::new(AtomicI64::new(valid_until)),
        }
    }

    /// A fence that never expires (replay, tests).
    pub fn unbounded() -> Self {
        Self::new(i64::MAX)
    }

    /// Whether the lease is still certainly ours.
    pub fn is_valid(&self) -> bool {
        !self.token.is_cancelled() && now_millis() < self.valid_until.load(Ordering::SeqCst)
    }

    /// Resolves when the partition is lost.
    pub async fn lost(&self) {
        self.token.cancelled().await;
    }

    /// The token cancelled on loss.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    fn extend(&self, valid_until: UnixMillis) {
        self.valid_until.store(valid_until, Ordering::SeqCst);
    }

    fn trip(&self) {
        self.token.cancel();
    }
}

/// What a worker is given for a partition it now owns.
#[derive(Clone, Debug)]
pub struct Assignment {
    /// The partition.
    pub partition: u32,
    /// The ownership epoch.
    pub epoch: u64,
    /// Cancelled to ask for a graceful stop (checkpoint, acknowledge, return).
    pub stop: CancellationToken,
    /// Lost ownership: stop at once.
    pub fence: Fence,
}

/// Starts the worker of an assignment.
pub type WorkerFactory = Arc<
    dyn Fn(Assignment) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send>> + Send + Sync,
>;

struct Held {
    revision: u64,
    value: LeaseValue,
    stop: CancellationToken,
    fence: Fence,
    join: JoinHandle<Result<(), Error>>,
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
        done_rx.await.unwrap_or(Err(Error::Cancelled))
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
        let _ = self.kv.delete(member_key(&self.settings.instance)).await;
        watchdog.abort();
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
                tokio::spawn(self.release_owned(partition, self.settings.ttl));
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
            let result = held.join.await.unwrap_or(Err(Error::Cancelled));
            match result {
                Err(Error::Fenced { .. }) => {
                    metrics::counter!(m::PARTITIONS_FENCED).increment(1);
                    tracing::warn!(partition, "partition lost");
                }
                Ok(()) | Err(Error::Cancelled) => {
                    self.delete_lease(partition, held.revision).await;
                }
                Err(err) => {
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
                Ok(Ok(Ok(()))) | Ok(Ok(Err(Error::Cancelled))) => {
                    held.fence.trip();
                    if let Err(err) = kv
                        .delete_expect_revision(names::lease_key(partition), Some(held.revision))
                        .await
                    {
                        tracing::debug!(partition, %err, "lease not deleted");
                    }
                    tracing::info!(partition, "partition released");
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

/// Trips fences whose lease is about to expire without renewal (every 100 ms).
fn spawn_watchdog(
    fences: Arc<Mutex<Vec<(u32, Fence)>>>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let Ok(list) = fences.lock() else { continue };
            for (partition, fence) in list.iter() {
                if !fence.token().is_cancelled() && !fence.is_valid() {
                    tracing::warn!(
                        partition,
                        "lease not renewed in time; fencing the partition"
                    );
                    metrics::counter!(m::PARTITIONS_FENCED).increment(1);
                    fence.trip();
                }
            }
        }
    })
}
