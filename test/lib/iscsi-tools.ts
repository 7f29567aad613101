/**
 * libiscsi's command-line tools (Debian libiscsi-bin 1.19) as a real initiator: runners that start
 * them in a network namespace, bounded in time and output, and parsers of their text output.
 *
 *  - iscsi-test-cu: the conformance suite. CUnit counts a test that prints `[SKIPPED]` as passed
 *    (its Run Summary and exit code cannot tell a skip from a pass), so the verdict of every test is
 *    read from the verbose text: `  Test: NAME ...` then the CUnit verdict `passed` or `FAILED` at
 *    the start of a line (or right after the `...`); a `[SKIPPED]` line before a `passed` verdict
 *    makes it a skip.
 *  - iscsi-ls: SendTargets discovery (RFC 7143 12.3 / Appendix C), with `-s` the LUNs of each target.
 *  - iscsi-perf: READ(16) load (random with -r), fixed transfer size, N commands in flight.
 *  - iscsi-load (bench/c/iscsi-load.c, ours): the same load shape for WRITE(16) as well, because
 *    iscsi-perf 1.19 only reads.
 *
 * The parsers are pure (unit-tested on outputs recorded on this machine); the runners never throw
 * for a failing tool, they return its exit code and output.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';

// ---------------------------------------------------------------------------------------------
// Running a tool

export interface ToolRun {
  /** Exit code; null when killed by a signal (see `timedOut`). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit (ms). */
  ms: number;
  /** Killed (SIGKILL) after the time limit. */
  timedOut: boolean;
  /** Output beyond `maxOutput` characters per stream was dropped (the tail is kept). */
  truncated: boolean;
}

export interface RunOptions {
  /** Time limit (ms); the process is killed with SIGKILL at the limit. */
  timeoutMs: number;
  /** Characters kept per stream (the last ones); default 4 MiB. */
  maxOutput?: number;
  env?: NodeJS.ProcessEnv;
  /** Sees stdout as it arrives, with the time (ms since the spawn). */
  onStdout?: (chunk: string, ms: number) => void;
}

/**
 * Runs `cmd args` inside network namespace `ns` (null: this one) without blocking the event loop.
 * `ip netns exec` execs the command, so the child's pid is the tool's and a kill reaches it.
 */
