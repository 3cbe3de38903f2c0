//! Fault: one of two core aggregators killed under load.
//!
//! The real binaries (`rtdash_tests::fault::FaultStack`): one nats-server, QuestDB, two
//! `core-aggregator`s sharing 4 partitions (3 s leases), a gateway and an `edge-agent`. A steady
//! load of 3,000 events/s is posted to the agent; 8 s in, the aggregator that owns partitions
//! is killed with `SIGKILL` (no checkpoint, no lease release). The survivor must own every
//! partition within the lease time (about 4/3 of `lease.ttl_ms`, plus a renewal period), and
//! once the load has stopped and every window is final, QuestDB must hold, for every window
//! and series of the test metric, exactly the count and sum of the events the agent accepted:
//! zero lost, zero duplicated.
//!
//! Needs the service binaries (`cargo build --workspace --bins`). About 40 s. Also run by
//! `./deploy/faults.sh`, which collects the `FAULT-RESULT` line.

use std::time::{Duration, Instant};

use anyhow::ensure;
use rtdash_tests::eventually;
use rtdash_tests::fault::{report, FaultOptions, FaultStack, Load, LoadOptions};

const PARTITIONS: f64 = 4.0;
/// `lease.ttl_ms` of the harness's aggregators (`AggregatorOptions::new`).
const LEASE_TTL: Duration = Duration::from_millis(3_000);

#[test]
fn one_of_two_aggregators_killed_under_load_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut stack = FaultStack::start(FaultOptions {
        aggregators: 2,
        ..FaultOptions::default()
    })?;
    stack.start_agent()?;
    stack.define_metric()?;
    eventually(
        Duration::from_secs(30),
        "both aggregators own partitions",
        || {
            let owned = stack.owned_partitions();
            Ok(
                (owned[0] > 0.0 && owned[1] > 0.0 && owned[0] + owned[1] == PARTITIONS)
                    .then_some(()),
            )
        },
    )?;

    let load = Load::start(&stack.agent_url()?, LoadOptions::default());
    std::thread::sleep(Duration::from_secs(8));
    let victim_owned = stack.owned_partitions()[0];
    stack.aggregators[0].kill();
    let killed = Instant::now();
    let accepted_at_kill = load.accepted();
    let takeover = eventually(
        Duration::from_secs(20),
        "the survivor owns every partition",
        || Ok((stack.owned_partitions()[1] == PARTITIONS).then(|| killed.elapsed())),
    );
    // Keep the load on for 12 s after the kill whatever happened, then stop it.
    if let Some(left) = Duration::from_secs(12).checked_sub(killed.elapsed()) {
        std::thread::sleep(left);
    }
    let tally = load.stop();
    let takeover = match takeover {
        Ok(takeover) => takeover,
        Err(err) => return Err(err.context(stack.logs(40))),
    };
    let verdict = stack.check_exact(&tally.expected, Duration::from_secs(90))?;
    // Within the lease time: a lease expires after ttl, the survivor renews every ttl/3.
    let bound = LEASE_TTL * 4 / 3 + Duration::from_millis(1_500);
    let extra = [
        ("victim_partitions", format!("{victim_owned}")),
        ("accepted_at_kill", accepted_at_kill.to_string()),
        ("takeover_ms", takeover.as_millis().to_string()),
        ("seconds", started.elapsed().as_secs().to_string()),
    ];
    let outcome = report("aggregator_kill", &tally, &verdict, &extra, || {
        stack.logs(40)
    });
    ensure!(
        takeover <= bound,
        "takeover took {takeover:?}, more than {bound:?} (lease ttl {LEASE_TTL:?})"
    );
    ensure!(
        victim_owned > 0.0,
        "the killed aggregator owned no partition"
    );
    outcome
}
