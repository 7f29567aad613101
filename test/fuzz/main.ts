/**
 * The long fuzz run (`npm run fuzz`): every target for FUZZ_RUNS executions (default 10 million),
 * printing executions per second and totals per target, and every finding with its reproduction.
 *
 *   FUZZ_RUNS=10000000   executions per target
 *   FUZZ_SEED=n          base seed (default: random, printed)
 *   FUZZ_TARGETS=a,b     only these targets (names as printed)
 *   FUZZ_JOBS=n          targets run in n processes at once (default 1)
 *   FUZZ_OUT=file.json   where the summary goes (default fuzz-results.json in the working directory)
 *   FUZZ_STRUCTURED=x    share of fast-check (structured) executions, 0..1 (default: per target)
 */
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import { runTarget, RunStats, Target } from './lib';
import { allTargets } from './targets';

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000_000);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : (Math.random() * 0x7fffffff) | 0;
const JOBS = Math.max(1, Number(process.env.FUZZ_JOBS ?? 1));
const OUT = process.env.FUZZ_OUT ?? 'fuzz-results.json';

function log(s: string): void {
  process.stdout.write(`[fuzz ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

async function runOne(t: Target<unknown>, seed: number): Promise<RunStats> {
  log(`${t.name}: start, ${RUNS} executions, seed ${seed}`);
  const st = await runTarget(t, {
    runs: RUNS, seed,
    progressEvery: Math.max(100_000, Math.round(RUNS / 10)),
    progress: (done, total) => log(`${t.name}: ${done}/${total}`),
  });
  t.close?.();
  log(`${t.name}: ${st.execs} executions (${st.structured} structured, ${st.mutations} mutated) in ${(st.ms / 1000).toFixed(1)} s, ` +
    `${st.perSec}/s, ${st.findings.length} finding(s)`);
  if (st.summary) log(`${t.name}: ${st.summary}`);
  for (const f of st.findings) {
    log(`  FINDING ${f.known ? `(known: ${f.known}) ` : ''}${f.kind} x${f.count}: ${f.message.split('\n')[0]}\n    repro: ${f.repro}\n    input: ${f.input.slice(0, 600)}`);
  }
  return st;
}

async function child(name: string, seed: number): Promise<void> {
  const t = allTargets().find((x) => x.name === name);
  if (!t) throw new Error(`no target ${name}`);
  const st = await runOne(t, seed);
  process.send!(st);
}

async function main(): Promise<void> {
  if (process.env.FUZZ_CHILD) return child(process.env.FUZZ_CHILD, Number(process.env.FUZZ_CHILD_SEED));
  const want = process.env.FUZZ_TARGETS?.split(',').map((s) => s.trim()).filter(Boolean);
  const names = allTargets().map((t) => t.name).filter((n) => !want || want.includes(n));
  log(`targets: ${names.join(', ')}; ${RUNS} executions each; seed ${SEED}; ${JOBS} job(s)`);
  const t0 = Date.now();
  const results: RunStats[] = [];
  const queue = names.map((n, i) => ({ name: n, seed: (SEED + i * 1_000_003) | 0 }));
  // The slowest target first, so parallel jobs end together.
  queue.sort((a, b) => Number(b.name === 'engine') - Number(a.name === 'engine'));
  const worker = async () => {
    for (let q = queue.shift(); q; q = queue.shift()) {
      const { name, seed } = q;
      const st = await new Promise<RunStats>((resolve, reject) => {
        const c = fork(__filename, [], { env: { ...process.env, FUZZ_CHILD: name, FUZZ_CHILD_SEED: String(seed) }, execArgv: ['--enable-source-maps', '--max-old-space-size=2048'] });
        let got: RunStats | null = null;
        c.on('message', (m) => { got = m as RunStats; });
        c.on('exit', (code) => got ? resolve(got) : reject(new Error(`target ${name} exited with ${code} without a result`)));
      }).catch((e: Error) => {
        log(`${name}: CRASH of the fuzz process: ${e.message}`);
        return { target: name, structured: 0, mutations: 0, execs: 0, ms: 0, perSec: 0, findings: [{ target: name, kind: 'periodic' as const, message: e.message, known: '', repro: `seed ${seed}`, input: '', count: 1 }] };
      });
      results.push(st);
    }
  };
  await Promise.all(Array.from({ length: Math.min(JOBS, names.length) }, worker));
  const secs = (Date.now() - t0) / 1000;
  results.sort((a, b) => names.indexOf(a.target) - names.indexOf(b.target));
  log(`summary (${secs.toFixed(0)} s wall, seed ${SEED}):`);
  log(`  ${'target'.padEnd(18)} ${'executions'.padStart(12)} ${'seconds'.padStart(8)} ${'exec/s'.padStart(8)}  findings`);
  let total = 0;
  for (const r of results) {
    total += r.execs;
    log(`  ${r.target.padEnd(18)} ${String(r.execs).padStart(12)} ${(r.ms / 1000).toFixed(0).padStart(8)} ${String(r.perSec).padStart(8)}  ` +
      `${r.findings.length ? r.findings.map((f) => `${f.known ? 'known' : 'NEW'}:${f.message.split('\n')[0]!.slice(0, 80)} x${f.count}`).join('; ') : 'none'}`);
  }
  log(`  ${'total'.padEnd(18)} ${String(total).padStart(12)}`);
  fs.writeFileSync(OUT, JSON.stringify({ seed: SEED, runs: RUNS, wallSeconds: secs, results }, null, 2));
  const unknown = results.flatMap((r) => r.findings).filter((f) => !f.known);
  process.exitCode = unknown.length ? 1 : 0;
}

main().catch((e) => { console.error(e); process.exit(2); });
