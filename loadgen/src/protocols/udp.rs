//! StatsD over UDP for `rtdash-loadgen protocols`: the open-loop datagram sender, the kernel's
//! drop count of a listening socket, and the sum of a counter in a Prometheus text page (how
//! both the agent and a peer StatsD server say what they took).

use super::bodies;
use anyhow::Context;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// What [`send_open_loop`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    /// Datagrams the socket took (`send` returned `Ok`).
    pub datagrams: u64,
    /// Lines in those datagrams.
    pub lines: u64,
    /// Wall time from the first datagram's due time to the last one sent.
    pub seconds: f64,
    /// Largest delay of a datagram behind its due time, in milliseconds.
    pub max_lag_ms: f64,
}

/// Sends `rate` datagrams/s of `lines` lines each to `target` for `duration` seconds, open
/// loop: datagram *n* is due at `start + n / rate` (the sender never slows down to match the
/// receiver; if it falls behind, [`Sent::max_lag_ms`] says so). Blocking: run it on a thread
/// of its own.
pub fn send_open_loop(target: &str, rate: f64, duration: f64, lines: u64) -> anyhow::Result<Sent> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket
        .connect(target)
        .with_context(|| format!("connect to the StatsD address {target}"))?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * duration) as u64;
    let started = Instant::now();
    let mut sent = Sent::default();
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            sent.max_lag_ms = sent.max_lag_ms.max((now - due).as_secs_f64() * 1000.0);
        }
        let datagram = bodies::statsd_datagram(n * lines, lines);
        if socket.send(&datagram).is_ok() {
            sent.datagrams += 1;
            sent.lines += lines;
        }
    }
    sent.seconds = started.elapsed().as_secs_f64();
    Ok(sent)
}

/// Datagrams the kernel dropped on the UDP sockets bound to `addr`'s port on loopback or any
/// address (the `drops` column of `/proc/net/udp`): the receive buffer was full. `None` where
/// that file cannot be read (not Linux).
pub fn kernel_drops(addr: &str) -> Option<u64> {
    let port = addr
        .to_socket_addrs()
        .ok()?
        .next()
        .map(|a: SocketAddr| a.port())?;
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    Some(drops_in(&table, port))
}

/// The sum of the `drops` column over the rows of a `/proc/net/udp` table whose local address
/// has port `port`.
fn drops_in(table: &str, port: u16) -> u64 {
    let port_hex = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let local = fields.get(1)?;
            if !local.ends_with(&port_hex) {
                return None;
            }
            fields.last()?.parse::<u64>().ok()
        })
        .sum()
}

/// The sum of every sample of `name` (any labels) whose labels contain all of `labels`, in a
/// Prometheus text exposition.
pub fn counter_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && labels.iter().all(|x| l.contains(x))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drops_of_the_port_are_summed_over_its_sockets() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            1: 0100007F:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 7\n\
            2: 00000000:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0000000000000000 5\n\
            3: 0100007F:23A5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4 2 0000000000000000 100\n";
        assert_eq!(drops_in(table, 8125), 12);
        assert_eq!(drops_in(table, 9125), 100);
        assert_eq!(drops_in(table, 1), 0);
    }

    #[test]
    fn a_counter_is_summed_over_matching_labels_only() {
        let text = "# TYPE statsd_exporter_events_total counter\n\
            statsd_exporter_events_total{type=\"counter\"} 10\n\
            statsd_exporter_events_total{type=\"gauge\"} 5\n\
            statsd_exporter_events_total_other 99\n\
            statsd_exporter_lines_total 20\n";
        assert_eq!(counter_sum(text, "statsd_exporter_events_total", &[]), 15.0);
        assert_eq!(
            counter_sum(text, "statsd_exporter_events_total", &["type=\"gauge\""]),
            5.0
        );
        assert_eq!(counter_sum(text, "statsd_exporter_lines_total", &[]), 20.0);
    }
}
