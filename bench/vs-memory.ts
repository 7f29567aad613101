/** vs-memory: heap per empty VS and VS create/destroy time, in child processes run with --expose-gc. */
import * as path from 'node:path';
import { DIST_BENCH, lastJson, median, run, table } from './lib';

interface Child { n: number; bytesPerVs: number; createUs: number; createDestroyUs: number; destroyUs: number; heapAfterDestroyDelta: number; vsLeft: number }

export async function benchVsMemory(o: { rounds: number; n: number; churn: number }): Promise<Record<string, unknown>> {
  const rs: Child[] = [];
  for (let r = 0; r < o.rounds; r++) {
    const p = run(process.execPath, ['--expose-gc', path.join(DIST_BENCH, 'vs-memory-child.js'), String(o.n), String(o.churn)]);
    const code = await p.done;
    if (code !== 0) throw new Error(`vs-memory child failed (${code}): ${p.stderr}`);
    rs.push(lastJson<Child>(p));
  }
  const m = (k: keyof Child) => median(rs.map((x) => x[k]));
  const list = (k: keyof Child, d: number) => rs.map((x) => x[k].toFixed(d)).join(' ');
  table(`vs-memory: ${o.n} empty VSes (one VLAN link + one address each), median of ${o.rounds} processes`,
    ['measure', 'median', 'rounds', 'target'],
    [['heap per VS (KiB)', m('bytesPerVs') / 1024, list('bytesPerVs', 0), '<= 8'],
      ['create VS+link+address (µs)', m('createUs'), list('createUs', 1), ''],
      ['create + destroy (µs)', m('createDestroyUs'), list('createDestroyUs', 1), '<= 50'],
      ['destroy (µs, with N VSes)', m('destroyUs'), list('destroyUs', 1), ''],
      ['heap left after destroying all (KiB)', m('heapAfterDestroyDelta') / 1024, rs.map((x) => (x.heapAfterDestroyDelta / 1024).toFixed(0)).join(' '), '']]);
  return {
    n: o.n, kibPerVs: m('bytesPerVs') / 1024, createUs: m('createUs'), createDestroyUs: m('createDestroyUs'),
    destroyUs: m('destroyUs'), heapLeftKib: m('heapAfterDestroyDelta') / 1024, targets: { kibPerVs: 8, createDestroyUs: 50 }, rounds: rs,
  };
}
