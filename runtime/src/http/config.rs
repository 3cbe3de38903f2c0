//! `[http]`: how long a client may take to send a request, on every HTTP listener.

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[http]` of a service: the slow-client limits of its HTTP listener.
///
/// Without them a client that opens a connection and sends its request a byte at a time
/// holds what the request holds (an ingest slot of `ingest.max_concurrent_requests`, a REST
/// slot of the gateway) for as long as it likes: a few such sockets block everyone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    /// Time a client has to send a request's line and headers, from when the connection can
    /// take a request (accepted, or the previous answer sent); then the connection is
    /// closed. An idle keep-alive connection is closed after it as well. Milliseconds,
    /// default 10 000.
    pub header_read_timeout_ms: u64,
    /// Time a client has to send a request's whole body, from when its headers were read;
    /// then the request is answered `408` (or the handler's read error) and the connection
    /// closed. A 16 MiB ingest body needs about 4.5 Mbit/s to make the default. Milliseconds,
    /// default 30 000.
    pub body_read_timeout_ms: u64,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
        }
    }
}

impl HttpServerConfig {
    /// Checks the values; `section` prefixes the key in errors (`http`).
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        for (key, value) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(
                    format!("{section}.{key}"),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }

    /// [`Self::header_read_timeout_ms`].
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// [`Self::body_read_timeout_ms`].
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }
}
