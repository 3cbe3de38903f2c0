//! What the `rtdash_keys` bucket holds (see [`crate::names::KEYS_BUCKET`]): `key.<key_id>` ->
//! [`KeyRecord`], `used.<key_id>` -> [`UsedRecord`], `link.<link_id>` -> [`LinkRecord`],
//! `secret.session` -> the gateways' session secret (hex).

use super::role::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An API key as stored: never the secret, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key's public id (16 hex characters).
    pub key_id: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// What it may do.
    pub role: Role,
    /// A name for people ("checkout producer", "grafana").
    pub name: String,
    /// SHA-256 of the secret, lowercase hex.
    pub secret_sha256: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Who created it: `operator` or the creating key's id.
    pub created_by: String,
}

/// When a key was last used, written by the service that saw it (at most once a minute per
/// key per process).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedRecord {
    /// RFC 3339.
    pub last_used_at: String,
}

/// A signed dashboard link as stored: only the SHA-256 of its token's secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The link's public id (16 hex characters).
    pub link_id: String,
    /// The dashboard's tenant.
    pub tenant_id: String,
    /// The one dashboard it shows.
    pub dashboard_id: String,
    /// Filters merged into every widget's query (they override the widget's own).
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// Expiry (RFC 3339), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Expiry in Unix milliseconds (what verification compares), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// SHA-256 of the token's secret, lowercase hex.
    pub secret_sha256: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Who created it: `operator` or the creating key's id.
    pub created_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_records_have_the_documented_fields() {
        let record = KeyRecord {
            key_id: "0123456789abcdef".into(),
            tenant_id: "acme".into(),
            role: Role::Editor,
            name: "ci".into(),
            secret_sha256: "ab".into(),
            created_at: "2024-01-15T14:05:32Z".into(),
            created_by: "operator".into(),
        };
        let json = serde_json::to_value(&record).unwrap();
        let mut fields: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "created_at",
                "created_by",
                "key_id",
                "name",
                "role",
                "secret_sha256",
                "tenant_id"
            ]
        );
        assert_eq!(json["role"], "editor");
        assert_eq!(serde_json::from_value::<KeyRecord>(json).unwrap(), record);
    }
}
