//! The silences in force, mirrored from the config bucket (`silence.<tenant>.<id>`, written
//! by the gateway's `/v1/silences`): the notifier asks [`Silences::muting`] before it posts a
//! transition, and records a muted one as `silenced` instead.

use async_nats::jetstream::{self, kv};
use rtdash_runtime::kv::{follow, Change};
use rtdash_shared::alert::AlertTransition;
use rtdash_shared::silence::Silence;
use rtdash_shared::time::UnixMillis;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio_util::sync::CancellationToken;

/// Silences by config key; the gateway bounds how many a tenant has.
#[derive(Clone, Debug, Default)]
pub struct Silences {
    current: Arc<RwLock<HashMap<String, Silence>>>,
}

impl Silences {
    /// The silence that mutes `transition` at `now`, if any (the one ending last).
    pub fn muting(&self, transition: &AlertTransition, now: UnixMillis) -> Option<Silence> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current
            .values()
            .filter(|silence| silence.mutes(transition, now))
            .max_by_key(|silence| silence.ends_at)
            .cloned()
    }

    /// How many silences are known (in force or not).
    pub fn len(&self) -> usize {
        self.current.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply(&self, change: Change<'_>) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        match change {
            Change::Snapshot(entries) => {
                current.clear();
                for entry in entries {
                    if let Some(silence) = decode(&entry.key, &entry.value) {
                        current.insert(entry.key, silence);
                    }
                }
            }
            Change::Put { key, value } => match decode(key, value) {
                Some(silence) => {
                    current.insert(key.to_owned(), silence);
                }
                None => {
                    current.remove(key);
                }
            },
            Change::Delete { key } => {
                current.remove(key);
            }
        }
    }

    /// Follows `silence.>` in the config bucket until `stop`.
    pub async fn follow(self, js: jetstream::Context, config: kv::Store, stop: CancellationToken) {
        follow(
            js,
            config,
            "silence.>",
            "silences",
            |change| self.apply(change),
            None,
            stop,
        )
        .await;
    }
}

/// The silence stored under `key`, if it decodes and is stored under its own tenant and id.
fn decode(key: &str, value: &[u8]) -> Option<Silence> {
    match serde_json::from_slice::<Silence>(value) {
        Ok(silence)
            if key == rtdash_shared::names::silence_config_key(&silence.tenant_id, &silence.id) =>
        {
            Some(silence)
        }
        Ok(_) => {
            tracing::warn!(%key, "silence stored under another key; ignored");
            None
        }
        Err(err) => {
            tracing::warn!(%key, %err, "undecodable silence; ignored");
            None
        }
    }
}
