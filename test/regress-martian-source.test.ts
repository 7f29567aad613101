/**
 * Regression: a datagram from the wire whose source is one of the VS's own addresses (spoofed, or
 * a frame looped back by a switch) is dropped as a bad source, as Linux drops a "martian source".
 * Before, once a VS could reach its own addresses, the answer to such a datagram went to the VS
 * itself through its loopback: a single forged frame made the stack talk to itself (found by the
 * whole-engine fuzz target: one frame in, two frames received).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseMac, Burst } from '../driver/types';
import { udpFrame, push, drain, oneVs } from './lib/frames';

const setup = () => oneVs(64, ['10.1.1.1/24', '10.1.1.5/24']);

test('a UDP datagram from the wire with our own address as source is a counted drop, never answered', () => {
  const { pool, e, vs, vsMac } = setup();
  const s = e.createUdpSocket(vs);
  s.bind(7);
  let got = 0;
  s.on('message', (m: Buffer, r) => { got++; s.send(m, r.port, r.address); });
  const peer = parseMac('02:00:00:00:99:01');
  const burst = new Burst();
  for (const src of ['10.1.1.1', '10.1.1.5']) {
    push(pool, burst, udpFrame(10, vsMac, peer, src, 7, '10.1.1.1', 7, new TextEncoder().encode('loop')));
  }
  e.input(0, burst, 1000);
  e.flushEvents();
  e.flushEvents();
  assert.is(got, 0, 'not delivered');
  assert.equal(drain(pool, e.devices[0]!.out), [], 'nothing sent');
  const c = vs.counters.toJSON();
  assert.is(c.drops.reasons['ipv4-bad-source'], 2);
  assert.is(c.rxPackets, 2, 'each frame received once');
  assert.is(pool.check().free, 64);
  s.close();
});

test('the VS still reaches its own address through its loopback', () => {
  const { pool, e, vs } = setup();
  const a = e.createUdpSocket(vs);
  const b = e.createUdpSocket(vs);
  a.bind(7);
  b.bind(9);
  const got: string[] = [];
  a.on('message', (m: Buffer, r) => got.push(`${m.toString()} from ${r.address}:${r.port}`));
  b.send('hello', 7, '10.1.1.5');
  e.flushEvents();
  e.flushEvents();
  assert.equal(got, ['hello from 10.1.1.5:9']);
  assert.is(vs.counters.toJSON().drops.reasons['ipv4-bad-source'] ?? 0, 0);
  a.close();
  b.close();
  assert.is(pool.check().free, 64);
});

test.run();
