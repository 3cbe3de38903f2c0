//! A quick closed-loop load generator for the agent's ingest API (a measuring tool, not the
//! project's benchmark): `C` keep-alive connections, each posting pre-built bodies of `B`
//! events (~200 bytes each: 3 dimensions, a numeric field, a unique-id field) back to back
//! over raw HTTP/1.1, for `S` seconds; prints events/s and request latency percentiles.
//!
//! ```text
//! cargo run --release -p edge-agent --example ingest_load -- \
//!     --addr 127.0.0.1:8081 --connections 4 --batch 1000 --seconds 20
//! ```
//!
//! Metric definition matching the events (put it in the agent's `metrics_file`):
//!
//! ```toml
//! [[metric]]
//! name = "purchases"
//! event_type = "purchase"
//! field = "amount"
//! unique = "user_id"
//! dimensions = ["region", "plan", "device"]
//! ```

use clap::Parser;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
struct Args {
    /// Agent address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    addr: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Events per request; 1 sends the single-event shape.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Duration of the run, seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Distinct values of the `region` dimension (1,000,000 for the cardinality test).
    #[arg(long, default_value_t = 8)]
    regions: u64,
    /// Send NDJSON instead of a JSON array.
    #[arg(long)]
    ndjson: bool,
    /// Distinct pre-built bodies per connection.
    #[arg(long, default_value_t = 16)]
    bodies: usize,
    /// Stop after sending this many events (0: run for `--seconds`). With `--regions
    /// 1000000 --max-events 1000000` every region value is sent exactly once.
    #[arg(long, default_value_t = 0)]
    max_events: u64,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn build_body(args: &Args, rng: &mut Rng, region_counter: &AtomicU64) -> Vec<u8> {
    let now = rtdash_shared::time::now_millis();
    let plans = ["free", "pro", "team", "enterprise"];
    let devices = ["ios", "android", "web"];
    let mut events = Vec::with_capacity(args.batch);
    for _ in 0..args.batch {
        let r = rng.next();
        let region = if args.regions >= 1_000_000 {
            region_counter.fetch_add(1, Ordering::Relaxed) % args.regions
        } else {
            r % args.regions
        };
        let at = rtdash_shared::time::format_rfc3339(now - (r >> 40) as i64 % 2_000);
        events.push(format!(
            r#"{{"tenant_id":"bench","source":"checkout-service","event_type":"purchase","properties":{{"region":"region-{region}","plan":"{}","device":"{}","amount":{}.{:02},"user_id":"u{}"}},"occurred_at":"{at}"}}"#,
            plans[(r >> 8) as usize % plans.len()],
            devices[(r >> 16) as usize % devices.len()],
            (r >> 24) % 500,
            (r >> 32) % 100,
            (r >> 20) % 100_000,
        ));
    }
    let body = if args.batch == 1 {
        events.pop().unwrap_or_default()
    } else if args.ndjson {
        events.join("\n")
    } else {
        format!("[{}]", events.join(","))
    };
    let content_type = if args.ndjson && args.batch > 1 {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    let mut request = format!(
        "POST /v1/events HTTP/1.1\r\nhost: {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        args.addr,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

/// Reads one response; returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Arc::new(Args::parse());
    let region_counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let claimed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let (args, stop, accepted, refused, counter, claimed) = (
            args.clone(),
            stop.clone(),
            accepted.clone(),
            refused.clone(),
            region_counter.clone(),
            claimed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1));
            let mut bodies: Vec<Vec<u8>> = (0..args.bodies)
                .map(|_| build_body(&args, &mut rng, &counter))
                .collect();
            let mut stream = TcpStream::connect(&args.addr).await?;
            stream.set_nodelay(true)?;
            let mut buf = Vec::with_capacity(64 * 1024);
            let mut latencies = Vec::new();
            let mut i = 0usize;
            let mut resend = false;
            while !stop.load(Ordering::Relaxed) {
                if args.max_events > 0
                    && claimed.fetch_add(args.batch as u64, Ordering::Relaxed) >= args.max_events
                {
                    break;
                }
                if args.regions >= 1_000_000 && !resend {
                    // Fresh region values for every request (a refused one is sent again).
                    let slot = i % bodies.len();
                    bodies[slot] = build_body(&args, &mut rng, &counter);
                }
                resend = false;
                let started = Instant::now();
                stream.write_all(&bodies[i % bodies.len()]).await?;
                let status = read_response(&mut stream, &mut buf).await?;
                latencies.push(started.elapsed().as_micros() as u32);
                if status == 202 {
                    accepted.fetch_add(args.batch as u64, Ordering::Relaxed);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                    // Refused: send this batch again (its events were not taken).
                    if args.max_events > 0 {
                        claimed.fetch_sub(args.batch as u64, Ordering::Relaxed);
                    }
                    resend = true;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                i += 1;
            }
            std::io::Result::Ok(latencies)
        }));
    }
    let started = Instant::now();
    let mut last = 0;
    for _ in 0..args.seconds {
        if tasks.iter().all(|task| task.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = accepted.load(Ordering::Relaxed);
        eprintln!(
            "{:>5.1}s  {:>10} events/s",
            started.elapsed().as_secs_f64(),
            now - last
        );
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(l)) => latencies.extend(l),
            Ok(Err(err)) => eprintln!("connection failed: {err}"),
            Err(err) => eprintln!("task failed: {err}"),
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let total = accepted.load(Ordering::Relaxed);
    println!(
        "events accepted: {total} in {elapsed:.1} s = {:.0} events/s; requests {} ({} refused); latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        total as f64 / elapsed,
        latencies.len(),
        refused.load(Ordering::Relaxed),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
    );
    Ok(())
}
