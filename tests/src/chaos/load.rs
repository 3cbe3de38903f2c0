//! The soak's producers: per edge agent, threads posting steady batches of the soak metric
//! over HTTP, some of them late (`occurred_at` seconds in the past, so they land in closed
//! windows as corrections), plus the alert series' square wave; every batch's contribution
//! kept exactly.
//!
//! Outcomes of a request: `202` with every event accepted -> certain; `429`/`503`/connection
//! refused -> nothing was taken, retried with the same events (up to `give_up`); no answer
//! (the agent was killed or the connection broke) -> unknown, kept with its contribution for
//! the oracle to resolve (see `oracle.rs`), not retried; anything else -> counted as
//! rejected (the run fails).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::oracle::{Cell, CellKey, Unknown};
use super::{ALERT_KEY, EVENT_TYPE, KEYS, MAX_VALUE, TENANT, UNIQUES, WINDOW_MS};
use crate::http;
use crate::time::{format_rfc3339, now_millis, window_start};

/// How the load posts.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Events per second per agent (steady series; the alert series comes on top).
    pub rate_per_agent: u64,
    /// Steady events per request.
    pub batch: u64,
    /// Posting threads per agent.
    pub threads_per_agent: usize,
    /// Fraction of requests that are late.
    pub late_fraction: f64,
    /// How late a late request is: uniform in this range (ms).
    pub late_ms: (i64, i64),
    /// Half period of the alert series' square wave (ms): high, then low.
    pub alert_half_period_ms: i64,
    /// How long a request is retried on `429`/`503`/refused before it counts as given up.
    pub give_up: Duration,
    /// Seed of the values.
    pub seed: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            rate_per_agent: 1_000,
            batch: 100,
            threads_per_agent: 2,
            late_fraction: 0.1,
            late_ms: (3_000, 20_000),
            alert_half_period_ms: 30_000,
            give_up: Duration::from_secs(180),
            seed: 1,
        }
    }
}

/// Alert events per request: in the high half of the wave every request carries this many.
pub const ALERT_HIGH_PER_REQUEST: u64 = 2;

/// What the load did.
#[derive(Clone, Debug, Default)]
pub struct LoadTally {
    /// Events posted (each once, however often retried).
    pub sent: u64,
    /// Events in `202` answers.
    pub accepted: u64,
    /// Requests answered `202`.
    pub requests: u64,
    /// Late requests answered `202`.
    pub late_requests: u64,
    /// Attempts answered `429`/`503` or refused, and retried.
    pub retried: u64,
    /// Requests given up after `give_up` of refusals.
    pub given_up: u64,
    /// Requests answered with another status (must stay 0).
    pub rejected: u64,
    /// The first unexpected answer.
    pub rejected_example: Option<String>,
    /// Requests without an answer, with what they carried.
    pub unknown: Vec<Unknown>,
    /// The first unknown outcome's error.
    pub unknown_example: Option<String>,
    /// Exact aggregates of the acknowledged events.
    pub certain: BTreeMap<CellKey, Cell>,
}

/// The producers of every agent.
pub struct ChaosLoad {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<LoadTally>>,
    /// Per agent: when it last answered `202`.
    last_accepted: Arc<Vec<Mutex<Option<Instant>>>>,
    threads: Vec<JoinHandle<()>>,
}

impl ChaosLoad {
    /// Starts posting to every agent of `agent_urls` (`http://...`).
    pub fn start(agent_urls: &[String], options: &LoadOptions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(LoadTally::default()));
        let last_accepted = Arc::new(agent_urls.iter().map(|_| Mutex::new(None)).collect());
        let mut threads = Vec::new();
        for (agent, url) in agent_urls.iter().enumerate() {
            for thread in 0..options.threads_per_agent {
                let poster = Poster {
                    url: format!("{url}/v1/events"),
                    source: format!("chaos-{}-{thread}", agent + 1),
                    agent,
                    options: options.clone(),
                    rng: SmallRng::seed_from_u64(
                        options.seed ^ ((agent as u64) << 32 | thread as u64),
                    ),
                    stop: stop.clone(),
                    tally: tally.clone(),
                    last_accepted: Arc::clone(&last_accepted),
                };
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("chaos-load-{}-{thread}", agent + 1))
                        .spawn(move || poster.run())
                        .expect("spawn a load thread"),
                );
            }
        }
        Self {
            stop,
            tally,
            last_accepted,
            threads,
        }
    }

    /// Whether agent `agent` (0-based) answered `202` after `since`.
    pub fn accepted_since(&self, agent: usize, since: Instant) -> bool {
        self.last_accepted[agent]
            .lock()
            .expect("last accepted")
            .is_some_and(|at| at >= since)
    }

    /// Events accepted so far.
    pub fn accepted(&self) -> u64 {
        self.tally.lock().expect("tally").accepted
    }

    /// Stops after the requests in progress (retries included) and returns the tally.
    pub fn stop(mut self) -> LoadTally {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.tally.lock().expect("tally").clone()
    }
}

