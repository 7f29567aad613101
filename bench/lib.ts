/** Shared helpers for the benchmarks: child processes, statistics, tables, paths. */
import { spawn, ChildProcess } from 'node:child_process';
import * as path from 'node:path';

/** Repository root (dist/bench/lib.js → ../..). */
export const ROOT = path.resolve(__dirname, '..', '..');
export const BUILD = path.join(ROOT, 'driver', 'build');
export const DIST_BENCH = __dirname;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length & 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Proc {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code when the process ends. */
  done: Promise<number>;
  /** Resolves with the first stdout line matching `re`, or rejects after `ms`. */
  waitFor(re: RegExp, ms: number): Promise<string>;
}

/** Spawns a command, collecting its output. `cpu` pins it with taskset. */
export function run(cmd: string, args: string[], cpu?: number): Proc {
  const full = cpu === undefined ? [cmd, ...args] : ['taskset', '-c', String(cpu), cmd, ...args];
  const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = {
    child, stdout: '', stderr: '',
    done: new Promise((resolve) => {
      child.on('error', (e) => { p.stderr += String(e); resolve(127); });
      child.on('close', (code, sig) => resolve(code ?? (sig ? 128 : 1)));
    }),
    waitFor(re, ms) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = p.stdout.split('\n').find((l) => re.test(l));
          if (m !== undefined) { clearTimeout(t); child.stdout!.off('data', check); resolve(m); return true; }
          return false;
        };
        const t = setTimeout(() => { child.stdout!.off('data', check); reject(new Error(`timeout waiting for ${re} from ${cmd}: ${p.stdout} ${p.stderr}`)); }, ms);
        if (!check()) child.stdout!.on('data', check);
        p.done.then(() => { if (!check()) { clearTimeout(t); reject(new Error(`${cmd} exited: ${p.stdout} ${p.stderr}`)); } });
      });
    },
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { p.stdout += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { p.stderr += d; });
  return p;
}

/** Last JSON object line of a process's stdout. */
export function lastJson<T>(p: Proc): T {
  const lines = p.stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  if (!lines.length) throw new Error(`no JSON result in output: ${p.stdout} ${p.stderr}`);
  return JSON.parse(lines[lines.length - 1]!) as T;
}

/** Prints a table with aligned columns. */
export function table(title: string, head: string[], rows: (string | number)[][]): void {
  const cells = [head, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  console.log(`\n${title}`);
  cells.forEach((r, k) => {
    console.log('  ' + r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]!) : String(c).padStart(w[i]!))).join('  '));
    if (k === 0) console.log('  ' + w.map((x) => '-'.repeat(x)).join('  '));
  });
}

export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

/** Result record written to bench/results/latest.json. */
export type BenchResult = Record<string, unknown>;
