/**
 * What every `xdpstack` command shares: the command table's shape, the output context, the usage
 * error and option parsing. Both the top level (stack/cli/cli.ts) and the stack commands
 * (stack/cli/stack-commands.ts) import it, so neither imports the other's internals (no import circle).
 */

import { closest } from '../control/suggest';

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

export { editDistance, closest } from '../control/suggest';

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
      // Past 2^53 a number is no longer the one written (99999999999999999999 reads as 1e20).
      if (!Number.isSafeInteger(Number(v))) throw new UsageError(`option '--${name}' expects a non-negative integer, got '${v}': too large`, usage);
      opts[name] = Number(v);
    } else if (kind === 'list') {
      const items = v.split(',').map((s) => s.trim());
      if (items.some((s) => s === '')) throw new UsageError(`option '--${name}' expects a comma-separated list, got '${v}'`, usage);
      opts[name] = items;
    } else opts[name] = v;
  }
  return { opts, positional };
}
