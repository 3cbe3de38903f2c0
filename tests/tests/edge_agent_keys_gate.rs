//! An edge agent whose key store has not read the `rtdash_keys` bucket yet cannot tell a
//! valid key from a wrong one: it answers `503 keys_not_loaded` with `Retry-After: 1` (as the
//! definitions gate answers `definitions_not_loaded`), not `401`, so a producer retries instead
//! of dropping its events or rotating a good key. A missing key is still `401`, and the
//! operator key (verified from its file) is accepted.
//!
//! The real `edge-agent` binary on a real nats-server whose agent user may not create the
//! consumer that watches `rtdash_keys` (`$JS.API.CONSUMER.CREATE.KV_rtdash_keys...`): its key
//! store never loads, deterministically. The control: a second agent on the same server with
//! an unrestricted user loads the store and answers the same key `401`.
//!
//! Needs the service binaries (`cargo build --workspace --bins`). About 10 s.

use std::time::Duration;

use anyhow::{ensure, Context};
use rtdash_tests::auth::{operator_authorization, operator_key_file};
use rtdash_tests::ports::{free_port, retry_port_conflicts};
use rtdash_tests::service::service_binary;
use rtdash_tests::supervised::{Launch, Program, Supervised};
use rtdash_tests::time::{format_rfc3339, now_millis};
use rtdash_tests::{NatsOptions, NatsServer};
use serde_json::Value;

/// `agent` may do everything but watch the keys bucket; `admin` everything.
const USERS: &str = r#"
authorization {
  users: [
    {
      user: "agent", password: "agent-password"
      permissions: {
        publish: {
          deny: ["$JS.API.CONSUMER.CREATE.KV_rtdash_keys", "$JS.API.CONSUMER.CREATE.KV_rtdash_keys.>"]
        }
      }
    }
    { user: "admin", password: "admin-password" }
  ]
}
"#;

