//! `GET /v1/data-quality`: is a tenant's data arriving, what was rejected and why, what
//! arrived late, per `source` and `event_type` over a range.
//!
//! - Accepted events: the built-in `events` metric (its full dimension set), from QuestDB.
//! - Rejections per reason and late events: the built-in `pipeline_quality` metric the edge
//!   agents compute (outcome = reason code, or `late`), from QuestDB.
//! - Samples of rejected items: the newest [`MAX_SAMPLES`] per source, event type and reason
//!   among the newest [`DLQ_LIMITS`] dead letters of the tenant's subject `rtdash.dlq.<tenant>`
//!   in the range, each raw item cut to [`MAX_SAMPLE_RAW_BYTES`].
//! - Events beyond the correction horizon: the `events` entries of the late records on
//!   `rtdash.late.<tenant>` in the range (bounded by [`LATE_LIMITS`]).
//!
//! Every read is bounded (series, messages, bytes, time) and only the caller's tenant's
//! windows and subjects are read; answers say when a bound cut what they show.

use super::metrics::parse_time;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::query::pool::SeriesTotal;
use crate::query::SeriesScope;
use crate::side_stream::{self, RangeRead, ReadLimits};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use rtdash_runtime::error_chain::ErrorChain;
use rtdash_shared::auth::Role;
use rtdash_shared::messages::{DeadLetter, LateRecord};
use rtdash_shared::metric::{
    BUILTIN_EVENTS_METRIC, PIPELINE_LATE_AFTER_MS, PIPELINE_QUALITY_LATE, PIPELINE_QUALITY_METRIC,
};
use rtdash_shared::names::{self, UNKNOWN_TENANT};
use rtdash_shared::time::{format_rfc3339, now_millis, UnixMillis};
use rtdash_shared::wire;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};

/// Longest range answered (the base table's default retention).
pub const MAX_RANGE_MS: i64 = 7 * 86_400_000;
/// Default range: the last hour.
const DEFAULT_RANGE_MS: i64 = 3_600_000;
/// Most series read per metric.
pub const MAX_SERIES: usize = 10_000;
/// Most samples per source, event type and reason.
pub const MAX_SAMPLES: usize = 5;
/// Most bytes of a sample's raw item.
pub const MAX_SAMPLE_RAW_BYTES: usize = 4 * 1024;
/// Bounds of the dead-letter read.
pub const DLQ_LIMITS: ReadLimits = ReadLimits {
    max_messages: 1_000,
    max_bytes: 8 * 1024 * 1024,
    timeout: Duration::from_secs(3),
};
/// Bounds of the late-record read.
pub const LATE_LIMITS: ReadLimits = ReadLimits {
    max_messages: 10_000,
    max_bytes: 32 * 1024 * 1024,
    timeout: Duration::from_secs(3),
};

/// Parameters of the data-quality query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QualityQuery {
    /// Tenant: the key's own when absent (a different one is `403`); the operator must name
    /// it.
    pub tenant_id: Option<String>,
    /// RFC 3339, inclusive (default: `to` - 1 h).
    pub from: Option<String>,
    /// RFC 3339, exclusive (default: now). At most 7 days after `from`.
    pub to: Option<String>,
}

/// A tenant's data quality over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataQuality {
    /// Tenant.
    pub tenant_id: String,
    /// Start of the range (RFC 3339).
    pub from: String,
    /// End of the range (RFC 3339, exclusive).
    pub to: String,
    /// An event is late when it arrived more than this after its `occurred_at`.
    pub late_after_ms: i64,
    /// Per source and event type, by source then event type.
    pub rows: Vec<QualityRow>,
    /// Dead letters read for the samples.
    pub samples_scanned: usize,
    /// Whether the samples come from every dead letter of the range (else from the newest
    /// ones only).
    pub samples_complete: bool,
    /// Whether `beyond_horizon` counts every late record of the range (else the newest ones
    /// only: at least this many).
    pub beyond_horizon_complete: bool,
    /// Whether a metric had more series than were read (some rows are missing).
    pub truncated: bool,
}

/// One source and event type.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct QualityRow {
    /// Source (`_unknown` for rejected items that named none).
    pub source: String,
    /// Event type (`_unknown` for rejected items that named none).
    pub event_type: String,
    /// Accepted events.
    pub accepted: u64,
    /// Rejected items (the sum of `rejections`' counts).
    pub rejected: u64,
    /// Accepted events that arrived more than `late_after_ms` after their `occurred_at`.
    pub late: u64,
    /// Events that reached the aggregators after their window's correction horizon (kept on
    /// the late stream, not in the windows).
    pub beyond_horizon: u64,
    /// Per reason, by reason.
    pub rejections: Vec<RejectionReason>,
}

/// Rejections of one reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionReason {
    /// Reason code (`missing_field`, `invalid_timestamp`...).
    pub reason: String,
    /// Rejected items counted by the edge agents.
    pub count: u64,
    /// The newest rejected items of this reason, newest first (at most 5).
    pub samples: Vec<RejectSample>,
}

