//! Free loopback ports.
//!
//! A port is found by binding `127.0.0.1:0` and is released before the service binds it, so
//! another process may take it in between. The services' `start` functions detect that (the
//! service exits with "address already in use") and retry on fresh ports.

use std::net::TcpListener;

/// `N` distinct free ports on 127.0.0.1 (all held open together while they are picked).
pub fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// One free port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    free_ports::<1>().map(|[port]| port)
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
    }
}
