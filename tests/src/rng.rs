//! The tests' random numbers: `rand`'s [`SmallRng`], seeded, the seed printed so a failing run
//! can be replayed. Each test passes its own default seed (runs are deterministic);
//! `RTDASH_TEST_SEED` replaces it (decimal or `0x` hex) to explore other data.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A seeded [`SmallRng`] with the shorthand the tests use.
#[derive(Clone, Debug)]
pub struct TestRng {
    rng: SmallRng,
    seed: u64,
}

impl TestRng {
    /// Seeded with `RTDASH_TEST_SEED` if set, else `default_seed`; prints
    /// `<label>: seed <seed>` (on stderr, shown when the test fails or with `--nocapture`).
    pub fn seeded(label: &str, default_seed: u64) -> Self {
        let seed = seed_from_env().unwrap_or(default_seed);
        eprintln!("{label}: seed {seed:#x} (RTDASH_TEST_SEED={seed:#x} replays it)");
        Self {
            rng: SmallRng::seed_from_u64(seed),
            seed,
        }
    }

    /// The seed in use.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A uniform number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.rng.random_range(0..n)
    }

    /// The generator itself, for anything [`Rng`] offers.
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }
}

/// `RTDASH_TEST_SEED`, decimal or `0x` hex; a value that parses as neither is ignored.
fn seed_from_env() -> Option<u64> {
    let text = std::env::var("RTDASH_TEST_SEED").ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_numbers() {
        let mut a = TestRng::seeded("a", 7);
        let mut b = TestRng::seeded("b", 7);
        let draws: Vec<u64> = (0..100).map(|_| a.below(10)).collect();
        assert_eq!(draws, (0..100).map(|_| b.below(10)).collect::<Vec<_>>());
        assert!(draws.iter().all(|d| *d < 10));
    }
}
