//! NATS locked down as deployed (deploy/nats/users.conf, issue #16): no anonymous or
//! wrong-password connection, and each service user can publish and read only what its
//! service needs. Every refusal is checked beside the same operation by the user allowed to
//! make it, so a test cannot pass because nothing works.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use rtdash_runtime::nats::{ensure_topology, jetstream, Ensure, StreamsConfig};
use rtdash_shared::names;
use rtdash_tests::lockdown::LockedNats;

#[tokio::test]
async fn anonymous_and_wrong_password_connections_are_refused() -> anyhow::Result<()> {
    let nats = LockedNats::start()?;
    let anonymous = async_nats::connect(nats.server.url()).await;
    assert!(anonymous.is_err(), "an anonymous connection was accepted");
    let mut wrong = nats.config("gateway");
    wrong.password = Some(nats.passwords["edge-agent"].as_str().into());
    let err = rtdash_runtime::nats::connect(&wrong, "test-wrong")
        .await
        .expect_err("gateway with the agent's password was accepted");
    assert!(
        format!("{err:?}").to_lowercase().contains("authorization"),
        "{err:?}"
    );
    for user in ["core-aggregator", "gateway", "edge-agent", "operator"] {
        let client = nats.connect(user).await?;
        client.flush().await?;
    }
    Ok(())
}

/// Subjects a core-NATS publish may go to, and who is allowed to.
const SUBJECTS: [(&str, &[&str]); 7] = [
    ("rtdash.live.t1.m", &["core-aggregator"]),
    ("rtdash.status.0", &["core-aggregator"]),
    ("rtdash.alerts.t1", &["core-aggregator"]),
    ("rtdash.alertlog.t1.r", &["core-aggregator", "gateway"]),
    ("rtdash.partials.0", &["edge-agent"]),
    ("rtdash.events.t1", &["edge-agent"]),
    ("rtdash.dlq.t1", &["edge-agent"]),
];

#[tokio::test]
async fn only_aggregators_publish_live_status_and_alerts_only_agents_partials() -> anyhow::Result<()>
{
    let nats = LockedNats::start()?;
    let operator = nats.connect("operator").await?;
    let mut seen = operator.subscribe("rtdash.>").await?;
    operator.flush().await?;
    let want: BTreeSet<(String, String)> = SUBJECTS
        .iter()
        .flat_map(|(subject, users)| {
            users
                .iter()
                .map(|user| ((*subject).to_owned(), (*user).to_owned()))
        })
        .collect();
    // Every user publishes to every subject, in rounds (at most 3): what a round delivers is
    // added up, so an allowed publish delayed past a round's end on a loaded machine still
    // counts, while a refused one never appears in any round.
    let mut got = BTreeSet::new();
    for round in 0..3 {
        for user in ["core-aggregator", "gateway", "edge-agent"] {
            let client = nats.connect(user).await?;
            for (subject, _) in SUBJECTS {
                client
                    .publish(subject, user.as_bytes().to_vec().into())
                    .await?;
            }
            client.flush().await?;
        }
        // A last message from the operator: once it arrives (and a moment after it), what the
        // others published before it has been delivered or refused.
        let end = format!("rtdash.end.{round}");
        operator.publish(end.clone(), "operator".into()).await?;
        let mut ended = false;
        loop {
            let wait = if ended {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(30)
            };
            let Ok(next) = tokio::time::timeout(wait, seen.next()).await else {
                anyhow::ensure!(ended, "round {round}: the end marker never arrived");
                break;
            };
            let Some(message) = next else { break };
            if message.subject.as_str() == end {
                ended = true;
                continue;
            }
            if message.subject.as_str().starts_with("rtdash.end.") {
                continue;
            }
            got.insert((
                message.subject.to_string(),
                String::from_utf8(message.payload.to_vec())?,
            ));
        }
        if got == want {
            break;
        }
    }
    assert_eq!(got, want);
    Ok(())
}

