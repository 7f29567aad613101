/**
 * A Stack (createStack, as `xdpstack run` makes one) on one end of the in-memory link and a peer
 * host (Engine + Runtime) on the other, run under virtual time with the Node event loop turning
 * between steps. Its shape is test/lib/world.ts's World (host a: the stack, host b: the peer), so
 * the wire helpers of test/lib/inject.ts work on it; `stack` answers `show` and control requests.
 *
 * The stack has VS 'a' on VLAN 10 (10.1.1.1/24, fd00::1/64) and VS 'b' on VLAN 20 (10.2.2.1/24);
 * the peer has 10.1.1.2/24 and fd00::2/64 on VLAN 10 (vs[0]) and 10.2.2.2/24 on VLAN 20 (vs[1]).
 */
import { createMemoryLink, MemoryLinkOptions } from '../../driver/memory';
import { Engine } from '../../stack/engine';
import { Runtime } from '../../stack/runtime';
import { createStack, Stack } from '../../stack/stack';
import type { StackConfig } from '../../stack/control/config';
import type { TcpOptions } from '../../protocols/tcp/types';
import type { Host, World } from './world';

const SECRET = new Uint8Array(16).map((_, i) => i * 13 + 7);

export interface StackWorld extends World {
  stack: Stack;
}

export function stackConfig(extra: Partial<StackConfig> = {}): StackConfig {
  return {
    name: 'conn',
    engine: { dadTransmits: 0 },
    devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: [
      { name: 'a', links: [{ device: 'eth0', vlan: 10, addresses: ['10.1.1.1/24', 'fd00::1/64'] }] },
      { name: 'b', links: [{ device: 'eth0', vlan: 20, addresses: ['10.2.2.1/24'] }] },
    ],
    ...extra,
  } as StackConfig;
}

export function stackWorld(o: { config?: StackConfig; link?: MemoryLinkOptions; peerTcp?: Partial<TcpOptions> } = {}): StackWorld {
  const link = createMemoryLink({ frameCount: 8192, wireFrames: 8192, ...o.link });
  let now = 0;
  let dirty = false;
  const stack = createStack(o.config ?? stackConfig(), { drivers: { eth0: link.a }, secret: SECRET, log: () => undefined });
  stack.engine.clock = () => now;
  stack.runtime.engineKick = () => { dirty = true; };
  const svs = [...stack.engine.vsByName.values()];
  const a: Host = {
    engine: stack.engine, runtime: stack.runtime, vs: svs,
    ctx: (i = 0) => ({ engine: stack.engine, vs: svs[i]!, now: () => now }),
  };
  const engine = new Engine({ secret: SECRET, tcp: o.peerTcp, ndp: { dadTransmits: 0 }, onOutput: () => { dirty = true; } });
  engine.addDevice({ name: 'eth0', pool: link.b.pool, mac: link.b.mac, mtu: link.b.mtu });
  const runtime = new Runtime(engine, [link.b], { clock: () => now });
  const p10 = engine.createVs('p10');
  engine.addLink(p10, { device: 'eth0', vlan: 10 });
  engine.addAddress(p10, 'eth0.10', '10.1.1.2/24');
  engine.addAddress(p10, 'eth0.10', 'fd00::2/64');
  const p20 = engine.createVs('p20');
  engine.addLink(p20, { device: 'eth0', vlan: 20 });
  engine.addAddress(p20, 'eth0.20', '10.2.2.2/24');
  const b: Host = { engine, runtime, vs: [p10, p20], ctx: (i = 0) => ({ engine, vs: [p10, p20][i]!, now: () => now }) };
  const turn = () => new Promise<void>((r) => setImmediate(r));
  return {
    stack, a, b, link,
    now: () => now,
    async run(done, maxUs = 60_000_000) {
      const end = now + maxUs;
      for (let i = 0; i < 1_000_000; i++) {
        dirty = false;
        const na = a.runtime.step(now);
        const nb = b.runtime.step(now);
        await turn();
        if (done()) return true;
        if (dirty) continue;
        const next = Math.min(na, nb, a.runtime.step(now), b.runtime.step(now), link.nextDeadline());
        if (dirty) continue;
        if (next === Infinity || next > end) {
          if (end > now) now = end;
          return done();
        }
        now = next > now ? next : Math.min(Math.floor(now / 1000) * 1000 + 1000, end + 1);
      }
      return done();
    },
  };
}
