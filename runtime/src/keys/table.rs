//! The in-memory side of the key store: the records of the bucket by id, the operator
//! credential, and verification against them (no I/O, so it is tested without a server).

use rtdash_shared::auth::{
    session, KeyRecord, LinkRecord, Principal, Token, TokenKind, UsedRecord,
};
use rtdash_shared::names;
use std::collections::HashMap;
use std::sync::RwLock;

/// The operator credential's id and secret hash.
pub(super) struct Operator {
    pub(super) id: String,
    secret_sha256: String,
}

impl Operator {
    pub(super) fn new(token: &Token) -> Self {
        Self {
            id: token.id.clone(),
            secret_sha256: token.secret_sha256(),
        }
    }
}

#[derive(Default)]
struct Records {
    keys: HashMap<String, KeyRecord>,
    links: HashMap<String, LinkRecord>,
    /// `used.<key_id>` values: RFC 3339 last use per key.
    used: HashMap<String, String>,
    /// `quota.<tenant>` values: the operator's quota settings per tenant (JSON, decoded by
    /// the gateway).
    quotas: HashMap<String, Vec<u8>>,
    /// Bumped on every change of a `quota.<tenant>` value.
    quota_generation: u64,
    session_secret: Option<Vec<u8>>,
}

/// What the bucket holds, by id, and the operator credential.
pub(super) struct KeyTable {
    pub(super) operator: Option<Operator>,
    records: RwLock<Records>,
}

/// A verified credential: the principal, and the key whose use is to be noted.
pub(super) struct Verified {
    pub(super) principal: Principal,
    pub(super) used_key: Option<String>,
}

impl KeyTable {
    pub(super) fn new(operator: Option<&Token>) -> Self {
        Self {
            operator: operator.map(Operator::new),
            records: RwLock::new(Records::default()),
        }
    }

    /// The principal of a presented key or link token at `now_ms`, or `None`.
    pub(super) fn verify(&self, presented: &str, now_ms: i64) -> Option<Verified> {
        let token = Token::parse(presented)?;
        match token.kind {
            TokenKind::Key => self.verify_key(&token),
            TokenKind::Link => self.verify_link(&token, now_ms),
        }
    }

    fn verify_key(&self, token: &Token) -> Option<Verified> {
        if let Some(operator) = &self.operator {
            if token.id == operator.id {
                return token.matches(&operator.secret_sha256).then_some(Verified {
                    principal: Principal::Operator,
                    used_key: None,
                });
            }
        }
        let records = self.records.read().ok()?;
        let record = records.keys.get(&token.id)?;
        if !token.matches(&record.secret_sha256) {
            return None;
        }
        Some(Verified {
            principal: tenant_principal(record),
            used_key: Some(record.key_id.clone()),
        })
    }

    fn verify_link(&self, token: &Token, now_ms: i64) -> Option<Verified> {
        let records = self.records.read().ok()?;
        let link = records.links.get(&token.id)?;
        if !token.matches(&link.secret_sha256) || link.expires_at_ms.is_some_and(|at| at <= now_ms)
        {
            return None;
        }
        Some(Verified {
            principal: Principal::Link {
                tenant: link.tenant_id.clone(),
                dashboard_id: link.dashboard_id.clone(),
                link_id: link.link_id.clone(),
                filters: link.dimensions.clone(),
            },
            used_key: None,
        })
    }

    /// The principal of a session token at `now_ms`, while its key exists.
    pub(super) fn verify_session(&self, token: &str, now_ms: i64) -> Option<Verified> {
        let records = self.records.read().ok()?;
        let secret = records.session_secret.as_deref()?;
        let key_id = session::verify(secret, token, now_ms / 1000)?;
        if self.operator.as_ref().is_some_and(|o| o.id == key_id) {
            return Some(Verified {
                principal: Principal::Operator,
                used_key: None,
            });
        }
        let record = records.keys.get(&key_id)?;
        Some(Verified {
            principal: tenant_principal(record),
            used_key: Some(key_id),
        })
    }

    pub(super) fn sign_session(&self, key_id: &str, expiry_secs: i64) -> Option<String> {
        let records = self.records.read().ok()?;
        let secret = records.session_secret.as_deref()?;
        Some(session::sign(secret, key_id, expiry_secs))
    }

    pub(super) fn has_session_secret(&self) -> bool {
        self.records
            .read()
            .is_ok_and(|records| records.session_secret.is_some())
    }

