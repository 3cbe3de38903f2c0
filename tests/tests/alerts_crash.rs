//! Alert state across crashes: an aggregator `SIGKILL`ed while an alert is firing, then
//! restarted (or its partition taken over by another aggregator), neither notifies twice nor
//! loses the resolve.
//!
//! Build the binary first: `cargo build -p core-aggregator`.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use rtdash_shared::messages::PartitionStatus;
use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::alerts::{alert_log, alert_options, put_rule, rule, series, Driver, TENANT};
use rtdash_tests::webhook::Receiver;
use rtdash_tests::QuestDb;

/// The owner of `partition`, from its next status report.
async fn owner_of(client: &async_nats::Client, partition: u32) -> anyhow::Result<String> {
    let mut reports = client
        .subscribe(rtdash_shared::names::status_subject(partition))
        .await?;
    let message = tokio::time::timeout(Duration::from_secs(10), reports.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no status report"))?;
    let status: PartitionStatus = rtdash_shared::wire::decode(&message.payload)?;
    Ok(status.owner)
}

fn assert_once_each(receiver: &Receiver) {
    let all = receiver.requests();
    let firing = receiver.with_status("hook", "firing");
    let resolved = receiver.with_status("hook", "resolved");
    assert_eq!(firing.len(), 1, "exactly one firing notification: {all:#?}");
    assert_eq!(
        resolved.len(),
        1,
        "exactly one resolved notification: {all:#?}"
    );
    assert_eq!(all.len(), 2, "{all:#?}");
    let keys: HashSet<_> = all.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys.len(), 2);
}

/// Killed while firing; the windows that breach, then recover, while it is down are replayed
/// after the restart: no second firing, one resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_while_firing_and_restarted_neither_repeats_nor_loses() -> anyhow::Result<()> {
    let env = AggregatorEnv::start().await?;
    let db = QuestDb::shared()?;
    let receiver = Receiver::start().await;
    let mut aggregator = env
        .aggregator(alert_options(env.options("agg-crash-1", db)))
        .await?;
    put_rule(&env.js, &rule("r3", 10.0, &receiver.url("hook"))).await?;
    let driver = Driver::start(env.js.clone(), 4, "drv-3", series(), 20);
    receiver
        .wait_for("hook", "firing", 1, Duration::from_secs(15))
        .await?;
    // More breaching windows are evaluated (and the state saved), then: SIGKILL.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    aggregator.kill();
    // Down: two more breaching windows, then the series recovers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    driver.set_rate(5);
    tokio::time::sleep(Duration::from_secs(3)).await;
    aggregator.restart()?;
    receiver
        .wait_for("hook", "resolved", 1, Duration::from_secs(20))
        .await?;
    // Time for anything repeated to show up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_once_each(&receiver);
    let log = alert_log(&env.js, TENANT, "r3").await?;
    let transitions: Vec<&str> = log
        .iter()
        .filter(|r| r["kind"] == "transition")
        .map(|r| r["to"].as_str().unwrap())
        .collect();
    assert_eq!(transitions, ["firing", "resolved", "ok"], "{log:#?}");
    driver.stop().await;
    assert!(aggregator.stop());
    Ok(())
}

/// A second aggregator joins while the alert fires (the partition may move to it gracefully),
/// then the owner of the series' partition is killed: the survivor takes it over and
/// resolves the alert exactly once, without firing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_takeover_while_firing_neither_repeats_nor_loses() -> anyhow::Result<()> {
    let env = AggregatorEnv::start().await?;
    let db = QuestDb::shared()?;
    let receiver = Receiver::start().await;
    let mut a = env
        .aggregator(alert_options(env.options("agg-take-a", db)))
        .await?;
    put_rule(&env.js, &rule("r4", 10.0, &receiver.url("hook"))).await?;
    let driver = Driver::start(env.js.clone(), 4, "drv-4", series(), 20);
    receiver
        .wait_for("hook", "firing", 1, Duration::from_secs(15))
        .await?;
    let mut b = env
        .aggregator(alert_options(env.options("agg-take-b", db)))
        .await?;
    // Rebalancing: each takes its share within two renewal periods.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let partition = series().partition(4);
    let owner = owner_of(&env.client, partition).await?;
    println!("partition {partition} is owned by {owner}; killing it");
    let survivor_name = if owner == "agg-take-a" {
        a.kill();
        "agg-take-b"
    } else {
        b.kill();
        "agg-take-a"
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    driver.set_rate(5);
    receiver
        .wait_for("hook", "resolved", 1, Duration::from_secs(25))
        .await?;
    assert_eq!(owner_of(&env.client, partition).await?, survivor_name);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_once_each(&receiver);
    driver.stop().await;
    let _ = a.stop();
    let _ = b.stop();
    Ok(())
}
