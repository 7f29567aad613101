/**
 * What every `xdpstack` command shares: the command table's shape, the output context, the usage
 * error and option parsing. Both the top level (stack/cli/cli.ts) and the stack commands
 * (stack/cli/stack-commands.ts) import it, so neither imports the other's internals (no import circle).
 */

export class UsageError extends Error {
  constructor(message: string, readonly usage?: string) { super(message); this.name = 'UsageError'; }
}

export interface Command {
  name: string;
  summary: string;
  /** Full usage text, shown by --help and after a UsageError. */
  usage: string;
  /** Either a handler... */
  run?(args: string[], ctx: CliContext): number | Promise<number>;
  /** ...or a nested table (`xdpstack lab up`). */
  subcommands?: Command[];
}

export interface CliContext {
  out(line: string): void;
  err(line: string): void;
  /** The raw standard output, for commands that write bytes there (`trace --out -`). */
  stdout?: NodeJS.WritableStream;
}

/** A usage text listing a command table: the title, then each command with its summary. */
export function tableUsage(title: string, table: Command[]): string {
  const w = Math.max(...table.map((c) => c.name.length));
  return [title, '', 'Commands:', ...table.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// "Did you mean"

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

/** ` (did you mean 'x'?)` when a candidate is close to `name`, else ''. `quote` formats it (e.g. adds `--`). */
export function didYouMean(name: string, candidates: Iterable<string>, quote: (c: string) => string = (c) => c): string {
  const c = closest(name, candidates);
  return c === undefined ? '' : ` (did you mean '${quote(c)}'?)`;
}
/**
 * What a closed standard output (the reader went away: EPIPE) does: by default the process exits
 * quietly (stack/cli/cli.ts); a command that must finish cleanly first (a streamed trace stops the
 * stack's trace and reports its counts) sets `onStdoutClosed` while it runs.
 */
export const closedPipe: { onStdoutClosed: (() => void) | null } = { onStdoutClosed: null };

// ---------------------------------------------------------------------------------------------
// Option parsing

export type OptKind = 'string' | 'int' | 'bool' | 'list';
export type OptSpec = Record<string, OptKind>;
export type OptValues = Record<string, string | number | boolean | string[] | undefined>;

/**
 * Parses `--name value`, `--name=value` and boolean `--flag` according to spec; anything else
 * (unknown option, missing or malformed value, stray positional) is a UsageError.
 */
export function parseOptions(args: string[], spec: OptSpec, usage?: string, maxPositional = 0): { opts: OptValues; positional: string[] } {
  const opts: OptValues = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--') || a === '--') {
      if (positional.length >= maxPositional) {
        // `-vs` for `--vs`: one dash is a common slip.
        const hint = /^-[A-Za-z]/.test(a) && spec[a.slice(1)] ? ` (did you mean '-${a}'?)` : '';
        throw new UsageError(`unexpected argument '${a}'${hint}`, usage);
      }
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    const kind = spec[name];
    if (!kind) throw new UsageError(`unknown option '--${name}'${didYouMean(name, [...Object.keys(spec), 'help'], (c) => `--${c}`)}`, usage);
    if (kind === 'bool') {
      if (eq >= 0) throw new UsageError(`option '--${name}' takes no value`, usage);
      opts[name] = true;
      continue;
    }
    let v: string;
    if (eq >= 0) v = a.slice(eq + 1);
    else {
      if (i + 1 >= args.length || args[i + 1].startsWith('--')) throw new UsageError(`option '--${name}' needs a value`, usage);
      v = args[++i];
    }
    if (v === '') throw new UsageError(`option '--${name}' needs a value`, usage);
    if (kind === 'int') {
      if (!/^\d+$/.test(v)) throw new UsageError(`option '--${name}' expects a non-negative integer, got '${v}'`, usage);
      opts[name] = Number(v);
    } else if (kind === 'list') {
      const items = v.split(',').map((s) => s.trim());
      if (items.some((s) => s === '')) throw new UsageError(`option '--${name}' expects a comma-separated list, got '${v}'`, usage);
      opts[name] = items;
    } else opts[name] = v;
  }
  return { opts, positional };
}
