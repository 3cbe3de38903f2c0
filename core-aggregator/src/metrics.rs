//! Prometheus metrics of the core aggregator (rendered on `/metrics`): every name, its
//! description ([`describe`], once at start) and the handles of the hot paths (created once,
//! passed to the code that records). Labels are bounded: `partition` (at most
//! `streams.partitions` values), `to` (the 4 alert states) and `outcome` (the 5 delivery
//! outcomes).
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `rtdash_core_partials_merged_total` | counter | series deltas merged, corrections included |
//! | `rtdash_core_batches_applied_total` | counter | partial batches applied |
//! | `rtdash_core_duplicates_skipped_total` | counter | batches skipped as applied before |
//! | `rtdash_core_windows_closed_total` | counter | windows closed (written final) |
//! | `rtdash_core_corrections_total` | counter | late partials merged into closed windows |
//! | `rtdash_core_late_beyond_horizon_total` | counter | entries beyond the correction horizon (late stream) |
//! | `rtdash_core_dead_letters_total` | counter | unusable messages, entries or rows (dead-letter stream, or dropped by QuestDB) |
//! | `rtdash_core_windows_evicted_total` | counter | windows evicted from memory |
//! | `rtdash_core_provisional_deferred_total` | counter | provisional rows put off while the writer was behind |
//! | `rtdash_core_agent_clock_ahead_total` | counter | batches whose agent clock ran ahead and was clamped |
//! | `rtdash_core_tier_windows_closed_total` | counter | rollup tier windows closed |
//! | `rtdash_core_tier_corrections_total` | counter | closed tier windows corrected (revision + 1) |
//! | `rtdash_core_tier_overflow_total` | counter | base windows folded into a tier window's overflow series (`rollups.max_tier_series` reached) |
//! | `rtdash_core_tier_windows_evicted_total` | counter | tier windows evicted from memory |
//! | `rtdash_core_windows_in_memory{partition}` | gauge | base windows held in memory |
//! | `rtdash_core_tier_windows_in_memory{partition}` | gauge | tier windows held in memory |
//! | `rtdash_core_consumer_lag_messages{partition}` | gauge | messages not yet processed |
//! | `rtdash_core_watermark_timestamp_seconds{partition}` | gauge | partition watermark, seconds since the epoch |
//! | `rtdash_core_consumer_resets_total` | counter | consumer re-positionings |
//! | `rtdash_core_checkpoint_seconds` | histogram | duration of a checkpoint |
//! | `rtdash_core_checkpoint_bytes` | histogram | bytes written by a checkpoint |
//! | `rtdash_core_checkpoint_errors_total` | counter | failed checkpoints (retried) |
//! | `rtdash_core_partitions_owned` | gauge | partitions this aggregator owns |
//! | `rtdash_core_partitions_fenced_total` | counter | partitions lost to fencing |
//! | `rtdash_core_questdb_write_seconds` | histogram | duration of a successful ILP request |
//! | `rtdash_core_questdb_backlog_rows` | gauge | rows waiting for QuestDB |
//! | `rtdash_core_questdb_rows_written_total` | counter | rows written to QuestDB |
//! | `rtdash_core_questdb_errors_total` | counter | failed QuestDB requests (retried) |
//! | `rtdash_core_questdb_fenced_rows_total` | counter | rows dropped because their partition changed owner |
//! | `rtdash_core_live_updates_total` | counter | window versions published live |
//! | `rtdash_core_live_messages_total` | counter | live messages published |
//! | `rtdash_core_alert_rules` | gauge | alert rules in force |
//! | `rtdash_core_alert_queue` | gauge | window updates waiting for alert evaluation |
//! | `rtdash_core_alert_updates_dropped_total` | counter | provisional updates not evaluated (queue over its limit) |
//! | `rtdash_core_alert_evaluations_total` | counter | (rule, series) evaluations |
//! | `rtdash_core_alert_transitions_total{to}` | counter | transitions published, by new state |
//! | `rtdash_core_alert_state_writes_total` | counter | alert state writes |
//! | `rtdash_core_alert_state_conflicts_total` | counter | alert state writes that lost a compare-and-set |
//! | `rtdash_core_alert_series` | gauge | (rule, series) states held |
//! | `rtdash_core_alert_deliveries_total{outcome}` | counter | webhook delivery attempts, by outcome |
//! | `rtdash_core_alert_webhook_request_seconds` | histogram | duration of a webhook request |
//! | `rtdash_core_alert_delivery_latency_seconds` | histogram | transition evaluated to webhook delivered |
//! | `rtdash_core_alert_retry_backlog` | gauge | deliveries waiting for a retry |
//! | `rtdash_core_alert_destinations_refused_total{class}` | counter | deliveries refused because the webhook pointed inward: `loopback`, `link_local`, `private`, `shared_nat`, `multicast`, `unspecified`, `reserved`, or `url` (user-info, scheme) |
//! | `rtdash_core_admin_accept_errors_total` | counter | failed `accept` calls of the admin listener |
//! | `rtdash_core_admin_http_client_timeouts_total{phase}` | counter | admin requests cut because the client was too slow (`header`, `body`) |

