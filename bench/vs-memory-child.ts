/**
 * Child of the `vs-memory` benchmark (run with --expose-gc): heap per empty VS (one link + one
 * address), and the time to create and destroy one.
 *   node --expose-gc dist/bench/vs-memory-child.js N CHURN
 * Prints one JSON line.
 */
import { addVs, makeEngine } from './vsbuild';

const gc = (globalThis as { gc?: () => void }).gc;

function heap(): number {
  for (let i = 0; i < 3; i++) gc!();
  return process.memoryUsage().heapUsed;
}

function main(): void {
  if (!gc) { console.error('run with --expose-gc'); process.exit(2); }
  const n = Number(process.argv[2] ?? 4096);
  const churn = Number(process.argv[3] ?? 20000);
  const { e } = makeEngine(Math.ceil((n + 1) / 2048), 256);
  // Warm the code paths (and the maps' first growth) outside the measurement.
  for (let i = 0; i < 64; i++) addVs(e, i);
  for (let i = 0; i < 64; i++) e.destroyVs(`vs${i}`);
  const h0 = heap();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) addVs(e, i);
  const t1 = process.hrtime.bigint();
  const h1 = heap();
  // Create + destroy churn on a free slot (the index after the last one).
  const slot = n;
  const t2 = process.hrtime.bigint();
  for (let k = 0; k < churn; k++) {
    addVs(e, slot);
    e.destroyVs(`vs${slot}`);
  }
  const t3 = process.hrtime.bigint();
  const t4 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) e.destroyVs(`vs${i}`);
  const t5 = process.hrtime.bigint();
  const h2 = heap();
  console.log(JSON.stringify({
    n,
    bytesPerVs: (h1 - h0) / n,
    createUs: Number(t1 - t0) / 1e3 / n,
    createDestroyUs: Number(t3 - t2) / 1e3 / churn,
    destroyUs: Number(t5 - t4) / 1e3 / n,
    heapAfterDestroyDelta: h2 - h0,
    vsLeft: e.vsByName.size,
  }));
}

main();
