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
  let now = 0;
  let dirty = false;
  const stack = createStack({
    name: 'w', control: false, engine: { dadTransmits: 0 }, ...cfg,
    devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: cfg.virtualServers ?? [{ name: 'a', links: [{ device: 'eth0', addresses: ['10.1.1.1/24'] }], ...(vsLimits ? { limits: vsLimits } : {}) }],
  } as StackConfig, { ...opts, drivers: { eth0: link.a } });
  const peer = new Engine({ secret: SECRET, onOutput: () => { dirty = true; } });
  peer.addDevice({ name: 'eth0', pool: link.b.pool, mac: link.b.mac, mtu: link.b.mtu });
  const pv = peer.createVs('p');
  peer.addLink(pv, { device: 'eth0' });
  peer.addAddress(pv, 'eth0', '10.1.1.2/24');
  const peerRt = new Runtime(peer, [link.b], { clock: () => now });
  const turn = () => new Promise<void>((r) => setImmediate(r));
  return {
    stack, link, peer,
    now: () => now,
    async run(done, maxUs = 60_000_000) {
      const end = now + maxUs;
      for (let i = 0; i < 1_000_000; i++) {
        dirty = false;
        const na = stack.runtime.step(now);
        const nb = peerRt.step(now);
        await turn();
        if (done()) return true;
        if (dirty) continue;
        const next = Math.min(na, nb, stack.runtime.step(now), peerRt.step(now), link.nextDeadline());
        if (dirty) continue;
        if (next === Infinity || next > end) { if (end > now) now = end; stack.runtime.step(now); return done(); }
        now = next > now ? next : Math.min(Math.floor(now / 1000) * 1000 + 1000, end + 1);
      }
      return done();
    },
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
      assert.is(link.b.tx(burst, now), frames.length);
    },
    peerCtx: () => ({ engine: peer, vs: peer.vs('p'), now: () => now }),
  };
}
