//! Unit tests of the alert state machine: transitions, streaks, late revisions, replays.

use super::*;
use rtdash_shared::alert::Condition;
use rtdash_shared::stat::Stat;
use AlertState::*;

const W: i64 = 1_000;

fn rule(for_windows: u32, evaluate_on: EvaluateOn) -> AlertRule {
    AlertRule {
        id: "r".into(),
        tenant_id: "t".into(),
        name: String::new(),
        description: String::new(),
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
        t.notify_channel, "",
        "the notifier looks the webhook up; transitions never carry it"
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
