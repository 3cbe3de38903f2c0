//! Prometheus metrics of the core aggregator (rendered on `/metrics`). Labels are bounded:
//! `partition` (at most `streams.partitions` values), and for alerts `to` (the 4 alert
//! states) and `outcome` (the 5 delivery outcomes).

use crate::state::Counters;

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
/// Messages or entries that could not be used, sent to the dead-letter stream.
pub const DEAD_LETTERS: &str = "rtdash_core_dead_letters_total";
/// Windows evicted from memory.
pub const WINDOWS_EVICTED: &str = "rtdash_core_windows_evicted_total";
/// Provisional store outputs put off while the QuestDB writer was backlogged.
pub const PROVISIONAL_DEFERRED: &str = "rtdash_core_provisional_deferred_total";
/// Windows in memory, per partition.
pub const WINDOWS_IN_MEMORY: &str = "rtdash_core_windows_in_memory";
/// Messages in the stream not yet processed, per partition.
pub const CONSUMER_LAG: &str = "rtdash_core_consumer_lag_messages";
/// Partition watermark (Unix ms), per partition.
pub const WATERMARK: &str = "rtdash_core_watermark_ms";
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
/// Consumer re-positionings after a delivery gap or a consumer error.
pub const CONSUMER_RESETS: &str = "rtdash_core_consumer_resets_total";

/// Batches whose agent clock or watermark ran ahead of this aggregator's clock and were clamped.
pub const AGENT_CLOCK_AHEAD: &str = "rtdash_core_agent_clock_ahead_total";

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

/// Counts a batch clamped because its agent's clock ran ahead.
pub fn agent_clock_ahead() {
    metrics::counter!(AGENT_CLOCK_AHEAD).increment(1);
}

/// Registers descriptions (shown as `# HELP`).
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
    describe_counter!(DEAD_LETTERS, "Unusable messages or entries sent to the DLQ");
    describe_counter!(WINDOWS_EVICTED, "Windows evicted from memory");
    describe_counter!(
        PROVISIONAL_DEFERRED,
        "Provisional QuestDB rows put off while the writer was backlogged"
    );
    describe_gauge!(WINDOWS_IN_MEMORY, "Windows held in memory");
    describe_gauge!(CONSUMER_LAG, "Messages not yet processed");
    describe_gauge!(WATERMARK, "Partition watermark, Unix milliseconds");
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
    describe_histogram!(CHECKPOINT_SECONDS, Unit::Seconds, "Checkpoint duration");
    describe_histogram!(
        CHECKPOINT_BYTES,
        Unit::Bytes,
        "Bytes written per checkpoint"
    );
    describe_counter!(CHECKPOINT_ERRORS, "Failed checkpoints (retried)");
    describe_gauge!(PARTITIONS_OWNED, "Partitions owned");
    describe_counter!(PARTITIONS_FENCED, "Partitions lost to fencing");
    describe_counter!(CONSUMER_RESETS, "Consumer re-positionings");
    describe_counter!(
        AGENT_CLOCK_AHEAD,
        "Batches whose agent clock ran ahead and was clamped"
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
}

/// Adds the growth of the state machine's counters since `before`.
pub fn record_counters(before: &Counters, after: &Counters) {
    let pairs = [
        (
            PARTIALS_MERGED,
            after.merged_entries - before.merged_entries,
        ),
        (BATCHES_APPLIED, after.batches - before.batches),
        (DUPLICATES_SKIPPED, after.duplicates - before.duplicates),
        (WINDOWS_CLOSED, after.closed - before.closed),
        (CORRECTIONS, after.corrections - before.corrections),
        (LATE_BEYOND_HORIZON, after.late - before.late),
        (DEAD_LETTERS, after.invalid - before.invalid),
        (WINDOWS_EVICTED, after.evicted - before.evicted),
        (
            PROVISIONAL_DEFERRED,
            after.provisional_deferred - before.provisional_deferred,
        ),
    ];
    for (name, delta) in pairs {
        if delta > 0 {
            metrics::counter!(name).increment(delta);
        }
    }
}
