/**
 * Regression: a VS talking to its own address (looped back inside the stack, never on the wire)
 * when the other end is in another shard. The looped-back frame was handed to that shard as an
 * ordinary received frame, where its source (the VS's own address) made it a martian
 * (ipv4-bad-source / ipv6 bad source: dropped), and a UDP datagram to the VS's own address was
 * delivered only to a socket of the sending shard (udp-no-socket otherwise). Both must reach the
 * shard that listens or has bound the port, as a kernel's loopback reaches any socket of the host.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pattern } from './lib/world';
import { shardWorld } from './lib/shard-world';

type Row = Record<string, unknown>;

for (const host of ['10.1.1.1', 'fd00::1']) {
  test(`${host}: a connection and datagrams from shard 0 to its own address reach what only shard 1 listens on, and back`, async () => {
    const w = shardWorld();
    try {
      const s1 = w.group.stacks[1]!.vs('a');
      s1.createServer((c) => c.pipe(c)).listen(8888);
      const u1 = s1.createSocket(host.includes(':') ? 'udp6' : 'udp4');
      u1.on('message', (m: Buffer, r: { address: string; port: number }) => u1.send(Buffer.concat([Buffer.from('re: '), m]), r.port, r.address));
      u1.bind(9999);
      const s0 = w.group.stacks[0]!.vs('a');
      const data = pattern(100_000, 3);
      const got: Buffer[] = [];
      let ended = false;
      const c = s0.connect(8888, host, () => c.end(data));
      c.on('data', (d: Buffer) => got.push(d));
      c.on('end', () => { ended = true; });
      const answers: string[] = [];
      const u0 = s0.createSocket(host.includes(':') ? 'udp6' : 'udp4');
      u0.on('message', (m: Buffer) => answers.push(String(m)));
      u0.send(Buffer.from('ping'), 9999, host);
      assert.ok(await w.run(() => ended && answers.length === 1, 10_000_000), `connection ended (${ended}), datagram answered (${answers})`);
      assert.ok(Buffer.concat(got).equals(data), 'echoed byte-exact through shard 1');
      assert.equal(answers, ['re: ping']);
      const opens = (w.group.show('counters') as { shards: Row[] }).shards.map((r) => [r.activeOpens, r.passiveOpens]);
      assert.equal(opens, [[1, 0], [0, 1]], 'opened by shard 0, accepted by shard 1');
      const drops = ((w.group.show('counters') as { vs: Row[] }).vs[0]!.drops as { reasons: Record<string, number> }).reasons;
      for (const k of ['ipv4-bad-source', 'ipv6-bad-source', 'udp-no-socket', 'tcp-no-socket']) assert.is(drops[k] ?? 0, 0, `no ${k} drop`);
      const rows = (w.group.show('counters') as { shards: Row[] }).shards;
      assert.ok((rows[0]!.forwarded as number[])[1]! > 0 && (rows[1]!.forwarded as number[])[0]! > 0, 'looped-back frames were handed over both ways');
    } finally {
      w.group.close();
    }
  });
}

test.run();
