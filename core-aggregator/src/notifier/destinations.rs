//! Where each rule's notifications go. Transitions on `RTDASH_ALERTS` do not carry the rule's
//! webhook (its URL may hold a token, and the stream is read by more than the notifier): the
//! notifier follows the rules in force ([`RuleBook`], the process's one watch of
//! `alert.<tenant>.<id>` in the config bucket, with the built-in rules' webhook from the
//! config) and looks the destination up at delivery, so an edited URL applies to the next
//! delivery. A deleted rule's destination is kept for [`DELETED_KEPT`], so the `resolved`
//! notification that its deletion causes still reaches it.

use crate::alerts::rules::{RuleBook, RuleIndex, ANY_TENANT};
use rtdash_shared::alert::AlertTransition;
use rtdash_shared::names::alert_config_key;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a deleted rule's webhook still receives the transitions its deletion caused.
pub const DELETED_KEPT: Duration = Duration::from_secs(3600);
/// At most this many deleted rules are remembered (the oldest are forgotten first).
const DELETED_LIMIT: usize = 10_000;

/// The webhook of every rule, by config key; the gateway bounds how many rules a tenant has.
#[derive(Clone, Debug)]
pub struct Destinations {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// config key -> webhook URL.
    current: HashMap<String, String>,
    /// config key -> (webhook URL, when the rule was deleted).
    deleted: HashMap<String, (String, Instant)>,
    /// built-in rule id -> webhook URL.
    builtin: HashMap<String, String>,
}

impl Destinations {
    /// Follows `rules` from now on (it tells every change before its readers see it).
    pub fn new(rules: &RuleBook) -> Self {
        let destinations = Self {
            inner: Arc::new(RwLock::new(Inner::default())),
        };
        let following = destinations.clone();
        rules.on_change(move |index| following.sync(index));
        destinations
    }

    /// The webhook `transition` goes to: the one it carries (transitions published before
    /// they stopped carrying it), else its rule's, else `None` (no such rule any more).
    pub fn webhook(&self, transition: &AlertTransition) -> Option<String> {
        if !transition.notify_channel.is_empty() {
            return Some(transition.notify_channel.clone());
        }
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        if let Some(url) = inner.builtin.get(&transition.rule_id) {
            return Some(url.clone());
        }
        let key = alert_config_key(&transition.tenant_id, &transition.rule_id);
        inner.current.get(&key).cloned().or_else(|| {
            inner
                .deleted
                .get(&key)
                .filter(|(_, at)| at.elapsed() < DELETED_KEPT)
                .map(|(url, _)| url.clone())
        })
    }

