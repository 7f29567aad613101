/**
 * Child process of the `reflector` benchmark: a frame reflector in TypeScript over AF_XDP. Each
 * burst received is swapped in place (destination ↔ source MAC) and put straight back on the TX
 * ring; the loop busy-polls (no event loop) for the given number of seconds.
 *
 *   node dist/bench/ts-reflector.js IFNAME SECONDS
 * Prints "ready" once the socket is open, then one JSON line: {"rx":N,"tx":N,"seconds":S,...}.
 */
import { openAfxdp } from '../driver/afxdp';
import { Burst } from '../driver/types';

function main(): void {
  const [ifname, secs] = process.argv.slice(2);
  if (!ifname || !secs) { console.error('usage: ts-reflector IFNAME SECONDS'); process.exit(2); }
  const d = openAfxdp({ ifname, frameCount: 4096, busyPoll: true, log: () => {} });
  d.addOwnedMac(d.mac, 0);
  const b = new Burst();
  const bytes = d.pool.bytes;
  const pool = d.pool;
  const t0 = performance.now();
  const end = t0 + Number(secs) * 1000;
  let now = 0;
  let rx = 0;
  let tx = 0;
  let iter = 0;
  console.log('ready');
  for (;;) {
    if ((++iter & 63) === 0) {
      const t = performance.now();
      if (t >= end) break;
      now = Math.floor((t - t0) * 1000);
    }
    d.service(now);
    const start = b.n;
    const got = d.rx(b, now);
    if (got) {
      rx += got;
      for (let i = start; i < b.n; i++) {
        const o = b.off[i]!;
        for (let k = 0; k < 6; k++) {
          const x = bytes[o + k]!;
          bytes[o + k] = bytes[o + 6 + k]!;
          bytes[o + 6 + k] = x;
        }
      }
    }
    if (b.n) {
      const k = d.tx(b, now); // the driver takes what fits on the TX ring; the rest is retried
      b.shift(k);
      tx += k;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  for (let i = 0; i < b.n; i++) pool.free(b.frame[i]!);
  b.n = 0;
  const st = d.stats();
  d.close();
  const c = pool.check();
  console.log(JSON.stringify({ rx, tx, seconds, xdp: st.xdp, drops: st.drops, poolOk: c.free === c.total }));
}

main();
