//! The seeded fault schedule: every 20-60 s (configurable) one component is killed with
//! `SIGKILL` and restarted a few seconds later, or paused with `SIGSTOP` for 5-30 s and
//! resumed with `SIGCONT`. The kind of component (aggregator, agent, gateway, NATS node,
//! QuestDB) is drawn from a shuffled deck, so every kind is hit once before any is hit
//! twice; the instance and the action are drawn at random. Plus the webhook receiver's
//! outages (it answers `503` for minutes).

use std::fmt;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::stack::Component;

/// What is done to the component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `SIGKILL`, restarted after `down`.
    Kill {
        /// How long it stays down.
        down: Duration,
    },
    /// `SIGSTOP`, `SIGCONT` after `paused`.
    Pause {
        /// How long it is frozen.
        paused: Duration,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Kill { down } => write!(f, "kill, restart after {:.1} s", down.as_secs_f64()),
            Action::Pause { paused } => write!(f, "pause {:.1} s", paused.as_secs_f64()),
        }
    }
}

/// One scheduled fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// When, from the start of the load.
    pub at: Duration,
    /// Which component.
    pub target: Component,
    /// What.
    pub action: Action,
}

/// How the schedule is drawn.
#[derive(Clone, Debug)]
pub struct ScheduleOptions {
    /// Length of the load.
    pub duration: Duration,
    /// Time between two faults' starts: uniform in this range.
    pub gap: (Duration, Duration),
    /// No fault starts later than this before the end of the load.
    pub quiet_end: Duration,
    /// Probability that a fault is a pause rather than a kill.
    pub pause_probability: f64,
    /// Downtime after a kill: uniform in this range.
    pub down: (Duration, Duration),
    /// Length of a pause: uniform in this range.
    pub pause: (Duration, Duration),
    /// Aggregators, agents, gateways, NATS nodes in the deployment.
    pub counts: [usize; 4],
}

impl ScheduleOptions {
    /// 20-60 s between faults, a third of them pauses of 5-30 s, kills down for 1-8 s.
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            gap: (Duration::from_secs(20), Duration::from_secs(60)),
            quiet_end: Duration::from_secs(15),
            pause_probability: 1.0 / 3.0,
            down: (Duration::from_secs(1), Duration::from_secs(8)),
            pause: (Duration::from_secs(5), Duration::from_secs(30)),
            counts: [2, 2, 2, 3],
        }
    }
}

/// The faults and the webhook outages of one run.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The seed it was drawn with.
    pub seed: u64,
    /// Faults, in time order.
    pub faults: Vec<Fault>,
    /// `(start, length)` of each period the webhook receiver answers `503`.
    pub webhook_outages: Vec<(Duration, Duration)>,
}

fn uniform(rng: &mut SmallRng, (low, high): (Duration, Duration)) -> Duration {
    if high <= low {
        return low;
    }
    Duration::from_millis(rng.random_range(low.as_millis() as u64..=high.as_millis() as u64))
}

impl Schedule {
    /// Draws the schedule of `options` with `seed`.
    pub fn draw(seed: u64, options: &ScheduleOptions) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut faults = Vec::new();
        let mut deck: Vec<usize> = Vec::new();
        let mut at = uniform(&mut rng, options.gap);
        let [aggregators, agents, gateways, nodes] = options.counts;
        // A fault and its recovery must end before the quiet end: the longest action fits.
        let longest = options.pause.1.max(options.down.1);
        while at + longest + options.quiet_end <= options.duration {
            if deck.is_empty() {
                deck = (0..5).collect();
                deck.shuffle(&mut rng);
            }
            let target = match deck.pop().expect("a card") {
                0 => Component::Aggregator(rng.random_range(0..aggregators)),
                1 => Component::Agent(rng.random_range(0..agents)),
                2 => Component::Gateway(rng.random_range(0..gateways)),
                3 => Component::Nats(rng.random_range(0..nodes)),
                _ => Component::QuestDb,
            };
            let action = if rng.random_bool(options.pause_probability) {
                Action::Pause {
                    paused: uniform(&mut rng, options.pause),
                }
            } else {
                Action::Kill {
                    down: uniform(&mut rng, options.down),
                }
            };
            faults.push(Fault { at, target, action });
            at += uniform(&mut rng, options.gap);
        }
        // The receiver fails for minutes: from a quarter of the run for up to 3 minutes (a
        // fifth of a short run), and again from 60 % for up to 2 minutes on long runs.
        let total = options.duration;
        let mut webhook_outages = vec![(total / 4, (total / 5).min(Duration::from_secs(180)))];
        if total >= Duration::from_secs(600) {
            webhook_outages.push((total * 3 / 5, Duration::from_secs(120)));
        }
        Self {
            seed,
            faults,
            webhook_outages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_seeded_and_covers_every_kind() {
        let options = ScheduleOptions::new(Duration::from_secs(1800));
        let a = Schedule::draw(7, &options);
        let b = Schedule::draw(7, &options);
        assert_eq!(a.faults, b.faults);
        assert!(a.faults.len() >= 25, "{}", a.faults.len());
        for pair in a.faults.windows(2) {
            let gap = pair[1].at - pair[0].at;
            assert!(gap >= options.gap.0 && gap <= options.gap.1, "{gap:?}");
        }
        let kinds: std::collections::BTreeSet<&str> =
            a.faults[..5].iter().map(|f| f.target.kind()).collect();
        assert_eq!(kinds.len(), 5, "{:?}", a.faults);
        assert_ne!(Schedule::draw(8, &options).faults, a.faults);
    }
}