use crate::state::Counters;
use metrics::{Counter, Gauge, Histogram};

/// Series deltas (partial entries) merged, corrections included.
pub const PARTIALS_MERGED: &str = "rtdash_core_partials_merged_total";
/// Partial batches applied.
pub const BATCHES_APPLIED: &str = "rtdash_core_batches_applied_total";
/// Batches skipped because they were applied before (redelivery, republished duplicate).
pub const DUPLICATES_SKIPPED: &str = "rtdash_core_duplicates_skipped_total";
/// Windows closed (written final).
pub const WINDOWS_CLOSED: &str = "rtdash_core_windows_closed_total";
/// Late partials merged into closed windows (revision + 1).
pub const CORRECTIONS: &str = "rtdash_core_corrections_total";
/// Partial entries beyond the correction horizon, sent to `rtdash.late.<tenant>`.
pub const LATE_BEYOND_HORIZON: &str = "rtdash_core_late_beyond_horizon_total";
/// Messages or entries that could not be used (sent to the dead-letter stream), and rows
/// QuestDB rejects alone (dropped).
pub const DEAD_LETTERS: &str = "rtdash_core_dead_letters_total";
/// Windows evicted from memory.
pub const WINDOWS_EVICTED: &str = "rtdash_core_windows_evicted_total";
/// Provisional store outputs put off while the QuestDB writer was backlogged.
pub const PROVISIONAL_DEFERRED: &str = "rtdash_core_provisional_deferred_total";
/// Batches whose agent clock or watermark ran ahead of this aggregator's clock and were clamped.
pub const AGENT_CLOCK_AHEAD: &str = "rtdash_core_agent_clock_ahead_total";
/// Rollup tier windows closed.
pub const TIER_WINDOWS_CLOSED: &str = "rtdash_core_tier_windows_closed_total";
/// Closed tier windows corrected by a correction of one of their base windows.
pub const TIER_CORRECTIONS: &str = "rtdash_core_tier_corrections_total";
/// Base windows folded into their tier window's overflow series because it held
/// `rollups.max_tier_series` series of their group.
pub const TIER_OVERFLOW: &str = "rtdash_core_tier_overflow_total";
/// Tier windows evicted from memory.
pub const TIER_WINDOWS_EVICTED: &str = "rtdash_core_tier_windows_evicted_total";
/// Base windows in memory, per partition.
pub const WINDOWS_IN_MEMORY: &str = "rtdash_core_windows_in_memory";
/// Tier windows in memory, per partition.
pub const TIER_WINDOWS_IN_MEMORY: &str = "rtdash_core_tier_windows_in_memory";
/// Messages in the stream not yet processed, per partition.
pub const CONSUMER_LAG: &str = "rtdash_core_consumer_lag_messages";
/// Partition watermark, seconds since the Unix epoch, per partition.
pub const WATERMARK: &str = "rtdash_core_watermark_timestamp_seconds";
/// Consumer re-positionings after a delivery gap or a consumer error.
pub const CONSUMER_RESETS: &str = "rtdash_core_consumer_resets_total";
/// Duration of a checkpoint (serialise, store, manifest).
pub const CHECKPOINT_SECONDS: &str = "rtdash_core_checkpoint_seconds";
/// Bytes written by a checkpoint (window data plus manifest).
pub const CHECKPOINT_BYTES: &str = "rtdash_core_checkpoint_bytes";
/// Failed checkpoints (retried at the next interval).
pub const CHECKPOINT_ERRORS: &str = "rtdash_core_checkpoint_errors_total";
/// Partitions this aggregator owns.
pub const PARTITIONS_OWNED: &str = "rtdash_core_partitions_owned";
/// Partitions lost to fencing (lease not renewed in time, or taken over).
pub const PARTITIONS_FENCED: &str = "rtdash_core_partitions_fenced_total";
/// Duration of one QuestDB ILP request that succeeded.
pub const QUESTDB_WRITE_SECONDS: &str = "rtdash_core_questdb_write_seconds";
/// Rows queued for QuestDB (channel plus the batch being written).
pub const QUESTDB_BACKLOG: &str = "rtdash_core_questdb_backlog_rows";
/// Rows written to QuestDB.
pub const QUESTDB_ROWS: &str = "rtdash_core_questdb_rows_written_total";
/// Failed QuestDB requests (each is retried).
pub const QUESTDB_ERRORS: &str = "rtdash_core_questdb_errors_total";
/// Rows dropped by the writer because their partition changed owner (fencing).
pub const QUESTDB_FENCED_ROWS: &str = "rtdash_core_questdb_fenced_rows_total";
/// Live updates published.
pub const LIVE_UPDATES: &str = "rtdash_core_live_updates_total";
/// Live messages published (a message carries one window version or a batch of them).
pub const LIVE_MESSAGES: &str = "rtdash_core_live_messages_total";
/// Alert rules in force (the tenants' and the built-in ones).
pub const ALERT_RULES: &str = "rtdash_core_alert_rules";
/// Window updates waiting for alert evaluation.
pub const ALERT_QUEUE: &str = "rtdash_core_alert_queue";
/// Provisional window updates not evaluated because the queue was over `alerts.queue_limit`.
pub const ALERT_UPDATES_DROPPED: &str = "rtdash_core_alert_updates_dropped_total";
/// (rule, series) evaluations of a window version.
pub const ALERT_EVALUATIONS: &str = "rtdash_core_alert_evaluations_total";
/// Alert transitions published, by new state (`to`: ok, pending, firing, resolved).
pub const ALERT_TRANSITIONS: &str = "rtdash_core_alert_transitions_total";
/// Alert state writes to `rtdash_alert_state`.
pub const ALERT_STATE_WRITES: &str = "rtdash_core_alert_state_writes_total";
/// Alert state writes that lost a compare-and-set (another owner wrote first).
pub const ALERT_STATE_CONFLICTS: &str = "rtdash_core_alert_state_conflicts_total";
/// (rule, series) states held by this process.
pub const ALERT_SERIES: &str = "rtdash_core_alert_series";
/// Webhook delivery attempts, by `outcome` (delivered, retrying, failed, gave_up, skipped).
pub const ALERT_DELIVERIES: &str = "rtdash_core_alert_deliveries_total";
/// Duration of one webhook request.
pub const ALERT_REQUEST_SECONDS: &str = "rtdash_core_alert_webhook_request_seconds";
/// From a transition's evaluation to its successful delivery.
pub const ALERT_DELIVERY_LATENCY: &str = "rtdash_core_alert_delivery_latency_seconds";
/// Deliveries waiting for their next retry.
pub const ALERT_RETRY_BACKLOG: &str = "rtdash_core_alert_retry_backlog";
/// Deliveries refused for their destination, by `class` (an address range, or `url`).
pub const ALERT_DESTINATIONS_REFUSED: &str = "rtdash_core_alert_destinations_refused_total";
/// Failed `accept` calls of the admin listener.
pub const ADMIN_ACCEPT_ERRORS: &str = "rtdash_core_admin_accept_errors_total";
/// Admin requests cut for a slow client, label `phase` (`header`, `body`).
pub const ADMIN_HTTP_CLIENT_TIMEOUTS: &str = "rtdash_core_admin_http_client_timeouts_total";