    pub(super) fn keys(&self, tenant: Option<&str>) -> Vec<(KeyRecord, Option<String>)> {
        let Ok(records) = self.records.read() else {
            return Vec::new();
        };
        let mut keys: Vec<(KeyRecord, Option<String>)> = records
            .keys
            .values()
            .filter(|record| tenant.is_none_or(|tenant| record.tenant_id == tenant))
            .map(|record| (record.clone(), records.used.get(&record.key_id).cloned()))
            .collect();
        keys.sort_by(|a, b| (&a.0.created_at, &a.0.key_id).cmp(&(&b.0.created_at, &b.0.key_id)));
        keys
    }

    pub(super) fn key(&self, key_id: &str) -> Option<KeyRecord> {
        self.records.read().ok()?.keys.get(key_id).cloned()
    }

    pub(super) fn links(&self, tenant: &str, dashboard_id: &str) -> Vec<LinkRecord> {
        let Ok(records) = self.records.read() else {
            return Vec::new();
        };
        let mut links: Vec<LinkRecord> = records
            .links
            .values()
            .filter(|link| link.tenant_id == tenant && link.dashboard_id == dashboard_id)
            .cloned()
            .collect();
        links.sort_by(|a, b| (&a.created_at, &a.link_id).cmp(&(&b.created_at, &b.link_id)));
        links
    }

    pub(super) fn link(&self, link_id: &str) -> Option<LinkRecord> {
        self.records.read().ok()?.links.get(link_id).cloned()
    }

    /// The stored quota settings of `tenant` (`quota.<tenant>`), undecoded.
    pub(super) fn quota(&self, tenant: &str) -> Option<Vec<u8>> {
        self.records.read().ok()?.quotas.get(tenant).cloned()
    }

    /// Every tenant's stored quota settings, undecoded, and the generation they are of.
    pub(super) fn quotas(&self) -> (u64, Vec<(String, Vec<u8>)>) {
        let Ok(records) = self.records.read() else {
            return (0, Vec::new());
        };
        let all = records
            .quotas
            .iter()
            .map(|(tenant, value)| (tenant.clone(), value.clone()))
            .collect();
        (records.quota_generation, all)
    }

    /// A number that changes whenever a tenant's quota settings change.
    pub(super) fn quota_generation(&self) -> u64 {
        self.records
            .read()
            .map_or(0, |records| records.quota_generation)
    }

    /// Applies one bucket entry (`None`: deleted); returns whether a key or link was removed.
    /// Unknown keys are ignored; a record that does not decode is logged and verifies
    /// nothing.
    pub(super) fn apply(&self, key: &str, value: Option<&[u8]>) -> bool {
        let Ok(mut records) = self.records.write() else {
            return false;
        };
        if let Some(id) = key.strip_prefix("key.") {
            match value.map(serde_json::from_slice::<KeyRecord>) {
                Some(Ok(record)) if record.key_id == id => {
                    records.keys.insert(id.to_owned(), record);
                    false
                }
                Some(_) => {
                    tracing::warn!(%key, "a key record does not decode; it verifies nothing");
                    records.keys.remove(id).is_some()
                }
                None => records.keys.remove(id).is_some(),
            }
        } else if let Some(id) = key.strip_prefix("link.") {
            match value.map(serde_json::from_slice::<LinkRecord>) {
                Some(Ok(record)) if record.link_id == id => {
                    records.links.insert(id.to_owned(), record);
                    false
                }
                Some(_) => {
                    tracing::warn!(%key, "a link record does not decode; it verifies nothing");
                    records.links.remove(id).is_some()
                }
                None => records.links.remove(id).is_some(),
            }
        } else if let Some(id) = key.strip_prefix("used.") {
            match value.map(serde_json::from_slice::<UsedRecord>) {
                Some(Ok(used)) => records.used.insert(id.to_owned(), used.last_used_at),
                _ => records.used.remove(id),
            };
            false
        } else if let Some(tenant) = key.strip_prefix("quota.") {
            match value {
                Some(value) => records.quotas.insert(tenant.to_owned(), value.to_vec()),
                None => records.quotas.remove(tenant),
            };
            records.quota_generation += 1;
            false
        } else if key == names::SESSION_SECRET_KEY {
            records.session_secret = value
                .and_then(|value| std::str::from_utf8(value).ok())
                .map(|text| text.trim().as_bytes().to_vec())
                .filter(|secret| secret.len() >= 32);
            false
        } else {
            false
        }
    }
}

