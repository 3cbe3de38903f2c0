//! Metric definitions: an optional local TOML file for bootstrap, plus a watch on the
//! `rtdash_config` key-value bucket, keys `metric.<tenant|_all>.<name>` holding a
//! [`MetricDefinition`] as JSON.
//!
//! The set in force is built-in `events` + file definitions + bucket definitions (a bucket
//! definition with the same tenant and name as a file one replaces it). Every change rebuilds
//! the [`MetricSet`] and hands it to every shard: it applies to events aggregated from then
//! on, within moments of the put. A bucket value that does not parse, fails validation, or
//! whose tenant or name disagrees with its key is logged and counted
//! (`rtdash_agent_definitions_invalid_total`); the previous valid definition under that key,
//! if any, stays in force. A problem in the local file, on the other hand, is a configuration
//! error: the agent refuses to start (exit 64), naming the file.
//!
//! The watch delivers the current value of every key first; the agent reports ready
//! (`/readyz` check `definitions`) and ingest admits events once it has caught up (until
//! then ingest answers `503 definitions_not_loaded`: events aggregated earlier would miss
//! every bucket-defined metric). An empty bucket is caught up at once; an absent one (no
//! `KV_rtdash_config` stream in the agent's domain) counts as read and empty, and is looked
//! for again with the backoff. If the watch fails (NATS gone), it is re-established with a
//! backoff, rebuilding the bucket's definitions from scratch; the set read before stays in
//! force meanwhile and the agent stays ready.

use crate::aggregate::Shards;
use crate::metrics::AgentMetrics;
use async_nats::jetstream::kv::{Entry, Operation};
use async_nats::jetstream::Context;
use futures::StreamExt;
use rtdash_shared::metric::{MetricDefError, MetricDefinition, MetricFile, MetricSet};
use rtdash_shared::names;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Key prefix of metric definitions in the config bucket.
pub const METRIC_KEY_PREFIX: &str = "metric.";

/// The local definitions file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionsFileError {
    /// The file could not be read.
    #[error("metrics file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse, or a definition in it is invalid.
    #[error("metrics file {}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: MetricDefError,
    },
}

/// Reads and validates the local definitions file.
pub fn load_file(path: &Path) -> Result<Vec<MetricDefinition>, DefinitionsFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| DefinitionsFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    MetricFile::from_toml(&text)
        .map(|file| file.metric)
        .map_err(|source| DefinitionsFileError::Invalid {
            path: path.to_owned(),
            source,
        })
}

/// The definitions in force and where they came from.
#[derive(Debug)]
pub struct Definitions {
    file: Vec<MetricDefinition>,
    bucket: BTreeMap<String, MetricDefinition>,
    shards: Arc<Shards>,
    metrics: AgentMetrics,
    ready: Arc<AtomicBool>,
}

