/**
 * Regression: an IPv6 ping may carry up to 65527 data bytes (RFC 8200: a payload of at most 65535
 * bytes without jumbograms, less the 8-byte ICMPv6 header), not IPv4's 65507; both limits are
 * named by family in the error.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts } from './lib/world';
import { PingSession, PingSummary, checkPingOptions } from '../stack/ping';

test('IPv6: 65527 data bytes travel as fragments and come back whole', async () => {
  const w = twoHosts({ ipv6: true, engine: { ndp: { dadTransmits: 0 } } });
  // A small ping first resolves the neighbor (its queue holds a few frames, not 45 fragments).
  let warm: PingSummary | null = null;
  new PingSession(w.b.engine, w.b.vs[0]!, 'fd00::1', { count: 1 }, { onDone: (x) => { warm = x; } });
  assert.ok(await w.run(() => warm !== null, 5_000_000));
  assert.is(warm!.received, 1);
  let sum: PingSummary | null = null;
  const bytes: number[] = [];
  const s = new PingSession(w.b.engine, w.b.vs[0]!, 'fd00::1', { count: 1, size: 65527 }, {
    onReply: (r) => bytes.push(r.bytes), onDone: (x) => { sum = x; },
  });
  assert.is(s.start.packetBytes, 65527 + 8 + 40);
  assert.ok(await w.run(() => sum !== null, 5_000_000));
  assert.equal(bytes, [65535], 'one reply of the whole ICMPv6 message');
  assert.is(sum!.received, 1);
});

test('the limits by family: IPv6 65528 and IPv4 65508 are refused, each with its own maximum', () => {
  const w = twoHosts({ ipv6: true, engine: { ndp: { dadTransmits: 0 } } });
  const vs = w.b.vs[0]!;
  assert.throws(() => new PingSession(w.b.engine, vs, 'fd00::1', { size: 65528 }), /ping size must be 0\.\.65527 data bytes/);
  assert.throws(() => new PingSession(w.b.engine, vs, '10.1.1.1', { size: 65508 }), /ping size must be 0\.\.65507 data bytes/);
  assert.is(w.b.engine.echo.size, 0, 'no echo socket left open by a refused ping');
  // The options alone (as the CLI checks them before asking the stack), for an IPv6 target.
  assert.is(checkPingOptions({ size: 65527 }, 6).size, 65527);
  assert.throws(() => checkPingOptions({ size: 65508 }, 4), /0\.\.65507/);
});

test.run();
