//! The alert state of one rule for one series, and how a window moves it. Pure: no I/O, no
//! clock of its own.
//!
//! ```text
//!          breach < for_windows            breach >= for_windows
//!   ok ─────────────────────> pending ─────────────────────────> firing
//!    ^  \___________________________________________________________^ │ (for_windows = 1)
//!    │                         │ no breach                            │ no breach
//!    └──── ok <────────────────┘                                      v
//!    └──────────── next window without breach ─────────────────── resolved
//! ```
//!
//! **What a window contributes.** Each evaluated window sets one breach flag: the rule's
//! condition on the rule's stat (a window without a value for the stat does not breach).
//! The *streak* is the number of consecutive breaching windows ending at the newest window
//! evaluated (windows are consecutive when each starts where the previous ended; a missing
//! window breaks the streak). The state moves on what the streak asks for:
//! `streak >= for_windows` -> firing, `1 <= streak < for_windows` -> pending, `0` -> clear.
//!
//! | state \ streak asks | firing | pending | clear |
//! |---|---|---|---|
//! | ok | firing | pending | ok |
//! | pending | firing | pending | ok |
//! | firing | firing | firing (still breaching) | resolved |
//! | resolved | firing | pending | ok, on a newer window only |
//!
//! **Window order.** Windows are evaluated in window-start order per series: a window newer
//! than the newest evaluated one becomes the newest; a new version of the newest window (a
//! provisional update, a correction) replaces its flag and is evaluated again; a revision of
//! an *older* window (a late correction of a window before the newest) only replaces that
//! window's flag in the streak, so it can complete a streak (pending -> firing) but never
//! resolves or re-fires on its own: the newest window decides whether the series breaches
//! now. Revisions of windows more than `for_windows` windows back change nothing.
//!
//! Each transition carries the next [`seq`](SeriesAlert::seq) (its id includes it), the
//! evaluated window, and `starts_at` (start of the first window of the breaching streak) /
//! `ends_at` (start of the window that resolved it).

use rtdash_shared::alert::{AlertRule, AlertState, AlertTransition, EvaluateOn, MAX_FOR_WINDOWS};
use rtdash_shared::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One window version as the evaluator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Window start.
    pub start: UnixMillis,
    /// Window end.
    pub end: UnixMillis,
    /// The rule's stat in this version (`None`: no value).
    pub value: Option<f64>,
    /// Window revision.
    pub revision: u32,
    /// Whether the window has closed.
    pub is_final: bool,
}

/// State of one rule for one series: what is persisted in `rtdash_alert_state`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesAlert {
    /// Rule id.
    pub rule_id: String,
    /// The series' tenant.
    pub tenant_id: String,
    /// Metric.
    pub metric: String,
    /// The series' dimensions.
    pub dimensions: BTreeMap<String, Option<String>>,
    /// Current state.
    pub state: AlertState,
    /// Start of the newest window evaluated.
    pub last_start: Option<UnixMillis>,
    /// Window size of the evaluated windows.
    pub window_ms: i64,
    /// Breach flags: bit `k` is the window `last_start - k * window_ms` (k < `for_windows`).
    pub breaches: Vec<u64>,
    /// Number of the last transition (the next one gets `seq + 1`).
    pub seq: u64,
    /// Start of the breaching streak that made it fire (firing and resolved).
    pub starts_at: Option<UnixMillis>,
    /// The last transition. Saved *before* it is published: while `published` is false it is
    /// the outbox, republished (same id, so deduplicated) when the partition is loaded.
    #[serde(default)]
    pub last: Option<AlertTransition>,
    /// Whether JetStream acknowledged `last`.
    #[serde(default)]
    pub published: bool,
}

impl SeriesAlert {
    /// A fresh state (ok) for a series; `seq_base` is where its transition numbers start
    /// (the clock in microseconds, so numbers never go back even after the state was forgotten).
    pub fn new(
        rule_id: &str,
        tenant_id: &str,
        metric: &str,
        dimensions: BTreeMap<String, Option<String>>,
        seq_base: u64,
    ) -> Self {
        Self {
            rule_id: rule_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            metric: metric.to_owned(),
            dimensions,
            state: AlertState::Ok,
            last_start: None,
            window_ms: 0,
            breaches: Vec::new(),
            seq: seq_base,
            starts_at: None,
            last: None,
            published: true,
        }
    }

    /// The transition saved but not yet acknowledged by JetStream, if any.
    pub fn outbox(&self) -> Option<&AlertTransition> {
        self.last.as_ref().filter(|_| !self.published)
    }

