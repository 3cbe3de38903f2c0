//! `core-aggregator recompute --from <t> --to <t> [--tenant <id>] [--metric <name>]
//! [--metrics-file <toml>]`: rebuilds the windows starting in `[from, to)` from the raw-event
//! archive `RTDASH_EVENTS` with the *current* metric definitions, using the same aggregation
//! code as the edge agents ([`rtdash_shared::aggregate::Aggregator`]), and upserts them.
//!
//! - Definitions: the built-in `events` metric, then `--metrics-file` (the edge agents' local
//!   file, if they use one), then every `metric.<tenant|_all>.<name>` key of KV `rtdash_config`
//!   (a key replaces a file definition of the same tenant and name). Invalid values are logged
//!   and skipped, as the agents do.
//! - Archive: NDJSON chunks on `rtdash.events.<tenant>`, read with an ordered consumer from
//!   `from - 5 min` (stream time) to `to + correction horizon + allowed lateness + 5 min` or the
//!   end of the stream. A chunk republished under the same `Nats-Msg-Id` after the stream's
//!   duplicate window is counted once (chunks are deduplicated by message id here).
//! - Every archived event counts, including those the live path routed to `rtdash.late` (that
//!   is what recomputation is for). Rows are written `final`, `revision` 0, `late_count` 0.
//! - Rollup tiers: the tier windows lying wholly in the range are rebuilt from the recomputed
//!   base windows, folded as the partitions fold them ([`fold_windows`]); a tier window only
//!   partly in the range is left as it is.
//! - Idempotent: the same archive and definitions give the same rows.
//!
//! Caveats: the per-window series cap is applied by this one process, so which series fold into
//! the overflow series can differ from the edge agents' choices when a window hits the cap;
//! windows still inside the live aggregator's correction horizon may be rewritten by it
//! afterwards (recompute ranges older than the horizon).

use super::{check_range, Connection, Progress, RangeReader, RowWriter};
use crate::config::Config;
use crate::error::{BoxError, Error};
use crate::state::tiers::fold_windows;
use crate::state::{TierSet, WindowId, WindowKey, WindowOutput};
use futures::StreamExt;
use rtdash_shared::aggregate::Aggregator;
use rtdash_shared::archive;
use rtdash_shared::event::{parse_event, EventLimits};
use rtdash_shared::metric::{MetricDefinition, MetricFile, MetricSet};
use rtdash_shared::names;
use rtdash_shared::sketch::Sketch;
use rtdash_shared::time::{format_rfc3339, now_millis, UnixMillis};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Key prefix of metric definitions in the config bucket.
const METRIC_KEY_PREFIX: &str = "metric.";
/// How far before `from` archived events of the range may have been stored.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;
/// Events folded between two drains of the aggregator (bounds its memory).
const DRAIN_EVERY: usize = 100_000;

/// What to recompute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecomputeArgs {
    /// First window start included.
    pub from: UnixMillis,
    /// Windows starting at or after this are excluded.
    pub to: UnixMillis,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this metric.
    pub metric: Option<String>,
    /// Definitions file the edge agents also load.
    pub metrics_file: Option<PathBuf>,
}

/// What a recomputation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecomputeSummary {
    /// Archive chunks read (duplicates included).
    pub chunks: u64,
    /// Chunks skipped as duplicates.
    pub duplicate_chunks: u64,
    /// Chunks skipped because they could not be decompressed (each logged with its problem).
    pub undecodable_chunks: u64,
    /// Events folded in.
    pub events: u64,
    /// Archived lines that are not valid events (skipped).
    pub invalid: u64,
    /// Rows written.
    pub rows: u64,
}

/// The metric definitions in force: built-in, file, then the config bucket.
pub async fn load_definitions(
    js: &async_nats::jetstream::Context,
    file: Option<&PathBuf>,
) -> Result<Vec<MetricDefinition>, Error> {
    let mut defs: BTreeMap<(Option<String>, String), MetricDefinition> = BTreeMap::new();
    if let Some(path) = file {
        let invalid = |source: BoxError| Error::Invalid {
            what: format!("metrics file {}", path.display()),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(Box::new(e)))?;
        let parsed = MetricFile::from_toml(&text).map_err(|e| invalid(Box::new(e)))?;
        for def in parsed.metric {
            defs.insert((def.tenant_id.clone(), def.name.clone()), def);
        }
    }
    let kv = js
        .get_key_value(names::CONFIG_BUCKET)
        .await
        .map_err(|e| Error::js(format!("bucket {}", names::CONFIG_BUCKET), e))?;
    let mut keys = kv
        .keys()
        .await
        .map_err(|e| Error::js(format!("bucket {}", names::CONFIG_BUCKET), e))?;
    let mut metric_keys = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| Error::js(format!("bucket {}", names::CONFIG_BUCKET), e))?;
        if key.starts_with(METRIC_KEY_PREFIX) {
            metric_keys.push(key);
        }
    }
    for key in metric_keys {
        let Ok(Some(value)) = kv.get(key.as_str()).await else {
            continue;
        };
        match MetricDefinition::from_json(&value) {
            Ok(def) if names::metric_config_key(def.tenant_id.as_deref(), &def.name) == key => {
                defs.insert((def.tenant_id.clone(), def.name.clone()), def);
            }
            Ok(_) => tracing::warn!(%key, "metric definition disagrees with its key; skipped"),
            Err(err) => tracing::warn!(%key, %err, "invalid metric definition; skipped"),
        }
    }
    let mut all = vec![MetricDefinition::builtin_events()];
    all.extend(defs.into_values());
    Ok(all)
}