export function runTool(ns: string | null, cmd: string, args: string[], opts: RunOptions): Promise<ToolRun> {
  const max = opts.maxOutput ?? 4 << 20;
  const [bin, argv] = ns ? ['ip', ['netns', 'exec', ns, cmd, ...args]] : [cmd, args];
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out = { stdout: '', stderr: '', truncated: false };
    const keep = (k: 'stdout' | 'stderr') => (d: string) => {
      out[k] += d;
      if (out[k].length > max) { out[k] = out[k].slice(out[k].length - max); out.truncated = true; }
    };
    child.stdout.setEncoding('utf8').on('data', keep('stdout'));
    if (opts.onStdout) { const f = opts.onStdout; child.stdout.on('data', (d: string) => f(d, Date.now() - t0)); }
    child.stderr.setEncoding('utf8').on('data', keep('stderr'));
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs);
    let spawnError: Error | null = null;
    child.on('error', (e) => { spawnError = e; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (spawnError) out.stderr += `\n${cmd}: ${spawnError.message}`;
      resolve({ code: spawnError ? 127 : code, signal, stdout: out.stdout, stderr: out.stderr, ms: Date.now() - t0, timedOut, truncated: out.truncated });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// iscsi-test-cu

export type TestVerdict = 'pass' | 'fail' | 'skip';

export interface TestResult {
  /** FAMILY.Suite.Test, e.g. ALL.Read10.Simple. */
  name: string;
  result: TestVerdict;
  /** What the test printed before its verdict ([SKIPPED]/[FAILED] lines, steps) and CUnit's failed asserts after it. */
  messages: string[];
  /** The run ended (timeout, crash) before CUnit gave this test a verdict: counted as a failure. */
  incomplete?: true;
  /** Wall time from this test's start line to the next one's (ms), when the run was timed. */
  ms?: number;
}

export interface CunitSummary {
  suites: { total: number; ran: number; failed: number; inactive: number };
  tests: { total: number; ran: number; passed: number; failed: number; inactive: number };
  asserts: { total: number; ran: number; passed: number; failed: number };
  /** CUnit's own elapsed time (s): the time inside test bodies only. */
  elapsed?: number;
}

export interface TestCuReport {
  tests: TestResult[];
  /** CUnit's Run Summary, when the run got that far. */
  summary: CunitSummary | null;
  counts: { pass: number; fail: number; skip: number; total: number };
  /**
   * The parsed verdicts agree with CUnit's summary: as many tests ran as were parsed, and
   * pass + skip = CUnit's "Passed". False (with the reason in `problems`) when the text could not
   * be read as expected.
   */
  consistent: boolean;
  problems: string[];
}

/** Resolves a suite name printed by iscsi-test-cu (no family) to its family (ALL, SCSI, iSCSI...). */
export type FamilyOf = (suite: string) => string;

const SUITE_RE = /^Suite: (\S+)/;
const TEST_RE = /^ {2}Test: (\S+) \.\.\.(.*)$/;
const VERDICT_RE = /^(passed|FAILED)(.*)$/;

interface Open { name: string; verdict?: 'passed' | 'FAILED'; skipped: boolean; messages: string[] }

/** Parses the verbose (default) text output of `iscsi-test-cu`. */
export function parseTestCu(text: string, familyOf: FamilyOf): TestCuReport {
  const tests: TestResult[] = [];
  const problems: string[] = [];
  let suite = '';
  let cur: Open | null = null;
  let summary: CunitSummary | null = null;
  const close = () => {
    if (!cur) return;
    const r: TestResult = {
      name: cur.name,
      result: cur.verdict === 'FAILED' || cur.verdict === undefined ? 'fail' : cur.skipped ? 'skip' : 'pass',
      messages: cur.messages,
    };
    if (cur.verdict === undefined) r.incomplete = true;
    tests.push(r);
    cur = null;
  };
  const note = (c: Open, s: string) => {
    const t = s.trim();
    if (!t) return;
    // A [SKIPPED] notice counts only before the verdict: after it, output belongs to the teardown.
    if (c.verdict === undefined && t.startsWith('[SKIPPED]')) c.skipped = true;
    c.messages.push(t);
  };
  const segment = (c: Open, s: string) => {
    if (c.verdict === undefined) {
      const v = VERDICT_RE.exec(s);
      if (v) { c.verdict = v[1] as 'passed' | 'FAILED'; note(c, v[2]!); return; }
    }
    note(c, s);
  };
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const s = SUITE_RE.exec(line);
    if (s) { close(); suite = s[1]!; continue; }
    const t = TEST_RE.exec(line);
    if (t) {
      close();
      if (!suite) problems.push(`test ${t[1]} outside a suite`);
      cur = { name: `${familyOf(suite)}.${suite}.${t[1]}`, skipped: false, messages: [] };
      segment(cur, t[2]!);
      continue;
    }
    if (/^Run Summary:/.test(line)) {
      close();
      summary = parseSummary(lines.slice(i + 1, i + 6));
      break;
    }
    if (cur) segment(cur, line);
  }
  close();
  const counts = { pass: 0, fail: 0, skip: 0, total: tests.length };
  for (const r of tests) counts[r.result]++;
  if (summary) {
    if (summary.tests.ran !== tests.length) problems.push(`CUnit ran ${summary.tests.ran} tests, ${tests.length} parsed`);
    if (summary.tests.passed !== counts.pass + counts.skip) problems.push(`CUnit counts ${summary.tests.passed} passed, parsed ${counts.pass} pass + ${counts.skip} skip`);
    if (summary.tests.failed !== counts.fail) problems.push(`CUnit counts ${summary.tests.failed} failed, parsed ${counts.fail}`);
  } else if (tests.length) {
    problems.push('no Run Summary (the run ended early)');
  }
  const seen = new Set<string>();
  for (const r of tests) { if (seen.has(r.name)) problems.push(`test ${r.name} reported twice`); seen.add(r.name); }
  return { tests, summary, counts, consistent: problems.length === 0, problems };
}

function parseSummary(lines: string[]): CunitSummary | null {
  const row = (what: string) => {
    const l = lines.find((x) => new RegExp(`^\\s+${what}\\s`).test(x));
    if (!l) return null;
    return l.trim().split(/\s+/).slice(1).map((x) => (x === 'n/a' ? NaN : Number(x)));
  };
  const su = row('suites');
  const te = row('tests');
  const as = row('asserts');
  if (!su || !te || !as || te.length < 5) return null;
  const el = lines.map((l) => /^Elapsed time =\s+([\d.]+) seconds/.exec(l)).find((m) => m);
  const s: CunitSummary = {
    suites: { total: su[0]!, ran: su[1]!, failed: su[3]!, inactive: su[4]! },
    tests: { total: te[0]!, ran: te[1]!, passed: te[2]!, failed: te[3]!, inactive: te[4]! },
    asserts: { total: as[0]!, ran: as[1]!, passed: as[2]!, failed: as[3]! },
  };
  if (el) s.elapsed = Number(el[1]);
  return s;
}

/** Parses `iscsi-test-cu -l`: the full names of families, suites and tests, in order. */
export function parseTestList(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => /^[A-Za-z0-9]+(\.[A-Za-z0-9_-]+){0,2}$/.test(l));
}

