/**
 * Shards under virtual time: two shards (each a stack over one queue of a two-queue device) and a
 * peer host, deterministic. What the shard model promises: every connection lives in exactly one
 * shard (the one that accepted or opened it); a frame that reaches the other shard (the peer moved
 * the flow to the other queue) is handed to the owner, counted, never dropped or processed twice;
 * neighbor answers reach every shard; a port bound in one shard only is found from the other;
 * configuration changes apply to every shard alike; `show` sums the shards.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer } from '../stack/api/net';
import { pattern, sha } from './lib/world';
import { movedTransfer, shardConfig, shardWorld, ShardWorld } from './lib/shard-world';
import type { Stack } from '../stack/stack';
import { FlowTable } from '../stack/shard/flows';
import { FrameRing, RingKind } from '../stack/shard/ring';
import { hashKey } from '../protocols/tcp/hash';
import { parseIp4 } from '../protocols/ip/addr';

type Row = Record<string, unknown>;

const services = [{ type: 'tcp-echo', vs: 'a', port: 7 }, { type: 'udp-echo', vs: 'a', port: 7 }];

function shardRows(w: ShardWorld): Row[] {
  return (w.group.show('counters') as { shards: Row[] }).shards;
}

function forwardedTotal(w: ShardWorld): number {
  return shardRows(w).reduce((n, r) => n + (r.forwarded as number[]).reduce((a, b) => a + b, 0), 0);
}

/** `n` TCP connections from the peer to the echo service, `size` bytes each; resolves with what came back per connection. */
async function echoes(w: ShardWorld, n: number, size: number, port = 7): Promise<{ ok: boolean; sent: Buffer[]; got: Buffer[] }> {
  const sent: Buffer[] = [];
  const got: Buffer[][] = [];
  let ended = 0;
  for (let i = 0; i < n; i++) {
    const data = pattern(size, 100 + i);
    sent.push(data);
    got.push([]);
    const c = connect(w.peer.ctx(), port, '10.1.1.1', () => c.end(data));
    c.on('data', (d: Buffer) => got[i]!.push(d));
    c.on('end', () => { ended++; });
  }
  const ok = await w.run(() => ended === n, 30_000_000);
  return { ok, sent, got: got.map((g) => Buffer.concat(g)) };
}

test('flow table: a slot has one owner; claims are counted; only the owner releases', () => {
  const buf = FlowTable.allocate({ flowSlots: 1024, portSlots: 64 });
  const key = hashKey(new Uint8Array(16).fill(7));
  const a = new FlowTable(buf, { flowSlots: 1024, portSlots: 64 }, 0, key);
  const b = new FlowTable(buf, { flowSlots: 1024, portSlots: 64 }, 1, key);
  const s = a.flowSlot(1, parseIp4('10.0.0.1'), 7, parseIp4('10.0.0.2'), 40000);
  assert.is(s, b.flowSlot(1, parseIp4('10.0.0.1'), 7, parseIp4('10.0.0.2'), 40000), 'both shards find the same slot');
  assert.is(a.owner(s), -1);
  assert.is(a.claim(s), -1, 'free slot taken');
  assert.is(b.claim(s), 0, 'the other shard learns the owner');
  assert.is(a.claim(s), -1, 'the owner shares its slot');
  assert.is(a.count(s), 2);
  b.release(s); // not the owner's: ignored
  assert.is(a.count(s), 2);
  a.release(s); a.release(s);
  assert.is(a.owner(s), -1, 'free after its last flow');
  assert.is(b.claim(s), -1);
  assert.is(a.owner(s), 1);
  // Ports: each shard's own bit, counted per binding.
  const p = a.portSlot(1, 17, 53);
  a.bindPort(p); a.bindPort(p); b.bindPort(p);
  assert.is(a.portShards(p), 3);
  assert.is(a.otherPortShard(p), 1);
  a.unbindPort(p);
  assert.is(a.portShards(p), 3, 'still one binding in shard 0');
  a.unbindPort(p);
  assert.is(a.portShards(p), 2);
  assert.is(b.otherPortShard(p), -1);
  assert.throws(() => FlowTable.allocate({ flowSlots: 1000, portSlots: 64 }), /powers of two/);
});

