//! The HTTP/1.1 server loop: accepts connections and serves the router on each with hyper,
//! until the shutdown token is cancelled, then lets open connections finish. Each connection
//! is a task of the loop's own `JoinSet`: when the loop is dropped (the shutdown grace
//! expired), the connections still open are aborted with it.
//!
//! Why not `axum::serve`: it turns the router into a fresh route table for every accepted
//! connection (`Router::with_state(())` per connection, so every route's boxed service is
//! cloned), and that copy lives as long as the connection. With thousands of long-lived SSE
//! streams that was about 27 KB per viewer, the largest single cost (measured with heaptrack,
//! see `BENCHMARKS.md`). Here the table is built once and every connection holds an `Arc` of
//! it.

use crate::metrics as names;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown`, then waits for open connections to end
/// (each is told to close once its current response is done; live streams end by themselves
/// on shutdown).
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    // Every route resolved once, shared by all connections.
    let router: Router = router.with_state(());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let (stream, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_error(err).await;
                    continue;
                }
            },
            // Reaps ended connections, so the set holds open ones only.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        // Live updates are small writes that must not wait for an ACK (Nagle).
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |request: axum::http::Request<Incoming>| {
                // The client's address, for the failed-authentication limit (auth::layer).
                let mut request = request.map(axum::body::Body::new);
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                request
            });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::trace!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}

/// Accept errors: a connection that failed before it was accepted is skipped; anything else
/// (out of file descriptors, ...) is logged and retried after a pause rather than spinning.
async fn accept_error(err: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    metrics::counter!(names::ACCEPT_ERRORS).increment(1);
    tracing::error!(error = %err, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