/**
 * The family resolver for a `-t` selector: the one family it names, or for a list over several
 * families the first of them whose listing (parseTestList) holds the suite.
 */
export function familyResolver(selector: string, listing?: readonly string[]): FamilyOf {
  const fams = [...new Set(selector.split(',').map((s) => s.trim().split('.')[0]!).filter((s) => s))];
  if (fams.length === 1) { const f = fams[0]!; return () => f; }
  if (!listing) throw new Error(`selector ${selector} spans families ${fams.join(', ')}: the test listing is needed`);
  const names = new Set(listing);
  return (suite) => fams.find((f) => names.has(`${f}.${suite}`)) ?? fams[0]!;
}

let listingCache: string[] | null = null;

/** `iscsi-test-cu -l` (no target needed), parsed; cached for the process. */
export async function testList(): Promise<string[]> {
  if (listingCache) return listingCache;
  const r = await runTool(null, 'iscsi-test-cu', ['-l'], { timeoutMs: 10_000 });
  const list = parseTestList(r.stdout);
  if (!list.length) throw new Error(`iscsi-test-cu -l listed nothing (exit ${r.code}): ${r.stderr.slice(0, 500)}`);
  listingCache = list;
  return list;
}

export interface TestCuOptions {
  /** The -t selector: FAMILY[.SUITE[.TEST]], several joined by commas (iscsi-test-cu accepts a list). */
  tests: string | readonly string[];
  /** --dataloss: allow the destructive (write) tests. Default true. */
  dataloss?: boolean;
  /** Time limit for the whole run (ms). */
  timeoutMs: number;
  /** -i / -I initiator names (defaults: libiscsi's). */
  initiatorName?: string;
  initiatorName2?: string;
  /** Further arguments before the URL. */
  extraArgs?: string[];
}

export interface TestCuRun extends TestCuReport {
  selector: string;
  url: string;
  run: ToolRun;
}

/** Runs iscsi-test-cu against `url` from namespace `ns` and parses every test's verdict. */
export async function runTestCu(ns: string, url: string, opts: TestCuOptions): Promise<TestCuRun> {
  const selector = typeof opts.tests === 'string' ? opts.tests : opts.tests.join(',');
  const args = ['-t', selector];
  if (opts.dataloss ?? true) args.push('--dataloss');
  if (opts.initiatorName) args.push('-i', opts.initiatorName);
  if (opts.initiatorName2) args.push('-I', opts.initiatorName2);
  args.push(...(opts.extraArgs ?? []), url);
  const multi = new Set(selector.split(',').map((s) => s.trim().split('.')[0])).size > 1;
  const familyOf = familyResolver(selector, multi ? await testList() : undefined);
  // Line-buffered (stdbuf -oL): verdicts printed before a kill are not lost in a stdio buffer, and
  // each test's start can be timed as its line arrives.
  const starts: number[] = [];
  let partial = '';
  const onStdout = (d: string, ms: number) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const l of lines) if (TEST_RE.test(l)) starts.push(ms);
    if (TEST_RE.test(partial)) { starts.push(ms); partial = partial.replace(/^ {2}Test:/, '  test:'); }
  };
  const run = await runTool(ns, 'stdbuf', ['-oL', 'iscsi-test-cu', ...args], { timeoutMs: opts.timeoutMs, onStdout });
  const rep = parseTestCu(run.stdout, familyOf);
  if (starts.length === rep.tests.length) {
    rep.tests.forEach((t, i) => { t.ms = (i + 1 < starts.length ? starts[i + 1]! : run.ms) - starts[i]!; });
  }
  if (run.timedOut) rep.problems.push(`killed after ${opts.timeoutMs} ms`);
  if (run.truncated) rep.problems.push('output truncated');
  return { ...rep, consistent: rep.problems.length === 0, selector, url, run };
}

