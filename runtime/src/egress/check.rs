//! Checking one webhook destination: the URL's form (scheme, host, no user-info), then its
//! address (a literal) or the addresses its name resolves to, against [`classify`] and the
//! operator's [`Allowlist`].

use super::allowlist::{normalise_name, Allowlist};
use super::ip::{classify, AddressClass};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

/// Why a destination is refused. The message names the host and the range, never the path
/// or query of the URL (they often hold a token).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a URL.
    #[error("not a URL")]
    NotAUrl,
    /// Another scheme than http or https.
    #[error("not an http:// or https:// URL")]
    Scheme,
    /// No host.
    #[error("the URL has no host")]
    NoHost,
    /// `user:password@` in the URL.
    #[error("the URL carries a user name or password; send credentials in a header instead")]
    UserInfo,
    /// The host is an address of a refused range.
    #[error("`{host}` is {class}")]
    Address {
        /// The host as written.
        host: String,
        /// Its range.
        class: AddressClass,
    },
    /// The host name resolves to an address of a refused range.
    #[error("`{host}` resolves to {class}")]
    Resolves {
        /// The name.
        host: String,
        /// The range of (one of) its addresses.
        class: AddressClass,
    },
}

impl Refusal {
    /// A metric label value: the range, or `url` for the form of the URL.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Address { class, .. } | Refusal::Resolves { class, .. } => class.as_str(),
            _ => "url",
        }
    }
}

/// Why a destination could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// It is refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Its name could not be resolved (a transient failure, or no such name).
    #[error("cannot resolve `{host}`")]
    Lookup {
        /// The name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
}

/// The host of a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A name, lowercased, to be resolved.
    Name(String),
    /// A literal address.
    Ip(IpAddr),
}

/// A webhook URL whose form is acceptable: http or https, a host, no user-info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The host.
    pub host: Host,
    /// The port (the scheme's default when the URL names none).
    pub port: u16,
}

impl Destination {
    /// Checks the form of `url` and takes its host and port. Numeric hosts in any form the
    /// WHATWG URL standard reads (`http://2130706433/`, `http://0x7f.1/`) are addresses.
    pub fn parse(url: &str) -> Result<Self, Refusal> {
        let url = url::Url::parse(url.trim()).map_err(|_| Refusal::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::UserInfo);
        }
        let host = match url.host() {
            Some(url::Host::Domain(name)) if !name.is_empty() => Host::Name(normalise_name(name)),
            Some(url::Host::Ipv4(ip)) => Host::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Host::Ip(IpAddr::V6(ip)),
            _ => return Err(Refusal::NoHost),
        };
        let port = url.port_or_known_default().ok_or(Refusal::NoHost)?;
        Ok(Self { host, port })
    }

    /// What can be decided without DNS: `Some(Ok)` for an allowed literal address or an
    /// allowlisted name, `Some(Err)` for a refused literal, `None` for a name to resolve.
    pub fn precheck(&self, allow: &Allowlist) -> Option<Result<(), Refusal>> {
        match &self.host {
            Host::Ip(ip) => Some(screen(
                &ip.to_string(),
                false,
                [*ip],
                allow,
                Some(self.port),
            )),
            Host::Name(name) if allow.names(name, Some(self.port)) => Some(Ok(())),
            Host::Name(_) => None,
        }
    }

    /// The whole check: [`Self::precheck`], then the name's addresses from `lookup`.
    pub async fn check(&self, allow: &Allowlist, lookup: &Lookup) -> Result<(), CheckError> {
        if let Some(decided) = self.precheck(allow) {
            return decided.map_err(CheckError::from);
        }
        let Host::Name(name) = &self.host else {
            return Ok(());
        };
        let addresses = lookup(name).await.map_err(|source| CheckError::Lookup {
            host: name.clone(),
            source,
        })?;
        if addresses.is_empty() {
            return Err(CheckError::Lookup {
                host: name.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
            });
        }
        screen(name, true, addresses, allow, Some(self.port)).map_err(CheckError::from)
    }
}

/// Refuses when any of `addresses` is in a refused range that the allowlist does not allow on
/// `port` (`None`: on some port). `resolved` says whether `host` is a name (the refusal then
/// says it resolves there).
pub fn screen(
    host: &str,
    resolved: bool,
    addresses: impl IntoIterator<Item = IpAddr>,
    allow: &Allowlist,
    port: Option<u16>,
) -> Result<(), Refusal> {
    for ip in addresses {
        if let Some(class) = classify(ip) {
            if !allow.allows(ip, port) {
                let host = host.to_owned();
                return Err(if resolved {
                    Refusal::Resolves { host, class }
                } else {
                    Refusal::Address { host, class }
                });
            }
        }
    }
    Ok(())
}

/// A pending DNS answer.
pub type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Resolves a host name to its addresses (the system resolver in services, a table in tests).
pub type Lookup = Arc<dyn Fn(&str) -> LookupFuture + Send + Sync>;

/// The system resolver (`getaddrinfo` on the blocking pool, through tokio).
pub fn system_lookup() -> Lookup {
    Arc::new(|name: &str| {
        let name = name.to_owned();
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((name.as_str(), 0)).await?;
            Ok(addresses.map(|a| a.ip()).collect())
        })
    })
}