/// Registers every description and unit (shown as `# HELP`); call once at start.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        PARTIALS_MERGED,
        "Series deltas merged, corrections included"
    );
    describe_counter!(BATCHES_APPLIED, "Partial batches applied");
    describe_counter!(
        DUPLICATES_SKIPPED,
        "Partial batches skipped as already applied"
    );
    describe_counter!(WINDOWS_CLOSED, "Windows closed");
    describe_counter!(CORRECTIONS, "Late partials merged into closed windows");
    describe_counter!(
        LATE_BEYOND_HORIZON,
        "Partial entries beyond the correction horizon, sent to the late stream"
    );
    describe_counter!(
        DEAD_LETTERS,
        "Unusable messages or entries sent to the DLQ, and rows QuestDB rejected"
    );
    describe_counter!(WINDOWS_EVICTED, "Windows evicted from memory");
    describe_counter!(
        PROVISIONAL_DEFERRED,
        "Provisional QuestDB rows put off while the writer was backlogged"
    );
    describe_counter!(
        AGENT_CLOCK_AHEAD,
        "Batches whose agent clock ran ahead and was clamped"
    );
    describe_counter!(TIER_WINDOWS_CLOSED, "Rollup tier windows closed");
    describe_counter!(
        TIER_CORRECTIONS,
        "Closed rollup tier windows corrected (revision + 1)"
    );
    describe_counter!(
        TIER_OVERFLOW,
        "Base windows folded into a tier window's overflow series (max_tier_series reached)"
    );
    describe_counter!(
        TIER_WINDOWS_EVICTED,
        "Rollup tier windows evicted from memory"
    );
    describe_gauge!(WINDOWS_IN_MEMORY, "Base windows held in memory");
    describe_gauge!(TIER_WINDOWS_IN_MEMORY, "Rollup tier windows held in memory");
    describe_gauge!(CONSUMER_LAG, "Messages not yet processed");
    describe_gauge!(
        WATERMARK,
        Unit::Seconds,
        "Partition watermark, seconds since the Unix epoch"
    );
    describe_counter!(CONSUMER_RESETS, "Consumer re-positionings");
    describe_histogram!(CHECKPOINT_SECONDS, Unit::Seconds, "Checkpoint duration");
    describe_histogram!(
        CHECKPOINT_BYTES,
        Unit::Bytes,
        "Bytes written per checkpoint"
    );
    describe_counter!(CHECKPOINT_ERRORS, "Failed checkpoints (retried)");
    describe_gauge!(PARTITIONS_OWNED, "Partitions owned");
    describe_counter!(PARTITIONS_FENCED, "Partitions lost to fencing");
    describe_histogram!(
        QUESTDB_WRITE_SECONDS,
        Unit::Seconds,
        "QuestDB ILP request duration"
    );
    describe_gauge!(QUESTDB_BACKLOG, "Rows waiting for QuestDB");
    describe_counter!(QUESTDB_ROWS, "Rows written to QuestDB");
    describe_counter!(QUESTDB_ERRORS, "Failed QuestDB requests (retried)");
    describe_counter!(
        QUESTDB_FENCED_ROWS,
        "Rows dropped because their partition changed owner"
    );
    describe_counter!(LIVE_UPDATES, "Live window updates published");
    describe_counter!(
        LIVE_MESSAGES,
        "Live messages published (one window version or a batch of them)"
    );
    describe_gauge!(ALERT_RULES, "Alert rules in force");
    describe_gauge!(ALERT_QUEUE, "Window updates waiting for alert evaluation");
    describe_counter!(
        ALERT_UPDATES_DROPPED,
        "Provisional updates not evaluated (alert queue over its limit)"
    );
    describe_counter!(ALERT_EVALUATIONS, "Rule evaluations of a window version");
    describe_counter!(
        ALERT_TRANSITIONS,
        "Alert transitions published, by new state"
    );
    describe_counter!(ALERT_STATE_WRITES, "Alert state writes");
    describe_counter!(
        ALERT_STATE_CONFLICTS,
        "Alert state writes that lost a compare-and-set"
    );
    describe_gauge!(ALERT_SERIES, "Alert states (rule, series) held");
    describe_counter!(ALERT_DELIVERIES, "Webhook delivery attempts, by outcome");
    describe_histogram!(
        ALERT_REQUEST_SECONDS,
        Unit::Seconds,
        "Webhook request duration"
    );
    describe_histogram!(
        ALERT_DELIVERY_LATENCY,
        Unit::Seconds,
        "Transition evaluated to webhook delivered"
    );
    describe_gauge!(ALERT_RETRY_BACKLOG, "Deliveries waiting for a retry");
    describe_counter!(
        ALERT_DESTINATIONS_REFUSED,
        "Webhook deliveries refused because the destination is not on the public internet"
    );
    describe_counter!(
        ADMIN_ACCEPT_ERRORS,
        "Failed accept calls of the admin listener"
    );
    describe_counter!(
        ADMIN_HTTP_CLIENT_TIMEOUTS,
        "Admin requests cut because the client sent its head (header) or body (body) too slowly"
    );
}

