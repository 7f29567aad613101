/** Regression: a datagram for 127.0.0.1 (dgram's default address) must never leave on the wire. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts } from './lib/world';

test('send() without an address does not put a 127.0.0.1 datagram on the link', async () => {
  const w = twoHosts();
  w.a.engine.addRoute(w.a.vs[0]!, { dst: 'default', via: '10.1.1.2' });
  const seen: string[] = [];
  const orig = w.link.a.tx.bind(w.link.a);
  w.link.a.tx = (b, now) => {
    const p = w.link.a.pool.bytes;
    for (let i = 0; i < b.n; i++) {
      const o = b.off[i]! + 18; // VLAN-tagged IPv4
      if (p[o - 2] === 0x08 && p[o - 1] === 0x00) seen.push(`${p[o + 16]}.${p[o + 17]}.${p[o + 18]}.${p[o + 19]}`);
    }
    return orig(b, now);
  };
  const s = w.a.engine.createUdpSocket(w.a.vs[0]!);
  s.on('error', () => {});
  s.send('x', 9999, () => {});
  await w.run(() => false, 3_000_000);
  assert.not.ok(seen.includes('127.0.0.1'), `IPv4 destinations sent: ${seen}`);
});

test.run();
