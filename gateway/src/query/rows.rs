//! The rows a plan reads over a range, assembled from the [`RowCache`] where windows can no
//! longer change and from QuestDB for the rest: chunks of [`CHUNK_WINDOWS`] stored windows
//! that end before the immutable point are served from the cache (missing ones are read
//! in one statement per consecutive run and cached), then one shorter chunk up to the
//! immutable point (cached under its length), and the recent tail is read every time.
//! [`RowSet::merged`] folds them for the plan, keeping the folds of cached chunks with them.

use super::cache::{Chunk, ChunkKey, RowCache, CHUNK_WINDOWS};
use super::derive::WindowRow;
use super::fold::{Fold, Merged};
use super::plan::QueryPlan;
use super::pool::QuestDb;
use super::QueryError;
use rtdash_shared::time::UnixMillis;
use std::sync::Arc;

/// Rows of one plan over `[from, to)`: some cached chunks (which may reach outside the
/// range) and the freshly read rest.
#[derive(Debug, Default)]
pub struct RowSet {
    parts: Vec<Part>,
    from: UnixMillis,
    to: UnixMillis,
}

/// Rows of a [`RowSet`]: a cached chunk (with its key) or rows read for this set only.
#[derive(Debug)]
struct Part {
    chunk: Arc<Chunk>,
    cached: Option<ChunkKey>,
}

impl Part {
    fn read(rows: Vec<WindowRow>) -> Self {
        Self {
            chunk: Arc::new(Chunk::new(rows)),
            cached: None,
        }
    }
}

impl RowSet {
    /// A row set of `rows` read for `[from, to)`.
    pub fn from_rows(rows: Vec<WindowRow>, from: UnixMillis, to: UnixMillis) -> Self {
        Self {
            parts: vec![Part::read(rows)],
            from,
            to,
        }
    }

    /// The rows whose window starts in the range.
    pub fn iter(&self) -> impl Iterator<Item = &WindowRow> + '_ {
        let (from, to) = (self.from, self.to);
        self.parts
            .iter()
            .flat_map(|part| part.chunk.rows.iter())
            .filter(move |row| row.window_start >= from && row.window_start < to)
    }

    /// The rows of the range from `from` on (the range's start when earlier) folded for
    /// `plan` (which read them) and merged; the folds of cached chunks are kept with them in
    /// `cache` (see [`Chunk::fold`]).
    pub fn merged(&self, plan: &QueryPlan, cache: &RowCache, from: UnixMillis) -> Merged {
        let from = from.max(self.from);
        let mut merged = Merged::default();
        for part in &self.parts {
            match &part.cached {
                Some(key) => {
                    let (fold, delta) = part.chunk.fold(plan);
                    if delta != 0 {
                        cache.grow(key, &part.chunk, delta);
                    }
                    let inside = key.start >= from && key.start + key.len_ms <= self.to;
                    merged.absorb(plan, &fold, from, self.to, inside);
                }
                None => {
                    let fold = Fold::of_rows(plan, &part.chunk.rows);
                    merged.absorb(plan, &fold, from, self.to, false);
                }
            }
        }
        merged
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
        let key_of = |start: i64, len_ms: i64| ChunkKey {
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
            len_ms,
        };
        let key = |start: i64| key_of(start, chunk_ms);
        let mut parts = Vec::new();
        let mut missing: Vec<i64> = Vec::new();
        let mut start = first;
        while start < cached_end {
            match self.cache().get(&key(start)) {
                Some(chunk) => parts.push(Part {
                    chunk,
                    cached: Some(key(start)),
                }),
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
                let cached = chunk
                    .rows
                    .iter()
                    .all(|row| row.is_final)
                    .then(|| key(start));
                if let Some(key) = &cached {
                    self.cache().insert(key.clone(), chunk.clone());
                }
                parts.push(Part { chunk, cached });
            }
        }
        // The stored windows after the last whole chunk that no longer change either: one
        // shorter chunk, cached under its length (once the immutable point passes another
        // stored window, the next request reads a longer one; this one ages out unused).
        let source_ms = plan.source_window_ms;
        let partial_start = cached_end.max(first);
        let partial_end = (immutable_before.div_euclid(source_ms) * source_ms)
            .min(
                to.div_euclid(source_ms) * source_ms
                    + if to % source_ms == 0 { 0 } else { source_ms },
            )
            .min(partial_start + chunk_ms);
        let mut cached_to = partial_start;
        if partial_end > partial_start && partial_end > from {
            let key = key_of(partial_start, partial_end - partial_start);
            let chunk = match self.cache().get(&key) {
                Some(chunk) => Some(chunk),
                None => {
                    let rows = self
                        .fetch_from(&table, plan, partial_start, partial_end, with_state)
                        .await?;
                    let chunk = Arc::new(Chunk::new(rows));
                    let final_rows = chunk.rows.iter().all(|row| row.is_final);
                    if final_rows {
                        self.cache().insert(key.clone(), chunk.clone());
                        Some(chunk)
                    } else {
                        parts.push(Part {
                            chunk,
                            cached: None,
                        });
                        None
                    }
                }
            };
            if let Some(chunk) = chunk {
                parts.push(Part {
                    chunk,
                    cached: Some(key),
                });
            }
            cached_to = partial_end;
        }
        let tail_from = from.max(cached_to);
        if tail_from < to {
            let rows = self
                .fetch_from(&table, plan, tail_from, to, with_state)
                .await?;
            parts.push(Part::read(rows));
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
