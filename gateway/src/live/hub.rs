//! The live hub: one upstream NATS subscription per watched (tenant, metric), shared by every
//! viewer ([`Topic`]: its plans, memory and ring), the ids that order every topic's ring, and
//! the NATS [`Link`] the streams follow (see [`super::link`]: after a reconnection the hub
//! resynchronises every topic and stream).

use super::link::{self, Link, LinkChange};
use super::subscription;
use super::topic::{HubShared, Topic};
use crate::config::LiveConfig;
use crate::metrics::{self as names, FanoutMetrics};
use crate::tasks::Tasks;
use rtdash_shared::time::now_millis;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long opening an upstream subscription may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often lingering topics past their time are let go.
const LINGER_SWEEP: Duration = Duration::from_secs(1);

/// (tenant, metric).
pub type TopicKey = (String, String);

/// Why a topic could not be subscribed to.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The subscription was refused or the client is closed.
    #[error("subscribing to {subject} failed")]
    Subscribe {
        /// The live subject.
        subject: String,
        /// The client's error.
        #[source]
        source: async_nats::SubscribeError,
    },
    /// The server did not confirm the subscription.
    #[error("flushing the subscription to {subject} failed")]
    Flush {
        /// The live subject.
        subject: String,
        /// The client's error.
        #[source]
        source: async_nats::client::FlushError,
    },
    /// NATS did not answer within the subscribe timeout.
    #[error("subscribing to {subject} timed out (is NATS reachable?)")]
    TimedOut {
        /// The live subject.
        subject: String,
    },
}

/// The live hub.
#[derive(Debug)]
pub struct Hub {
    client: async_nats::Client,
    shared: Arc<HubShared>,
    topics: Mutex<HashMap<TopicKey, Weak<Topic>>>,
    /// Topics kept alive after their last stream closed, until the instant beside them
    /// (`live.topic_linger_ms`), oldest first.
    lingering: Mutex<VecDeque<(Instant, Arc<Topic>)>>,
    /// Serializes topic creation, so a burst of viewers opens one subscription.
    creating: tokio::sync::Mutex<()>,
    /// Runs the subscriptions and the link monitor until shutdown.
    tasks: Tasks,
    /// Random per process: event ids from another instance are not resumed here.
    instance: String,
}

impl Hub {
    /// A hub reading from `client`; its subscriptions run on `tasks` and end with their
    /// shutdown token.
    pub fn new(
        client: async_nats::Client,
        config: LiveConfig,
        metrics: FanoutMetrics,
        tasks: Tasks,
    ) -> Self {
        let seed = (now_millis().max(0) as u64) * 1000;
        Self {
            client,
            shared: Arc::new(HubShared::new(config, seed, metrics)),
            topics: Mutex::new(HashMap::new()),
            lingering: Mutex::new(VecDeque::new()),
            creating: tokio::sync::Mutex::new(()),
            tasks,
            instance: format!("{:08x}", rand_u32()),
        }
    }

    /// This process's instance tag.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Upstream subscriptions open now.
    pub fn subscriptions(&self) -> u64 {
        self.shared.subscriptions.load(Ordering::Relaxed)
    }

    /// The handles of the fan-out path's metrics.
    pub fn metrics(&self) -> &FanoutMetrics {
        &self.shared.metrics
    }

    /// The NATS link, and a receiver woken when it changes.
    pub fn link(&self) -> watch::Receiver<Link> {
        self.shared.link.subscribe()
    }

    /// Follows the NATS client until shutdown (see [`super::link`]).
    pub fn spawn_link_monitor(self: &Arc<Self>) {
        let hub = self.clone();
        let settle_after = Duration::from_millis(self.shared.config.resync_settle_ms);
        let monitor = link::monitor(
            self.client.clone(),
            settle_after,
            self.tasks.child_token(),
            move |change| match change {
                LinkChange::Disconnected => {
                    hub.shared.link.send_modify(|link| link.connected = false);
                }
                LinkChange::Reconnected | LinkChange::Settled => hub.resync(),
            },
        );
        self.tasks.spawn("nats link monitor", monitor);
    }

