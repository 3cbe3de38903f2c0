//! Watching the keys of a bucket under one prefix, in a way NATS subject permissions can
//! limit to that prefix.
//!
//! `async_nats`' own `Store::watch*` creates its consumer unnamed, on the API subject
//! `$JS.API.CONSUMER.CREATE.<stream>`, which carries no filter: a user allowed to watch one
//! prefix could then watch the whole bucket. A named consumer with one filter subject is
//! created on `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>` instead, and the server
//! checks that the filter in the request matches the one in the subject, so a permission on
//! `$JS.API.CONSUMER.CREATE.KV_rtdash_config.*.$KV.rtdash_config.metric.>` grants watching
//! metric definitions and nothing else of the bucket (deploy/nats/users.conf). The ordered
//! consumer keeps the name (`<name>_<n>`) and the filter when it recreates itself.

use async_nats::jetstream::consumer::push::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::{DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::kv::{Entry, Operation, Store};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The watch could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("watch of `{prefix}>` in bucket {bucket}")]
pub struct WatchError {
    bucket: String,
    prefix: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// A delivered message was not a key-value entry.
#[derive(Debug, thiserror::Error)]
#[error("watch of bucket {bucket}")]
pub struct EntryError {
    bucket: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// The newest value of every key under the prefix (oldest first), then every change.
/// [`PrefixWatch::caught_up`] says whether there was nothing to deliver at the start;
/// afterwards an entry with `delta == 0` is the last one of the history.
pub struct PrefixWatch {
    messages: Ordered,
    bucket: String,
    /// `$KV.<bucket>.`
    subject_prefix: String,
    caught_up: bool,
}

/// Watches the keys beginning with `prefix` (e.g. `metric.`) in `store` (opened through
/// `js`), through an ordered consumer named `<label>_<random>` (`label`: letters, digits, `-`,
/// `_`).
pub async fn watch_prefix(
    js: &async_nats::jetstream::Context,
    store: &Store,
    prefix: &str,
    label: &str,
) -> Result<PrefixWatch, WatchError> {
    let error = |source: Box<dyn std::error::Error + Send + Sync>| WatchError {
        bucket: store.name.clone(),
        prefix: prefix.to_owned(),
        source,
    };
    let name = format!("{label}_{}", uuid::Uuid::new_v4().simple());
    let consumer = store
        .stream
        .create_consumer(OrderedConfig {
            name: Some(name),
            deliver_subject: js.client().new_inbox(),
            description: Some(format!("rtdash watch of {prefix}>")),
            filter_subject: format!("{}{prefix}>", store.prefix),
            deliver_policy: DeliverPolicy::LastPerSubject,
            replay_policy: ReplayPolicy::Instant,
            ..Default::default()
        })
        .await
        .map_err(|err| error(Box::new(err)))?;
    let caught_up = consumer.cached_info().num_pending == 0;
    let messages = consumer
        .messages()
        .await
        .map_err(|err| error(Box::new(err)))?;
    Ok(PrefixWatch {
        messages,
        bucket: store.name.clone(),
        subject_prefix: store.prefix.clone(),
        caught_up,
    })
}

impl PrefixWatch {
    /// True when the prefix held no key at the start (no history will come).
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    fn entry(
        &self,
        message: async_nats::jetstream::Message,
    ) -> Result<Entry, Box<dyn std::error::Error + Send + Sync>> {
        let info = message.info()?;
        let headers = message.headers.as_ref();
        let operation = match (
            headers.and_then(|h| h.get("KV-Operation")),
            headers.and_then(|h| h.get("Nats-Marker-Reason")),
        ) {
            (Some(op), _) => op.as_str().parse::<Operation>()?,
            // Markers the server writes itself (per-key TTLs), as async_nats reads them.
            (None, Some(reason)) => match reason.as_str() {
                "MaxAge" | "Purge" => Operation::Purge,
                "Remove" => Operation::Delete,
                other => return Err(format!("unknown marker reason {other}").into()),
            },
            (None, None) => Operation::Put,
        };
        let key = message
            .subject
            .strip_prefix(self.subject_prefix.as_str())
            .ok_or_else(|| format!("subject {} outside the bucket", message.subject))?
            .to_owned();
        Ok(Entry {
            bucket: self.bucket.clone(),
            key,
            value: message.payload.clone(),
            revision: info.stream_sequence,
            created: info.published,
            delta: info.pending,
            operation,
            seen_current: info.pending == 0,
        })
    }
}

impl Stream for PrefixWatch {
    type Item = Result<Entry, EntryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let message = match self.messages.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(message)) => message,
        };
        let bucket = self.bucket.clone();
        let entry = message
            .map_err(|err| -> Box<dyn std::error::Error + Send + Sync> { Box::new(err) })
            .and_then(|message| self.entry(message));
        Poll::Ready(Some(entry.map_err(|source| EntryError { bucket, source })))
    }
}
