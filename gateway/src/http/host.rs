//! The `Host` header check: a request whose `Host` is not one of `allowed_hosts` is answered
//! `421 Misdirected Request`.
//!
//! Why: with DNS rebinding, a web page on `evil.example` makes its own name resolve to the
//! gateway's address (`127.0.0.1`, an address on the LAN) and then reads the gateway's
//! answers as same-origin. The browser still sends `Host: evil.example`, which is refused
//! here. Default: the host of `listen` (unless it is `0.0.0.0` or `::`), `localhost`,
//! `127.0.0.1` and `[::1]`; a gateway reached by another name (a DNS name, a LAN address,
//! behind a proxy that keeps `Host`) needs that name in `allowed_hosts`; `"*"` turns the check
//! off. `/healthz` and `/readyz` are exempt: orchestrators probe them by address.

use crate::error::ApiError;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The host names (and addresses) requests may name, lowercase, without ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHosts {
    any: bool,
    hosts: Arc<Vec<String>>,
}

impl AllowedHosts {
    /// `configured` (when not empty), else the defaults for `listen`.
    pub fn new(configured: &[String], listen: &str) -> Self {
        let mut hosts: Vec<String> = if configured.is_empty() {
            let mut hosts = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            if let Ok(addr) = listen.parse::<SocketAddr>() {
                if !addr.ip().is_unspecified() {
                    hosts.push(addr.ip().to_string());
                }
            }
            hosts
        } else {
            configured.iter().map(|h| normalise(h)).collect()
        };
        hosts.sort();
        hosts.dedup();
        Self {
            any: hosts.iter().any(|h| h == "*"),
            hosts: Arc::new(hosts),
        }
    }

    /// Whether the `Host` header value `value` (with or without a port) is allowed.
    pub fn allows(&self, value: &str) -> bool {
        self.any || self.hosts.iter().any(|h| *h == normalise(value))
    }
}

/// A `Host` value or an `allowed_hosts` entry as compared: lowercase, no port, no brackets
/// around an IPv6 address, no trailing dot.
fn normalise(value: &str) -> String {
    let value = value.trim().to_ascii_lowercase();
    let host = if let Some(rest) = value.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default().to_owned()
    } else if value.parse::<IpAddr>().is_ok() {
        value.clone()
    } else {
        value.split(':').next().unwrap_or_default().to_owned()
    };
    host.trim_end_matches('.').to_owned()
}

/// The middleware (state: the allowed hosts).
pub async fn check_host(
    axum::extract::State(allowed): axum::extract::State<AllowedHosts>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    match host {
        Some(host) if allowed.allows(&host) => next.run(request).await,
        Some(host) => refuse(&format!(
            "host `{}` is not served here (gateway allowed_hosts)",
            normalise(&host)
        )),
        None => refuse("no Host header"),
    }
}

fn refuse(message: &str) -> Response {
    let mut response = ApiError::bad_request(message.to_owned()).into_response();
    *response.status_mut() = StatusCode::MISDIRECTED_REQUEST;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_listen_address_and_loopback_names() {
        let allowed = AllowedHosts::new(&[], "192.168.1.5:8080");
        for ok in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
            "192.168.1.5:8080",
        ] {
            assert!(allowed.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.2",
            "[::2]:8080",
            "",
        ] {
            assert!(!allowed.allows(refused), "{refused}");
        }
        let any_interface = AllowedHosts::new(&[], "0.0.0.0:8080");
        assert!(!any_interface.allows("0.0.0.0:8080"));
        assert!(any_interface.allows("localhost:8080"));
    }

    #[test]
    fn configured_hosts_replace_the_defaults_and_a_star_allows_all() {
        let allowed = AllowedHosts::new(
            &["Dash.Example.com".into(), "[fd00::1]".into()],
            "127.0.0.1:1",
        );
        assert!(allowed.allows("dash.example.com:443"));
        assert!(allowed.allows("[fd00::1]:8080"));
        assert!(!allowed.allows("localhost"));
        assert!(AllowedHosts::new(&["*".into()], "127.0.0.1:1").allows("anything.example"));
    }
}

#[cfg(test)]
mod middleware_tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    async fn status(host: Option<&str>, path: &str) -> u16 {
        let app = Router::new()
            .route("/", get(|| async { "ui" }))
            .route("/healthz", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                AllowedHosts::new(&[], "127.0.0.1:8080"),
                check_host,
            ));
        let mut request = axum::http::Request::get(path);
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        response.status().as_u16()
    }

    #[tokio::test]
    async fn a_foreign_host_is_misdirected_and_probes_are_exempt() {
        assert_eq!(status(Some("127.0.0.1:8080"), "/").await, 200);
        assert_eq!(status(Some("localhost:8080"), "/").await, 200);
        assert_eq!(status(Some("rebound.example:8080"), "/").await, 421);
        assert_eq!(status(None, "/").await, 421);
        assert_eq!(status(Some("10.0.0.7:8080"), "/healthz").await, 200);
    }
}