/// A rejected item as it was received.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectSample {
    /// The raw item as text (lossy when it was not UTF-8), cut to 4 KiB.
    pub raw: String,
    /// Whether `raw` was cut (by the agent or here).
    pub truncated: bool,
    /// Reason code.
    pub reason: String,
    /// What was wrong, naming the field.
    pub detail: String,
    /// When it was received (RFC 3339).
    pub received_at: String,
    /// Which component rejected it.
    pub rejected_by: String,
}

/// Accepted, rejected and late events per source and event type, with samples of the
/// rejected items.
#[utoipa::path(get, path = "/v1/data-quality", operation_id = "get_data_quality",
    tag = "metrics", params(QualityQuery),
    responses((status = 200, body = DataQuality), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    super::ApiQuery(params): super::ApiQuery<QualityQuery>,
) -> Result<Json<DataQuality>, ApiError> {
    let tenant = caller.tenant(params.tenant_id.as_deref(), Role::Viewer)?;
    let to = parse_time("to", params.to.as_deref())?.unwrap_or_else(now_millis);
    let from = parse_time("from", params.from.as_deref())?.unwrap_or(to - DEFAULT_RANGE_MS);
    if from >= to {
        return Err(ApiError::bad_request("`from` must be before `to`"));
    }
    if to - from > MAX_RANGE_MS {
        return Err(ApiError::bad_request(
            "the range is longer than 7 days; narrow `from` and `to`",
        ));
    }
    let span = tracing::debug_span!("data_quality", tenant = %tenant, from, to);
    read(&state, &tenant, from, to)
        .instrument(span)
        .await
        .map(Json)
}

type RowKey = (String, String);

async fn read(
    state: &AppState,
    tenant: &str,
    from: UnixMillis,
    to: UnixMillis,
) -> Result<DataQuality, ApiError> {
    let dlq_subject = names::dlq_subject(tenant);
    let late_subject = names::late_subject(tenant);
    let accepted_scope = SeriesScope {
        tenant,
        metric: BUILTIN_EVENTS_METRIC,
        dim_set: "event_type,source",
        from,
        to,
    };
    let quality_scope = SeriesScope {
        metric: PIPELINE_QUALITY_METRIC,
        dim_set: "event_type,outcome,source",
        ..accepted_scope
    };
    let (accepted, quality, dead, late) = tokio::join!(
        state.db.series_totals(&accepted_scope, MAX_SERIES + 1),
        state.db.series_totals(&quality_scope, MAX_SERIES + 1),
        side_stream::newest_in_range(
            &state.js,
            names::DLQ_STREAM,
            &dlq_subject,
            from,
            to,
            DLQ_LIMITS
        ),
        side_stream::newest_in_range(
            &state.js,
            names::LATE_STREAM,
            &late_subject,
            from,
            to,
            LATE_LIMITS
        ),
    );
    let stream_error = |err: side_stream::SideStreamError| {
        tracing::warn!(error = %ErrorChain(&err), "data quality: side stream");
        ApiError::unavailable("the dead-letter or late stream is unavailable; retry shortly")
    };
    let (accepted, quality) = (accepted?, quality?);
    let (dead, late) = (dead.map_err(stream_error)?, late.map_err(stream_error)?);
    let truncated = accepted.len() > MAX_SERIES || quality.len() > MAX_SERIES;

    let mut rows: BTreeMap<RowKey, QualityRow> = BTreeMap::new();
    let mut reasons: BTreeMap<(RowKey, String), RejectionReason> = BTreeMap::new();
    for total in accepted.iter().take(MAX_SERIES) {
        if let Some([event_type, source]) = dims(total, ["event_type", "source"]) {
            row(&mut rows, source, event_type).accepted += count(total);
        }
    }
    for total in quality.iter().take(MAX_SERIES) {
        let Some([event_type, outcome, source]) = dims(total, ["event_type", "outcome", "source"])
        else {
            continue;
        };
        let n = count(total);
        let row = row(&mut rows, source.clone(), event_type.clone());
        if outcome == PIPELINE_QUALITY_LATE {
            row.late += n;
        } else {
            row.rejected += n;
            reason(&mut reasons, (source, event_type), outcome).count += n;
        }
    }
    let samples_scanned = dead.messages.len();
    for (key, reason_code, sample) in samples(&dead) {
        row(&mut rows, key.0.clone(), key.1.clone());
        let entry = reason(&mut reasons, key, reason_code);
        if entry.samples.len() < MAX_SAMPLES {
            entry.samples.push(sample);
        }
    }
    for (key, n) in beyond_horizon(&late) {
        row(&mut rows, key.0, key.1).beyond_horizon += n;
    }
    for ((key, _), reason) in reasons {
        if let Some(row) = rows.get_mut(&key) {
            row.rejections.push(reason);
        }
    }
    Ok(DataQuality {
        tenant_id: tenant.to_owned(),
        from: format_rfc3339(from),
        to: format_rfc3339(to),
        late_after_ms: PIPELINE_LATE_AFTER_MS,
        rows: rows.into_values().collect(),
        samples_scanned,
        samples_complete: dead.complete,
        beyond_horizon_complete: late.complete,
        truncated,
    })
}

