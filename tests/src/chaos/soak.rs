//! The soak driver: starts the [`ChaosStack`], defines the metric and the alert rule, runs
//! the load while the [`Schedule`] injects its faults (measuring each one's recovery), then
//! checks every window against the oracle and every alert transition against the receiver,
//! and reports ([`SoakReport::render`]).
//!
//! Recovery of a fault: the time from its injection until the deployment is whole again:
//! every component ready, every partition owned, every agent answering `202` again, and a
//! window that ended after the restart (or resume) stored final, i.e. new events went all
//! the way through.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::alerts::{check_deliveries, published_transitions, AlertCheck};
use super::load::{ChaosLoad, LoadOptions, LoadTally};
use super::oracle::{check, fetch, OracleCheck};
use super::sampler::{ProcessStats, Sampler, SAMPLE_EVERY};
use super::schedule::{Action, Fault, Schedule, ScheduleOptions};
use super::stack::{soak_stack_options, ChaosStack};
use super::PARTITIONS;
use crate::time::{format_rfc3339, now_millis};
use crate::webhook::Receiver;

/// How a soak runs.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// Seed of the schedule and of the values.
    pub seed: u64,
    /// The fault schedule's settings (its `duration` is the load's).
    pub schedule: ScheduleOptions,
    /// The load's settings.
    pub load: LoadOptions,
    /// How long the end check waits for every window to be final and exact.
    pub settle: Duration,
    /// How long a fault may take to recover before it counts as not recovered.
    pub recovery_timeout: Duration,
    /// The alert rule's threshold (count per window of the alert series).
    pub alert_threshold: f64,
}

impl SoakOptions {
    /// A soak of `duration` with `seed`: faults every 20-60 s, 1,000 events/s per agent.
    pub fn new(duration: Duration, seed: u64) -> Self {
        Self {
            seed,
            schedule: ScheduleOptions::new(duration),
            load: LoadOptions {
                seed,
                ..LoadOptions::default()
            },
            settle: Duration::from_secs(240),
            recovery_timeout: Duration::from_secs(180),
            alert_threshold: 20.0,
        }
    }
}

/// What happened to one fault.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    /// The fault.
    pub fault: Fault,
    /// When it was injected, from the start of the load.
    pub injected: Duration,
    /// From injection until the component was back (restarted and ready, or resumed).
    pub restored: Option<Duration>,
    /// From injection until the deployment was whole again (see the module docs).
    pub recovered: Option<Duration>,
    /// Why it was not restored, if it was not.
    pub error: Option<String>,
}

/// Everything a soak measured.
#[derive(Clone, Debug)]
pub struct SoakReport {
    /// The seed.
    pub seed: u64,
    /// Length of the load.
    pub duration: Duration,
    /// Wall-clock start of the load (ms since the epoch): maps the times of the schedule to
    /// the windows.
    pub load_started_ms: i64,
    /// The faults, as injected.
    pub faults: Vec<FaultRecord>,
    /// The receiver's outages.
    pub webhook_outages: Vec<(Duration, Duration)>,
    /// What the load did.
    pub load: LoadTally,
    /// The windows against the oracle.
    pub oracle: OracleCheck,
    /// How long after the load stopped every window was final and exact.
    pub settled_after: Duration,
    /// The alert transitions against the receiver.
    pub alerts: AlertCheck,
    /// RSS and descriptors per process.
    pub processes: Vec<ProcessStats>,
    /// The whole run, setup and checks included.
    pub elapsed: Duration,
}

impl SoakReport {
    /// Exact windows, nothing lost or doubled, every request answered as expected, every
    /// fault recovered, every alert transition delivered once (or superseded).
    pub fn pass(&self) -> bool {
        self.oracle.exact
            && self.oracle.lost == 0
            && self.oracle.duplicated == 0
            && self.load.rejected == 0
            && self.load.given_up == 0
            && self.load.accepted > 0
            && self.faults.iter().all(|f| f.recovered.is_some())
            && self.alerts.pass()
    }

