//! `[http]`: how long a client may take to send a request, and which reverse proxies are
//! trusted to say who the client is, on every HTTP listener.

use super::client_addr::{ForwardedHeader, TrustedProxies};
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[http]` of a service: the slow-client limits of its HTTP listener, and its trusted
/// proxies.
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
    /// Reverse proxies (addresses or CIDR ranges) whose [`Self::forwarded_header`] names the
    /// client (see [`super::client_addr`]). Default empty: nobody is trusted, the header is
    /// never read, and the client is the connection's peer.
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies name the client in: `x-forwarded-for` (default) or
    /// `forwarded` (RFC 7239). Only this one is read.
    pub forwarded_header: ForwardedHeader,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
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
        self.proxies().map_err(|(entry, why)| {
            ConfigError::invalid(
                format!("{section}.trusted_proxies"),
                format!("`{entry}` is not an IP address or CIDR range: {why}"),
            )
        })?;
        Ok(())
    }

    /// [`Self::trusted_proxies`] parsed; the error names the first bad entry.
    pub fn proxies(&self) -> Result<TrustedProxies, (String, &'static str)> {
        TrustedProxies::parse(&self.trusted_proxies, self.forwarded_header)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_proxy_that_is_not_an_address_is_named() {
        let mut config = HttpServerConfig {
            trusted_proxies: vec!["10.0.0.0/8".to_owned(), "::1".to_owned()],
            ..HttpServerConfig::default()
        };
        assert!(config.validate("http").is_ok());
        config.trusted_proxies.push("proxy.internal".to_owned());
        let err = config.validate("http").unwrap_err().to_string();
        assert!(
            err.contains("http.trusted_proxies") && err.contains("`proxy.internal`"),
            "{err}"
        );
    }
}
