//! The gateway's background tasks (config watcher, status subscription and publisher, NATS
//! link monitor, one subscription per watched topic, finality repair, QuestDB probe and
//! connections): spawned on one [`TaskTracker`], each ends when the root shutdown token (or
//! a child token of it) is cancelled, and [`crate::Running::wait`] waits for them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Spawns and tracks background tasks under the root shutdown token. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tasks {
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Tasks running now, by name (what a shutdown that does not finish names).
    running: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

impl Tasks {
    /// Tasks ending when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            tracker: TaskTracker::new(),
            shutdown,
            running: Arc::default(),
        }
    }

    /// The root token: cancelled when the gateway shuts down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// A token cancelled at shutdown, or before by whoever holds it.
    pub fn child_token(&self) -> CancellationToken {
        self.shutdown.child_token()
    }

    /// Spawns `task` (which must end once the shutdown token is cancelled) on the tracker.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let alive = Alive::start(self.running.clone(), name);
        self.tracker.spawn(async move {
            task.await;
            drop(alive);
        });
    }

    /// Waits until every task has ended, at most until `deadline`; otherwise returns the
    /// names of those still running (with their count).
    pub async fn wait_until(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<(), BTreeMap<&'static str, usize>> {
        self.tracker.close();
        match tokio::time::timeout_at(deadline, self.tracker.wait()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()),
        }
    }
}

/// Counts one running task under its name while alive (also when the task panics or is
/// aborted).
struct Alive {
    running: Arc<Mutex<BTreeMap<&'static str, usize>>>,
    name: &'static str,
}

impl Alive {
    fn start(running: Arc<Mutex<BTreeMap<&'static str, usize>>>, name: &'static str) -> Self {
        *running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name)
            .or_default() += 1;
        Self { running, name }
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = running.get_mut(self.name) {
            *count -= 1;
            if *count == 0 {
                running.remove(self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_every_task_and_names_those_that_do_not_end() {
        let root = CancellationToken::new();
        let tasks = Tasks::new(root.clone());
        for _ in 0..2 {
            let token = tasks.child_token();
            tasks.spawn("polite", async move { token.cancelled().await });
        }
        tasks.spawn("stubborn", std::future::pending());
        root.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let left = tasks.wait_until(deadline).await.unwrap_err();
        assert_eq!(left, BTreeMap::from([("stubborn", 1)]));

        let tasks = Tasks::new(CancellationToken::new());
        let token = tasks.shutdown().clone();
        tasks.spawn("polite", async move { token.cancelled().await });
        tasks.shutdown().cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        assert_eq!(tasks.wait_until(deadline).await, Ok(()));
    }
}
