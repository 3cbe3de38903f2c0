//! The client's address behind a reverse proxy (`http.trusted_proxies`) and open streams per
//! client address (`live.max_streams_per_client`), on real services. The stack trusts one
//! proxy, `127.0.0.2` (the tests connect from chosen loopback addresses):
//!
//! - a client that is not the proxy (`127.0.0.1`) cannot change its address with
//!   `X-Forwarded-For`: the failed-authentication limit of the gateway and of the edge agent
//!   counts the connection's address whatever the header says;
//! - two clients behind the proxy are limited separately, and a client behind it that writes
//!   another client's address at the left of the header is still counted as itself;
//! - a client address with `live.max_streams_per_client` streams open gets `429
//!   too_many_streams` for the next, while another client behind the same proxy, and one
//!   connecting directly, still open theirs.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{ensure, Context};
use rtdash_tests::auth::{bearer_headers, create_key};
use rtdash_tests::client::decode;
use rtdash_tests::stack::{Stack, StackOptions};
use rtdash_tests::{blocking, unique_name};
use serde_json::{json, Value};

const PROXY: &str = "127.0.0.2";
const MAX_FAILED: usize = 3;
const TIMEOUT: Duration = Duration::from_secs(30);

/// A client connecting from the loopback address `local`, sending `key` when given (no
/// timeout: streams stay open).
fn client_from(local: &str, key: Option<&str>) -> reqwest::Client {
    let local: IpAddr = local.parse().expect("a loopback address");
    let mut builder = reqwest::Client::builder().no_proxy().local_address(local);
    if let Some(key) = key {
        builder = builder.default_headers(bearer_headers(key));
    }
    builder.build().expect("an HTTP client")
}

/// One request with a key that does not exist, with `forwarded_for` as `X-Forwarded-For`:
/// the status and body (`401` while the address may still try, `429` once refused).
async fn bad_key(
    client: &reqwest::Client,
    service: &Service,
    forwarded_for: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = match service {
        Service::Gateway(base) => client.get(format!("{base}/v1/dashboards")),
        Service::Agent(base) => client.post(format!("{base}/v1/events")).json(&json!([])),
    };
    request = request
        .timeout(TIMEOUT)
        .header("authorization", "Bearer rtd_unknown_key");
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    decode(request.send().await.context("request with a bad key")?).await
}

enum Service {
    Gateway(String),
    Agent(String),
}

/// `MAX_FAILED` failures are answered `401`, each with a different forwarded address.
async fn fail_max_times(
    client: &reqwest::Client,
    service: &Service,
    forwarded_for: impl Fn(usize) -> Option<String>,
    what: &str,
) -> anyhow::Result<()> {
    for n in 0..MAX_FAILED {
        let (status, body) = bad_key(client, service, forwarded_for(n).as_deref()).await?;
        ensure!(status == 401, "{what}: failure {n}: {status} {body}");
    }
    Ok(())
}

