//! IP address ranges (`10.20.0.0/16`, `fd00::/8`, or one address), as operators list them in
//! allowlists and trusted proxies. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are the
//! IPv4 addresses they carry, so a range written either way matches both spellings.

use std::net::IpAddr;

/// A CIDR range; a single address is a `/32` or `/128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    base: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `a.b.c.d/n`, `v6/n`, or a single address (brackets around IPv6 allowed).
    /// Returns `None` when `text` is none of these; the reason, for error messages, with
    /// [`IpNet::parse_reason`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::parse_reason(text).ok()
    }

    /// [`IpNet::parse`], with why `text` is not a range.
    pub fn parse_reason(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        if let Some((base, prefix)) = text.split_once('/') {
            let base: IpAddr = base.parse().map_err(|_| "not an IP address before `/`")?;
            let prefix: u8 = prefix.parse().map_err(|_| "bad prefix length")?;
            let max = if base.is_ipv4() { 32 } else { 128 };
            if prefix > max {
                return Err("prefix length too long");
            }
            return Ok(match base {
                IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                    Some(v4) => Self {
                        base: IpAddr::V4(v4),
                        prefix: prefix - 96,
                    },
                    None => Self { base, prefix },
                },
                _ => Self { base, prefix },
            });
        }
        let ip = text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map_err(|_| "not an IP address")?;
        Ok(Self::single(ip))
    }

    /// The range holding exactly `ip`.
    pub fn single(ip: IpAddr) -> Self {
        let ip = unmap(ip);
        Self {
            base: ip,
            prefix: if ip.is_ipv4() { 32 } else { 128 },
        }
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, unmap(ip)) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_hold_their_addresses_in_either_spelling() {
        let net = IpNet::parse("10.20.0.0/16").unwrap();
        assert!(net.contains(ip("10.20.255.1")));
        assert!(net.contains(ip("::ffff:10.20.0.9")));
        assert!(!net.contains(ip("10.21.0.1")));
        let mapped = IpNet::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.contains(ip("10.9.9.9")));
        let one = IpNet::parse("[::1]").unwrap();
        assert!(one.contains(ip("::1")));
        assert!(!one.contains(ip("::2")));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("2001:db8::1")));
        for bad in ["", "10.0.0.0/33", "x/8", "::1/129", "host", "10.0.0.1:80"] {
            assert!(IpNet::parse(bad).is_none(), "{bad}");
        }
    }
}
