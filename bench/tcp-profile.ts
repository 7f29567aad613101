/**
 * Summarises a V8 CPU profile (`node --cpu-prof`) by self time per function:
 *
 *   node dist/bench/tcp-profile.js FILE.cpuprofile [TOP]
 * Prints "% self  file:function" for the TOP (default 25) functions, then the same grouped by file.
 * Used to find the top costs of the xdpstack side of the TCP benchmarks (BENCH_TCP_PROFILE=dir).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[] }

export function summarise(file: string, top = 25): string[] {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const perFile = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const n = byId.get(id)!;
    const url = n.callFrame.url ? path.relative(process.cwd(), n.callFrame.url.replace(/^file:\/\//, '')) : '';
    const key = `${url || '(native)'}:${n.callFrame.functionName || '(anonymous)'}${url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    const f = url || `(${n.callFrame.functionName || 'native'})`;
    perFile.set(f, (perFile.get(f) ?? 0) + dt);
    total += dt;
  });
  const fmt = (m: Map<string, number>, k: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k)
    .map(([name, t]) => `${((100 * t) / total).toFixed(1).padStart(5)} %  ${name}`);
  return [`total ${(total / 1e6).toFixed(2)} s of samples`, '-- by function (self)', ...fmt(self, top), '-- by file (self)', ...fmt(perFile, 15)];
}

if (require.main === module) {
  const [file, top] = process.argv.slice(2);
  if (!file) { console.error('usage: tcp-profile FILE.cpuprofile [TOP]'); process.exit(2); }
  console.log(summarise(file, Number(top ?? 25)).join('\n'));
}
