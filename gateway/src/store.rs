//! The configuration store: the JetStream key-value bucket `rtdash_config`, with an
//! in-memory copy kept current by a watcher.
//!
//! Reads (get, list) come from memory; writes go to the bucket with the expected revision
//! (optimistic concurrency) and are applied to the memory copy as soon as the bucket
//! acknowledges them, so a client reads its own writes on this gateway. Other gateways see a
//! change when their watcher delivers it (milliseconds). Every change is announced on a
//! broadcast channel (live streams use it to notice dashboard changes).

use crate::tasks::Tasks;
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;
use rtdash_runtime::error_chain::ErrorChain;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;

/// What a read from or write to the bucket could not do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Revision mismatch or the key already exists.
    #[error("{0}")]
    Conflict(String),
    /// NATS unreachable or timed out.
    #[error("configuration store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a watch of the bucket stopped (it is restarted).
#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error("reading the bucket's stream information failed")]
    Info(#[source] async_nats::jetstream::stream::InfoError),
    #[error("starting the watch failed")]
    Start(#[source] kv::WatchError),
    #[error("the watch failed")]
    Next(#[source] kv::WatcherError),
}

/// A stored value and its revision.
#[derive(Clone, Debug)]
pub struct Versioned {
    /// The value (JSON).
    pub value: Bytes,
    /// The bucket revision that wrote it.
    pub revision: u64,
}

#[derive(Clone, Debug)]
struct Slot {
    /// `None` for a deleted key (kept so a late watch event cannot resurrect it).
    value: Option<Bytes>,
    revision: u64,
}

/// Capacity of the change broadcast; a receiver that falls behind gets `Lagged` and should
/// re-check what it watches.
const CHANGES_CAPACITY: usize = 4096;

/// The config bucket with its in-memory copy.
#[derive(Clone)]
pub struct ConfigStore {
    inner: Arc<Inner>,
}

struct Inner {
    kv: kv::Store,
    cache: RwLock<BTreeMap<String, Slot>>,
    loaded: AtomicBool,
    changes: broadcast::Sender<Arc<str>>,
}

impl std::fmt::Debug for ConfigStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigStore")
            .field("bucket", &self.inner.kv.name)
            .finish_non_exhaustive()
    }
}

impl ConfigStore {
    /// Wraps the bucket and starts the watcher on `tasks` (until shutdown). Reads answer from
    /// memory once the watcher has caught up (see [`ConfigStore::is_loaded`]).
    pub fn start(kv: kv::Store, tasks: &Tasks) -> Self {
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        let store = Self {
            inner: Arc::new(Inner {
                kv,
                cache: RwLock::new(BTreeMap::new()),
                loaded: AtomicBool::new(false),
                changes,
            }),
        };
        let watcher = store.clone();
        let shutdown = tasks.child_token();
        tasks.spawn(
            "config watcher",
            async move { watcher.watch(shutdown).await },
        );
        store
    }

    /// Whether the memory copy has caught up with the bucket at least once.
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// Waits until loaded, for at most `timeout`; returns whether it is.
    pub async fn wait_loaded(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_loaded() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Changed keys, as they are applied.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.inner.changes.subscribe()
    }

    /// The value of `key` in memory.
    pub fn get(&self, key: &str) -> Option<Versioned> {
        let cache = self.inner.cache.read().ok()?;
        let slot = cache.get(key)?;
        Some(Versioned {
            value: slot.value.clone()?,
            revision: slot.revision,
        })
    }

