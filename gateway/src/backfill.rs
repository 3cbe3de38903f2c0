//! The backfill jobs of every tenant (bucket `rtdash_backfill`, `<tenant>.<metric>` -> the
//! newest job), kept in memory from a watch of the bucket, and the row cache kept honest: every
//! change of a job (the aggregator writes one after QuestDB has applied each batch of
//! rewritten windows) drops the cached rows of its (tenant, metric), since the rows it
//! rewrote lie past the correction horizon, where the cache takes rows for immutable.

use crate::query::QuestDb;
use crate::tasks::Tasks;
use async_nats::jetstream::kv::{self, Store};
use futures::StreamExt;
use rtdash_runtime::error_chain::ErrorChain;
use rtdash_shared::backfill::BackfillJob;
use rtdash_shared::names;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// The jobs, by bucket key.
#[derive(Clone, Default)]
pub struct BackfillJobs {
    jobs: Arc<RwLock<HashMap<String, BackfillJob>>>,
    bucket: Arc<OnceLock<Store>>,
}

impl std::fmt::Debug for BackfillJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackfillJobs").finish_non_exhaustive()
    }
}

impl BackfillJobs {
    /// Opens the bucket and watches it on `tasks` (retrying until it exists), dropping cached
    /// rows of `db` for every job that changes.
    pub fn start(js: async_nats::jetstream::Context, db: Arc<QuestDb>, tasks: &Tasks) -> Self {
        let jobs = Self::default();
        let watcher = jobs.clone();
        let shutdown = tasks.child_token();
        let forget_again = Duration::from_millis(db.query_timeout_ms());
        tasks.spawn("backfill watcher", async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let result = tokio::select! {
                    () = shutdown.cancelled() => return,
                    result = watcher.watch_once(&js, &db, forget_again) => result,
                };
                if let Err(err) = result {
                    tracing::debug!(error = %ErrorChain(&*err), "backfill bucket watch failed; retrying");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
        jobs
    }

    async fn watch_once(
        &self,
        js: &async_nats::jetstream::Context,
        db: &Arc<QuestDb>,
        forget_again: Duration,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let store = self.bucket(js).await?;
        let mut watch = rtdash_runtime::kv_watch::watch_prefix(js, &store, "", "backfill").await?;
        while let Some(entry) = watch.next().await {
            let entry = entry?;
            let mut jobs = self.jobs.write().unwrap_or_else(|e| e.into_inner());
            let job = matches!(entry.operation, kv::Operation::Put)
                .then(|| serde_json::from_slice::<BackfillJob>(&entry.value).ok())
                .flatten();
            match job {
                Some(job) => {
                    forget_rows(db, &job.tenant, &job.metric, forget_again);
                    jobs.insert(entry.key, job);
                }
                None => {
                    jobs.remove(&entry.key);
                }
            }
        }
        Ok(())
    }

    /// The bucket (opened now if the watch has not opened it yet).
    pub async fn bucket(
        &self,
        js: &async_nats::jetstream::Context,
    ) -> Result<Store, async_nats::jetstream::context::KeyValueError> {
        if let Some(store) = self.bucket.get() {
            return Ok(store.clone());
        }
        let store = js.get_key_value(names::BACKFILL_BUCKET).await?;
        Ok(self.bucket.get_or_init(|| store).clone())
    }

    /// The newest job of `metric` of `tenant`, as last seen by the watch.
    pub fn get(&self, tenant: &str, metric: &str) -> Option<BackfillJob> {
        let jobs = self.jobs.read().unwrap_or_else(|e| e.into_inner());
        jobs.get(&names::backfill_key(tenant, metric)).cloned()
    }

    /// Jobs of `tenant` still rewriting base windows ([`BackfillJob::is_computing`]).
    pub fn active(&self, tenant: &str) -> usize {
        let jobs = self.jobs.read().unwrap_or_else(|e| e.into_inner());
        jobs.values()
            .filter(|job| job.tenant == tenant && job.is_computing())
            .count()
    }
}

/// Drops the cached rows of (tenant, metric) now, and again once a query that read the old
/// rows just before has had time to end (it may cache what it read).
fn forget_rows(db: &Arc<QuestDb>, tenant: &str, metric: &str, again: Duration) {
    db.row_cache().forget_metric(tenant, metric);
    let (db, tenant, metric) = (Arc::clone(db), tenant.to_owned(), metric.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(again).await;
        db.row_cache().forget_metric(&tenant, &metric);
    });
}
