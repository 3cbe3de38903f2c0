//! Where each rule's notifications go. Transitions on `RTDASH_ALERTS` do not carry the rule's
//! webhook (its URL may hold a token, and the stream is read by more than the notifier): the
//! notifier mirrors the rules' `notify_channel` from the config bucket (`alert.<tenant>.<id>`)
//! and the built-in rules' webhook from its config, and looks the destination up at delivery.
//! A deleted rule's destination is kept for [`DELETED_KEPT`], so the `resolved` notification
//! that its deletion causes still reaches it.

use crate::alerts::builtin;
use crate::alerts::config::AlertsConfig;
use crate::alerts::rules::parse_rule;
use async_nats::jetstream::{self, kv};
use rtdash_runtime::kv::{follow, Change};
use rtdash_shared::alert::AlertTransition;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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
    /// Knows only the built-in rules until [`follow`](Self::follow) loads the stored ones.
    pub fn new(alerts: &AlertsConfig) -> Self {
        let builtin = builtin::rules(alerts)
            .into_iter()
            .map(|rule| (rule.id, rule.notify_channel))
            .collect();
        Self {
            inner: Arc::new(RwLock::new(Inner {
                builtin,
                ..Inner::default()
            })),
        }
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
        let key =
            rtdash_shared::names::alert_config_key(&transition.tenant_id, &transition.rule_id);
        inner.current.get(&key).cloned().or_else(|| {
            inner
                .deleted
                .get(&key)
                .filter(|(_, at)| at.elapsed() < DELETED_KEPT)
                .map(|(url, _)| url.clone())
        })
    }

    fn apply(&self, change: Change<'_>) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match change {
            Change::Snapshot(entries) => {
                let before = std::mem::take(&mut inner.current);
                for entry in entries {
                    if let Ok(rule) = parse_rule(&entry.key, &entry.value) {
                        inner.current.insert(entry.key, rule.notify_channel);
                    }
                }
                // Rules deleted while the watch was broken.
                for (key, url) in before {
                    if !inner.current.contains_key(&key) {
                        inner.forget(key, url);
                    }
                }
            }
            Change::Put { key, value } => match parse_rule(key, value) {
                Ok(rule) => {
                    inner.deleted.remove(key);
                    inner.current.insert(key.to_owned(), rule.notify_channel);
                }
                Err(_) => {
                    if let Some(url) = inner.current.remove(key) {
                        inner.forget(key.to_owned(), url);
                    }
                }
            },
            Change::Delete { key } => {
                if let Some(url) = inner.current.remove(key) {
                    inner.forget(key.to_owned(), url);
                }
            }
        }
    }

    /// Follows `alert.>` in the config bucket until `stop`; `loaded` is sent once the current
    /// rules are known.
    pub async fn follow(
        self,
        js: jetstream::Context,
        config: kv::Store,
        loaded: tokio::sync::oneshot::Sender<()>,
        stop: CancellationToken,
    ) {
        follow(
            js,
            config,
            "alert.>",
            "alert destinations",
            |change| self.apply(change),
            Some(loaded),
            stop,
        )
        .await;
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
    use rtdash_runtime::kv::RawEntry;
    use rtdash_shared::alert::{AlertRule, AlertState, Condition, EvaluateOn};
    use rtdash_shared::stat::Stat;
    use std::collections::BTreeMap;

    fn rule(tenant: &str, id: &str, url: &str) -> (String, Vec<u8>) {
        let rule = AlertRule {
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
        };
        (
            rtdash_shared::names::alert_config_key(tenant, id),
            serde_json::to_vec(&rule).unwrap(),
        )
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
        let destinations = Destinations::new(&AlertsConfig::default());
        let (key_a, a) = rule("t1", "a", "http://hooks.example/a");
        let (key_b, b) = rule("t1", "b", "http://hooks.example/b");
        destinations.apply(Change::Snapshot(vec![
            RawEntry {
                key: key_a.clone(),
                revision: 1,
                value: a.into(),
                deleted: false,
            },
            RawEntry {
                key: key_b.clone(),
                revision: 2,
                value: b.into(),
                deleted: false,
            },
        ]));
        assert_eq!(
            destinations.webhook(&transition("t1", "a")).as_deref(),
            Some("http://hooks.example/a")
        );
        assert_eq!(
            destinations.webhook(&transition("t2", "a")),
            None,
            "another tenant"
        );
        destinations.apply(Change::Delete { key: &key_a });
        assert_eq!(
            destinations.webhook(&transition("t1", "a")).as_deref(),
            Some("http://hooks.example/a"),
            "the resolved notification of a deleted rule still goes out"
        );
        let (_, b2) = rule("t1", "b", "http://hooks.example/b2");
        destinations.apply(Change::Put {
            key: &key_b,
            value: &b2,
        });
        assert_eq!(
            destinations.webhook(&transition("t1", "b")).as_deref(),
            Some("http://hooks.example/b2"),
            "an edited webhook applies to what is delivered next"
        );
        let mut legacy = transition("t1", "zzz");
        assert_eq!(destinations.webhook(&legacy), None);
        legacy.notify_channel = "http://hooks.example/old".into();
        assert_eq!(
            destinations.webhook(&legacy).as_deref(),
            Some("http://hooks.example/old")
        );
    }
}