// ---------------------------------------------------------------------------------------------
// iscsi-ls

export interface DiscoveredTarget {
  iqn: string;
  portals: { address: string; port: number; tpgt: number }[];
  /** With `-s`: the LUNs iscsi-ls found by logging in (REPORT LUNS, INQUIRY, READ CAPACITY). */
  luns: { lun: number; type: string; size?: string }[];
}

/** Splits `addr:port,tpgt` (IPv6 address in brackets). */
export function parsePortal(s: string): { address: string; port: number; tpgt: number } | null {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d+)(?:,(\d+))?$/.exec(s.trim());
  if (!m) return null;
  return { address: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]), tpgt: m[3] === undefined ? 1 : Number(m[3]) };
}

/** Parses iscsi-ls output: `Target:IQN Portal:ADDR:PORT,TPGT` lines, with -s `Lun:N Type:T (Size:S)` lines after each. */
export function parseIscsiLs(text: string): DiscoveredTarget[] {
  const out: DiscoveredTarget[] = [];
  let cur: DiscoveredTarget | null = null;
  for (const line of text.split(/\r?\n/)) {
    const t = /^Target:(\S+)\s+Portal:(\S+)/.exec(line);
    if (t) {
      cur = out.find((x) => x.iqn === t[1]) ?? null;
      if (!cur) { cur = { iqn: t[1]!, portals: [], luns: [] }; out.push(cur); }
      const p = parsePortal(t[2]!);
      if (p && !cur.portals.some((q) => q.address === p.address && q.port === p.port)) cur.portals.push(p);
      continue;
    }
    const l = /^Lun:(\d+)\s+Type:(\S+)(?:\s+\(Size:([^)]+)\))?/.exec(line);
    if (l && cur) {
      const lun: DiscoveredTarget['luns'][number] = { lun: Number(l[1]), type: l[2]! };
      if (l[3] !== undefined) lun.size = l[3];
      cur.luns.push(lun);
    }
  }
  return out;
}

/** SendTargets discovery with iscsi-ls against a portal (`iscsi://host[:port]`); `showLuns` adds -s. */
export async function iscsiLs(ns: string, portalUrl: string, opts: { showLuns?: boolean; timeoutMs?: number; initiatorName?: string } = {}): Promise<{ targets: DiscoveredTarget[]; run: ToolRun }> {
  const args: string[] = [];
  if (opts.showLuns) args.push('-s');
  if (opts.initiatorName) args.push('-i', opts.initiatorName);
  args.push(portalUrl);
  const run = await runTool(ns, 'iscsi-ls', args, { timeoutMs: opts.timeoutMs ?? 15_000 });
  return { targets: parseIscsiLs(run.stdout), run };
}

// ---------------------------------------------------------------------------------------------
// iscsi-perf and iscsi-load

export interface PerfResult {
  /** I/O operations per second over the whole run (the tool's final average). */
  iops: number;
  /** Bytes per second: iops × transfer size (exact, unlike the tool's rounded MB/s). */
  bytesPerSec: number;
  /** Transfer size per command (bytes). */
  transferBytes: number;
  blockSize: number;
  capacityBytes: number;
  inFlight: number;
  pattern: 'random' | 'sequential';
  op: 'read' | 'write';
  /** Per-second samples ("iops current"), in order. */
  samples: number[];
}

