//! Where webhooks may go (`alerts.notifier.allow_destinations`, `docs/security.md`): the
//! check made before every delivery, and the resolver of the webhook client, which hands the
//! connector only addresses that pass.
//!
//! - Before every attempt, [`Guard::precheck`] refuses a URL with user-info, or whose literal
//!   address is on loopback, link-local, a private or shared range, multicast or unspecified
//!   (IPv4-mapped IPv6 forms included), unless the allowlist names it. reqwest does not ask
//!   the resolver about literal addresses, so this check is the one for them.
//! - Names are resolved by [`GuardedResolver`], the client's DNS resolver: when any address of
//!   the name is refused, the connection is not made (the error carries the [`Refusal`]). The
//!   connection goes to the addresses that were checked, so a name rebound between a check
//!   and the connection cannot reach inside. Redirects are not followed at all.
//!
//! A refused delivery is recorded as `failed` with the reason (not retried: the rule must be
//! changed, or the operator must allow the destination).

use super::allowlist::normalise_name;
use super::{screen, system_lookup, Allowlist, Destination, Lookup, Refusal};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;

/// The destination policy of one notifier.
#[derive(Clone)]
pub struct Guard {
    allow: Arc<Allowlist>,
    lookup: Lookup,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl Guard {
    /// The policy with `allow` as exceptions, resolving names with the system resolver.
    pub fn new(allow: Allowlist) -> Self {
        Self::with_lookup(allow, system_lookup())
    }

    /// The policy resolving names with `lookup` (tests use a table).
    pub fn with_lookup(allow: Allowlist, lookup: Lookup) -> Self {
        Self {
            allow: Arc::new(allow),
            lookup,
        }
    }

    /// What can be refused before a request: the URL's form and a literal address.
    pub fn precheck(&self, url: &str) -> Result<(), Refusal> {
        let destination = Destination::parse(url)?;
        match destination.precheck(&self.allow) {
            Some(decided) => decided,
            None => Ok(()),
        }
    }

    /// The resolver to give the webhook client.
    pub fn resolver(&self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            guard: self.clone(),
        })
    }
}

/// A DNS resolver that answers only with addresses the policy allows (see the module docs).
#[derive(Debug)]
pub struct GuardedResolver {
    guard: Guard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = normalise_name(name.as_str());
        let guard = self.guard.clone();
        Box::pin(async move {
            let addresses = (guard.lookup)(&host).await?;
            // A name the operator allows is vouched for whatever it resolves to; the port
            // was checked against the allowlist entry before the request (`precheck`).
            if !guard.allow.names(&host, None) {
                screen(&host, true, addresses.iter().copied(), &guard.allow, None)?;
            }
            let addrs: Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

/// The [`Refusal`] in `err`'s chain of causes, if the resolver refused the destination.
pub fn refusal_in(err: &(dyn std::error::Error + 'static)) -> Option<Refusal> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(refusal) = err.downcast_ref::<Refusal>() {
            return Some(refusal.clone());
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::IpAddr;

    fn table(entries: &[(&str, &str)]) -> Lookup {
        let map: HashMap<String, IpAddr> = entries
            .iter()
            .map(|(name, ip)| (name.to_string(), ip.parse().unwrap()))
            .collect();
        let map = Arc::new(map);
        Arc::new(move |name: &str| {
            let found = map.get(name).copied();
            Box::pin(async move {
                found
                    .map(|ip| vec![ip])
                    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no name"))
            })
        })
    }

    #[test]
    fn literal_inward_addresses_and_user_info_are_refused_before_any_request() {
        let guard = Guard::with_lookup(Allowlist::parse(&["127.0.0.1:9000"]).unwrap(), table(&[]));
        for url in [
            "http://127.0.0.1:9001/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/",
            "http://10.1.2.3/",
            "http://[fc00::1]/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://0.0.0.0/",
            "http://user:pw@hooks.example.com/",
            "file:///etc/passwd",
        ] {
            assert!(guard.precheck(url).is_err(), "{url}");
        }
        assert_eq!(guard.precheck("http://127.0.0.1:9000/hook"), Ok(()));
        assert_eq!(guard.precheck("https://hooks.example.com/x"), Ok(()));
    }

    /// The client connects through the resolver, so a name resolving inward is never
    /// connected to, and the error names why.
    #[tokio::test]
    async fn the_client_does_not_connect_to_a_name_that_resolves_inward() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let lookup = table(&[
            ("inside.example", "127.0.0.1"),
            ("ops.example", "127.0.0.1"),
        ]);
        let guard = Guard::with_lookup(Allowlist::parse(&["ops.example"]).unwrap(), lookup);
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(guard.resolver())
            .build()
            .unwrap();
        let err = client
            .get(format!("http://inside.example:{port}/"))
            .send()
            .await
            .expect_err("refused");
        let refusal = refusal_in(&err).expect("the refusal is in the chain");
        assert_eq!(
            refusal.to_string(),
            "`inside.example` resolves to a loopback address"
        );
        // An allowlisted name connects (the listener accepts, the answer never comes).
        let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            client.get(format!("http://ops.example:{port}/")).send(),
        )
        .await;
        assert!(accepted.await.unwrap(), "connected to the allowlisted name");
    }
}
