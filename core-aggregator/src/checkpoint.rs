//! Checkpoints of partition state in JetStream.
//!
//! - **Manifest**: KV `rtdash_checkpoints`, key `partition.<p>`, JSON [`Manifest`]: the stream
//!   sequence applied, clocks, watermark sources, applied agent sequence numbers, and the list
//!   of window-data objects (a full snapshot plus the deltas written since).
//! - **Window data**: Object Store bucket `rtdash_checkpoint_data`, objects
//!   `p<partition>/e<epoch>/c<checkpoint id>`, each a [`crate::state::Segment`].
//!
//! A checkpoint writes one object with the windows changed since the previous checkpoint (and
//! tombstones of the evicted ones), then the manifest listing it. When the deltas outnumber
//! `checkpoint.max_deltas` or outweigh the snapshot, a new full snapshot is written instead and
//! the superseded objects are deleted after the manifest that no longer lists them. So the
//! cost of a checkpoint is proportional to the windows changed, plus an amortised share of
//! snapshots.
//!
//! **Fencing**: every manifest write is a compare-and-set on the key's revision. A new owner
//! first rewrites the manifest under its own name and epoch ([`CheckpointStore::claim`]), so a
//! deposed owner that wakes up finds its next checkpoint [`Saved::Fenced`] and can never
//! acknowledge messages again. Objects written by a deposed owner are never listed and are
//! deleted by the next claim.

use crate::error::{BoxError, CheckpointError, Error};
use crate::state::{Capture, PartitionMeta, PartitionState, Segment, Settings};
use async_nats::jetstream::{kv, object_store};
use futures::StreamExt;
use rtdash_shared::names;
use rtdash_shared::time::{now_millis, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Format of manifests written by this release.
pub const MANIFEST_FORMAT: u32 = 1;

/// Object Store chunk size for window data (below NATS' default 1 MiB payload limit; fewer,
/// larger chunks mean fewer acknowledged round trips than the 128 KiB default).
pub const OBJECT_CHUNK_BYTES: usize = 512 * 1024;

/// A window-data object listed by a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Object name.
    pub name: String,
    /// Size.
    pub bytes: u64,
    /// Window records in it.
    pub windows: u64,
}

/// The checkpoint manifest of one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Partition.
    pub partition: u32,
    /// The aggregator that wrote it.
    pub owner: String,
    /// Its ownership epoch (the lease revision when it acquired the partition).
    pub epoch: u64,
    /// Increases with every write.
    pub checkpoint_id: u64,
    /// When it was written.
    pub written_at: UnixMillis,
    /// Everything but the windows.
    pub meta: PartitionMeta,
    /// Full snapshot of the windows, if any.
    pub base: Option<ObjectRef>,
    /// Deltas since the snapshot, oldest first.
    pub deltas: Vec<ObjectRef>,
}

impl Manifest {
    fn empty(partition: u32) -> Self {
        Self {
            format: MANIFEST_FORMAT,
            partition,
            owner: String::new(),
            epoch: 0,
            checkpoint_id: 0,
            written_at: 0,
            meta: PartitionMeta::default(),
            base: None,
            deltas: Vec::new(),
        }
    }

    fn objects(&self) -> impl Iterator<Item = &ObjectRef> {
        self.base.iter().chain(self.deltas.iter())
    }

    fn decode(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(CheckpointError::Manifest)?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(CheckpointError::ManifestFormat(manifest.format));
        }
        Ok(manifest)
    }
}

/// How a [`CheckpointStore::save`] ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Saved {
    /// The checkpoint is durable; what it cost.
    Written(CheckpointReport),
    /// Another aggregator owns the partition now: the manifest was not written, and this
    /// owner must stop.
    Fenced,
}

/// What one checkpoint cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CheckpointReport {
    /// Window-data bytes written (0 when no window changed).
    pub data_bytes: usize,
    /// Manifest bytes written.
    pub manifest_bytes: usize,
    /// Window records written.
    pub windows: usize,
    /// Whether it was a full snapshot.
    pub full: bool,
    /// How long it took.
    pub duration: Duration,
}

/// Reads and writes one partition's checkpoints, as its current owner.
pub struct CheckpointStore {
    kv: kv::Store,
    objects: object_store::ObjectStore,
    partition: u32,
    owner: String,
    epoch: u64,
    key: String,
    revision: u64,
    manifest: Manifest,
    max_deltas: usize,
}