    /// Every live key starting with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Vec<(String, Versioned)> {
        let Ok(cache) = self.inner.cache.read() else {
            return Vec::new();
        };
        cache
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, slot)| {
                Some((
                    key.clone(),
                    Versioned {
                        value: slot.value.clone()?,
                        revision: slot.revision,
                    },
                ))
            })
            .collect()
    }

    /// The value of `key` read from the bucket itself (authoritative revision).
    pub async fn fetch(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let entry = self
            .inner
            .kv
            .entry(key)
            .await
            .map_err(|err| StoreError::Unavailable(err.into()))?;
        Ok(entry.and_then(|entry| {
            self.apply(
                &entry.key,
                matches!(entry.operation, kv::Operation::Put).then(|| entry.value.clone()),
                entry.revision,
            );
            matches!(entry.operation, kv::Operation::Put).then_some(Versioned {
                value: entry.value,
                revision: entry.revision,
            })
        }))
    }

    /// Creates `key`; `Conflict` if it exists.
    pub async fn create(&self, key: &str, value: Bytes) -> Result<u64, StoreError> {
        match self.inner.kv.create(key, value.clone()).await {
            Ok(revision) => {
                self.apply(key, Some(value), revision);
                Ok(revision)
            }
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
                Err(StoreError::Conflict("it already exists".to_owned()))
            }
            Err(err) => Err(StoreError::Unavailable(err.into())),
        }
    }

    /// Replaces `key` if its revision is still `expected`.
    pub async fn update(&self, key: &str, value: Bytes, expected: u64) -> Result<u64, StoreError> {
        match self.inner.kv.update(key, value.clone(), expected).await {
            Ok(revision) => {
                self.apply(key, Some(value), revision);
                Ok(revision)
            }
            Err(err) => Err(update_error(err, expected)),
        }
    }

    /// Deletes `key` if its revision is still `expected`.
    pub async fn delete(&self, key: &str, expected: u64) -> Result<(), StoreError> {
        match self
            .inner
            .kv
            .delete_expect_revision(key, Some(expected))
            .await
        {
            Ok(()) => {
                // The delete marker's revision is not returned; the watcher brings it. Mark
                // the key deleted now, above the revision we deleted.
                self.apply(key, None, expected + 1);
                Ok(())
            }
            Err(err) => Err(update_error(err, expected)),
        }
    }

    /// Applies a value seen in the bucket if it is newer than what memory holds.
    fn apply(&self, key: &str, value: Option<Bytes>, revision: u64) {
        let changed = {
            let Ok(mut cache) = self.inner.cache.write() else {
                return;
            };
            match cache.get_mut(key) {
                Some(slot) if slot.revision >= revision => {
                    // A delete applied locally at `expected + 1` is a placeholder: the real
                    // delete marker (same or higher revision) replaces it silently.
                    false
                }
                Some(slot) => {
                    *slot = Slot { value, revision };
                    true
                }
                None => {
                    cache.insert(key.to_owned(), Slot { value, revision });
                    true
                }
            }
        };
        if changed {
            let _ = self.inner.changes.send(Arc::from(key));
        }
    }

    async fn watch(&self, shutdown: tokio_util::sync::CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.watch_once() => result,
            };
            match result {
                Ok(()) => tracing::warn!("config bucket watch ended; restarting it"),
                Err(err) => tracing::warn!(
                    error = %ErrorChain(&err),
                    "config bucket watch failed; retrying"
                ),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Applies every entry of the bucket, then every change, until the watch ends (`Ok`) or
    /// fails.
    async fn watch_once(&self) -> Result<(), WatchError> {
        let empty = self
            .inner
            .kv
            .stream
            .get_info()
            .await
            .map_err(WatchError::Info)?
            .state
            .messages
            == 0;
        let mut watch = self
            .inner
            .kv
            .watch_with_history(">")
            .await
            .map_err(WatchError::Start)?;
        if empty {
            self.inner.loaded.store(true, Ordering::Release);
        }
        while let Some(entry) = watch.next().await {
            let entry = entry.map_err(WatchError::Next)?;
            let value = matches!(entry.operation, kv::Operation::Put).then_some(entry.value);
            self.apply(&entry.key, value, entry.revision);
            if entry.delta == 0 {
                self.inner.loaded.store(true, Ordering::Release);
            }
        }
        Ok(())
    }
}

fn update_error(err: kv::UpdateError, expected: u64) -> StoreError {
    match err.kind() {
        kv::UpdateErrorKind::WrongLastRevision => StoreError::Conflict(format!(
            "revision {expected} is no longer current: it was changed concurrently"
        )),
        _ => StoreError::Unavailable(err.into()),
    }
}
