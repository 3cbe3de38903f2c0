//! Alert state in the key-value bucket `rtdash_alert_state`, one key per (rule, series):
//! `p<partition>.<tenant>.<rule>.<series id>` (see [`rtdash_shared::names::alert_state_key`]).
//!
//! Every write is a compare-and-set on the key's revision, so when a partition changes owner
//! and the deposed owner still evaluates a window, one of the two writes fails and that
//! evaluator reloads the key instead of overwriting the other's state.

use super::state::SeriesAlert;
use crate::error::{BoxError, Error};
use async_nats::jetstream::{self, kv};
use rtdash_runtime::kv::last_values;
use rtdash_shared::names;

/// How a compare-and-set write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Written; the key's new revision.
    Saved(u64),
    /// Someone else wrote the key first (revision mismatch, or the key exists when it was
    /// expected absent): nothing was written.
    Conflict,
}

/// A bucket could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state does not encode.
    #[error("cannot encode the alert state: {0}")]
    Encode(#[from] serde_json::Error),
    /// NATS unreachable, timed out, or refused.
    #[error("bucket {bucket}: {source}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// The error.
        #[source]
        source: BoxError,
    },
    /// Reading a bucket's current values failed.
    #[error(transparent)]
    Read(#[from] rtdash_runtime::kv::KvReadError),
}

impl StoreError {
    fn bucket(bucket: &str, err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Bucket {
            bucket: bucket.to_owned(),
            source: Box::new(err),
        }
    }
}

/// The alert state bucket.
#[derive(Clone)]
pub struct StateStore {
    kv: kv::Store,
    js: jetstream::Context,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").finish_non_exhaustive()
    }
}

/// A loaded state and the revision it was read at.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// Its key.
    pub key: String,
    /// KV revision.
    pub revision: u64,
    /// The state.
    pub alert: SeriesAlert,
}

impl StateStore {
    /// Opens the bucket (created by [`super::setup`]).
    pub async fn open(js: &jetstream::Context) -> Result<Self, Error> {
        let kv = js
            .get_key_value(names::ALERT_STATE_BUCKET)
            .await
            .map_err(|e| Error::js(format!("bucket {}", names::ALERT_STATE_BUCKET), e))?;
        Ok(Self { kv, js: js.clone() })
    }

    /// Writes `alert` under `key`: created when `expected` is `None` (absent or deleted key),
    /// else replaced if the key is still at revision `expected`.
    pub async fn write(
        &self,
        key: &str,
        alert: &SeriesAlert,
        expected: Option<u64>,
    ) -> Result<Written, StoreError> {
        let bytes = serde_json::to_vec(alert)?;
        let bucket = names::ALERT_STATE_BUCKET;
        match expected {
            None => match self.kv.create(key, bytes.into()).await {
                Ok(revision) => Ok(Written::Saved(revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(Written::Conflict),
                Err(e) => Err(StoreError::bucket(bucket, e)),
            },
            Some(revision) => match self.kv.update(key, bytes.into(), revision).await {
                Ok(revision) => Ok(Written::Saved(revision)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    Ok(Written::Conflict)
                }
                Err(e) => Err(StoreError::bucket(bucket, e)),
            },
        }
    }

    /// Deletes `key` if it is still at `revision`.
    pub async fn delete(&self, key: &str, revision: u64) -> Result<(), StoreError> {
        self.kv
            .delete_expect_revision(key, Some(revision))
            .await
            .map_err(|e| StoreError::bucket(names::ALERT_STATE_BUCKET, e))
    }

    /// The current state under `key` (`None`: absent or deleted).
    pub async fn read(&self, key: &str) -> Result<Option<Loaded>, StoreError> {
        let entry = self
            .kv
            .entry(key)
            .await
            .map_err(|e| StoreError::bucket(names::ALERT_STATE_BUCKET, e))?;
        Ok(entry.and_then(|entry| {
            if entry.operation != kv::Operation::Put {
                return None;
            }
            let alert = serde_json::from_slice(&entry.value).ok()?;
            Some(Loaded {
                key: key.to_owned(),
                revision: entry.revision,
                alert,
            })
        }))
    }

    /// Every state of `partition` (the newest value of each key under `p<partition>.`).
    /// Values that do not decode are skipped with a warning.
    pub async fn load_partition(&self, partition: u32) -> Result<Vec<Loaded>, StoreError> {
        let (entries, _) = last_values(
            &self.js,
            names::ALERT_STATE_BUCKET,
            &format!("p{partition}.>"),
        )
        .await?;
        let mut loaded = Vec::new();
        for entry in entries {
            if entry.deleted {
                continue;
            }
            match serde_json::from_slice::<SeriesAlert>(&entry.value) {
                Ok(alert) => loaded.push(Loaded {
                    key: entry.key,
                    revision: entry.revision,
                    alert,
                }),
                Err(err) => {
                    tracing::warn!(key = %entry.key, %err, "undecodable alert state; ignored")
                }
            }
        }
        Ok(loaded)
    }
}