    /// `CHAOS-RESULT key=value ... pass|FAIL`, one line for scripts.
    pub fn result_line(&self) -> String {
        let recoveries: Vec<Duration> = self.faults.iter().filter_map(|f| f.recovered).collect();
        let max_recovery = recoveries.iter().max().copied().unwrap_or_default();
        format!(
            "CHAOS-RESULT seed={:#x} minutes={:.1} faults={} recovered={} max_recovery_s={:.1} \
             accepted={} unknown={} windows={} lost={} duplicated={} transitions={} \
             delivered_once={} superseded={} duplicate_deliveries={} missing_deliveries={} {}",
            self.seed,
            self.duration.as_secs_f64() / 60.0,
            self.faults.len(),
            recoveries.len(),
            max_recovery.as_secs_f64(),
            self.load.accepted,
            self.load.unknown.len(),
            self.oracle.windows,
            self.oracle.lost,
            self.oracle.duplicated,
            self.alerts.notifying,
            self.alerts.delivered_once,
            self.alerts.superseded,
            self.alerts.duplicates,
            self.alerts.missing,
            if self.pass() { "pass" } else { "FAIL" }
        )
    }

    /// The human-readable report: schedule with recovery times, load, windows, alerts,
    /// processes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
        let clock = |d: Duration| format!("{:02}:{:02}", d.as_secs() / 60, d.as_secs() % 60);
        let _ = writeln!(
            out,
            "chaos soak: seed {:#x}, load {}, {} faults, run {} in all",
            self.seed,
            clock(self.duration),
            self.faults.len(),
            clock(self.elapsed)
        );
        let _ = writeln!(
            out,
            "\nschedule (time from the start of the load, {}):",
            format_rfc3339(self.load_started_ms)
        );
        let _ = writeln!(
            out,
            "  {:>3}  {:>5}  {:<13} {:<28} {:>9} {:>10}",
            "#", "at", "component", "fault", "restored", "recovered"
        );
        for (i, record) in self.faults.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:>3}  {:>5}  {:<13} {:<28} {:>9} {:>10}{}",
                i + 1,
                clock(record.injected),
                record.fault.target.to_string(),
                record.fault.action.to_string(),
                record.restored.map_or("-".to_owned(), secs),
                record.recovered.map_or("NOT".to_owned(), secs),
                record
                    .error
                    .as_deref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
        }
        for (start, length) in &self.webhook_outages {
            let _ = writeln!(
                out,
                "  webhook receiver answers 503 from {} for {}",
                clock(*start),
                secs(*length)
            );
        }
        let mut by_kind: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
        for record in &self.faults {
            if let Some(recovered) = record.recovered {
                by_kind
                    .entry(record.fault.target.kind())
                    .or_default()
                    .push(recovered);
            }
        }
        let _ = writeln!(out, "\nrecovery per kind of component (median / max):");
        for (kind, mut times) in by_kind {
            times.sort();
            let _ = writeln!(
                out,
                "  {kind:<11} {:>2} faults  {:>7} / {:>7}",
                times.len(),
                secs(times[times.len() / 2]),
                secs(*times.last().expect("one"))
            );
        }
        let load = &self.load;
        let taken = self.oracle.unknown_taken;
        let _ = writeln!(
            out,
            "\nload: {} events sent in {} requests answered 202 ({} late), {} accepted; {} \
             attempts refused and retried (429/503/connection refused); {} requests without an \
             answer (agent killed mid-request: {} found stored whole, {} not stored); {} given \
             up; {} rejected{}",
            load.sent,
            load.requests,
            load.late_requests,
            load.accepted,
            load.retried,
            load.unknown.len(),
            taken,
            self.oracle.unknown_not_taken,
            load.given_up,
            load.rejected,
            load.rejected_example
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        let oracle = &self.oracle;
        let _ = writeln!(
            out,
            "windows: {} windows, {} window series (totals included); expected {} events, \
             stored {}; lost = {}, duplicated = {}; every window final and exact \
             (count/sum/min/max exact, distinct and percentiles within bounds): {} (settled {} \
             after the load stopped){}",
            oracle.windows,
            oracle.cells,
            oracle.expected,
            oracle.stored,
            oracle.lost,
            oracle.duplicated,
            if oracle.exact { "yes" } else { "NO" },
            secs(self.settled_after),
            if oracle.exact {
                String::new()
            } else {
                format!("\n  {}", oracle.detail)
            }
        );
        let alerts = &self.alerts;
        let _ = writeln!(
            out,
            "alerts: {} transitions published, {} notifying ({} firing, {} resolved): {} \
             delivered exactly once, {} superseded by a newer one of their alert (not sent, by \
             design), {} duplicated, {} missing, {} out of order, {} unknown; the receiver got \
             {} requests, {} of them failed on purpose",
            alerts.transitions,
            alerts.notifying,
            alerts.firing,
            alerts.resolved,
            alerts.delivered_once,
            alerts.superseded,
            alerts.duplicates,
            alerts.missing,
            alerts.out_of_order,
            alerts.unknown,
            alerts.requests,
            alerts.failed_answers
        );
        let _ = writeln!(
            out,
            "\nprocesses (sampled every {} s; RSS MiB and open fds: first / last / max):",
            SAMPLE_EVERY.as_secs()
        );
        for p in &self.processes {
            let _ = writeln!(
                out,
                "  {:<13} {:>4} samples {:>2} restarts  RSS {:>7.1} / {:>7.1} / {:>7.1}  fds {:>4} / {:>4} / {:>4}",
                p.name,
                p.samples,
                p.restarts,
                p.rss_mib.0,
                p.rss_mib.1,
                p.rss_mib.2,
                p.fds.0,
                p.fds.1,
                p.fds.2
            );
        }
        let _ = writeln!(out, "\n{}", self.result_line());
        out
    }
}

