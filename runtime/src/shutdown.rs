//! Graceful shutdown: one root `CancellationToken` cancelled on SIGINT or SIGTERM.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGINT or SIGTERM; returns then, or as soon as `token` is
/// cancelled otherwise. Awaited beside the service (see [`crate::bootstrap`]), not spawned.
pub async fn cancel_on_signal(token: CancellationToken) {
    tokio::select! {
        () = signal() => {
            tracing::info!("shutdown requested");
            token.cancel();
        }
        () = token.cancelled() => {}
    }
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Awaits `work` for at most `grace`; returns whether it finished in time.
pub async fn with_grace<F: Future>(grace: Duration, work: F) -> bool {
    match tokio::time::timeout(grace, work).await {
        Ok(_) => true,
        Err(_) => {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "shutdown grace period expired"
            );
            false
        }
    }
}
