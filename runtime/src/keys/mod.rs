//! The key store (issue #16): every API key, dashboard link, tenant quota setting and the
//! session secret of the `rtdash_keys` bucket, held in memory and kept current by a watcher, so that verifying a
//! presented credential is a hash and a map lookup, and a revoked key stops verifying as soon
//! as the watch delivers its delete (milliseconds; well within the 5 s the docs promise).
//!
//! - [`KeyStore::verify`]: a presented key or link token -> the [`Principal`], or `None`;
//! - [`KeyStore::verify_session`]: a browser session token -> the principal of its key;
//! - last use: [`KeyStore::verify`] notes the key, and [`KeyStore::run`] writes `used.<key_id>`
//!   at most once a minute per key, off the request path ([`used`]);
//! - the operator credential comes from a file ([`operator`]), hashed at start;
//! - failed attempts per client address are limited by [`limiter::FailedAuthLimiter`].
//!
//! Writes (creating and revoking keys and links) go to the bucket and are applied to memory
//! when the bucket acknowledges them, so this process sees its own writes at once.

pub mod limiter;
pub mod operator;
mod table;
mod used;
mod watch;

pub use limiter::FailedAuthLimiter;
pub use operator::{read_operator_key, OperatorKeyError};

use async_nats::jetstream::kv;
use bytes::Bytes;
use rtdash_shared::auth::token::{hex, random_bytes};
use rtdash_shared::auth::{KeyRecord, LinkRecord, Principal, Token};
use rtdash_shared::names;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use table::{KeyTable, Verified};
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio_util::sync::CancellationToken;

/// Last-used notes waiting to be written; when full, a note is dropped (the next use a minute
/// later notes the key again).
const USED_QUEUE: usize = 1024;

/// A read or write of the bucket failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The record exists already (a key id collision: retry with a new key).
    #[error("`{0}` exists already")]
    Exists(String),
    /// NATS unreachable or timed out.
    #[error("the key store (bucket {bucket}) is unavailable", bucket = names::KEYS_BUCKET)]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A record could not be encoded.
    #[error("a key record does not encode")]
    Encode(#[source] serde_json::Error),
    /// The OS random number generator failed.
    #[error(transparent)]
    Random(#[from] rtdash_shared::auth::token::RandomError),
}

/// The credentials of the `rtdash_keys` bucket, in memory. Cheap to clone.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field(
                "operator",
                &self.inner.table.operator.as_ref().map(|o| &o.id),
            )
            .finish_non_exhaustive()
    }
}

struct Inner {
    kv: kv::Store,
    table: KeyTable,
    loaded: AtomicBool,
    /// Bumped on every removal of a key or link (open streams re-check their credential).
    revocations: tokio_watch::Sender<u64>,
    used: used::UsedNotes,
}

impl KeyStore {
    /// The store over `kv`, with the operator credential `operator` (read by
    /// [`read_operator_key`]; `None`: no operator). Nothing is loaded until [`KeyStore::run`]
    /// runs.
    pub fn new(kv: kv::Store, operator: Option<&Token>) -> (Self, KeyStoreTask) {
        let (revocations, _) = tokio_watch::channel(0);
        let (notes, queue) = mpsc::channel(USED_QUEUE);
        let store = Self {
            inner: Arc::new(Inner {
                kv,
                table: KeyTable::new(operator),
                loaded: AtomicBool::new(false),
                revocations,
                used: used::UsedNotes::new(notes),
            }),
        };
        let task = KeyStoreTask {
            store: store.clone(),
            queue,
        };
        (store, task)
    }

    /// Whether an operator credential is configured.
    pub fn has_operator(&self) -> bool {
        self.inner.table.operator.is_some()
    }

    /// Whether the watcher has caught up with the bucket at least once.
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// Waits until loaded, at most `timeout`; returns whether it is.
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

    /// A receiver whose value changes whenever a key or link is removed.
    pub fn revocations(&self) -> tokio_watch::Receiver<u64> {
        self.inner.revocations.subscribe()
    }

    /// The principal of a presented key or link token, or `None` when it is malformed,
    /// unknown, revoked, expired or its secret does not match. A tenant key's use is noted
    /// (written later, at most once a minute).
    pub fn verify(&self, presented: &str) -> Option<Principal> {
        let verified = self
            .inner
            .table
            .verify(presented, rtdash_shared::time::now_millis())?;
        Some(self.noted(verified))
    }

    /// The principal of the key a session token was signed for, while the token is genuine,
    /// unexpired, and the key still exists (revoking a key ends its sessions).
    pub fn verify_session(&self, token: &str) -> Option<Principal> {
        let verified = self
            .inner
            .table
            .verify_session(token, rtdash_shared::time::now_millis())?;
        Some(self.noted(verified))
    }

    fn noted(&self, verified: Verified) -> Principal {
        if let Some(key_id) = &verified.used_key {
            self.inner.used.note(key_id);
        }
        verified.principal
    }

    /// A session token for `key_id` valid until `expiry_secs`, or `None` while there is no
    /// session secret yet (see [`KeyStore::ensure_session_secret`]).
    pub fn sign_session(&self, key_id: &str, expiry_secs: i64) -> Option<String> {
        self.inner.table.sign_session(key_id, expiry_secs)
    }