#[tokio::test]
async fn the_agent_reads_metric_definitions_only_and_the_gateway_cannot_publish_partials(
) -> anyhow::Result<()> {
    let nats = LockedNats::start()?;
    // The aggregator owns the topology, as in a deployment.
    let aggregator = jetstream(
        nats.connect("core-aggregator").await?,
        &nats.config("core-aggregator"),
    );
    ensure_topology(
        &aggregator,
        &StreamsConfig::default(),
        Ensure::CreateOrUpdate,
    )
    .await?;
    let gateway = jetstream(nats.connect("gateway").await?, &nats.config("gateway"));
    let agent = jetstream(
        nats.connect("edge-agent").await?,
        &nats.config("edge-agent"),
    );

    // The gateway writes the config bucket; the agent cannot.
    let config = gateway.get_key_value(names::CONFIG_BUCKET).await?;
    config.put("metric._all.m1", "{}".into()).await?;
    config.put("dashboard.t1.d1", "{}".into()).await?;
    config.put("alert.t1.a1", "{}".into()).await?;
    let agent_config = agent.get_key_value(names::CONFIG_BUCKET).await?;
    assert!(agent_config
        .put("metric._all.m2", "{}".into())
        .await
        .is_err());
    assert!(agent_config.get("dashboard.t1.d1").await.is_err());
    assert_eq!(
        config.get("dashboard.t1.d1").await?.as_deref(),
        Some(&b"{}"[..])
    );

    // The agent watches metric definitions, and nothing else of the bucket.
    let mut metrics =
        rtdash_runtime::kv_watch::watch_prefix(&agent, &agent_config, "metric.", "test").await?;
    let first = tokio::time::timeout(Duration::from_secs(10), metrics.next())
        .await?
        .expect("watch ended")?;
    assert_eq!(first.key, "metric._all.m1");
    for prefix in ["dashboard.", "alert."] {
        let refused =
            rtdash_runtime::kv_watch::watch_prefix(&agent, &agent_config, prefix, "test").await;
        assert!(refused.is_err(), "the agent could watch {prefix}>");
    }
    let mut all = config.watch_with_history(">").await?;
    assert!(tokio::time::timeout(Duration::from_secs(10), all.next())
        .await?
        .is_some());

    // Partials through JetStream: the agent's are stored, the gateway's refused.
    let subject = names::partials_subject(0);
    agent.publish(subject.clone(), "a".into()).await?.await?;
    let refused = match gateway.publish(subject.clone(), "g".into()).await {
        Ok(ack) => ack.await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "the gateway published a partial");
    let mut partials = aggregator.get_stream(names::PARTIALS_STREAM).await?;
    assert_eq!(partials.info().await?.state.messages, 1);
    Ok(())
}

