/** Regression: a connected UDP socket receives only from its peer (as a connected dgram socket does). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts } from './lib/world';

test('connected UDP socket ignores datagrams from other sources', async () => {
  const w = twoHosts();
  const a = w.a.engine.createUdpSocket(w.a.vs[0]!);
  const got: string[] = [];
  a.on('message', (m: Buffer, r: { port: number }) => got.push(`${r.port}:${m}`));
  a.bind(5000);
  a.connect(6000, '10.1.1.2');
  const peer = w.b.engine.createUdpSocket(w.b.vs[0]!);
  peer.bind(6000);
  const other = w.b.engine.createUdpSocket(w.b.vs[0]!);
  other.bind(7000);
  await w.run(() => false, 1000);
  other.send('stranger', 5000, '10.1.1.1');
  peer.send('peer', 5000, '10.1.1.1');
  await w.run(() => got.length >= 2, 100_000);
  assert.equal(got, ['6000:peer']);
});

test.run();
