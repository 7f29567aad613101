/**
 * Regression: each shard kept a single trace, so a second 'trace' client stopped the first one's
 * capture in every shard, and stopping the first then stopped the second's; a trace a shard
 * refused (an unknown VS) left a capture file open in every shard and its parts on disk.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ShardedStack } from '../stack/shard/threads';
import type { StackConfig } from '../stack/control/config';
import { readCapture } from '../driver/pcap';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-shard-ctl-'));

function config(): StackConfig {
  return {
    name: 'ctl',
    engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }] }],
  } as StackConfig;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('two traces at once each get every shard\'s frames until they stop; a refused trace leaves nothing behind', async () => {
  // Each shard sends a broadcast datagram every 5 ms: frames for the traces.
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, `module.exports = (stack) => {
    const s = stack.vs('a').createSocket('udp4');
    s.bind(0);
    s.setBroadcast(true); // a broadcast destination needs SO_BROADCAST, as on Linux
    const t = setInterval(() => s.send(Buffer.from('tick'), 9, '10.1.1.255'), 5);
    t.unref();
  };`);
  const s = await ShardedStack.start(config(), { shards: 2, app, log: () => {} });
  try {
    let err = '';
    try { await s.startTrace({ out: path.join(dir, 'bad.pcap'), vs: 'nope' }); } catch (e) { err = (e as Error).message; }
    assert.match(err, /no virtual server 'nope'/);
    assert.equal(fs.readdirSync(dir).filter((f) => f.startsWith('bad')), [], 'no capture file left');
    const outA = path.join(dir, 'a.pcap');
    const outB = path.join(dir, 'b.pcap');
    const a = await s.startTrace({ out: outA });
    await sleep(300);
    const b = await s.startTrace({ out: outB });
    await sleep(300);
    const doneA = new Promise<number>((r) => a.onDone(r));
    a.stop();
    const framesA = await doneA;
    const stoppedA = Date.now() * 1000;
    await sleep(400);
    const doneB = new Promise<number>((r) => b.onDone(r));
    b.stop();
    const framesB = await doneB;
    const recA = readCapture(outA);
    const recB = readCapture(outB);
    assert.is(recA.length, framesA);
    assert.is(recB.length, framesB);
    // A ran ~600 ms and B ~700 ms, with two shards sending every 5 ms each.
    assert.ok(framesA > 100, `trace A kept capturing after B started (${framesA})`);
    assert.ok(framesB > 100, `trace B captured (${framesB})`);
    const lastA = recA[recA.length - 1]!.tsUs;
    const lastB = recB[recB.length - 1]!.tsUs;
    assert.ok(lastB > stoppedA + 200_000, `trace B went on after A stopped (its last frame ${Math.round((lastB - stoppedA) / 1000)} ms after)`);
    assert.ok(lastA <= stoppedA + 50_000, 'trace A ended when it was stopped');
    assert.equal(fs.readdirSync(dir).filter((f) => f.includes('.shard')), [], 'the parts were merged and removed');
  } finally {
    await s.close();
  }
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test.run();