/// The running soak.
struct Run {
    stack: ChaosStack,
    receiver: Receiver,
    sampler: Sampler,
    outages: Vec<(Duration, Duration)>,
    load: Option<ChaosLoad>,
    started: Instant,
    last_sample: Option<Instant>,
}

impl Run {
    /// Samples when due and sets the receiver's answer for the current time.
    fn tick(&mut self) {
        if self
            .last_sample
            .is_none_or(|at| at.elapsed() >= SAMPLE_EVERY)
        {
            self.sampler.sample(&self.stack);
            self.last_sample = Some(Instant::now());
        }
        let now = self.started.elapsed();
        let failing = self
            .outages
            .iter()
            .any(|(start, length)| now >= *start && now < *start + *length);
        self.receiver.answer(if failing { 503 } else { 200 });
    }

    fn sleep_until(&mut self, at: Instant) {
        loop {
            self.tick();
            let now = Instant::now();
            if now >= at {
                return;
            }
            std::thread::sleep((at - now).min(Duration::from_millis(250)));
        }
    }

    /// Whether the deployment is whole again after a restore at `restored_at`
    /// (`restored_ms` on the wall clock).
    fn whole(&mut self, restored_at: Instant, restored_ms: i64) -> bool {
        for component in self.stack.components() {
            if !self.stack.ready(component) {
                return false;
            }
        }
        if self.stack.owned_partitions() != f64::from(PARTITIONS) {
            return false;
        }
        let load = self.load.as_ref().expect("the load runs");
        if !(0..self.stack.agents.len()).all(|agent| load.accepted_since(agent, restored_at)) {
            return false;
        }
        matches!(self.stack.newest_final_window_end(), Ok(Some(end)) if end >= restored_ms)
    }

