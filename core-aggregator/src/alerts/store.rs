//! Alert state in the key-value bucket `rtdash_alert_state`, one key per (rule, series):
//! `p<partition>.<tenant>.<rule>.<series id>` (see [`rtdash_shared::names::alert_state_key`]).
//!
//! Every write is a compare-and-set on the key's revision, so when a partition changes owner
//! and the deposed owner still evaluates a window, one of the two writes fails and that
//! evaluator reloads the key instead of overwriting the other's state.

use super::state::SeriesAlert;
use crate::error::Error;
use async_nats::jetstream::{self, consumer, kv};
use futures::StreamExt;
use rtdash_shared::names;
use std::time::Duration;

/// A write that lost a compare-and-set: someone else wrote the key first.
#[derive(Debug)]
pub enum WriteError {
    /// Revision mismatch (or the key exists when it was expected absent).
    Conflict,
    /// NATS unreachable, timed out, or refused.
    Other(String),
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
    /// else replaced if the key is still at revision `expected`. Returns the new revision.
    pub async fn write(
        &self,
        key: &str,
        alert: &SeriesAlert,
        expected: Option<u64>,
    ) -> Result<u64, WriteError> {
        let bytes = serde_json::to_vec(alert).map_err(|e| WriteError::Other(e.to_string()))?;
        match expected {
            None => self.kv.create(key, bytes.into()).await.map_err(|e| {
                if e.kind() == kv::CreateErrorKind::AlreadyExists {
                    WriteError::Conflict
                } else {
                    WriteError::Other(e.to_string())
                }
            }),
            Some(revision) => self
                .kv
                .update(key, bytes.into(), revision)
                .await
                .map_err(|e| {
                    if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                        WriteError::Conflict
                    } else {
                        WriteError::Other(e.to_string())
                    }
                }),
        }
    }

    /// Deletes `key` if it is still at `revision`.
    pub async fn delete(&self, key: &str, revision: u64) -> Result<(), WriteError> {
        self.kv
            .delete_expect_revision(key, Some(revision))
            .await
            .map_err(|e| WriteError::Other(e.to_string()))
    }

    /// The current state under `key` (`None`: absent or deleted).
    pub async fn read(&self, key: &str) -> Result<Option<Loaded>, String> {
        let entry = self.kv.entry(key).await.map_err(|e| e.to_string())?;
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
    pub async fn load_partition(&self, partition: u32) -> Result<Vec<Loaded>, String> {
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

/// The newest value of a key of a KV bucket.
#[derive(Clone, Debug)]
pub struct RawEntry {
    /// Key.
    pub key: String,
    /// Revision (stream sequence).
    pub revision: u64,
    /// Value (empty for a deletion).
    pub value: bytes::Bytes,
    /// Whether the newest operation deleted or purged it.
    pub deleted: bool,
}

/// The newest value of every key of `bucket` matching `filter` (a key pattern with `*`/`>`),
/// read with an ordered consumer; also returns a revision from which a watch continues without
/// missing or repeating a change (see [`kv::Store::watch_from_revision`]).
pub async fn last_values(
    js: &jetstream::Context,
    bucket: &str,
    filter: &str,
) -> Result<(Vec<RawEntry>, u64), String> {
    let prefix = format!("$KV.{bucket}.");
    let mut stream = js
        .get_stream(format!("KV_{bucket}"))
        .await
        .map_err(|e| e.to_string())?;
    let before = stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .state
        .last_sequence;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: format!("{prefix}{filter}"),
            deliver_policy: consumer::DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut remaining = consumer.cached_info().num_pending;
    let mut entries = Vec::new();
    let mut newest = before;
    if remaining == 0 {
        return Ok((entries, newest + 1));
    }
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    while remaining > 0 {
        let next = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .map_err(|_| format!("timed out reading bucket {bucket}"))?;
        let Some(message) = next else { break };
        let message = message.map_err(|e| e.to_string())?;
        let info = message.info().map_err(|e| e.to_string())?;
        remaining = info.pending;
        newest = newest.max(info.stream_sequence);
        let deleted = message.headers.as_ref().is_some_and(|h| {
            h.get("KV-Operation")
                .is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE")
        });
        let Some(key) = message.subject.as_str().strip_prefix(&prefix) else {
            continue;
        };
        entries.push(RawEntry {
            key: key.to_owned(),
            revision: info.stream_sequence,
            deleted: deleted || message.payload.is_empty(),
            value: message.payload.clone(),
        });
    }
    Ok((entries, newest + 1))
}
