//! A failover proxy: one loopback address in front of several gateways.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

/// A loopback TCP proxy in front of several backends (gateways): each new connection goes to
/// the first backend, in the order given, that accepts a connection within 500 ms; bytes are
/// copied both ways until either side closes, then both are closed. A backend that dies takes
/// its connections with it; the clients' reconnections reach the next live one. This is a
/// load balancer with failover, reduced to what the gateway fault test needs.
#[derive(Debug)]
pub struct FailoverProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections handed to each backend.
    counts: Arc<Vec<AtomicU64>>,
    thread: Option<JoinHandle<()>>,
}

impl FailoverProxy {
    /// Listens on a free loopback port in front of `backends` (`http://host:port` or
    /// `host:port`).
    pub fn start(backends: &[String]) -> anyhow::Result<Self> {
        let backends: Vec<SocketAddr> = backends
            .iter()
            .map(|b| {
                b.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .parse::<SocketAddr>()
                    .with_context(|| format!("backend {b}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<Vec<AtomicU64>> =
            Arc::new(backends.iter().map(|_| AtomicU64::new(0)).collect());
        let thread = {
            let stop = stop.clone();
            let counts = counts.clone();
            std::thread::Builder::new()
                .name("failover-proxy".to_owned())
                .spawn(move || {
                    for client in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(client) = client else { continue };
                        let backends = backends.clone();
                        let counts = counts.clone();
                        std::thread::spawn(move || {
                            let _ = proxy_connection(client, &backends, &counts);
                        });
                    }
                })?
        };
        Ok(Self {
            addr,
            stop,
            counts,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`: the one address clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections handed to each backend so far, in the order given.
    pub fn connections(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }
}

impl Drop for FailoverProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn proxy_connection(
    client: TcpStream,
    backends: &[SocketAddr],
    counts: &[AtomicU64],
) -> io::Result<()> {
    let mut chosen = None;
    for (i, backend) in backends.iter().enumerate() {
        if let Ok(stream) = TcpStream::connect_timeout(backend, Duration::from_millis(500)) {
            counts[i].fetch_add(1, Ordering::SeqCst);
            chosen = Some(stream);
            break;
        }
    }
    let Some(backend) = chosen else {
        // No backend: close, as a load balancer without a healthy target does.
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let (mut client_read, mut backend_write) = (client.try_clone()?, backend.try_clone()?);
    let upstream = std::thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut backend_write);
        let _ = backend_write.shutdown(Shutdown::Write);
    });
    let (mut backend_read, mut client_write) = (backend, client);
    let _ = io::copy(&mut backend_read, &mut client_write);
    // The backend closed (or died): close the client entirely, which ends the other copy.
    let _ = client_write.shutdown(Shutdown::Both);
    let _ = backend_read.shutdown(Shutdown::Both);
    let _ = upstream.join();
    Ok(())
}
