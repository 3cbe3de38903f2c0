//! The schema publisher: every interval, the records of what changed go to the
//! `rtdash_schema` bucket. A failed write is retried at the next tick with the newest record
//! of its key; at most one record per key waits, so the backlog is bounded by the catalog's
//! bounds.
//!
//! An agent at an edge site has no such bucket in its own JetStream domain: it writes to the
//! hub's through the hub's API prefix ([`Destination::Hub`]), the way a client writes through
//! a mirror with an external API prefix. While the link is cut the writes fail and the
//! newest record of each key waits for the next tick.

use super::catalog::Catalog;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use rtdash_shared::names;
use rtdash_shared::time::now_millis;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Why a record was not written.
type PutError = Box<dyn std::error::Error + Send + Sync>;

/// How long the final publish at shutdown may take.
const FINAL_PUBLISH: Duration = Duration::from_secs(2);

/// Where the records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The bucket of the agent's own JetStream domain (an agent that talks to the hub).
    Local,
    /// The hub's bucket through the hub's JetStream API prefix ([`names::HUB_JS_API`]):
    /// an agent at an edge site.
    Hub,
}

/// Publishes `catalog`'s changes as agent `agent_id` to `destination` every `every` until
/// `stop`, then once more (bounded by [`FINAL_PUBLISH`]).
pub async fn run(
    catalog: Arc<Catalog>,
    js: jetstream::Context,
    destination: Destination,
    agent_id: String,
    every: Duration,
    stop: CancellationToken,
) {
    let mut publisher = Publisher {
        catalog,
        js,
        destination,
        agent_id,
        bucket: None,
        pending: HashMap::new(),
        warned: false,
    };
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = interval.tick() => publisher.tick().await,
        }
    }
    let _ = tokio::time::timeout(FINAL_PUBLISH, publisher.tick()).await;
}

struct Publisher {
    catalog: Arc<Catalog>,
    js: jetstream::Context,
    destination: Destination,
    agent_id: String,
    /// The local bucket, once opened ([`Destination::Local`]).
    bucket: Option<kv::Store>,
    /// Key -> newest record not yet written.
    pending: HashMap<String, Bytes>,
    warned: bool,
}

impl Publisher {
    async fn tick(&mut self) {
        let changes = self.catalog.take_changes(now_millis());
        for (tenant, record) in changes.types {
            let key = names::schema_type_key(&tenant, &self.agent_id, &record.event_type);
            self.pending.insert(key, Bytes::from(record.encode()));
        }
        for (tenant, record) in changes.overflows {
            let key = names::schema_overflow_key(&tenant, &self.agent_id);
            self.pending.insert(key, Bytes::from(record.encode()));
        }
        if self.pending.is_empty() {
            return;
        }
        let span = tracing::debug_span!("schema_publish", keys = self.pending.len());
        self.flush().instrument(span).await;
    }

    /// Writes every pending record; stops at the first failure.
    async fn flush(&mut self) {
        let bucket = match self.destination {
            Destination::Local => match self.bucket().await {
                Some(bucket) => Some(bucket),
                None => return,
            },
            Destination::Hub => None,
        };
        let keys: Vec<String> = self.pending.keys().cloned().collect();
        for key in keys {
            let Some(value) = self.pending.get(&key).cloned() else {
                continue;
            };
            let written = match &bucket {
                Some(bucket) => bucket.put(&key, value).await.map(|_| ()).map_err(Box::from),
                None => self.put_at_hub(&key, value).await,
            };
            match written {
                Ok(()) => {
                    self.pending.remove(&key);
                }
                Err(err) => {
                    tracing::warn!(
                        error = %rtdash_runtime::error_chain::ErrorChain(err.as_ref()),
                        destination = ?self.destination,
                        waiting = self.pending.len(),
                        "cannot write schema discovery records; retrying at the next tick"
                    );
                    return;
                }
            }
        }
    }

    /// A KV put into the hub's bucket: a publish to the bucket's subject under the hub's
    /// API prefix, acknowledged by the hub's stream.
    async fn put_at_hub(&self, key: &str, value: Bytes) -> Result<(), PutError> {
        let subject = names::hub_kv_subject(names::SCHEMA_BUCKET, key);
        self.js.publish(subject, value).await?.await?;
        Ok(())
    }

    async fn bucket(&mut self) -> Option<kv::Store> {
        if let Some(bucket) = &self.bucket {
            return Some(bucket.clone());
        }
        match self.js.get_key_value(names::SCHEMA_BUCKET).await {
            Ok(bucket) => {
                self.bucket = Some(bucket.clone());
                Some(bucket)
            }
            Err(err) => {
                if !self.warned {
                    self.warned = true;
                    tracing::warn!(
                        bucket = names::SCHEMA_BUCKET,
                        error = %rtdash_runtime::error_chain::ErrorChain(&err),
                        "schema discovery bucket unavailable; records wait"
                    );
                }
                None
            }
        }
    }
}
