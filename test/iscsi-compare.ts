/**
 * `npm run iscsi-compare` (root): libiscsi's iscsi-test-cu side by side against tgtd and against
 * xdpstack's iSCSI target, same disk geometry, in the iSCSI lab (test/lib/iscsi-lab.ts).
 *
 *   node dist/test/iscsi-compare.js [--families ALL,iSCSI] [--size BYTES] [--block-size 512|4096]
 *       [--ours child|inprocess|none] [--busy-poll] [--allow-skips] [--timeout SECONDS] [--out DIR]
 *
 * For each side and each family a fresh target is started (a tmpfs file for tgtd, RAM for ours),
 * discovery must name its IQN (iscsi-ls), then `iscsi-test-cu --dataloss -t FAMILY URL` runs with a
 * time limit and every test's verdict is parsed (pass/fail/skip: CUnit counts skips as passes).
 * Writes DIR/iscsi-compare.json (both pass lists, every verdict, timings) and DIR/iscsi-compare.md
 * (default DIR: bench/results).
 *
 * Exit codes: 0 ours passes every test tgt passes (and skips none of them, unless --allow-skips);
 * 1 a test tgt passes fails on ours, or a run went wrong; 2 bad arguments; 3 our target is not
 * available yet (no `iscsi` service type), tgt's results are still written; `--ours none` runs tgt
 * only and exits 0 when its run was sound.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { labPrefix } from './lib/env';
import {
  iscsiLabUp, iscsiLs, IscsiDisk, IscsiLab, runTestCu, stackStarter, TargetStarter, TargetUnavailableError, tgtStarter,
  TestResult, CunitSummary,
} from './lib/iscsi-lab';
import { namesWith, sideBySide, sideBySideMarkdown, SideBySide } from './lib/iscsi-diff';

const ROOT = path.resolve(__dirname, '..', '..');
const IQN = 'iqn.2026-12.org.xdpstack:disk1';

interface Options {
  families: string[]; size: number; blockSize: number; ours: 'child' | 'inprocess' | 'none';
  busyPoll: boolean; allowSkips: boolean; timeoutS: number; out: string;
}

const USAGE = 'usage: iscsi-compare [--families ALL,iSCSI] [--size BYTES] [--block-size 512|4096] [--ours child|inprocess|none] [--busy-poll] [--allow-skips] [--timeout SECONDS] [--out DIR]';

function parseArgs(argv: string[]): Options {
  const o: Options = { families: ['ALL', 'iSCSI'], size: 64 << 20, blockSize: 512, ours: 'child', busyPoll: false, allowSkips: false, timeoutS: 900, out: path.join(ROOT, 'bench', 'results') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => { const v = argv[++i]; if (v === undefined) throw new Error(`${a} needs a value`); return v; };
    const int = (v: string) => { if (!/^\d+$/.test(v)) throw new Error(`${a}: not a number: ${v}`); return Number(v); };
    switch (a) {
      case '--families': o.families = val().split(',').filter((s) => s); break;
      case '--size': o.size = int(val()); break;
      case '--block-size': o.blockSize = int(val()); break;
      case '--ours': { const v = val(); if (v !== 'child' && v !== 'inprocess' && v !== 'none') throw new Error(`--ours: child, inprocess or none`); o.ours = v; break; }
      case '--busy-poll': o.busyPoll = true; break;
      case '--allow-skips': o.allowSkips = true; break;
      case '--timeout': o.timeoutS = int(val()); break;
      case '--out': o.out = path.resolve(val()); break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (o.blockSize !== 512 && o.blockSize !== 4096) throw new Error('--block-size: 512 or 4096');
  if (!o.size || o.size % o.blockSize) throw new Error('--size: a positive multiple of the block size');
  if (!o.families.length) throw new Error('--families: at least one');
  return o;
}

interface FamilyRun {
  family: string;
  url: string;
  durationMs: number;
  exitCode: number | null;
  timedOut: boolean;
  counts: { pass: number; fail: number; skip: number; total: number };
  summary: CunitSummary | null;
  consistent: boolean;
  problems: string[];
  pass: string[];
  fail: string[];
  skip: string[];
  tests: Array<Pick<TestResult, 'name' | 'result' | 'ms' | 'incomplete'> & { messages?: string[] }>;
  /** The target's log tail when the run had problems. */
  targetLog?: string;
}

