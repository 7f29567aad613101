/**
 * Regression tests for what the fuzzer found (test/fuzz/): each input is the minimal one it
 * reported, as bytes, fed to the component the way the fuzz target fed it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Burst, parseMac } from '../driver/types';
import { FramePool } from '../umem/pool';
import { Engine } from '../stack/engine';
import { push } from './lib/frames';
import { validateConfig, ConfigError } from '../stack/control/config';

const DEV_MAC = parseMac('02:00:00:00:00:01');

function engine() {
  const pool = new FramePool({ frameSize: 2048, frameCount: 64 });
  const e = new Engine();
  e.addDevice({ name: 'eth0', pool, mac: DEV_MAC, mtu: 1500 });
  const vs = e.createVs('a');
  const link = e.addLink(vs, { device: 'eth0', vlan: 10, mac: parseMac('02:00:00:00:01:01') });
  e.addAddress(vs, 'eth0.10', '10.1.1.1/24');
  const out = e.devices[0]!.out;
  for (let i = 0; i < out.n; i++) pool.free(out.frame[i]!);
  out.n = 0;
  return { pool, e, vs, link, burst: new Burst() };
}

const hexBytes = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));

// Every frame is counted: an ARP reply to our address whose sender is 0.0.0.0 (no sender) or our
// own address (a conflict, RFC 5227 2.4) teaches nothing and was freed without a drop counter.
test('ARP replies from 0.0.0.0 or from our own address are counted drops', () => {
  const s = engine();
  const frames = [
    // reply, VLAN 10, sender 02:00:00:00:0a:02 / 0.0.0.0, target 02:00:00:00:01:01 / 10.1.1.1 (fuzz input)
    '020000000101020000000a028100000a08060001080006040002020000000a02000000000200000001010a0101010000000000000000000000000000',
    // the same reply claiming 10.1.1.1 itself
    '020000000101020000000a028100000a08060001080006040002020000000a020a010101020000000101' + '0a0101010000000000000000000000000000',
  ];
  for (const h of frames) push(s.pool, s.burst, hexBytes(h));
  s.e.input(0, s.burst, 1000);
  const drops = s.vs.counters.toJSON().drops.reasons;
  assert.is(drops['arp-bad-sender'], 2, JSON.stringify(drops));
  assert.is(s.link.neigh.size, 0);
  assert.is(s.pool.check().free, 64);
});

// The config validator walked arrays with forEach, which skips holes: a sparse array (possible through
// the library API, createStack(config)) was accepted, and the stack then met `undefined` where it
// expected an object. Found as "accepted config refused after a JSON round trip" (JSON turns the
// hole into null). Fuzz input: virtualServers[0].rules[0] deleted.
test('config arrays with holes are refused with a ConfigError naming the hole', () => {
  const cfg = {
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [{
      name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }],
      rules: [{ from: '10.1.2.0/24', table: 100, priority: 100 }, { from: '10.1.3.0/24', table: 100, priority: 200 }],
    }],
  };
  delete (cfg.virtualServers[0]!.rules as unknown[])[0];
  let err: unknown = null;
  try { validateConfig(cfg, 'sparse.json'); } catch (e) { err = e; }
  assert.ok(err instanceof ConfigError, `accepted: ${String(err)}`);
  assert.match((err as Error).message, /sparse\.json: virtualServers\[0\]\.rules\[0\]: /);
  // A hole in another array is refused the same way.
  const cfg2 = { devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }], virtualServers: [] as unknown[] };
  cfg2.virtualServers.length = 1;
  assert.throws(() => validateConfig(cfg2, 's2.json'), (e: Error) => e instanceof ConfigError && /virtualServers\[0\]/.test(e.message));
});

test.run();
