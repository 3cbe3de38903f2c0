//! HTTP hardening of the listeners (issue #16): slow clients are cut after the header and
//! body read timeouts (`[http]`), so a few sockets cannot hold every ingest slot of the edge
//! agent; the gateway answers `421` to a `Host` it does not serve (DNS rebinding) and sends
//! its security headers. Real edge agent and gateway (in this process), real NATS and
//! QuestDB.

use std::time::{Duration, Instant};

use edge_agent::AgentConfig;
use rtdash_tests::client::http_client;
use rtdash_tests::events::event_json;
use rtdash_tests::gateway_env::GatewayEnv;
use rtdash_tests::in_process::InProcessAgent;
use rtdash_tests::time::now_millis;
use rtdash_tests::NatsServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the socket (10 s at most); what it sent.
async fn read_until_closed(socket: &mut TcpStream) -> anyhow::Result<String> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut out))
        .await
        .map_err(|_| anyhow::anyhow!("the server did not close the socket"))??;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_cannot_hold_the_agents_ingest_slots() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let state = tempfile::tempdir()?;
    let mut config = AgentConfig::default();
    config.nats.url = nats.url();
    config.state_dir = state.path().to_owned();
    config.agent_id = Some("slow-clients".to_owned());
    config.streams.partitions = 4;
    config.ingest.max_concurrent_requests = 2;
    config.http.header_read_timeout_ms = 1_000;
    config.http.body_read_timeout_ms = 1_000;
    let agent = InProcessAgent::start(config, http_client(Some(Duration::from_secs(30)))).await?;
    agent.api.wait_ready(Duration::from_secs(20)).await?;
    let addr = agent.base().trim_start_matches("http://").to_owned();

    // Two sockets send a head announcing a body and never finish it (each holds a slot),
    // two more never finish their head, one sends nothing.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut socket = TcpStream::connect(&addr).await?;
        // With a valid key: a request is authenticated before it takes a slot.
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{{\"tenant",
            rtdash_tests::auth::operator_key()
        );
        socket.write_all(head.as_bytes()).await?;
        slow.push((socket, true));
    }
    for _ in 0..2 {
        let mut socket = TcpStream::connect(&addr).await?;
        socket
            .write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
            .await?;
        slow.push((socket, false));
    }
    slow.push((TcpStream::connect(&addr).await?, false));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let body = serde_json::to_string(&vec![event_json(
        "t1",
        "s1",
        "orders",
        serde_json::json!({}),
        now_millis(),
    )])?;
    let post = || async {
        http_client(Some(Duration::from_secs(10)))
            .post(agent.events_url())
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .map(|r| r.status().as_u16())
    };
    // Every slot is held now.
    assert_eq!(post().await?, 429, "the two slow bodies hold both slots");

    // The slow sockets are cut: bodies answered 408, heads closed without an answer.
    for (socket, has_body) in &mut slow {
        let answer = read_until_closed(socket).await?;
        if *has_body {
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            assert!(answer.contains("body_timeout"), "{answer}");
        } else {
            assert_eq!(answer, "", "closed without an answer");
        }
    }
    let cut_after = started.elapsed();
    assert!(
        cut_after < Duration::from_secs(5),
        "cut after {cut_after:?}"
    );
    // And a normal request gets through again.
    assert_eq!(post().await?, 202);
    let metrics = http_client(Some(Duration::from_secs(10)))
        .get(agent.api.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let count = |phase: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("rtdash_agent_http_client_timeouts_total")
                    && l.contains(&format!("phase=\"{phase}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(count("body"), 2.0, "{metrics}");
    assert!(count("header") >= 2.0, "{metrics}");
    agent.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_checks_host_and_sends_security_headers() -> anyhow::Result<()> {
    let env = GatewayEnv::start(|config| {
        config.http.header_read_timeout_ms = 1_000;
    })
    .await;
    let http = reqwest::Client::new();
    // Its own address, and localhost: served.
    let ok = http.get(env.url("/v1/status?tenant_id=t1")).send().await?;
    assert_ne!(ok.status().as_u16(), 421);
    let headers = ok.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    let port = env.base.rsplit(':').next().unwrap().to_owned();
    let ui = http
        .get(env.url("/"))
        .header("host", format!("localhost:{port}"))
        .send()
        .await?;
    assert_eq!(ui.status().as_u16(), 200);
    let csp = ui.headers()["content-security-policy"].to_str()?.to_owned();
    assert!(
        csp.starts_with("default-src 'self'; script-src 'self';"),
        "{csp}"
    );
    assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
    // A rebound name: refused, whatever the route.
    for path in [
        "/",
        "/v1/status?tenant_id=t1",
        "/v1/openapi.json",
        "/metrics",
    ] {
        let refused = http
            .get(env.url(path))
            .header("host", format!("evil.example:{port}"))
            .send()
            .await?;
        assert_eq!(refused.status().as_u16(), 421, "{path}");
        assert!(refused.text().await?.contains("evil.example"));
    }
    // Probes by address still work.
    let probe = http
        .get(env.url("/healthz"))
        .header("host", "10.0.0.7:8080")
        .send()
        .await?;
    assert_eq!(probe.status().as_u16(), 200);
    // A head that never ends is cut.
    let mut socket = TcpStream::connect(env.base.trim_start_matches("http://")).await?;
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await?;
    let started = Instant::now();
    assert_eq!(read_until_closed(&mut socket).await?, "");
    assert!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}
