/**
 * Regression: a connection's flow slot in the shards' shared table is taken before the connection
 * is built; when building it then failed (connect() with a bad `tcp` option: RangeError), the slot
 * stayed taken by that shard for good. Every later flow hashing to it was then steered to that
 * shard: the same 4-tuple opened from another shard failed with EADDRINUSE, and a peer's segments
 * of such a flow reaching another shard would be handed to one that knows nothing of them.
 *
 * With it: the flow table is empty again once every connection has gone, however it went
 * (graceful close through TIME_WAIT, reset, its VS removed).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer } from '../stack/api/net';
import { parseIp4 } from '../protocols/ip/addr';
import { DEFAULT_FLOW_TABLE } from '../stack/shard/flows';
import { shardConfig, shardWorld, ShardWorld } from './lib/shard-world';

/** Flow slots some shard holds. */
function claimed(w: ShardWorld): number {
  const words = new Int32Array(w.group.mesh.flows, 0, DEFAULT_FLOW_TABLE.flowSlots);
  let n = 0;
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) n++;
  return n;
}

test('a connect() that fails on its options gives its flow back: the same 4-tuple opens from the other shard', async () => {
  const w = shardWorld();
  try {
    w.neighborQueue = 0;
    createServer(w.peer.ctx(), (s) => s.end('x')).listen(9);
    let err = '';
    const c0 = w.group.stacks[0]!.vs('a').connect({ port: 9, host: '10.1.1.2', localPort: 45000, tcp: { cc: 'bogus' } } as never);
    c0.on('error', (e: Error) => { err = e.message; });
    await w.run(() => err !== '', 1_000_000);
    assert.match(err, /cc must be/, 'the option is refused');
    const ft = w.group.stacks[0]!.engine.steer!.flows;
    assert.is(ft.owner(ft.flowSlot(1, parseIp4('10.1.1.1'), 45000, parseIp4('10.1.1.2'), 9)), -1, 'its flow is no shard\'s');
    assert.is(claimed(w), 0);
    let err1 = '', got = '';
    const c1 = w.group.stacks[1]!.vs('a').connect({ port: 9, host: '10.1.1.2', localPort: 45000 });
    c1.on('error', (e: Error) => { err1 = e.message; });
    c1.on('data', (d: Buffer) => { got += String(d); });
    assert.ok(await w.run(() => err1 !== '' || got === 'x', 2_000_000), 'the other shard\'s connect ended');
    assert.is(err1, '', 'no EADDRINUSE: the flow is free');
    assert.is(got, 'x');
  } finally {
    w.group.close();
  }
});

test('the flow table is empty once connections have gone: graceful close and TIME_WAIT, reset, VS removed', async () => {
  const services = [{ type: 'tcp-echo', vs: 'a', port: 7 }];
  const w = shardWorld({ config: shardConfig({ services } as never) });
  try {
    w.neighborQueue = 0;
    // Graceful: the peer closes first, so TIME_WAIT is the peer's; the stack's side closes last.
    let ended = 0;
    for (let i = 0; i < 8; i++) {
      const c = connect(w.peer.ctx(), 7, '10.1.1.1', () => c.end('abc'));
      c.on('data', () => {});
      c.on('end', () => { ended++; });
    }
    assert.ok(await w.run(() => ended === 8, 5_000_000));
    // The stack closes first: its side goes through TIME_WAIT (60 s here), then leaves.
    createServer(w.peer.ctx(), (s) => { s.on('data', () => {}); s.on('end', () => s.end()); s.on('error', () => {}); }).listen(9);
    let closed = 0;
    for (const s of w.group.stacks) {
      for (let k = 0; k < 4; k++) {
        const c = s.vs('a').connect(9, '10.1.1.2', () => c.end('bye'));
        c.on('data', () => {});
        c.on('close', () => { closed++; });
      }
    }
    assert.ok(await w.run(() => closed === 8, 5_000_000), `8 outbound connections closed (${closed})`);
    assert.ok(claimed(w) > 0, 'connections in TIME_WAIT still hold their flows (their late segments must reach them)');
    await w.run(() => false, 70_000_000);
    assert.is(claimed(w), 0, 'TIME_WAIT over: every flow given back');
    // Reset by the application.
    let destroyed = 0;
    for (const s of w.group.stacks) {
      // Reset at once (an orderly destroy() would close through TIME_WAIT).
      const c = s.vs('a').connect(9, '10.1.1.2', () => { c.resetAndDestroy(); destroyed++; });
      c.on('error', () => {});
    }
    assert.ok(await w.run(() => destroyed === 2, 5_000_000));
    await w.run(() => false, 1_000_000);
    assert.is(claimed(w), 0, 'reset connections gave their flows back');
    // Live connections of a VS that is removed.
    let open = 0;
    let aborted = 0;
    for (const s of w.group.stacks) {
      for (let k = 0; k < 3; k++) {
        const c = s.vs('a').connect(9, '10.1.1.2', () => { open++; });
        c.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'ECONNABORTED') aborted++; });
      }
    }
    assert.ok(await w.run(() => open === 6, 5_000_000));
    assert.ok(claimed(w) > 0);
    w.group.apply({ cmd: 'vs.del', name: 'a' });
    assert.is(claimed(w), 0, 'removing the VS gave its connections\' flows back');
    await w.run(() => aborted === 6, 1_000_000);
    assert.is(aborted, 6, 'their sockets learnt it (ECONNABORTED)');
  } finally {
    w.group.close();
  }
});

test.run();