    /// Makes sure the bucket holds a session secret: creates one when there is none (the
    /// first gateway to start), or loads the one another gateway created.
    pub async fn ensure_session_secret(&self) -> Result<(), KeyStoreError> {
        if self.has_session_secret() {
            return Ok(());
        }
        let secret = hex(&random_bytes(32)?);
        match self
            .inner
            .kv
            .create(names::SESSION_SECRET_KEY, Bytes::from(secret.clone()))
            .await
        {
            Ok(_) => {
                self.apply(names::SESSION_SECRET_KEY, Some(secret.as_bytes()));
                Ok(())
            }
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
                let entry = self
                    .inner
                    .kv
                    .get(names::SESSION_SECRET_KEY)
                    .await
                    .map_err(|err| KeyStoreError::Unavailable(err.into()))?;
                self.apply(names::SESSION_SECRET_KEY, entry.as_deref());
                Ok(())
            }
            Err(err) => Err(KeyStoreError::Unavailable(err.into())),
        }
    }

    fn has_session_secret(&self) -> bool {
        self.inner.table.has_session_secret()
    }

    /// Every key of `tenant` (every key when `None`), with its last use, by creation time.
    pub fn keys(&self, tenant: Option<&str>) -> Vec<(KeyRecord, Option<String>)> {
        self.inner.table.keys(tenant)
    }

    /// The key `key_id`, if it exists.
    pub fn key(&self, key_id: &str) -> Option<KeyRecord> {
        self.inner.table.key(key_id)
    }

    /// Every link of `dashboard_id` of `tenant`, by creation time.
    pub fn links(&self, tenant: &str, dashboard_id: &str) -> Vec<LinkRecord> {
        self.inner.table.links(tenant, dashboard_id)
    }

    /// The link `link_id`, if it exists.
    pub fn link(&self, link_id: &str) -> Option<LinkRecord> {
        self.inner.table.link(link_id)
    }

    /// The operator's quota settings of `tenant` (`quota.<tenant>`, JSON), if any.
    pub fn quota(&self, tenant: &str) -> Option<Vec<u8>> {
        self.inner.table.quota(tenant)
    }

    /// Every tenant's quota settings (`quota.<tenant>`, JSON), with the
    /// [`KeyStore::quota_generation`] they are of.
    pub fn quotas(&self) -> (u64, Vec<(String, Vec<u8>)>) {
        self.inner.table.quotas()
    }

    /// A number that changes whenever a tenant's quota settings change (cheap: poll it, and
    /// read [`KeyStore::quotas`] when it moved).
    pub fn quota_generation(&self) -> u64 {
        self.inner.table.quota_generation()
    }

    /// Replaces the quota settings of `tenant` (`quota.<tenant>`) with `value` (JSON).
    pub async fn put_quota(&self, tenant: &str, value: Vec<u8>) -> Result<(), KeyStoreError> {
        let key = names::quota_key(tenant);
        self.inner
            .kv
            .put(&key, Bytes::from(value.clone()))
            .await
            .map_err(|err| KeyStoreError::Unavailable(err.into()))?;
        self.apply(&key, Some(&value));
        Ok(())
    }

    /// Stores a new key record (`key.<key_id>`).
    pub async fn create_key(&self, record: &KeyRecord) -> Result<(), KeyStoreError> {
        self.create(&names::key_record_key(&record.key_id), record)
            .await
    }

    /// Stores a new link record (`link.<link_id>`).
    pub async fn create_link(&self, record: &LinkRecord) -> Result<(), KeyStoreError> {
        self.create(&names::link_record_key(&record.link_id), record)
            .await
    }

    async fn create<T: serde::Serialize>(
        &self,
        key: &str,
        record: &T,
    ) -> Result<(), KeyStoreError> {
        let value = serde_json::to_vec(record).map_err(KeyStoreError::Encode)?;
        match self.inner.kv.create(key, Bytes::from(value.clone())).await {
            Ok(_) => {
                self.apply(key, Some(&value));
                Ok(())
            }
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
                Err(KeyStoreError::Exists(key.to_owned()))
            }
            Err(err) => Err(KeyStoreError::Unavailable(err.into())),
        }
    }

    /// Revokes the key `key_id` (and forgets its last use).
    pub async fn delete_key(&self, key_id: &str) -> Result<(), KeyStoreError> {
        self.delete(&names::key_record_key(key_id)).await?;
        // Best effort: a stale `used.` entry names no key and is ignored.
        let _ = self.inner.kv.purge(names::key_used_key(key_id)).await;
        Ok(())
    }

    /// Revokes the link `link_id`.
    pub async fn delete_link(&self, link_id: &str) -> Result<(), KeyStoreError> {
        self.delete(&names::link_record_key(link_id)).await
    }

    async fn delete(&self, key: &str) -> Result<(), KeyStoreError> {
        self.inner
            .kv
            .purge(key)
            .await
            .map_err(|err| KeyStoreError::Unavailable(err.into()))?;
        self.apply(key, None);
        Ok(())
    }

    /// Applies one bucket entry (`None`: deleted) to memory; a removal bumps the
    /// revocation counter.
    fn apply(&self, key: &str, value: Option<&[u8]>) {
        if self.inner.table.apply(key, value) {
            self.inner.revocations.send_modify(|n| *n += 1);
        }
    }
}

/// The store's background work: the bucket watch and the last-used writer. Run it with
/// [`KeyStoreTask::run`] until shutdown.
pub struct KeyStoreTask {
    store: KeyStore,
    queue: mpsc::Receiver<String>,
}

impl KeyStoreTask {
    /// Watches the bucket (restarting the watch when it fails) and writes last-used times,
    /// until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let KeyStoreTask { store, queue } = self;
        let writer = used::write_notes(store.inner.kv.clone(), queue, shutdown.clone());
        tokio::join!(watch::watch(store, shutdown), writer);
    }
}