    fn inject(&mut self, fault: Fault, timeout: Duration) -> FaultRecord {
        let injected_at = Instant::now();
        let mut record = FaultRecord {
            fault,
            injected: self.started.elapsed(),
            restored: None,
            recovered: None,
            error: None,
        };
        let target = fault.target;
        eprintln!(
            "chaos: {:>6.1} s  {target}: {}",
            record.injected.as_secs_f64(),
            fault.action
        );
        match fault.action {
            Action::Kill { down } => {
                self.stack.kill(target);
                self.sleep_until(injected_at + down);
                let mut last_error = None;
                for _ in 0..3 {
                    match self.stack.restart(target) {
                        Ok(()) => {
                            last_error = None;
                            break;
                        }
                        Err(err) => {
                            eprintln!("chaos: restarting {target} failed: {err:#}");
                            last_error = Some(format!("{err:#}"));
                        }
                    }
                }
                if let Some(err) = last_error {
                    record.error = Some(err.lines().next().unwrap_or_default().to_owned());
                    return record;
                }
            }
            Action::Pause { paused } => {
                if let Err(err) = self.stack.signal(target, libc::SIGSTOP) {
                    record.error = Some(format!("{err:#}"));
                    return record;
                }
                self.sleep_until(injected_at + paused);
                if let Err(err) = self.stack.signal(target, libc::SIGCONT) {
                    record.error = Some(format!("{err:#}"));
                    return record;
                }
            }
        }
        let restored_at = Instant::now();
        let restored_ms = now_millis();
        record.restored = Some(restored_at - injected_at);
        let deadline = restored_at + timeout;
        while Instant::now() < deadline {
            self.tick();
            if self.whole(restored_at, restored_ms) {
                record.recovered = Some(injected_at.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!(
            "chaos: {target}: restored after {:?}, recovered after {:?}",
            record.restored, record.recovered
        );
        record
    }
}

/// Runs one soak (see the module docs); fails only when the deployment cannot be set up.
pub fn run_soak(options: &SoakOptions) -> anyhow::Result<SoakReport> {
    let run_started = Instant::now();
    let schedule = Schedule::draw(options.seed, &options.schedule);
    let duration = options.schedule.duration;
    eprintln!(
        "chaos: seed {:#x}, load {} s, {} faults scheduled",
        options.seed,
        duration.as_secs(),
        schedule.faults.len()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let receiver = runtime.block_on(Receiver::start());
    let stack = ChaosStack::start(soak_stack_options(), 2, 2, 2).context("start the deployment")?;
    stack.define_metric()?;
    stack.define_alert(options.alert_threshold, &receiver.url("hook"))?;
    let urls = stack.cluster.urls();
    let operator = stack.cluster.operator();
    let load_started_ms = now_millis();
    let load = ChaosLoad::start(&stack.agent_urls(), &options.load);
    let mut run = Run {
        stack,
        receiver,
        sampler: Sampler::default(),
        outages: schedule.webhook_outages.clone(),
        load: Some(load),
        started: Instant::now(),
        last_sample: None,
    };
    let mut faults = Vec::new();
    for fault in &schedule.faults {
        let at = run.started + fault.at;
        run.sleep_until(at);
        faults.push(run.inject(*fault, options.recovery_timeout));
    }
    run.sleep_until(run.started + duration);
    let tally = run.load.take().expect("the load runs").stop();
    run.receiver.answer(200);
    eprintln!(
        "chaos: load stopped: {} events accepted; checking every window",
        tally.accepted
    );

    let stopped = Instant::now();
    let mut oracle = OracleCheck::default();
    while stopped.elapsed() < options.settle {
        run.tick();
        let rows = run
            .stack
            .db
            .wait_wal_applied(&run.stack.table, Duration::from_secs(30))
            .and_then(|()| fetch(&run.stack.db, &run.stack.table));
        if let Ok(rows) = rows {
            oracle = check(&rows, &tally.certain, &tally.unknown);
            if oracle.exact {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let settled_after = stopped.elapsed();

    let alerts_from = Instant::now();
    let mut alerts = AlertCheck::default();
    while alerts_from.elapsed() < Duration::from_secs(120) {
        run.tick();
        if let Ok(transitions) = runtime.block_on(published_transitions(&urls, &operator)) {
            alerts = check_deliveries(&transitions, &run.receiver.requests());
            if alerts.missing == 0 && alerts.notifying > 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    run.sampler.sample(&run.stack);
    let report = SoakReport {
        seed: options.seed,
        duration,
        load_started_ms,
        faults,
        webhook_outages: schedule.webhook_outages,
        load: tally,
        oracle,
        settled_after,
        alerts,
        processes: run.sampler.stats(),
        elapsed: run_started.elapsed(),
    };
    if !report.pass() {
        eprintln!("chaos: FAILED; service logs:\n{}", run.stack.logs(60));
    }
    Ok(report)
}
