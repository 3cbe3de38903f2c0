//! Credentials of the services under test (issue #16): every gateway and edge agent the harness
//! starts authenticates, with an operator key the harness generates for this test process.
//!
//! - [`operator_key`]: the operator key (random, one per test process); [`operator_key_file`]
//!   writes it where a service reads it (`auth.operator_key_file`, mode 0600). Every stack,
//!   fault stack, in-process gateway and in-process agent the harness starts is given it.
//! - The harness's default clients send it: [`crate::client::http_client`] (REST, SSE and
//!   event posts), `/metrics` reads, the fault load. Operator calls must name their tenant
//!   (`tenant_id` in the query or body), as tests written before keys did anyway.
//! - Tests about access control create tenant keys explicitly: [`create_key`] (a key of a role
//!   for a tenant, through `POST /v1/keys`), [`key_client`] (a client sending one key),
//!   [`crate::client::anonymous_client`] (none).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{ensure, Context};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use rtdash_shared::auth::{Token, TokenKind};
use serde_json::{json, Value};

use crate::client::decode;

/// The operator key of every service this test process starts (`rtd_<id>_<secret>`).
pub fn operator_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        Token::generate(TokenKind::Key)
            .expect("random bytes for the operator key")
            .reveal()
    })
}

/// Writes [`operator_key`] to `<dir>/operator.key` (mode 0600; kept if already there) and
/// returns its path: a service's `auth.operator_key_file`.
pub fn operator_key_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("operator.key");
    if !path.exists() {
        write_private(&path, operator_key())?;
    }
    Ok(path)
}

/// [`operator_key_file`] in a directory of this test process (for services configured without
/// a directory of their own, e.g. in-process gateways and agents).
pub fn shared_operator_key_file() -> &'static Path {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("rtdash-operator-")
            .tempdir()
            .expect("a temporary directory");
        let path = operator_key_file(dir.path()).expect("write the operator key");
        (dir, path)
    });
    path
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    writeln!(file, "{text}").with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// Headers sending `key` as a bearer token.
pub fn bearer_headers(key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut value = HeaderValue::from_str(&format!("Bearer {key}")).expect("a key is ASCII");
    value.set_sensitive(true);
    headers.insert(AUTHORIZATION, value);
    headers
}

/// `Authorization: Bearer <operator key>` as a `(name, value)` pair, for clients that do not
/// take a [`HeaderMap`] (the blocking client).
pub fn operator_authorization() -> (&'static str, String) {
    ("Authorization", format!("Bearer {}", operator_key()))
}

/// A loopback client sending `key` on every request (`None` timeout: never, for streams).
pub fn key_client(key: &str, timeout: Option<Duration>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .default_headers(bearer_headers(key));
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    builder.build().expect("an HTTP client")
}

/// A key the gateway at `gateway_base` creates with the operator key: `POST /v1/keys`
/// `{"tenant_id", "role", "name"}`. Answers the whole `201` body (`key_id`, `key`, ...).
pub async fn create_key_record(
    gateway_base: &str,
    tenant: &str,
    role: &str,
    name: &str,
) -> anyhow::Result<Value> {
    let response = key_client(operator_key(), Some(Duration::from_secs(30)))
        .post(format!("{gateway_base}/v1/keys"))
        .json(&json!({"tenant_id": tenant, "role": role, "name": name}))
        .send()
        .await
        .context("POST /v1/keys")?;
    let (status, body) = decode(response).await?;
    ensure!(status == 201, "POST /v1/keys answered {status}: {body}");
    Ok(body)
}

/// A new key (`rtd_...`) of `role` (`ingest`, `viewer`, `editor`, `admin`) for `tenant`,
/// created at the gateway at `gateway_base` with the operator key.
pub async fn create_key(
    gateway_base: &str,
    tenant: &str,
    role: &str,
    name: &str,
) -> anyhow::Result<String> {
    let body = create_key_record(gateway_base, tenant, role, name).await?;
    body["key"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no key in {body}"))
}