    /// Takes the webhooks of the rules in `index`; the rules no longer in it are deleted.
    fn sync(&self, index: &RuleIndex) {
        let mut current = HashMap::with_capacity(index.len());
        let mut builtin = HashMap::new();
        for rule in index.rules() {
            if rule.tenant_id == ANY_TENANT {
                builtin.insert(rule.id.clone(), rule.notify_channel.clone());
            } else {
                current.insert(
                    alert_config_key(&rule.tenant_id, &rule.id),
                    rule.notify_channel.clone(),
                );
            }
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        inner.builtin = builtin;
        let before = std::mem::replace(&mut inner.current, current);
        for (key, url) in before {
            if !inner.current.contains_key(&key) {
                inner.forget(key, url);
            }
        }
        // A rule stored again under a deleted one's key is current, not deleted.
        let Inner {
            current, deleted, ..
        } = &mut *inner;
        deleted.retain(|key, _| !current.contains_key(key));
    }
}

impl Inner {
    /// Keeps a deleted rule's webhook for [`DELETED_KEPT`] (bounded by [`DELETED_LIMIT`]).
    fn forget(&mut self, key: String, url: String) {
        self.deleted
            .retain(|_, (_, at)| at.elapsed() < DELETED_KEPT);
        if self.deleted.len() >= DELETED_LIMIT {
            if let Some(oldest) = self
                .deleted
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(key, _)| key.clone())
            {
                self.deleted.remove(&oldest);
            }
        }
        self.deleted.insert(key, (url, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::alert::{AlertRule, AlertState, Condition, EvaluateOn};
    use rtdash_shared::stat::Stat;
    use std::collections::BTreeMap;

    fn rule(tenant: &str, id: &str, url: &str) -> AlertRule {
        AlertRule {
            id: id.into(),
            tenant_id: tenant.into(),
            name: String::new(),
            description: String::new(),
            metric_name: "m".into(),
            dimensions: BTreeMap::new(),
            stat: Stat::Count,
            condition: Condition::Gt,
            threshold: 1.0,
            notify_channel: url.into(),
            for_windows: 1,
            evaluate_on: EvaluateOn::Final,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    /// The tenants' `rules` by config key, as the book's watch holds them.
    fn stored(rules: &[AlertRule]) -> HashMap<String, AlertRule> {
        rules
            .iter()
            .map(|rule| (alert_config_key(&rule.tenant_id, &rule.id), rule.clone()))
            .collect()
    }

    fn transition(tenant: &str, rule: &str) -> AlertTransition {
        AlertTransition {
            rule_id: rule.into(),
            tenant_id: tenant.into(),
            rule_name: String::new(),
            metric_name: "m".into(),
            dimensions: BTreeMap::new(),
            window_start: 0,
            window_end: 60_000,
            from: AlertState::Pending,
            to: AlertState::Firing,
            value: Some(2.0),
            threshold: 1.0,
            stat: Stat::Count,
            condition: Condition::Gt,
            notify_channel: String::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            starts_at: 0,
            ends_at: None,
            evaluated_at: 0,
            seq: 1,
            window_revision: 0,
            provisional: false,
        }
    }

    #[test]
    fn a_rule_s_webhook_is_looked_up_and_outlives_its_deletion() {
        let builtin = rule(ANY_TENANT, "pipeline_late", "http://hooks.example/self");
        let book = RuleBook::new(vec![builtin]);
        let destinations = Destinations::new(&book);
        assert_eq!(
            destinations
                .webhook(&transition("t1", "pipeline_late"))
                .as_deref(),
            Some("http://hooks.example/self"),
            "a built-in rule's webhook is known before the stored rules are loaded"
        );
        let a = rule("t1", "a", "http://hooks.example/a");
        let b = rule("t1", "b", "http://hooks.example/b");
        book.replace(&stored(&[a, b.clone()]));
        assert_eq!(
            destinations.webhook(&transition("t1", "a")).as_deref(),
            Some("http://hooks.example/a")
        );
        assert_eq!(
            destinations.webhook(&transition("t2", "a")),
            None,
            "another tenant"
        );
        book.replace(&stored(&[b]));
        assert_eq!(
            destinations.webhook(&transition("t1", "a")).as_deref(),
            Some("http://hooks.example/a"),
            "the resolved notification of a deleted rule still goes out"
        );
        let b2 = rule("t1", "b", "http://hooks.example/b2");
        book.replace(&stored(&[b2]));
        assert_eq!(
            destinations.webhook(&transition("t1", "b")).as_deref(),
            Some("http://hooks.example/b2"),
            "an edited webhook applies to what is delivered next"
        );
        let a2 = rule("t1", "a", "http://hooks.example/a2");
        book.replace(&stored(&[a2]));
        assert_eq!(
            destinations.webhook(&transition("t1", "a")).as_deref(),
            Some("http://hooks.example/a2"),
            "a rule created again under a deleted one's id has its own webhook"
        );
        assert_eq!(
            destinations.webhook(&transition("t1", "b")).as_deref(),
            Some("http://hooks.example/b2"),
            "b was deleted in that change: its last webhook is kept"
        );
        let mut legacy = transition("t1", "zzz");
        assert_eq!(destinations.webhook(&legacy), None);
        legacy.notify_channel = "http://hooks.example/old".into();
        assert_eq!(
            destinations.webhook(&legacy).as_deref(),
            Some("http://hooks.example/old")
        );
    }

    #[test]
    fn a_destination_following_a_loaded_book_knows_its_rules_at_once() {
        let book = RuleBook::new(Vec::new());
        book.replace(&stored(&[rule("t1", "a", "http://hooks.example/a")]));
        let destinations = Destinations::new(&book);
        assert_eq!(
            destinations.webhook(&transition("t1", "a")).as_deref(),
            Some("http://hooks.example/a")
        );
    }
}
