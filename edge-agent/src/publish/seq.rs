//! Batch sequence numbers per partition, monotonic across restarts.
//!
//! A partition's first sequence number after a start is
//! `max(persisted last seq + 1, highest seq in the disk spool + 1, now in µs since the epoch)`.
//! The clock term makes a fresh sequence higher than anything used before even when the state
//! file is lost or stale (the agent uses a few sequence numbers per second, the clock advances
//! a million per second); the persisted term protects against a clock that went back. The
//! last used numbers are written to `<state_dir>/seq.json` periodically and at shutdown, via
//! a temporary file and a rename.

use crate::fs::write_atomically;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// File name of the persisted state in the state directory.
pub const SEQ_FILE: &str = "seq.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    agent_id: String,
    /// Last used sequence number per partition.
    last: BTreeMap<u32, u64>,
}

/// Allocates sequence numbers (see the module docs).
#[derive(Debug)]
pub struct SeqState {
    path: PathBuf,
    agent_id: String,
    floor: u64,
    last: BTreeMap<u32, u64>,
    dirty: bool,
}

impl SeqState {
    /// Loads the state of `agent_id` from `state_dir` (a state file of another agent id is
    /// ignored). `floor` is the lowest number to hand out, normally [`now_micros`]; the caller
    /// raises it further with [`SeqState::observe`] for batches found in the spool.
    pub fn load(state_dir: &Path, agent_id: &str, floor: u64) -> io::Result<Self> {
        let path = state_dir.join(SEQ_FILE);
        let persisted: Persisted = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                tracing::warn!(path = %path.display(), error = %err, "unreadable sequence state; starting from the clock");
                Persisted::default()
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Persisted::default(),
            Err(err) => return Err(err),
        };
        let last = if persisted.agent_id == agent_id {
            persisted.last
        } else {
            BTreeMap::new()
        };
        Ok(Self {
            path,
            agent_id: agent_id.to_owned(),
            floor,
            last,
            dirty: false,
        })
    }

    /// Records that `seq` was used for `partition` (a batch found in the disk spool).
    pub fn observe(&mut self, partition: u32, seq: u64) {
        let last = self.last.entry(partition).or_insert(0);
        if seq > *last {
            *last = seq;
            self.dirty = true;
        }
    }

    /// The next sequence number of `partition`.
    pub fn next(&mut self, partition: u32) -> u64 {
        let last = self.last.entry(partition).or_insert(0);
        let seq = (*last + 1).max(self.floor);
        *last = seq;
        self.dirty = true;
        seq
    }

    /// Writes the state if it changed since the last write.
    pub fn persist(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let state = Persisted {
            agent_id: self.agent_id.clone(),
            last: self.last.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&state).map_err(io::Error::other)?;
        write_atomically(&self.path, &bytes)?;
        self.dirty = false;
        Ok(())
    }
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_are_monotonic_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seqs = SeqState::load(dir.path(), "edge-1", 1_000).expect("load");
        assert_eq!(seqs.next(0), 1_000);
        assert_eq!(seqs.next(0), 1_001);
        assert_eq!(seqs.next(3), 1_000);
        seqs.persist().expect("persist");

        // The clock went back: the persisted numbers win.
        let mut again = SeqState::load(dir.path(), "edge-1", 10).expect("load");
        assert_eq!(again.next(0), 1_002);
        assert_eq!(again.next(3), 1_001);
        assert_eq!(again.next(5), 10);
        // A batch found in the spool above the persisted number.
        again.observe(0, 5_000);
        assert_eq!(again.next(0), 5_001);

        // The clock moved on: it wins.
        let mut later = SeqState::load(dir.path(), "edge-1", 2_000_000).expect("load");
        assert_eq!(later.next(0), 2_000_000);

        // Another agent's state is ignored.
        let mut other = SeqState::load(dir.path(), "edge-2", 7).expect("load");
        assert_eq!(other.next(0), 7);
    }

    #[test]
    fn the_clock_floor_is_in_microseconds() {
        let now = now_micros();
        assert!(now > 1_600_000_000_000_000, "{now}");
    }
}
