//! The fault workload: a steady producer posting to the real edge agent, and the exact
//! tally of what it accepted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{FAULT_EVENT_TYPE, FAULT_TENANT, KEYS, WINDOW_MS};
use crate::http;
use crate::time::{format_rfc3339, now_millis};

/// Exact count and sum of accepted events per `(window start, k)`.
pub type Expected = BTreeMap<(i64, String), (u64, u64)>;

/// What a [`Load`] sent and what the agent took.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Events posted (each once, however often its batch was retried).
    pub sent: u64,
    /// Events in `202` answers (`accepted` of the batch).
    pub accepted: u64,
    /// Requests answered `429` or `503` and retried.
    pub retried: u64,
    /// Requests that failed without an answer (the agent may or may not have taken them):
    /// must stay 0 for an exact count.
    pub unknown: u64,
    /// Batches given up after [`LoadOptions::give_up`] of `429`/`503`.
    pub given_up: u64,
    /// Requests answered `202`.
    pub requests: u64,
    /// The exact expectation.
    pub expected: Expected,
    /// Accepted events per second of the run, in order.
    pub per_second: Vec<u64>,
}

/// How a [`Load`] posts.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Events per second.
    pub rate: u64,
    /// Events per request.
    pub batch: u64,
    /// How long a batch is retried on `429`/`503` before it counts as given up.
    pub give_up: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            rate: 3_000,
            batch: 100,
            give_up: Duration::from_secs(60),
        }
    }
}

/// A steady producer on its own thread: `rate` events per second of `tick` events
/// (`k` = `k0`..`k7`, `v` = 1..=10) in JSON batches to the edge agent.
pub struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// Starts posting to `agent_url` (`http://...`).
    pub fn start(agent_url: &str, options: LoadOptions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let url = format!("{agent_url}/v1/events");
        let thread = {
            let stop = stop.clone();
            let tally = tally.clone();
            std::thread::Builder::new()
                .name("fault-load".to_owned())
                .spawn(move || run_load(&url, &options, &stop, &tally))
                .expect("spawn the load thread")
        };
        Self {
            stop,
            tally,
            thread: Some(thread),
        }
    }

    /// The tally so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().expect("tally").clone()
    }

    /// Events accepted so far.
    pub fn accepted(&self) -> u64 {
        self.tally.lock().expect("tally").accepted
    }

    /// Stops after the batch in progress (which is finished, retries included) and returns
    /// the final tally.
    pub fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.tally()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_load(url: &str, options: &LoadOptions, stop: &AtomicBool, tally: &Mutex<Tally>) {
    let http = http::client(Duration::from_secs(60));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(options.batch as f64 / options.rate.max(1) as f64);
    let mut n: u64 = 0;
    let mut batch_no: u32 = 0;
    while !stop.load(Ordering::SeqCst) {
        let due = started + interval * batch_no;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        batch_no += 1;
        let at = now_millis();
        let mut items = Vec::with_capacity(options.batch as usize);
        let mut batch: Expected = BTreeMap::new();
        for _ in 0..options.batch {
            let k = format!("k{}", n % KEYS);
            let v = n % 10 + 1;
            items.push(format!(
                r#"{{"tenant_id":"{FAULT_TENANT}","source":"fault-load","event_type":"{FAULT_EVENT_TYPE}","properties":{{"k":"{k}","v":{v}}},"occurred_at":"{}"}}"#,
                format_rfc3339(at)
            ));
            let entry = batch.entry((at - at.rem_euclid(WINDOW_MS), k)).or_default();
            entry.0 += 1;
            entry.1 += v;
            n += 1;
        }
        let body = format!("[{}]", items.join(","));
        tally.lock().expect("tally").sent += options.batch;
        let first_try = Instant::now();
        let (auth_name, auth_value) = crate::auth::operator_authorization();
        loop {
            let answer = http
                .post(url)
                .header("content-type", "application/json")
                .header(auth_name, auth_value.as_str())
                .send(body.as_bytes())
                .map(|mut response| {
                    let status = response.status().as_u16();
                    let text = response.body_mut().read_to_string().unwrap_or_default();
                    (status, text)
                });
            let mut tally = tally.lock().expect("tally");
            match answer {
                Ok((202, text)) => {
                    let accepted = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["accepted"].as_u64())
                        .unwrap_or(0);
                    if accepted != options.batch {
                        // Never happens with valid events; counted as not taken so the check
                        // fails loudly rather than guessing which were taken.
                        tally.unknown += 1;
                    } else {
                        tally.accepted += accepted;
                        tally.requests += 1;
                        let second = started.elapsed().as_secs() as usize;
                        if tally.per_second.len() <= second {
                            tally.per_second.resize(second + 1, 0);
                        }
                        tally.per_second[second] += accepted;
                        for (key, (count, sum)) in &batch {
                            let entry = tally.expected.entry(key.clone()).or_default();
                            entry.0 += count;
                            entry.1 += sum;
                        }
                    }
                    break;
                }
                Ok((429 | 503, _)) if first_try.elapsed() < options.give_up => {
                    tally.retried += 1;
                }
                Ok((429 | 503, _)) => {
                    tally.given_up += 1;
                    break;
                }
                Ok(_) | Err(_) => {
                    tally.unknown += 1;
                    break;
                }
            }
            drop(tally);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
