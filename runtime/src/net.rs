//! Binding listeners with errors that name the address.

use std::net::{AddrParseError, SocketAddr};
use tokio::net::TcpListener;

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The address is not `host:port`.
    #[error("cannot listen on {addr}: not a socket address such as 127.0.0.1:8080")]
    NotAnAddress {
        /// The address given.
        addr: String,
        /// Why it does not parse.
        #[source]
        source: AddrParseError,
    },
    /// Another socket holds the address. The phrase "address already in use" is what the
    /// test harness looks for to retry on other ports (tests/src/process.rs).
    #[error("cannot listen on {addr}: address already in use (is another instance running?)")]
    InUse {
        /// The address.
        addr: String,
    },
    /// Any other failure to bind.
    #[error("cannot listen on {addr}")]
    Io {
        /// The address.
        addr: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Binds a TCP listener on `addr` (`host:port`).
pub async fn bind(addr: &str) -> Result<TcpListener, BindError> {
    let parsed: SocketAddr = addr.parse().map_err(|source| BindError::NotAnAddress {
        addr: addr.to_owned(),
        source,
    })?;
    TcpListener::bind(parsed)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => BindError::InUse {
                addr: addr.to_owned(),
            },
            _ => BindError::Io {
                addr: addr.to_owned(),
                source,
            },
        })
}