    /// Whether nothing about it needs remembering beyond its newest window: ok, no breach in
    /// the streak window, nothing to publish.
    pub fn is_quiet(&self) -> bool {
        self.state == AlertState::Ok
            && self.breaches.iter().all(|w| *w == 0)
            && self.outbox().is_none()
    }

    /// The end of the newest window evaluated.
    pub fn last_end(&self) -> Option<UnixMillis> {
        self.last_start.map(|s| s.saturating_add(self.window_ms))
    }

    /// Whether the persisted form differs from `other` in more than the newest window of a
    /// quiet state (which is not worth a write: see [`super::evaluator`]).
    pub fn needs_write_after(&self, before: &SeriesAlert) -> bool {
        if self.is_quiet() && before.is_quiet() {
            return false;
        }
        self != before
    }

    /// Evaluates one window version under `rule` at wall-clock `now`; returns the transition
    /// it causes, if any. Versions the rule does not look at (provisional ones of a `final`
    /// rule) change nothing.
    pub fn observe(
        &mut self,
        rule: &AlertRule,
        obs: &Observation,
        now: UnixMillis,
    ) -> Option<AlertTransition> {
        if !obs.is_final && rule.evaluate_on != EvaluateOn::Provisional {
            return None;
        }
        let size = obs.end - obs.start;
        if size <= 0 {
            return None;
        }
        let n = rule.for_windows.clamp(1, MAX_FOR_WINDOWS) as usize;
        let breached = obs
            .value
            .is_some_and(|v| rule.condition.breached(v, rule.threshold));
        let newer = match self.last_start {
            Some(last) if size == self.window_ms && obs.start == last => {
                set_bit(&mut self.breaches, 0, breached);
                false
            }
            Some(last) if size == self.window_ms && obs.start < last => {
                let back = last - obs.start;
                if back % size != 0 || back / size >= n as i64 {
                    return None;
                }
                let k = (back / size) as usize;
                if bit(&self.breaches, k) == breached {
                    return None;
                }
                set_bit(&mut self.breaches, k, breached);
                false
            }
            Some(last) if size == self.window_ms && (obs.start - last) % size == 0 => {
                let ahead = (obs.start - last) / size;
                shift_up(&mut self.breaches, ahead.min(n as i64) as usize);
                set_bit(&mut self.breaches, 0, breached);
                self.last_start = Some(obs.start);
                true
            }
            _ => {
                // First window, or another window size (the metric definition changed).
                self.breaches.clear();
                self.window_ms = size;
                self.last_start = Some(obs.start);
                set_bit(&mut self.breaches, 0, breached);
                true
            }
        };
        truncate_bits(&mut self.breaches, n);
        let streak = (0..n).take_while(|&k| bit(&self.breaches, k)).count();
        let last = self.last_start.unwrap_or(obs.start);
        let streak_start = last - (streak.max(1) as i64 - 1) * size;
        use AlertState::*;
        let next = match (self.state, streak) {
            (Firing, 0) => Resolved,
            (Firing, _) => Firing,
            (_, s) if s >= n => Firing,
            (Ok | Pending, 0) => Ok,
            (Resolved, 0) if newer => Ok,
            (Resolved, 0) => Resolved,
            (_, _) => Pending,
        };
        if next == self.state {
            return None;
        }
        let from = self.state;
        self.state = next;
        let (starts_at, ends_at) = match next {
            Firing | Pending => {
                self.starts_at = Some(streak_start);
                (streak_start, None)
            }
            Resolved => (
                self.starts_at.unwrap_or(obs.start),
                Some(obs.start.max(last)),
            ),
            Ok => {
                let started = self.starts_at.take().unwrap_or(obs.start);
                (started, Some(obs.start))
            }
        };
        self.seq += 1;
        let transition = AlertTransition {
            rule_id: rule.id.clone(),
            tenant_id: self.tenant_id.clone(),
            rule_name: rule.name.clone(),
            metric_name: self.metric.clone(),
            dimensions: self.dimensions.clone(),
            window_start: obs.start,
            window_end: obs.end,
            from,
            to: next,
            value: obs.value,
            threshold: rule.threshold,
            stat: rule.stat,
            condition: rule.condition,
            // The notifier looks the webhook up (its URL may hold a token).
            notify_channel: String::new(),
            labels: rule.labels.clone(),
            annotations: notification_annotations(rule),
            starts_at,
            ends_at,
            evaluated_at: now,
            seq: self.seq,
            window_revision: obs.revision,
            provisional: !obs.is_final,
        };
        self.last = Some(transition.clone());
        self.published = false;
        Some(transition)
    }

