//! Reading JetStream key-value buckets the way several services need it: the newest value of
//! every key under a pattern ([`last_values`]), and a mirror that follows those keys
//! ([`follow`]: a snapshot, then the changes from the next revision, started over after a
//! backoff when the watch breaks).

use async_nats::jetstream::{self, consumer, kv};
use futures::StreamExt;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Boxed error source.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A bucket could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KvReadError {
    /// NATS unreachable, timed out, or refused.
    #[error("bucket {bucket}: {source}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// The error.
        #[source]
        source: BoxError,
    },
    /// Reading a bucket's values stalled.
    #[error("timed out reading bucket {0}")]
    Timeout(String),
}

impl KvReadError {
    fn bucket(bucket: &str, err: impl Into<BoxError>) -> Self {
        Self::Bucket {
            bucket: bucket.to_owned(),
            source: err.into(),
        }
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
) -> Result<(Vec<RawEntry>, u64), KvReadError> {
    let prefix = format!("$KV.{bucket}.");
    let mut stream = js
        .get_stream(format!("KV_{bucket}"))
        .await
        .map_err(|e| KvReadError::bucket(bucket, e))?;
    let before = stream
        .info()
        .await
        .map_err(|e| KvReadError::bucket(bucket, e))?
        .state
        .last_sequence;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: format!("{prefix}{filter}"),
            deliver_policy: consumer::DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(|e| KvReadError::bucket(bucket, e))?;
    let mut remaining = consumer.cached_info().num_pending;
    let mut entries = Vec::new();
    let mut newest = before;
    if remaining == 0 {
        return Ok((entries, newest + 1));
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| KvReadError::bucket(bucket, e))?;
    while remaining > 0 {
        let next = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .map_err(|_| KvReadError::Timeout(bucket.to_owned()))?;
        let Some(message) = next else { break };
        let message = message.map_err(|e| KvReadError::bucket(bucket, e))?;
        let info = message.info().map_err(|e| KvReadError::bucket(bucket, e))?;
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

/// What [`follow`] tells its caller.
#[derive(Debug)]
pub enum Change<'a> {
    /// The current values (deleted keys left out): replace everything known so far.
    Snapshot(Vec<RawEntry>),
    /// A key was written.
    Put {
        /// The key.
        key: &'a str,
        /// Its new value.
        value: &'a [u8],
    },
    /// A key was deleted or purged.
    Delete {
        /// The key.
        key: &'a str,
    },
}

/// Follows the keys of the bucket `store` matching `filter` until `stop`: `apply` gets a
/// [`Change::Snapshot`] of their current values, then every change from the next revision.
/// `loaded` is sent after the first snapshot was applied. A broken watch starts over with a
/// new snapshot (after a backoff of 0.2 s doubling to 5 s); `what` names the keys in logs.
pub async fn follow(
    js: jetstream::Context,
    store: kv::Store,
    filter: &str,
    what: &str,
    mut apply: impl FnMut(Change<'_>),
    loaded: Option<tokio::sync::oneshot::Sender<()>>,
    stop: CancellationToken,
) {
    let bucket = store.name.clone();
    let mut loaded = loaded;
    let mut backoff = Duration::from_millis(200);
    loop {
        let snapshot = tokio::select! {
            () = stop.cancelled() => return,
            s = last_values(&js, &bucket, filter) => s,
        };
        let watch = match snapshot {
            Ok((entries, next)) => {
                apply(Change::Snapshot(
                    entries.into_iter().filter(|e| !e.deleted).collect(),
                ));
                if let Some(tx) = loaded.take() {
                    let _ = tx.send(());
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    w = store.watch_from_revision(filter, next) => w.map_err(BoxError::from),
                }
            }
            Err(err) => Err(BoxError::from(err)),
        };
        match watch {
            Ok(mut entries) => {
                backoff = Duration::from_millis(200);
                loop {
                    let next = tokio::select! {
                        () = stop.cancelled() => return,
                        next = entries.next() => next,
                    };
                    match next {
                        Some(Ok(entry)) if entry.operation == kv::Operation::Put => {
                            apply(Change::Put {
                                key: &entry.key,
                                value: &entry.value,
                            });
                        }
                        Some(Ok(entry)) => apply(Change::Delete { key: &entry.key }),
                        Some(Err(err)) => {
                            tracing::warn!(%err, what, "watch failed; reloading");
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(err) => tracing::warn!(%err, what, "cannot read; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
