/** Sorted, disjoint ranges of sequence space in two parallel arrays (reorder ranges, SACK scoreboard). */
import { seqLeq, seqLt, seqMax, seqMin } from './seq';

/** Radix of addRange's result: index * RANGE_RADIX + count. */
export const RANGE_RADIX = 0x100000;

/**
 * Adds [s, e) to the ranges in `starts`/`ends` (the first `n` in use, sorted), merging the ones it
 * overlaps or touches. Returns index * RANGE_RADIX + the new count, where index is the merged
 * range's; or -1, with nothing changed, when a new range is needed and all `starts.length` are used.
 */
export function addRange(starts: Uint32Array, ends: Uint32Array, n: number, s: number, e: number): number {
  let i = 0;
  while (i < n && seqLt(ends[i]!, s)) i++;
  let j = i;
  while (j < n && seqLeq(starts[j]!, e)) {
    s = seqMin(s, starts[j]!);
    e = seqMax(e, ends[j]!);
    j++;
  }
  const removed = j - i;
  if (removed === 0) {
    if (n >= starts.length) return -1;
    for (let k = n; k > i; k--) { starts[k] = starts[k - 1]!; ends[k] = ends[k - 1]!; }
    n++;
  } else if (removed > 1) {
    for (let k = i + 1; k + removed - 1 < n; k++) {
      starts[k] = starts[k + removed - 1]!;
      ends[k] = ends[k + removed - 1]!;
    }
    n -= removed - 1;
  }
  starts[i] = s;
  ends[i] = e;
  return i * RANGE_RADIX + n;
}
