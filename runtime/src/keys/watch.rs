//! The bucket watch: every entry of `rtdash_keys`, then every change, applied to the store's
//! memory; restarted with a backoff when it fails.

use super::KeyStore;
use crate::error_chain::ErrorChain;
use async_nats::jetstream::kv;
use futures::StreamExt;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a watch of the bucket stopped (it is restarted).
#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error("reading the keys bucket's stream information failed")]
    Info(#[source] async_nats::jetstream::stream::InfoError),
    #[error("starting the keys bucket watch failed")]
    Start(#[source] kv::WatchError),
    #[error("the keys bucket watch failed")]
    Next(#[source] kv::WatcherError),
}

/// Watches until `shutdown`.
pub(super) async fn watch(store: KeyStore, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = watch_once(&store) => result,
        };
        match result {
            Ok(()) => tracing::warn!("keys bucket watch ended; restarting it"),
            Err(err) => {
                tracing::warn!(error = %ErrorChain(&err), "keys bucket watch failed; retrying")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn watch_once(store: &KeyStore) -> Result<(), WatchError> {
    let kv = &store.inner.kv;
    let empty = kv
        .stream
        .get_info()
        .await
        .map_err(WatchError::Info)?
        .state
        .messages
        == 0;
    let mut watch = kv
        .watch_with_history(">")
        .await
        .map_err(WatchError::Start)?;
    if empty {
        store.inner.loaded.store(true, Ordering::Release);
    }
    while let Some(entry) = watch.next().await {
        let entry = entry.map_err(WatchError::Next)?;
        let value = matches!(entry.operation, kv::Operation::Put).then_some(&entry.value[..]);
        store.apply(&entry.key, value);
        if entry.delta == 0 {
            store.inner.loaded.store(true, Ordering::Release);
        }
    }
    Ok(())
}
