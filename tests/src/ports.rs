//! Free loopback ports.
//!
//! A port is found by binding `127.0.0.1:0` and is released before the service binds it, so
//! another process may take it in between. The services' `start` functions detect that (the
//! service exits with "address already in use") and retry on fresh ports
//! ([`retry_port_conflicts`]).

use std::net::TcpListener;

/// Attempts at a start when a picked port turns out to be taken.
const PORT_ATTEMPTS: usize = 3;

/// `n` distinct free ports on 127.0.0.1 (all held open together while they are picked).
pub fn free_port_list(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|addr| addr.port()))
        .collect()
}

/// `N` distinct free ports on 127.0.0.1 (all held open together while they are picked).
pub fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    let list = free_port_list(N)?;
    let mut ports = [0; N];
    ports.copy_from_slice(&list);
    Ok(ports)
}

/// One free port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    free_ports::<1>().map(|[port]| port)
}

/// Runs `start` (which picks its ports itself) again, up to 3 attempts in all, while it fails
/// because a port it picked was taken meanwhile.
pub fn retry_port_conflicts<T>(mut start: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut attempt = 1;
    loop {
        match start() {
            Ok(started) => return Ok(started),
            Err(err) if attempt < PORT_ATTEMPTS && is_port_conflict(&format!("{err:#}")) => {
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// True when a failed start's log says a port was taken, so a retry on other ports may work.
pub(crate) fn is_port_conflict(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    log.contains("address already in use") || log.contains("errno=98")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports = free_ports::<4>().unwrap();
        for (i, port) in ports.iter().enumerate() {
            assert!(!ports[..i].contains(port), "{ports:?}");
            TcpListener::bind(("127.0.0.1", *port)).unwrap();
        }
        assert_ne!(free_port().unwrap(), 0);
        assert_eq!(free_port_list(6).unwrap().len(), 6);
    }
}
