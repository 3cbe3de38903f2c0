//! Binding listeners with errors that name the address.

use std::net::SocketAddr;
use tokio::net::TcpListener;

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {problem}")]
pub struct BindError {
    /// The address.
    pub addr: String,
    /// What went wrong, e.g. "address already in use".
    pub problem: String,
}

/// Binds a TCP listener on `addr` (`host:port`).
pub async fn bind(addr: &str) -> Result<TcpListener, BindError> {
    let parsed: SocketAddr = addr.parse().map_err(|_| BindError {
        addr: addr.to_owned(),
        problem: "not a socket address such as 127.0.0.1:8080".to_owned(),
    })?;
    TcpListener::bind(parsed).await.map_err(|err| BindError {
        addr: addr.to_owned(),
        problem: match err.kind() {
            std::io::ErrorKind::AddrInUse => {
                "address already in use (is another instance running?)".to_owned()
            }
            _ => err.to_string(),
        },
    })
}
