/**
 * Regression: the shard reassembling a fragmented datagram was chosen by a hash that could be
 * negative, so `hash % shards` named shard -1 for about half the datagrams: their fragments were
 * "handed" to no shard and dropped (counted as shard-ring-full). Every fragment of a datagram must
 * reach one shard, whichever queue it came in on, and the datagram be delivered whole (RFC 791,
 * RFC 8200 4.5).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { shardConfig, shardWorld, ShardWorld } from './lib/shard-world';
import { FrameRing, RingKind } from '../stack/shard/ring';

type Row = Record<string, unknown>;

function drops(w: ShardWorld): Record<string, number> {
  return ((w.group.show('counters') as { vs: Row[] }).vs[0]!.drops as { reasons: Record<string, number> }).reasons;
}

/** Sends `n` datagrams of `size` bytes from the peer to `host`:`port`, one at a time; resolves with the lengths that came back. */
async function fragmentedEchoes(w: ShardWorld, type: 'udp4' | 'udp6', host: string, port: number, n: number, size: number): Promise<number[]> {
  const back: number[] = [];
  const u = w.peer.engine.createUdpSocket(w.peer.vs, { type });
  u.on('message', (m: Buffer) => back.push(m.length));
  u.bind(41000);
  // A small one first: the peer resolves the stack's address, so no fragment waits in its neighbor queue.
  u.send(Buffer.from('hello'), port, host);
  assert.ok(await w.run(() => back.length === 1, 5_000_000), 'the unfragmented datagram came back');
  back.length = 0;
  for (let i = 0; i < n; i++) {
    u.send(Buffer.alloc(size, i), port, host);
    await w.run(() => back.length === i + 1, 200_000);
  }
  await w.run(() => back.length === n, 2_000_000);
  u.close();
  return back;
}

const services = [{ type: 'udp-echo', vs: 'a', port: 7 }];

test('frame ring: a record longer than a slot spans consecutive slots (wrapping), all or nothing', () => {
  const size = { slots: 8, frameBytes: 100 };
  const r = new FrameRing(FrameRing.allocate(size), size);
  const src = new Uint8Array(1000).map((_, i) => (i * 7 + 3) & 0xff);
  const out = new Uint8Array(1000);
  assert.ok(r.push(0, RingKind.Flow, src, 0, 60), 'a frame first: the long records below wrap');
  for (let round = 0; round < 5; round++) {
    const len = 250 + round * 10; // 3 slots each
    assert.is(r.span(len), 3);
    assert.ok(r.pushLong(1, RingKind.Datagram, src, round, len));
    if (round === 0) {
      r.pop(); // the frame
      assert.ok(r.pushLong(1, RingKind.Datagram, src, 50, 301), 'room for 4 more slots');
      assert.not.ok(r.pushLong(1, RingKind.Datagram, src, 0, 101), 'no room for 2 slots: nothing written');
      assert.is(r.length, 7);
      let at = r.front();
      assert.is(r.frameKind(at), RingKind.Datagram);
      assert.is(r.frameLen(at), 250);
      r.readLong(at, out);
      assert.ok(out.subarray(0, 250).every((v, i) => v === src[i]), 'first record intact');
      r.pop(r.span(250));
      at = r.front();
      assert.is(r.frameLen(at), 301);
      r.readLong(at, out);
      assert.ok(out.subarray(0, 301).every((v, i) => v === src[50 + i]), 'second record intact across the wrap');
      r.pop(r.span(301));
      continue;
    }
    const at = r.front();
    assert.is(r.frameDev(at), 1);
    assert.is(r.readLong(at, out), len);
    assert.ok(out.subarray(0, len).every((v, i) => v === src[round + i]), `record ${round} intact`);
    r.pop(r.span(len));
  }
  assert.is(r.length, 0);
  assert.not.ok(r.pushLong(0, RingKind.Datagram, src, 0, 900), 'longer than the whole ring');
});

for (const [type, host] of [['udp4', '10.1.1.1'], ['udp6', 'fd00::1']] as const) {
  test(`${type}: every fragmented datagram is reassembled by one shard and answered, whichever queues its fragments reached`, async () => {
    const w = shardWorld({ config: shardConfig({ services } as never) });
    try {
      const back = await fragmentedEchoes(w, type, host, 7, 32, 3000);
      assert.is(back.length, 32, `32 datagrams of 3000 bytes (3 fragments each) echoed (${back.length}; drops ${JSON.stringify(drops(w))})`);
      assert.ok(back.every((l) => l === 3000));
      assert.is(drops(w)['shard-ring-full'] ?? 0, 0, 'no fragment handed to a shard that does not exist');
      const rows = (w.group.show('counters') as { shards: Row[] }).shards;
      const handed = rows.reduce((n, r) => n + (r.forwarded as number[]).reduce((a, b) => a + b, 0), 0);
      assert.ok(handed > 0, 'some fragments reached the shard that does not reassemble them and were handed over');
    } finally {
      w.group.close();
    }
  });
}

for (const [type, host] of [['udp4', '10.1.1.1'], ['udp6', 'fd00::1']] as const) {
  test(`${type}: a fragmented datagram for a port only another shard has bound is handed to it whole, not refused`, async () => {
    // Regression: the shard that reassembled it found no socket and answered port unreachable.
    const w = shardWorld();
    try {
      const s1 = w.group.stacks[1]!.vs('a').createSocket(type);
      s1.on('message', (m: Buffer, r: { address: string; port: number }) => s1.send(m, r.port, r.address));
      s1.bind(9999);
      const back = await fragmentedEchoes(w, type, host, 9999, 24, 5000);
      assert.is(back.length, 24, `24 datagrams of 5000 bytes echoed by shard 1 (${back.length}; drops ${JSON.stringify(drops(w))})`);
      assert.ok(back.every((l) => l === 5000));
      const d = drops(w);
      for (const k of ['udp-no-socket', 'shard-ring-full', 'shard-not-forwardable']) assert.is(d[k] ?? 0, 0, `no ${k} drop`);
      const rows = (w.group.show('counters') as { shards: Row[] }).shards;
      const handed = rows.reduce((n, r) => n + (r.forwarded as number[]).reduce((a, b) => a + b, 0), 0);
      const shared = rows.reduce((n, r) => n + (r.neighborShared as number), 0);
      assert.is(rows.reduce((n, r) => n + (r.forwardedIn as number), 0), handed + shared, 'every handed-over frame or datagram taken once');
      // Each reassembled in shard 0 (about half by the fragment hash) was handed over whole.
      assert.ok((rows[0]!.forwarded as number[])[1]! > 0, 'shard 0 handed datagrams to shard 1');
    } finally {
      w.group.close();
    }
  });
}

test.run();
