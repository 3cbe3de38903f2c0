//! The open-loop sender shared by `load` and `peer --mode http`.
//!
//! Open loop: batch `i` is due at `start + i × batch_size / rate`, whatever happened to the
//! batches before it. `connections` tasks each take the next batch number, wait until it is
//! due, build it and send it. When the agent (or this generator) cannot keep up, batches go
//! out late: the *lag* (how far behind its due time a batch left) grows and is reported, with
//! the achieved rate next to the target; the generator never quietly lowers its rate. Latency
//! is measured twice: from sending (service time) and from the due time (what a producer
//! that had to wait would see, free of coordinated omission).
//!
//! Closed loop (`rate` = none): every task sends its next batch as soon as the previous one
//! was answered, which measures the highest rate the agent accepts with `connections`
//! requests in flight.
//!
//! Overload answers (`429`/`503`) are counted, not retried: a retry would turn the open loop
//! into a closed one.

use crate::agent::{AgentClient, BodyFormat, Outcome};
use crate::stats::{Samples, Summary};
use bytes::Bytes;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something that produces request bodies.
pub trait BatchSource: Send + 'static {
    /// The next body and the number of events in it; `None` when the source is exhausted.
    fn next_batch(&mut self) -> Option<(Bytes, u64)>;
}

/// Parameters of a run.
#[derive(Clone, Debug)]
pub struct OpenLoopConfig {
    /// Target events per second; `None` for closed loop.
    pub rate: Option<f64>,
    /// Events per batch (for the schedule; sources decide the real count).
    pub batch_size: usize,
    /// How long to send.
    pub duration: Duration,
    /// Concurrent requests (one per connection).
    pub connections: usize,
    /// Body encoding.
    pub format: BodyFormat,
    /// Interval of the progress lines on stderr (`None`: quiet).
    pub progress: Option<Duration>,
}

/// What a run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpenLoopReport {
    /// Target events per second (0 for closed loop).
    pub target_rate: f64,
    /// Wall time from the first due time until the last answer, in seconds.
    pub elapsed_s: f64,
    /// Requests sent.
    pub requests: u64,
    /// Events in the requests sent.
    pub events_sent: u64,
    /// Events the agent accepted.
    pub accepted: u64,
    /// Events the agent rejected (validation).
    pub rejected: u64,
    /// Requests answered 429/503.
    pub overloaded_requests: u64,
    /// Events in those requests (not taken).
    pub overloaded_events: u64,
    /// Requests that failed (transport error or unexpected status).
    pub failed_requests: u64,
    /// Events sent per second of the sending span (from the start to the last send, at least
    /// the configured duration).
    pub offered_rate: f64,
    /// Events accepted per second of the sending span.
    pub accepted_rate: f64,
    /// Request latency from sending.
    pub latency: Summary,
    /// Request latency from the due time.
    pub latency_from_due: Summary,
    /// Largest lag of a batch behind its due time, in milliseconds.
    pub max_lag_ms: f64,
    /// Lag of the last batch sent, in milliseconds.
    pub final_lag_ms: f64,
    /// Whether the run fell behind its schedule (final lag above 1 s, or less than 95 % of the
    /// target sent).
    pub fell_behind: bool,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    events_sent: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    overloaded_requests: AtomicU64,
    overloaded_events: AtomicU64,
    failed_requests: AtomicU64,
    lag_us: AtomicU64,
    max_lag_us: AtomicU64,
    /// Microseconds from the start to the latest send.
    last_send_us: AtomicU64,
    /// A source ran out of batches (a replayed file ended) before the deadline.
    exhausted: AtomicBool,
}

struct TaskResult {
    latency: Samples,
    latency_from_due: Samples,
}

