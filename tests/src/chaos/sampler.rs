//! RSS and open file descriptors of every process of the soak, sampled over time from
//! `/proc/<pid>/status` (`VmRSS`) and `/proc/<pid>/fd`, summarised per component as first,
//! last and largest sample (a restart starts a new process: its samples continue the
//! component's series, and the restarts are counted).

use std::collections::BTreeMap;
use std::time::Duration;

use super::stack::{ChaosStack, Component};

/// One sample of one process.
#[derive(Clone, Copy, Debug)]
struct Sample {
    pid: u32,
    rss_kib: u64,
    fds: u64,
}

/// The samples of every component.
#[derive(Debug, Default)]
pub struct Sampler {
    samples: BTreeMap<Component, Vec<Sample>>,
}

/// One component's summary.
#[derive(Clone, Debug)]
pub struct ProcessStats {
    /// `nats-n1`, `aggregator-2`...
    pub name: String,
    /// Samples taken.
    pub samples: usize,
    /// Distinct processes seen minus one.
    pub restarts: usize,
    /// RSS (MiB): first, last and largest sample.
    pub rss_mib: (f64, f64, f64),
    /// Open file descriptors: first, last and largest sample.
    pub fds: (u64, u64, u64),
}

impl Sampler {
    /// Samples every running process of `stack` (a stopped or paused one is skipped when
    /// `/proc` does not answer).
    pub fn sample(&mut self, stack: &ChaosStack) {
        for component in stack.components() {
            let Some(pid) = stack.pid(component) else {
                continue;
            };
            if let Some((rss_kib, fds)) = read_proc(pid) {
                self.samples
                    .entry(component)
                    .or_default()
                    .push(Sample { pid, rss_kib, fds });
            }
        }
    }

    /// Per component, in the stack's order.
    pub fn stats(&self) -> Vec<ProcessStats> {
        self.samples
            .iter()
            .filter_map(|(component, samples)| {
                let first = samples.first()?;
                let last = samples.last()?;
                let mut pids: Vec<u32> = samples.iter().map(|s| s.pid).collect();
                pids.dedup();
                let mib = |kib: u64| kib as f64 / 1024.0;
                Some(ProcessStats {
                    name: component.to_string(),
                    samples: samples.len(),
                    restarts: pids.len() - 1,
                    rss_mib: (
                        mib(first.rss_kib),
                        mib(last.rss_kib),
                        mib(samples.iter().map(|s| s.rss_kib).max().unwrap_or(0)),
                    ),
                    fds: (
                        first.fds,
                        last.fds,
                        samples.iter().map(|s| s.fds).max().unwrap_or(0),
                    ),
                })
            })
            .collect()
    }
}

/// `(VmRSS in KiB, open descriptors)` of `pid`.
fn read_proc(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

/// How often the soak samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let (rss, fds) = read_proc(std::process::id()).expect("/proc of this process");
        assert!(rss > 0 && fds > 0, "{rss} {fds}");
    }
}
