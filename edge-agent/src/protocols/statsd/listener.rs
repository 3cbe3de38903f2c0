//! The UDP listener: reads datagrams, parses their lines, and submits the events of up to
//! `statsd.batch_lines` lines at once (fewer when the socket has nothing more queued), so a
//! burst costs one pass through ingest per batch rather than per packet.
//!
//! Sizing: the socket asks for a receive buffer of `statsd.recv_buffer_bytes` (8 MiB: about
//! 0.1 s of a 100,000 packets/s burst of 80-byte lines queued while the listener is busy);
//! the kernel grants at most `net.core.rmem_max` (`SO_RCVBUFFORCE` is not used), and the size
//! granted is logged and exported. Datagrams the kernel still drops are read from
//! `/proc/net/udp` every second into `rtdash_agent_statsd_kernel_drops_total`, so a burst is
//! never lost silently.

use super::kernel;
use super::map::{write_events, Target};
use super::parse::parse_line;
use crate::config::StatsdConfig;
use crate::ingest::response::Reply;
use crate::ingest::{Ingest, Origin};
use crate::publish::deadletter::Rejected;
use rtdash_shared::time::now_millis;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// Largest datagram read (the largest UDP payload).
const MAX_DATAGRAM: usize = 65_535;

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("StatsD listener on {addr}")]
pub struct BindError {
    addr: String,
    #[source]
    source: std::io::Error,
}

/// A bound StatsD socket and where its events go.
#[derive(Debug)]
pub struct Listener {
    socket: UdpSocket,
    inode: Option<u64>,
    ingest: Arc<Ingest>,
    target: Target,
    batch_lines: usize,
}

impl Listener {
    /// Binds `config.listen` with the configured receive buffer (call within a runtime).
    pub fn bind(
        config: &StatsdConfig,
        tenant: &str,
        ingest: Arc<Ingest>,
    ) -> Result<Self, BindError> {
        let fail = |source| BindError {
            addr: config.listen.clone(),
            source,
        };
        let addr: SocketAddr = config
            .listen
            .parse()
            .map_err(|_| fail(std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .map_err(fail)?;
        if let Err(err) = socket.set_recv_buffer_size(config.recv_buffer_bytes) {
            tracing::warn!(error = %err, "cannot size the StatsD receive buffer");
        }
        socket.set_nonblocking(true).map_err(fail)?;
        socket.bind(&addr.into()).map_err(fail)?;
        let granted = socket.recv_buffer_size().unwrap_or_default();
        ingest.metrics.statsd_receive_buffer.set(granted as f64);
        let std_socket: std::net::UdpSocket = socket.into();
        let inode = kernel::socket_inode(&std_socket);
        let socket = UdpSocket::from_std(std_socket).map_err(fail)?;
        let local = socket.local_addr().map_err(fail)?;
        tracing::info!(
            %local,
            tenant,
            receive_buffer_bytes = granted,
            requested_bytes = config.recv_buffer_bytes,
            "StatsD listener bound"
        );
        if granted < config.recv_buffer_bytes {
            tracing::warn!(
                granted,
                requested = config.recv_buffer_bytes,
                "the kernel granted a smaller StatsD receive buffer (raise net.core.rmem_max)"
            );
        }
        Ok(Self {
            socket,
            inode,
            ingest,
            target: Target {
                tenant: tenant.to_owned(),
                source: config.source.clone(),
            },
            batch_lines: config.batch_lines,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Receives until `stop`, then submits what it has read.
    pub async fn run(self, stop: CancellationToken) {
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        let mut batch = Batch::default();
        let mut drops_tick = tokio::time::interval(Duration::from_secs(1));
        drops_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = drops_tick.tick() => self.read_kernel_drops(),
                received = self.socket.recv(&mut buffer) => {
                    if let Ok(len) = received {
                        self.take(&buffer[..len], &mut batch);
                    }
                    // Drain what is already queued, up to a batch, without waiting.
                    while batch.lines < self.batch_lines {
                        match self.socket.try_recv(&mut buffer) {
                            Ok(len) => self.take(&buffer[..len], &mut batch),
                            Err(_) => break,
                        }
                    }
                    self.submit(&mut batch);
                }
            }
        }
        self.submit(&mut batch);
        self.read_kernel_drops();
    }

    fn read_kernel_drops(&self) {
        if let Some(drops) = self.inode.and_then(kernel::drops) {
            self.ingest.metrics.statsd_kernel_drops.absolute(drops);
        }
    }

    /// Parses one datagram's lines into `batch`; a bad line is counted and dead-lettered,
    /// the others go on.
    fn take(&self, datagram: &[u8], batch: &mut Batch) {
        let metrics = &self.ingest.metrics;
        metrics.protocol_request("statsd");
        let received_at = now_millis();
        batch.received_at = received_at;
        for raw in datagram.split(|b| *b == b'\n') {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                continue;
            }
            batch.lines += 1;
            let parsed = std::str::from_utf8(raw)
                .map_err(|_| super::parse::Drop::Malformed)
                .and_then(parse_line);
            match parsed {
                Ok(line) => {
                    batch.events +=
                        write_events(&mut batch.ndjson, &line, &self.target, received_at);
                }
                Err(drop) => {
                    metrics.statsd_dropped(drop.reason(), 1);
                    batch.bad.push((drop.reason(), raw.to_vec()));
                }
            }
        }
    }

    /// Submits the batch's events (dropping them, counted, while the agent refuses input) and
    /// dead-letters its bad lines.
    fn submit(&self, batch: &mut Batch) {
        let ingest = &self.ingest;
        let metrics = &ingest.metrics;
        if !batch.bad.is_empty() {
            let tenant = Some(self.target.tenant.as_str());
            let messages: Vec<String> = batch
                .bad
                .iter()
                .map(|(reason, _)| format!("StatsD line not mapped: {reason}"))
                .collect();
            ingest
                .dlq
                .submit_all(
                    batch
                        .bad
                        .iter()
                        .zip(&messages)
                        .map(|((_, raw), message)| Rejected {
                            tenant,
                            code: "statsd_malformed",
                            message,
                            input: raw,
                            index: None,
                            received_at: batch.received_at,
                        }),
                );
            metrics.rejected("statsd_malformed", batch.bad.len() as u64);
            metrics.protocol_events("statsd", 0, batch.bad.len() as u64, 0);
        }
        if batch.events > 0 {
            if !ingest.definitions_loaded() {
                // Dropped and counted, not buffered: StatsD over UDP is fire-and-forget, and
                // these lines would miss every bucket-defined metric.
                metrics.statsd_dropped("definitions_not_loaded", batch.events as u64);
            } else if ingest.admission().is_some() {
                metrics.statsd_dropped("overload", batch.events as u64);
            } else {
                let reply = ingest.process_as(&batch.ndjson, true, batch.received_at, &STATSD);
                if let Reply::Batch { errors, .. } = reply {
                    if !errors.is_empty() {
                        metrics.statsd_dropped("rejected", errors.len() as u64);
                    }
                }
            }
        }
        *batch = Batch::default();
    }
}

const STATSD: Origin<'static> = Origin {
    protocol: "statsd",
    idempotency_key: None,
    // The tenant comes from the entry point's credentials or configuration
    // (see `protocols::tenant`); every event of the batch names it.
    tenant: None,
};

/// Lines read and not yet submitted.
#[derive(Debug, Default)]
struct Batch {
    ndjson: Vec<u8>,
    lines: usize,
    events: usize,
    bad: Vec<(&'static str, Vec<u8>)>,
    received_at: i64,
}
