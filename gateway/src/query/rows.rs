//! The rows a plan reads over a range, assembled from the [`RowCache`] where windows can no
//! longer change and from QuestDB for the rest: chunks of [`CHUNK_WINDOWS`] stored windows
//! that end before the immutable point are served from the cache (missing ones are read
//! in one statement per consecutive run and cached), the recent tail is read every time.

use super::cache::{Chunk, ChunkKey, RowCache, CHUNK_WINDOWS};
use super::derive::WindowRow;
use super::plan::QueryPlan;
use super::pool::QuestDb;
use super::QueryError;
use rtdash_shared::time::UnixMillis;
use std::sync::Arc;

/// Rows of one plan over `[from, to)`: some cached chunks (which may reach outside the
/// range) and the freshly read rest.
#[derive(Debug, Default)]
pub struct RowSet {
    parts: Vec<Arc<Chunk>>,
    from: UnixMillis,
    to: UnixMillis,
}

impl RowSet {
    /// A row set of `rows` read for `[from, to)`.
    pub fn from_rows(rows: Vec<WindowRow>, from: UnixMillis, to: UnixMillis) -> Self {
        Self {
            parts: vec![Arc::new(Chunk::new(rows))],
            from,
            to,
        }
    }

    /// The rows whose window starts in the range.
    pub fn iter(&self) -> impl Iterator<Item = &WindowRow> + '_ {
        let (from, to) = (self.from, self.to);
        self.parts
            .iter()
            .flat_map(|part| part.rows.iter())
            .filter(move |row| row.window_start >= from && row.window_start < to)
    }

    /// Range start.
    pub fn from(&self) -> UnixMillis {
        self.from
    }
}

/// Until when windows can no longer change: their end plus the aggregators' correction
/// horizon has passed every partition's closed point (`closed_through` of the status
/// reports); without reports, the horizon plus five minutes before `now`.
pub fn immutable_before(
    now: UnixMillis,
    closed_through: Option<UnixMillis>,
    horizon_ms: i64,
) -> UnixMillis {
    match closed_through {
        Some(closed) => closed.min(now) - horizon_ms,
        None => now - horizon_ms - 5 * 60_000,
    }
}

impl QuestDb {
    /// The rows `plan` reads in `[from, to)` (aligned to its served windows by the caller),
    /// cached where their windows end before `immutable_before`.
    pub async fn rows(
        &self,
        plan: &QueryPlan,
        from: UnixMillis,
        to: UnixMillis,
        immutable_before: UnixMillis,
    ) -> Result<RowSet, QueryError> {
        let table = self.table_of(plan);
        let with_state = plan.needs_state();
        let chunk_ms = plan.source_window_ms * CHUNK_WINDOWS;
        let first = from.div_euclid(chunk_ms) * chunk_ms;
        // Chunks wholly before the immutable point.
        let cached_end = (immutable_before.div_euclid(chunk_ms) * chunk_ms).min(
            // No chunk beyond the range.
            to.div_euclid(chunk_ms) * chunk_ms + if to % chunk_ms == 0 { 0 } else { chunk_ms },
        );
        let key = |start: i64| ChunkKey {
            table: table.clone(),
            tenant: plan.tenant.clone(),
            metric: plan.metric.clone(),
            dim_set: plan.dim_set.clone(),
            selector: match &plan.exact_series {
                Some(series) => format!("={series}"),
                None => format!(
                    "~{}",
                    serde_json::to_string(&plan.filter).unwrap_or_default()
                ),
            },
            with_state,
            start,
            len_ms: chunk_ms,
        };
        let mut parts = Vec::new();
        let mut missing: Vec<i64> = Vec::new();
        let mut start = first;
        while start < cached_end {
            match self.cache().get(&key(start)) {
                Some(chunk) => parts.push(chunk),
                None => missing.push(start),
            }
            start += chunk_ms;
        }
        // One statement per run of consecutive missing chunks.
        let mut index = 0;
        while index < missing.len() {
            let run_start = missing[index];
            let mut run_end = run_start + chunk_ms;
            index += 1;
            while index < missing.len() && missing[index] == run_end {
                run_end += chunk_ms;
                index += 1;
            }
            let rows = self
                .fetch_from(&table, plan, run_start, run_end, with_state)
                .await?;
            for (start, chunk) in split(rows, run_start, run_end, chunk_ms) {
                let chunk = Arc::new(chunk);
                if chunk.rows.iter().all(|row| row.is_final) {
                    self.cache().insert(key(start), chunk.clone());
                }
                parts.push(chunk);
            }
        }
        let tail_from = from.max(cached_end.max(first));
        if tail_from < to {
            let rows = self
                .fetch_from(&table, plan, tail_from, to, with_state)
                .await?;
            parts.push(Arc::new(Chunk::new(rows)));
        }
        Ok(RowSet { parts, from, to })
    }

    /// The row cache.
    pub fn row_cache(&self) -> &RowCache {
        self.cache()
    }
}

/// Splits rows read for `[from, to)` into the chunks of `chunk_ms` there (empty ones too).
fn split(rows: Vec<WindowRow>, from: i64, to: i64, chunk_ms: i64) -> Vec<(i64, Chunk)> {
    let mut chunks: Vec<(i64, Vec<WindowRow>)> = Vec::new();
    let mut start = from;
    while start < to {
        chunks.push((start, Vec::new()));
        start += chunk_ms;
    }
    for row in rows {
        let index = ((row.window_start - from).div_euclid(chunk_ms)) as usize;
        if let Some((_, list)) = chunks.get_mut(index) {
            list.push(row);
        }
    }
    chunks
        .into_iter()
        .map(|(start, rows)| (start, Chunk::new(rows)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_point() {
        assert_eq!(immutable_before(1_000_000, Some(900_000), 600_000), 300_000);
        assert_eq!(
            immutable_before(1_000_000, Some(2_000_000), 600_000),
            400_000,
            "never past now"
        );
        assert_eq!(immutable_before(1_000_000, None, 600_000), 100_000);
    }

    #[test]
    fn rows_split_into_their_chunks() {
        let row = |start: i64| {
            let update = crate::fixtures::update(start, &[], 1, start);
            WindowRow::from_update(&update)
        };
        let chunks = split(vec![row(0), row(120_000), row(60_000)], 0, 240_000, 120_000);
        let counts: Vec<(i64, usize)> = chunks.iter().map(|(s, c)| (*s, c.rows.len())).collect();
        assert_eq!(counts, vec![(0, 2), (120_000, 1)]);
    }
}
