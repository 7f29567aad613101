/**
 * Regression: flows share a slot of the shards' flow table when their hashes collide (one in 2^20
 * by default, per flow the slot's shard holds). A SYN for a port that only shard 1 listens on,
 * whose slot shard 0 held for a flow of its own, was handed to shard 0, which had no listener and
 * answered RST: the peer's connect failed with ECONNREFUSED although the port is listened on. It is
 * now a counted drop (shard-flow-taken): the peer retransmits its SYN, and the connection is made
 * once shard 0's flow has gone. A table of one slot makes every flow collide.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer } from '../stack/api/net';
import { shardWorld } from './lib/shard-world';

type Row = Record<string, unknown>;

test('a SYN for a port another shard listens on is never refused because of a shared flow slot', async () => {
  const w = shardWorld({ flowSize: { flowSlots: 1, portSlots: 1024 } });
  try {
    w.neighborQueue = 0;
    createServer(w.peer.ctx(), (s) => { s.on('data', () => {}); s.on('error', () => {}); }).listen(9);
    let up = false;
    const c0 = w.group.stacks[0]!.vs('a').connect(9, '10.1.1.2', () => { up = true; });
    c0.on('error', () => {});
    assert.ok(await w.run(() => up, 2_000_000), 'shard 0 holds the only slot');
    let accepted = 0;
    w.group.stacks[1]!.vs('a').createServer((c) => { accepted++; c.end('hi'); }).listen(8888);
    let got = '', err = '';
    w.pin(40002, 1); // the SYN reaches the listening shard, which hands it to the slot's owner
    const c = connect(w.peer.ctx(), { port: 8888, host: '10.1.1.1', localPort: 40002 });
    c.on('data', (d: Buffer) => { got += String(d); });
    c.on('error', (e: Error) => { err = e.message; });
    await w.run(() => err !== '', 3_000_000);
    assert.is(err, '', 'not refused');
    const drops = ((w.group.show('counters') as { vs: Row[] }).vs[0]!.drops as { reasons: Record<string, number> }).reasons;
    assert.ok((drops['shard-flow-taken'] ?? 0) >= 1, 'the SYN was a counted drop');
    assert.is(drops['tcp-no-socket'] ?? 0, 0);
    c0.resetAndDestroy(); // reset: shard 0's flow leaves the slot at once
    assert.ok(await w.run(() => got === 'hi' || err !== '', 10_000_000), 'the connection ended');
    assert.is(err, '');
    assert.is(got, 'hi', 'the retransmitted SYN was accepted by shard 1');
    assert.is(accepted, 1);
  } finally {
    w.group.close();
  }
});

test.run();