/// The handles of the admin listener's server loop.
pub fn admin_server() -> rtdash_runtime::http::ServerMetrics {
    rtdash_runtime::http::ServerMetrics {
        accept_errors: metrics::counter!(ADMIN_ACCEPT_ERRORS),
        header_timeouts: metrics::counter!(ADMIN_HTTP_CLIENT_TIMEOUTS, "phase" => "header"),
        body_timeouts: metrics::counter!(ADMIN_HTTP_CLIENT_TIMEOUTS, "phase" => "body"),
    }
}

/// The metrics a partition worker records for every batch, emit and status report.
#[derive(Clone, Debug)]
pub struct PartitionMetrics {
    partials_merged: Counter,
    batches_applied: Counter,
    duplicates_skipped: Counter,
    windows_closed: Counter,
    corrections: Counter,
    late_beyond_horizon: Counter,
    /// [`DEAD_LETTERS`].
    pub dead_letters: Counter,
    windows_evicted: Counter,
    provisional_deferred: Counter,
    tier_windows_closed: Counter,
    tier_corrections: Counter,
    tier_overflow: Counter,
    tier_windows_evicted: Counter,
    /// [`AGENT_CLOCK_AHEAD`].
    pub agent_clock_ahead: Counter,
    /// [`CONSUMER_RESETS`].
    pub consumer_resets: Counter,
    /// [`CHECKPOINT_SECONDS`].
    pub checkpoint_seconds: Histogram,
    /// [`CHECKPOINT_BYTES`].
    pub checkpoint_bytes: Histogram,
    /// [`CHECKPOINT_ERRORS`].
    pub checkpoint_errors: Counter,
    /// [`WINDOWS_IN_MEMORY`] of this partition.
    pub windows_in_memory: Gauge,
    /// [`TIER_WINDOWS_IN_MEMORY`] of this partition.
    pub tier_windows_in_memory: Gauge,
    /// [`CONSUMER_LAG`] of this partition.
    pub consumer_lag: Gauge,
    watermark: Gauge,
}