impl std::fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("partition", &self.partition)
            .field("epoch", &self.epoch)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

fn kv_error(partition: u32, err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::js(format!("checkpoint of partition {partition}"), err)
}

fn corrupt(partition: u32, source: CheckpointError) -> Error {
    Error::Checkpoint { partition, source }
}

impl CheckpointStore {
    /// Takes over the checkpoint of `partition` as `owner` under `epoch` and restores the
    /// state it holds (an empty state if there is none).
    pub async fn claim(
        kv: kv::Store,
        objects: object_store::ObjectStore,
        partition: u32,
        owner: &str,
        epoch: u64,
        max_deltas: usize,
        settings: Settings,
    ) -> Result<(Self, PartitionState), Error> {
        let key = names::checkpoint_key(partition);
        let mut attempts = 0;
        let (manifest, revision) = loop {
            attempts += 1;
            let entry = kv
                .entry(key.as_str())
                .await
                .map_err(|e| kv_error(partition, e))?;
            let (previous, expected) = match entry {
                Some(entry) if entry.operation == kv::Operation::Put => (
                    Manifest::decode(&entry.value).map_err(|e| corrupt(partition, e))?,
                    Some(entry.revision),
                ),
                Some(entry) => (Manifest::empty(partition), Some(entry.revision)),
                None => (Manifest::empty(partition), None),
            };
            let mut claimed = previous;
            claimed.owner = owner.to_owned();
            claimed.epoch = epoch;
            claimed.checkpoint_id += 1;
            claimed.written_at = now_millis();
            let bytes = serde_json::to_vec(&claimed).map_err(|e| kv_error(partition, e))?;
            // A lost compare-and-set (another claim came first) is tried again a few times.
            let written = match expected {
                Some(revision) => kv
                    .update(key.as_str(), bytes.into(), revision)
                    .await
                    .map_err(|e| {
                        let lost = e.kind() == kv::UpdateErrorKind::WrongLastRevision;
                        (lost, kv_error(partition, e))
                    }),
                None => kv.create(key.as_str(), bytes.into()).await.map_err(|e| {
                    let lost = e.kind() == kv::CreateErrorKind::AlreadyExists;
                    (lost, kv_error(partition, e))
                }),
            };
            match written {
                Ok(revision) => break (claimed, revision),
                Err((true, _)) if attempts < 5 => continue,
                Err((_, err)) => return Err(err),
            }
        };
        let mut segments = Vec::new();
        for object in manifest.objects() {
            let bytes = read_object(&objects, &object.name)
                .await
                .map_err(|source| {
                    let name = object.name.clone();
                    corrupt(partition, CheckpointError::ReadObject { name, source })
                })?;
            let segment = Segment::decode(&bytes).map_err(|source| {
                let name = object.name.clone();
                corrupt(partition, CheckpointError::Segment { name, source })
            })?;
            segments.push(segment);
        }
        let state = PartitionState::restore(partition, settings, manifest.meta.clone(), segments);
        let store = Self {
            kv,
            objects,
            partition,
            owner: owner.to_owned(),
            epoch,
            key,
            revision,
            manifest,
            max_deltas: max_deltas.max(1),
        };
        store.collect_garbage().await;
        Ok((store, state))
    }

    /// The stream sequence the stored checkpoint covers.
    pub fn stream_seq(&self) -> u64 {
        self.manifest.meta.stream_seq
    }

    /// The manifest last written.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether the next checkpoint should be a full snapshot: there is none yet, or the deltas
    /// number `checkpoint.max_deltas` or outweigh it.
    pub fn wants_full(&self) -> bool {
        let delta_bytes: u64 = self.manifest.deltas.iter().map(|d| d.bytes).sum();
        let base_bytes = self.manifest.base.as_ref().map_or(0, |b| b.bytes);
        self.manifest.base.is_none()
            || self.manifest.deltas.len() >= self.max_deltas
            || delta_bytes > base_bytes.max(64 * 1024)
    }

