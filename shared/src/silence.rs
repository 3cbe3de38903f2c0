//! Silences: a tenant mutes the notifications of a rule, or of some series of a rule, until a
//! time, as Alertmanager's silences do. A silence suppresses delivery only: the aggregators
//! keep evaluating, the state and every transition are recorded, and the suppressed delivery
//! appears in the rule's history as `silenced`. Stored in the config bucket under
//! `silence.<tenant>.<id>` (see [`crate::names::silence_config_key`]).

use crate::alert::{AlertTransition, ANY_VALUE};
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most dimension matchers on a silence.
pub const MAX_MATCHERS: usize = 32;
/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;
/// Longest silence: a year (a silence meant to last for ever is a deleted rule).
pub const MAX_DURATION_MS: i64 = 366 * 24 * 3600 * 1000;

/// A silence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// Silence id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// The rule it mutes; `None` mutes every rule of the tenant.
    #[serde(default)]
    pub rule_id: Option<String>,
    /// Which series it mutes: every named dimension must have this value (`*`: any value,
    /// but the dimension must be present); empty mutes every series.
    #[serde(default)]
    pub matchers: BTreeMap<String, String>,
    /// Start (inclusive).
    pub starts_at: UnixMillis,
    /// End (exclusive). Expiring a silence sets it to the time of expiry.
    pub ends_at: UnixMillis,
    /// Why (shown in the UI and the history).
    #[serde(default)]
    pub comment: String,
    /// Who made it (the key's name, or `operator`).
    #[serde(default)]
    pub created_by: String,
    /// Creation time.
    #[serde(default)]
    pub created_at: UnixMillis,
}

/// Where a silence stands at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SilenceStatus {
    /// Starts later.
    Pending,
    /// In force.
    Active,
    /// Ended or expired.
    Expired,
}

impl Silence {
    /// Where the silence stands at `now`.
    pub fn status(&self, now: UnixMillis) -> SilenceStatus {
        if now < self.starts_at {
            SilenceStatus::Pending
        } else if now < self.ends_at {
            SilenceStatus::Active
        } else {
            SilenceStatus::Expired
        }
    }

    /// Whether the silence mutes `transition` at `now`: in force, same tenant, the rule (or
    /// any), and every matcher satisfied by the series' dimensions.
    pub fn mutes(&self, transition: &AlertTransition, now: UnixMillis) -> bool {
        self.mutes_series(
            &transition.tenant_id,
            &transition.rule_id,
            &transition.dimensions,
            now,
        )
    }

    /// Whether the silence mutes the notifications of rule `rule_id` of `tenant` for the series
    /// with `dimensions` at `now`.
    pub fn mutes_series(
        &self,
        tenant: &str,
        rule_id: &str,
        dimensions: &BTreeMap<String, Option<String>>,
        now: UnixMillis,
    ) -> bool {
        self.status(now) == SilenceStatus::Active
            && self.tenant_id == tenant
            && self.rule_id.as_ref().is_none_or(|rule| rule == rule_id)
            && self
                .matchers
                .iter()
                .all(|(name, wanted)| match dimensions.get(name) {
                    Some(value) => wanted == ANY_VALUE || value.as_deref() == Some(wanted.as_str()),
                    None => false,
                })
    }

