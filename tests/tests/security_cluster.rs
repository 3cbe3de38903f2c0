//! The hub cluster and its edge sites locked down as deployed (`deploy/cluster/node.conf`,
//! `deploy/edge/leaf.conf`, `deploy/nats/users.conf`; docs/security.md, "NATS"): TLS on the
//! client and leafnode ports, users with their subject permissions, the leaf link
//! authenticated. Every refusal stands beside the same operation done right and accepted, so
//! no check passes because nothing works.
//!
//! Real nats-servers (3-node cluster, leaf nodes) from the harness, which renders the same
//! templates with throwaway passwords and a CA made by `deploy/lockdown.sh`
//! (`rtdash_lockdown_tls`). About 15 s.

use std::time::Duration;

use anyhow::{ensure, Context};
use futures::StreamExt;
use rtdash_shared::names;
use rtdash_tests::cluster::{
    make_tls, Credentials, EdgeBuffer, EdgeOptions, EdgeSite, NatsCluster,
};
use rtdash_tests::jetstream::{connect_as, jetstream, kv_put, wait_messages};
use rtdash_tests::topology::{ensure_edge_site, start_hub};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The port of a `nats://127.0.0.1:<port>` URL.
fn port_of(url: &str) -> anyhow::Result<u16> {
    url.rsplit(':')
        .next()
        .context("no port")?
        .parse()
        .with_context(|| format!("port of {url}"))
}

/// Connects once (no retries) with `options` to `url`.
async fn try_connect(
    options: async_nats::ConnectOptions,
    url: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    options
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
}