/// A well-formed key that no store holds: `rtd_<16 hex>_<43 base64url>`.
const UNKNOWN_KEY: &str = "rtd_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Starts an agent as NATS user `user`, ready once `/healthz` answers (its `/readyz` waits
/// for the key store), failed attempts limited to 2 a minute.
fn start_agent(
    nats: &NatsServer,
    dir: &std::path::Path,
    name: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<(Supervised, String)> {
    let binary = service_binary("edge-agent", "edge-agent")?;
    let operator_key = operator_key_file(dir)?.display().to_string();
    retry_port_conflicts(|| {
        let port = free_port()?;
        let env: Vec<(String, String)> = [
            ("RTDASH_NATS__URL", nats.url()),
            ("RTDASH_NATS__USER", user.to_owned()),
            ("RTDASH_NATS__PASSWORD", password.to_owned()),
            ("RTDASH_EDGE_AGENT__LISTEN", format!("127.0.0.1:{port}")),
            (
                "RTDASH_EDGE_AGENT__STATE_DIR",
                dir.join(name).display().to_string(),
            ),
            ("RTDASH_EDGE_AGENT__AGENT_ID", name.to_owned()),
            (
                "RTDASH_EDGE_AGENT__AUTH__OPERATOR_KEY_FILE",
                operator_key.clone(),
            ),
            (
                "RTDASH_EDGE_AGENT__AUTH__MAX_FAILED_PER_MINUTE",
                "2".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let launch = Launch::new(
            name,
            Program::new(&binary)
                .env_default("RUST_LOG", "info")
                .clear_rtdash_env()
                .envs(env),
            dir.join(format!("{name}.log")),
        )
        .ready_when_ok(
            format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(60),
        );
        Ok((
            Supervised::start(launch)?,
            format!("http://127.0.0.1:{port}"),
        ))
    })
}

/// Status, `Retry-After`, `WWW-Authenticate` and JSON body of a `POST /v1/events` of one
/// event of tenant `t1` with `authorization` (a header value) if given.
fn post(
    http: &ureq::Agent,
    url: &str,
    authorization: Option<&str>,
) -> anyhow::Result<(u16, Option<String>, Option<String>, Value)> {
    let body = format!(
        r#"{{"tenant_id":"t1","source":"s","event_type":"e","occurred_at":"{}"}}"#,
        format_rfc3339(now_millis())
    );
    let mut request = http
        .post(&format!("{url}/v1/events"))
        .header("content-type", "application/json");
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let mut response = request.send(body.as_bytes())?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (retry_after, authenticate) = (header("retry-after"), header("www-authenticate"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    let json = serde_json::from_str(&text).with_context(|| format!("{status}: {text}"))?;
    Ok((status, retry_after, authenticate, json))
}

fn http_client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

#[test]
fn an_agent_without_its_keys_answers_503_keys_not_loaded() -> anyhow::Result<()> {
    let nats = NatsServer::start_with(NatsOptions {
        extra_conf: USERS.to_owned(),
        ..NatsOptions::default()
    })?;
    let dir = tempfile::Builder::new()
        .prefix("rtdash-keys-gate-")
        .tempdir()?;
    let (mut agent, url) = start_agent(&nats, dir.path(), "gated", "agent", "agent-password")?;
    let http = http_client();
    let unknown = format!("Bearer {UNKNOWN_KEY}");

    // More attempts than auth.max_failed_per_minute (2): not counted as failures, so never 429.
    for attempt in 0..5 {
        let (status, retry_after, _, body) = post(&http, &url, Some(&unknown))?;
        ensure!(
            status == 503 && body["error"]["code"] == "keys_not_loaded",
            "attempt {attempt}: {status} {body}\n{}",
            agent.log_tail(20)
        );
        ensure!(retry_after.as_deref() == Some("1"), "{retry_after:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // No key at all is unauthorized whatever the store holds.
    let (status, _, authenticate, body) = post(&http, &url, None)?;
    ensure!(status == 401, "{status} {body}");
    ensure!(
        authenticate.as_deref() == Some("Bearer realm=\"rtdash\""),
        "{authenticate:?}"
    );
    // The operator key is verified from its file: accepted.
    let (_, operator) = operator_authorization();
    let (status, _, _, body) = post(&http, &url, Some(&operator))?;
    ensure!(status == 202, "operator key: {status} {body}");
    // Not ready, naming the keys.
    let mut readyz = http.get(&format!("{url}/readyz")).call()?;
    let readyz_status = readyz.status().as_u16();
    let readyz_body = readyz.body_mut().read_to_string()?;
    ensure!(
        readyz_status == 503 && readyz_body.contains("keys"),
        "{readyz_status} {readyz_body}"
    );
    ensure!(agent.is_running(), "{}", agent.log_tail(20));

    // Control: an agent whose store loads answers the same key 401 (and /readyz 200).
    let (_control, control_url) =
        start_agent(&nats, dir.path(), "loaded", "admin", "admin-password")?;
    rtdash_tests::eventually(Duration::from_secs(30), "the control agent ready", || {
        let response = http.get(&format!("{control_url}/readyz")).call()?;
        Ok((response.status().as_u16() == 200).then_some(()))
    })?;
    let (status, retry_after, authenticate, body) = post(&http, &control_url, Some(&unknown))?;
    ensure!(
        status == 401 && body["error"]["code"] == "unauthorized",
        "{status} {body}"
    );
    ensure!(retry_after.is_none(), "{retry_after:?}");
    ensure!(authenticate.is_some(), "no WWW-Authenticate on 401");

    // The producer protocols count failed keys against the address too: the second failure
    // (Segment's write key, here in the body) is 401, the third (OTLP's bearer) is past the limit of 2: 429.
    let mut segment = http
        .post(&format!("{control_url}/v1/batch"))
        .header("content-type", "application/json")
        .send(format!(r#"{{"batch": [], "writeKey": "{UNKNOWN_KEY}"}}"#).as_bytes())?;
    let text = segment.body_mut().read_to_string()?;
    ensure!(segment.status().as_u16() == 401, "Segment: {text}");
    let otlp = http
        .post(&format!("{control_url}/v1/logs"))
        .header("content-type", "application/json")
        .header("Authorization", &unknown)
        .send(&b"{}"[..])?;
    ensure!(
        otlp.status().as_u16() == 429 && otlp.headers().get("retry-after").is_some(),
        "OTLP after two failures: {}",
        otlp.status()
    );
    Ok(())
}
