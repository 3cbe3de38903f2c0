//! Last use of keys: [`UsedNotes::note`] on the request path is a map lookup and, at most
//! once a minute per key, a `try_send`; [`write_notes`] writes `used.<key_id>` in the
//! background. A note that finds the queue full is dropped (the key is noted again a minute
//! later), so a burst of new keys never slows requests.

use async_nats::jetstream::kv;
use bytes::Bytes;
use rtdash_shared::auth::UsedRecord;
use rtdash_shared::names;
use rtdash_shared::time::{format_rfc3339, now_millis};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Least time between two writes of one key's last use, per process.
pub(super) const USED_INTERVAL: Duration = Duration::from_secs(60);

/// When each key was last noted; one entry per key that was used (bounded by the keys).
pub(super) struct UsedNotes {
    last: Mutex<HashMap<String, Instant>>,
    queue: mpsc::Sender<String>,
}

impl UsedNotes {
    pub(super) fn new(queue: mpsc::Sender<String>) -> Self {
        Self {
            last: Mutex::new(HashMap::new()),
            queue,
        }
    }

    /// Notes a use of `key_id`; queues a write unless one was queued less than a minute ago.
    pub(super) fn note(&self, key_id: &str) {
        let now = Instant::now();
        {
            let Ok(mut last) = self.last.lock() else {
                return;
            };
            match last.get_mut(key_id) {
                Some(at) if now.duration_since(*at) < USED_INTERVAL => return,
                Some(at) => *at = now,
                None => {
                    last.insert(key_id.to_owned(), now);
                }
            }
        }
        let _ = self.queue.try_send(key_id.to_owned());
    }
}

/// Writes queued notes as `used.<key_id>` until `shutdown`; a failed write is logged and
/// dropped (last use is informational).
pub(super) async fn write_notes(
    kv: kv::Store,
    mut queue: mpsc::Receiver<String>,
    shutdown: CancellationToken,
) {
    loop {
        let key_id = tokio::select! {
            () = shutdown.cancelled() => return,
            next = queue.recv() => match next {
                Some(key_id) => key_id,
                None => return,
            },
        };
        let record = UsedRecord {
            last_used_at: format_rfc3339(now_millis()),
        };
        let Ok(value) = serde_json::to_vec(&record) else {
            continue;
        };
        if let Err(err) = kv
            .put(names::key_used_key(&key_id), Bytes::from(value))
            .await
        {
            tracing::debug!(%key_id, error = %err, "could not record a key's last use");
        }
    }
}
