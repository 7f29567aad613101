/**
 * Regression: SYN cookies across shards. Every shard has the same secret, so any shard can check
 * a cookie, but a listener checked the ACK of a handshake for a cookie only after it had sent
 * cookies itself: an ACK that reached another shard than its SYN (the peer's flow moved to another
 * queue, as a veth peer's does after a retransmission) was answered with a RST, and the connection
 * the peer believed established was reset (RFC 4987 3.6: the cookie is the state).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer } from '../stack/api/net';
import { shardConfig, shardWorld } from './lib/shard-world';

type Row = Record<string, unknown>;

test('a SYN cookie sent by one shard is taken by the other when the handshake\'s ACK reaches it', async () => {
  // One SYN_RECEIVED entry fills a listener's SYN queue: the next SYN is answered with a cookie.
  const config = shardConfig();
  config.virtualServers[0]!.limits = { tcpSynQueue: 1 };
  const accepted = [0, 0];
  const w = shardWorld({ config, app: (s, shard) => s.vs('a').createServer((c) => { accepted[shard]!++; c.end('hi'); }).listen(8888) });
  try {
    w.neighborQueue = 0;
    const pe = w.peer.engine;
    // A handshake left half-open in shard 0: its SYN-ACK goes to an address the peer then drops.
    pe.addAddress(w.peer.vs, 'eth0.10', '10.1.1.3/24');
    w.pin(40001, 0);
    const half = connect(w.peer.ctx(), { port: 8888, host: '10.1.1.1', localPort: 40001, localAddress: '10.1.1.3' });
    half.on('error', () => {});
    await new Promise((r) => process.nextTick(r)); // the attempt starts on the next tick (as Node's)
    pe.removeAddress(w.peer.vs, 'eth0.10', '10.1.1.3/24');
    await w.run(() => false, 200_000);
    const synq = () => (w.group.show('limits', { perShard: true }) as { data: Row[] }[]).map((p) => p.data.find((r) => r.limit === 'tcpSynQueue'));
    assert.is((synq()[0] as Row).used, 1, 'shard 0\'s SYN queue is full');
    // The next SYN reaches shard 0 (a cookie); its ACK reaches shard 1.
    w.pin(40002, 0);
    const s0 = w.group.stacks[0]!;
    const step = s0.runtime.step.bind(s0.runtime);
    s0.runtime.step = (now: number) => {
      const r = step(now);
      if (((synq()[0] as Row).hits as number) > 0) w.pin(40002, 1);
      return r;
    };
    let got = '', err = '';
    const c = connect(w.peer.ctx(), { port: 8888, host: '10.1.1.1', localPort: 40002 });
    c.on('data', (d: Buffer) => { got += String(d); });
    c.on('error', (e: Error) => { err = e.message; });
    assert.ok(await w.run(() => got === 'hi' || err !== '', 5_000_000), 'the connection ended');
    assert.is(((synq()[0] as Row).hits as number), 1, 'shard 0 answered with a cookie');
    assert.is(err, '', 'not reset');
    assert.is(got, 'hi');
    assert.equal(accepted, [0, 1], 'shard 1 took the connection from the cookie');
  } finally {
    w.group.close();
  }
});

test.run();