/// Which archived events [`fold_archive`] folds, and into which windows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Selection<'a> {
    /// First window start included.
    pub from: UnixMillis,
    /// Windows starting at or after this are excluded.
    pub to: UnixMillis,
    /// Only this tenant.
    pub tenant: Option<&'a str>,
    /// Only this metric.
    pub metric: Option<&'a str>,
}

/// Reads the archive from `from - 5 min` to `to + horizon + lateness + 5 min` (stream time)
/// and folds the windows of `selection` with `defs`; counts go to `summary`, and `progress`
/// is called after every chunk with the summary and the chunks left.
pub(crate) async fn fold_archive(
    config: &Config,
    js: &async_nats::jetstream::Context,
    defs: &[MetricDefinition],
    selection: Selection<'_>,
    shutdown: &CancellationToken,
    summary: &mut RecomputeSummary,
    progress: &mut (dyn FnMut(&RecomputeSummary, u64) + Send),
) -> Result<HashMap<WindowKey, Sketch>, Error> {
    let Selection {
        from,
        to,
        tenant,
        metric,
    } = selection;
    let max_window = defs
        .iter()
        .map(MetricDefinition::window_ms)
        .max()
        .unwrap_or(60_000);
    let mut aggregator = Aggregator::new(Arc::new(MetricSet::new(defs.to_vec())));
    let stream = js.get_stream(names::EVENTS_STREAM).await.map_err(|e| {
        Error::js(
            format!("stream {} (the raw-event archive)", names::EVENTS_STREAM),
            e,
        )
    })?;
    let start = from - MAX_SKEW_MS;
    let end = to
        .saturating_add(config.windows.correction_horizon_ms)
        .saturating_add(config.windows.allowed_lateness_ms)
        .saturating_add(MAX_SKEW_MS);
    let subject = match tenant {
        Some(tenant) => names::events_subject(tenant),
        None => format!("{}.*", names::EVENTS_PREFIX),
    };
    tracing::info!(
        %subject,
        from = %format_rfc3339(from),
        to = %format_rfc3339(to),
        stored_from = %format_rfc3339(start),
        stored_to = %format_rfc3339(end),
        definitions = defs.len(),
        "reading the raw-event archive"
    );
    let mut reader = RangeReader::open(
        &stream,
        subject,
        (start, end),
        "recompute",
        "recompute consumer".to_owned(),
    )
    .await?;
    let limits = EventLimits {
        // Archived events are as old as they are; their age was checked at ingest.
        max_age_ms: i64::MAX / 4,
        max_future_skew_ms: i64::MAX / 4,
        ..EventLimits::default()
    };
    let mut windows: HashMap<WindowKey, Sketch> = HashMap::new();
    let mut seen_chunks: HashSet<String> = HashSet::new();
    let mut since_drain = 0usize;
    let fold = |windows: &mut HashMap<WindowKey, Sketch>, aggregator: &mut Aggregator| {
        for entry in aggregator.drain() {
            if entry.window_start < from || entry.window_start >= to {
                continue;
            }
            if metric.is_some_and(|m| *m != entry.series.metric) {
                continue;
            }
            let key = WindowKey {
                series: entry.series,
                start: entry.window_start,
                size_ms: entry.window_ms,
            };
            windows
                .entry(key)
                .or_insert_with(|| Sketch::new(entry.sketch.spec()))
                .merge(&entry.sketch);
        }
    };
    while let Some(next) = reader.next(shutdown).await? {
        let message = next.message;
        summary.chunks += 1;
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned());
        if let Some(id) = id {
            if !seen_chunks.insert(id) {
                summary.duplicate_chunks += 1;
                continue;
            }
        }
        let now = now_millis();
        // Plain NDJSON or one zstd frame (`archive.compression` of the agents).
        let payload = match archive::decode_chunk(&message.payload, archive::MAX_DECODED_BYTES) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::warn!(%err, "archive chunk skipped: cannot decode it");
                summary.undecodable_chunks += 1;
                continue;
            }
        };
        for line in payload.split(|b| *b == b'\n') {
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            match parse_event(line, &limits, now) {
                Ok(event) => {
                    if tenant.is_some_and(|t| *t != *event.tenant_id) {
                        continue;
                    }
                    if event.occurred_at < from
                        || event.occurred_at >= to.saturating_add(max_window)
                    {
                        continue;
                    }
                    aggregator.add(&event);
                    summary.events += 1;
                    since_drain += 1;
                }
                Err(_) => summary.invalid += 1,
            }
        }
        if since_drain >= DRAIN_EVERY {
            fold(&mut windows, &mut aggregator);
            since_drain = 0;
        }
        progress(summary, reader.pending());
    }
    fold(&mut windows, &mut aggregator);
    Ok(windows)
}