    /// Keeps `topics` (of a stream that closed) alive for `live.topic_linger_ms`, so a
    /// stream opened meanwhile finds their subscription and memory; at most
    /// `live.max_lingering_topics`, the oldest let go first.
    pub fn linger(&self, topics: Vec<Arc<Topic>>) {
        let config = &self.shared.config;
        if config.topic_linger_ms == 0 || topics.is_empty() {
            return;
        }
        let until = Instant::now() + Duration::from_millis(config.topic_linger_ms);
        let mut lingering = self.lingering.lock().unwrap_or_else(|e| e.into_inner());
        for topic in topics {
            lingering.retain(|(_, held)| !Arc::ptr_eq(held, &topic));
            lingering.push_back((until, topic));
        }
        while lingering.len() > config.max_lingering_topics {
            lingering.pop_front();
        }
    }

    /// Lets go of the lingering topics whose time is up; returns how many linger still.
    pub fn sweep_lingering(&self) -> usize {
        let now = Instant::now();
        let mut lingering = self.lingering.lock().unwrap_or_else(|e| e.into_inner());
        lingering.retain(|(until, _)| *until > now);
        lingering.len()
    }

    /// Sweeps the lingering topics every second until shutdown.
    pub fn spawn_linger_sweep(self: &Arc<Self>) {
        let hub = self.clone();
        let cancel = self.tasks.child_token();
        self.tasks.spawn("lingering topics sweep", async move {
            let mut tick = tokio::time::interval(LINGER_SWEEP);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        hub.sweep_lingering();
                    }
                }
            }
            // Let the subscriptions' tasks end with the shutdown.
            hub.lingering
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        });
    }

    /// Drops every topic's memory and moves the link to a new epoch: streams send fresh
    /// snapshots.
    pub fn resync(&self) {
        // An id of its own: a cursor from before the resynchronisation (at most the last id
        // issued before it) is below it, one issued after it is not.
        let mark = self.shared.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.resynced_at.store(mark, Ordering::SeqCst);
        for topic in &self.topics() {
            topic.invalidate();
        }
        self.shared.link.send_modify(|link| {
            link.connected = true;
            link.epoch += 1;
        });
        metrics::counter!(names::LIVE_RESYNCS).increment(1);
    }

    /// The topic of (tenant, metric), subscribing upstream if nobody watches it yet. Returns
    /// once the subscription is registered with the server.
    pub async fn topic(&self, tenant: &str, metric: &str) -> Result<Arc<Topic>, SubscribeError> {
        let key = (tenant.to_owned(), metric.to_owned());
        if let Some(topic) = self.lookup(&key) {
            return Ok(topic);
        }
        let _creating = self.creating.lock().await;
        if let Some(topic) = self.lookup(&key) {
            return Ok(topic);
        }
        let subject = rtdash_shared::names::live_subject(tenant, metric);
        let subscribe = async {
            let subscriber = self
                .client
                .subscribe(subject.clone())
                .await
                .map_err(|source| SubscribeError::Subscribe {
                    subject: subject.clone(),
                    source,
                })?;
            // The server has the subscription once the flush returns: a snapshot queried
            // after this point cannot miss an update published after it.
            self.client
                .flush()
                .await
                .map_err(|source| SubscribeError::Flush {
                    subject: subject.clone(),
                    source,
                })?;
            Ok(subscriber)
        };
        let subscriber = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribe)
            .await
            .map_err(|_| SubscribeError::TimedOut {
                subject: subject.clone(),
            })??;
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(topic) = topics.get(&key).and_then(Weak::upgrade) {
            // Someone else subscribed meanwhile: use theirs (ours is dropped, unsubscribing).
            return Ok(topic);
        }
        topics.retain(|_, topic| topic.strong_count() > 0);
        let cancel = self.tasks.child_token();
        let topic = Arc::new(Topic::new(
            self.shared.clone(),
            tenant,
            metric,
            cancel.clone(),
        ));
        topics.insert(key, Arc::downgrade(&topic));
        drop(topics);
        self.tasks.spawn(
            "live subscription",
            subscription::run(
                subscriber,
                subject,
                Arc::downgrade(&topic),
                cancel,
                self.shared.metrics.clone(),
            ),
        );
        Ok(topic)
    }

    /// Every topic watched now.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.values().filter_map(Weak::upgrade).collect()
    }

    fn lookup(&self, key: &TopicKey) -> Option<Arc<Topic>> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.get(key).and_then(Weak::upgrade)
    }
}

fn rand_u32() -> u32 {
    let id = uuid::Uuid::new_v4();
    let bytes = id.as_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}