/// A webhook URL as shown back: scheme, host and port, the rest replaced by `***`
/// (`https://hooks.slack.com/***`), so a path or query holding a token is never read back.
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(parsed) if parsed.host_str().is_some() => {
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}/***",
                parsed.scheme(),
                parsed.host_str().unwrap_or_default()
            )
        }
        _ => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn table(entries: &[(&str, &[&str])]) -> Lookup {
        let map: HashMap<String, Vec<IpAddr>> = entries
            .iter()
            .map(|(name, ips)| {
                (
                    name.to_string(),
                    ips.iter().map(|ip| ip.parse().unwrap()).collect(),
                )
            })
            .collect();
        let map = Arc::new(map);
        Arc::new(move |name: &str| {
            let found = map.get(name).cloned();
            Box::pin(async move {
                found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name"))
            })
        })
    }

    async fn check(url: &str, allow: &[&str]) -> Result<(), String> {
        let lookup = table(&[
            (
                "hooks.example.com",
                &["93.184.215.14", "2606:2800:21f:cb07::1"],
            ),
            ("internal.example.com", &["10.1.2.3"]),
            ("mixed.example.com", &["93.184.215.14", "127.0.0.1"]),
            ("metadata.example.com", &["169.254.169.254"]),
            ("v6loop.example.com", &["::1"]),
            ("localhost", &["127.0.0.1", "::1"]),
        ]);
        let allow = Allowlist::parse(allow).unwrap();
        let destination = Destination::parse(url).map_err(|e| e.to_string())?;
        destination
            .check(&allow, &lookup)
            .await
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn every_refused_destination_says_why() {
        let cases = [
            ("ftp://hooks.example.com/x", "not an http"),
            ("not a url", "not a URL"),
            (
                "http://user:pw@hooks.example.com/x",
                "user name or password",
            ),
            ("http://user@hooks.example.com/x", "user name or password"),
            (
                "http://127.0.0.1:9000/x",
                "`127.0.0.1` is a loopback address",
            ),
            ("http://2130706433/x", "`127.0.0.1` is a loopback address"),
            ("http://0x7f.1/x", "`127.0.0.1` is a loopback address"),
            ("http://[::1]/x", "`::1` is a loopback address"),
            ("http://[::ffff:127.0.0.1]/x", "loopback"),
            ("http://[::ffff:a9fe:a9fe]/latest", "link-local"),
            ("http://169.254.169.254/latest/meta-data", "link-local"),
            ("http://10.0.0.1/", "private"),
            ("http://172.20.1.1/", "private"),
            ("http://192.168.0.10/", "private"),
            ("http://[fd12::1]/", "private"),
            ("http://100.64.1.1/", "carrier-grade NAT"),
            ("http://224.0.0.251/", "multicast"),
            ("http://0.0.0.0:8080/", "unspecified"),
            ("http://[::]:8080/", "unspecified"),
            (
                "http://localhost:9000/x",
                "`localhost` resolves to a loopback address",
            ),
            ("http://LOCALHOST./x", "`localhost` resolves to a loopback"),
            (
                "http://internal.example.com/x",
                "resolves to a private address",
            ),
            ("http://metadata.example.com/x", "resolves to a link-local"),
            ("http://mixed.example.com/x", "resolves to a loopback"),
            ("http://v6loop.example.com/x", "resolves to a loopback"),
            (
                "http://nowhere.example.com/x",
                "cannot resolve `nowhere.example.com`",
            ),
        ];
        for (url, expected) in cases {
            let err = check(url, &[]).await.expect_err(url);
            assert!(err.contains(expected), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn public_and_allowlisted_destinations_pass() {
        assert_eq!(
            check("https://hooks.example.com/T0/B1/xyz", &[]).await,
            Ok(())
        );
        assert_eq!(check("http://8.8.8.8/x", &[]).await, Ok(()));
        assert_eq!(
            check("http://127.0.0.1:9000/x", &["127.0.0.1:9000"]).await,
            Ok(())
        );
        assert!(check("http://127.0.0.1:9001/x", &["127.0.0.1:9000"])
            .await
            .is_err());
        assert_eq!(
            check("http://[::ffff:127.0.0.1]:9000/", &["127.0.0.1"]).await,
            Ok(())
        );
        assert_eq!(
            check("http://localhost:9000/x", &["localhost:9000"]).await,
            Ok(())
        );
        assert!(check("http://localhost:9001/x", &["localhost:9000"])
            .await
            .is_err());
        assert_eq!(
            check("http://localhost:9000/x", &["127.0.0.0/8", "::1"]).await,
            Ok(())
        );
        assert!(
            check("http://localhost:9000/x", &["127.0.0.0/8"])
                .await
                .is_err(),
            "::1 is not allowed"
        );
        assert_eq!(
            check("http://internal.example.com/", &["10.0.0.0/8"]).await,
            Ok(())
        );
        // A name not resolvable here but named by the operator is not looked up.
        assert_eq!(
            check("http://hooks.corp:8080/", &["hooks.corp"]).await,
            Ok(())
        );
    }

    #[test]
    fn masked_urls_keep_scheme_host_and_port_only() {
        assert_eq!(
            mask_url("https://hooks.slack.com/services/T0/B1/secret?x=1#f"),
            "https://hooks.slack.com/***"
        );
        assert_eq!(
            mask_url("http://127.0.0.1:9000/hook"),
            "http://127.0.0.1:9000/***"
        );
        assert_eq!(mask_url("https://[::1]:8443/x"), "https://[::1]:8443/***");
        assert_eq!(
            mask_url("https://example.com:443/x"),
            "https://example.com/***"
        );
        assert_eq!(mask_url("garbage"), "***");
    }
}
