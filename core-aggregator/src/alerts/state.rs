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
            notify_channel: rule.notify_channel.clone(),
            labels: rule.labels.clone(),
            annotations: rule.annotations.clone(),
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
    /// version if known, else the details (webhook, labels...) of the last transition are used.
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
            notify_channel: previous
                .map(|t| t.notify_channel.clone())
                .unwrap_or_default(),
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
            transition.notify_channel = rule.notify_channel.clone();
            transition.labels = rule.labels.clone();
            transition.annotations = rule.annotations.clone();
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
mod tests {
    use super::*;
    use rtdash_shared::alert::Condition;
    use rtdash_shared::stat::Stat;
    use AlertState::*;

    const W: i64 = 1_000;

    fn rule(for_windows: u32, evaluate_on: EvaluateOn) -> AlertRule {
        AlertRule {
            id: "r".into(),
            tenant_id: "t".into(),
            metric_name: "m".into(),
            dimensions: BTreeMap::new(),
            stat: Stat::Count,
            condition: Condition::Gt,
            threshold: 10.0,
            notify_channel: "http://127.0.0.1:1/".into(),
            for_windows,
            evaluate_on,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn fresh() -> SeriesAlert {
        SeriesAlert::new("r", "t", "m", BTreeMap::new(), 100)
    }

    fn obs(window: i64, value: f64) -> Observation {
        Observation {
            start: window * W,
            end: (window + 1) * W,
            value: Some(value),
            revision: 0,
            is_final: true,
        }
    }

    /// Feeds (window, value) pairs; returns the states of the transitions.
    fn run(alert: &mut SeriesAlert, rule: &AlertRule, windows: &[(i64, f64)]) -> Vec<AlertState> {
        windows
            .iter()
            .filter_map(|&(w, v)| alert.observe(rule, &obs(w, v), 0))
            .map(|t| t.to)
            .collect()
    }

    #[test]
    fn one_window_fires_and_one_resolves() {
        let r = rule(1, EvaluateOn::Final);
        let mut a = fresh();
        assert_eq!(
            run(
                &mut a,
                &r,
                &[(1, 5.0), (2, 20.0), (3, 30.0), (4, 1.0), (5, 1.0)]
            ),
            [Firing, Resolved, Ok]
        );
        assert!(!a.is_quiet(), "the last transition is not published yet");
        a.published = true;
        assert!(a.is_quiet());
        assert_eq!(a.seq, 103);
    }

    #[test]
    fn for_windows_needs_consecutive_breaches() {
        let r = rule(3, EvaluateOn::Final);
        let mut a = fresh();
        assert_eq!(
            run(&mut a, &r, &[(1, 20.0), (2, 20.0), (3, 1.0)]),
            [Pending, Ok]
        );
        // A gap breaks the streak.
        assert_eq!(
            run(&mut a, &r, &[(4, 20.0), (5, 20.0), (7, 20.0), (8, 20.0)]),
            [Pending]
        );
        assert_eq!(run(&mut a, &r, &[(9, 20.0)]), [Firing]);
        let t = a.observe(&r, &obs(10, 0.0), 0).unwrap();
        assert_eq!(
            (t.from, t.to, t.starts_at, t.ends_at),
            (Firing, Resolved, 7 * W, Some(10 * W))
        );
    }

    #[test]
    fn transitions_carry_window_value_and_increasing_seq() {
        let r = rule(2, EvaluateOn::Final);
        let mut a = fresh();
        let p = a.observe(&r, &obs(1, 11.0), 7).unwrap();
        let f = a.observe(&r, &obs(2, 12.0), 8).unwrap();
        assert_eq!((p.from, p.to, p.seq, p.window_start), (Ok, Pending, 101, W));
        assert_eq!(
            (f.from, f.to, f.seq, f.window_start, f.starts_at),
            (Pending, Firing, 102, 2 * W, W)
        );
        assert_eq!(f.value, Some(12.0));
        assert_ne!(p.id(), f.id());
    }

    #[test]
    fn provisional_versions_only_count_for_provisional_rules() {
        let mut open = obs(1, 50.0);
        open.is_final = false;
        let mut a = fresh();
        assert_eq!(a.observe(&rule(1, EvaluateOn::Final), &open, 0), None);
        assert_eq!(a.last_start, None, "not looked at");
        let p = rule(1, EvaluateOn::Provisional);
        let t = a.observe(&p, &open, 0).unwrap();
        assert!(t.provisional && t.to == Firing);
        // The same open window drops below: resolved; rises again: fires again, new id.
        open.value = Some(1.0);
        let resolved = a.observe(&p, &open, 0).unwrap();
        assert_eq!(resolved.to, Resolved);
        open.value = Some(60.0);
        let again = a.observe(&p, &open, 0).unwrap();
        assert_eq!(again.to, Firing);
        assert_ne!(again.id(), t.id());
        // Resolved -> ok needs a newer window, not another version of the same one.
        open.value = Some(1.0);
        assert_eq!(a.observe(&p, &open, 0).unwrap().to, Resolved);
        assert_eq!(a.observe(&p, &open, 0), None);
        assert_eq!(a.observe(&p, &obs(2, 1.0), 0).unwrap().to, Ok);
    }

    #[test]
    fn a_revised_newest_window_is_evaluated_again() {
        let r = rule(1, EvaluateOn::Final);
        let mut a = fresh();
        assert_eq!(run(&mut a, &r, &[(1, 5.0)]), []);
        let mut revised = obs(1, 15.0);
        revised.revision = 1;
        let t = a.observe(&r, &revised, 0).unwrap();
        assert_eq!((t.to, t.window_revision), (Firing, 1));
    }

    #[test]
    fn a_revised_older_window_only_changes_the_streak() {
        let r = rule(3, EvaluateOn::Final);
        let mut a = fresh();
        assert_eq!(
            run(&mut a, &r, &[(1, 20.0), (2, 5.0), (3, 20.0)]),
            [Pending, Ok, Pending]
        );
        // Late data makes window 2 breach: windows 1-3 now breach -> firing.
        let mut late = obs(2, 25.0);
        late.revision = 1;
        let t = a.observe(&r, &late, 0).unwrap();
        assert_eq!(
            (t.from, t.to, t.window_start, t.starts_at),
            (Pending, Firing, 2 * W, W)
        );
        // An older window dropping below does not resolve while the newest still breaches.
        let mut lower = obs(2, 1.0);
        lower.revision = 2;
        assert_eq!(a.observe(&r, &lower, 0), None);
        assert_eq!(a.state, Firing);
        // Too old to matter (more than for_windows back): ignored.
        assert_eq!(run(&mut a, &r, &[(4, 20.0), (5, 20.0), (6, 20.0)]), []);
        assert_eq!(a.observe(&r, &obs(1, 0.0), 0), None);
        // The same version again changes nothing.
        assert_eq!(run(&mut a, &r, &[(6, 20.0), (5, 20.0)]), []);
    }

    #[test]
    fn replaying_what_was_evaluated_changes_nothing() {
        let r = rule(2, EvaluateOn::Final);
        let mut a = fresh();
        let windows = [(1, 20.0), (2, 20.0), (3, 20.0), (4, 1.0), (5, 20.0)];
        assert_eq!(
            run(&mut a, &r, &windows),
            [Pending, Firing, Resolved, Pending]
        );
        let saved = a.clone();
        // After a restart every window still in memory is seen again, in any order.
        let mut replayed = windows;
        replayed.reverse();
        assert_eq!(run(&mut a, &r, &replayed), []);
        assert_eq!(a, saved);
    }

    #[test]
    fn a_missing_value_does_not_breach_and_a_new_window_size_restarts() {
        let r = rule(1, EvaluateOn::Final);
        let mut a = fresh();
        let mut none = obs(1, 0.0);
        none.value = None;
        assert_eq!(a.observe(&r, &none, 0), None);
        assert_eq!(run(&mut a, &r, &[(2, 20.0)]), [Firing]);
        let other_size = Observation {
            start: 10 * W,
            end: 12 * W,
            value: Some(1.0),
            revision: 0,
            is_final: true,
        };
        assert_eq!(a.observe(&r, &other_size, 0).unwrap().to, Resolved);
        assert_eq!(a.window_ms, 2 * W);
    }

    #[test]
    fn retiring_resolves_firing_and_clears_pending() {
        let r = rule(2, EvaluateOn::Final);
        let mut a = fresh();
        run(&mut a, &r, &[(1, 20.0), (2, 20.0)]);
        assert!(a.outbox().is_some());
        a.published = true;
        let t = a.retire(None, "rule deleted", 9_000).unwrap();
        assert_eq!((t.from, t.to, t.ends_at), (Firing, Resolved, Some(9_000)));
        assert_eq!(t.annotations["resolved_reason"], "rule deleted");
        assert_eq!(
            t.notify_channel, r.notify_channel,
            "from the last transition"
        );
        assert_eq!(a.outbox(), Some(&t));
        let mut b = fresh();
        run(&mut b, &r, &[(1, 20.0)]);
        assert_eq!(b.retire(Some(&r), "x", 0).unwrap().to, Ok);
        assert_eq!(fresh().retire(Some(&r), "x", 0), None);
    }

    #[test]
    fn long_streaks_use_more_than_one_word() {
        let r = rule(100, EvaluateOn::Final);
        let mut a = fresh();
        let windows: Vec<(i64, f64)> = (0..100).map(|w| (w, 20.0)).collect();
        assert_eq!(run(&mut a, &r, &windows), [Pending, Firing]);
        assert!(a.breaches.len() == 2);
        let mut gap = obs(50, 0.0);
        gap.revision = 1;
        assert_eq!(
            a.observe(&r, &gap, 0),
            None,
            "still firing: the newest window breaches"
        );
    }

    #[test]
    fn quiet_states_are_not_rewritten_for_a_new_window() {
        let r = rule(1, EvaluateOn::Final);
        let mut a = fresh();
        run(&mut a, &r, &[(1, 1.0)]);
        assert!(a.is_quiet());
        let before = a.clone();
        run(&mut a, &r, &[(2, 1.0)]);
        assert!(!a.needs_write_after(&before));
        let before = a.clone();
        run(&mut a, &r, &[(3, 20.0)]);
        assert!(a.needs_write_after(&before));
    }
}
