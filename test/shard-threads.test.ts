/**
 * The threaded group's control plane, with memory devices (no packets, no root): every shard runs
 * in its own worker with the config's services and the application module; changes reach every
 * shard in order with one VS identity issued by the main thread (never reused); a refused change
 * reaches none; `show` sums the shards (or lists each); the control socket serves the group; a
 * shard that dies stops the whole group with a clear message; bad options are clear errors.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ShardedStack, resolveShards } from '../stack/shard/threads';
import { ControlServer, controlRequest } from '../stack/control/control';
import { validateConfig, StackConfig } from '../stack/control/config';
import { createStack } from '../stack/index';

type Row = Record<string, unknown>;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-shards-'));

function config(): StackConfig {
  return {
    name: 'thr',
    engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24', 'fd00::1/64'] }] }],
    services: [{ type: 'tcp-echo', vs: 'a', port: 7 }, { type: 'udp-echo', vs: 'a', port: 7 }],
  } as StackConfig;
}

function app(name: string, body: string): string {
  const p = path.join(dir, `${name}.js`);
  fs.writeFileSync(p, body);
  return p;
}

const APP = app('app', `module.exports = (stack, { shard, shards }) => {
  if (shards !== 2) throw new Error('expected 2 shards, got ' + shards);
  stack.vs('a').createSocket('udp4').bind(6000 + shard);
  stack.vs('a').createServer(() => {}).listen(80);
};`);

test('shards run the services and the application in each worker; show sums them; changes reach every shard alike', async () => {
  const s = await createStack(config(), { shards: 2, app: APP, log: () => {} });
  try {
    assert.ok(s instanceof ShardedStack, 'createStack with shards gives the threaded group');
    assert.is(s.shards, 2);
    const per = (await s.show('vs', { perShard: true })) as { shard: number; data: Row[] }[];
    assert.is(per.length, 2);
    for (const p of per) {
      assert.is(p.data[0]!.udpSockets, 2, `shard ${p.shard}: the udp-echo service and the app's socket`);
      assert.is(p.data[0]!.tcpListeners, 2, `shard ${p.shard}: the tcp-echo service and the app's listener`);
    }
    const merged = ((await s.show('vs')) as Row[])[0]!;
    assert.is(merged.udpSockets, 4);
    assert.is(merged.tcpListeners, 4);
    assert.is(merged.id, 1);
    await s.request({ cmd: 'vs.add', name: 'b', links: [{ device: 'm0', vlan: 20, addresses: ['10.2.2.1/24'] }] });
    const ids = ((await s.show('vs', { perShard: true })) as { data: Row[] }[]).map((p) => p.data.find((r) => r.name === 'b')!.id);
    assert.equal(ids, [2, 2], 'one identity, issued by the main thread');
    let err = '';
    try { await s.request({ cmd: 'vs.add', name: 'c', links: [{ device: 'm0', vlan: 20, addresses: ['10.2.2.1/24'] }] }); } catch (e) { err = (e as Error).message; }
    assert.match(err, /already used/, 'the validator refuses it');
    const names = ((await s.show('vs', { perShard: true })) as { data: Row[] }[]).map((p) => p.data.map((r) => r.name).join(','));
    assert.equal(names, ['a,b', 'a,b'], 'a refused change reaches no shard');
    await s.request({ cmd: 'vs.del', name: 'b' });
    await s.request({ cmd: 'vs.add', name: 'b' });
    const again = ((await s.show('vs', { perShard: true })) as { data: Row[] }[]).map((p) => p.data.find((r) => r.name === 'b')!.id);
    assert.equal(again, [3, 3], 'identities are never reused');
    // Concurrent changes are applied in the order asked, on every shard.
    await Promise.all([0, 1, 2, 3].map((k) => s.request({ cmd: 'address.add', vs: 'a', link: 'm0.10', cidr: `10.1.1.${10 + k}/24` })));
    const addrs = ((await s.show('addresses', { perShard: true })) as { data: Row[] }[]).map((p) => p.data.map((r) => r.address).join(' '));
    assert.is(addrs[0], addrs[1]);
    // The control socket serves the group.
    const sock = path.join(dir, 'thr.sock');
    const server = await ControlServer.listen(s, sock);
    try {
      const r = await controlRequest(sock, { cmd: 'show', kind: 'counters' });
      assert.ok(r.ok, r.error);
      const shards = (r.data as { shards: Row[] }).shards;
      assert.equal(shards.map((x) => x.shard), [0, 1]);
      const bad = await controlRequest(sock, { cmd: 'route.add', vs: 'nope', dst: '10.9.0.0/16', via: '10.1.1.254' });
      assert.not.ok(bad.ok);
      assert.match(bad.error!, /no virtual server 'nope'/);
      const ping = await controlRequest(sock, { cmd: 'ping' });
      assert.is((ping.data as Row).shards, 2);
      // A trace over the control socket: started in every shard; the client going away stops it and
      // leaves one merged capture (a pcap header, no frames: memory devices carry none), no parts.
      const out = path.join(dir, 'trace.pcap');
      const ac = new AbortController();
      const events: string[] = [];
      const tr = controlRequest(sock, { cmd: 'trace', out }, { onEvent: (r) => { events.push(String(r.event)); if (r.event === 'started') ac.abort(); }, signal: ac.signal, timeoutMs: 10_000 });
      await tr.catch(() => undefined);
      assert.equal(events, ['started']);
      const t0 = Date.now();
      while (!(fs.existsSync(out) && fs.statSync(out).size >= 24) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
      assert.is(fs.statSync(out).size, 24, 'one merged capture: the pcap header');
      assert.equal(fs.readdirSync(dir).filter((f) => f.startsWith('trace.pcap.')), [], 'no per-shard parts left');
    } finally {
      await server.close();
    }
  } finally {
    await s.close();
  }
});

test('a shard that dies stops every shard, with a clear message', async () => {
  const boom = app('boom', `module.exports = (stack, { shard }) => {
    if (shard === 1) setTimeout(() => { throw new Error('application bug in shard one'); }, 200);
  };`);
  let fatal = '';
  const s = await ShardedStack.start(config(), { shards: 2, app: boom, log: () => {}, onFatal: (m) => { fatal = m; } });
  const t0 = Date.now();
  while (!fatal && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
  assert.match(fatal, /shard 1 of stack 'thr' died/);
  assert.match(fatal, /application bug in shard one/);
  assert.match(fatal, /stopping every shard/);
  let err = '';
  try { await s.show('vs'); } catch (e) { err = (e as Error).message; }
  assert.match(err, /stopped/, 'no half-alive group answers');
  await s.close();
});

test('an application that fails to start fails the start, naming the shard', async () => {
  const bad = app('bad', `module.exports = (stack, { shard }) => { if (shard === 0) throw new Error('cannot start'); };`);
  let err = '';
  try { await ShardedStack.start(config(), { shards: 2, app: bad, log: () => {} }); } catch (e) { err = (e as Error).message; }
  assert.match(err, /shard 0 failed to start: .*cannot start/s);
  const none = app('none', 'module.exports = 42;');
  err = '';
  try { await ShardedStack.start(config(), { shards: 2, app: none, log: () => {} }); } catch (e) { err = (e as Error).message; }
  assert.match(err, /exports no function/);
});

test('shard counts: checked, auto resolved, device queues refused', () => {
  const cfg = validateConfig(config(), 'config');
  assert.throws(() => resolveShards(cfg, 0), /1\.\.32/);
  assert.throws(() => resolveShards(cfg, 2.5), /1\.\.32/);
  const auto = resolveShards(cfg, 'auto');
  assert.ok(auto >= 1 && auto <= os.cpus().length);
  const q = { ...cfg, devices: [{ name: 'eth9', driver: 'afxdp', queue: 1 }] } as StackConfig;
  assert.throws(() => resolveShards(q, 2), /remove 'queue'/);
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test.run();