impl PartitionMetrics {
    /// The handles of `partition`'s worker.
    pub fn new(partition: u32) -> Self {
        let label = partition.to_string();
        Self {
            partials_merged: metrics::counter!(PARTIALS_MERGED),
            batches_applied: metrics::counter!(BATCHES_APPLIED),
            duplicates_skipped: metrics::counter!(DUPLICATES_SKIPPED),
            windows_closed: metrics::counter!(WINDOWS_CLOSED),
            corrections: metrics::counter!(CORRECTIONS),
            late_beyond_horizon: metrics::counter!(LATE_BEYOND_HORIZON),
            dead_letters: metrics::counter!(DEAD_LETTERS),
            windows_evicted: metrics::counter!(WINDOWS_EVICTED),
            provisional_deferred: metrics::counter!(PROVISIONAL_DEFERRED),
            tier_windows_closed: metrics::counter!(TIER_WINDOWS_CLOSED),
            tier_corrections: metrics::counter!(TIER_CORRECTIONS),
            tier_overflow: metrics::counter!(TIER_OVERFLOW),
            tier_windows_evicted: metrics::counter!(TIER_WINDOWS_EVICTED),
            agent_clock_ahead: metrics::counter!(AGENT_CLOCK_AHEAD),
            consumer_resets: metrics::counter!(CONSUMER_RESETS),
            checkpoint_seconds: metrics::histogram!(CHECKPOINT_SECONDS),
            checkpoint_bytes: metrics::histogram!(CHECKPOINT_BYTES),
            checkpoint_errors: metrics::counter!(CHECKPOINT_ERRORS),
            windows_in_memory: metrics::gauge!(WINDOWS_IN_MEMORY, "partition" => label.clone()),
            tier_windows_in_memory: metrics::gauge!(
                TIER_WINDOWS_IN_MEMORY,
                "partition" => label.clone()
            ),
            consumer_lag: metrics::gauge!(CONSUMER_LAG, "partition" => label.clone()),
            watermark: metrics::gauge!(WATERMARK, "partition" => label),
        }
    }

