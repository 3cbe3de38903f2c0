//! The peer workload run in-process through rtdash's aggregation code, as the peers ran it
//! inside their engines: events generated in the process, no parsing, no network.
//!
//! Each worker thread owns a [`PeerGenerator`] and an [`Aggregator`] (the code the edge agent
//! runs). Every `flush_every` events it drains the aggregator's deltas and merges them into
//! its per-window sketches (what the core aggregator does with partials), publishes its
//! maximum event time, and hands the windows the watermark has passed to the [`Closer`]. The
//! watermark is the minimum over the workers of their maximum event time, minus 30 s, as with
//! Flink's per-subtask watermarks. The closer merges the workers' sketches of a window once
//! every worker has passed it and emits the window once: it computes every group's statistics
//! (count, sum, min, max, p99, distinct users) and discards them. A late event whose window
//! has already been emitted is dropped and counted, as the peers drop it.
//!
//! At the end of the bounded input every worker flushes with a final watermark of +∞ (Flink's
//! end-of-input watermark), so every window is emitted inside the measured time.

use super::workload::{
    peer_metric, EventSlot, PeerGenerator, GROUPS, METRIC_NAME, WATERMARK_DELAY_MS, WINDOW_MS,
};
use rtdash_shared::aggregate::Aggregator;
use rtdash_shared::metric::MetricSet;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::Sketch;
use rtdash_shared::time::{now_millis, UnixMillis};
use rtdash_shared::window::window_start;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How event time advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Event time is the wall clock at generation (the peers' `rate`/`datagen` sources).
    Wall,
    /// Event time starts at the wall clock and advances one second per this many events
    /// (over all workers), so that a short bounded run crosses many windows.
    Simulated {
        /// Events per second of event time.
        events_per_sec: u64,
    },
}

/// Parameters of an in-process run.
#[derive(Clone, Debug)]
pub struct InprocessConfig {
    /// Total events to generate (over all workers).
    pub events: u64,
    /// Worker threads.
    pub workers: usize,
    /// Events a worker aggregates between two drains of its deltas.
    pub flush_every: u64,
    /// How event time advances.
    pub clock: Clock,
    /// Base PRNG seed (worker `i` uses `seed + i`).
    pub seed: u64,
    /// Whether rtdash's built-in `events` metric (4 more series per event, which the peers do
    /// not compute) is maintained as well, as every rtdash deployment does; without it the
    /// run computes exactly the peers' aggregation.
    pub builtin_events: bool,
}

/// What an in-process run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InprocessReport {
    /// Worker threads.
    pub workers: usize,
    /// Whether the built-in `events` metric was maintained too (see
    /// [`InprocessConfig::builtin_events`]).
    pub builtin_events: bool,
    /// Events generated and offered to the aggregation.
    pub events: u64,
    /// Wall time from the first event to the last window emitted, in seconds.
    pub seconds: f64,
    /// `events / seconds`.
    pub events_per_sec: f64,
    /// CPU time (user + system) the process used during the run, in seconds.
    pub cpu_seconds: f64,
    /// `events / cpu_seconds`: the cost per event whatever else the machine was running.
    pub events_per_cpu_sec: f64,
    /// Events the generator made late.
    pub late_generated: u64,
    /// Late events dropped because their window had already been emitted.
    pub late_dropped: u64,
    /// Windows emitted.
    pub windows_emitted: u64,
    /// Rows of the peer metric emitted (groups over all windows).
    pub rows_emitted: u64,
    /// Rows of rtdash's built-in `events` metric emitted as well.
    pub builtin_rows_emitted: u64,
    /// Events counted in the emitted rows of the peer metric.
    pub events_emitted: u64,
    /// Most groups in one window (at most 600).
    pub max_groups_per_window: usize,
    /// Sum over emitted rows of the p99 estimates (keeps the computation observable).
    pub p99_checksum: f64,
    /// Sum over emitted rows of the distinct-user estimates.
    pub unique_checksum: u64,
}

/// Sketches of one window, by series.
type WindowState = HashMap<SeriesKey, Sketch>;

/// Merges the workers' closed windows and emits each window once every worker has passed it.
struct Closer {
    state: Mutex<CloserState>,
}

struct CloserState {
    pending: BTreeMap<UnixMillis, WindowState>,
    /// Per worker: every window ending at or before this has been handed over.
    passed: Vec<UnixMillis>,
    report: InprocessReport,
}

impl Closer {
    fn new(workers: usize) -> Self {
        Self {
            state: Mutex::new(CloserState {
                pending: BTreeMap::new(),
                passed: vec![i64::MIN; workers],
                report: InprocessReport::default(),
            }),
        }
    }

