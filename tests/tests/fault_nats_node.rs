//! Fault: one NATS node of three killed under load.
//!
//! The real binaries on the hub cluster of `deploy/cluster/` (3 nodes rendered from
//! `deploy/cluster/node.conf`, every rtdash stream and bucket R3): QuestDB, a
//! `core-aggregator`, a gateway and an `edge-agent`, all given the three nodes' URLs. A steady
//! load of 3,000 events/s is posted to the agent; 8 s in, the node leading `RTDASH_PARTIALS` is
//! killed with `SIGKILL` (a new leader is elected; clients on that node reconnect to another;
//! the agent retries unacknowledged batches with their ids); 10 s later it is restarted on its
//! store and must catch up; the load runs 5 s more. Once every window is final, QuestDB must
//! hold, for every window and series of the test metric, exactly the count and sum of the
//! events the agent accepted: zero lost, zero duplicated.
//!
//! Needs the service binaries (`cargo build --workspace --bins`). About 60 s. Also run by
//! `./deploy/faults.sh`, which collects the `FAULT-RESULT` line.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use rtdash_tests::eventually;
use rtdash_tests::fault::{report, FaultOptions, FaultStack, Load, LoadOptions};

const PARTIALS_STREAM: &str = "RTDASH_PARTIALS";

#[test]
fn one_nats_node_of_three_killed_under_load_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut stack = FaultStack::start(FaultOptions::default().cluster())?;
    stack.start_agent()?;
    stack.define_metric()?;
    let cluster = stack.cluster.as_mut().context("a cluster")?;
    let victim = eventually(
        Duration::from_secs(20),
        "a leader of RTDASH_PARTIALS",
        || cluster.stream_leader(PARTIALS_STREAM),
    )?;
    let victim_name = cluster.names()[victim].clone();

    let load = Load::start(&stack.agent_url()?, LoadOptions::default());
    std::thread::sleep(Duration::from_secs(8));
    let cluster = stack.cluster.as_mut().context("a cluster")?;
    cluster.kill(victim);
    let killed = Instant::now();
    let accepted_at_kill = load.accepted();
    let new_leader = eventually(Duration::from_secs(20), "a new leader", || {
        Ok(cluster
            .stream_leader(PARTIALS_STREAM)?
            .filter(|&leader| leader != victim))
    });
    let election = killed.elapsed();
    std::thread::sleep(Duration::from_secs(10).saturating_sub(killed.elapsed()));
    let accepted_while_down = load.accepted() - accepted_at_kill;
    let restarted = cluster.restart(victim);
    std::thread::sleep(Duration::from_secs(5));
    let tally = load.stop();
    let new_leader = match (new_leader, restarted) {
        (Ok(leader), Ok(())) => leader,
        (Err(err), _) | (_, Err(err)) => return Err(err.context(stack.logs(40))),
    };
    let cluster = stack.cluster.as_mut().context("a cluster")?;
    let new_leader_name = cluster.names()[new_leader].clone();
    // The restarted node's replica catches up with the leader's.
    let caught_up = eventually(
        Duration::from_secs(30),
        "the restarted replica caught up",
        || {
            let leader = cluster.stream_leader(PARTIALS_STREAM)?;
            let Some(leader) = leader else {
                return Ok(None);
            };
            let want = cluster.replica_messages(leader, PARTIALS_STREAM)?;
            let got = cluster.replica_messages(victim, PARTIALS_STREAM)?;
            Ok((want.is_some() && got == want).then_some(()))
        },
    );

    let verdict = stack.check_exact(&tally.expected, Duration::from_secs(90))?;
    let extra = [
        ("killed", victim_name),
        ("new_leader", new_leader_name),
        ("election_ms", election.as_millis().to_string()),
        ("accepted_while_down", accepted_while_down.to_string()),
        ("seconds", started.elapsed().as_secs().to_string()),
    ];
    let outcome = report("nats_node_kill", &tally, &verdict, &extra, || {
        stack.logs(40)
    });
    caught_up?;
    ensure!(
        accepted_while_down > 0,
        "nothing was accepted while the node was down"
    );
    outcome
}
