/**
 * A link-local address is unique only on its link (RFC 4291 2.5.6, RFC 4007 6): two VLAN links of
 * one VS share their link-local address (they share the device's MAC), so two peers on those links
 * may connect with the very same 4-tuple. Each connection must stay its own, found by its link.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import { linkLocalFromMac } from '../protocols/ip/addr';

test('the same link-local 4-tuple on two links of one VS: two connections, each answered on its own link', async () => {
  const w = twoHosts({ ipv6: true, vlans: [10, 20], engine: { ndp: { dadTransmits: 0 } } });
  // Host a: one VS with both VLAN links (the second VS goes); host b keeps a VS per VLAN.
  const ea = w.a.engine;
  ea.destroyVs('vs20');
  const vs = w.a.vs[0]!;
  ea.addLink(vs, { device: 'eth0', vlan: 20 });
  ea.addAddress(vs, 'eth0.20', 'fd00:20::1/64');
  const ll = linkLocalFromMac(w.link.a.mac).toString();
  const seen: string[] = [];
  // Both connections stay open together: the answers go out once both requests are in.
  const open: [Socket, string][] = [];
  createServer({ engine: ea, vs, now: w.now }, (s: Socket) => {
    s.on('data', (d: Buffer) => {
      seen.push(String(d));
      open.push([s, String(d)]);
      if (open.length === 2) for (const [x, m] of open) x.write(`re:${m}`);
    });
    s.on('error', () => {});
  }).listen(80);
  const got: string[] = ['', ''];
  const errs: string[] = [];
  for (const [i, vlan] of [[0, 10], [1, 20]] as const) {
    const c = connect({ engine: w.b.engine, vs: w.b.vs[i]!, now: w.now }, { port: 80, host: `${ll}%eth0.${vlan}`, localPort: 40000 },
      () => c.write(`from-${vlan}`));
    c.on('data', (d: Buffer) => { got[i] += String(d); });
    c.on('error', (e: Error) => errs.push(`${vlan}: ${e.message}`));
  }
  const ok = await w.run(() => got[0] !== '' && got[1] !== '', 10_000_000);
  assert.equal(errs, []);
  assert.ok(ok, `both answered: ${JSON.stringify(got)} seen ${JSON.stringify(seen)}`);
  assert.equal(got, ['re:from-10', 're:from-20']);
  assert.equal(seen.sort(), ['from-10', 'from-20']);
});

test.run();