async fn failed_auth_is_counted_per_client(service: Service, name: &str) -> anyhow::Result<()> {
    // Not the proxy: the header is ignored, every attempt counts against 127.0.0.1.
    let direct = client_from("127.0.0.1", None);
    fail_max_times(
        &direct,
        &service,
        |n| Some(format!("198.51.100.{n}")),
        &format!("{name}, direct"),
    )
    .await?;
    let (status, body) = bad_key(&direct, &service, Some("198.51.100.99")).await?;
    ensure!(
        status == 429,
        "{name}: a spoofed X-Forwarded-For changed the address counted: {status} {body}"
    );

    // Through the proxy: client X is refused after its failures, client Y is not.
    let proxy = client_from(PROXY, None);
    let x = "203.0.113.10";
    let y = "203.0.113.20";
    fail_max_times(
        &proxy,
        &service,
        |_| Some(x.to_owned()),
        &format!("{name}, client X"),
    )
    .await?;
    let (status, body) = bad_key(&proxy, &service, Some(x)).await?;
    ensure!(
        status == 429,
        "{name}: client X over its limit: {status} {body}"
    );
    let (status, body) = bad_key(&proxy, &service, Some(y)).await?;
    ensure!(
        status == 401,
        "{name}: client Y behind the same proxy was refused with X: {status} {body}"
    );
    // X claims to be Y at the left of the header; the proxy appended X's real address.
    let (status, body) = bad_key(&proxy, &service, Some(&format!("{y}, {x}"))).await?;
    ensure!(
        status == 429,
        "{name}: a spoofed left-most entry was believed: {status} {body}"
    );
    // The proxy's own requests (no header) are its own client.
    let (status, body) = bad_key(&proxy, &service, None).await?;
    ensure!(
        status == 401,
        "{name}: the proxy itself was refused: {status} {body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_trusted_proxy_are_told_apart_and_nobody_else_can_spoof(
) -> anyhow::Result<()> {
    let trusted = format!(r#"["{PROXY}"]"#);
    let options = StackOptions::default()
        .gateway("HTTP__TRUSTED_PROXIES", &trusted)
        .gateway("AUTH__MAX_FAILED_PER_MINUTE", MAX_FAILED)
        .gateway("LIVE__MAX_STREAMS_PER_CLIENT", 2)
        .agent("HTTP__TRUSTED_PROXIES", &trusted)
        .agent("AUTH__MAX_FAILED_PER_MINUTE", MAX_FAILED);
    let stack = blocking(move || Stack::start(options)).await?;
    let (gw, agent) = (stack.gateway_url(), stack.agent_url());

    // Keys and a dashboard first: 127.0.0.1 is refused once its failures are counted.
    let tenant = unique_name("streams");
    let admin = create_key(&gw, &tenant, "admin", "admin").await?;
    let viewer = create_key(&gw, &tenant, "viewer", "viewer").await?;
    let (status, body) = decode(
        client_from("127.0.0.1", Some(&admin))
            .post(format!("{gw}/v1/dashboards"))
            .timeout(TIMEOUT)
            .json(&json!({"name": "streams"}))
            .send()
            .await?,
    )
    .await?;
    ensure!(status == 201, "dashboard: {status} {body}");
    let dashboard = body["dashboard_id"].as_str().context("id")?.to_owned();

    failed_auth_is_counted_per_client(Service::Gateway(gw.clone()), "gateway").await?;
    failed_auth_is_counted_per_client(Service::Agent(agent), "edge agent").await?;

    // Streams per client address.
    let stream_url = format!("{gw}/v1/dashboards/{dashboard}/stream");
    let open = |client: reqwest::Client, forwarded_for: Option<&'static str>| {
        let url = stream_url.clone();
        async move {
            let mut request = client.get(url);
            if let Some(value) = forwarded_for {
                request = request.header("x-forwarded-for", value);
            }
            request.send().await.context("open a stream")
        }
    };
    let proxy = client_from(PROXY, Some(&viewer));
    let mut held = Vec::new();
    for n in 0..2 {
        let response = open(proxy.clone(), Some("203.0.113.30")).await?;
        ensure!(
            response.status() == 200,
            "stream {n}: {}",
            response.status()
        );
        held.push(response);
    }
    let (status, body) = decode(open(proxy.clone(), Some("203.0.113.30")).await?).await?;
    ensure!(status == 429, "third stream of one client: {status} {body}");
    ensure!(body["error"]["code"] == "too_many_streams", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains("live.max_streams_per_client is 2"),
        "{body}"
    );
    let other = open(proxy.clone(), Some("203.0.113.40")).await?;
    ensure!(
        other.status() == 200,
        "another client behind the proxy: {}",
        other.status()
    );
    held.push(other);
    let direct = open(client_from("127.0.0.3", Some(&viewer)), None).await?;
    ensure!(
        direct.status() == 200,
        "a client connecting directly: {}",
        direct.status()
    );
    held.push(direct);
    drop(held);
    Ok(())
}