/// What the alert pages need from the gateway's user: reading the aggregators' alert state
/// (`GET /v1/alerts/{id}/state`: an ordered consumer on the state bucket) and the alert log,
/// and recording its test notifications in the log; the agent can do neither.
#[tokio::test]
async fn the_gateway_reads_alert_state_and_records_test_notifications() -> anyhow::Result<()> {
    use async_nats::jetstream::{kv, stream};
    let nats = LockedNats::start()?;
    // The aggregator creates the state bucket and the log stream, as `alerts::setup` does.
    let aggregator = jetstream(
        nats.connect("core-aggregator").await?,
        &nats.config("core-aggregator"),
    );
    let state = aggregator
        .create_key_value(kv::Config {
            bucket: names::ALERT_STATE_BUCKET.to_owned(),
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await?;
    state
        .put("p0.t1.r1.s1", "{\"state\":\"firing\"}".into())
        .await?;
    state
        .put("p1.t1.r1.s2", "{\"state\":\"ok\"}".into())
        .await?;
    let mut log = aggregator
        .create_stream(stream::Config {
            name: names::ALERT_EVENTS_STREAM.to_owned(),
            subjects: vec![format!("{}.>", names::ALERTLOG_PREFIX)],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await?;
    let gateway = jetstream(nats.connect("gateway").await?, &nats.config("gateway"));
    let agent = jetstream(
        nats.connect("edge-agent").await?,
        &nats.config("edge-agent"),
    );

    let read = |js| async move {
        tokio::time::timeout(
            Duration::from_secs(10),
            rtdash_runtime::kv::last_values(js, names::ALERT_STATE_BUCKET, "*.t1.r1.>"),
        )
        .await
    };
    let (entries, _) = read(&gateway)
        .await?
        .expect("the gateway reads alert state");
    let keys: BTreeSet<String> = entries.into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["p0.t1.r1.s1".to_owned(), "p1.t1.r1.s2".to_owned()])
    );
    assert!(
        !matches!(read(&agent).await, Ok(Ok(_))),
        "the agent read alert state"
    );

    // The log: the gateway's record is stored, the agent's refused.
    let subject = names::alertlog_subject("t1", "r1");
    gateway.publish(subject.clone(), "g".into()).await?.await?;
    let refused = match agent.publish(subject.clone(), "a".into()).await {
        Ok(ack) => ack.await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "the agent wrote the alert log");
    assert_eq!(log.info().await?.state.messages, 1);
    Ok(())
}

#[tokio::test]
async fn the_agent_writes_schema_records_and_the_gateway_only_reads_them() -> anyhow::Result<()> {
    let nats = LockedNats::start()?;
    let aggregator = jetstream(
        nats.connect("core-aggregator").await?,
        &nats.config("core-aggregator"),
    );
    ensure_topology(
        &aggregator,
        &StreamsConfig::default(),
        Ensure::CreateOrUpdate,
    )
    .await?;
    let gateway = jetstream(nats.connect("gateway").await?, &nats.config("gateway"));
    let agent = jetstream(
        nats.connect("edge-agent").await?,
        &nats.config("edge-agent"),
    );
    let key = names::schema_type_key("t1", "edge-1", "click");
    let agent_schema = agent.get_key_value(names::SCHEMA_BUCKET).await?;
    agent_schema.put(&key, "record".into()).await?;
    let gateway_schema = gateway.get_key_value(names::SCHEMA_BUCKET).await?;
    assert!(
        gateway_schema.put(&key, "forged".into()).await.is_err(),
        "the gateway wrote a schema record"
    );
    assert_eq!(
        gateway_schema.get(&key).await?.as_deref(),
        Some(&b"record"[..])
    );
    // The gateway lists a tenant's keys through a stream-info call with a subject filter.
    let stream = gateway
        .get_stream(format!("KV_{}", names::SCHEMA_BUCKET))
        .await?;
    let subjects: Vec<(String, usize)> = stream
        .info_with_subjects(format!("$KV.{}.t1.>", names::SCHEMA_BUCKET))
        .await?
        .map(|s| s.expect("subject"))
        .collect()
        .await;
    assert_eq!(
        subjects,
        [(format!("$KV.{}.{key}", names::SCHEMA_BUCKET), 1)]
    );
    // Nobody else writes the bucket's subjects.
    let aggregator_schema = aggregator.get_key_value(names::SCHEMA_BUCKET).await?;
    assert!(aggregator_schema.put(&key, "x".into()).await.is_err());
    Ok(())
}

/// What the data-quality page needs from the gateway's user: the newest dead letters and late
/// records of one tenant (consumers filtered on that tenant's subject, read and deleted by
/// `gateway::side_stream`); a consumer without a filter is refused, and the gateway cannot
/// publish dead letters.
#[tokio::test]
async fn the_gateway_reads_one_tenants_dead_letters_and_late_records() -> anyhow::Result<()> {
    use async_nats::jetstream::consumer;
    use gateway::side_stream::{newest_in_range, ReadLimits};
    let nats = LockedNats::start()?;
    let aggregator = jetstream(
        nats.connect("core-aggregator").await?,
        &nats.config("core-aggregator"),
    );
    ensure_topology(
        &aggregator,
        &StreamsConfig::default(),
        Ensure::CreateOrUpdate,
    )
    .await?;
    let agent = jetstream(
        nats.connect("edge-agent").await?,
        &nats.config("edge-agent"),
    );
    for (tenant, n) in [("t1", 3), ("t2", 2)] {
        for i in 0..n {
            agent
                .publish(names::dlq_subject(tenant), format!("{tenant}-{i}").into())
                .await?
                .await?;
        }
    }
    aggregator
        .publish(names::late_subject("t1"), "late".into())
        .await?
        .await?;
    let gateway = jetstream(nats.connect("gateway").await?, &nats.config("gateway"));
    let limits = ReadLimits {
        max_messages: 2,
        max_bytes: 1 << 20,
        timeout: Duration::from_secs(5),
    };
    let now = rtdash_shared::time::now_millis();
    let (from, to) = (now - 60_000, now + 60_000);
    let read = newest_in_range(
        &gateway,
        names::DLQ_STREAM,
        &names::dlq_subject("t1"),
        from,
        to,
        limits,
    )
    .await?;
    let payloads: Vec<&[u8]> = read.messages.iter().map(|(_, p)| &p[..]).collect();
    assert_eq!(
        payloads,
        [&b"t1-1"[..], b"t1-2"],
        "the newest two of t1's three"
    );
    assert!(!read.complete, "one was left out");
    let late = newest_in_range(
        &gateway,
        names::LATE_STREAM,
        &names::late_subject("t1"),
        from,
        to,
        limits,
    )
    .await?;
    assert_eq!(late.messages.len(), 1);
    assert!(late.complete);
    let consumers: Vec<_> = aggregator
        .get_stream(names::DLQ_STREAM)
        .await?
        .consumer_names()
        .collect()
        .await;
    assert!(
        consumers.is_empty(),
        "the reader's consumers are deleted: {consumers:?}"
    );
    let stream = gateway.get_stream(names::DLQ_STREAM).await?;

    // A consumer without a subject filter, named or not, is refused. (A filter with a
    // wildcard in the tenant's place cannot be told apart by subject permissions: the gateway
    // serves every tenant, and takes the tenant from the caller's key.)
    for name in [None, Some("probe".to_owned())] {
        let created = stream
            .create_consumer(consumer::pull::Config {
                name: name.clone(),
                ack_policy: consumer::AckPolicy::None,
                ..Default::default()
            })
            .await;
        assert!(
            created.is_err(),
            "the gateway made an unfiltered consumer (name {name:?})"
        );
    }
    let filtered = stream
        .create_consumer(consumer::pull::Config {
            name: Some("probe".to_owned()),
            filter_subject: names::dlq_subject("t2"),
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await;
    assert!(
        filtered.is_ok(),
        "the same with a tenant's filter: {filtered:?}"
    );
    let refused = match gateway.publish(names::dlq_subject("t1"), "g".into()).await {
        Ok(ack) => ack.await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "the gateway published a dead letter");
    Ok(())
}
