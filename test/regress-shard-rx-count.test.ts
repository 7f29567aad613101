/**
 * Regression: a frame handed to the shard that owns its flow was counted as received twice, by
 * the shard whose queue it reached and again by the owner, so `show counters` of a group (the sum
 * of the shards) reported more received packets than the device received (device, VS and link
 * rows). A frame is received once: by the shard of its queue; the owner counts it in forwardedIn.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../stack/net';
import { pattern, sha } from './lib/world';
import { shardConfig, shardWorld } from './lib/shard-world';

type Row = Record<string, unknown>;
interface Counters { devices: Row[]; vs: Row[]; links: Row[]; shards: Row[] }

test('a group counts each received frame once, whichever shard processes it', async () => {
  const w = shardWorld({ config: shardConfig({ services: [{ type: 'tcp-echo', vs: 'a', port: 7 }] } as never) });
  try {
    const size = 300_000;
    const data = pattern(size, 3);
    const got: Buffer[] = [];
    let received = 0, moved = false, ended = false, port = 0;
    const c = connect(w.peer.ctx(), 7, '10.1.1.1', () => { port = c.localPort!; c.end(data); });
    c.on('data', (d: Buffer) => {
      got.push(d);
      received += d.length;
      if (!moved && received > size / 3) {
        // The peer's frames of this flow now reach the shard that does not own it.
        const owner = (w.group.show('vs', { perShard: true }) as { data: Row[] }[]).findIndex((p) => (p.data[0]!.tcpConnections as number) > 0);
        w.pin(port, 1 - owner);
        moved = true;
      }
    });
    c.on('end', () => { ended = true; });
    assert.ok(await w.run(() => ended, 60_000_000), 'transfer ended');
    assert.is(sha(Buffer.concat(got)), sha(data));
    await w.run(() => false, 2_000_000); // the last frames (the peer's final ACK) arrive
    const m = w.group.show('counters') as Counters;
    const forwardedIn = m.shards.reduce((n, r) => n + (r.forwardedIn as number), 0);
    assert.ok(forwardedIn > 10, `frames were handed over (${forwardedIn})`);
    const wire = w.perQueue[0]! + w.perQueue[1]!;
    assert.is(m.devices[0]!.rxPackets, wire, `device: each of the ${wire} frames the device received counted once`);
    assert.is(m.vs[0]!.rxPackets, wire, 'VS: the same frames');
    assert.is(m.links[0]!.rxPackets, wire, 'link: the same frames');
    const per = (w.group.show('counters', { perShard: true }) as { data: Counters }[]).map((p) => p.data.devices[0]!.rxPackets as number);
    assert.equal(per, w.perQueue, 'each shard counts the frames of its own queue');
  } finally {
    w.group.close();
  }
});

test.run();