    /// Adds the growth of the state machine's counters since `before`.
    pub fn record_counters(&self, before: &Counters, after: &Counters) {
        let pairs = [
            (
                &self.partials_merged,
                after.merged_entries - before.merged_entries,
            ),
            (&self.batches_applied, after.batches - before.batches),
            (
                &self.duplicates_skipped,
                after.duplicates - before.duplicates,
            ),
            (&self.windows_closed, after.closed - before.closed),
            (&self.corrections, after.corrections - before.corrections),
            (&self.late_beyond_horizon, after.late - before.late),
            (&self.dead_letters, after.invalid - before.invalid),
            (&self.windows_evicted, after.evicted - before.evicted),
            (
                &self.provisional_deferred,
                after.provisional_deferred - before.provisional_deferred,
            ),
            (
                &self.tier_windows_closed,
                after.tier_closed - before.tier_closed,
            ),
            (
                &self.tier_corrections,
                after.tier_corrections - before.tier_corrections,
            ),
            (
                &self.tier_overflow,
                after.tier_overflowed - before.tier_overflowed,
            ),
            (
                &self.tier_windows_evicted,
                after.tier_evicted - before.tier_evicted,
            ),
        ];
        for (counter, delta) in pairs {
            if delta > 0 {
                counter.increment(delta);
            }
        }
    }

    /// Sets the watermark gauge from a watermark in Unix milliseconds.
    pub fn set_watermark(&self, watermark_ms: i64) {
        self.watermark.set(watermark_ms as f64 / 1000.0);
    }
}

/// The metrics of the QuestDB writer thread.
#[derive(Clone, Debug)]
pub struct WriterMetrics {
    /// [`QUESTDB_WRITE_SECONDS`].
    pub write_seconds: Histogram,
    /// [`QUESTDB_BACKLOG`].
    pub backlog: Gauge,
    /// [`QUESTDB_ROWS`].
    pub rows: Counter,
    /// [`QUESTDB_ERRORS`].
    pub errors: Counter,
    /// [`QUESTDB_FENCED_ROWS`].
    pub fenced_rows: Counter,
    /// [`DEAD_LETTERS`]: rows QuestDB rejects alone.
    pub rejected_rows: Counter,
}

impl WriterMetrics {
    /// The writer's handles.
    pub fn new() -> Self {
        Self {
            write_seconds: metrics::histogram!(QUESTDB_WRITE_SECONDS),
            backlog: metrics::gauge!(QUESTDB_BACKLOG),
            rows: metrics::counter!(QUESTDB_ROWS),
            errors: metrics::counter!(QUESTDB_ERRORS),
            fenced_rows: metrics::counter!(QUESTDB_FENCED_ROWS),
            rejected_rows: metrics::counter!(DEAD_LETTERS),
        }
    }
}

impl Default for WriterMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The metrics of live publishing.
#[derive(Clone, Debug)]
pub struct LiveMetrics {
    /// [`LIVE_UPDATES`].
    pub updates: Counter,
    /// [`LIVE_MESSAGES`].
    pub messages: Counter,
}

impl LiveMetrics {
    /// The live sink's handles.
    pub fn new() -> Self {
        Self {
            updates: metrics::counter!(LIVE_UPDATES),
            messages: metrics::counter!(LIVE_MESSAGES),
        }
    }
}

impl Default for LiveMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The metrics of alert evaluation, recorded for every window version evaluated.
#[derive(Clone, Debug)]
pub struct AlertMetrics {
    /// [`ALERT_QUEUE`].
    pub queue: Gauge,
    /// [`ALERT_UPDATES_DROPPED`].
    pub updates_dropped: Counter,
    /// [`ALERT_EVALUATIONS`].
    pub evaluations: Counter,
    /// [`ALERT_STATE_WRITES`].
    pub state_writes: Counter,
    /// [`ALERT_STATE_CONFLICTS`].
    pub state_conflicts: Counter,
    /// [`ALERT_SERIES`].
    pub series: Gauge,
}

impl AlertMetrics {
    /// The evaluator's and the observer's handles.
    pub fn new() -> Self {
        Self {
            queue: metrics::gauge!(ALERT_QUEUE),
            updates_dropped: metrics::counter!(ALERT_UPDATES_DROPPED),
            evaluations: metrics::counter!(ALERT_EVALUATIONS),
            state_writes: metrics::counter!(ALERT_STATE_WRITES),
            state_conflicts: metrics::counter!(ALERT_STATE_CONFLICTS),
            series: metrics::gauge!(ALERT_SERIES),
        }
    }
}

impl Default for AlertMetrics {
    fn default() -> Self {
        Self::new()
    }
}