fn row(
    rows: &mut BTreeMap<RowKey, QualityRow>,
    source: String,
    event_type: String,
) -> &mut QualityRow {
    rows.entry((source.clone(), event_type.clone()))
        .or_insert_with(|| QualityRow {
            source,
            event_type,
            ..QualityRow::default()
        })
}

fn reason(
    reasons: &mut BTreeMap<(RowKey, String), RejectionReason>,
    key: RowKey,
    code: String,
) -> &mut RejectionReason {
    reasons
        .entry((key, code.clone()))
        .or_insert_with(|| RejectionReason {
            reason: code,
            count: 0,
            samples: Vec::new(),
        })
}

fn count(total: &SeriesTotal) -> u64 {
    u64::try_from(total.count).unwrap_or(0)
}

/// The values of `names` (in that order) in a series' dimensions, when it has exactly them.
fn dims<const N: usize>(total: &SeriesTotal, names: [&str; N]) -> Option<[String; N]> {
    let parsed: BTreeMap<String, Option<String>> = serde_json::from_str(&total.series).ok()?;
    if parsed.len() != N {
        return None;
    }
    let mut values = names.map(|_| String::new());
    for (slot, name) in values.iter_mut().zip(names) {
        *slot = parsed.get(name)?.clone()?;
    }
    Some(values)
}

/// The dead letters as samples, newest first, with their row and reason.
fn samples(read: &RangeRead) -> impl Iterator<Item = (RowKey, String, RejectSample)> + '_ {
    read.messages.iter().rev().filter_map(|(_, payload)| {
        let letter: DeadLetter = match wire::decode(payload) {
            Ok(letter) => letter,
            Err(err) => {
                tracing::debug!(%err, "data quality: undecodable dead letter skipped");
                return None;
            }
        };
        let unknown = || UNKNOWN_TENANT.to_owned();
        let key = (
            letter.source.unwrap_or_else(unknown),
            letter.event_type.unwrap_or_else(unknown),
        );
        let (raw, cut) = cut_to(letter.raw, MAX_SAMPLE_RAW_BYTES);
        let sample = RejectSample {
            raw,
            truncated: letter.truncated || cut,
            reason: letter.code.clone(),
            detail: letter.message,
            received_at: format_rfc3339(letter.received_at),
            rejected_by: letter.rejected_by,
        };
        Some((key, letter.code, sample))
    })
}

/// `text` cut to at most `max` bytes at a character boundary, and whether it was cut.
fn cut_to(mut text: String, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

/// Events of the `events` metric's late records, per source and event type.
fn beyond_horizon(read: &RangeRead) -> BTreeMap<RowKey, u64> {
    let mut counts = BTreeMap::new();
    for (_, payload) in &read.messages {
        let record: LateRecord = match wire::decode(payload) {
            Ok(record) => record,
            Err(err) => {
                tracing::debug!(%err, "data quality: undecodable late record skipped");
                continue;
            }
        };
        let series = &record.entry.series;
        if series.metric != BUILTIN_EVENTS_METRIC {
            continue;
        }
        let value = |name: &str| {
            series
                .dims
                .iter()
                .find(|(dim, _)| dim == name)
                .and_then(|(_, value)| value.clone())
        };
        if let (Some(source), Some(event_type)) = (value("source"), value("event_type")) {
            *counts.entry((source, event_type)).or_default() += record.entry.sketch.count();
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_a_character_boundary() {
        assert_eq!(cut_to("abc".to_owned(), 3), ("abc".to_owned(), false));
        assert_eq!(cut_to("abcd".to_owned(), 3), ("abc".to_owned(), true));
        // "é" is two bytes: a cut inside it keeps the character out.
        assert_eq!(cut_to("aé".to_owned(), 2), ("a".to_owned(), true));
    }

    #[test]
    fn reads_the_named_dimensions_only_of_series_that_have_exactly_them() {
        let total = |series: &str| SeriesTotal {
            series: series.to_owned(),
            count: 1,
            sum: 0.0,
        };
        assert_eq!(
            dims(
                &total(r#"{"event_type":"e","source":"s"}"#),
                ["event_type", "source"]
            ),
            Some(["e".to_owned(), "s".to_owned()])
        );
        assert_eq!(
            dims(&total(r#"{"event_type":"e"}"#), ["event_type", "source"]),
            None
        );
        assert_eq!(
            dims(
                &total(r#"{"event_type":null,"source":"s"}"#),
                ["event_type", "source"]
            ),
            None
        );
    }
}
