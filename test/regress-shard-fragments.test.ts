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

type Row = Record<string, unknown>;

function drops(w: ShardWorld): Record<string, number> {
  return (w.group.show('counters') as { vs: Row[] }).vs[0]!.drops as Record<string, number>;
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

test.run();
