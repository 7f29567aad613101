/**
 * A Stack (createStack, one memory device 'eth0', VS 'a' at 10.1.1.1/24) and a peer engine at
 * 10.1.1.2/24 on the other end of the memory link, both stepped under virtual time; raw frames can
 * be put on the wire from the peer's side.
 */
import * as assert from 'uvu/assert';
import { createMemoryLink, MemoryLink } from '../../driver/memory';
import { Burst } from '../../driver/types';
import type { StackConfig } from '../../stack/control/config';
import { Engine } from '../../stack/engine';
import { Runtime } from '../../stack/runtime';
import { VirtualClock } from './virtual-loop';
import { createStack, Stack, StackOptions } from '../../stack/stack';

const SECRET = new Uint8Array(16).map((_, i) => i * 7 + 1);

export interface PeerWorld {
  stack: Stack;
  link: MemoryLink;
  peer: Engine;
  now(): number;
  /** Steps both sides until done() or `maxUs` of virtual time passed (time then stands at the end). */
  run(done: () => boolean, maxUs?: number): Promise<boolean>;
  /** Puts raw frames on the wire from the peer's side. */
  inject(frames: Uint8Array[]): void;
  /** The peer's context for the net/dgram-shaped API. */
  peerCtx(): { engine: Engine; vs: ReturnType<Engine['vs']>; now: () => number };
}

export function peerWorld(cfg: Partial<StackConfig> = {}, opts: StackOptions = {}, vsLimits?: Record<string, number>): PeerWorld {
  const link = createMemoryLink({ frameCount: 4096, wireFrames: 4096 });
  const clock = new VirtualClock();
  const stack = createStack({
    name: 'w', control: false, engine: { dadTransmits: 0 }, ...cfg,
    devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: cfg.virtualServers ?? [{ name: 'a', links: [{ device: 'eth0', addresses: ['10.1.1.1/24'] }], ...(vsLimits ? { limits: vsLimits } : {}) }],
  } as StackConfig, { ...opts, drivers: { eth0: link.a } });
  const peer = new Engine({ secret: SECRET, onOutput: clock.kick });
  peer.addDevice({ name: 'eth0', pool: link.b.pool, mac: link.b.mac, mtu: link.b.mtu });
  const pv = peer.createVs('p');
  peer.addLink(pv, { device: 'eth0' });
  peer.addAddress(pv, 'eth0', '10.1.1.2/24');
  const peerRt = new Runtime(peer, [link.b], { clock: clock.read });
  return {
    stack, link, peer,
    now: clock.read,
    run: (done, maxUs) => clock.run([stack.runtime, peerRt], link, done, maxUs, true),
    inject(frames) {
      const pool = link.b.pool;
      const burst = new Burst(frames.length);
      for (const f of frames) {
        const x = pool.alloc();
        assert.ok(x >= 0, 'a frame for the injected bytes');
        const off = pool.dataStart(x);
        pool.bytes.set(f, off);
        burst.push(x, off, f.length);
      }
      assert.is(link.b.tx(burst, clock.now), frames.length);
    },
    peerCtx: () => ({ engine: peer, vs: peer.vs('p'), now: clock.read }),
  };
}