    /// Saves `capture`: its window data as an object, then the manifest listing it
    /// (compare-and-set); superseded objects are deleted afterwards. [`Saved::Fenced`] means
    /// another aggregator owns the partition.
    pub async fn save(&mut self, capture: &Capture) -> Result<Saved, Error> {
        let started = Instant::now();
        let mut next = self.manifest.clone();
        next.checkpoint_id += 1;
        let mut report = CheckpointReport {
            full: capture.full,
            ..CheckpointReport::default()
        };
        let mut garbage = Vec::new();
        if let Some((bytes, windows)) = &capture.data {
            let name = format!(
                "p{}/e{}/c{}",
                self.partition, self.epoch, next.checkpoint_id
            );
            report.data_bytes = bytes.len();
            report.windows = *windows;
            let object = ObjectRef {
                name: name.clone(),
                bytes: bytes.len() as u64,
                windows: *windows as u64,
            };
            let meta = object_store::ObjectMetadata {
                name: name.clone(),
                chunk_size: Some(OBJECT_CHUNK_BYTES),
                ..Default::default()
            };
            self.objects
                .put(meta, &mut bytes.as_slice())
                .await
                .map_err(|e| kv_error(self.partition, e))?;
            if capture.full {
                garbage.extend(next.objects().map(|o| o.name.clone()));
                next.base = Some(object);
                next.deltas.clear();
            } else {
                next.deltas.push(object);
            }
        }
        next.meta = capture.meta.clone();
        next.owner = self.owner.clone();
        next.epoch = self.epoch;
        next.written_at = now_millis();
        let bytes = serde_json::to_vec(&next).map_err(|e| kv_error(self.partition, e))?;
        report.manifest_bytes = bytes.len();
        self.revision = match self
            .write_manifest(bytes.into(), next.checkpoint_id)
            .await?
        {
            Some(revision) => revision,
            None => return Ok(Saved::Fenced),
        };
        self.manifest = next;
        for name in garbage {
            if let Err(err) = self.objects.delete(name.as_str()).await {
                tracing::debug!(partition = self.partition, %name, %err, "cannot delete a superseded checkpoint object");
            }
        }
        report.duration = started.elapsed();
        Ok(Saved::Written(report))
    }

    /// Compare-and-set of the manifest: its new revision, or `None` when another owner wrote
    /// it (fenced). An ambiguous failure (timeout) is resolved by reading the key back.
    async fn write_manifest(
        &self,
        bytes: bytes::Bytes,
        checkpoint_id: u64,
    ) -> Result<Option<u64>, Error> {
        let mut expected = self.revision;
        for _ in 0..2 {
            match self
                .kv
                .update(self.key.as_str(), bytes.clone(), expected)
                .await
            {
                Ok(revision) => return Ok(Some(revision)),
                Err(err) => {
                    // Did an earlier attempt of ours land (a lost acknowledgement), or did
                    // someone else write?
                    let entry = self
                        .kv
                        .entry(self.key.as_str())
                        .await
                        .map_err(|e| kv_error(self.partition, e))?;
                    let ours = entry.as_ref().and_then(|entry| {
                        let manifest = Manifest::decode(&entry.value).ok()?;
                        (manifest.owner == self.owner && manifest.epoch == self.epoch)
                            .then_some((entry.revision, manifest.checkpoint_id))
                    });
                    match ours {
                        Some((revision, id)) if id == checkpoint_id => return Ok(Some(revision)),
                        Some((revision, _)) => expected = revision,
                        None if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                            return Ok(None)
                        }
                        None => return Err(kv_error(self.partition, err)),
                    }
                }
            }
        }
        Err(corrupt(self.partition, CheckpointError::ManifestRace))
    }

    /// Deletes this partition's objects that the manifest does not list (left by a failed
    /// checkpoint or a deposed owner). Best effort.
    async fn collect_garbage(&self) {
        let listed: HashSet<&str> = self.manifest.objects().map(|o| o.name.as_str()).collect();
        let prefix = format!("p{}/", self.partition);
        let Ok(mut list) = self.objects.list().await else {
            return;
        };
        let mut doomed = Vec::new();
        while let Some(Ok(info)) = list.next().await {
            if !info.deleted
                && info.name.starts_with(&prefix)
                && !listed.contains(info.name.as_str())
            {
                doomed.push(info.name);
            }
        }
        for name in doomed {
            let _ = self.objects.delete(name.as_str()).await;
        }
    }
}

async fn read_object(objects: &object_store::ObjectStore, name: &str) -> Result<Vec<u8>, BoxError> {
    let mut object = objects.get(name).await?;
    let mut bytes = Vec::with_capacity(object.info().size);
    object.read_to_end(&mut bytes).await?;
    Ok(bytes)
}