interface SideRun {
  name: string;
  settings?: Record<string, unknown>;
  unavailable?: string;
  error?: string;
  discovery?: { iqns: string[]; ms: number };
  families: Record<string, FamilyRun>;
}

let interrupted = false;

async function runSide(name: string, il: IscsiLab, start: TargetStarter, disk: IscsiDisk, o: Options): Promise<SideRun> {
  const side: SideRun = { name, families: {} };
  for (const family of o.families) {
    if (interrupted) { side.error = 'interrupted'; break; }
    let t;
    try {
      t = await start(il, disk);
    } catch (e) {
      if (e instanceof TargetUnavailableError) side.unavailable = e.message;
      else side.error = `start: ${(e as Error).message}`;
      break;
    }
    try {
      side.settings ??= t.settings;
      if (!side.discovery) {
        const d = await iscsiLs(il.initiatorNs, t.portalUrl, { timeoutMs: 15_000 });
        side.discovery = { iqns: d.targets.map((x) => x.iqn), ms: d.run.ms };
        if (!d.targets.some((x) => x.iqn === disk.iqn)) { side.error = `discovery at ${t.portalUrl} did not name ${disk.iqn}: ${d.run.stdout}${d.run.stderr}`; break; }
      }
      console.log(`${name}: iscsi-test-cu --dataloss -t ${family} ${t.url}`);
      const r = await runTestCu(il.initiatorNs, t.url, { tests: family, dataloss: true, timeoutMs: o.timeoutS * 1000 });
      const fr: FamilyRun = {
        family, url: t.url, durationMs: r.run.ms, exitCode: r.run.code, timedOut: r.run.timedOut, counts: r.counts, summary: r.summary,
        consistent: r.consistent, problems: r.problems,
        pass: namesWith(r.tests, 'pass'), fail: namesWith(r.tests, 'fail'), skip: namesWith(r.tests, 'skip'),
        tests: r.tests.map((x) => ({ name: x.name, result: x.result, ...(x.ms !== undefined ? { ms: x.ms } : {}), ...(x.incomplete ? { incomplete: x.incomplete } : {}),
          ...(x.result !== 'pass' ? { messages: x.messages.slice(0, 8) } : {}) })),
      };
      if (!r.consistent) fr.targetLog = t.log().slice(-8000);
      side.families[family] = fr;
      console.log(`${name}: ${family}: ${r.counts.pass} pass, ${r.counts.fail} fail, ${r.counts.skip} skip of ${r.counts.total} in ${(r.run.ms / 1000).toFixed(1)} s` +
        `${r.consistent ? '' : ` (problems: ${r.problems.join('; ')})`}`);
    } finally {
      await t.stop();
    }
  }
  return side;
}

function markdown(o: Options, disk: IscsiDisk, tgt: SideRun, ours: SideRun | null, diffs: Record<string, SideBySide>, verdict: string): string {
  const L: string[] = [
    '# iscsi-test-cu side by side: tgtd and xdpstack', '',
    `${new Date().toISOString()}, ${os.cpus().length} vCPU, Linux ${os.release()}, libiscsi-bin 1.19 (iscsi-test-cu --dataloss), tgt 1.0.85.`,
    `Disk: ${disk.size} bytes, ${disk.blockSize} B blocks (tgtd: tmpfs file, LUN 1; xdpstack: RAM, LUN 0). Initiator in a peer namespace; see test/lib/iscsi-lab.ts.`, '',
    `Overall: **${verdict}**`, '',
    '| family | target | pass | fail | skip | total | time (s) |', '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const f of o.families) {
    for (const s of [tgt, ours]) {
      const r = s?.families[f];
      if (!s) continue;
      if (!r) { L.push(`| ${f} | ${s.name} | – | – | – | – | ${s.unavailable ? 'not available' : s.error ?? 'not run'} |`); continue; }
      L.push(`| ${f} | ${s.name} | ${r.counts.pass} | ${r.counts.fail} | ${r.counts.skip} | ${r.counts.total} | ${(r.durationMs / 1000).toFixed(1)} |`);
    }
  }
  L.push('');
  for (const f of o.families) if (diffs[f]) L.push(...sideBySideMarkdown(f, diffs[f]!, o.allowSkips));
  for (const f of o.families) {
    const r = tgt.families[f];
    if (!r) continue;
    L.push(`### tgtd ${f}: failures and skips`, '', ...r.fail.map((n) => `- fail: ${n}`), ...r.skip.map((n) => `- skip: ${n}`), '');
  }
  return L.join('\n') + '\n';
}

