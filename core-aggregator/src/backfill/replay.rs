//! `core-aggregator replay --from <t> --to <t> [--tenant <id>]`: rebuilds the windows starting
//! in `[from, to)` from `RTDASH_PARTIALS` and upserts them into QuestDB.
//!
//! Every partition is read with an ordered (ephemeral) consumer from `from - 5 min` (the
//! largest expected skew between an agent's clock and the event times it reports) to
//! `to + correction horizon + allowed lateness` (the last moment a correction of a window in
//! the range can arrive), or to the end of the stream. The messages run through the same
//! [`PartitionState`] as the live path, in the same order, so duplicates are skipped, windows
//! close and late corrections apply as they did live; the windows whose start lies in the
//! range are then written (same revision, `final` flag and late count; a new `updated_at`),
//! and so are the rollup tier windows lying wholly in the range (an hour when the range
//! covers it; a tier window only partly in the range is left as it is, since rebuilding it
//! from part of its base windows would lose the rest).
//! Running it twice writes the same rows: it is idempotent. It neither touches the live
//! consumers nor checkpoints, and does not republish late data.
//!
//! Limits: the partials stream's retention (`streams.partials_max_age_secs`) bounds how far
//! back a replay can go; for older ranges use recomputation from the raw-event archive.
//! A window that the live path closed only because its partition went silent is closed here
//! too when the stream ends (the same silence is assumed); a watermark that started earlier
//! than `from - 5 min` in the live run can make the first windows of the range close at a
//! slightly different moment (their counts are the same; only revisions can differ).

use super::{check_range, Connection, Progress, RangeReader, RowWriter};
use crate::config::Config;
use crate::error::Error;
use crate::state::{decode_batch, PartitionState, Settings};
use rtdash_shared::names;
use rtdash_shared::time::{format_rfc3339, now_millis, UnixMillis};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// How far before `from` partials for windows in the range may have been stored.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

/// What to replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayArgs {
    /// First window start included.
    pub from: UnixMillis,
    /// Windows starting at or after this are excluded.
    pub to: UnixMillis,
    /// Only this tenant's windows.
    pub tenant: Option<String>,
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Messages read.
    pub messages: u64,
    /// Rows written.
    pub rows: u64,
    /// Messages that could not be decoded (skipped).
    pub undecodable: u64,
}

/// Runs a replay; progress goes to stderr.
pub async fn replay(
    config: Config,
    args: ReplayArgs,
    shutdown: CancellationToken,
) -> Result<ReplaySummary, Error> {
    check_range(args.from, args.to)?;
    let nats = Connection::open(&config, "replay").await?;
    let partitions = rtdash_runtime::nats::partition_count(&nats.js)
        .await?
        .unwrap_or(config.streams.partitions);
    let writer = RowWriter::start(&config, partitions).await?;
    let stream = nats
        .js
        .get_stream(names::PARTIALS_STREAM)
        .await
        .map_err(|e| Error::js(format!("stream {}", names::PARTIALS_STREAM), e))?;
    let settings = Settings::from_config(&config);
    let start = args.from - MAX_FUTURE_SKEW_MS;
    let end = args
        .to
        .saturating_add(config.windows.correction_horizon_ms)
        .saturating_add(config.windows.allowed_lateness_ms);
    eprintln!(
        "replay: windows from {} to {}{}, reading partials stored {} .. {}",
        format_rfc3339(args.from),
        format_rfc3339(args.to),
        args.tenant
            .as_deref()
            .map(|t| format!(" of tenant {t}"))
            .unwrap_or_default(),
        format_rfc3339(start),
        format_rfc3339(end)
    );
    let mut summary = ReplaySummary::default();
    let started = Instant::now();
    for partition in 0..partitions {
        let mut state = PartitionState::new(partition, settings);
        let mut reader = RangeReader::open(
            &stream,
            names::partials_subject(partition),
            (start, end),
            "replay",
            format!("replay consumer of partition {partition}"),
        )
        .await?;
        let mut read = 0u64;
        let mut progress = Progress::new();
        while let Some(next) = reader.next(&shutdown).await? {
            read += 1;
            match decode_batch(&next.message.payload) {
                Ok(batch) => {
                    state.apply_borrowed(batch, next.stream_seq);
                }
                Err(_) => {
                    summary.undecodable += 1;
                    state.skip(next.stream_seq);
                }
            }
            progress.tick(|| {
                format!(
                    "replay: partition {}/{partitions}: {read} messages, {} left",
                    partition + 1,
                    reader.pending()
                )
            });
        }
        if reader.reached_end() {
            // The stream ends here: live, the partition went silent from its last message on.
            if let Some(clock) = state.clock() {
                state.tick((now_millis() - clock).max(0));
            }
        }
        state.link_open_windows();
        let now = now_millis();
        let mut outputs = state.outputs_in_range(args.from, args.to, args.tenant.as_deref(), now);
        outputs.extend(state.tier_outputs_in_range(
            args.from,
            args.to,
            args.tenant.as_deref(),
            now,
        ));
        let windows = outputs.len() as u64;
        for output in outputs {
            writer.write(partition, output).await?;
        }
        summary.messages += read;
        summary.rows += windows;
        eprintln!(
            "\rreplay: partition {}/{partitions}: {read} messages read, {windows} windows in range",
            partition + 1
        );
    }
    writer.finish().await?;
    eprintln!(
        "replay: done in {:.1} s: {} messages, {} rows written{}",
        started.elapsed().as_secs_f64(),
        summary.messages,
        summary.rows,
        if summary.undecodable > 0 {
            format!(", {} undecodable messages skipped", summary.undecodable)
        } else {
            String::new()
        }
    );
    nats.close().await;
    Ok(summary)
}