    /// Ends the alert without a window: the rule was deleted or no longer watches the series,
    /// or the series stopped reporting while firing. Firing becomes resolved, pending becomes
    /// ok; `reason` is added as the annotation `resolved_reason`. `rule` is the rule's last
    /// version if known, else the details (labels, threshold...) of the last transition are used.
    pub fn retire(
        &mut self,
        rule: Option<&AlertRule>,
        reason: &str,
        now: UnixMillis,
    ) -> Option<AlertTransition> {
        let next = match self.state {
            AlertState::Firing => AlertState::Resolved,
            AlertState::Pending => AlertState::Ok,
            _ => return None,
        };
        let from = self.state;
        self.state = next;
        self.breaches.clear();
        self.seq += 1;
        let start = self.last_start.unwrap_or(now);
        let previous = self.last.as_ref();
        let mut transition = AlertTransition {
            rule_id: self.rule_id.clone(),
            tenant_id: self.tenant_id.clone(),
            rule_name: previous.map(|t| t.rule_name.clone()).unwrap_or_default(),
            metric_name: self.metric.clone(),
            dimensions: self.dimensions.clone(),
            window_start: start,
            window_end: start.saturating_add(self.window_ms),
            from,
            to: next,
            value: None,
            threshold: previous.map_or(0.0, |t| t.threshold),
            stat: previous.map(|t| t.stat).unwrap_or_default(),
            condition: previous.map_or(rtdash_shared::alert::Condition::Gt, |t| t.condition),
            notify_channel: String::new(),
            labels: previous.map(|t| t.labels.clone()).unwrap_or_default(),
            annotations: previous.map(|t| t.annotations.clone()).unwrap_or_default(),
            starts_at: self.starts_at.take().unwrap_or(start),
            ends_at: Some(now),
            evaluated_at: now,
            seq: self.seq,
            window_revision: 0,
            provisional: false,
        };
        if let Some(rule) = rule {
            transition.threshold = rule.threshold;
            transition.stat = rule.stat;
            transition.condition = rule.condition;
            transition.rule_name = rule.name.clone();
            transition.labels = rule.labels.clone();
            transition.annotations = notification_annotations(rule);
        }
        transition
            .annotations
            .insert("resolved_reason".to_owned(), reason.to_owned());
        self.last = Some(transition.clone());
        self.published = false;
        Some(transition)
    }
}

fn bit(words: &[u64], k: usize) -> bool {
    words.get(k / 64).is_some_and(|w| w >> (k % 64) & 1 == 1)
}

fn set_bit(words: &mut Vec<u64>, k: usize, value: bool) {
    if words.len() <= k / 64 {
        if !value {
            return;
        }
        words.resize(k / 64 + 1, 0);
    }
    if value {
        words[k / 64] |= 1 << (k % 64);
    } else {
        words[k / 64] &= !(1 << (k % 64));
    }
}

/// Moves every flag `by` windows back (bit k -> bit k + by).
fn shift_up(words: &mut Vec<u64>, by: usize) {
    if by == 0 || words.is_empty() {
        return;
    }
    let bits = words.len() * 64;
    let mut shifted = vec![0u64; (bits + by).div_ceil(64)];
    for k in 0..bits {
        if bit(words, k) {
            set_bit(&mut shifted, k + by, true);
        }
    }
    *words = shifted;
}

/// Keeps the flags of the newest `n` windows only, without trailing zero words.
fn truncate_bits(words: &mut Vec<u64>, n: usize) {
    words.truncate(n.div_ceil(64));
    if n % 64 != 0 && words.len() == n.div_ceil(64) {
        if let Some(last) = words.last_mut() {
            *last &= (1u64 << (n % 64)) - 1;
        }
    }
    while words.last() == Some(&0) {
        words.pop();
    }
}

#[cfg(test)]
mod tests;

/// The annotations a rule's notifications carry: its own, plus its description as
/// `description` when it has none of that name.
fn notification_annotations(rule: &AlertRule) -> BTreeMap<String, String> {
    let mut annotations = rule.annotations.clone();
    if !rule.description.is_empty() {
        annotations
            .entry("description".to_owned())
            .or_insert_with(|| rule.description.clone());
    }
    annotations
}
