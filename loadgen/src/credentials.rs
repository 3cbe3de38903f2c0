//! The keys `rtdash-loadgen` sends (issue #16): `--key` / `RTDASH_KEY` to the edge agent (an
//! `ingest` key, or the operator key) and, unless `--gateway-key` / `RTDASH_GATEWAY_KEY` names
//! another, to the gateway (setting up metrics and dashboards needs an `editor` key or the
//! operator key; reading streams a `viewer` key). Set once at start ([`set`]); every
//! [`crate::agent::AgentClient`] and [`crate::gateway::GatewayClient`] sends them as
//! `Authorization: Bearer <key>`.

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use std::sync::OnceLock;

static KEYS: OnceLock<(HeaderMap, HeaderMap, Option<String>)> = OnceLock::new();

fn bearer(key: Option<String>) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    if let Some(key) = key.filter(|k| !k.trim().is_empty()) {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", key.trim()))
            .map_err(|_| anyhow::anyhow!("the key is not a header value (a key is `rtd_...`)"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// Sets the keys from the command line, else `RTDASH_KEY` / `RTDASH_GATEWAY_KEY`.
pub fn set(key: Option<String>, gateway_key: Option<String>) -> anyhow::Result<()> {
    let key = key.or_else(|| std::env::var("RTDASH_KEY").ok());
    let gateway_key = gateway_key
        .or_else(|| std::env::var("RTDASH_GATEWAY_KEY").ok())
        .or_else(|| key.clone());
    let agent = bearer(key.clone())?;
    let raw = key.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty());
    let _ = KEYS.set((agent, bearer(gateway_key)?, raw));
    Ok(())
}

/// The headers sent to the edge agent (empty without a key).
pub fn agent_headers() -> HeaderMap {
    KEYS.get().map(|k| k.0.clone()).unwrap_or_default()
}

/// The agent key itself (for Segment, whose SDKs send it as the HTTP Basic user).
pub fn agent_key() -> Option<String> {
    KEYS.get().and_then(|k| k.2.clone())
}

/// The headers sent to the gateway (empty without a key).
pub fn gateway_headers() -> HeaderMap {
    KEYS.get().map(|k| k.1.clone()).unwrap_or_default()
}
