/**
 * Regression: a broadcast datagram that no socket had room for is a counted drop
 * (UdpSocketQueueFull), as a unicast one is: every datagram the stack throws away is counted.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Drop } from '../protocols/drop';
import { twoHosts } from './lib/world';

async function sendBurst(to: string): Promise<{ received: number; queueFull: number }> {
  const w = twoHosts();
  const rx = w.b.engine.createUdpSocket(w.b.vs[0]!, { maxQueue: 1 });
  let received = 0;
  rx.on('message', () => { received++; });
  rx.bind(5000); // the wildcard address: hears the subnet's broadcasts
  const tx = w.a.engine.createUdpSocket(w.a.vs[0]!);
  tx.bind(6000);
  await w.run(() => false, 1000);
  tx.setBroadcast(true);
  // ARP first, so that the five datagrams arrive together in one burst.
  tx.send('warm', 5000, to);
  assert.ok(await w.run(() => received === 1, 1_000_000), 'the first datagram arrives');
  for (let i = 0; i < 5; i++) tx.send(`d${i}`, 5000, to);
  await w.run(() => false, 100_000);
  const queueFull = w.b.vs[0]!.counters.drops[Drop.UdpSocketQueueFull]!;
  tx.close();
  rx.close();
  return { received, queueFull };
}

test('five unicast datagrams in one burst to a socket with room for one: four counted drops', async () => {
  const r = await sendBurst('10.1.1.2');
  assert.is(r.received, 2);
  assert.is(r.queueFull, 4);
});

test('the same with the subnet broadcast: four counted drops, as for unicast', async () => {
  const r = await sendBurst('10.1.1.255');
  assert.is(r.received, 2);
  assert.is(r.queueFull, 4, 'each broadcast datagram the socket had no room for is counted');
});

test.run();
