//! The client's address of a request, also behind reverse proxies (`http.trusted_proxies`).
//!
//! A proxy in front of a service makes every request come from the proxy's address, so
//! anything counted per client (failed authentications, open streams) would count everyone
//! together. Proxies say whom they forward for in `X-Forwarded-For` (each appends the address
//! it received the request from) or RFC 7239's `Forwarded: for=`. Anyone can send those
//! headers, so they are read only when the connection comes from a proxy the operator
//! listed, and then from the right: the right-most address that is not itself a listed proxy
//! is the client (what nginx's `set_real_ip_from` with `real_ip_recursive` does). Entries to
//! the left of it were written by the client and are ignored, so a client cannot choose its
//! address by sending the header. With no proxy listed (the default) the header is never
//! read.

use crate::ipnet::IpNet;
use axum::http::{Extensions, HeaderMap};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The client's address, set on every request by [`super::serve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The client's address of a request (unspecified, `0.0.0.0`, for a request that did
    /// not come through [`super::serve`], such as tests' `oneshot`).
    pub fn of(extensions: &Extensions) -> IpAddr {
        extensions
            .get::<ClientAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.0)
    }
}

/// Which header names the addresses a proxy forwarded for (`http.forwarded_header`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, Traefik, cloud balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

impl ForwardedHeader {
    fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The proxies whose forwarding header is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// `entries` (addresses or CIDR ranges) read from `header`; the error names the first
    /// entry that does not parse and why.
    pub fn parse<S: AsRef<str>>(
        entries: &[S],
        header: ForwardedHeader,
    ) -> Result<Self, (String, &'static str)> {
        let nets = entries
            .iter()
            .map(|entry| {
                IpNet::parse_reason(entry.as_ref()).map_err(|why| (entry.as_ref().to_owned(), why))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { nets, header })
    }

    /// Whether no proxy is trusted (the header is never read).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// The client's address of a request received from `peer` with `headers`: `peer` unless
    /// it is a trusted proxy; then the right-most forwarded address that is not a trusted
    /// proxy. Walking stops at an entry that is not an address (`unknown`, garbage): the
    /// nearest address known is the client then. When every address is a trusted proxy, the
    /// left-most one is the client.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Several header lines are one list, in order.
        let lines: Vec<&str> = headers
            .get_all(self.header.name())
            .iter()
            .map(|value| value.to_str().unwrap_or(""))
            .collect();
        for line in lines.iter().rev() {
            for entry in line.rsplit(',') {
                let hop = match self.header {
                    ForwardedHeader::XForwardedFor => parse_node(entry),
                    ForwardedHeader::Forwarded => forwarded_for(entry).and_then(parse_node),
                };
                let Some(hop) = hop else {
                    return client;
                };
                client = hop;
                if !self.trusts(hop) {
                    return hop;
                }
            }
        }
        client
    }
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`, maybe quoted.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// The `for=` of one element of a `Forwarded` header (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(name: &str, lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(line).unwrap(),
            );
        }
        headers
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        headers("x-forwarded-for", lines)
    }

    fn trusting(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries, ForwardedHeader::XForwardedFor).unwrap()
    }

    #[test]
    fn nobody_trusted_means_the_header_is_never_read() {
        let proxies = TrustedProxies::default();
        assert!(proxies.is_empty());
        let peer = ip("10.0.0.5");
        assert_eq!(proxies.client_addr(peer, &xff(&["203.0.113.9"])), peer);
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let proxies = trusting(&["10.0.0.0/8"]);
        let peer = ip("198.51.100.7");
        assert_eq!(proxies.client_addr(peer, &xff(&["10.0.0.1"])), peer);
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client_and_spoofed_left_entries_are_ignored() {
        let proxies = trusting(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.5");
        // The client sent `X-Forwarded-For: 1.1.1.1`; the proxy appended its real address.
        assert_eq!(
            proxies.client_addr(peer, &xff(&["1.1.1.1, 203.0.113.9"])),
            ip("203.0.113.9")
        );
        // A chain of trusted proxies: each appended the one before it.
        assert_eq!(
            proxies.client_addr(peer, &xff(&["6.6.6.6, 203.0.113.9, 10.1.1.1, 10.2.2.2"])),
            ip("203.0.113.9")
        );
        // The same list over several header lines.
        assert_eq!(
            proxies.client_addr(peer, &xff(&["6.6.6.6, 203.0.113.9", "10.1.1.1"])),
            ip("203.0.113.9")
        );
        // No header: the proxy itself.
        assert_eq!(proxies.client_addr(peer, &HeaderMap::new()), peer);
        // Every hop trusted: the left-most.
        assert_eq!(
            proxies.client_addr(peer, &xff(&["10.9.9.9, 10.1.1.1"])),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn ports_brackets_and_ipv6_are_understood() {
        let proxies = trusting(&["::1", "127.0.0.1"]);
        assert_eq!(
            proxies.client_addr(ip("::1"), &xff(&["[2001:db8::7]:4711"])),
            ip("2001:db8::7")
        );
        assert_eq!(
            proxies.client_addr(ip("127.0.0.1"), &xff(&["203.0.113.9:5000"])),
            ip("203.0.113.9")
        );
        assert_eq!(
            proxies.client_addr(ip("::ffff:127.0.0.1"), &xff(&[" 2001:db8::8 "])),
            ip("2001:db8::8")
        );
    }

    #[test]
    fn a_malformed_entry_stops_the_walk_at_the_nearest_known_address() {
        let proxies = trusting(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.5");
        assert_eq!(proxies.client_addr(peer, &xff(&["garbage"])), peer);
        assert_eq!(proxies.client_addr(peer, &xff(&[""])), peer);
        assert_eq!(
            proxies.client_addr(peer, &xff(&["203.0.113.9, nonsense, 10.1.1.1"])),
            ip("10.1.1.1")
        );
        assert_eq!(
            proxies.client_addr(peer, &xff(&["nonsense, 203.0.113.9"])),
            ip("203.0.113.9")
        );
        // Not UTF-8 text.
        let mut odd = HeaderMap::new();
        odd.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert_eq!(proxies.client_addr(peer, &odd), peer);
    }

    #[test]
    fn rfc_7239_forwarded_is_read_when_chosen() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"], ForwardedHeader::Forwarded).unwrap();
        let peer = ip("10.0.0.5");
        let forwarded = |line: &str| headers("forwarded", &[line]);
        assert_eq!(
            proxies.client_addr(
                peer,
                &forwarded(
                    r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=10.3.3.3"#
                )
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            proxies.client_addr(peer, &forwarded("for=unknown, for=10.3.3.3")),
            ip("10.3.3.3")
        );
        assert_eq!(proxies.client_addr(peer, &forwarded("proto=https")), peer);
        // The other header is not read.
        assert_eq!(proxies.client_addr(peer, &xff(&["203.0.113.9"])), peer);
    }

    #[test]
    fn bad_entries_are_named() {
        let err = TrustedProxies::parse(&["10.0.0.0/8", "proxy.local"], ForwardedHeader::default())
            .unwrap_err();
        assert_eq!(err.0, "proxy.local");
    }
}