test('frame ring: FIFO, bounded, refuses what does not fit', () => {
  const r = new FrameRing(FrameRing.allocate({ slots: 4, frameBytes: 128 }), { slots: 4, frameBytes: 128 });
  const src = new Uint8Array(200).map((_, i) => i);
  for (let i = 0; i < 4; i++) assert.ok(r.push(i, RingKind.Flow, src, i, 60 + i));
  assert.not.ok(r.push(9, RingKind.Flow, src, 0, 60), 'full');
  assert.not.ok(new FrameRing(FrameRing.allocate({ slots: 4, frameBytes: 128 }), { slots: 4, frameBytes: 128 }).push(0, RingKind.Flow, src, 0, 129), 'too long');
  for (let i = 0; i < 4; i++) {
    const at = r.front();
    assert.ok(at >= 0);
    assert.is(r.frameDev(at), i);
    assert.is(r.frameLen(at), 60 + i);
    assert.is(r.bytes[at], i, 'bytes start at the frame offset');
    r.pop();
  }
  assert.is(r.front(), -1);
  assert.ok(r.push(1, RingKind.Neighbor, src, 0, 64), 'room again after pops (wraps)');
  assert.is(r.frameKind(r.front()), RingKind.Neighbor);
});

test('connections spread over both shards, each owned by one, echoed byte-exact with nothing forwarded', async () => {
  const accepted = [0, 0];
  const w = shardWorld({
    config: shardConfig({ services } as never),
    app: (s: Stack, shard: number) => {
      s.vs('a').createServer((c) => { accepted[shard]!++; c.pipe(c); }).listen(8);
    },
  });
  try {
    const r = await echoes(w, 16, 20_000, 8);
    assert.ok(r.ok, 'every connection ended');
    for (let i = 0; i < 16; i++) assert.is(sha(r.got[i]!), sha(r.sent[i]!), `connection ${i} echoed exactly`);
    const rows = shardRows(w);
    assert.is(rows.length, 2);
    assert.ok(w.perQueue[0]! > 0 && w.perQueue[1]! > 0, `the peer's frames went to both queues (${w.perQueue})`);
    assert.ok(accepted[0]! > 0 && accepted[1]! > 0, `both shards accepted connections (${accepted})`);
    assert.is(accepted[0]! + accepted[1]!, 16, 'every connection was accepted by exactly one shard');
    const opens = shardRows(w).map((r) => r.passiveOpens as number);
    assert.equal(opens, accepted, 'the shards\' passive opens count them');
    const merged = (w.group.show('vs') as Row[])[0]!;
    assert.is(merged.tcpListeners, 4, 'show sums the shards (two listeners in each)');
    assert.is(forwardedTotal(w), 0, 'a flow that stays on its queue is never handed over');
    // UDP: each datagram is answered by the shard it reached.
    const answers: Buffer[] = [];
    for (let i = 0; i < 8; i++) {
      const u = w.peer.engine.createUdpSocket(w.peer.vs, { type: 'udp4' });
      u.on('message', (m: Buffer) => answers.push(m));
      u.bind(5000 + i);
      u.send(Buffer.from(`dgram ${i}`), 7, '10.1.1.1');
    }
    assert.ok(await w.run(() => answers.length === 8, 5_000_000), `8 UDP echoes (${answers.length})`);
    assert.equal(answers.map(String).sort(), [...Array(8).keys()].map((i) => `dgram ${i}`));
    const dev = (w.group.show('counters') as { devices: Row[] }).devices[0]!;
    const per = (w.group.show('counters', { perShard: true }) as { data: { devices: Row[] } }[]).map((p) => p.data.devices[0]!.rxPackets as number);
    assert.is(dev.rxPackets, per[0]! + per[1]!, 'device counters are the sum of the shards');
  } finally {
    w.group.close();
  }
});

test('a flow moved to the other queue mid-transfer is handed to its owner and stays byte-exact', async () => {
  const w = shardWorld({ config: shardConfig({ services } as never) });
  try {
    const r = await movedTransfer(w, 400_000, 9, 60_000_000, 1 / 3);
    assert.ok(r.ended, 'transfer ended');
    assert.ok(r.moved);
    assert.ok(r.exact, 'byte-exact through the move');
    const fw = forwardedTotal(w);
    assert.ok(fw > 10, `the moved flow's frames were handed over (${fw})`);
    const rows = shardRows(w);
    const ringFull = rows.reduce((n, r) => n + (r.ringFull as number), 0);
    assert.is(ringFull, 0);
    const inTotal = rows.reduce((n, r) => n + (r.forwardedIn as number), 0);
    const shared = rows.reduce((n, r) => n + (r.neighborShared as number), 0);
    assert.is(inTotal, fw + shared, 'every frame handed over was taken once');
    const conns = (w.group.show('vs', { perShard: true }) as { data: Row[] }[]).map((p) => p.data[0]!.tcpConnections as number);
    assert.is(conns[0]! + conns[1]!, 1, 'still one connection, in one shard');
  } finally {
    w.group.close();
  }
});

