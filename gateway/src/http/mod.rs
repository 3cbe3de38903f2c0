//! HTTP hardening of the gateway: [`host`] (the `Host` header checked against
//! `allowed_hosts`, against DNS rebinding) and [`headers`] (Content-Security-Policy and the
//! other security headers, the frame policy per route). See `docs/security.md`.

pub mod headers;
pub mod host;