impl Drop for ChaosLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One posting thread.
struct Poster {
    url: String,
    source: String,
    agent: usize,
    options: LoadOptions,
    rng: SmallRng,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<LoadTally>>,
    last_accepted: Arc<Vec<Mutex<Option<Instant>>>>,
}

/// How one attempt ended.
enum Attempt {
    Accepted(u64),
    Refused,
    Unknown(String),
    Rejected(String),
}

impl Poster {
    fn run(mut self) {
        let http = http::client(Duration::from_secs(90));
        let per_thread =
            (self.options.rate_per_agent / self.options.threads_per_agent as u64).max(1);
        let interval = Duration::from_secs_f64(self.options.batch as f64 / per_thread as f64);
        let started = Instant::now();
        let mut n: u32 = 0;
        while !self.stop.load(Ordering::SeqCst) {
            let due = started + interval * n;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            n += 1;
            let (body, events, cells, window, late) = self.request(n);
            self.tally.lock().expect("tally").sent += events;
            let first_try = Instant::now();
            loop {
                let attempt = post(&http, &self.url, &body);
                let mut tally = self.tally.lock().expect("tally");
                match attempt {
                    Attempt::Accepted(accepted) if accepted == events => {
                        tally.accepted += accepted;
                        tally.requests += 1;
                        tally.late_requests += u64::from(late);
                        for (k, cell) in &cells {
                            tally
                                .certain
                                .entry((window, k.clone()))
                                .or_default()
                                .merge(cell);
                        }
                        *self.last_accepted[self.agent].lock().expect("last") =
                            Some(Instant::now());
                        break;
                    }
                    Attempt::Accepted(accepted) => {
                        tally.rejected += 1;
                        tally
                            .rejected_example
                            .get_or_insert(format!("202 with {accepted} of {events} accepted"));
                        break;
                    }
                    Attempt::Refused if first_try.elapsed() < self.options.give_up => {
                        tally.retried += 1;
                    }
                    Attempt::Refused => {
                        tally.given_up += 1;
                        break;
                    }
                    Attempt::Unknown(error) => {
                        tally.unknown_example.get_or_insert(error);
                        tally.unknown.push(Unknown { window, cells });
                        break;
                    }
                    Attempt::Rejected(answer) => {
                        tally.rejected += 1;
                        tally.rejected_example.get_or_insert(answer);
                        break;
                    }
                }
                drop(tally);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Request number `n`: its body, events, contribution per `k`, window and lateness.
    fn request(&mut self, n: u32) -> (String, u64, BTreeMap<String, Cell>, i64, bool) {
        let late = self.rng.random_bool(self.options.late_fraction);
        let mut at = now_millis();
        if late {
            at -= self
                .rng
                .random_range(self.options.late_ms.0..=self.options.late_ms.1);
        }
        let window = window_start(at, WINDOW_MS);
        let high = (at / self.options.alert_half_period_ms) % 2 == 0;
        let alert_events = if high {
            ALERT_HIGH_PER_REQUEST
        } else {
            u64::from(n % 8 == 0)
        };
        let occurred_at = format_rfc3339(at);
        let mut cells: BTreeMap<String, Cell> = BTreeMap::new();
        let mut items = Vec::new();
        for i in 0..self.options.batch + alert_events {
            let k = if i < self.options.batch {
                format!("k{}", self.rng.random_range(0..KEYS))
            } else {
                ALERT_KEY.to_owned()
            };
            let v = self.rng.random_range(1..=MAX_VALUE);
            let u = self.rng.random_range(0..UNIQUES);
            items.push(format!(
                r#"{{"tenant_id":"{TENANT}","source":"{}","event_type":"{EVENT_TYPE}","properties":{{"k":"{k}","v":{v},"u":"u{u}"}},"occurred_at":"{occurred_at}"}}"#,
                self.source
            ));
            cells.entry(k).or_default().add(v, u);
        }
        let events = items.len() as u64;
        (
            format!("[{}]", items.join(",")),
            events,
            cells,
            window,
            late,
        )
    }
}

/// One POST; `Connection: close`, so a pooled connection to a killed agent is never reused
/// (its failure would look like an unknown outcome).
fn post(http: &ureq::Agent, url: &str, body: &str) -> Attempt {
    let answer = http
        .post(url)
        .header("content-type", "application/json")
        .header("connection", "close")
        .header(
            "authorization",
            format!("Bearer {}", crate::auth::operator_key()),
        )
        .send(body.as_bytes());
    match answer {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            match status {
                202 => Attempt::Accepted(
                    serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["accepted"].as_u64())
                        .unwrap_or(0),
                ),
                429 | 503 => Attempt::Refused,
                other => Attempt::Rejected(format!("{other}: {}", &text[..text.len().min(300)])),
            }
        }
        Err(ureq::Error::Io(err)) if err.kind() == ErrorKind::ConnectionRefused => Attempt::Refused,
        Err(ureq::Error::ConnectionFailed) => Attempt::Refused,
        Err(err) => Attempt::Unknown(err.to_string()),
    }
}