test('a frame handed to its owner is counted once: the group\'s device, link and VS receive counters equal the frames that came off the wire', async () => {
  const w = shardWorld({ config: shardConfig({ services } as never) });
  try {
    const r = await movedTransfer(w, 200_000, 4, 60_000_000);
    assert.ok(r.ended, 'transfer ended');
    assert.ok(r.exact);
    await w.run(() => false, 500_000); // the last segments still on the wire arrive
    const wire = w.perQueue.reduce((a, b) => a + b, 0);
    const rows = shardRows(w);
    const handed = rows.reduce((n, r) => n + (r.forwardedIn as number), 0);
    assert.ok(forwardedTotal(w) > 10 && handed > 10, `frames were handed over (${handed})`);
    const all = w.group.show('counters') as { devices: Row[]; links: Row[]; vs: Row[] };
    assert.is(all.devices[0]!.rxPackets, wire, 'device: every frame from the peer once, whichever shards saw it');
    assert.is(all.links[0]!.rxPackets, wire, 'link: the same');
    assert.is(all.vs[0]!.rxPackets, wire, 'VS: the same');
    // Per shard: what came from its own queue.
    const per = (w.group.show('counters', { perShard: true }) as { data: { devices: Row[] } }[]).map((p) => p.data.devices[0]!.rxPackets as number);
    assert.equal(per, w.perQueue);
  } finally {
    w.group.close();
  }
});

test('outbound connections from each shard: return traffic reaching the other shard is handed back; ARP answers reach both shards', async () => {
  const w = shardWorld();
  try {
    w.neighborQueue = 0; // every ARP reply from the peer arrives at shard 0
    createServer(w.peer.ctx(), (s) => s.pipe(s)).listen(9);
    const results: { shard: number; ok: boolean }[] = [];
    w.group.stacks.forEach((s, shard) => {
      for (let k = 0; k < 4; k++) {
        const data = pattern(30_000, shard * 10 + k);
        const got: Buffer[] = [];
        const c = s.vs('a').connect(9, '10.1.1.2', () => c.end(data));
        c.on('data', (d: Buffer) => got.push(d));
        c.on('end', () => results.push({ shard, ok: Buffer.concat(got).equals(data) }));
      }
    });
    assert.ok(await w.run(() => results.length === 8, 30_000_000), `all 8 ended (${results.length})`);
    assert.ok(results.every((r) => r.ok), 'every echo byte-exact');
    const rows = shardRows(w);
    assert.ok((rows[0]!.neighborShared as number) > 0, 'shard 0 shared the ARP reply');
    const neigh = w.group.show('neighbors', { perShard: true }) as { data: Row[] }[];
    for (const p of neigh) assert.ok(p.data.some((n) => n.address === '10.1.1.2' && n.state === 'REACHABLE'), 'both shards resolved the peer');
    // With return traffic spread by hash, some of it reached the shard that did not open the flow.
    assert.ok(forwardedTotal(w) > 0, 'return frames were handed to the opening shard');
  } finally {
    w.group.close();
  }
});

test('with the device\'s RSS known, each shard opens connections whose replies come to its own queue: nothing handed over', async () => {
  const w = shardWorld({ rss: true, shards: 2 });
  try {
    w.neighborQueue = 0;
    createServer(w.peer.ctx(), (s) => s.pipe(s)).listen(9);
    let ok = 0;
    let ended = 0;
    w.group.stacks.forEach((s, shard) => {
      for (let k = 0; k < 6; k++) {
        const data = pattern(20_000, 50 + shard * 10 + k);
        const got: Buffer[] = [];
        const c = s.vs('a').connect(9, '10.1.1.2', () => c.end(data));
        c.on('data', (d: Buffer) => got.push(d));
        c.on('end', () => { ended++; if (Buffer.concat(got).equals(data)) ok++; });
      }
    });
    assert.ok(await w.run(() => ended === 12, 30_000_000), `all 12 ended (${ended})`);
    assert.is(ok, 12, 'every echo byte-exact');
    assert.is(forwardedTotal(w), 0, 'every reply came to the queue of the shard that opened the flow');
    assert.ok(w.perQueue[0]! > 0 && w.perQueue[1]! > 0);
  } finally {
    w.group.close();
  }
});

