/** Regression: a second address in the same subnet on one link (a secondary address). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Engine } from '../stack/engine';
import { FramePool } from '../umem/pool';

test('addAddress of a second address in the same subnet works, or fails without leaving it half-added', () => {
  const e = new Engine({ secret: new Uint8Array(16) });
  const pool = new FramePool({ frameSize: 2048, frameCount: 64 });
  e.addDevice({ name: 'eth0', pool, mac: Uint8Array.of(2, 0, 0, 0, 0, 1), mtu: 1500 });
  const vs = e.createVs('a');
  e.addLink(vs, { device: 'eth0', vlan: 10 });
  e.addAddress(vs, 'eth0.10', '10.1.1.1/24');
  let err: Error | null = null;
  try { e.addAddress(vs, 'eth0.10', '10.1.1.5/24'); } catch (x) { err = x as Error; }
  const link = vs.links[0]!;
  const has = link.addrs.some((a) => a.addr === 0x0a010105);
  // Either it succeeded (Linux accepts secondary addresses) or it threw and left no trace.
  assert.ok(err === null || !has, `threw '${err?.message}' but the address stayed on the link (addrs: ${link.addrs.length})`);
  assert.ok(err === null, `secondary address rejected: ${err?.message}`);
});

test.run();
