//! The alert rules in force: the tenants' rules from the config bucket (`alert.<tenant>.<id>`,
//! watched, so a new, changed or deleted rule applies from the next window without a
//! restart) plus the built-in pipeline self-alert rules ([`super::builtin`]). One watch of
//! `alert.>` per process: the evaluator reads the [`RuleBook`], and the notifier's
//! [`Destinations`](crate::notifier::destinations::Destinations) follow it.

use async_nats::jetstream::kv;
use rtdash_runtime::kv::{follow, Change};
use rtdash_shared::alert::{AlertRule, EvaluateOn, ANY_VALUE};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Tenant of the built-in rules: they watch the series of every tenant.
pub const ANY_TENANT: &str = ANY_VALUE;

/// Rules indexed by (tenant, metric). Immutable; replaced as a whole on every change.
#[derive(Debug, Default)]
pub struct RuleIndex {
    /// tenant -> metric -> rules.
    by_tenant: HashMap<String, HashMap<String, Vec<Arc<AlertRule>>>>,
    /// metric -> built-in rules (any tenant).
    any_tenant: HashMap<String, Vec<Arc<AlertRule>>>,
    /// (tenant, id) -> rule; built-ins under [`ANY_TENANT`].
    by_id: HashMap<(String, String), Arc<AlertRule>>,
}

impl RuleIndex {
    /// An index of `rules` (built-ins have tenant [`ANY_TENANT`]).
    pub fn new(rules: impl IntoIterator<Item = AlertRule>) -> Self {
        let mut index = RuleIndex::default();
        for rule in rules {
            let rule = Arc::new(rule);
            index
                .by_id
                .insert((rule.tenant_id.clone(), rule.id.clone()), Arc::clone(&rule));
            if rule.tenant_id == ANY_TENANT {
                index
                    .any_tenant
                    .entry(rule.metric_name.clone())
                    .or_default()
                    .push(rule);
            } else {
                index
                    .by_tenant
                    .entry(rule.tenant_id.clone())
                    .or_default()
                    .entry(rule.metric_name.clone())
                    .or_default()
                    .push(rule);
            }
        }
        index
    }

    /// The rules that may watch series of (`tenant`, `metric`).
    pub fn rules_for<'a>(
        &'a self,
        tenant: &str,
        metric: &str,
    ) -> impl Iterator<Item = &'a Arc<AlertRule>> + 'a {
        let own = self
            .by_tenant
            .get(tenant)
            .and_then(|metrics| metrics.get(metric))
            .into_iter()
            .flatten();
        let builtin = self.any_tenant.get(metric).into_iter().flatten();
        own.chain(builtin)
    }

    /// Whether any rule looks at (`tenant`, `metric`): `None` if none, `Some(true)` if one of
    /// them evaluates provisional values.
    pub fn interest(&self, tenant: &str, metric: &str) -> Option<bool> {
        let mut any = None;
        for rule in self.rules_for(tenant, metric) {
            if rule.evaluate_on == EvaluateOn::Provisional {
                return Some(true);
            }
            any = Some(false);
        }
        any
    }

    /// The rule `id` that applies to series of `tenant` (the tenant's own, or a built-in).
    pub fn get(&self, tenant: &str, id: &str) -> Option<&Arc<AlertRule>> {
        self.by_id
            .get(&(tenant.to_owned(), id.to_owned()))
            .or_else(|| self.by_id.get(&(ANY_TENANT.to_owned(), id.to_owned())))
    }

    /// Every rule, built-ins included (in no particular order).
    pub fn rules(&self) -> impl Iterator<Item = &Arc<AlertRule>> + '_ {
        self.by_id.values()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Told every new [`RuleIndex`], synchronously, before the book's readers see it.
type Listener = Box<dyn Fn(&RuleIndex) + Send + Sync>;

/// The rules in force, shared by the observer (filtering), the evaluator and the notifier.
pub struct RuleBook {
    current: RwLock<Arc<RuleIndex>>,
    builtin: Vec<AlertRule>,
    /// Counts the changes; 0 until the stored rules were first loaded.
    changed: watch::Sender<u64>,
    listeners: Mutex<Vec<Listener>>,
}

impl std::fmt::Debug for RuleBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleBook")
            .field("rules", &self.current().len())
            .field("changes", &*self.changed.borrow())
            .finish_non_exhaustive()
    }
}

