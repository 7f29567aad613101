/**
 * Two hosts (Engine + Runtime each) joined by the in-memory link and run in REAL time: each runtime
 * sleeps until its driver signals readiness (as AF_XDP's fd does) or its next deadline, exactly as
 * a deployed stack. The memory endpoints get an `onReadable` that fires when the other side
 * transmitted, so no runtime polls. For tests of what wakes a sleeping runtime.
 */
import { createMemoryLink } from '../../driver/memory';
import type { Burst, Driver } from '../../driver/types';
import { Engine } from '../../stack/engine';
import { monotonicUs, Runtime } from '../../stack/runtime';
import type { VirtualServer } from '../../stack/vs';
import type { NetContext } from '../../stack/api/net';

export interface RtHost { engine: Engine; runtime: Runtime; vs: VirtualServer; ctx: NetContext }

export function realTimeHosts(): { a: RtHost; b: RtHost; stop(): void } {
  const link = createMemoryLink({ frameCount: 8192, wireFrames: 8192 });
  const wake: (() => void)[] = [];
  const mk = (ep: typeof link.a, idx: number, addr: string): RtHost => {
    let runtime: Runtime | null = null;
    const engine = new Engine({ onOutput: () => runtime?.engineKick() });
    engine.addDevice({ name: 'eth0', pool: ep.pool, mac: ep.mac, mtu: ep.mtu });
    (ep as Driver).onReadable = (cb) => { wake[idx] = cb; return true; };
    const tx = ep.tx.bind(ep);
    ep.tx = (b: Burst, now: number) => {
      const k = tx(b, now);
      const other = wake[1 - idx];
      if (k > 0 && other) setImmediate(other);
      return k;
    };
    runtime = new Runtime(engine, [ep]);
    const vs = engine.createVs('vs');
    engine.addLink(vs, { device: 'eth0', vlan: 10 });
    engine.addAddress(vs, 'eth0.10', addr);
    return { engine, runtime, vs, ctx: { engine, vs, now: monotonicUs } };
  };
  const a = mk(link.a, 0, '10.1.1.1/24');
  const b = mk(link.b, 1, '10.1.1.2/24');
  a.engine.now = b.engine.now = monotonicUs();
  a.runtime.start();
  b.runtime.start();
  return { a, b, stop: () => { a.runtime.stop(); b.runtime.stop(); } };
}

/** Waits (real time, bounded) until `cond()` holds; returns whether it did. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  return cond();
}
