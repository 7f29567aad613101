/**
 * A reassembled IPv4 UDP datagram no socket takes is answered with ICMP port unreachable (RFC
 * 1122 3.2.2.1 / 4.1.3.1), as a datagram that came whole is; the error quotes a header for the
 * whole datagram and as much of the datagram as fits in a 576-byte error (RFC 1812 4.3.2.3; RFC
 * 792's minimum is the IP header and the first 64 bits of data, which is all it quoted before).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, pattern } from './lib/world';
import { decode, Decoded } from './lib/frames';
import type { Burst } from '../driver/types';
import { parseIpv4 } from '../protocols/ipv4';

test('a fragmented UDP datagram to a closed port gets one port unreachable, quoting the reassembled datagram', async () => {
  const w = twoHosts();
  const seen: Decoded[] = [];
  const ep = w.link.a;
  const tx = ep.tx.bind(ep);
  ep.tx = (b: Burst, now: number) => {
    for (let i = 0; i < b.n; i++) seen.push(decode(ep.pool.bytes, b.off[i]!, b.len[i]!));
    return tx(b, now);
  };
  const s = w.b.engine.createUdpSocket(w.b.vs[0]!);
  s.bind(5000);
  s.send(pattern(3000, 4), 9999, '10.1.1.1');
  await w.run(() => false, 1_000_000);
  const errs = seen.filter((d) => d.icmp?.type === 3 && d.icmp.code === 3);
  assert.is(errs.length, 1, 'one port unreachable');
  const e = errs[0]!;
  assert.is(e.ipv4!.dst, parseIpv4('10.1.1.2'));
  const q = e.icmp!.data; // the quote: a 20-byte header, then as much as fits in 576 bytes (RFC 1812 4.3.2.3)
  assert.is(e.ipv4!.payloadLen + 20, 576, 'a 576-byte error datagram');
  assert.equal(Buffer.from(q.subarray(28)), pattern(3000, 4).subarray(0, 576 - 20 - 8 - 28), 'the datagram\'s data after its UDP header');
  assert.is(q[9], 17, 'the quoted header is UDP');
  assert.is((q[2]! << 8) | q[3]!, 20 + 8 + 3000, 'for the whole datagram');
  assert.is((q[6]! << 8) | q[7]!, 0, 'not a fragment');
  assert.equal([(q[20]! << 8) | q[21]!, (q[22]! << 8) | q[23]!], [5000, 9999], 'its UDP ports');
  assert.is(w.a.vs[0]!.counters.toJSON().drops.reasons['udp-no-socket'], 1);
  s.close();
  await w.run(() => false, 10_000);
  assert.is(w.a.engine.devices[0]!.pool.check().held, 0);
});

test.run();