/** Parses iscsi-perf output; null when it holds no final average (the run failed). */
export function parseIscsiPerf(text: string): PerfResult | null {
  const cap = /capacity is (\d+) blocks or (\d+) byte/.exec(text);
  const mode = /performing (RANDOM|SEQUENTIAL) READ with (\d+) parallel requests/.exec(text);
  const size = /FIXED transfer size of (\d+) blocks \((\d+) byte\)/.exec(text);
  // Progress lines read "iops average N (M MB/s), in_flight ..."; the final one has no comma and
  // is followed by "finished." when the run completed.
  const finals = [...text.matchAll(/iops average (\d+) \(\d+ MB\/s\)(?!,)/g)];
  if (!cap || !mode || !size || !finals.length || !/\bfinished\./.test(text)) return null;
  const iops = Number(finals[finals.length - 1]![1]);
  const blocks = Number(cap[1]);
  const capacityBytes = Number(cap[2]);
  const transferBytes = Number(size[2]);
  return {
    iops, bytesPerSec: iops * transferBytes, transferBytes, blockSize: blocks ? capacityBytes / blocks : 0, capacityBytes,
    inFlight: Number(mode[2]), pattern: mode[1] === 'RANDOM' ? 'random' : 'sequential', op: 'read',
    samples: [...text.matchAll(/iops current (\d+)/g)].map((m) => Number(m[1])),
  };
}

export interface LoadOptions {
  /** Commands in flight. */
  depth: number;
  /** Transfer size per command (bytes; a multiple of the LUN's block size). */
  bytes: number;
  seconds: number;
  random: boolean;
}

/** iscsi-perf (READ(16) only): `-m depth -b blocks -t seconds [-r]`; blocks from `bytes` and the LUN's block size. */
export async function iscsiPerf(ns: string, url: string, o: LoadOptions & { blockSize: number }): Promise<{ result: PerfResult | null; run: ToolRun }> {
  if (o.bytes % o.blockSize) throw new Error(`transfer size ${o.bytes} is not a multiple of the block size ${o.blockSize}`);
  const args = ['-m', String(o.depth), '-b', String(o.bytes / o.blockSize), '-t', String(o.seconds)];
  if (o.random) args.push('-r');
  args.push(url);
  const run = await runTool(ns, 'iscsi-perf', args, { timeoutMs: (o.seconds + 20) * 1000 });
  return { result: run.code === 0 ? parseIscsiPerf(run.stdout) : null, run };
}

/** Where `make -C driver` puts bench/c/iscsi-load (override with XDPSTACK_ISCSI_LOAD). */
export function iscsiLoadPath(): string {
  return process.env.XDPSTACK_ISCSI_LOAD ?? path.resolve(__dirname, '..', '..', '..', 'driver', 'build', 'iscsi-load');
}

/** Parses the JSON line iscsi-load prints at the end. */
export function parseIscsiLoad(text: string): PerfResult | null {
  const line = text.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) return null;
  const j = JSON.parse(line) as { op: 'read' | 'write'; pattern: 'random' | 'sequential'; depth: number; bytes: number; block_size: number;
    capacity: number; ops: number; errors: number; seconds: number; samples: number[] };
  if (j.errors || !(j.seconds > 0)) return null;
  const iops = j.ops / j.seconds;
  return {
    iops, bytesPerSec: iops * j.bytes, transferBytes: j.bytes, blockSize: j.block_size, capacityBytes: j.capacity,
    inFlight: j.depth, pattern: j.pattern, op: j.op, samples: j.samples,
  };
}

/** bench/c/iscsi-load: READ(16) or WRITE(16) load with libiscsi's asynchronous API (writes: the LUN's data is overwritten). */
export async function iscsiLoad(ns: string, url: string, o: LoadOptions & { op: 'read' | 'write'; pass?: boolean }): Promise<{ result: PerfResult | null; run: ToolRun }> {
  const args = ['--op', o.op, '--depth', String(o.depth), '--bytes', String(o.bytes), '--seconds', String(o.seconds)];
  if (o.random) args.push('--random');
  // One sequential pass over the whole LUN (to fill it); `seconds` then only bounds the wait.
  if (o.pass) args.push('--pass');
  args.push(url);
  const run = await runTool(ns, iscsiLoadPath(), args, { timeoutMs: (o.seconds + 20) * 1000 });
  return { result: run.code === 0 ? parseIscsiLoad(run.stdout) : null, run };
}