/// The row of a rebuilt window: `final`, late count 0, `revision` as given.
pub(crate) fn rebuilt_output(
    config: &Config,
    key: WindowKey,
    tier: Option<u8>,
    sketch: &Sketch,
    revision: u32,
    now: UnixMillis,
) -> WindowOutput {
    WindowOutput {
        id: WindowId { slot: 0, uid: 0 },
        version: 1,
        key: Arc::new(key),
        stats: sketch.stats(),
        revision,
        is_final: true,
        late_count: 0,
        updated_at: now,
        state: config.writer.write_state.then(|| sketch.to_state()),
        live_state: false,
        tier,
        store: true,
        live: false,
    }
}

/// Runs a recomputation; progress goes to stderr.
pub async fn recompute(
    config: Config,
    args: RecomputeArgs,
    shutdown: CancellationToken,
) -> Result<RecomputeSummary, Error> {
    check_range(args.from, args.to)?;
    let nats = Connection::open(&config, "recompute").await?;
    let defs = load_definitions(&nats.js, args.metrics_file.as_ref()).await?;
    if let Some(metric) = &args.metric {
        if !defs.iter().any(|d| &d.name == metric) {
            return Err(Error::Usage(format!("no metric definition named {metric}")));
        }
    }
    let writer = RowWriter::start(&config, config.streams.partitions).await?;
    eprintln!(
        "recompute: windows from {} to {}{}{}, {} metric definitions",
        format_rfc3339(args.from),
        format_rfc3339(args.to),
        args.tenant
            .as_deref()
            .map(|t| format!(" of tenant {t}"))
            .unwrap_or_default(),
        args.metric
            .as_deref()
            .map(|m| format!(", metric {m}"))
            .unwrap_or_default(),
        defs.len(),
    );
    let mut summary = RecomputeSummary::default();
    let started = Instant::now();
    let mut progress = Progress::new();
    let windows = fold_archive(
        &config,
        &nats.js,
        &defs,
        Selection {
            from: args.from,
            to: args.to,
            tenant: args.tenant.as_deref(),
            metric: args.metric.as_deref(),
        },
        &shutdown,
        &mut summary,
        &mut |summary, pending| {
            progress.tick(|| {
                format!(
                    "recompute: {} chunks, {} events, {pending} chunks left",
                    summary.chunks, summary.events,
                )
            });
        },
    )
    .await?;
    let now = now_millis();
    let tiers = fold_windows(
        &windows,
        TierSet::from_config(&config.rollups),
        config.rollups.max_tier_series,
        config.streams.partitions,
        (args.from, args.to),
    );
    let base = windows.into_iter().map(|(key, sketch)| (key, None, sketch));
    let tiers = tiers
        .into_iter()
        .map(|(key, tier, sketch)| (key, Some(tier), sketch));
    for (key, tier, sketch) in base.chain(tiers) {
        let output = rebuilt_output(&config, key, tier, &sketch, 0, now);
        let partition = output.key.series.partition(config.streams.partitions);
        writer.write(partition, output).await?;
        summary.rows += 1;
    }
    writer.finish().await?;
    eprintln!(
        "\rrecompute: done in {:.1} s: {} chunks ({} duplicates, {} undecodable skipped), {} events, {} invalid lines, {} rows written",
        started.elapsed().as_secs_f64(),
        summary.chunks,
        summary.duplicate_chunks,
        summary.undecodable_chunks,
        summary.events,
        summary.invalid,
        summary.rows
    );
    nats.close().await;
    Ok(summary)
}