/// Runs the sender; `make_source(i)` builds the source of task `i`.
pub async fn run<S, F>(agent: AgentClient, config: OpenLoopConfig, make_source: F) -> OpenLoopReport
where
    S: BatchSource,
    F: Fn(usize) -> S,
{
    let counters = Arc::new(Counters::default());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(50);
    let deadline = start + config.duration;
    let interval = config
        .rate
        .filter(|r| *r > 0.0)
        .map(|rate| Duration::from_secs_f64(config.batch_size.max(1) as f64 / rate));
    let mut tasks = Vec::with_capacity(config.connections);
    for index in 0..config.connections.max(1) {
        let task = Task {
            agent: agent.clone(),
            source: make_source(index),
            counters: Arc::clone(&counters),
            next: Arc::clone(&next),
            start,
            deadline,
            interval,
            format: config.format,
        };
        tasks.push(tokio::spawn(task.run()));
    }
    let progress = config.progress.map(|every| {
        tokio::spawn(progress_loop(
            Arc::clone(&counters),
            every,
            start,
            deadline,
            config.rate,
        ))
    });
    let mut latency = Samples::new();
    let mut latency_from_due = Samples::new();
    for task in tasks {
        match task.await {
            Ok(result) => {
                latency.extend(result.latency);
                latency_from_due.extend(result.latency_from_due);
            }
            Err(err) => tracing::error!(%err, "sender task failed"),
        }
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let c = &counters;
    let events_sent = c.events_sent.load(Ordering::Relaxed);
    let accepted = c.accepted.load(Ordering::Relaxed);
    let target_rate = config.rate.unwrap_or(0.0);
    let final_lag_ms = c.lag_us.load(Ordering::Relaxed) as f64 / 1000.0;
    // Over the sending span: on schedule it is the configured duration; behind schedule the
    // last batches leave after it, and the rate comes out below the target.
    let exhausted = c.exhausted.load(Ordering::Relaxed);
    let last_send = c.last_send_us.load(Ordering::Relaxed) as f64 / 1e6;
    let send_span = if exhausted {
        last_send
    } else {
        last_send.max(config.duration.as_secs_f64())
    }
    .max(1e-3);
    let offered_rate = events_sent as f64 / send_span;
    OpenLoopReport {
        target_rate,
        elapsed_s: elapsed,
        requests: c.requests.load(Ordering::Relaxed),
        events_sent,
        accepted,
        rejected: c.rejected.load(Ordering::Relaxed),
        overloaded_requests: c.overloaded_requests.load(Ordering::Relaxed),
        overloaded_events: c.overloaded_events.load(Ordering::Relaxed),
        failed_requests: c.failed_requests.load(Ordering::Relaxed),
        offered_rate,
        accepted_rate: accepted as f64 / send_span,
        latency: latency.summary(),
        latency_from_due: latency_from_due.summary(),
        max_lag_ms: c.max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0,
        final_lag_ms,
        fell_behind: target_rate > 0.0
            && (final_lag_ms > 1000.0 || (!exhausted && offered_rate < 0.95 * target_rate)),
    }
}

struct Task<S> {
    agent: AgentClient,
    source: S,
    counters: Arc<Counters>,
    next: Arc<AtomicU64>,
    start: Instant,
    deadline: Instant,
    interval: Option<Duration>,
    format: BodyFormat,
}

impl<S: BatchSource> Task<S> {
    async fn run(mut self) -> TaskResult {
        let mut result = TaskResult {
            latency: Samples::new(),
            latency_from_due: Samples::new(),
        };
        tokio::time::sleep_until(self.start.into()).await;
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let due = match self.interval {
                Some(interval) => self.start + interval.mul_f64(index as f64),
                None => Instant::now(),
            };
            if due >= self.deadline {
                break;
            }
            let now = Instant::now();
            if due > now {
                tokio::time::sleep_until(due.into()).await;
            } else if self.interval.is_some() {
                let lag = u64::try_from((now - due).as_micros()).unwrap_or(u64::MAX);
                self.counters.lag_us.store(lag, Ordering::Relaxed);
                self.counters.max_lag_us.fetch_max(lag, Ordering::Relaxed);
            }
            let Some((body, items)) = self.source.next_batch() else {
                self.counters.exhausted.store(true, Ordering::Relaxed);
                break;
            };
            let sent = Instant::now();
            self.counters.last_send_us.fetch_max(
                u64::try_from((sent - self.start).as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            let outcome = self.agent.post(body, self.format, items).await;
            let answered = Instant::now();
            let c = &self.counters;
            c.requests.fetch_add(1, Ordering::Relaxed);
            c.events_sent.fetch_add(items, Ordering::Relaxed);
            match outcome {
                Ok(Outcome::Judged { accepted, rejected }) => {
                    c.accepted.fetch_add(accepted, Ordering::Relaxed);
                    c.rejected.fetch_add(rejected, Ordering::Relaxed);
                    result.latency.record(answered - sent);
                    result.latency_from_due.record(answered - due.min(sent));
                }
                Ok(Outcome::Overloaded { .. }) => {
                    c.overloaded_requests.fetch_add(1, Ordering::Relaxed);
                    c.overloaded_events.fetch_add(items, Ordering::Relaxed);
                }
                Ok(Outcome::Failed { status }) => {
                    c.failed_requests.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(status, "edge agent answered with an unexpected status");
                }
                Err(err) => {
                    c.failed_requests.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%err, "request to the edge agent failed");
                    // Do not spin on a dead agent.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        result
    }
}

async fn progress_loop(
    counters: Arc<Counters>,
    every: Duration,
    start: Instant,
    deadline: Instant,
    rate: Option<f64>,
) {
    tokio::time::sleep_until(start.into()).await;
    let mut last_sent = 0u64;
    let mut last_accepted = 0u64;
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let now = Instant::now();
        if now > deadline + Duration::from_secs(1) {
            return;
        }
        let secs = (now - last).as_secs_f64().max(1e-9);
        let sent = counters.events_sent.load(Ordering::Relaxed);
        let accepted = counters.accepted.load(Ordering::Relaxed);
        let lag_ms = counters.lag_us.load(Ordering::Relaxed) as f64 / 1000.0;
        let sent_rate = (sent - last_sent) as f64 / secs;
        let accepted_rate = (accepted - last_accepted) as f64 / secs;
        match rate {
            Some(target) => {
                let behind = lag_ms > 1000.0 || sent_rate < 0.95 * target;
                eprintln!(
                    "[{:>5.0} s] sent {sent_rate:>10.0}/s (target {target:.0}/s), accepted {accepted_rate:>10.0}/s, lag {lag_ms:.0} ms{}",
                    (now - start).as_secs_f64(),
                    if behind { "  FALLING BEHIND" } else { "" }
                );
            }
            None => eprintln!(
                "[{:>5.0} s] sent {sent_rate:>10.0}/s, accepted {accepted_rate:>10.0}/s (closed loop)",
                (now - start).as_secs_f64()
            ),
        }
        last_sent = sent;
        last_accepted = accepted;
        last = now;
    }
}

/// Prints a report in the human-readable form.
pub fn print_report(title: &str, r: &OpenLoopReport) {
    println!("{title}");
    if r.target_rate > 0.0 {
        println!(
            "  target            {:>12.0} events/s (open loop)",
            r.target_rate
        );
    } else {
        println!("  target                  closed loop (as fast as answered)");
    }
    println!(
        "  sent              {:>12.0} events/s  ({} events in {} requests, {:.1} s)",
        r.offered_rate, r.events_sent, r.requests, r.elapsed_s
    );
    println!(
        "  accepted          {:>12.0} events/s  ({} accepted, {} rejected)",
        r.accepted_rate, r.accepted, r.rejected
    );
    println!(
        "  overloaded        {:>12} requests (429/503, {} events not taken); {} failed",
        r.overloaded_requests, r.overloaded_events, r.failed_requests
    );
    println!("  request latency   {}", r.latency);
    if r.target_rate > 0.0 {
        println!("  from due time     {}", r.latency_from_due);
        println!(
            "  lag               max {:.0} ms, at end {:.0} ms{}",
            r.max_lag_ms,
            r.final_lag_ms,
            if r.fell_behind {
                "  -- FELL BEHIND: the target rate was not sustained"
            } else {
                ""
            }
        );
    }
}