    /// Worker `worker` hands over `windows` and promises nothing more for windows ending at
    /// or before `passed_end`.
    fn hand_over(
        &self,
        worker: usize,
        passed_end: UnixMillis,
        windows: BTreeMap<UnixMillis, WindowState>,
    ) {
        let mut guard = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let state = &mut *guard;
        for (start, series) in windows {
            let target = state.pending.entry(start).or_default();
            for (key, sketch) in series {
                match target.get_mut(&key) {
                    Some(existing) => existing.merge(&sketch),
                    None => {
                        target.insert(key, sketch);
                    }
                }
            }
        }
        state.passed[worker] = state.passed[worker].max(passed_end);
        let everyone = state.passed.iter().copied().min().unwrap_or(i64::MIN);
        while let Some(entry) = state.pending.first_entry() {
            if entry.key().saturating_add(WINDOW_MS) > everyone {
                break;
            }
            let window = entry.remove();
            emit(&mut state.report, window);
        }
    }

    fn into_report(self) -> InprocessReport {
        match self.state.into_inner() {
            Ok(state) => state.report,
            Err(poisoned) => poisoned.into_inner().report,
        }
    }
}

/// Emits one window: every group's served statistics, discarded.
fn emit(report: &mut InprocessReport, window: WindowState) {
    report.windows_emitted += 1;
    let mut groups = 0;
    for (key, sketch) in &window {
        let stats = black_box(sketch.stats());
        if key.metric == METRIC_NAME {
            groups += 1;
            report.rows_emitted += 1;
            report.events_emitted += stats.count;
            report.p99_checksum += stats.p99.unwrap_or(0.0);
            report.unique_checksum += stats.unique.unwrap_or(0);
        } else {
            report.builtin_rows_emitted += 1;
        }
    }
    report.max_groups_per_window = report.max_groups_per_window.max(groups);
}

/// Counters one worker keeps.
#[derive(Default)]
struct WorkerCounts {
    late_generated: u64,
    late_dropped: u64,
}

/// Runs the workload; returns when every window has been emitted.
pub fn run(config: &InprocessConfig) -> InprocessReport {
    let workers = config.workers.max(1);
    let metrics = Arc::new(if config.builtin_events {
        MetricSet::new([peer_metric()])
    } else {
        MetricSet::without_builtin([peer_metric()])
    });
    let max_event_time: Arc<Vec<AtomicI64>> =
        Arc::new((0..workers).map(|_| AtomicI64::new(i64::MIN)).collect());
    let closer = Arc::new(Closer::new(workers));
    let start_time = now_millis();
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let counts: Vec<WorkerCounts> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|index| {
                let share = config.events / workers as u64
                    + u64::from((index as u64) < config.events % workers as u64);
                let worker = Worker {
                    index,
                    events: share,
                    workers,
                    flush_every: config.flush_every.max(1),
                    clock: config.clock,
                    start_time,
                    generator: PeerGenerator::new(config.seed.wrapping_add(index as u64)),
                    aggregator: Aggregator::new(Arc::clone(&metrics)),
                    max_event_time: Arc::clone(&max_event_time),
                    closer: Arc::clone(&closer),
                };
                std::thread::Builder::new()
                    .name(format!("peer-worker-{index}"))
                    .spawn_scoped(scope, move || worker.run())
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| handle.ok()?.join().ok())
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = match (cpu_before, process_cpu_seconds()) {
        (Some(before), Some(after)) => after - before,
        _ => 0.0,
    };
    let closer = Arc::into_inner(closer).unwrap_or_else(|| Closer::new(workers));
    let mut report = closer.into_report();
    report.workers = workers;
    report.builtin_events = config.builtin_events;
    report.events = config.events;
    report.seconds = seconds;
    report.events_per_sec = config.events as f64 / seconds.max(1e-9);
    report.cpu_seconds = cpu_seconds;
    report.events_per_cpu_sec = if cpu_seconds > 0.0 {
        config.events as f64 / cpu_seconds
    } else {
        0.0
    };
    for c in counts {
        report.late_generated += c.late_generated;
        report.late_dropped += c.late_dropped;
    }
    report
}

/// User + system CPU time of this process so far (`/proc/self/stat` fields 14 and 15, in
/// Linux's fixed 100 ticks per second); `None` where `/proc` is not available.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

struct Worker {
    index: usize,
    events: u64,
    workers: usize,
    flush_every: u64,
    clock: Clock,
    start_time: UnixMillis,
    generator: PeerGenerator,
    aggregator: Aggregator,
    max_event_time: Arc<Vec<AtomicI64>>,
    closer: Arc<Closer>,
}

/// Events generated per clock read.
const CLOCK_STRIDE: u64 = 256;

