//! The NATS link as live streams see it, and the monitor that follows the client.
//!
//! Core NATS does not replay what was published while the gateway was disconnected. The
//! monitor watches the client: while it is disconnected the link says so (streams show it as
//! `status` `disconnected`); after every reconnection the hub resynchronises (topics drop
//! their memory, the link's `epoch` moves on, and every stream sends fresh snapshots). A second
//! resynchronisation follows `resync_settle_ms` later, for rows QuestDB had not applied yet at
//! the first one.

use crate::metrics as names;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the link monitor looks at the NATS client.
const LINK_POLL: Duration = Duration::from_millis(50);

/// The upstream NATS connection, as live streams see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The client is connected.
    pub connected: bool,
    /// Resynchronisations so far: a stream that saw an older epoch sends fresh snapshots.
    pub epoch: u64,
}

/// What the monitor saw happen to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// The connection was lost.
    Disconnected,
    /// The client is connected again (or reconnected quicker than a poll): updates published
    /// meanwhile were lost.
    Reconnected,
    /// `resync_settle_ms` after a reconnection, still connected.
    Settled,
}

/// Follows `client` until `shutdown`, calling `on_change` on every change: polls its state
/// and its connection count (which also catches a reconnection quicker than a poll).
pub async fn monitor(
    client: async_nats::Client,
    settle_after: Duration,
    shutdown: CancellationToken,
    mut on_change: impl FnMut(LinkChange),
) {
    let stats = client.statistics();
    let mut connects = stats.connects.load(Ordering::Relaxed);
    let mut connected = true;
    let mut settle: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(LINK_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now_connected = matches!(
            client.connection_state(),
            async_nats::connection::State::Connected
        );
        let now_connects = stats.connects.load(Ordering::Relaxed);
        if now_connects != connects && now_connected {
            connects = now_connects;
            connected = true;
            tracing::warn!(
                "NATS reconnected: live updates published meanwhile were lost; \
                 resynchronising every stream"
            );
            on_change(LinkChange::Reconnected);
            settle = (!settle_after.is_zero()).then(|| tokio::time::Instant::now() + settle_after);
        } else if connected && !now_connected {
            connected = false;
            settle = None;
            tracing::warn!("NATS disconnected: live streams are stale until it is back");
            metrics::counter!(names::NATS_DISCONNECTS).increment(1);
            on_change(LinkChange::Disconnected);
        } else if settle.is_some_and(|at| tokio::time::Instant::now() >= at) {
            settle = None;
            if connected {
                on_change(LinkChange::Settled);
            }
        }
    }
}
