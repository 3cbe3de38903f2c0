//! `core-aggregator replay --from <t> --to <t> [--tenant <id>]`: rebuilds the windows starting
//! in `[from, to)` from `RTDASH_PARTIALS` and upserts them into QuestDB.
//!
//! Every partition is read with an ordered (ephemeral) consumer from `from - 5 min` (the
//! largest expected skew between an agent's clock and the event times it reports) to
//! `to + correction horizon + allowed lateness` (the last moment a correction of a window in
//! the range can arrive), or to the end of the stream. The messages run through the same
//! [`PartitionState`] as the live path, in the same order, so duplicates are skipped, windows
//! close and late corrections apply as they did live; the windows whose start lies in the
//! range are then written (same revision, `final` flag and late count; a new `updated_at`).
//! Running it twice writes the same rows: it is idempotent. It neither touches the live
//! consumers nor checkpoints, and does not republish late data.
//!
//! Limits: the partials stream's retention (`streams.partials_max_age_secs`) bounds how far
//! back a replay can go; for older ranges use recomputation from the raw-event archive.
//! A window that the live path closed only because its partition went silent is closed here
//! too when the stream ends (the same silence is assumed); a watermark that started earlier
//! than `from - 5 min` in the live run can make the first windows of the range close at a
//! slightly different moment (their counts are the same; only revisions can differ).

use crate::config::Config;
use crate::error::Error;
use crate::sink::questdb::{ensure_table, ConfirmRouter, Ownership, QuestDbWriter, Row, UNFENCED};
use crate::state::{decode_batch, PartitionState, Settings};
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use futures::StreamExt;
use rtdash_shared::names;
use rtdash_shared::time::{format_rfc3339, now_millis, UnixMillis};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    if args.from >= args.to {
        return Err(Error::Usage("--from must be before --to".to_owned()));
    }
    let client = rtdash_runtime::nats::connect(&config.nats, "core-aggregator replay").await?;
    let js = rtdash_runtime::nats::jetstream(client.clone(), &config.nats);
    let partitions = rtdash_runtime::nats::partition_count(&js)
        .await?
        .unwrap_or(config.streams.partitions);
    ensure_table(
        &config,
        Duration::from_millis(config.nats.connect_timeout_ms),
    )
    .await?;
    let writer = QuestDbWriter::spawn(
        &config,
        Arc::new(Ownership::new(partitions)),
        Arc::new(ConfirmRouter::default()),
    )?;
    let rows = writer.sender();
    let stream = js
        .get_stream(names::PARTIALS_STREAM)
        .await
        .map_err(|e| Error::js(format!("stream {}", names::PARTIALS_STREAM), e))?;
    let settings = Settings::from_config(&config);
    let start = args.from - MAX_FUTURE_SKEW_MS;
    let end = args
        .to
        .saturating_add(config.windows.correction_horizon_ms)
        .saturating_add(config.windows.allowed_lateness_ms);
    let start_time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(start) * 1_000_000)
        .map_err(|e| Error::Usage(format!("--from: {e}")))?;
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
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: names::partials_subject(partition),
                deliver_policy: DeliverPolicy::ByStartTime { start_time },
                description: Some("rtdash replay".to_owned()),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::js("replay consumer", e))?;
        let mut pending = consumer.cached_info().num_pending;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| Error::js("replay consumer", e))?;
        let mut read = 0u64;
        let mut reached_end = pending == 0;
        let mut last_progress = Instant::now();
        while pending > 0 {
            let what = format!("replay consumer of partition {partition}");
            let Some(InRange {
                message,
                pending: left,
                stream_seq,
            }) = next_in_range(&mut messages, &shutdown, &what, pending, end).await?
            else {
                break;
            };
            pending = left;
            reached_end = pending == 0;
            read += 1;
            match decode_batch(&message.payload) {
                Ok(batch) => {
                    state.apply_borrowed(batch, stream_seq);
                }
                Err(_) => {
                    summary.undecodable += 1;
                    state.skip(stream_seq);
                }
            }
            if last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                eprint!(
                    "\rreplay: partition {}/{partitions}: {read} messages, {} left",
                    partition + 1,
                    pending
                );
                let _ = std::io::stderr().flush();
            }
        }
        if reached_end {
            // The stream ends here: live, the partition went silent from its last message on.
            if let Some(clock) = state.clock() {
                state.tick((now_millis() - clock).max(0));
            }
        }
        let outputs =
            state.outputs_in_range(args.from, args.to, args.tenant.as_deref(), now_millis());
        let windows = outputs.len() as u64;
        for output in outputs {
            rows.send(Row {
                partition,
                epoch: UNFENCED,
                confirm: false,
                output,
                trace: None,
            })
            .await?;
        }
        summary.messages += read;
        summary.rows += windows;
        eprintln!(
            "\rreplay: partition {}/{partitions}: {read} messages read, {windows} windows in range",
            partition + 1
        );
    }
    drop(rows);
    if !writer.finish(Duration::from_secs(600)).await {
        return Err(Error::QuestDb {
            addr: config.questdb.http.clone(),
            problem: "rows not written within 10 minutes".to_owned(),
        });
    }
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
    let _ = client.flush().await;
    Ok(summary)
}

/// A message of an ordered read over a time range, with what its metadata says.
pub(crate) struct InRange {
    /// The message.
    pub message: async_nats::jetstream::Message,
    /// Messages left in the consumer after it.
    pub pending: u64,
    /// Its stream sequence.
    pub stream_seq: u64,
}

/// The next message of an ordered range read over `messages`; `None` at the first one
/// published after `end`. Fails on `shutdown`, and when nothing arrives for 30 s while
/// `pending` messages are left (`what` names the reader in the error).
pub(crate) async fn next_in_range<S, E>(
    messages: &mut S,
    shutdown: &CancellationToken,
    what: &str,
    pending: u64,
    end: UnixMillis,
) -> Result<Option<InRange>, Error>
where
    S: futures::Stream<Item = Result<async_nats::jetstream::Message, E>> + Unpin,
    E: std::fmt::Display,
{
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return Err(Error::Cancelled),
            next = tokio::time::timeout(Duration::from_secs(30), messages.next()) => next,
        };
        let message = match next {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(err))) => return Err(Error::js(what, err)),
            Ok(None) | Err(_) => {
                return Err(Error::js(
                    what,
                    format!("stalled with {pending} messages pending"),
                ))
            }
        };
        let Ok(info) = message.info() else { continue };
        let published = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
        if published > end {
            return Ok(None);
        }
        let (pending, stream_seq) = (info.pending, info.stream_sequence);
        return Ok(Some(InRange {
            message,
            pending,
            stream_seq,
        }));
    }
}
