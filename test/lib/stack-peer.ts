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
import { VirtualClock } from './virtual-loop';
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
  const clock = new VirtualClock();
  const stack = createStack(o.config ?? stackConfig(), { drivers: { eth0: link.a }, secret: SECRET, log: () => undefined });
  stack.engine.clock = clock.read;
  stack.runtime.engineKick = clock.kick;
  const svs = [...stack.engine.vsByName.values()];
  const a: Host = {
    engine: stack.engine, runtime: stack.runtime, vs: svs,
    ctx: (i = 0) => ({ engine: stack.engine, vs: svs[i]!, now: clock.read }),
  };
  const engine = new Engine({ secret: SECRET, tcp: o.peerTcp, ndp: { dadTransmits: 0 }, onOutput: clock.kick });
  engine.addDevice({ name: 'eth0', pool: link.b.pool, mac: link.b.mac, mtu: link.b.mtu });
  const runtime = new Runtime(engine, [link.b], { clock: clock.read });
  const p10 = engine.createVs('p10');
  engine.addLink(p10, { device: 'eth0', vlan: 10 });
  engine.addAddress(p10, 'eth0.10', '10.1.1.2/24');
  engine.addAddress(p10, 'eth0.10', 'fd00::2/64');
  const p20 = engine.createVs('p20');
  engine.addLink(p20, { device: 'eth0', vlan: 20 });
  engine.addAddress(p20, 'eth0.20', '10.2.2.2/24');
  const b: Host = { engine, runtime, vs: [p10, p20], ctx: (i = 0) => ({ engine, vs: [p10, p20][i]!, now: clock.read }) };
  return {
    stack, a, b, link,
    now: clock.read,
    run: (done, maxUs) => clock.run([a.runtime, b.runtime], link, done, maxUs),
  };
}