fn start_cluster() -> anyhow::Result<NatsCluster> {
    tokio::task::block_in_place(NatsCluster::start)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_anonymous_and_wrong_ca_clients_are_refused() -> anyhow::Result<()> {
    let cluster = start_cluster()?;
    let url = cluster.node_url(0);
    let operator = cluster.operator();

    // Plaintext, even with the operator's password: the server announces TLS and never
    // answers the PING (the bytes are not a TLS handshake; it closes the connection).
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port_of(&url)?)).await?;
    let mut info = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut info)).await??;
    let info = String::from_utf8_lossy(&info[..n]).to_string();
    ensure!(
        info.starts_with("INFO ") && info.contains("\"tls_required\":true"),
        "{info}"
    );
    let connect = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"user\":\"{}\",\"pass\":\"{}\"}}\r\nPING\r\n",
        operator.user, operator.password
    );
    socket.write_all(connect.as_bytes()).await?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    ensure!(
        read.is_ok() && !answer.contains("PONG"),
        "a plaintext client got {answer:?} (closed: {})",
        read.is_ok()
    );

    // TLS without a user.
    let anonymous = try_connect(
        rtdash_tests::cluster::tls_options()
            .add_root_certificates(operator.ca.clone())
            .require_tls(true),
        &url,
    )
    .await;
    let err = anonymous
        .err()
        .context("an anonymous TLS client was accepted")?;
    ensure!(
        err.to_string().to_lowercase().contains("authorization"),
        "anonymous: {err}"
    );

    // The right password, but a CA the servers' certificate does not chain to.
    let other = tempfile::tempdir()?;
    make_tls(&other.path().join("tls"))?;
    let wrong_ca = Credentials {
        ca: other.path().join("tls/ca.pem"),
        ..operator.clone()
    };
    let err = try_connect(wrong_ca.connect_options(), &url)
        .await
        .err()
        .context("a client trusting another CA connected")?;
    ensure!(
        !err.to_string().to_lowercase().contains("authorization"),
        "wrong CA should fail the TLS handshake, not authentication: {err}"
    );

    // The control: the same password with the right CA, on every node.
    for url in cluster.urls() {
        let client = try_connect(operator.connect_options(), &url).await?;
        client.flush().await?;
        ensure!(
            client.server_info().tls_required,
            "{url} did not require TLS"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_cluster_only_the_aggregator_publishes_live_updates() -> anyhow::Result<()> {
    let cluster = start_cluster()?;
    let urls = cluster.urls();
    // The subscriber on one node, the publishers on others: the refusal holds across routes.
    let operator = connect_as(&urls[..1], "viewer", &cluster.operator()).await?;
    let mut live = operator.subscribe("rtdash.live.>").await?;
    operator.flush().await?;
    // In rounds (at most 3): an allowed publish delayed past a round on a loaded machine
    // still counts; a refused one never appears.
    let mut from_aggregator = false;
    for round in 0..3 {
        for (i, user) in ["edge-agent", "gateway", "core-aggregator"]
            .iter()
            .enumerate()
        {
            let node = &urls[1 + i % 2..2 + i % 2];
            let client = connect_as(node, user, &cluster.credentials(user)).await?;
            client
                .publish(
                    format!("rtdash.live.t1.m.{round}"),
                    user.as_bytes().to_vec().into(),
                )
                .await?;
            client.flush().await?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, live.next()).await {
            let from = String::from_utf8(message.payload.to_vec())?;
            ensure!(
                from == "core-aggregator",
                "{from} published a live update ({})",
                message.subject
            );
            from_aggregator = true;
        }
        if from_aggregator {
            break;
        }
    }
    ensure!(
        from_aggregator,
        "the aggregator's live update never arrived"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_node_without_credentials_is_refused() -> anyhow::Result<()> {
    let cluster = start_cluster()?;
    let anonymous = tokio::task::block_in_place(|| {
        EdgeSite::start_with(
            "nocreds",
            &cluster,
            EdgeOptions {
                link_credentials: false,
                ..EdgeOptions::default()
            },
        )
    })?;
    // The hub refuses it: the leaf node logs the authorization error...
    rtdash_tests::eventually(
        Duration::from_secs(30),
        "the leaf node's link refused",
        || {
            let log = std::fs::read_to_string(anonymous.log_path())?;
            Ok(log.to_lowercase().contains("authorization").then_some(()))
        },
    )?;
    // ...and no node of the hub ever holds its link.
    for _ in 0..10 {
        ensure!(
            !anonymous.is_linked(),
            "a leaf node without credentials linked"
        );
        for i in 0..cluster.len() {
            let leafz: serde_json::Value =
                reqwest::get(format!("{}/leafz", cluster.monitor_url(i)))
                    .await?
                    .json()
                    .await?;
            ensure!(
                leafz["leafnodes"].as_u64() == Some(0),
                "node {i} holds a leaf connection: {leafz}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The control: a site with its leaf user's credentials links (over TLS).
    let linked = tokio::task::block_in_place(|| EdgeSite::start("withcreds", &cluster))?;
    ensure!(linked.is_linked(), "the site with credentials did not link");
    Ok(())
}

/// Sends one request from `client` and tells whether anything answered within 3 s (an API
/// error counts as an answer: the request got through).
async fn answered(client: &async_nats::Client, subject: &str) -> bool {
    let request = client.request(subject.to_owned(), "".into());
    matches!(
        tokio::time::timeout(Duration::from_secs(3), request).await,
        Ok(Ok(_))
    )
}

/// The leaf user's subject permissions (deploy/nats/leaf-user.conf) hold on a linked site: a
/// client at the site, with the site's operator credentials (everything on its own server),
/// gets no answer from the hub's API beyond account info and schema discovery writes, no hub
/// stream or bucket read or other bucket write, no live updates or other services' replies,
/// and what it publishes on hub subjects never reaches the hub; through the same link the hub
/// sources the site's stream and the site mirrors the config bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_site_gets_only_what_its_link_needs_from_the_hub() -> anyhow::Result<()> {
    let (cluster, hub) = start_hub("hub").await?;
    let site = tokio::task::block_in_place(|| EdgeSite::start("s1", &cluster))?;
    // Replies under `_INBOX.edge.>`, which the link carries: a request that gets no answer is
    // refused for its subject, not for its reply.
    let at_site = site
        .operator()
        .connect_options()
        .name("tool-at-site")
        .custom_inbox_prefix("_INBOX.edge.s1")
        .connect(site.url())
        .await?;
    let edge = jetstream(at_site.clone(), Duration::from_secs(5));
    ensure_edge_site(&hub, &edge, site.site(), EdgeBuffer::small()).await?;
    let hub_client = connect_as(&cluster.urls(), "hub-viewer", &cluster.operator()).await?;

    // What the link is for. Sourcing: a partial stored at the site reaches the hub's stream.
    edge.publish(site.partials_subject(0), "partial".into())
        .await?
        .await?;
    wait_messages(&hub, names::PARTIALS_STREAM, 1, Duration::from_secs(15))
        .await
        .context("the hub did not source the site's partial")?;
    // Mirroring: a metric definition put on the hub appears in the site's mirror.
    let hub_kv = hub.get_key_value(names::CONFIG_BUCKET).await?;
    kv_put(&hub_kv, "metric.t1.m1", "v1").await?;
    let edge_kv = edge.get_key_value(names::CONFIG_BUCKET).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while edge_kv.get("metric.t1.m1").await.ok().flatten().as_deref() != Some(&b"v1"[..]) {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the site's config mirror did not get metric.t1.m1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Account info, the link check of the deploy scripts, is answered.
    ensure!(
        answered(&at_site, "$JS.hub.API.INFO").await,
        "the hub's account info did not answer through the link"
    );
    // A schema discovery record written through the hub's API prefix lands in the hub's bucket.
    let schema_key = names::schema_type_key("t1", "s1-agent", "pay");
    ensure!(
        answered(
            &at_site,
            &names::hub_kv_subject(names::SCHEMA_BUCKET, &schema_key)
        )
        .await,
        "a schema record written through the link was not acknowledged"
    );
    let hub_schema = hub.get_key_value(names::SCHEMA_BUCKET).await?;
    ensure!(
        hub_schema.get(&schema_key).await?.is_some(),
        "the hub's {} does not hold {schema_key}",
        names::SCHEMA_BUCKET
    );

    // What it is not for: the hub's streams, buckets and consumers.
    for subject in [
        "$JS.hub.API.STREAM.INFO.RTDASH_PARTIALS",
        "$JS.hub.API.STREAM.NAMES",
        "$JS.hub.API.STREAM.MSG.GET.RTDASH_PARTIALS",
        "$JS.hub.API.DIRECT.GET.KV_rtdash_config.$KV.rtdash_config.metric.t1.m1",
        "$JS.hub.API.DIRECT.GET.KV_rtdash_keys.$KV.rtdash_keys.k",
        "$JS.hub.API.CONSUMER.CREATE.RTDASH_PARTIALS",
        "$JS.hub.API.CONSUMER.CREATE.RTDASH_EVENTS",
        "$JS.hub.API.STREAM.DELETE.RTDASH_PARTIALS",
        // Writes through the hub's API prefix reach only the schema bucket and keys' `used.`.
        "$JS.hub.API.$KV.rtdash_config.metric.t1.m1",
        "$JS.hub.API.$KV.rtdash_keys.key.k",
    ] {
        ensure!(
            !answered(&at_site, subject).await,
            "{subject} answered through the link"
        );
    }
    // Live updates and other users' replies published on the hub never reach the site, while
    // a subscriber at the hub gets them.
    let mut at_site_subs = futures::stream::select_all([
        at_site.subscribe("rtdash.live.>").await?,
        at_site.subscribe("rtdash.partials.>").await?,
        at_site.subscribe("_INBOX.gateway.>").await?,
    ]);
    at_site.flush().await?;
    let mut at_hub = hub_client.subscribe("rtdash.live.>").await?;
    hub_client.flush().await?;
    tokio::time::sleep(Duration::from_millis(500)).await; // interest reaches every node
    for subject in ["rtdash.live.t1.m1", "rtdash.partials.0", "_INBOX.gateway.x"] {
        hub_client.publish(subject, "from-hub".into()).await?;
    }
    hub_client.flush().await?;
    let got = tokio::time::timeout(Duration::from_secs(5), at_hub.next())
        .await
        .context("the hub's own subscriber got no live update")?;
    ensure!(got.is_some(), "the hub's subscription ended");
    ensure!(
        tokio::time::timeout(Duration::from_secs(2), at_site_subs.next())
            .await
            .is_err(),
        "a hub subject reached the site"
    );
    // And the site cannot publish into the hub's subjects (a spoofed live update, a partial
    // around the edge stream).
    let mut at_hub_all = hub_client.subscribe("rtdash.>").await?;
    hub_client.flush().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for subject in ["rtdash.live.t1.m1", "rtdash.partials.0", "rtdash.status.x"] {
        at_site.publish(subject, "from-site".into()).await?;
    }
    at_site.flush().await?;
    if let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(3), at_hub_all.next()).await
    {
        anyhow::bail!("{} from the site reached the hub", message.subject);
    }
    // The site's leaf user links the site and nothing else: as a client (hub or site) it is
    // refused, where the operator above connected.
    let leaf = cluster.leaf_user("s1")?;
    for url in [cluster.urls()[0].clone(), site.url()] {
        ensure!(
            try_connect(leaf.connect_options(), &url).await.is_err(),
            "the leaf user connected as a client to {url}"
        );
    }
    Ok(())
}

/// An edge site holds no credential of the hub's: its own users (its operator, which these
/// scripts' setup at the site uses, and its agent's) and its leaf user are refused on every
/// client port of the hub, where the hub's operator connects; at the site its own users
/// connect and the hub's operator is refused; its server key is its own. And a leaf user carries its own site's domain
/// only: a site that links as site a's user but runs domain edge-b gets none of the hub's
/// consumer requests for edge-b, while those for edge-a come through the same link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_site_holds_no_hub_credential_and_its_leaf_user_serves_its_domain_only(
) -> anyhow::Result<()> {
    let cluster = start_cluster()?;
    let site = tokio::task::block_in_place(|| EdgeSite::start("a", &cluster))?;
    let site_users = [
        site.operator(),
        site.credentials("edge-agent"),
        cluster.leaf_user("a")?,
    ];
    for url in cluster.urls() {
        try_connect(cluster.operator().connect_options(), &url)
            .await
            .with_context(|| format!("the hub's operator at {url}"))?;
        for credentials in &site_users {
            ensure!(
                try_connect(credentials.connect_options(), &url)
                    .await
                    .is_err(),
                "site a's {} connected to the hub at {url}",
                credentials.user
            );
        }
    }
    for credentials in &site_users[..2] {
        try_connect(credentials.connect_options(), &site.url())
            .await
            .with_context(|| format!("site a's {} at the site", credentials.user))?;
    }
    ensure!(
        try_connect(cluster.operator().connect_options(), &site.url())
            .await
            .is_err(),
        "the hub's operator connected to site a's server"
    );
    // Its server certificate is its own (the TLS connections above verified it against the
    // hub's CA); neither the hub's server key nor the CA's key is at the site.
    let site_tls = site.secrets().ca();
    let site_tls = site_tls.parent().context("site tls dir")?;
    ensure!(
        std::fs::read(site.secrets().key())? != std::fs::read(cluster.secrets().key())?,
        "site a holds the hub's server key"
    );
    ensure!(
        !site_tls.join("ca-key.pem").exists(),
        "site a holds the CA's key"
    );

    // Domain edge-b, linked as leaf-a: the hub takes the link (the password is right)...
    let impostor = tokio::task::block_in_place(|| {
        EdgeSite::start_with(
            "b",
            &cluster,
            EdgeOptions {
                link_as: Some("a".to_owned()),
                ..EdgeOptions::default()
            },
        )
    })?;
    let at_impostor = connect_as(&[impostor.url()], "impostor", &impostor.operator()).await?;
    // The site's server takes a request for its own domain as one to its JetStream
    // (`$JS.edge-b.API.>` maps to `$JS.API.>`): both subjects are listened to.
    let mut for_b = futures::stream::select(
        at_impostor.subscribe("$JS.edge-b.API.CONSUMER.>").await?,
        at_impostor.subscribe("$JS.API.CONSUMER.>").await?,
    );
    let mut for_a = at_impostor.subscribe("$JS.edge-a.API.CONSUMER.>").await?;
    at_impostor.flush().await?;
    let hub_client = connect_as(&cluster.urls(), "hub", &cluster.operator()).await?;
    // ...and delivers what leaf-a may receive: a consumer request of a hub source for edge-a
    // (sent until the subscription's interest has reached the hub)...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        for domain in ["edge-a", "edge-b"] {
            hub_client
                .publish(
                    format!("$JS.{domain}.API.CONSUMER.CREATE.RTDASH_EDGE_PARTIALS"),
                    "".into(),
                )
                .await?;
        }
        hub_client.flush().await?;
        if let Ok(message) = tokio::time::timeout(Duration::from_millis(300), for_a.next()).await {
            ensure!(message.is_some(), "the subscription for edge-a ended");
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the hub's request for edge-a never reached the site linked as leaf-a"
        );
    }
    // ...but none for the domain it runs, edge-b, sent as often again after that.
    for _ in 0..3 {
        hub_client
            .publish(
                "$JS.edge-b.API.CONSUMER.CREATE.RTDASH_EDGE_PARTIALS",
                "".into(),
            )
            .await?;
    }
    hub_client.flush().await?;
    ensure!(
        tokio::time::timeout(Duration::from_secs(2), for_b.next())
            .await
            .is_err(),
        "a hub request for edge-b reached a site linked as leaf-a"
    );
    Ok(())
}
