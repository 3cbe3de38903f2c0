//! The operator's allowlist of webhook destinations that would otherwise be refused:
//! `["hooks.internal:8443", "alertmanager.ops", "10.20.0.0/16", "127.0.0.1:9093"]`.
//!
//! An entry is a host name with or without a port (the name as written in webhook URLs;
//! without a port every port), an IP address with or without a port, or a CIDR range (every
//! port). A named host is allowed whatever its addresses are: the operator vouches for the
//! name. An address or range allows exactly those addresses, reached by a literal URL or by
//! any name that resolves to them.

use crate::ipnet::{unmap, IpNet};
use std::net::{IpAddr, SocketAddr};

/// An entry of the allowlist that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` is not a host, host:port, IP address, IP:port or CIDR range: {reason}")]
pub struct AllowlistError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The parsed allowlist. Empty by default: nothing outside the public internet is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowlist {
    /// Lowercased names without a trailing dot, with their port (`None`: every port).
    hosts: Vec<(String, Option<u16>)>,
    /// Addresses with one port.
    sockets: Vec<SocketAddr>,
    /// Ranges (a single address is a /32 or /128), every port.
    nets: Vec<IpNet>,
}

impl Allowlist {
    /// Parses `entries`; the error names the first entry that does not parse.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowlistError> {
        let mut list = Allowlist::default();
        for entry in entries {
            list.add(entry.as_ref())?;
        }
        Ok(list)
    }

    /// Adds one entry.
    pub fn add(&mut self, entry: &str) -> Result<(), AllowlistError> {
        let fail = |reason| AllowlistError {
            entry: entry.to_owned(),
            reason,
        };
        let text = entry.trim();
        if text.is_empty() {
            return Err(fail("empty"));
        }
        if text.contains('/') {
            self.nets.push(IpNet::parse_reason(text).map_err(fail)?);
            return Ok(());
        }
        if let Ok(net) = IpNet::parse_reason(text) {
            self.nets.push(net);
            return Ok(());
        }
        if let Ok(socket) = text.parse::<SocketAddr>() {
            self.sockets
                .push(SocketAddr::new(unmap(socket.ip()), socket.port()));
            return Ok(());
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (
                host,
                Some(port.parse::<u16>().map_err(|_| fail("bad port"))?),
            ),
            None => (text, None),
        };
        let host = normalise_name(host);
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid {
            return Err(fail("not a host name"));
        }
        self.hosts.push((host, port));
        Ok(())
    }

    /// Whether nothing is allowed beyond the public internet.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.sockets.is_empty() && self.nets.is_empty()
    }

    /// Whether the host name `name` is allowed on `port` (`None`: on some port).
    pub fn names(&self, name: &str, port: Option<u16>) -> bool {
        let name = normalise_name(name);
        self.hosts
            .iter()
            .any(|(host, p)| *host == name && (p.is_none() || port.is_none() || *p == port))
    }

    /// Whether the address `ip` is allowed on `port` (`None`: on some port).
    pub fn allows(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let ip = unmap(ip);
        self.nets.iter().any(|net| net.contains(ip))
            || self
                .sockets
                .iter()
                .any(|s| s.ip() == ip && (port.is_none() || Some(s.port()) == port))
    }
}

/// A host name as compared: lowercase, without the trailing dot of a fully qualified name.
pub fn normalise_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn entries_allow_what_they_name_and_nothing_else() {
        let list = Allowlist::parse(&[
            "hooks.internal:8443",
            "Alertmanager.OPS.",
            "10.20.0.0/16",
            "127.0.0.1:9093",
            "[::1]:9094",
            "192.168.1.7",
            "fd00:1::/32",
        ])
        .unwrap();
        assert!(list.names("hooks.internal", Some(8443)));
        assert!(!list.names("hooks.internal", Some(443)));
        assert!(list.names("hooks.internal", None));
        assert!(list.names("alertmanager.ops", Some(80)));
        assert!(list.names("ALERTMANAGER.ops.", Some(9093)));
        assert!(!list.names("other.ops", Some(80)));
        assert!(list.allows(ip("10.20.5.6"), Some(80)));
        assert!(!list.allows(ip("10.21.0.1"), Some(80)));
        assert!(list.allows(ip("127.0.0.1"), Some(9093)));
        assert!(!list.allows(ip("127.0.0.1"), Some(9094)));
        assert!(list.allows(ip("127.0.0.1"), None));
        assert!(list.allows(ip("::ffff:127.0.0.1"), Some(9093)), "mapped");
        assert!(list.allows(ip("::1"), Some(9094)));
        assert!(!list.allows(ip("::1"), Some(9093)));
        assert!(list.allows(ip("192.168.1.7"), Some(1)));
        assert!(!list.allows(ip("192.168.1.8"), Some(1)));
        assert!(list.allows(ip("::ffff:192.168.1.7"), Some(1)));
        assert!(list.allows(ip("fd00:1:ffff::1"), Some(1)));
        assert!(!list.allows(ip("fd00:2::1"), Some(1)));
        assert!(Allowlist::default().is_empty());
        assert!(!list.is_empty());
    }

    #[test]
    fn a_mapped_range_is_its_ipv4_range() {
        let list = Allowlist::parse(&["::ffff:10.0.0.0/104"]).unwrap();
        assert!(list.allows(ip("10.9.9.9"), None));
        assert!(!list.allows(ip("11.0.0.1"), None));
    }

    #[test]
    fn bad_entries_are_named() {
        for entry in [
            "",
            "10.0.0.0/33",
            "x/8",
            "host:port",
            "a b",
            "::1/129",
            "h:99999",
        ] {
            let err = Allowlist::parse(&[entry]).unwrap_err();
            assert_eq!(err.entry, entry);
            assert!(err.to_string().contains("is not a host"), "{err}");
        }
    }
}
