//! Credentials and roles (issue #16), as pure data and functions: what a key looks like, how
//! it is hashed and compared, which role may do what, who a request is ([`Principal`]), the
//! records kept in the `rtdash_keys` bucket ([`names::KEYS_BUCKET`](crate::names::KEYS_BUCKET))
//! and the signed session token of browsers.
//!
//! - [`token`]: `rtd_<key_id>_<secret>` keys and `rtl_<link_id>_<secret>` link tokens: generate,
//!   parse, hash (SHA-256), compare in constant time;
//! - [`role`]: [`Role`] (ordered `viewer < editor < admin`; `ingest` apart) and [`Principal`];
//! - [`record`]: the stored key, last-used and link records;
//! - [`session`]: `<key_id>.<expiry>.<hmac>` session tokens (HMAC-SHA256);
//! - [`is_tenant_id`]: ids beginning with `_` are never tenants.
//!
//! Why SHA-256 and not a slow password hash: a secret is 256 random bits from the OS, so
//! nobody can guess it from its hash whatever the hash costs; a slow hash only protects
//! low-entropy secrets such as passwords (docs/security.md).

pub mod record;
pub mod role;
pub mod session;
pub mod token;

pub use record::{KeyRecord, LinkRecord, UsedRecord};
pub use role::{Principal, Role};
pub use token::{constant_time_eq, sha256_hex, Token, TokenKind};

use crate::event::is_identifier;

/// Longest tenant id, in bytes.
pub const MAX_TENANT_LEN: usize = 128;

/// Whether `id` can name a tenant: 1 to 128 characters from `[A-Za-z0-9_-]`, not beginning
/// with `_` (such ids are rtdash's own: `_all` global definitions, `_pipeline` series,
/// `_unknown` dead letters).
pub fn is_tenant_id(id: &str) -> bool {
    is_identifier(id, MAX_TENANT_LEN) && !id.starts_with('_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscore_ids_are_never_tenants() {
        assert!(is_tenant_id("acme"));
        assert!(is_tenant_id("a_b-c9"));
        for id in ["_all", "_pipeline", "_unknown", "_x", "", "a.b", "a b"] {
            assert!(!is_tenant_id(id), "{id}");
        }
        assert!(!is_tenant_id(&"a".repeat(129)));
    }
}
