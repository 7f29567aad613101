/**
 * "Did you mean": the closest of some names to a mistyped one, for the CLI's commands and options
 * (stack/cli/args.ts) and the validator's unknown keys (stack/control/validate.ts).
 */

/**
 * Edit distance with adjacent transpositions (Damerau-Levenshtein, optimal string alignment):
 * `shwo` → `show` is 1, as is `--vss` → `--vs`.
 */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  // Three rows: the one two back (for transpositions), the previous one and the current one.
  let prev2 = new Array<number>(n + 1).fill(0);
  let prev = Array.from({ length: n + 1 }, (_, j) => j);
  let cur = new Array<number>(n + 1).fill(0);
  for (let i = 1; i <= m; i++) {
    cur[0] = i;
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1);
      cur[j] = d;
    }
    [prev2, prev, cur] = [prev, cur, prev2];
  }
  return prev[n]!;
}

/**
 * The candidate closest to `name` within an edit distance of 2 and of less than half the name's
 * length (so that `ls` does not become `vs`, while `vss` becomes `vs`), or undefined. Ties go to
 * the first candidate.
 */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const lower = name.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(lower, c.toLowerCase());
    if (d <= 2 && d * 2 < name.length && d < bestD) { best = c; bestD = d; }
  }
  return best;
}
