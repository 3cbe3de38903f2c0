//! The values in KV `rtdash_leases`: partition leases and membership keys.

use rtdash_shared::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// Value of a partition lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseValue {
    /// Owning aggregator.
    pub owner: String,
    /// Wall-clock expiry.
    pub expires_at_ms: UnixMillis,
    /// Ownership epoch (KV revision at acquisition).
    pub epoch: u64,
    /// Random per acquisition: tells our own write from another owner's.
    pub token: String,
}

/// Value of a membership key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberValue {
    /// Aggregator id.
    pub id: String,
    /// Wall-clock expiry.
    pub expires_at_ms: UnixMillis,
}

/// Membership key of `id`.
pub fn member_key(id: &str) -> String {
    format!("member.{id}")
}