impl Worker {
    fn run(mut self) -> WorkerCounts {
        let mut counts = WorkerCounts::default();
        let mut slot = EventSlot::new();
        let mut windows: BTreeMap<UnixMillis, WindowState> = BTreeMap::new();
        let mut max_time = i64::MIN;
        // Events with an event time below this fall into an emitted window.
        let mut closed_before = i64::MIN;
        let mut since_flush = 0u64;
        let mut done = 0u64;
        while done < self.events {
            let now = self.now(done);
            let stride = CLOCK_STRIDE.min(self.events - done);
            for _ in 0..stride {
                let e = self.generator.next_event(now);
                if e.late {
                    counts.late_generated += 1;
                    if e.occurred_at < closed_before {
                        counts.late_dropped += 1;
                        continue;
                    }
                }
                max_time = max_time.max(e.occurred_at);
                self.aggregator.add(slot.fill(&e));
            }
            done += stride;
            since_flush += stride;
            if since_flush >= self.flush_every {
                since_flush = 0;
                self.drain_into(&mut windows);
                self.max_event_time[self.index].store(max_time, Ordering::Release);
                let slowest = self
                    .max_event_time
                    .iter()
                    .map(|t| t.load(Ordering::Acquire))
                    .min()
                    .unwrap_or(i64::MIN);
                if slowest != i64::MIN {
                    let watermark = slowest - WATERMARK_DELAY_MS;
                    closed_before = closed_before.max(window_start(watermark, WINDOW_MS));
                    self.close(&mut windows, watermark);
                }
            }
        }
        self.drain_into(&mut windows);
        self.max_event_time[self.index].store(i64::MAX, Ordering::Release);
        self.close(&mut windows, i64::MAX);
        counts
    }

    fn now(&self, done: u64) -> UnixMillis {
        match self.clock {
            Clock::Wall => now_millis(),
            Clock::Simulated { events_per_sec } => {
                let global = done.saturating_mul(self.workers as u64);
                self.start_time + (global.saturating_mul(1000) / events_per_sec.max(1)) as i64
            }
        }
    }

    /// Merges the aggregator's deltas into the open windows.
    fn drain_into(&mut self, windows: &mut BTreeMap<UnixMillis, WindowState>) {
        for entry in self.aggregator.drain() {
            let series = windows.entry(entry.window_start).or_default();
            match series.get_mut(&entry.series) {
                Some(sketch) => sketch.merge(&entry.sketch),
                None => {
                    series.insert(entry.series, entry.sketch);
                }
            }
        }
    }

    /// Hands the windows that `watermark` has passed to the closer.
    fn close(&mut self, windows: &mut BTreeMap<UnixMillis, WindowState>, watermark: UnixMillis) {
        // Windows [s, s + W) with s + W <= watermark are closed: s < window_start(watermark)
        // (or every window for the final watermark).
        let closed = if watermark == i64::MAX {
            std::mem::take(windows)
        } else {
            let boundary = window_start(watermark, WINDOW_MS);
            let open = windows.split_off(&boundary);
            std::mem::replace(windows, open)
        };
        if watermark != i64::MAX {
            self.aggregator
                .forget_windows_before(window_start(watermark, WINDOW_MS));
        }
        self.closer.hand_over(self.index, watermark, closed);
    }
}

/// Groups per window the workload produces (for reports).
pub const EXPECTED_GROUPS: usize = GROUPS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_emitted_or_dropped_and_groups_are_complete() {
        let config = InprocessConfig {
            events: 400_000,
            workers: 2,
            flush_every: 10_000,
            // 10,000 events per second of event time: 40 s of event time per run... make it
            // cross several windows.
            clock: Clock::Simulated {
                events_per_sec: 1_000,
            },
            seed: 42,
            builtin_events: true,
        };
        let report = run(&config);
        assert_eq!(report.events, 400_000);
        assert_eq!(
            report.events_emitted + report.late_dropped,
            report.events,
            "{report:?}"
        );
        assert!(report.windows_emitted >= 6, "{report:?}");
        assert_eq!(report.max_groups_per_window, EXPECTED_GROUPS);
        assert!(report.late_dropped > 0, "{report:?}");
        // Only a small share of the 5 % late events lands in an emitted window.
        assert!(
            report.late_dropped < report.late_generated / 2,
            "{report:?}"
        );
    }

    #[test]
    fn without_the_builtin_metric_only_the_peer_rows_are_emitted() {
        let config = InprocessConfig {
            events: 100_000,
            workers: 2,
            flush_every: 10_000,
            clock: Clock::Simulated {
                events_per_sec: 1_000,
            },
            seed: 7,
            builtin_events: false,
        };
        let report = run(&config);
        assert!(!report.builtin_events);
        assert_eq!(report.builtin_rows_emitted, 0);
        assert_eq!(report.max_groups_per_window, EXPECTED_GROUPS);
        assert_eq!(
            report.events_emitted + report.late_dropped,
            report.events,
            "{report:?}"
        );
    }
}
