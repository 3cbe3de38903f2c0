//! The HTTP/1.1 server loop of every rtdash listener: accepts connections and serves a router
//! on each with hyper until the shutdown token is cancelled, then lets open connections
//! finish. Each connection is a task of the loop's own `JoinSet`: when the loop is dropped
//! (the shutdown grace expired), the connections still open are aborted with it.
//!
//! - **Slow clients** ([`HttpServerConfig`]): hyper closes a connection whose request head
//!   does not arrive within the header read timeout; a body gets a deadline
//!   ([`DeadlineBody`]).
//! - **Client address**: every request carries `ConnectInfo<SocketAddr>` (axum's extractor,
//!   the TCP peer) and [`ClientAddr`] (the client, behind `http.trusted_proxies` too).
//!
//! Why not `axum::serve`: it turns the router into a fresh route table for every accepted
//! connection (`Router::with_state(())` per connection, so every route's boxed service is
//! cloned), and that copy lives as long as the connection. With thousands of long-lived SSE
//! streams that was about 27 KB per viewer, the largest single cost in the gateway (measured
//! with heaptrack, see `BENCHMARKS.md`). Here the table is built once and every connection
//! holds an `Arc` of it.

use super::body_timeout::DeadlineBody;
use super::client_addr::ClientAddr;
use super::config::HttpServerConfig;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics::Counter;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The counters the loop records, named by the service (`rtdash_<service>_...`).
#[derive(Clone, Debug)]
pub struct ServerMetrics {
    /// Failed `accept` calls other than connections reset before they were accepted.
    pub accept_errors: Counter,
    /// Connections closed because the request head did not arrive in time.
    pub header_timeouts: Counter,
    /// Request bodies that did not arrive in time.
    pub body_timeouts: Counter,
}

impl Default for ServerMetrics {
    /// Counters that record nothing.
    fn default() -> Self {
        Self {
            accept_errors: Counter::noop(),
            header_timeouts: Counter::noop(),
            body_timeouts: Counter::noop(),
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then waits for open connections to end
/// (each is told to close once its current response is done; live streams must end by
/// themselves on shutdown).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    config: &HttpServerConfig,
    metrics: ServerMetrics,
) {
    // Every route resolved once, shared by all connections.
    let router: Router = router.with_state(());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout());
    let body_timeout = config.body_read_timeout();
    // Validated with the config; an entry that does not parse here trusts nobody.
    let proxies = Arc::new(config.proxies().unwrap_or_default());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let (stream, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_error(err, &metrics.accept_errors).await;
                    continue;
                }
            },
            // Reaps ended connections, so the set holds open ones only.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        // Live updates are small writes that must not wait for an ACK (Nagle).
        let _ = stream.set_nodelay(true);
        let expired = metrics.body_timeouts.clone();
        let proxies = Arc::clone(&proxies);
        let service = router
            .clone()
            .map_request(move |request: axum::http::Request<Incoming>| {
                let mut request = request.map(|body| {
                    if body.is_end_stream() {
                        Body::new(body)
                    } else {
                        Body::new(DeadlineBody::new(body, body_timeout, Some(expired.clone())))
                    }
                });
                let client = proxies.client_addr(remote.ip(), request.headers());
                let extensions = request.extensions_mut();
                extensions.insert(ConnectInfo(remote));
                extensions.insert(ClientAddr(client));
                request
            });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        let header_timeouts = metrics.header_timeouts.clone();
        connections.spawn(async move {
            if let Err(err) = connection.await {
                if err.is_timeout() {
                    header_timeouts.increment(1);
                    tracing::debug!(%remote, "connection closed: request head not sent in time");
                } else {
                    tracing::trace!(error = %err, "connection ended with an error");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}

/// Accept errors: a connection that failed before it was accepted is skipped; anything else
/// (out of file descriptors, ...) is logged and retried after a pause rather than spinning.
async fn accept_error(err: std::io::Error, counter: &Counter) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    counter.increment(1);
    tracing::error!(error = %err, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start(config: HttpServerConfig) -> (SocketAddr, CancellationToken) {
        let router = Router::new().route(
            "/echo",
            post(
                |ConnectInfo(peer): ConnectInfo<SocketAddr>, body: Body| async move {
                    match axum::body::to_bytes(body, 1 << 20).await {
                        Ok(bytes) => (
                            axum::http::StatusCode::OK,
                            format!("{} {}", peer.ip(), bytes.len()),
                        ),
                        Err(err) if super::super::is_body_timeout(&err) => {
                            (axum::http::StatusCode::REQUEST_TIMEOUT, "slow".to_owned())
                        }
                        Err(err) => (axum::http::StatusCode::BAD_REQUEST, err.to_string()),
                    }
                },
            ),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            serve(listener, router, until, &config, ServerMetrics::default()).await;
        });
        (addr, stop)
    }

    /// Reads until the peer closes; the text read.
    async fn read_to_close(socket: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut out))
            .await
            .expect("closed by the server");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn slow_heads_and_slow_bodies_are_cut_and_their_sockets_closed() {
        let (addr, stop) = start(HttpServerConfig {
            header_read_timeout_ms: 300,
            body_read_timeout_ms: 300,
            ..HttpServerConfig::default()
        })
        .await;
        // Nothing sent at all.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        // Half a request head.
        let mut half_head = TcpStream::connect(addr).await.unwrap();
        half_head
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // A whole head, part of the body.
        let mut half_body = TcpStream::connect(addr).await.unwrap();
        half_body
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        assert_eq!(read_to_close(&mut silent).await, "");
        assert!(!read_to_close(&mut half_head).await.contains("200"));
        let answer = read_to_close(&mut half_body).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(3));
        // A request sent at once is served, with the client's address.
        let mut quick = TcpStream::connect(addr).await.unwrap();
        quick
            .write_all(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
            )
            .await
            .unwrap();
        let answer = read_to_close(&mut quick).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("127.0.0.1 3"), "{answer}");
        stop.cancel();
    }
}