fn tenant_principal(record: &KeyRecord) -> Principal {
    Principal::Tenant {
        tenant: record.tenant_id.clone(),
        role: record.role,
        key_id: record.key_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::auth::Role;
    use std::collections::BTreeMap;

    fn key_record(token: &Token, tenant: &str, role: Role) -> Vec<u8> {
        serde_json::to_vec(&KeyRecord {
            key_id: token.id.clone(),
            tenant_id: tenant.into(),
            role,
            name: "test".into(),
            secret_sha256: token.secret_sha256(),
            created_at: "2024-01-15T14:05:32Z".into(),
            created_by: "operator".into(),
        })
        .unwrap()
    }

    #[test]
    fn keys_verify_with_their_secret_until_removed() {
        let operator = Token::generate(TokenKind::Key).unwrap();
        let table = KeyTable::new(Some(&operator));
        let principal = |text: &str| table.verify(text, 0).map(|v| v.principal);
        assert_eq!(principal(&operator.reveal()), Some(Principal::Operator));
        let key = Token::generate(TokenKind::Key).unwrap();
        assert_eq!(principal(&key.reveal()), None, "unknown");
        table.apply(
            &names::key_record_key(&key.id),
            Some(&key_record(&key, "acme", Role::Viewer)),
        );
        let verified = table.verify(&key.reveal(), 0).unwrap();
        assert_eq!(
            verified.principal,
            Principal::Tenant {
                tenant: "acme".into(),
                role: Role::Viewer,
                key_id: key.id.clone()
            }
        );
        assert_eq!(verified.used_key.as_deref(), Some(key.id.as_str()));
        let forged = format!("rtd_{}_{}", key.id, "A".repeat(43));
        assert_eq!(principal(&forged), None, "right id, wrong secret");
        let forged_operator = format!("rtd_{}_{}", operator.id, "A".repeat(43));
        assert_eq!(principal(&forged_operator), None);
        assert!(
            table.apply(&names::key_record_key(&key.id), None),
            "removal reported"
        );
        assert_eq!(principal(&key.reveal()), None, "revoked");
        assert!(
            !table.apply("quota.acme", Some(b"{}")),
            "other records are ignored"
        );
        // A record stored under another id verifies nothing.
        let other = Token::generate(TokenKind::Key).unwrap();
        table.apply(
            &names::key_record_key(&other.id),
            Some(&key_record(&key, "acme", Role::Admin)),
        );
        assert_eq!(principal(&other.reveal()), None);
    }

    #[test]
    fn links_verify_until_they_expire_or_are_removed() {
        let table = KeyTable::new(None);
        let token = Token::generate(TokenKind::Link).unwrap();
        let record = LinkRecord {
            link_id: token.id.clone(),
            tenant_id: "acme".into(),
            dashboard_id: "d1".into(),
            dimensions: BTreeMap::from([("region".into(), "eu".into())]),
            expires_at: None,
            expires_at_ms: Some(1_000),
            secret_sha256: token.secret_sha256(),
            created_at: "2024-01-15T14:05:32Z".into(),
            created_by: "k".into(),
        };
        table.apply(
            &names::link_record_key(&token.id),
            Some(&serde_json::to_vec(&record).unwrap()),
        );
        let verified = table.verify(&token.reveal(), 999).unwrap();
        assert!(
            matches!(verified.principal, Principal::Link { ref dashboard_id, ref filters, .. }
            if dashboard_id == "d1" && filters["region"] == "eu")
        );
        assert!(table.verify(&token.reveal(), 1_000).is_none(), "expired");
        table.apply(&names::link_record_key(&token.id), None);
        assert!(table.verify(&token.reveal(), 0).is_none(), "revoked");
    }

    #[test]
    fn sessions_hold_while_their_key_exists() {
        let operator = Token::generate(TokenKind::Key).unwrap();
        let table = KeyTable::new(Some(&operator));
        let key = Token::generate(TokenKind::Key).unwrap();
        table.apply(
            &names::key_record_key(&key.id),
            Some(&key_record(&key, "acme", Role::Editor)),
        );
        assert!(table.sign_session(&key.id, 100).is_none(), "no secret yet");
        table.apply(names::SESSION_SECRET_KEY, Some(&[b'a'; 64]));
        let session = table.sign_session(&key.id, 100).unwrap();
        assert!(table.verify_session(&session, 99_000).is_some());
        assert!(table.verify_session(&session, 100_000).is_none(), "expired");
        let operator_session = table.sign_session(&operator.id, 100).unwrap();
        assert_eq!(
            table
                .verify_session(&operator_session, 0)
                .map(|v| v.principal),
            Some(Principal::Operator)
        );
        table.apply(&names::key_record_key(&key.id), None);
        assert!(
            table.verify_session(&session, 0).is_none(),
            "the key was revoked"
        );
    }
}
