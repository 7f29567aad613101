/**
 * Two hosts (each an Engine + Runtime) joined by the in-memory link, run under virtual time with
 * the Node event loop turning between steps (so stream callbacks and nextTicks run as in real life).
 */
import { createMemoryLink, MemoryLinkOptions } from '../../driver/memory';
import { Engine, EngineOptions } from '../../stack/engine';
import { Runtime } from '../../stack/runtime';
import type { VirtualServer } from '../../stack/vs';
import type { TcpOptions } from '../../protocols/tcp/types';
import { connect, createServer, NetContext, Socket } from '../../stack/api/net';
import { createHash } from 'node:crypto';

export const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Reproducible pseudo-random bytes (an LCG seeded by `seed`). */
export function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; b[i] = x >>> 24; }
  return b;
}

/**
 * Both directions at once: the server (host a) sends `down` and ends, the client (host b) sends
 * `up` and ends. Returns what each side received and whether both saw the end within `maxUs`.
 */
export async function exchange(w: World, port: number, up: Buffer, down: Buffer, maxUs: number):
  Promise<{ ok: boolean; atServer: Buffer; atClient: Buffer }> {
  const atServer: Buffer[] = [];
  const atClient: Buffer[] = [];
  let serverDone = false;
  let clientDone = false;
  createServer(w.a.ctx(), (s: Socket) => {
    s.on('data', (d: Buffer) => atServer.push(d));
    s.on('end', () => { serverDone = true; });
    s.end(down);
  }).listen(port);
  const c = connect(w.b.ctx(), port, '10.1.1.1', () => c.end(up));
  c.on('data', (d: Buffer) => atClient.push(d));
  c.on('end', () => { clientDone = true; });
  const ok = await w.run(() => serverDone && clientDone, maxUs);
  return { ok, atServer: Buffer.concat(atServer), atClient: Buffer.concat(atClient) };
}

export interface Host {
  engine: Engine;
  runtime: Runtime;
  vs: VirtualServer[];
  ctx(i?: number): NetContext;
}

export interface World {
  a: Host;
  b: Host;
  now(): number;
  /**
   * Runs until `done()` is true or `maxUs` of virtual time have passed (time then stands at the end
   * of that span, also when nothing was due); returns whether done() held.
   */
  run(done: () => boolean, maxUs?: number): Promise<boolean>;
  link: ReturnType<typeof createMemoryLink>;
}

const SECRET = new Uint8Array(16).map((_, i) => i * 17 + 3);

/**
 * Two hosts on the memory link, a VS per VLAN each: 10.1.1.1/24 and 10.1.1.2/24, and with `ipv6`
 * also fd00::1/64 and fd00::2/64 (tentative until DAD passes: `ndp.dadTransmits` 0 skips it).
 */
export function twoHosts(o: { link?: MemoryLinkOptions; vlans?: number[]; tcp?: Partial<TcpOptions>; maxTimeWait?: number;
  ipv6?: boolean; engine?: Partial<EngineOptions> } = {}): World {
  const link = createMemoryLink({ frameCount: 8192, wireFrames: 8192, ...o.link });
  let now = 0;
  let dirty = false;
  const vlans = o.vlans ?? [10];
  const mk = (ep: typeof link.a, addr: string): Host => {
    const engine = new Engine({ secret: SECRET, tcp: o.tcp, tcpMaxTimeWait: o.maxTimeWait, ...o.engine, onOutput: () => { dirty = true; } });
    engine.addDevice({ name: 'eth0', pool: ep.pool, mac: ep.mac, mtu: ep.mtu });
    const runtime = new Runtime(engine, [ep], { clock: () => now });
    const vs = vlans.map((vlan) => {
      const v = engine.createVs(`vs${vlan}`);
      engine.addLink(v, { device: 'eth0', vlan });
      engine.addAddress(v, `eth0.${vlan}`, addr);
      if (o.ipv6) engine.addAddress(v, `eth0.${vlan}`, addr === '10.1.1.1/24' ? 'fd00::1/64' : 'fd00::2/64');
      return v;
    });
    return { engine, runtime, vs, ctx: (i = 0) => ({ engine, vs: vs[i]!, now: () => now }) };
  };
  const a = mk(link.a, '10.1.1.1/24');
  const b = mk(link.b, '10.1.1.2/24');
  const turn = () => new Promise<void>((r) => setImmediate(r));
  return {
    a, b, link,
    now: () => now,
    async run(done, maxUs = 600_000_000) {
      const end = now + maxUs;
      for (let i = 0; ; i++) {
        dirty = false;
        const na = a.runtime.step(now);
        const nb = b.runtime.step(now);
        await turn();
        if (done()) return true;
        if (dirty) continue;
        const next = Math.min(na, nb, a.runtime.step(now), b.runtime.step(now), link.nextDeadline());
        if (dirty) continue;
        if (next === Infinity || next > end) {
          if (end > now) now = end; // the time asked for passes even when nothing is due
          return done();
        }
        // Something reported due did not run (the timer wheel fires per 1 ms tick, and a TX burst
        // that was full retries): move to the next tick boundary rather than crawling by 1 µs.
        now = next > now ? next : Math.min(Math.floor(now / 1000) * 1000 + 1000, end + 1);
      }
    },
  };
}
