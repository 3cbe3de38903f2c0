//! Fault: an edge site's leaf node cut from the hub for 2 minutes under load, then reconnected.
//!
//! The real binaries: the hub cluster of `deploy/cluster/` (3 nodes, R3 streams and buckets)
//! with QuestDB, a `core-aggregator` and a gateway; an edge site `s1` of `deploy/edge/` (a leaf
//! node rendered from `deploy/edge/leaf.conf`, its own JetStream domain, the edge streams and
//! hub sources of `deploy/edge/*.json`, set up as `deploy/edge/up.sh` does) with the real
//! `edge-agent` (`site = "s1"`) connected to the leaf node. A steady load of 3,000 events/s is
//! posted to the agent; after 15 s the leaf's link to the hub is cut (as
//! `deploy/edge/link.sh s1 down` does) for 2 minutes while the load goes on (the site keeps
//! accepting: its own domain acknowledges the batches), then restored; the load runs 15 s
//! more. Once the hub has sourced the backlog and every window is final, QuestDB must hold,
//! for every window and series of the test metric, exactly the count and sum of the events the
//! agent accepted: zero lost, zero duplicated.
//!
//! Long (about 5 minutes: the cut itself, then the hub retries a failed source after up to
//! 2 minutes): ignored in the normal suite, run by `./deploy/faults.sh`.
//! `RTDASH_FAULT_CUT_SECS` shortens or lengthens the cut.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use rtdash_tests::cluster::{EdgeBuffer, EdgeSite};
use rtdash_tests::env_or;
use rtdash_tests::fault::{report, FaultOptions, FaultStack, Load, LoadOptions};
use rtdash_tests::jetstream::{connect_as, jetstream};
use rtdash_tests::topology::{self, ensure_edge_site};

const SITE: &str = "s1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long fault test: ./deploy/faults.sh"]
async fn edge_leaf_cut_for_two_minutes_under_load_counts_every_event_once() -> anyhow::Result<()> {
    let cut_for = Duration::from_secs(env_or("RTDASH_FAULT_CUT_SECS", 120));
    let started = Instant::now();
    let mut options = FaultOptions::default().cluster();
    // The edge streams record the hub's partition count for the agent (topology).
    options.stack.partitions = topology::PARTITIONS;
    let mut stack = tokio::task::block_in_place(|| FaultStack::start(options))?;
    let cluster = stack.cluster.as_ref().context("a cluster")?;
    let site = tokio::task::block_in_place(|| EdgeSite::start(SITE, cluster))?;
    {
        let hub = jetstream(
            connect_as(&cluster.urls(), "hub", &cluster.operator()).await?,
            Duration::from_secs(5),
        );
        let edge = jetstream(
            connect_as(&[site.url()], "edge", &site.operator()).await?,
            Duration::from_secs(5),
        );
        let buffer = EdgeBuffer {
            max_bytes: 256 << 20,
            ..EdgeBuffer::default()
        };
        ensure_edge_site(&hub, &edge, SITE, buffer).await?;
    }
    tokio::task::block_in_place(|| {
        stack.start_agent_at(site)?;
        stack.define_metric()
    })?;

    let load = Load::start(&stack.agent_url()?, LoadOptions::default());
    tokio::time::sleep(Duration::from_secs(15)).await;
    let site = stack.edge.as_mut().context("the edge site")?;
    tokio::task::block_in_place(|| site.cut_link())?;
    let cut = Instant::now();
    let accepted_at_cut = load.accepted();
    tokio::time::sleep(cut_for).await;
    let accepted_while_cut = load.accepted() - accepted_at_cut;
    let restored = tokio::task::block_in_place(|| site.restore_link());
    let cut_lasted = cut.elapsed();
    let relinked = Instant::now();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let tally = tokio::task::block_in_place(|| load.stop());
    if let Err(err) = restored {
        return Err(err.context(stack.logs(40)));
    }

    // The hub retries a failed source after 10 s x failures, at most 2 minutes.
    let patience = Duration::from_secs(90) + cut_for.min(Duration::from_secs(120));
    let verdict = tokio::task::block_in_place(|| stack.check_exact(&tally.expected, patience))?;
    let extra = [
        ("cut_seconds", cut_lasted.as_secs().to_string()),
        ("accepted_while_cut", accepted_while_cut.to_string()),
        (
            "caught_up_after_relink_s",
            relinked.elapsed().as_secs().to_string(),
        ),
        ("seconds", started.elapsed().as_secs().to_string()),
    ];
    let outcome = report("leaf_cut", &tally, &verdict, &extra, || stack.logs(40));
    ensure!(accepted_while_cut > 0, "nothing was accepted while cut");
    outcome
}
