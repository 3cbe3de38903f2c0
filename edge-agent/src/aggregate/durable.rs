//! Durable acknowledgements (`ingest.durable_ack`): which flushes have made their events
//! survive a crash of the agent, for the requests waiting to answer `202`.
//!
//! A request's events go out with the next drain of their shard ([`AddTotals::flush`]).
//! Every batch is written to the disk spool when it is made (the spool's memory budget is 0
//! in this mode; the page cache survives a process crash), so a flush is durable once its
//! batches are pushed. A batch the disk refused (full, broken) stays in memory: its flush,
//! and every later one, becomes durable only when JetStream has acknowledged it.
//!
//! [`AddTotals::flush`]: super::AddTotals::flush

use std::collections::VecDeque;

use tokio::sync::watch;

use crate::publish::spool::Spool;

/// A flush whose batches the disk refused, with those batches (`(partition, seq)`).
type HeldFlush = (u64, Vec<(u32, u64)>);

/// The newest flush whose events are durable, watched by the requests waiting on it.
#[derive(Debug)]
pub struct DurableAcks {
    durable: watch::Sender<u64>,
    /// Flushes with batches held only in memory, oldest first.
    held: std::sync::Mutex<VecDeque<HeldFlush>>,
}

impl Default for DurableAcks {
    fn default() -> Self {
        Self {
            durable: watch::Sender::new(0),
            held: std::sync::Mutex::new(VecDeque::new()),
        }
    }
}

impl DurableAcks {
    /// Records that flush `flush` is made, `in_memory` its batches the disk refused, and
    /// advances the durable flush as far as `spool`'s acknowledgements allow.
    pub fn flushed(&self, flush: u64, in_memory: Vec<(u32, u64)>, spool: &Spool) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if !in_memory.is_empty() {
            held.push_back((flush, in_memory));
        }
        while held
            .front()
            .is_some_and(|(_, batches)| batches.iter().all(|&(p, seq)| spool.is_acked(p, seq)))
        {
            held.pop_front();
        }
        let durable = held.front().map_or(flush, |(oldest, _)| oldest - 1);
        drop(held);
        self.durable.send_if_modified(|current| {
            let raise = durable > *current;
            if raise {
                *current = durable;
            }
            raise
        });
    }

    /// The newest durable flush.
    pub fn durable(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Waits until flush `flush` is durable (the agent's shutdown makes its final flush
    /// before the server stops waiting for requests in progress).
    pub async fn wait(&self, flush: u64) {
        let mut rx = self.durable.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = rx.wait_for(|durable| *durable >= flush).await;
    }
}