    /// Checks identifiers, the time range (`starts_at < ends_at`, at most
    /// [`MAX_DURATION_MS`]), the matchers and the comment. The message names the field.
    pub fn validate(&self) -> Result<(), String> {
        use crate::event::is_identifier;
        if !is_identifier(&self.id, 128) {
            return Err("`id` must be 1 to 128 characters from [A-Za-z0-9_-]".into());
        }
        if !is_identifier(&self.tenant_id, 128) || self.tenant_id.starts_with('_') {
            return Err(
                "`tenant_id` must be 1 to 128 characters from [A-Za-z0-9_-], not starting with `_`"
                    .into(),
            );
        }
        if let Some(rule) = &self.rule_id {
            if !is_identifier(rule, 128) {
                return Err("`rule_id` must be 1 to 128 characters from [A-Za-z0-9_-]".into());
            }
        }
        if self.ends_at <= self.starts_at {
            return Err("`ends_at` must be after `starts_at`".into());
        }
        if self.ends_at.saturating_sub(self.starts_at) > MAX_DURATION_MS {
            return Err("a silence lasts at most 366 days".into());
        }
        if self.matchers.len() > MAX_MATCHERS {
            return Err(format!("at most {MAX_MATCHERS} `matchers`"));
        }
        if self.matchers.keys().any(|k| !is_identifier(k, 128)) {
            return Err("`matchers` names must be dimension names ([A-Za-z0-9_-])".into());
        }
        if self.comment.chars().count() > MAX_COMMENT_CHARS {
            return Err(format!(
                "`comment` must be at most {MAX_COMMENT_CHARS} characters"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertState, Condition};
    use crate::stat::Stat;

    fn transition(rule: &str, region: Option<&str>) -> AlertTransition {
        AlertTransition {
            rule_id: rule.into(),
            tenant_id: "acme".into(),
            rule_name: String::new(),
            metric_name: "events".into(),
            dimensions: region
                .map(|r| BTreeMap::from([("region".to_owned(), Some(r.to_owned()))]))
                .unwrap_or_default(),
            window_start: 0,
            window_end: 60_000,
            from: AlertState::Pending,
            to: AlertState::Firing,
            value: Some(3.0),
            threshold: 1.0,
            stat: Stat::Count,
            condition: Condition::Gt,
            notify_channel: "http://example.com/hook".into(),
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

    fn silence(rule: Option<&str>, matchers: &[(&str, &str)]) -> Silence {
        Silence {
            id: "s1".into(),
            tenant_id: "acme".into(),
            rule_id: rule.map(str::to_owned),
            matchers: matchers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            starts_at: 1_000,
            ends_at: 2_000,
            comment: String::new(),
            created_by: String::new(),
            created_at: 0,
        }
    }

    #[test]
    fn mutes_only_while_in_force() {
        let s = silence(Some("r1"), &[]);
        let t = transition("r1", None);
        assert!(!s.mutes(&t, 999));
        assert!(s.mutes(&t, 1_000));
        assert!(s.mutes(&t, 1_999));
        assert!(!s.mutes(&t, 2_000));
        assert_eq!(s.status(999), SilenceStatus::Pending);
        assert_eq!(s.status(2_000), SilenceStatus::Expired);
    }

    #[test]
    fn mutes_its_rule_or_every_rule() {
        let t = transition("r2", None);
        assert!(!silence(Some("r1"), &[]).mutes(&t, 1_500));
        assert!(silence(None, &[]).mutes(&t, 1_500));
        let mut other_tenant = silence(None, &[]);
        other_tenant.tenant_id = "other".into();
        assert!(!other_tenant.mutes(&t, 1_500));
    }

    #[test]
    fn matchers_select_series() {
        let eu = transition("r1", Some("eu"));
        let us = transition("r1", Some("us"));
        let total = transition("r1", None);
        let only_eu = silence(Some("r1"), &[("region", "eu")]);
        assert!(only_eu.mutes(&eu, 1_500));
        assert!(!only_eu.mutes(&us, 1_500));
        assert!(!only_eu.mutes(&total, 1_500));
        let any_region = silence(Some("r1"), &[("region", "*")]);
        assert!(any_region.mutes(&us, 1_500));
        assert!(!any_region.mutes(&total, 1_500));
    }

    #[test]
    fn validation_names_the_field() {
        let mut s = silence(None, &[]);
        assert_eq!(s.validate(), Ok(()));
        s.ends_at = s.starts_at;
        assert!(s.validate().unwrap_err().contains("ends_at"));
        s.ends_at = s.starts_at + MAX_DURATION_MS + 1;
        assert!(s.validate().unwrap_err().contains("366 days"));
        let mut s = silence(None, &[]);
        s.tenant_id = "_all".into();
        assert!(s.validate().unwrap_err().contains("tenant_id"));
    }
}