async function main(): Promise<number> {
  let o: Options;
  try { o = parseArgs(process.argv.slice(2)); } catch (e) { console.error(`${(e as Error).message}\n${USAGE}`); return 2; }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) { console.error('iscsi-compare needs root (network namespaces, tgtd, AF_XDP)'); return 2; }
  const stop = () => { interrupted = true; };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const disk: IscsiDisk = { iqn: IQN, size: o.size, blockSize: o.blockSize };
  const t0 = Date.now();
  const il = iscsiLabUp(labPrefix('it'));
  let tgt: SideRun;
  let ours: SideRun | null = null;
  try {
    tgt = await runSide('tgt', il, tgtStarter(), disk, o);
    if (o.ours !== 'none') ours = await runSide('xdpstack', il, stackStarter({ mode: o.ours, busyPoll: o.busyPoll }), disk, o);
  } finally {
    il.down();
  }
  const diffs: Record<string, SideBySide> = {};
  const tgtSound = !tgt.error && o.families.every((f) => tgt.families[f] && tgt.families[f]!.consistent);
  let code = tgtSound ? 0 : 1;
  if (ours) {
    if (ours.unavailable) code = Math.max(code, 3);
    else if (ours.error) code = 1;
    for (const f of o.families) {
      const a = tgt.families[f];
      const b = ours.families[f];
      if (!a || !b) { if (!ours.unavailable) code = 1; continue; }
      diffs[f] = sideBySide(a.tests, b.tests, { allowSkips: o.allowSkips });
      if (!diffs[f]!.ok) code = 1;
    }
  }
  if (code === 3 && !tgtSound) code = 1;
  const verdict = code === 0 ? (ours ? 'pass: xdpstack passes every test tgtd passes' : 'tgtd run recorded')
    : code === 3 ? 'xdpstack not available yet; tgtd results recorded' : 'FAIL';
  fs.mkdirSync(o.out, { recursive: true });
  const json = {
    date: new Date().toISOString(), host: { cpus: os.cpus().length, kernel: os.release(), node: process.version },
    tools: { initiator: 'libiscsi-bin 1.19 iscsi-test-cu --dataloss', reference: 'tgt 1.0.85' },
    options: o, disk, totalSeconds: (Date.now() - t0) / 1000, verdict, exitCode: code, tgt, xdpstack: ours, diff: diffs,
  };
  const jf = path.join(o.out, 'iscsi-compare.json');
  const mf = path.join(o.out, 'iscsi-compare.md');
  fs.writeFileSync(jf, JSON.stringify(json, null, 2) + '\n');
  fs.writeFileSync(mf, markdown(o, disk, tgt, ours, diffs, verdict));
  console.log(`\n${verdict}\nwritten: ${path.relative(process.cwd(), jf)}, ${path.relative(process.cwd(), mf)} (${json.totalSeconds.toFixed(0)} s)`);
  if (ours?.unavailable) console.log(`xdpstack: ${ours.unavailable}`);
  if (ours?.error) console.log(`xdpstack: ${ours.error}`);
  if (tgt.error) console.log(`tgt: ${tgt.error}`);
  return code;
}

main().then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 1; });