test('a port bound in one shard only is reached from the other; ephemeral UDP ports never collide', async () => {
  const w = shardWorld();
  try {
    const heard: string[] = [];
    const s1 = w.group.stacks[1]!.vs('a').createSocket('udp4');
    s1.on('message', (m: Buffer) => heard.push(String(m)));
    s1.bind(9999);
    let tcpConn = 0;
    w.group.stacks[1]!.vs('a').createServer((c) => { tcpConn++; c.end('hi'); }).listen(8888);
    w.pin(40001, 0);
    w.pin(40002, 0);
    const u = w.peer.engine.createUdpSocket(w.peer.vs, { type: 'udp4' });
    u.bind(40001);
    u.send(Buffer.from('to shard 1'), 9999, '10.1.1.1');
    let got = '';
    const c = connect(w.peer.ctx(), { port: 8888, host: '10.1.1.1', localPort: 40002 });
    c.on('data', (d: Buffer) => { got += String(d); });
    assert.ok(await w.run(() => heard.length === 1 && got === 'hi', 5_000_000), `datagram (${heard}) and connection (${got})`);
    assert.is(tcpConn, 1);
    assert.ok((shardRows(w)[0]!.forwarded as number[])[1]! >= 2, 'shard 0 handed both to shard 1');
    // Ephemeral UDP ports: each shard takes from its own share.
    const ports = w.group.stacks.map((s) => { const x = s.vs('a').createSocket('udp4'); x.bind(0); return x.address().port; });
    assert.is.not(ports[0], ports[1]);
    assert.is(ports[0]! % 2, 0);
    assert.is(ports[1]! % 2, 1);
  } finally {
    w.group.close();
  }
});

test('virtual servers added and removed while both shards carry traffic: same identity everywhere, no disturbance', async () => {
  const w = shardWorld({ config: shardConfig({ services } as never) });
  try {
    const running = echoes(w, 6, 200_000);
    await w.run(() => false, 2_000);
    w.group.apply({ cmd: 'vs.add', name: 'b', links: [{ device: 'eth0', vlan: 20, addresses: ['10.2.2.1/24'] }] });
    const ids = w.group.stacks.map((s) => s.engine.vs('b').id);
    assert.is(ids[0], ids[1], 'one identity in every shard');
    assert.throws(() => w.group.apply({ cmd: 'vs.add', name: 'c', links: [{ device: 'eth0', vlan: 10, addresses: ['10.1.1.1/24'] }] }), /already used/);
    assert.not.ok(w.group.stacks.some((s) => s.engine.vsByName.has('c')), 'a refused change touches no shard');
    w.group.apply({ cmd: 'address.add', vs: 'b', cidr: '10.2.2.9/24' });
    assert.ok(w.group.stacks.every((s) => s.show('addresses', { vs: 'b' }) instanceof Array && (s.show('addresses', { vs: 'b' }) as Row[]).length === 2));
    w.group.apply({ cmd: 'vs.del', name: 'b' });
    w.group.apply({ cmd: 'vs.add', name: 'b', links: [] });
    const again = w.group.stacks.map((s) => s.engine.vs('b').id);
    assert.is(again[0], again[1]);
    assert.ok(again[0]! > ids[0]!, 'identities are never reused');
    const r = await running;
    assert.ok(r.ok);
    for (let i = 0; i < 6; i++) assert.ok(r.got[i]!.equals(r.sent[i]!), `connection ${i} undisturbed`);
  } finally {
    w.group.close();
  }
});

test('through 2 % loss each way: a moved flow and connections opened by both shards stay byte-exact', async () => {
  const w = shardWorld({ config: shardConfig({ services } as never), impair: { loss: 0.02 } });
  try {
    createServer(w.peer.ctx(), (s) => s.pipe(s)).listen(9);
    let ok = 0, ended = 0;
    w.group.stacks.forEach((s, shard) => {
      const data = pattern(100_000, 70 + shard);
      const got: Buffer[] = [];
      const c = s.vs('a').connect(9, '10.1.1.2', () => c.end(data));
      c.on('data', (d: Buffer) => got.push(d));
      c.on('end', () => { ended++; if (Buffer.concat(got).equals(data)) ok++; });
    });
    const r = await movedTransfer(w, 300_000, 21, 120_000_000);
    assert.ok(r.ended && r.moved && r.exact, `moved transfer through loss: ${JSON.stringify(r)}`);
    assert.ok(await w.run(() => ended === 2, 120_000_000), 'outbound transfers ended');
    assert.is(ok, 2, 'outbound echoes byte-exact');
    const lost = (w.link.peer.stats().link as { lost: number }).lost + w.link.queues.reduce((n, q) => n + (q.stats().link as { lost: number }).lost, 0);
    assert.ok(lost >= 5, `frames were lost on the link (${lost})`);
    assert.ok(forwardedTotal(w) > 0);
  } finally {
    w.group.close();
  }
});

test('deterministic: the same scenario gives the same counters', async () => {
  const once = async (): Promise<string> => {
    const w = shardWorld({ config: shardConfig({ services } as never) });
    try {
      const r = await echoes(w, 6, 50_000);
      assert.ok(r.ok);
      return JSON.stringify([w.perQueue, w.group.show('counters', { perShard: true })]);
    } finally {
      w.group.close();
    }
  };
  assert.is(await once(), await once());
});

test.run();
