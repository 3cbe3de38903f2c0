/** What an empty widget says: which filter matched nothing, and the values that do exist. */

import type { Dimensions } from './types';

/** `region=US-East, plan=pro`: a widget's dimension filter as written. */
export function describeFilter(dimensions: Dimensions): string {
  return Object.entries(dimensions)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

/** Levenshtein distance between `a` and `b`. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(
        prev[j]! + 1,
        cur[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * Up to `max` of `known` closest to `wanted`, closest first: compared case-insensitively, a
 * value starting with what was asked for (or the other way round) first, then by edit distance
 * (at most half the longer one's length, so unrelated values are not offered). Ties keep the
 * alphabetical order.
 */
export function closestValues(wanted: string, known: readonly string[], max = 3): string[] {
  const w = wanted.toLowerCase();
  return known
    .map((value) => {
      const v = value.toLowerCase();
      const prefix = w.length > 0 && (v.startsWith(w) || w.startsWith(v));
      return {
        value,
        prefix,
        distance: editDistance(w, v),
        limit: Math.max(w.length, v.length) / 2,
      };
    })
    .filter((c) => c.prefix || c.distance <= c.limit)
    .sort(
      (a, b) =>
        Number(b.prefix) - Number(a.prefix) ||
        a.distance - b.distance ||
        a.value.localeCompare(b.value),
    )
    .slice(0, max)
    .map((c) => c.value);
}

/** For each filtered dimension whose value is not among `known`: the closest that are. */
export function filterSuggestions(
  dimensions: Dimensions,
  known: Record<string, readonly string[]>,
): { dimension: string; wanted: string; closest: string[] }[] {
  return Object.entries(dimensions)
    .filter(([k, v]) => !(known[k] ?? []).includes(v))
    .map(([k, v]) => ({ dimension: k, wanted: v, closest: closestValues(v, known[k] ?? []) }));
}