impl Definitions {
    /// Definitions from the local file only (the bucket is watched by [`Definitions::watch`]).
    pub fn new(file: Vec<MetricDefinition>, shards: Arc<Shards>, metrics: AgentMetrics) -> Self {
        Self {
            file,
            bucket: BTreeMap::new(),
            shards,
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The set built from the file alone (before the bucket is read).
    pub fn initial_set(file: &[MetricDefinition]) -> Arc<MetricSet> {
        Arc::new(MetricSet::new(file.iter().cloned()))
    }

    /// Set once the bucket's definitions were read for the first time.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.ready)
    }

    fn apply(&self) {
        let set = MetricSet::new(self.file.iter().chain(self.bucket.values()).cloned());
        self.metrics.definitions_active.set(set.all().len() as f64);
        tracing::info!(
            definitions = set.all().len(),
            from_bucket = self.bucket.len(),
            "metric definitions applied"
        );
        self.shards.set_metrics(Arc::new(set));
    }

    /// Applies one bucket entry to `map`; returns whether it changed anything.
    fn update(&self, map: &mut BTreeMap<String, MetricDefinition>, entry: &Entry) -> bool {
        match entry.operation {
            Operation::Delete | Operation::Purge => map.remove(&entry.key).is_some(),
            Operation::Put => match parse_entry(&entry.key, &entry.value) {
                Ok(def) => {
                    let changed = map.get(&entry.key) != Some(&def);
                    map.insert(entry.key.clone(), def);
                    changed
                }
                Err(problem) => {
                    self.metrics.definitions_invalid.increment(1);
                    tracing::warn!(
                        key = %entry.key,
                        revision = entry.revision,
                        %problem,
                        kept_previous = map.contains_key(&entry.key),
                        "invalid metric definition in the config bucket; ignored"
                    );
                    false
                }
            },
        }
    }

    /// Watches the bucket until `stop` is cancelled (see the module docs).
    pub async fn watch(mut self, js: Context, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let result = tokio::select! {
                () = stop.cancelled() => return,
                result = self.watch_once(&js, &stop) => result,
            };
            match result {
                Ok(()) => return,
                Err(WatchError::Bucket { source }) if bucket_absent(&source) => {
                    if !self.ready.load(Ordering::Acquire) || !self.bucket.is_empty() {
                        tracing::info!(
                            bucket = names::CONFIG_BUCKET,
                            "no config bucket: only the built-in and file metric definitions apply"
                        );
                        self.catch_up(BTreeMap::new());
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "metric definition watch interrupted");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn watch_once(
        &mut self,
        js: &Context,
        stop: &CancellationToken,
    ) -> Result<(), WatchError> {
        let kv = js
            .get_key_value(names::CONFIG_BUCKET)
            .await
            .map_err(|source| WatchError::Bucket { source })?;
        // A named, filtered consumer: the agent's NATS user may watch `metric.>` of the
        // bucket and nothing else (rtdash_runtime::kv_watch).
        let mut watch = rtdash_runtime::kv_watch::watch_prefix(
            js,
            &kv,
            METRIC_KEY_PREFIX,
            "edge-agent-definitions",
        )
        .await
        .map_err(WatchError::Watch)?;
        let any = !watch.caught_up();
        // Until the history is read, changes go to a fresh map that replaces the old one.
        let mut fresh: Option<BTreeMap<String, MetricDefinition>> = Some(BTreeMap::new());
        if !any {
            self.catch_up(fresh.take().unwrap_or_default());
        }
        loop {
            let entry = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                entry = watch.next() => entry,
            };
            let entry = match entry {
                Some(Ok(entry)) => entry,
                Some(Err(err)) => return Err(WatchError::Entry(err)),
                None => return Err(WatchError::Ended),
            };
            match fresh.as_mut() {
                Some(map) => {
                    let mut map_owned = std::mem::take(map);
                    self.update(&mut map_owned, &entry);
                    *map = map_owned;
                    if entry.delta == 0 {
                        self.catch_up(fresh.take().unwrap_or_default());
                    }
                }
                None => {
                    let mut bucket = std::mem::take(&mut self.bucket);
                    let changed = self.update(&mut bucket, &entry);
                    self.bucket = bucket;
                    if changed {
                        self.apply();
                    }
                }
            }
        }
    }

    fn catch_up(&mut self, map: BTreeMap<String, MetricDefinition>) {
        self.bucket = map;
        self.apply();
        self.ready.store(true, Ordering::Release);
    }
}

/// Whether opening the bucket failed because its stream does not exist (as opposed to NATS
/// being unreachable or refusing).
fn bucket_absent(err: &async_nats::jetstream::context::KeyValueError) -> bool {
    use async_nats::jetstream::context::{GetStreamError, GetStreamErrorKind};
    use async_nats::jetstream::ErrorCode;
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<GetStreamError>())
        .is_some_and(|source| {
            matches!(source.kind(), GetStreamErrorKind::JetStream(js)
                if js.error_code() == ErrorCode::STREAM_NOT_FOUND)
        })
}

/// Why the watch of the config bucket stopped (it is re-established with a backoff).
#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error("bucket {bucket}: {source}", bucket = names::CONFIG_BUCKET)]
    Bucket {
        #[source]
        source: async_nats::jetstream::context::KeyValueError,
    },
    #[error("watch: {0}")]
    Watch(#[source] rtdash_runtime::kv_watch::WatchError),
    #[error("watch: {0}")]
    Entry(#[source] rtdash_runtime::kv_watch::EntryError),
    #[error("watch ended")]
    Ended,
}

/// Why a config bucket entry is not a usable metric definition.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The key does not start with `metric.`.
    #[error("key does not start with `metric.`")]
    Prefix,
    /// The key has no tenant and name.
    #[error("key is not metric.<tenant|_all>.<name>")]
    Key,
    /// The value is not a valid definition.
    #[error(transparent)]
    Definition(#[from] MetricDefError),
    /// The definition's name is not the key's.
    #[error("the definition's name `{found}` differs from the key's `{key}`")]
    Name {
        /// The definition's name.
        found: String,
        /// The key's name.
        key: String,
    },
    /// The definition's tenant is not the key's.
    #[error("the definition's tenant_id {found:?} differs from the key's `{key}`")]
    Tenant {
        /// The definition's tenant, if any.
        found: Option<String>,
        /// The key's tenant (`_all` for every tenant).
        key: String,
    },
}

/// Parses a bucket value and checks it against its key `metric.<tenant|_all>.<name>`.
pub fn parse_entry(key: &str, value: &[u8]) -> Result<MetricDefinition, EntryError> {
    let rest = key
        .strip_prefix(METRIC_KEY_PREFIX)
        .ok_or(EntryError::Prefix)?;
    let (tenant, name) = rest.split_once('.').ok_or(EntryError::Key)?;
    let def = MetricDefinition::from_json(value)?;
    if def.name != name {
        return Err(EntryError::Name {
            found: def.name,
            key: name.to_owned(),
        });
    }
    let key_tenant = (tenant != names::ALL_TENANTS).then_some(tenant);
    if def.tenant_id.as_deref() != key_tenant {
        return Err(EntryError::Tenant {
            found: def.tenant_id,
            key: tenant.to_owned(),
        });
    }
    Ok(def)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_must_agree_with_their_key() {
        let def = br#"{"name":"amount","event_type":"pay","field":"usd"}"#;
        assert!(parse_entry("metric._all.amount", def).is_ok());
        assert!(matches!(
            parse_entry("metric._all.other", def),
            Err(EntryError::Name { .. })
        ));
        assert!(matches!(
            parse_entry("metric.acme.amount", def),
            Err(EntryError::Tenant { .. })
        ));
        let scoped = br#"{"name":"amount","tenant_id":"acme","event_type":"pay"}"#;
        assert!(parse_entry("metric.acme.amount", scoped).is_ok());
        assert!(parse_entry("metric._all.amount", b"{not json").is_err());
        assert!(parse_entry(
            "metric._all.amount",
            br#"{"name":"amount","event_type":"pay","window_secs":7}"#
        )
        .unwrap_err()
        .to_string()
        .contains("window_secs"));
    }

    #[test]
    fn the_file_is_validated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.toml");
        std::fs::write(
            &good,
            "[[metric]]\nname = \"amount\"\nevent_type = \"pay\"\nfield = \"usd\"\n",
        )
        .expect("write");
        assert_eq!(load_file(&good).expect("valid").len(), 1);
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[[metric]]\nname = \"a b\"\nevent_type = \"pay\"\n").expect("write");
        let err = load_file(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.toml"), "{err}");
        assert!(load_file(&dir.path().join("missing.toml")).is_err());
    }
}
