//! Where outbound requests that tenants choose (alert webhooks) may go: not to this machine,
//! the local network or the cloud's metadata service, unless the operator allows it.
//!
//! - [`ip`]: the address ranges refused, by class;
//! - [`allowlist`]: the operator's exceptions (`host[:port]`, `ip[:port]`, `cidr`);
//! - [`check`]: one URL's form, then its literal address or its name's addresses;
//! - [`guard`]: the policy a webhook client enforces at connection time (its DNS resolver);
//! - [`webhook`]: the webhook client (the notifier's deliveries, the gateway's test
//!   notifications).
//!
//! The gateway checks a webhook URL when a rule is written (best effort: DNS may answer
//! differently later); the notifier checks it again before every delivery and its HTTP
//! client connects only to addresses that pass ([`guard`]), so
//! a name rebound between the check and the connection is caught. See `docs/security.md`.

pub mod allowlist;
pub mod check;
pub mod guard;
pub mod ip;
pub mod webhook;

pub use allowlist::{Allowlist, AllowlistError};
pub use check::{
    mask_url, screen, system_lookup, CheckError, Destination, Host, Lookup, LookupFuture, Refusal,
};
pub use ip::{classify, AddressClass};
