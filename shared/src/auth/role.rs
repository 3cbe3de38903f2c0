//! Roles and the principal of a request.
//!
//! | role | may |
//! |---|---|
//! | `ingest` | send events to edge agents; nothing else |
//! | `viewer` | read dashboards, metrics, streams, status, definitions, alert rules |
//! | `editor` | also create, change and delete dashboards, widgets, metric definitions, alert rules |
//! | `admin` | also manage the tenant's keys and dashboard links |
//!
//! `viewer < editor < admin`; `ingest` is apart: it reads nothing, and no reading key can
//! ingest (a producer gets a key of its own).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A key's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum Role {
    /// Sends events.
    Ingest,
    /// Reads.
    Viewer,
    /// Reads and changes configuration.
    Editor,
    /// Also manages keys and links.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 4] = [Role::Ingest, Role::Viewer, Role::Editor, Role::Admin];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// Whether a key of this role may do what needs `required`: `ingest` only with an
    /// `ingest` key; anything else with a reading key at least as high.
    pub fn allows(self, required: Role) -> bool {
        match (self, required) {
            (Role::Ingest, required) => required == Role::Ingest,
            (_, Role::Ingest) => false,
            (own, required) => own >= required,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of `ingest`, `viewer`, `editor`, `admin`.
#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`: use ingest, viewer, editor or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| UnknownRole(text.to_owned()))
    }
}

/// Who a request is, once its credential is verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The operator credential: spans tenants (global definitions, any tenant's keys); must
    /// name the tenant of a tenant-scoped call.
    Operator,
    /// A tenant's key.
    Tenant {
        /// The key's tenant.
        tenant: String,
        /// The key's role.
        role: Role,
        /// The key (for revocation and last-used).
        key_id: String,
    },
    /// A signed dashboard link: read-only, one dashboard, fixed filters.
    Link {
        /// The dashboard's tenant.
        tenant: String,
        /// The one dashboard it shows.
        dashboard_id: String,
        /// The link.
        link_id: String,
        /// Dimension filters merged into every widget query.
        filters: BTreeMap<String, String>,
    },
}

impl Principal {
    /// The tenant the principal belongs to (`None` for the operator).
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Principal::Operator => None,
            Principal::Tenant { tenant, .. } | Principal::Link { tenant, .. } => Some(tenant),
        }
    }

    /// Whether the principal may do what needs `required` in its own tenant. The operator may
    /// do everything (it can create any key anyway, so letting it act directly adds no power);
    /// a link only reads, and only what [`Principal::Link`] names, which the caller checks.
    pub fn allows(&self, required: Role) -> bool {
        match self {
            Principal::Operator => true,
            Principal::Tenant { role, .. } => role.allows(required),
            Principal::Link { .. } => required == Role::Viewer,
        }
    }

    /// The key or link id, for logs (never a secret).
    pub fn id(&self) -> &str {
        match self {
            Principal::Operator => "operator",
            Principal::Tenant { key_id, .. } => key_id,
            Principal::Link { link_id, .. } => link_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_ingest_is_apart() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Editor.allows(Role::Editor));
        assert!(!Role::Viewer.allows(Role::Editor));
        assert!(!Role::Editor.allows(Role::Admin));
        assert!(Role::Ingest.allows(Role::Ingest));
        for role in [Role::Viewer, Role::Editor, Role::Admin] {
            assert!(!Role::Ingest.allows(role), "ingest cannot {role}");
            assert!(!role.allows(Role::Ingest), "{role} cannot ingest");
        }
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn principals_name_their_tenant() {
        let key = Principal::Tenant {
            tenant: "acme".into(),
            role: Role::Viewer,
            key_id: "k".into(),
        };
        assert_eq!(key.tenant(), Some("acme"));
        assert!(key.allows(Role::Viewer) && !key.allows(Role::Editor));
        assert_eq!(Principal::Operator.tenant(), None);
        assert!(Principal::Operator.allows(Role::Admin));
        let link = Principal::Link {
            tenant: "acme".into(),
            dashboard_id: "d".into(),
            link_id: "l".into(),
            filters: BTreeMap::new(),
        };
        assert!(link.allows(Role::Viewer) && !link.allows(Role::Editor));
        assert!(!link.allows(Role::Ingest));
    }
}