impl RuleBook {
    /// A book holding only the `builtin` rules (see [`super::builtin`]) until the stored ones
    /// are loaded.
    pub fn new(builtin: Vec<AlertRule>) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        Arc::new(Self {
            current: RwLock::new(Arc::new(RuleIndex::new(builtin.clone()))),
            builtin,
            changed,
            listeners: Mutex::new(Vec::new()),
        })
    }

    /// Calls `listener` with the rules in force now, then with every new index as it is put
    /// in force (under the book's listener lock, before [`current`](Self::current) returns
    /// it: a reader that sees a change finds its listeners already told).
    pub fn on_change(&self, listener: impl Fn(&RuleIndex) + Send + Sync + 'static) {
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        listener(&self.current());
        listeners.push(Box::new(listener));
    }

    /// Returns once the bucket's stored rules have been loaded (at once if they have).
    pub async fn loaded(&self) {
        let mut changes = self.changed.subscribe();
        let _ = changes.wait_for(|n| *n > 0).await;
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<RuleIndex> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Notified (with a counter) after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Puts the built-ins and `stored` (the tenants' rules by config key) in force.
    pub(crate) fn replace(&self, stored: &HashMap<String, AlertRule>) {
        let index = Arc::new(RuleIndex::new(
            self.builtin.iter().cloned().chain(stored.values().cloned()),
        ));
        metrics::gauge!(crate::metrics::ALERT_RULES).set(index.len() as f64);
        {
            let listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
            for listener in listeners.iter() {
                listener(&index);
            }
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = index;
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Watches `alert.>` in the config bucket until `stop` ([`loaded`](Self::loaded) returns
    /// once the bucket's current rules are in force). Reads the current rules, then follows
    /// the changes from the next revision; a broken watch starts over (after a backoff).
    pub async fn watch(
        self: Arc<Self>,
        js: async_nats::jetstream::Context,
        kv: kv::Store,
        stop: CancellationToken,
    ) {
        let mut stored: HashMap<String, AlertRule> = HashMap::new();
        let apply_change = |change: Change<'_>| {
            match change {
                Change::Snapshot(entries) => {
                    stored.clear();
                    for entry in entries {
                        apply(&mut stored, &entry.key, Some(&entry.value[..]));
                    }
                }
                Change::Put { key, value } => {
                    apply(&mut stored, key, Some(value));
                    tracing::debug!(%key, rules = stored.len(), "alert rules changed");
                }
                Change::Delete { key } => {
                    apply(&mut stored, key, None);
                    tracing::debug!(%key, rules = stored.len(), "alert rules changed");
                }
            }
            self.replace(&stored);
        };
        follow(js, kv, "alert.>", "alert rules", apply_change, None, stop).await;
    }
}

fn apply(stored: &mut HashMap<String, AlertRule>, key: &str, value: Option<&[u8]>) {
    match value.map(|v| parse_rule(key, v)) {
        Some(Ok(rule)) => {
            stored.insert(key.to_owned(), rule);
        }
        Some(Err(problem)) => {
            tracing::warn!(%key, %problem, "alert rule ignored");
            stored.remove(key);
        }
        None => {
            stored.remove(key);
        }
    }
}

/// Why a stored rule is ignored.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// It does not decode.
    #[error("not a rule: {0}")]
    Decode(#[from] serde_json::Error),
    /// Its key does not name its tenant and id.
    #[error("stored under {stored}, but it is {expected}")]
    Key {
        /// The key it is stored under.
        stored: String,
        /// The key it should be stored under.
        expected: String,
    },
    /// It is not a valid rule.
    #[error("{0}")]
    Invalid(String),
}

/// A stored rule, checked: it decodes, its key names its tenant and id, and it is valid.
pub fn parse_rule(key: &str, value: &[u8]) -> Result<AlertRule, RuleError> {
    let rule: AlertRule = serde_json::from_slice(value)?;
    let expected = rtdash_shared::names::alert_config_key(&rule.tenant_id, &rule.id);
    if key != expected {
        return Err(RuleError::Key {
            stored: key.to_owned(),
            expected,
        });
    }
    rule.validate().map_err(RuleError::Invalid)?;
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::alert::Condition;
    use rtdash_shared::stat::Stat;
    use std::collections::BTreeMap;

    fn rule(tenant: &str, id: &str, metric: &str, provisional: bool) -> AlertRule {
        AlertRule {
            id: id.into(),
            tenant_id: tenant.into(),
            name: String::new(),
            description: String::new(),
            metric_name: metric.into(),
            dimensions: BTreeMap::new(),
            stat: Stat::Count,
            condition: Condition::Gt,
            threshold: 1.0,
            notify_channel: "http://127.0.0.1:9/".into(),
            for_windows: 1,
            evaluate_on: if provisional {
                EvaluateOn::Provisional
            } else {
                EvaluateOn::Final
            },
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn rules_are_found_by_tenant_and_metric_with_builtins_for_everyone() {
        let index = RuleIndex::new([
            rule("t1", "a", "m", false),
            rule("t1", "b", "m", true),
            rule("t2", "c", "m", false),
            rule(ANY_TENANT, "_builtin", "pipeline_late", false),
        ]);
        let ids = |t: &str, m: &str| -> Vec<String> {
            index.rules_for(t, m).map(|r| r.id.clone()).collect()
        };
        assert_eq!(ids("t1", "m"), ["a", "b"]);
        assert_eq!(ids("t2", "m"), ["c"]);
        assert_eq!(ids("t3", "pipeline_late"), ["_builtin"]);
        assert_eq!(index.interest("t1", "m"), Some(true));
        assert_eq!(index.interest("t2", "m"), Some(false));
        assert_eq!(index.interest("t2", "other"), None);
        assert!(index.get("t1", "a").is_some());
        assert!(index.get("t2", "a").is_none(), "another tenant's rule");
        assert!(index.get("t9", "_builtin").is_some());
    }

    #[test]
    fn stored_rules_must_sit_under_their_own_key() {
        let r = rule("t1", "a", "m", false);
        let bytes = serde_json::to_vec(&r).unwrap();
        assert!(parse_rule("alert.t1.a", &bytes).is_ok());
        assert!(parse_rule("alert.t2.a", &bytes).is_err());
        assert!(parse_rule("alert.t1.a", b"{").is_err());
    }
}
